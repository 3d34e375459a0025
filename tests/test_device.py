import random

import numpy as np
import pytest
import torch

from genimg_lib import device as dev


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV_VAR, raising=False)


def fake_hardware(monkeypatch, cuda: bool, mps: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(dev, "_mps_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_order_is_cuda_then_mps_then_cpu(monkeypatch, no_env, cuda, mps, expected):
    fake_hardware(monkeypatch, cuda, mps)
    assert dev.get_device().type == expected


def test_env_var_overrides_auto(monkeypatch):
    fake_hardware(monkeypatch, cuda=True, mps=False)
    monkeypatch.setenv(dev.DEVICE_ENV_VAR, "cpu")
    assert dev.get_device() == torch.device("cpu")


def test_argument_beats_env_var(monkeypatch):
    fake_hardware(monkeypatch, cuda=True, mps=False)
    monkeypatch.setenv(dev.DEVICE_ENV_VAR, "cpu")
    assert dev.get_device("cuda:1") == torch.device("cuda:1")


def test_missing_hardware_is_an_error_not_a_silent_fallback(monkeypatch, no_env):
    fake_hardware(monkeypatch, cuda=False, mps=False)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dev.get_device("cuda")
    with pytest.raises(RuntimeError, match="MPS"):
        dev.get_device("mps")


def test_unknown_device_lists_choices(monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV_VAR, "tpu")
    with pytest.raises(ValueError, match="GENIMG_DEVICE.*auto, cuda, mps, cpu"):
        dev.get_device()


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    dev.seed_everything(123)
    a = draw()
    dev.seed_everything(123)
    assert draw() == a


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_rejects_non_integers(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        dev.seed_everything(bad)


def test_env_summary_names_versions_and_device():
    text = dev.env_summary("cpu")
    assert "torch " + torch.__version__ in text and "device: cpu" in text
    assert "CPU threads: " in text and all(len(line) <= 80 for line in text.splitlines())
    assert "\n" not in dev.env_summary("cpu", width=200)  # one line where it fits
    versions, machine = dev.env_summary("cpu", width=20).splitlines()
    assert versions.startswith("genimg_lib ") and machine.startswith("device: cpu")
