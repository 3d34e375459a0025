"""genimg_lib.troubleshoot against hand-worked examples, brute force and torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from genimg_lib import troubleshoot as ts
from genimg_lib.models import VAE, MLPDiscriminator, MLPGenerator
from genimg_lib.train import History, NonFiniteLossError, train_vae


# ---------------------------------------------------------------------------
# run_guarded
# ---------------------------------------------------------------------------
def test_run_guarded_records_where_the_guard_stopped_the_run():
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = VAE(z_dim=4, arch="mlp", hidden_dims=[32])
    run = ts.run_guarded(lambda cb: train_vae(model, num_steps=50, lr=1.0, batch_size=32, x_train=x, callback=cb,
                                              callback_every=1, show_progress=False))
    assert run.diverged and run.stopped_at == run.steps_done + 1 and run.steps_done < 50
    assert run.error in ("ExplodingLossError", "NonFiniteLossError") and f"at step {run.stopped_at}" in run.message
    assert isinstance(run.history, History)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the guard stopped before the bad update
    torch.manual_seed(0)
    model = VAE(z_dim=4, arch="mlp", hidden_dims=[32])
    ok = ts.run_guarded(lambda cb: train_vae(model, num_steps=5, lr=1e-3, batch_size=32, x_train=x, callback=cb,
                                             callback_every=1, show_progress=False))
    assert not ok.diverged and ok.steps_done == 5 and ok.stopped_at is None and ok.error == ""


def test_run_guarded_with_a_fake_loop():
    def loop(cb):
        h = History()
        for step in (1, 2, 3):
            h.log(step, loss=1.0)
            cb(step, h)
        raise NonFiniteLossError("loss 'loss' became nan at step 4")

    run = ts.run_guarded(loop)
    assert (run.steps_done, run.stopped_at, run.error) == (3, 4, "NonFiniteLossError")
    with pytest.raises(ZeroDivisionError):  # other errors are not swallowed
        ts.run_guarded(lambda cb: 1 / 0)
    with pytest.raises(TypeError, match="train must be a function"):
        ts.run_guarded("not a loop")


# ---------------------------------------------------------------------------
# grey_fraction, isolated_pixels
# ---------------------------------------------------------------------------
def test_grey_fraction_by_hand():
    x = torch.zeros(3, 1, 2, 3)
    x[0, 0] = torch.tensor([[0.0, 0.05, 0.5], [0.95, 1.0, 0.0]])  # ink: 0.5, 0.95, 1.0; grey: 0.5
    x[1] = 0.5  # all grey
    # x[2]: no ink at all
    torch.testing.assert_close(ts.grey_fraction(x), torch.tensor([1 / 3, 1.0, 0.0]))
    binary = (torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    assert ts.grey_fraction(binary).eq(0).all()


def _isolated_brute_force(img: torch.Tensor, threshold: float = 0.5) -> int:
    on = img[0] > threshold
    h, w = on.shape
    count = 0
    for i in range(h):
        for j in range(w):
            if on[i, j] and not any(on[a, b] for a in range(max(0, i - 1), min(h, i + 2))
                                    for b in range(max(0, j - 1), min(w, j + 2)) if (a, b) != (i, j)):
                count += 1
    return count


def test_isolated_pixels_against_brute_force():
    x = (torch.rand(5, 1, 9, 9, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    assert ts.isolated_pixels(x).tolist() == [_isolated_brute_force(img) for img in x]
    line = torch.zeros(1, 1, 5, 5)
    line[0, 0, 2, 1:4] = 1.0  # a stroke: no isolated pixel
    single = torch.zeros(1, 1, 5, 5)
    single[0, 0, 0, 0] = 1.0
    assert ts.isolated_pixels(torch.cat([line, single])).tolist() == [0, 1]


@pytest.mark.parametrize("call, match", [
    (lambda: ts.grey_fraction(torch.full((1, 1, 4, 4), 2.0)), r"\[0, 1\]"),
    (lambda: ts.grey_fraction(torch.zeros(1, 1, 4, 4), low=0.9, high=0.1), "need 0 <= low < high <= 1"),
    (lambda: ts.isolated_pixels(torch.full((1, 1, 4, 4), -1.0)), r"\[0, 1\]"),
])
def test_image_measures_refuse_bad_images(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------
# the Gaussian decoder
# ---------------------------------------------------------------------------
def test_gaussian_vae_loss_is_the_negative_elbo_and_a_beta_vae():
    g = torch.Generator().manual_seed(2)
    x, mean = torch.rand(4, 1, 28, 28, generator=g), torch.rand(4, 1, 28, 28, generator=g)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g) * 0.3
    sigma = 0.3
    loss, recon, kl = ts.gaussian_vae_loss(x, mean, mu, logvar, sigma)
    recon_torch = -Normal(mean, sigma).log_prob(x).flatten(1).sum(1)
    kl_torch = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(recon, recon_torch.mean())
    torch.testing.assert_close(kl, kl_torch.mean())
    torch.testing.assert_close(loss, (recon_torch + kl_torch).mean())
    # without its constant, the loss is (SSE + beta KL) / (2 sigma^2) with beta = 2 sigma^2
    sse = (x - mean).pow(2).flatten(1).sum(1).mean()
    const = 0.5 * 784 * math.log(2 * math.pi * sigma**2)
    torch.testing.assert_close(loss - const, (sse + 2 * sigma**2 * kl) / (2 * sigma**2))
    with pytest.raises(ValueError, match="sigma must be"):
        ts.gaussian_vae_loss(x, mean, mu, logvar, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        ts.gaussian_vae_loss(x, mean[:, :, :14], mu, logvar, 0.3)


def test_train_gaussian_vae_runs_and_logs():
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = VAE(z_dim=4, arch="mlp", hidden_dims=[32])
    h = ts.train_gaussian_vae(model, 0.2, 20, batch_size=32, x_train=x)
    assert set(h) == {"loss", "recon", "kl", "sse"} and h.steps("loss") == [1, 10, 20] and not model.training
    assert h["sse"][-1] < h["sse"][0]
    with pytest.raises(ValueError, match="sigma must be"):
        ts.train_gaussian_vae(model, -1.0, 5, x_train=x)


# ---------------------------------------------------------------------------
# the aggregate posterior
# ---------------------------------------------------------------------------
def test_aggregate_posterior_density_matches_a_torch_mixture():
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) * 0.5
    z = torch.randn(700, 3, generator=g) * 2
    mixture = MixtureSameFamily(Categorical(torch.ones(50)), Independent(Normal(mu, (0.5 * logvar).exp()), 1))
    torch.testing.assert_close(ts.aggregate_posterior_log_density(z, mu, logvar, chunk=128), mixture.log_prob(z).double(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="same d"):
        ts.aggregate_posterior_log_density(z[:, :2], mu, logvar)
    with pytest.raises(ValueError, match="z must be a non-empty tensor"):
        ts.aggregate_posterior_log_density(torch.zeros(0, 3), mu, logvar)


# ---------------------------------------------------------------------------
# compute
# ---------------------------------------------------------------------------
def test_linear_macs_by_hand():
    vae = VAE(z_dim=16, arch="mlp", hidden_dims=[256])
    assert ts.linear_macs(vae) == 784 * 256 + 256 * 32 + 16 * 256 + 256 * 784
    deep = VAE(z_dim=16, arch="mlp", hidden_dims=[256] * 4)
    assert ts.linear_macs(deep) == ts.linear_macs(vae) + 2 * 3 * 256 * 256
    g, d = MLPGenerator(z_dim=2, hidden_dim=8, num_layers=3), MLPDiscriminator(2, 8, 3)
    assert ts.linear_macs(g) == 2 * 8 + 8 * 8 + 8 * 2 and ts.linear_macs(d) == 2 * 8 + 8 * 8 + 8 * 1
    with pytest.raises(ValueError, match="convolutions"):
        ts.linear_macs(VAE(z_dim=4, arch="conv"))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        ts.linear_macs("vae")


def test_steps_at_equal_compute():
    assert ts.steps_at_equal_compute(500, 413_696, 806_912) == 256
    assert ts.steps_at_equal_compute(1, 10, 1_000) == 1  # at least one step
    with pytest.raises(ValueError, match="macs must be a positive integer"):
        ts.steps_at_equal_compute(10, 5, 0)
