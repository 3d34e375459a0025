"""genimg_lib.gan_lab: the toy GAN's wiring into train_gan, the gradient arrows, the heat map,
mode coverage, and the drawings."""

from __future__ import annotations

import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from genimg_lib import gan_lab
from genimg_lib.data import _ring_means, make_toy
from genimg_lib.losses import GAN_LOSSES, g_loss_nonsaturating
from genimg_lib.models import MLPDiscriminator, MLPGenerator
from genimg_lib.train import train_gan


# --- real batches ------------------------------------------------------------------
def test_toy_batches_are_fresh_seeded_samples():
    toy = make_toy("ring")
    batches = gan_lab.toy_batches(toy, 16, seed=2)
    first, second = next(batches), next(batches)
    assert len(first) == 1 and first[0].shape == (16, 2)
    torch.testing.assert_close(first[0], toy.sample(16, seed=2 * 1_000_003 + 1))
    torch.testing.assert_close(second[0], toy.sample(16, seed=2 * 1_000_003 + 2))
    assert not torch.equal(first[0], second[0])
    torch.testing.assert_close(next(gan_lab.toy_batches(toy, 16, seed=2))[0], first[0])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(gan_lab.toy_batches(toy, 0))


# --- the wiring: train_toy_gan is train_gan fed by toy_batches, with a ToySnapshots callback
@pytest.mark.parametrize("loss", ["non_saturating", "wasserstein_gp"])
def test_train_toy_gan_equals_train_gan_with_toy_batches(loss):
    toy, seed, num_steps = make_toy("ring"), 3, 4
    settings = dict(loss=loss, n_critic=2 if loss == "wasserstein_gp" else 1, lr_G=1e-3, lr_D=2e-3,
                    betas=(0.5, 0.999), gp_weight=10.0)
    torch.manual_seed(0)
    G1, D1 = MLPGenerator(hidden_dim=16), MLPDiscriminator(hidden_dim=16)
    G2, D2, G3, D3 = copy.deepcopy(G1), copy.deepcopy(D1), copy.deepcopy(G1), copy.deepcopy(D1)
    before = [p.detach().clone() for p in G1.parameters()]

    hist1, snaps1 = gan_lab.train_toy_gan(G1, D1, toy, num_steps, batch_size=16, snapshot_every=2, num_fixed=10,
                                          resolution=7, seed=seed, **settings)

    # the same run, wired by hand
    generator = torch.Generator().manual_seed(seed)
    seen = []
    recorder = gan_lab.ToySnapshots(G2, D2, loss, every=2, num_steps=num_steps, generator=generator, num_fixed=10,
                                    resolution=7, on_snapshot=seen.append)
    hist2 = train_gan(G2, D2, gan_lab.toy_batches(toy, 16, seed), num_steps, callback=recorder, generator=generator,
                      show_progress=False, **settings)

    # and without snapshots: the same noise stream, so the same run
    hist3, snaps3 = gan_lab.train_toy_gan(G3, D3, toy, num_steps, batch_size=16, snapshot_every=None, num_fixed=10,
                                          seed=seed, **settings)

    assert any(not torch.equal(a, b) for a, b in zip(before, G1.parameters()))
    for hist in (hist2, hist3):
        assert list(hist) == list(hist1)
        for key in hist1:
            assert hist.steps(key) == hist1.steps(key) == [1, 2, 3, 4]
            torch.testing.assert_close(torch.tensor(hist[key]), torch.tensor(hist1[key]), msg=key)
    for a, b in [(G1, G2), (D1, D2), (G1, G3), (D1, D3)]:
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p, q)
    assert snaps3 == []
    assert [s.step for s in snaps1] == [s.step for s in recorder.snapshots] == [0, 2, 4]
    assert seen == recorder.snapshots
    for s1, s2 in zip(snaps1, recorder.snapshots):
        np.testing.assert_allclose(s1.fake, s2.fake)
        np.testing.assert_allclose(s1.grad, s2.grad)
        np.testing.assert_allclose(s1.d_map, s2.d_map)
        assert s1.losses == s2.losses
    assert snaps1[1].losses == {"loss_D": hist1["loss_D"][1], "loss_G": hist1["loss_G"][1]}


