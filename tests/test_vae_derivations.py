"""The pPCA (linear-Gaussian VAE) closed forms of chapter "Deriving the ELBO", each
checked against an independent computation: torch.distributions, brute-force
integration over a 1-D latent, Bayes' rule on a grid, and Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from genimg_lib import losses


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


def test_part2_exercise_checkers_accept_independent_answers_and_reject_wrong_ones():
    from torch.distributions import kl_divergence

    from genimg_lib.exercises import grade

    # 1-D latent, D = 784, w = 0.1, sigma^2 = 0.01: a = |w|^2 / sigma^2 = 784.
    a = 784 * 0.1**2 / 0.01
    assert grade("vae_autoencoders.1", math.sqrt(0.01 / (784 * 0.01 + 0.01)))[0] == "correct"
    assert grade("vae_autoencoders.1", 1.0)[0] == "wrong"
    # At x = mu, p(x|z) = c exp(-a z^2 / 2): E[p] = c / sqrt(1 + a), E[p^2] = c^2 / sqrt(1 + 2a).
    rho = (1 + a) / math.sqrt(1 + 2 * a) - 1
    assert grade("vae_autoencoders.2", rho / 0.01)[0] == "correct"
    assert grade("vae_autoencoders.2", rho)[0] == "wrong"
    assert grade("vae_elbo.1", 0.5 * ((1 + 1 - 0 - 1) + (0.25 + math.exp(-1) + 1 - 1)))[0] == "correct"
    assert grade("vae_elbo.1", 1.618)[0] == "wrong"  # forgot the 1/2
    x, W, mu, sigma2 = _model(N=1)
    mean, cov = losses.ppca_posterior(x, W, mu, sigma2)
    d = W.shape[1]
    gap = kl_divergence(
        MultivariateNormal(torch.zeros(d, dtype=torch.float64), covariance_matrix=torch.eye(d, dtype=torch.float64)),
        MultivariateNormal(mean[0], covariance_matrix=cov),
    ).item()
    assert grade("vae_elbo.2", (W, mu, sigma2, x[0], gap))[0] == "correct"
    assert grade("vae_elbo.2", (W, mu, sigma2, x[0], gap + 0.1))[0] == "wrong"
    assert grade("vae_elbo.3", (1 / math.sqrt(2), 392 * math.log(math.pi)))[0] == "correct"
    assert grade("vae_elbo.3", (1.0, 392 * math.log(2 * math.pi)))[0] == "wrong"
