"""genimg_lib.losses: each objective against an independent computation (torch.distributions,
brute-force integration over a 1-D latent, Bayes' rule on a grid, Monte Carlo, a hand computation)."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

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


def test_log_normal_diag_broadcasts_a_scalar_variance():
    x = torch.randn(3, 4)
    torch.testing.assert_close(losses.log_normal_diag(x, torch.zeros(1), torch.zeros(1)),
                               Normal(0.0, 1.0).log_prob(x).sum(1))


def test_gaussian_kl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"gaussian_kl\(mu, logvar\): shapes differ, \(2, 3\) against \(2, 4\)"):
        losses.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        losses.kl_per_dim(torch.zeros(2, 3), torch.zeros(2, 4))


def _binary(n, seed=0):
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 0.5)


def test_kl_per_dim_sums_to_gaussian_kl_and_free_bits_clamps():
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    torch.testing.assert_close(losses.kl_per_dim(mu, logvar).sum(1), losses.gaussian_kl(mu, logvar))
    x, logits = _binary(6), torch.randn(6, 1, 28, 28)
    loss, recon, kl = losses.vae_loss(x, logits, mu, logvar, beta=2.0)
    torch.testing.assert_close(loss, -losses.elbo(x, logits, mu, logvar, beta=2.0).mean())
    torch.testing.assert_close(recon, -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1).mean())
    torch.testing.assert_close(kl, losses.gaussian_kl(mu, logvar).mean())
    # free bits: a dimension whose batch-mean KL is below lambda costs exactly lambda
    zero = torch.zeros(6, 5)
    loss_fb, _, kl_fb = losses.vae_loss(x, logits, zero, zero, free_bits=0.3)
    torch.testing.assert_close(loss_fb, -losses.bernoulli_log_likelihood(x, logits).mean() + 5 * 0.3)
    assert kl_fb.item() == 0.0  # the logged KL is the true one
    # above lambda a dimension pays its own KL: free bits change nothing
    big = torch.full((6, 5), 2.0)
    torch.testing.assert_close(losses.vae_loss(x, logits, big, zero, free_bits=0.3)[0],
                               losses.vae_loss(x, logits, big, zero)[0])


def test_vae_loss_bad_arguments():
    x, logits, z = _binary(2), torch.zeros(2, 1, 28, 28), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        losses.vae_loss(x, logits, z, z, beta=-1)
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        losses.vae_loss(x, logits, z, z, free_bits=-0.1)
    with pytest.raises(ValueError, match="batch sizes differ"):
        losses.vae_loss(_binary(3), torch.zeros(3, 1, 28, 28), z, z)


# --- the GAN loss table -----------------------------------------------------------
def test_one_table_of_gan_losses():
    assert list(losses.GAN_LOSSES) == ["minimax", "non_saturating", "wasserstein_gp", "hinge"]
    assert losses.GAN_LOSSES["minimax"] == (losses.d_loss_minimax, losses.g_loss_saturating)
    assert losses.GAN_LOSSES["non_saturating"] == (losses.d_loss_minimax, losses.g_loss_nonsaturating)
    assert losses.GAN_LOSSES["wasserstein_gp"] == (losses.d_loss_wasserstein, losses.g_loss_wasserstein)
    assert losses.GAN_LOSSES["hinge"] == (losses.d_loss_hinge, losses.g_loss_wasserstein)
    for name, pair in losses.GAN_LOSSES.items():
        assert losses.gan_losses(name) == pair
    # the probability losses are exactly those whose D loss reads the output as a logit
    assert set(losses.PROBABILITY_LOSSES) == {n for n, (d, _) in losses.GAN_LOSSES.items() if d is losses.d_loss_minimax}


def test_saturating_and_non_saturating_gradients_at_a_confident_discriminator():
    """d/dl of log(1 - sigmoid(l)) is -sigmoid(l) (vanishes); of -log sigmoid(l) is sigmoid(l) - 1 (does not)."""
    l = torch.tensor([-6.0, -2.0, 0.0, 3.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.g_loss_saturating(l) * 4, l)
    (g_ns,) = torch.autograd.grad(losses.g_loss_nonsaturating(l) * 4, l)
    torch.testing.assert_close(g_sat, -torch.sigmoid(l.detach()))
    torch.testing.assert_close(g_ns, torch.sigmoid(l.detach()) - 1)


def test_gradient_penalty_matches_a_hand_computation_with_the_same_noise():
    """A quadratic critic f(x) = sum(x^2) / 2 has gradient x: the penalty is (|x_hat| - 1)^2 on known interpolates."""
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty, norms = losses.gradient_penalty(lambda x: 0.5 * x.pow(2).flatten(1).sum(1), real, fake,
                                             generator=torch.Generator().manual_seed(3))
    eps = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = eps * real + (1 - eps) * fake
    expected_norms = x_hat.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, expected_norms)
    torch.testing.assert_close(penalty, ((expected_norms - 1) ** 2).mean())
    with pytest.raises(ValueError, match="shapes differ"):
        losses.gradient_penalty(lambda x: x.sum(1), torch.zeros(3, 2), torch.zeros(4, 2))


# --- Deriving the ELBO: the pPCA closed forms ---------------------------------------------
def _model(D: int = 5, d: int = 2, N: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    mu = torch.randn(D, generator=g, dtype=torch.float64)
    sigma2 = 0.3
    z = torch.randn(N, d, generator=g, dtype=torch.float64)
    x = z @ W.T + mu + math.sqrt(sigma2) * torch.randn(N, D, generator=g, dtype=torch.float64)
    return x, W, mu, sigma2


def test_ppca_log_likelihood_matches_multivariate_normal():
    x, W, mu, sigma2 = _model()
    C = W @ W.T + sigma2 * torch.eye(W.shape[0], dtype=torch.float64)
    expected = MultivariateNormal(mu, covariance_matrix=C).log_prob(x)
    torch.testing.assert_close(losses.ppca_log_likelihood(x, W, mu, sigma2), expected)


def test_ppca_log_likelihood_matches_brute_force_integration_over_a_1d_latent():
    x, W, mu, sigma2 = _model(D=3, d=1, N=4)
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64)           # grid over the latent
    log_joint = losses.ppca_log_joint(x, z[:, None, None].expand(-1, x.shape[0], 1), W, mu, sigma2)
    dz = (z[1] - z[0]).item()
    brute = torch.logsumexp(log_joint, dim=0) + math.log(dz)            # log ∫ p(x, z) dz
    torch.testing.assert_close(losses.ppca_log_likelihood(x, W, mu, sigma2), brute, rtol=0, atol=1e-8)


def test_ppca_log_joint_matches_torch_distributions():
    x, W, mu, sigma2 = _model()
    z = torch.randn(3, x.shape[0], W.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = (
        Normal(z @ W.T + mu, math.sqrt(sigma2)).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
    )
    torch.testing.assert_close(losses.ppca_log_joint(x, z, W, mu, sigma2), expected)


def test_ppca_posterior_matches_bayes_rule_on_a_grid():
    x, W, mu, sigma2 = _model(D=4, d=1, N=3)
    mean, cov = losses.ppca_posterior(x, W, mu, sigma2)
    assert mean.shape == (3, 1) and cov.shape == (1, 1)
    z = torch.linspace(-12, 12, 100_001, dtype=torch.float64)
    log_joint = losses.ppca_log_joint(x, z[:, None, None].expand(-1, x.shape[0], 1), W, mu, sigma2)
    post = torch.softmax(log_joint, dim=0)                              # p(z | x) ∝ p(x | z) p(z), on the grid
    grid_mean = (post * z[:, None]).sum(0)
    grid_var = (post * (z[:, None] - grid_mean) ** 2).sum(0)
    torch.testing.assert_close(mean[:, 0], grid_mean, rtol=0, atol=1e-8)
    torch.testing.assert_close(cov[0, 0].expand(3), grid_var, rtol=0, atol=1e-8)


def test_ppca_posterior_matches_gaussian_conditioning_in_several_dimensions():
    """Condition the joint Gaussian of (z, x) directly: an independent route to p(z | x)."""
    x, W, mu, sigma2 = _model(D=5, d=3)
    D, d = W.shape
    C = W @ W.T + sigma2 * torch.eye(D, dtype=torch.float64)            # Cov(x); Cov(z, x) = W^T
    gain = W.T @ torch.linalg.inv(C)
    mean, cov = losses.ppca_posterior(x, W, mu, sigma2)
    torch.testing.assert_close(mean, (gain @ (x - mu).T).T)
    torch.testing.assert_close(cov, torch.eye(d, dtype=torch.float64) - gain @ W)


def test_ppca_elbo_equals_log_evidence_at_the_posterior_and_is_below_elsewhere():
    x, W, mu, sigma2 = _model()
    log_px = losses.ppca_log_likelihood(x, W, mu, sigma2)
    mean, cov = losses.ppca_posterior(x, W, mu, sigma2)
    torch.testing.assert_close(losses.ppca_elbo(x, W, mu, sigma2, mean, cov), log_px, rtol=0, atol=1e-10)
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        A = torch.randn(W.shape[1], W.shape[1], generator=g, dtype=torch.float64)
        q_cov = A @ A.T + 0.05 * torch.eye(W.shape[1], dtype=torch.float64)
        q_mean = mean + torch.randn(mean.shape, generator=g, dtype=torch.float64)
        assert (losses.ppca_elbo(x, W, mu, sigma2, q_mean, q_cov) < log_px).all()


def test_ppca_elbo_matches_a_monte_carlo_estimate():
    x, W, mu, sigma2 = _model(N=3)
    d = W.shape[1]
    q_mean = torch.zeros(3, d, dtype=torch.float64)
    q_cov = torch.tensor([[0.5, 0.1], [0.1, 0.3]], dtype=torch.float64)
    q = MultivariateNormal(q_mean, covariance_matrix=q_cov.expand(3, d, d))
    z = q.sample((200_000,))                                            # (K, N, d)
    log_w = losses.ppca_log_joint(x, z, W, mu, sigma2) - q.log_prob(z)
    mc, se = log_w.mean(0), log_w.std(0) / math.sqrt(log_w.shape[0])
    exact = losses.ppca_elbo(x, W, mu, sigma2, q_mean, q_cov)
    assert ((mc - exact).abs() < 4 * se).all(), (mc, exact, se)


def test_ppca_iwae_is_between_elbo_and_log_evidence_and_grows_with_k():
    x, W, mu, sigma2 = _model(N=4)
    log_px = losses.ppca_log_likelihood(x, W, mu, sigma2)
    d = W.shape[1]
    q = MultivariateNormal(torch.zeros(4, d, dtype=torch.float64), covariance_matrix=torch.eye(d, dtype=torch.float64))
    torch.manual_seed(0)
    bounds = []
    for k in (1, 4, 32):
        z = q.sample((2000, k))                                         # 2000 repeats of k samples
        log_w = losses.ppca_log_joint(x, z, W, mu, sigma2) - q.log_prob(z)
        bounds.append(losses.iwae_bound(log_w, dim=1).mean(0))
    assert (bounds[0] < bounds[1]).all() and (bounds[1] < bounds[2]).all() and (bounds[2] < log_px).all()


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(x=torch.zeros(3, 4, 1)), "x must be"),
        (dict(W=torch.zeros(5, 2)), "W must be"),
        (dict(mu=torch.zeros(3)), "mu must be"),
        (dict(sigma2=0.0), "sigma2 must be"),
        (dict(sigma2=-1.0), "sigma2 must be"),
    ],
)
def test_ppca_functions_reject_bad_shapes_with_clear_errors(args, match):
    kwargs = dict(x=torch.zeros(3, 4), W=torch.zeros(4, 2), mu=torch.zeros(4), sigma2=0.5)
    kwargs.update(args)
    for fn in (losses.ppca_log_likelihood, losses.ppca_posterior):
        with pytest.raises(ValueError, match=match):
            fn(**kwargs)


def test_ppca_elbo_and_joint_check_the_shapes_of_q_and_z():
    x, W, mu, sigma2 = torch.zeros(3, 4), torch.eye(4, 2), torch.zeros(4), 0.5
    with pytest.raises(ValueError, match="q_mean must be"):
        losses.ppca_elbo(x, W, mu, sigma2, torch.zeros(3, 3), torch.eye(2))
    with pytest.raises(ValueError, match="q_cov must be"):
        losses.ppca_elbo(x, W, mu, sigma2, torch.zeros(3, 2), torch.eye(3))
    with pytest.raises(ValueError, match="z must be"):
        losses.ppca_log_joint(x, torch.zeros(5, 2), W, mu, sigma2)