@pytest.mark.parametrize("loss", list(GAN_LOSSES))
def test_train_toy_gan_smoke(loss):
    torch.manual_seed(0)
    G, D = MLPGenerator(hidden_dim=16), MLPDiscriminator(hidden_dim=16)
    before = [p.detach().clone() for p in G.parameters()]
    history, snaps = gan_lab.train_toy_gan(G, D, make_toy("ring"), num_steps=3, loss=loss, batch_size=32,
                                           snapshot_every=2, num_fixed=20, resolution=9,
                                           n_critic=2 if loss == "wasserstein_gp" else 1)
    assert [s.step for s in snaps] == [0, 2, 3]
    assert snaps[-1].fake.shape == (20, 2) and snaps[-1].grad.shape == (20, 2)
    assert snaps[-1].d_map.shape == (9, 9) and snaps[-1].loss == loss
    assert len(history["loss_D"]) == 3 and all(np.isfinite(history["loss_G"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    if loss == "wasserstein_gp":
        assert len(history["grad_norm"]) == 3
    assert G.training and D.training  # the snapshots put the modes back


def test_train_toy_gan_is_reproducible():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        G, D = MLPGenerator(hidden_dim=16), MLPDiscriminator(hidden_dim=16)
        history, _ = gan_lab.train_toy_gan(G, D, make_toy("ring"), num_steps=5, batch_size=16)
        runs.append(history["loss_G"])
    assert runs[0] == runs[1]


def test_train_toy_gan_bad_arguments():
    G, D, toy = MLPGenerator(hidden_dim=8), MLPDiscriminator(hidden_dim=8), make_toy("ring")
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        gan_lab.train_toy_gan(G, D, toy, 1, loss="wgan")
    with pytest.raises(ValueError, match="n_critic .* must be an integer >= 1"):
        gan_lab.train_toy_gan(G, D, toy, 1, n_critic=0)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        gan_lab.train_toy_gan(G, D, toy, 1, snapshot_every=0)


# --- gradients drawn as arrows ----------------------------------------------
def test_generator_gradient_matches_the_hand_derivative():
    """For D = a linear logit l(x) = w.x + b, d/dx softplus(-l) = (sigmoid(l) - 1) w."""
    D = MLPDiscriminator(hidden_dim=8, num_layers=2)
    lin = torch.nn.Linear(2, 1)
    D.net = torch.nn.Sequential(lin)
    x = torch.randn(6, 2)
    l = lin(x).squeeze(1).detach()
    w = lin.weight.detach()[0]
    ns = gan_lab.generator_gradient(D, x, "non_saturating")
    torch.testing.assert_close(ns, (torch.sigmoid(l) - 1)[:, None] * w)
    sat = gan_lab.generator_gradient(D, x, "minimax")
    torch.testing.assert_close(sat, -torch.sigmoid(l)[:, None] * w)
    wgan = gan_lab.generator_gradient(D, x, "wasserstein_gp")
    torch.testing.assert_close(wgan, -w.expand(6, 2))
    torch.testing.assert_close(gan_lab.generator_gradient(D, x, "hinge"), -w.expand(6, 2))


def test_generator_gradient_is_per_sample_finite_differences():
    torch.manual_seed(0)
    D = MLPDiscriminator(hidden_dim=16)
    x = torch.randn(4, 2, dtype=torch.float64)
    D = D.double()
    grad = gan_lab.generator_gradient(D, x, "non_saturating")
    h = 1e-6
    for i in range(4):
        for j in range(2):
            xp, xm = x.clone(), x.clone()
            xp[i, j] += h
            xm[i, j] -= h
            fd = (g_loss_nonsaturating(D(xp[i : i + 1])) - g_loss_nonsaturating(D(xm[i : i + 1]))) / (2 * h)
            assert abs(fd.item() - grad[i, j].item()) < 1e-6


def test_discriminator_map_shape_and_range():
    D = MLPDiscriminator(hidden_dim=8)
    m = gan_lab.discriminator_map(D, "non_saturating", resolution=11)
    assert m.shape == (11, 11) and m.min() >= 0 and m.max() <= 1
    # row i is y = linspace[i], column j is x = linspace[j]
    pts = gan_lab.grid_points((-3, 3), 11)
    assert pts[12].tolist() == pytest.approx([-2.4, -2.4])
    assert pts[1].tolist() == pytest.approx([-2.4, -3.0])
    # a critic's map is its raw score, the probability map its sigmoid
    scores = gan_lab.discriminator_map(D, "wasserstein_gp", resolution=11)
    with torch.no_grad():
        np.testing.assert_allclose(scores, D(pts).reshape(11, 11).numpy(), rtol=1e-6)
    np.testing.assert_allclose(m, torch.sigmoid(torch.from_numpy(scores)).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan_lab.discriminator_map(D, "wgan")


# --- mode coverage -----------------------------------------------------------
def test_ring_mode_coverage_on_constructed_samples():
    means = _ring_means(8, 2.0)
    std = 0.05
    # 100 points exactly on each of modes 0..2, 100 points far from every mode
    on = means[:3].repeat_interleave(100, dim=0)
    off = torch.zeros(100, 2)
    cov = gan_lab.ring_mode_coverage(torch.cat([on, off]), means, std)
    assert cov.modes_covered == 3 and cov.num_modes == 8
    assert cov.hq_fraction == pytest.approx(0.75)
    assert cov.counts == [100, 100, 100, 0, 0, 0, 0, 0]
    assert str(cov) == "modes covered 3/8, high-quality fraction 0.75"
    # a point just inside / just outside 3 sigma
    inside = means[:1] + torch.tensor([[0.149, 0.0]])
    outside = means[:1] + torch.tensor([[0.151, 0.0]])
    assert gan_lab.ring_mode_coverage(inside, means, std).hq_fraction == 1.0
    assert gan_lab.ring_mode_coverage(outside, means, std).hq_fraction == 0.0
    # min_fraction: 1 point out of 1000 on a mode does not cover it
    few = torch.cat([means[:1].repeat(999, 1), means[1:2]])
    assert gan_lab.ring_mode_coverage(few, means, std).modes_covered == 1


def test_ring_mode_coverage_of_the_data_itself():
    """Samples of the ring: 8/8 modes and HQ fraction 1 - exp(-9/2) (chi-square, 2 dof)."""
    ring = make_toy("ring")
    cov = gan_lab.ring_mode_coverage(ring.sample(40_000, seed=0), _ring_means(8, 2.0), 0.05)
    assert cov.modes_covered == 8
    assert cov.hq_fraction == pytest.approx(1 - math.exp(-4.5), abs=3e-3)


def test_ring_mode_coverage_bad_input():
    means = _ring_means(8, 2.0)
    with pytest.raises(ValueError, match="same d"):
        gan_lab.ring_mode_coverage(torch.zeros(5, 3), means, 0.05)
    with pytest.raises(ValueError, match="positive"):
        gan_lab.ring_mode_coverage(torch.zeros(5, 2), means, 0.0)
    with pytest.raises(ValueError, match="at least one sample"):
        gan_lab.ring_mode_coverage(torch.zeros(0, 2), means, 0.05)


# --- drawing -----------------------------------------------------------------------
def test_drawing_helpers_run():
    torch.manual_seed(0)
    G, D = MLPGenerator(hidden_dim=8), MLPDiscriminator(hidden_dim=8)
    snap = gan_lab.take_snapshot(0, G, D, torch.randn(10, 2), "wasserstein_gp", resolution=8)
    real = make_toy("ring").sample(50, seed=0)
    ax = gan_lab.draw_snapshot(snap, real, colorbar=True)
    assert ax.get_title() == "step 0"
    plt.close(ax.figure)
    frames = gan_lab.snapshot_frames([snap, snap], real, size=2)
    assert len(frames) == 2 and frames[0][:4] == b"\x89PNG"
    html = gan_lab.animate_snapshots([snap], real, size=2)
    assert "<script" in html.data
    two = gan_lab.snapshot_frames({"a": [snap], "b": [snap]}, real, size=2)
    assert len(two) == 1
    with pytest.raises(ValueError, match="same number of snapshots"):
        gan_lab.animate_snapshots({"a": [snap], "b": [snap, snap]}, real)
    with pytest.raises(ValueError, match="at least one snapshot"):
        gan_lab.snapshot_frames([], real)
    plt.close("all")
