"""genimg_lib.diffusion against independent computations: the forward chain run step by step,
Gaussian conditioning by hand, torch.distributions' KL and log-densities, and the exact denoiser of
Gaussian data, whose negative ELBO must approach the true NLL from above as T grows."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from genimg_lib import diffusion as dm
from genimg_lib.data import make_toy


# ---------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------
def test_linear_schedule_quantities():
    s = dm.linear_schedule(10, 1e-3, 0.3)
    assert s.num_steps == 10 and s.betas.dtype == torch.float64
    torch.testing.assert_close(s.betas, torch.linspace(1e-3, 0.3, 10, dtype=torch.float64))
    manual = [1.0]
    for b in s.betas.tolist():
        manual.append(manual[-1] * (1 - b))
    torch.testing.assert_close(s.alpha_bars, torch.tensor(manual[1:], dtype=torch.float64))
    torch.testing.assert_close(s.alpha_bars_prev, torch.tensor(manual[:-1], dtype=torch.float64))
    t = 5  # posterior variance (1 - abar_{t-1}) / (1 - abar_t) * beta_t
    assert s.posterior_variances[t - 1].item() == pytest.approx((1 - manual[t - 1]) / (1 - manual[t]) * s.betas[t - 1].item())
    assert s.posterior_variances[0].item() == 0.0


def test_log_snr_schedule_is_linear_in_log_snr():
    s = dm.log_snr_schedule(50, 6.0, -4.0)
    log_snr = torch.log(s.alpha_bars / (1 - s.alpha_bars))
    torch.testing.assert_close(log_snr, 6.0 + torch.arange(1, 51, dtype=torch.float64) / 50 * (-10.0))
    assert ((s.betas > 0) & (s.betas < 1)).all()
    assert dm.log_snr_schedule(100).alpha_bars[-1].item() == pytest.approx(1 / (1 + math.exp(10)))


@pytest.mark.parametrize("call, match", [
    (lambda: dm.make_schedule([0.1, 1.0]), "strictly between 0 and 1"),
    (lambda: dm.make_schedule([0.0, 0.1]), "strictly between 0 and 1"),
    (lambda: dm.make_schedule([]), "at least one value"),
    (lambda: dm.linear_schedule(0), "num_steps must be a positive integer"),
    (lambda: dm.linear_schedule(10, 0.1, 1.5), "below 1"),
    (lambda: dm.log_snr_schedule(10, -1.0, 1.0), "log_snr_min must be below log_snr_max"),
])
def test_bad_schedules(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------
# the forward process
# ---------------------------------------------------------------------------
def test_closed_form_q_matches_the_chain_run_step_by_step():
    s = dm.linear_schedule(20, 1e-3, 0.2)
    n, t = 200_000, 12
    x0 = torch.tensor([[1.5, -2.0]], dtype=torch.float64).repeat(n, 1)
    g = torch.Generator().manual_seed(0)
    x = x0.clone()
    for step in range(1, t + 1):  # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, one step at a time
        beta = s.betas[step - 1]
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    mean, var = dm.q_mean_var(x0[:1], t, s)
    se = (var.sqrt() / math.sqrt(n)).item()
    torch.testing.assert_close(x.mean(0), mean[0], atol=5 * se, rtol=0)
    torch.testing.assert_close(x.var(0), var[0].repeat(2), atol=0.01 * var.item(), rtol=0)
    # q_sample in one step gives the same distribution
    one = dm.q_sample(x0, t, s, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    torch.testing.assert_close(one.mean(0), mean[0], atol=5 * se, rtol=0)


def test_posterior_is_gaussian_conditioning():
    s = dm.linear_schedule(30, 1e-3, 0.25)
    x0 = torch.tensor([[0.7, -1.1]], dtype=torch.float64)
    xt = torch.tensor([[0.2, 0.4]], dtype=torch.float64)
    for t in (2, 9, 30):
        ab_prev, ab, alpha = (s.alpha_bars_prev[t - 1].item(), s.alpha_bars[t - 1].item(), s.alphas[t - 1].item())
        # joint of (x_{t-1}, x_t) given x0: x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev), x_t = sqrt(alpha) x_{t-1} + noise
        m1, v1 = math.sqrt(ab_prev) * x0, 1 - ab_prev
        m2, v2, c12 = math.sqrt(alpha) * m1, alpha * v1 + (1 - alpha), math.sqrt(alpha) * v1
        mean_hand, var_hand = m1 + c12 / v2 * (xt - m2), v1 - c12**2 / v2
        mean, var = dm.q_posterior(x0, xt, t, s)
        torch.testing.assert_close(mean, mean_hand)
        assert var.item() == pytest.approx(var_hand)
    mean, var = dm.q_posterior(x0, xt, 1, s)  # t = 1: the posterior is the point x0
    torch.testing.assert_close(mean, x0)
    assert var.item() == 0.0


# ---------------------------------------------------------------------------
# the ELBO's weights: KL between the Gaussians = lambda_t * ||eps - eps_pred||^2
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", [dm.linear_schedule(40, 1e-4, 0.3), dm.log_snr_schedule(40)])
def test_each_kl_term_is_the_weighted_noise_error(schedule):
    g = torch.Generator().manual_seed(1)
    n, d = 64, 2
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64)
    eps_pred = eps + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64)  # an imperfect prediction
    for t in (2, 7, 25, 40):
        xt = dm.q_sample(x0, t, schedule, eps)
        post_mean, post_var = dm.q_posterior(x0, xt, t, schedule)
        mu = dm.p_mean(eps_pred, xt, t, schedule)
        sigma2 = dm.p_variance(t, schedule).item()
        kl = kl_divergence(Normal(post_mean, post_var.sqrt()), Normal(mu, math.sqrt(sigma2))).sum(1)
        weighted = dm.elbo_weight(t, schedule) * (eps - eps_pred).pow(2).sum(1)
        torch.testing.assert_close(kl, weighted)
    # t = 1: the decoder's negative log-likelihood, with sigma_1^2 = beta_1
    x1 = dm.q_sample(x0, 1, schedule, eps)
    mu = dm.p_mean(eps_pred, x1, 1, schedule)
    nll = -Normal(mu, schedule.betas[0].sqrt()).log_prob(x0).sum(1)
    expected = dm.elbo_weight(1, schedule) * (eps - eps_pred).pow(2).sum(1) + d / 2 * math.log(2 * math.pi * schedule.betas[0])
    torch.testing.assert_close(nll, expected)
    assert dm.elbo_weight(1, schedule).item() == pytest.approx(1 / (2 * schedule.alphas[0].item()))


def test_the_true_noise_gives_the_posterior_mean_and_zero_kl():
    s = dm.log_snr_schedule(20)
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    t = torch.randint(2, 21, (8,), generator=g)
    xt = dm.q_sample(x0, t, s, eps)
    torch.testing.assert_close(dm.p_mean(eps, xt, t, s), dm.q_posterior(x0, xt, t, s)[0])


def test_prior_kl_matches_torch():
    s = dm.linear_schedule(10, 1e-3, 0.2)
    x0 = torch.tensor([[1.0, -2.0], [0.0, 0.5]], dtype=torch.float64)
    mean, var = dm.q_mean_var(x0, 10, s)
    expected = kl_divergence(Normal(mean, var.sqrt().expand_as(mean)), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(dm.prior_kl(x0, s), expected)


class ExactGaussianDenoiser(nn.Module):
    """E[eps | x_t] for data N(0, s^2 I): sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, schedule, s):
        super().__init__()
        self.schedule, self.s, self.num_steps, self.data_dim = schedule, s, schedule.num_steps, 2
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, xt, t):
        ab = self.schedule.alpha_bars[t - 1].to(xt.dtype)[:, None]
        return (1 - ab).sqrt() * xt / (ab * self.s**2 + 1 - ab)


