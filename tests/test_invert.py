"""genimg_lib.invert: inversion against closed forms (least squares and ridge for a linear decoder),
Adam written out by hand, restarts and batching that change nothing they should not, the inpainting
contract (observed pixels kept exactly, missing ones never read), PSNR by hand, the nearest-neighbour
baseline by brute force, the median filter by numpy, the typical set against scipy's chi quantiles,
and a clear error for each bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from genimg_lib import invert as inv
from genimg_lib.models import DCGAN, VAE, DCGANGenerator

D, P = 5, 28 * 28  # latent size and pixels of the toy linear decoder


def linear_decoder(seed: int = 0, dtype=torch.float64):
    """g(z) = W z + b with a fixed, seeded W (784 x 5) small enough that images stay inside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    W = 0.02 * torch.randn(P, D, generator=g, dtype=dtype)
    b = torch.full((P,), 0.5, dtype=dtype)

    def decoder(z: torch.Tensor) -> torch.Tensor:
        return (z @ W.T + b).view(-1, 1, 28, 28)

    return decoder, W, b


def images_from(decoder, z: torch.Tensor, noise: float = 0.0, seed: int = 1) -> torch.Tensor:
    x = decoder(z)
    if noise:
        x = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    assert 0 <= x.min() and x.max() <= 1
    return x


def small_vae(z_dim: int = 4) -> VAE:
    torch.manual_seed(0)
    return VAE(z_dim=z_dim, arch="mlp", hidden_dims=(16,)).eval()


