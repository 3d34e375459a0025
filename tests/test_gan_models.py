"""Part III-b: the DCGAN models, train_gan, the ``gan`` subcommand and the shipped GANs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from genimg_lib import checkpoints
from genimg_lib.data import infinite_batches, load_mnist5k, make_loader
from genimg_lib.models import (
    DCGAN,
    DCGANDiscriminator,
    DCGANGenerator,
    check_tanh_range,
    count_parameters,
    load_model,
)
from genimg_lib.train import GAN_CONFIGS, gan_main, train_gan

torch.set_num_threads(1)


# --- parameter counts, computed by hand from the layer sizes -----------------
def test_half_width_parameter_counts():
    w, z = 32, 64
    g = (z * 2 * w * 49 + 2 * w * 49) + 2 * (2 * w) + (2 * w * w * 16) + 2 * w + (w * 16 + 1)
    d = (1 * w * 16 + w) + (w * 2 * w * 16 + 2 * w) + (2 * w * 49 + 1)
    assert count_parameters(DCGANGenerator(z_dim=z, width=w)) == g == 237_313
    assert count_parameters(DCGANDiscriminator(width=w)) == d == 36_513


def test_conditional_adds_exactly_the_label_weights():
    g0, g1 = DCGANGenerator(num_classes=0), DCGANGenerator(num_classes=10)
    d0, d1 = DCGANDiscriminator(num_classes=0), DCGANDiscriminator(num_classes=10)
    assert count_parameters(g1) - count_parameters(g0) == 10 * 2 * 32 * 49  # one-hot columns of fc
    assert count_parameters(d1) - count_parameters(d0) == 10 * 2 * 32 * 49  # projection embedding e_y


# --- shapes and ranges -------------------------------------------------------
@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("sn", [False, True])
def test_shapes_and_sample_range(num_classes, sn):
    model = DCGAN(z_dim=16, width=8, num_classes=num_classes, spectral_norm=sn).eval()
    y = torch.arange(5) % 10 if num_classes else None
    x = model.G(torch.randn(5, 16), *(() if y is None else (y,)))
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert model.D(x, *(() if y is None else (y,))).shape == (5,)
    s = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    s2 = model.sample(7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s, s2)


def test_sample_maps_tanh_output_to_unit_range():
    model = DCGAN(z_dim=8, width=4).eval()
    g = torch.Generator().manual_seed(3)
    s = model.sample(4, generator=g)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(s, (model.G(z) + 1) / 2)


def test_projection_discriminator_is_head_plus_embedding_dot_features():
    D = DCGANDiscriminator(width=4, num_classes=10)
    x, y = torch.rand(5, 1, 28, 28) * 2 - 1, torch.tensor([0, 3, 3, 9, 1])
    h = D.features(x).flatten(1)
    expected = D.head(h).squeeze(1) + torch.stack([D.embed.weight[c] @ h[i] for i, c in enumerate(y.tolist())])
    torch.testing.assert_close(D(x, y), expected)


def test_conditional_sample_uses_the_given_labels():
    model = DCGAN(z_dim=8, width=4, num_classes=10).eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2, 2, 7])
    s = model.sample(3, generator=torch.Generator().manual_seed(1), y=y)
    torch.testing.assert_close(s, (model.G(z, y) + 1) / 2)
    assert not torch.allclose(model.G(z, torch.tensor([2, 2, 2])), model.G(z, torch.tensor([7, 7, 7])))


# --- spectral normalization: sigma from power iteration against the SVD ------
def test_spectral_norm_matches_svd_after_power_iterations():
    torch.manual_seed(0)
    D = DCGANDiscriminator(width=8, spectral_norm=True)
    D.train()
    x = torch.randn(4, 1, 28, 28)
    for _ in range(50):  # each training-mode forward pass runs one power iteration
        D(x)
    D.eval()
    for layer in [D.features[0], D.features[2], D.head]:
        w_raw = layer.parametrizations.weight.original.detach()
        sigma_svd = torch.linalg.matrix_norm(w_raw.flatten(1), ord=2)
        u, v = layer.parametrizations.weight[0]._u, layer.parametrizations.weight[0]._v
        sigma_pi = u @ w_raw.flatten(1) @ v
        assert abs(sigma_pi.item() - sigma_svd.item()) / sigma_svd.item() < 1e-3
        w_sn = layer.weight.detach().flatten(1)
        assert abs(torch.linalg.matrix_norm(w_sn, ord=2).item() - 1.0) < 1e-3


# --- bad inputs ----------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    model = DCGAN(z_dim=16, width=4)
    with pytest.raises(ValueError, match=r"noise of shape \(N, 16\)"):
        model.G(torch.randn(2, 15))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, y=torch.tensor([1, 2]))
    cmodel = DCGAN(z_dim=16, width=4, num_classes=10)
    with pytest.raises(ValueError, match="pass labels y"):
        cmodel.G(torch.randn(2, 16))
    with pytest.raises(ValueError, match="0..9"):
        cmodel.G(torch.randn(2, 16), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)


def test_check_tanh_range():
    x01, _ = load_mnist5k("test", value_range=(0, 1))
    xpm, _ = load_mnist5k("test", value_range=(-1, 1))
    check_tanh_range(xpm[:64])
    with pytest.raises(ValueError, match=r"looks like images in \[0, 1\]"):
        check_tanh_range(x01[:64])
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        check_tanh_range(x01[:64] * 255)


def _batches(conditional=False, batch_size=8):
    x, y = load_mnist5k("test", value_range=(-1, 1))
    return infinite_batches(make_loader(x[:64], y[:64], batch_size=batch_size))


def test_train_gan_rejects_bad_arguments():
    model = DCGAN(z_dim=8, width=4)
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        train_gan(model.G, model.D, _batches(), 1, loss="wgan")
    with pytest.raises(ValueError, match="n_critic"):
        train_gan(model.G, model.D, _batches(), 1, n_critic=0)
    x01, y = load_mnist5k("test", value_range=(0, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_gan(model.G, model.D, infinite_batches(make_loader(x01[:16], y[:16], batch_size=8)), 1)


# --- one-step smoke tests, one per loss -------------------------------------
@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "wasserstein_gp", "hinge"])
@pytest.mark.parametrize("conditional", [False, True])
def test_one_step_changes_both_networks_and_logs(loss, conditional):
    model = DCGAN(z_dim=8, width=4, num_classes=10 if conditional else 0)
    g0 = [p.detach().clone() for p in model.G.parameters()]
    d0 = [p.detach().clone() for p in model.D.parameters()]
    seen = []
    hist = train_gan(model.G, model.D, _batches(), 2, loss=loss, n_critic=2, conditional=conditional,
                     generator=torch.Generator().manual_seed(0), callback=lambda s, h: seen.append(s))
    assert seen == [0, 1]
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.D.parameters()))
    keys = {"loss_D", "loss_G", "D_real", "D_fake", "grad_norm_G"}
    keys |= {"gp", "grad_norm"} if loss == "wasserstein_gp" else set()
    assert set(hist) == keys and all(len(hist[k]) == 2 for k in keys)
    if loss in ("minimax", "non_saturating"):
        assert 0 < hist["D_real"][0] < 1 and 0 < hist["D_fake"][0] < 1


def test_logged_grad_norm_is_the_interpolates_gradient_norm():
    """With a linear critic f(x) = <a, x>, the gradient on every interpolate is a: norm |a|."""
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, width=4)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(784) * 0.01)

        def forward(self, x):
            return x.flatten(1) @ self.a

    D = Linear()
    norm_before = D.a.detach().norm().item()
    hist = train_gan(G, D, _batches(), 1, loss="wasserstein_gp", lr_D=0.0, lr_G=0.0)
    assert abs(hist["grad_norm"][0] - norm_before) < 1e-5
    assert abs(hist["gp"][0] - (norm_before - 1) ** 2) < 1e-5


# --- the command line ------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "genimg_lib.train", *args], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_cli_help_and_unknown_config():
    r = _cli("gan", "--help")
    assert r.returncode == 0 and "--config" in r.stdout and "wgan_gp" in r.stdout
    r = _cli("gan", "--config", "stylegan")
    assert r.returncode == 2 and "invalid choice: 'stylegan'" in r.stderr


def test_cli_short_run_writes_a_loadable_checkpoint(tmp_path):
    assert gan_main(["--config", "cgan", "--steps", "2", "--out", str(tmp_path)]) == 0
    state = checkpoints.load_checkpoint(tmp_path / "gan_cgan.pt")
    model = DCGAN(**state["config"])
    model.load_state_dict(state["model"])
    assert state["snapshots"]["images"].shape == (2, 60, 1, 28, 28)
    assert state["snapshots"]["images"].dtype == torch.uint8
    assert len(state["history"]["loss_D"]["value"]) == 2


# --- the shipped checkpoints -------------------------------------------------------
@pytest.mark.parametrize("name", ["gan_dcgan", "gan_wgan_gp", "gan_cgan"])
def test_shipped_gans_load_verified_and_sample(name):
    entry = checkpoints.read_manifest()[name]
    path = checkpoints.WEIGHTS_DIR / entry["file"]
    assert checkpoints.sha256_file(path) == entry["sha256"]
    assert entry["bytes"] <= 2 * 1024 * 1024
    assert entry["family"] == "gan" and entry["class"] == "DCGAN"
    assert entry["cost"]["steps"] == GAN_CONFIGS[name[4:]]["steps"]
    model = load_model(name)
    s = model.sample(16, generator=torch.Generator().manual_seed(0))
    assert s.shape == (16, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    # a trained generator draws dark backgrounds with bright strokes, like MNIST
    assert s.mean() < 0.35 and (s > 0.5).float().mean() > 0.03


def test_shipped_gan_rejects_a_corrupted_file(tmp_path):
    import json
    import shutil

    manifest = checkpoints.read_manifest()
    entry = manifest["gan_dcgan"]
    shutil.copy(checkpoints.WEIGHTS_DIR / entry["file"], tmp_path / entry["file"])
    with open(tmp_path / entry["file"], "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"gan_dcgan": entry}))
    with pytest.raises(checkpoints.CheckpointError, match="sha256"):
        checkpoints.load_shipped("gan_dcgan", manifest_path=tmp_path / "MANIFEST.json")