def test_negative_elbo_of_the_exact_denoiser_approaches_the_nll_from_above():
    s_data = 0.7
    x = s_data * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nll = -Normal(0.0, s_data).log_prob(x).sum(1).mean().item()
    gaps = {}
    for T in (100, 1000):
        schedule = dm.log_snr_schedule(T)
        out = dm.negative_elbo(ExactGaussianDenoiser(schedule, s_data), x, schedule, torch.Generator().manual_seed(1))
        torch.testing.assert_close(out["nelbo"], out["prior"] + out["diffusion"] + out["constant"])
        assert out["per_step"].shape == (T,)
        gaps[T] = out["nelbo"].mean().item() - nll
    # the bound is loose with large steps (about 0.8 nats at T = 100) and tight with small ones
    assert 0.5 < gaps[100] < 1.2, gaps
    assert 0.0 < gaps[1000] < 0.15, gaps


# ---------------------------------------------------------------------------
# the model, the loss, sampling, training
# ---------------------------------------------------------------------------
def test_noise_predictor_shapes_and_embedding():
    model = dm.NoisePredictor(num_steps=50)
    t = torch.tensor([1, 25, 50])
    assert model(torch.zeros(3, 2), t).shape == (3, 2)
    emb = dm.timestep_embedding(t, 50, 16)
    assert emb.shape == (3, 16) and torch.allclose(emb.pow(2)[:, :8] + emb.pow(2)[:, 8:], torch.ones(3, 8))
    with pytest.raises(ValueError, match="dim must be even"):
        dm.timestep_embedding(t, 50, 15)
    with pytest.raises(ValueError, match=r"expected points of shape \(N, 2\)"):
        model(torch.zeros(3, 3), t)