# ---------------------------------------------------------------------------
# Inversion by optimization against closed forms
# ---------------------------------------------------------------------------
def test_recovers_the_known_code_of_a_linear_decoder():
    """Noise-free images of a linear decoder: the unique minimiser is the true code (to 1e-6)."""
    decoder, W, b = linear_decoder()
    z_true = torch.randn(3, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = images_from(decoder, z_true)
    result = inv.invert_optimize(decoder, x, z_dim=D, num_steps=1500, lr=0.05, seed=3)
    torch.testing.assert_close(result.z, z_true, atol=1e-6, rtol=0)
    assert result.loss.max() < 1e-10


def test_noisy_images_give_the_least_squares_code_and_the_prior_gives_ridge():
    """With noise the answer is lstsq(W, x - b); with the prior term, (W'W + lambda/2 I)^-1 W'(x - b)."""
    decoder, W, b = linear_decoder()
    z_true = torch.randn(2, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = images_from(decoder, z_true, noise=0.02)
    target = (x.flatten(1) - b).T  # (P, N)
    z_ls = torch.linalg.lstsq(W, target).solution.T
    result = inv.invert_optimize(decoder, x, z_dim=D, num_steps=1500, lr=0.05)
    torch.testing.assert_close(result.z, z_ls, atol=1e-6, rtol=0)
    assert (z_ls - z_true).abs().max() > 1e-3  # the noise moved the answer: the test tells them apart
    lam = 0.01
    z_ridge = torch.linalg.solve(W.T @ W + lam / 2 * torch.eye(D, dtype=W.dtype), W.T @ target).T
    result = inv.invert_optimize(decoder, x, z_dim=D, num_steps=1500, lr=0.05, prior_weight=lam)
    torch.testing.assert_close(result.z, z_ridge, atol=1e-6, rtol=0)
    assert (z_ridge - z_ls).abs().max() > 1e-3


def test_masked_inversion_is_least_squares_on_the_observed_pixels():
    decoder, W, b = linear_decoder()
    z_true = torch.randn(2, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = images_from(decoder, z_true, noise=0.02)
    mask = inv.make_mask("left", 2).double()
    rows = mask[0].flatten().bool()
    z_ls = torch.linalg.lstsq(W[rows], (x.flatten(1)[:, rows] - b[rows]).T).solution.T
    result = inv.invert_optimize(decoder, x, mask=mask, z_dim=D, num_steps=1500, lr=0.05)
    torch.testing.assert_close(result.z, z_ls, atol=1e-6, rtol=0)
    z_full = torch.linalg.lstsq(W, (x.flatten(1) - b).T).solution.T
    assert (z_full - z_ls).abs().max() > 1e-3


def test_the_objective_and_adam_written_out_by_hand():
    """inversion_loss is the formula; three steps of invert_optimize are three hand-written Adam steps."""
    decoder, W, b = linear_decoder()
    x = images_from(decoder, torch.zeros(2, D, dtype=torch.float64) + 0.3, noise=0.05)
    mask = inv.make_mask("centre", 2).double()
    lam, lr, beta1, beta2, eps = 0.5, 0.1, 0.9, 0.999, 1e-8
    z = torch.randn(2, D, generator=torch.Generator().manual_seed(7)).double()  # the library's start
    m = torch.zeros_like(z)
    v = torch.zeros_like(z)
    for t in range(1, 4):
        residual = mask.flatten(1) * ((z @ W.T + b) - x.flatten(1))  # (N, P)
        loss = (residual**2).sum(1) + lam / 2 * (z**2).sum(1)
        if t == 1:
            torch.testing.assert_close(inv.inversion_loss(decoder(z), x, z, mask, lam), loss)
        grad = 2 * residual @ W + lam * z  # d/dz of the loss (the mask is 0/1)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        z = z - lr * m_hat / (v_hat.sqrt() + eps)
    result = inv.invert_optimize(decoder, x, mask=mask, z_dim=D, num_steps=3, lr=lr, prior_weight=lam, seed=7)
    torch.testing.assert_close(result.z, z)
    assert result.history.steps("loss") == [0, 1, 2, 3]


def test_batching_and_restarts_are_separate_optimizations_and_the_best_start_is_kept():
    vae = small_vae()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    together = inv.invert_optimize(vae, x, num_steps=20, num_restarts=4, seed=11)
    # every start of every image, run alone from the same start, ends at the same code
    g = torch.Generator().manual_seed(11)
    starts = torch.stack([torch.randn(3, vae.z_dim, generator=g) for _ in range(4)])  # start by start
    for r in (0, 3):
        for i in (0, 2):
            alone = inv.invert_optimize(vae, x[i : i + 1], num_steps=20, z_init=starts[r, i : i + 1])
            torch.testing.assert_close(alone.z[0], together.z_all[r, i], atol=1e-5, rtol=1e-5)
    # the kept start is the one with the lowest final objective, recomputed here
    recomputed = inv.inversion_loss(torch.sigmoid(vae.decode(together.z_all.flatten(0, 1))),
                                    x.repeat(4, 1, 1, 1), together.z_all.flatten(0, 1)).view(4, 3)
    torch.testing.assert_close(together.loss_all, recomputed.detach())
    best = recomputed.argmin(0)
    torch.testing.assert_close(together.z, together.z_all[best, torch.arange(3)])
    torch.testing.assert_close(together.loss, recomputed.min(0).values.detach())
    # one start is the first of the four (same seed): more starts can only lower the objective
    one = inv.invert_optimize(vae, x, num_steps=20, num_restarts=1, seed=11)
    torch.testing.assert_close(one.z, together.z_all[0])
    assert (together.loss <= one.loss + 1e-6).all() and (together.loss < one.loss - 1e-6).any()


def test_the_models_weights_get_no_gradient_and_snapshots_are_the_best_starts_codes():
    vae = small_vae()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    result = inv.invert_optimize(vae, x, num_steps=5, num_restarts=2, snapshot_steps=[0, 5])
    assert all(p.grad is None for p in vae.parameters())
    assert sorted(result.snapshots) == [0, 5]
    torch.testing.assert_close(result.snapshots[5], result.z)
    g = torch.Generator().manual_seed(0)
    starts = torch.stack([torch.randn(2, vae.z_dim, generator=g) for _ in range(2)])
    assert any(torch.equal(result.snapshots[0][i], starts[r, i]) for i in range(2) for r in range(2))
    assert len(result.history["loss"]) == 6 and result.history["loss"][-1] <= result.history["loss"][0]


def test_hybrid_starts_at_the_encoders_code():
    vae = small_vae()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    mu, _ = vae.encode(x)
    enc = inv.invert_encoder(vae, vae, x)
    torch.testing.assert_close(enc.z, mu.detach())
    torch.testing.assert_close(enc.x_hat, torch.sigmoid(vae.decode(mu)).detach())
    hybrid = inv.invert_hybrid(vae, vae, x, num_steps=10, snapshot_steps=[0])
    torch.testing.assert_close(hybrid.snapshots[0], mu.detach())
    torch.testing.assert_close(hybrid.history["loss"][0], enc.loss.mean().item())
    assert (hybrid.loss < enc.loss).all()


# ---------------------------------------------------------------------------
# Sampling the posterior by Langevin dynamics
# ---------------------------------------------------------------------------
def test_langevin_samples_a_linear_gaussian_posterior_with_the_known_ula_bias():
    """g(z) = W z + b on 8x8 images: the posterior is Gaussian with precision P = W'W / s^2 + I and
    mean P^-1 W'(x - b) / s^2. Unadjusted Langevin with step eta has the same mean and, along each
    eigenvector of P (eigenvalue p), the variance 2 / (p (2 - eta p)) instead of 1 / p."""
    g = torch.Generator().manual_seed(0)
    W = 0.1 * torch.randn(64, 3, generator=g, dtype=torch.float64)
    b = torch.full((64,), 0.5, dtype=torch.float64)

    def decoder(z):
        return (z @ W.T + b).view(-1, 1, 8, 8)

    sigma = 0.2
    x = decoder(torch.tensor([[1.0, -0.5, 0.3]], dtype=torch.float64))
    precision = W.T @ W / sigma**2 + torch.eye(3, dtype=torch.float64)
    eta = 0.6 / torch.linalg.eigvalsh(precision).max().item()  # stable below 2 / p_max
    mean = torch.linalg.solve(precision, W.T @ (x.flatten() - b)) / sigma**2
    samples = inv.sample_posterior(decoder, x, noise_std=sigma, num_samples=20000, num_steps=300,
                                   step_size=eta, z_dim=3).z[:, 0]  # (20000, 3)
    assert samples.dtype == torch.float64
    torch.testing.assert_close(samples.mean(0), mean, atol=0.03, rtol=0)
    p, V = torch.linalg.eigh(precision)
    var_along = ((samples - samples.mean(0)) @ V).var(0)  # the sample variance along each eigenvector
    ula = 2 / (p * (2 - eta * p))
    torch.testing.assert_close(var_along, ula, rtol=0.05, atol=0)
    assert (var_along[-1] * p[-1] - 1) > 0.2  # and it is measurably wider than the exact posterior


def test_posterior_samples_ignore_the_missing_pixels_and_are_seeded():
    vae = small_vae()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    mask = inv.make_mask("left", 2)
    a = inv.sample_posterior(vae, x, mask, num_samples=3, num_steps=5, seed=4)
    other = torch.where(mask.bool(), x, torch.rand(x.shape, generator=torch.Generator().manual_seed(1)))
    b = inv.sample_posterior(vae, other, mask, num_samples=3, num_steps=5, seed=4)
    assert torch.equal(a.z, b.z) and a.z.shape == (3, 2, 4) and a.x_hat.shape == (3, 2, 1, 28, 28)
    c = inv.sample_posterior(vae, x, mask, num_samples=3, num_steps=5, seed=5)
    assert not torch.equal(a.z, c.z)
    torch.testing.assert_close(a.x_hat, torch.sigmoid(vae.decode(a.z.flatten(0, 1))).view(3, 2, 1, 28, 28))
    u = inv.inversion_loss(a.x_hat.flatten(0, 1), x.repeat(3, 1, 1, 1), a.z.flatten(0, 1), mask.repeat(3, 1, 1, 1),
                           2 * 0.3**2) / (2 * 0.3**2)
    torch.testing.assert_close(a.energy, u.view(3, 2))
    assert a.history.steps("energy") == list(range(6))


# ---------------------------------------------------------------------------
# Inpainting and denoising
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", inv.MASK_KINDS)
def test_inpainting_keeps_the_observed_pixels_exactly_and_never_reads_the_missing_ones(kind):
    vae = small_vae()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    mask = inv.make_mask(kind, 3, seed=5)
    completion, inversion = inv.inpaint(vae, x, mask, num_steps=10, num_restarts=2, prior_weight=1.0)
    observed = mask.expand_as(x).bool()
    assert torch.equal(completion[observed], x[observed])
    assert torch.equal(completion[~observed], inversion.x_hat.detach()[~observed])
    other = torch.where(observed, x, torch.rand(x.shape, generator=torch.Generator().manual_seed(9)))
    completion2, inversion2 = inv.inpaint(vae, other, mask, num_steps=10, num_restarts=2, prior_weight=1.0)
    assert torch.equal(inversion2.z, inversion.z) and torch.equal(completion2[~observed], completion[~observed])


def test_baseline_completions_keep_the_observed_pixels_and_fill_as_stated():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    train = torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    mask = inv.make_mask("random", 4, seed=2)
    observed = mask.expand_as(x).bool()
    mean_fill = inv.fill_mean(x, mask, train)
    assert torch.equal(mean_fill[observed], x[observed])
    torch.testing.assert_close(mean_fill[~observed], train.mean(0).expand_as(x)[~observed])
    nearest = inv.fill_nearest(x, mask, train)
    index = inv.nearest_neighbours(x, mask, train)
    assert torch.equal(nearest[observed], x[observed])
    assert torch.equal(nearest[~observed], train[index][~observed])


def test_nearest_neighbours_against_brute_force():
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    train = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    train[13] = x[2] * 0.9  # a near copy of image 2 on every pixel
    for kind in inv.MASK_KINDS:
        mask = inv.make_mask(kind, 7, seed=3)
        xs, ts, ms = x.numpy().reshape(7, -1), train.numpy().reshape(50, -1), mask.numpy().reshape(7, -1)
        brute = [int(np.argmin([((ms[i] * (ts[j] - xs[i])) ** 2).sum() for j in range(50)])) for i in range(7)]
        assert inv.nearest_neighbours(x, mask, train, batch_size=3).tolist() == brute
        assert brute[2] == 13


def test_denoise_is_inversion_with_a_full_mask_and_the_noise_is_seeded_and_clipped():
    vae = small_vae()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    noisy = inv.add_gaussian_noise(x, 0.3, seed=1)
    assert torch.equal(noisy, inv.add_gaussian_noise(x, 0.3, seed=1)) and 0 <= noisy.min() and noisy.max() <= 1
    expected = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    torch.testing.assert_close(noisy, expected)
    a = inv.denoise(vae, noisy, num_steps=5, seed=2)
    b = inv.invert_optimize(vae, noisy, mask=torch.ones(28, 28), num_steps=5, seed=2)
    torch.testing.assert_close(a.z, b.z)


def test_median_denoise_against_numpy():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = inv.median_denoise(x, size=3).numpy()
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="symmetric")  # scipy's "reflect"
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    np.testing.assert_allclose(out, np.median(windows.reshape(*windows.shape[:4], 9), axis=-1))


@pytest.mark.parametrize("kind, missing", [("centre", 144), ("left", 392), ("random", 392)])
def test_masks(kind, missing):
    mask = inv.make_mask(kind, 3, seed=1)
    assert mask.shape == (3, 1, 28, 28) and mask.dtype == torch.float32
    assert ((1 - mask).flatten(1).sum(1) == missing).all()
    assert torch.equal(mask, inv.make_mask(kind, 3, seed=1))
    if kind == "random":
        assert not torch.equal(mask[0], mask[1]) and not torch.equal(mask, inv.make_mask(kind, 3, seed=2))
    elif kind == "centre":
        assert mask[0, 0, 8:20, 8:20].sum() == 0 and mask[0, 0, 7].all() and mask[0, 0, :, 20].all()
    else:
        assert mask[0, 0, :, :14].sum() == 0 and mask[0, 0, :, 14:].all()


# ---------------------------------------------------------------------------
# PSNR and the typical set
# ---------------------------------------------------------------------------
def test_psnr_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[0.1, 0.1, 0.1, 0.1], [0.5, 0.0, 0.0, 0.0]]).view(2, 1, 2, 2)
    # image 0: every error 0.1 -> MSE 0.01 -> 20 dB; image 1: MSE 0.25 / 4 -> 10 log10(16) dB
    torch.testing.assert_close(inv.psnr(x_hat, x), torch.tensor([20.0, 10 * math.log10(16)]))
    where = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # only the first pixel
    torch.testing.assert_close(inv.psnr(x_hat, x, where), torch.tensor([20.0, 10 * math.log10(4)]))
    assert inv.psnr(x, x).tolist() == [100.0, 100.0]  # the floor: 10 log10(1 / 1e-10)
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 1, 28, 28)), rng.random((3, 1, 28, 28))
    m = inv.make_mask("centre", 3).numpy()
    by_hand = [10 * np.log10(1 / (((a[i] - b[i]) ** 2)[m[i] == 0]).mean()) for i in range(3)]
    got = inv.psnr(torch.tensor(a), torch.tensor(b), 1 - inv.make_mask("centre", 3).double())
    np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-12)


