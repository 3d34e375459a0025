"""Shared test setup: headless matplotlib, a fixed seed, and the repository root."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Headless plots in this process only: an environment variable would leak into the
# kernels that nbval starts, and change the notebooks' outputs.
matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _seed():
    from genimg_lib.device import seed_everything

    seed_everything(0)


# ---------------------------------------------------------------------------
# Test-only "generative models" and a temporary manifest that lists them, for the
# scoreboard and the ``score`` command (tests/test_scoreboard.py, tests/test_cli.py).
# They enter checkpoints.MODEL_CLASSES only for the test that asks for ``fake_manifest``.
# ---------------------------------------------------------------------------
import torch  # noqa: E402
from torch import nn  # noqa: E402


class FakeTemplateGenerator(nn.Module):
    """Test-only 'generator': a random one of ten learnable templates plus a little noise."""

    def __init__(self, noise: float = 0.05, num_templates: int = 10) -> None:
        super().__init__()
        self.noise = noise
        self.templates = nn.Parameter(torch.zeros(num_templates, 1, 28, 28))

    @torch.no_grad()
    def sample(self, num_samples, generator=None, y=None):
        idx = torch.randint(0, len(self.templates), (num_samples,), generator=generator)
        x = self.templates[idx] + self.noise * torch.randn(num_samples, 1, 28, 28, generator=generator)
        return x.clamp(0, 1)

    def estimate_log_px(self, x, num_samples=1):
        return -((x - self.templates.mean(0)) ** 2).flatten(1).sum(1)


class FakeToyGenerator(nn.Module):
    """Test-only 2-D 'GAN': its samples are points, not images."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))

    def sample(self, num_samples, generator=None, y=None):
        return self.loc + torch.randn(num_samples, 2, generator=generator)


@pytest.fixture()
def fake_classes(monkeypatch):
    """Register the fake models in checkpoints.MODEL_CLASSES for one test."""
    from genimg_lib import checkpoints

    monkeypatch.setitem(checkpoints.MODEL_CLASSES, "FakeTemplateGenerator", FakeTemplateGenerator)
    monkeypatch.setitem(checkpoints.MODEL_CLASSES, "FakeToyGenerator", FakeToyGenerator)


@pytest.fixture()
def fake_manifest(tmp_path, fake_classes):
    """A manifest in tmp_path with a fake GAN and a fake VAE (ten digit templates) and a classifier entry."""
    from genimg_lib.checkpoints import register_shipped, save_checkpoint
    from genimg_lib.data import load_mnist5k

    x_train, y_train = load_mnist5k("train")
    manifest = tmp_path / "MANIFEST.json"
    model = FakeTemplateGenerator()
    with torch.no_grad():
        model.templates.copy_(torch.stack([x_train[y_train == c][0] for c in range(10)]))
    for name, family, extra in [("fake_gan", "gan", {}), ("fake_vae", "vae", {"nll_nats": 100.0})]:
        path = tmp_path / f"{name}.pt"
        save_checkpoint({"model": model.state_dict(), "config": {"noise": 0.05}}, path)
        register_shipped(name, path, f"(test) {name}", manifest_path=manifest,
                         **{"class": "FakeTemplateGenerator", "config": {"noise": 0.05}, "family": family,
                            "cost": {"seconds": 1.5, "device": "cpu", "steps": 1}, "metrics": dict(extra)})
    save_checkpoint({"model": {}}, tmp_path / "other.pt")
    register_shipped("not_generative", tmp_path / "other.pt", "(test)", manifest_path=manifest,
                     **{"class": "MNISTClassifier", "family": "classifier"})
    return manifest