def test_diffusion_loss_is_the_mean_weighted_noise_error():
    s = dm.log_snr_schedule(30)
    torch.manual_seed(0)
    model = dm.NoisePredictor(num_steps=30)
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    for weighting in ("simple", "elbo"):
        loss = dm.diffusion_loss(model, x0, s, torch.Generator().manual_seed(4), weighting)
        g = torch.Generator().manual_seed(4)  # the same draws, by hand
        t = torch.randint(1, 31, (16,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        err = (eps - model(dm.q_sample(x0, t, s, eps), t)).pow(2).sum(1)
        w = 30 * dm.elbo_weight(t, s).float() if weighting == "elbo" else torch.ones(16)
        torch.testing.assert_close(loss, (w * err).mean())


def test_sampling_the_exact_denoiser_recovers_the_data_variance():
    schedule = dm.log_snr_schedule(200)
    x, path = dm.sample(ExactGaussianDenoiser(schedule, 0.7).float(), 20_000, schedule,
                        torch.Generator().manual_seed(0), record_steps=(200, 100, 0))
    assert sorted(path) == [0, 100, 200] and torch.equal(path[0], x)
    assert path[200].std().item() == pytest.approx(1.0, abs=0.02)
    assert x.std(0).tolist() == pytest.approx([0.7, 0.7], abs=0.03)
    again, _ = dm.sample(ExactGaussianDenoiser(schedule, 0.7).float(), 20_000, schedule, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_training_lowers_the_loss_and_the_elbo_is_finite():
    toy = make_toy("moons")
    s = dm.log_snr_schedule(50)
    torch.manual_seed(0)
    model = dm.NoisePredictor(num_steps=50, hidden_dim=64)
    x = toy.sample(256, seed=1)
    before = dm.negative_elbo(model, x, s, torch.Generator().manual_seed(0))["nelbo"].mean().item()
    history = dm.train_diffusion(model, toy, s, 300, batch_size=128, lr=2e-3, show_progress=False)
    after = dm.negative_elbo(model, x, s, torch.Generator().manual_seed(0))["nelbo"].mean().item()
    assert history.steps("loss")[0] == 1 and history.steps("loss")[-1] == 300
    assert sum(history["loss"][-5:]) < sum(history["loss"][:5]) and after < before


@pytest.mark.parametrize("call, error, match", [
    (lambda s, m: dm.q_mean_var(torch.zeros(3, 2), 0, s), ValueError, r"steps t must lie in 1..T = 1..10"),
    (lambda s, m: dm.q_mean_var(torch.zeros(3, 2), 11, s), ValueError, r"1..T = 1..10, got values in \[11, 11\]"),
    (lambda s, m: dm.q_mean_var(torch.zeros(3, 2), 2.5, s), TypeError, "t must be an integer step"),
    (lambda s, m: dm.q_mean_var(torch.zeros(3, 2), torch.tensor([1, 2]), s), ValueError, "one step per point: 3, got 2"),
    (lambda s, m: dm.q_mean_var(torch.zeros(3), 1, s), ValueError, r"x0 must have shape \(N, d\)"),
    (lambda s, m: dm.q_mean_var(torch.full((2, 2), float("nan")), 1, s), ValueError, "finite"),
    (lambda s, m: dm.q_sample(torch.zeros(3, 2), 1, s, torch.zeros(3, 1)), ValueError, r"noise must be a tensor of the shape of x0 \(3, 2\)"),
    (lambda s, m: dm.q_posterior(torch.zeros(3, 2), torch.zeros(2, 2), 1, s), ValueError, "same shape"),
    (lambda s, m: dm.diffusion_loss(m, torch.zeros(3, 2), s, weighting="vlb"), ValueError, "weighting must be 'simple' or 'elbo'"),
    (lambda s, m: dm.diffusion_loss(dm.NoisePredictor(num_steps=20), torch.zeros(3, 2), s), ValueError, "built for T = 20"),
    (lambda s, m: dm.diffusion_loss("model", torch.zeros(3, 2), s), TypeError, "model must be a noise predictor"),
    (lambda s, m: dm.train_diffusion(m, torch.zeros(5, 2), s, 1), TypeError, "toy must be a ToyDistribution"),
    (lambda s, m: dm.train_diffusion(m, make_toy("moons"), s, 1, lr=0), ValueError, "lr must be"),
    (lambda s, m: dm.sample(m, 0, s), ValueError, "num_samples must be a positive integer"),
    (lambda s, m: dm.sample(m, 5, s, record_steps=(11,)), ValueError, r"record_steps must be integers in 0..T = 0..10"),
])
def test_bad_inputs_say_what_was_expected(call, error, match):
    s = dm.log_snr_schedule(10)
    with pytest.raises(error, match=match):
        call(s, dm.NoisePredictor(num_steps=10))