@pytest.mark.parametrize("z_dim", [1, 2, 16, 64, 512])
def test_typical_set_interval_against_scipy_chi(z_dim):
    lo, hi = inv.typical_set_interval(z_dim, 0.99)
    assert lo == pytest.approx(scipy.stats.chi.ppf(0.005, z_dim), rel=1e-9)
    assert hi == pytest.approx(scipy.stats.chi.ppf(0.995, z_dim), rel=1e-9)
    q = torch.tensor([0.01, 0.5, 0.9])
    np.testing.assert_allclose(inv.chi_quantile(z_dim, q).numpy(), np.sqrt(scipy.stats.chi2.ppf(q.numpy(), z_dim)),
                               rtol=1e-9)


def test_in_typical_set_holds_99_percent_of_prior_draws_and_judges_the_norm():
    z = torch.randn(20000, 64, generator=torch.Generator().manual_seed(0))
    share = inv.in_typical_set(z).float().mean().item()
    assert abs(share - 0.99) < 3 * math.sqrt(0.99 * 0.01 / 20000)
    lo, hi = inv.typical_set_interval(64)
    unit = torch.nn.functional.normalize(torch.randn(4, 64, generator=torch.Generator().manual_seed(1)), dim=1)
    codes = unit * torch.tensor([[lo * 0.99], [lo * 1.01], [hi * 0.99], [hi * 1.01]])
    assert inv.in_typical_set(codes).tolist() == [False, True, True, False]
    assert not inv.in_typical_set(torch.zeros(1, 64)).item()  # the prior's mode is not typical


