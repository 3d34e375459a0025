"""Each objective in genimg_lib.losses against an independent computation."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from genimg_lib import losses


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    q = Normal(mu, (0.5 * logvar).exp())
    expected = kl_divergence(q, Normal(torch.zeros(3), torch.ones(3))).sum(1)
    torch.testing.assert_close(losses.gaussian_kl(mu, logvar), expected)


def test_log_normal_diag_and_gaussian_likelihood_match_normal():
    g = torch.Generator().manual_seed(1)
    x, mu, logvar = (torch.randn(4, 1, 2, 2, generator=g) for _ in range(3))
    expected = Normal(mu, (0.5 * logvar).exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(losses.log_normal_diag(x, mu, logvar), expected)
    fixed = Normal(mu, 1.0).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(losses.gaussian_log_likelihood(x, mu, 0.0), fixed)


def test_bernoulli_log_likelihood_matches_bernoulli_and_rejects_bad_targets():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, 4, 4, generator=g).round()
    logits = torch.randn(3, 1, 4, 4, generator=g)
    expected = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(losses.bernoulli_log_likelihood(x, logits), expected)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.bernoulli_log_likelihood(x * 2 - 1, logits)
    with pytest.raises(ValueError, match="shapes differ"):
        losses.bernoulli_log_likelihood(x[:2], logits)


def test_elbo_is_likelihood_minus_beta_kl_and_checks_inputs():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 3, 3, generator=g).round()
    logits, mu, logvar = torch.randn(2, 1, 3, 3, generator=g), torch.randn(2, 4, generator=g), torch.zeros(2, 4)
    by_hand = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1) - 0.5 * (mu**2).sum(1) * 2.0
    torch.testing.assert_close(losses.elbo(x, logits, mu, logvar, beta=2.0), by_hand)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        losses.elbo(x, logits, mu, logvar, beta=-1)
    with pytest.raises(ValueError, match="batch sizes differ"):
        losses.elbo(x, logits, mu[:1], logvar[:1])


def test_log_mean_exp_is_stable_and_iwae_is_monotone_in_k():
    a = torch.tensor([1000.0, 1000.0 + math.log(3)])
    torch.testing.assert_close(losses.log_mean_exp(a), torch.tensor(1000.0 + math.log(2)))
    # p(z)=N(0,1), p(x|z)=N(z,1) so p(x)=N(0,2); q(z|x)=N(0,1) is a poor proposal.
    x, g = 1.5, torch.Generator().manual_seed(4)
    z = torch.randn(4096, 64, generator=g)
    log_w = Normal(z, 1.0).log_prob(torch.tensor(x))  # log p(x|z) + log p(z) - log q(z|x), p(z)=q
    bounds = [losses.iwae_bound(log_w[:k].reshape(k, -1), dim=0).mean().item() for k in (1, 8, 64, 512)]
    log_px = Normal(0.0, math.sqrt(2)).log_prob(torch.tensor(x)).item()
    assert all(b1 < b2 for b1, b2 in zip(bounds, bounds[1:])) and bounds[-1] < log_px + 1e-3
    assert log_px - bounds[-1] < 0.01


def test_bits_per_dim():
    assert losses.bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        losses.bits_per_dim(1.0, num_dims=0)


def test_gan_losses_match_hand_computation():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    d_hand = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    torch.testing.assert_close(losses.d_loss_minimax(real, fake), d_hand)
    torch.testing.assert_close(losses.g_loss_saturating(fake), torch.log(1 - sig(fake)).mean())
    torch.testing.assert_close(losses.g_loss_nonsaturating(fake), -torch.log(sig(fake)).mean())
    torch.testing.assert_close(losses.d_loss_wasserstein(real, fake), fake.mean() - real.mean())
    torch.testing.assert_close(losses.g_loss_wasserstein(fake), -fake.mean())
    hinge = torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()
    torch.testing.assert_close(losses.d_loss_hinge(real, fake), hinge)
    with pytest.raises(ValueError, match="unknown GAN loss 'nonsat'.*hinge"):
        losses.gan_losses("nonsat")


def test_gradient_penalty_of_a_linear_critic():
    # f(x) = w.x has gradient w everywhere: penalty (|w| - 1)^2 whatever the interpolates.
    w = torch.tensor([3.0, 4.0])
    penalty, norms = losses.gradient_penalty(lambda x: x @ w, torch.randn(8, 2), torch.randn(8, 2))
    torch.testing.assert_close(norms, torch.full((8,), 5.0))
    torch.testing.assert_close(penalty, torch.tensor(16.0))
