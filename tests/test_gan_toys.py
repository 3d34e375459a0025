"""Part III-a: the toy GAN (MLP G/D, train_toy_gan, gan_lab helpers, mode coverage)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from genimg_lib import gan_lab
from genimg_lib.data import _ring_means, make_toy
from genimg_lib.losses import g_loss_nonsaturating, g_loss_saturating
from genimg_lib.models import MLPDiscriminator, MLPGenerator
from genimg_lib.train import train_toy_gan


# --- models ------------------------------------------------------------------
@pytest.mark.parametrize("latent_dim", [2, 16])
def test_mlp_shapes(latent_dim):
    G, D = MLPGenerator(latent_dim=latent_dim, hidden_dim=32), MLPDiscriminator(hidden_dim=32)
    x = G(torch.randn(5, latent_dim))
    assert x.shape == (5, 2)
    assert D(x).shape == (5,)
    assert G.sample(7, generator=torch.Generator().manual_seed(0)).shape == (7, 2)
    assert MLPDiscriminator(data_dim=1)(torch.randn(3, 1)).shape == (3,)


def test_mlp_sample_is_reproducible_with_a_generator():
    G = MLPGenerator()
    a = G.sample(4, generator=torch.Generator().manual_seed(1))
    b = G.sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


def test_wrong_z_size_gives_a_clear_error():
    G = MLPGenerator(latent_dim=2)
    with pytest.raises(ValueError, match=r"z of shape \(N, 2\), got \(4, 3\)"):
        G(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        MLPDiscriminator()(torch.randn(4))
    with pytest.raises(ValueError, match="num_layers"):
        MLPGenerator(num_layers=1)


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


# --- the training loop -------------------------------------------------------
@pytest.mark.parametrize("loss", gan_lab.TOY_GAN_LOSSES)
def test_train_toy_gan_smoke(loss):
    torch.manual_seed(0)
    G, D = MLPGenerator(hidden_dim=16), MLPDiscriminator(hidden_dim=16)
    before = [p.detach().clone() for p in G.parameters()]
    seen = []
    history, snaps = train_toy_gan(G, D, make_toy("ring"), num_steps=3, loss=loss, batch_size=32,
                                   snapshot_every=2, num_fixed=20, resolution=9, callback=seen.append,
                                   n_critic=2 if loss == "wasserstein_gp" else 1)
    assert [s.step for s in snaps] == [0, 2, 3] and len(seen) == 3
    assert snaps[-1].fake.shape == (20, 2) and snaps[-1].grad.shape == (20, 2)
    assert snaps[-1].d_map.shape == (9, 9)
    assert len(history["loss_D"]) == 3 and all(np.isfinite(history["loss_G"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    if loss == "wasserstein_gp":
        assert len(history["grad_norm"]) == 3


def test_train_toy_gan_is_reproducible():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        G, D = MLPGenerator(hidden_dim=16), MLPDiscriminator(hidden_dim=16)
        history, _ = train_toy_gan(G, D, make_toy("ring"), num_steps=5, batch_size=16)
        runs.append(history["loss_G"])
    assert runs[0] == runs[1]


def test_train_toy_gan_bad_arguments():
    G, D, toy = MLPGenerator(hidden_dim=8), MLPDiscriminator(hidden_dim=8), make_toy("ring")
    with pytest.raises(ValueError, match="unknown toy GAN loss 'wgan'"):
        train_toy_gan(G, D, toy, 1, loss="wgan")
    with pytest.raises(ValueError, match="n_critic must be an integer >= 1"):
        train_toy_gan(G, D, toy, 1, n_critic=0)
    with pytest.raises(ValueError, match="snapshot_every"):
        train_toy_gan(G, D, toy, 1, snapshot_every=0)


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