# ---------------------------------------------------------------------------
# The GAN's encoder
# ---------------------------------------------------------------------------
def test_gan_encoder_shapes_parameters_and_a_short_training_run():
    enc = inv.GANEncoder(z_dim=64, channels=32)
    c = 32
    expected = (1 * c * 16 + c) + (c * 2 * c * 16 + 2 * c) + (2 * c * 2 * c * 9 + 2 * c) + (2 * c * 16 * 64 + 64)
    assert sum(p.numel() for p in enc.parameters()) == expected == 135904
    assert enc(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, width=8).eval()
    encoder, history = inv.train_gan_encoder(DCGAN(z_dim=8, width=4).eval(), num_steps=2, batch_size=4,
                                             channels=2, show_progress=False)
    assert history.steps("loss") == [1, 2] and encoder.z_dim == 8 and not encoder.training
    requires_grad = [p.requires_grad for p in G.parameters()]
    encoder, history = inv.train_gan_encoder(G, num_steps=100, batch_size=32, lr=1e-2, channels=4, log_every=1,
                                             pixel_weight=0.0, show_progress=False)
    assert np.mean(history["loss"][-10:]) < 0.5 * np.mean(history["loss"][:5])  # it learns (1.06 -> 0.10 here)
    assert history["image_loss"] == [0.0] * 100 and history["loss"] == history["code_loss"]
    assert [p.requires_grad for p in G.parameters()] == requires_grad and all(p.grad is None for p in G.parameters())
    assert inv.encode_images(encoder, torch.rand(2, 1, 28, 28)).shape == (2, 8)


def test_gan_encoder_loss_is_the_code_error_plus_w_times_the_image_error():
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, width=4).eval()
    _, history = inv.train_gan_encoder(G, num_steps=1, batch_size=6, channels=2, pixel_weight=10.0, seed=3,
                                       show_progress=False)
    torch.manual_seed(3)  # the same initial encoder and the same draws, by hand
    encoder = inv.GANEncoder(z_dim=8, channels=2)
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = ((G(z) + 1) / 2).clamp(0, 1)
        z_hat = encoder(x)
        code = ((z_hat - z) ** 2).mean().item()
        image = ((((G(z_hat) + 1) / 2) - x) ** 2).mean().item()
    assert history["code_loss"][0] == pytest.approx(code, rel=1e-5)
    assert history["image_loss"][0] == pytest.approx(image, rel=1e-5)
    assert history["loss"][0] == pytest.approx(code + 10 * image, rel=1e-5)


# ---------------------------------------------------------------------------
# Bad inputs: clear errors that name the argument
# ---------------------------------------------------------------------------
def test_bad_inputs_get_clear_errors():
    vae = small_vae()
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"mask: its shape \(2, 1, 14, 14\) does not fit the images \(2, 1, 28, 28\)"):
        inv.invert_optimize(vae, x, mask=torch.ones(2, 1, 14, 14))
    with pytest.raises(ValueError, match="mask: expected only 0 .missing. and 1 .observed."):
        inv.invert_optimize(vae, x, mask=torch.full((28, 28), 0.5))
    with pytest.raises(ValueError, match=r"z_init: expected codes of shape \(2, 4\).*got \(2, 16\)"):
        inv.invert_optimize(vae, x, z_init=torch.zeros(2, 16))
    with pytest.raises(ValueError, match="z_dim: the model's codes have 4 dimensions, got z_dim=16"):
        inv.invert_optimize(vae, x, z_dim=16)
    for steps in (0, -3, 2.5):
        with pytest.raises(ValueError, match="num_steps must be a positive integer"):
            inv.invert_optimize(vae, x, num_steps=steps)
    with pytest.raises(ValueError, match="num_restarts must be a positive integer, got 0"):
        inv.invert_optimize(vae, x, num_restarts=0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        inv.invert_optimize(vae, x, lr=0.0)
    with pytest.raises(ValueError, match="prior_weight must be a finite number >= 0"):
        inv.invert_optimize(vae, x, prior_weight=-1.0)
    bad = x.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"x: 1 pixel\(s\) are NaN or infinite"):
        inv.invert_optimize(vae, bad)
    with pytest.raises(ValueError, match="z_init: 1 value"):
        inv.invert_optimize(vae, x, z_init=torch.tensor([[0.0, 1, 2, float("inf")], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"expected pixels in \[0, 1\].*looks like \[-1, 1\]"):
        inv.invert_optimize(vae, x * 2 - 1)
    with pytest.raises(ValueError, match="add the channel axis"):
        inv.invert_optimize(vae, x[:, 0])
    with pytest.raises(ValueError, match="snapshot_steps must lie in 0..num_steps=5"):
        inv.invert_optimize(vae, x, num_steps=5, snapshot_steps=[6])
    with pytest.raises(ValueError, match="is in training mode"):
        inv.invert_optimize(small_vae().train(), x)
    with pytest.raises(ValueError, match="is conditional"):
        inv.invert_optimize(DCGAN(num_classes=10).eval(), x)
    with pytest.raises(ValueError, match="a plain callable decoder needs z_dim"):
        inv.invert_optimize(lambda z: z, x)
    with pytest.raises(TypeError, match="expected a VAE, a DCGAN, its generator or a callable decoder"):
        inv.invert_optimize("vae", x)
    with pytest.raises(ValueError, match="invert_hybrid sets z_init"):
        inv.invert_hybrid(vae, vae, x, num_restarts=3)
    with pytest.raises(TypeError, match="encoder: expected a VAE or a GANEncoder"):
        inv.encode_images(torch.nn.Linear(2, 2), x)
    with pytest.raises(ValueError, match="unknown mask kind 'middle'"):
        inv.make_mask("middle")
    with pytest.raises(ValueError, match="fraction must be strictly between 0 and 1"):
        inv.make_mask("random", fraction=1.0)
    with pytest.raises(ValueError, match="x_hat has shape"):
        inv.psnr(x[:1], x)
    with pytest.raises(ValueError, match="where: selects no pixel"):
        inv.psnr(x, x, torch.zeros(28, 28))
    with pytest.raises(ValueError, match="x_train: images of shape"):
        inv.nearest_neighbours(x, torch.ones(28, 28), torch.rand(5, 1, 14, 14))
    with pytest.raises(ValueError, match="mass must lie strictly between 0 and 1"):
        inv.typical_set_interval(16, 1.0)
    with pytest.raises(ValueError, match="q must lie strictly between 0 and 1"):
        inv.chi_quantile(16, 0.0)
    with pytest.raises(ValueError, match="denoise uses every pixel"):
        inv.denoise(vae, x, mask=torch.ones(28, 28))
    with pytest.raises(ValueError, match="noise_std must be a finite number > 0"):
        inv.sample_posterior(vae, x, noise_std=0.0)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        inv.sample_posterior(vae, x, step_size=-1e-3)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        inv.sample_posterior(vae, x, num_samples=0)
    with pytest.raises(ValueError, match="mask: its shape"):
        inv.sample_posterior(vae, x, mask=torch.ones(3, 28, 28))
    with pytest.raises(TypeError, match="G: expected a DCGAN or a DCGANGenerator"):
        inv.train_gan_encoder(vae, num_steps=1)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        inv.train_gan_encoder(DCGAN(z_dim=8, width=4).eval(), num_steps=0)
    with pytest.raises(ValueError, match="pixel_weight must be a finite number >= 0"):
        inv.train_gan_encoder(DCGAN(z_dim=8, width=4).eval(), num_steps=1, pixel_weight=-1.0)
