"""Where the tensors live, and how to make a run repeatable.

Chapter: Getting started. Every notebook's setup cell calls `get_device()`,
`seed_everything(0)` and prints `env_summary()`.
"""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

from genimg_lib import __version__

#: Environment variable that overrides the automatic choice, e.g. ``GENIMG_DEVICE=cpu``.
DEVICE_ENV_VAR = "GENIMG_DEVICE"
_VALID_KINDS = ("auto", "cuda", "mps", "cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device a notebook runs on.

    The order is CUDA, then Apple's MPS, then the CPU. ``prefer`` (or, when it is
    ``None``, the environment variable ``GENIMG_DEVICE``) overrides the choice:
    ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.

    Asking for a device that is not present raises ``RuntimeError`` rather than
    silently falling back, so that a run you think is on the GPU is on the GPU.
    """
    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV_VAR, "auto")
    choice = choice.strip().lower()
    kind = choice.split(":", 1)[0]
    if kind not in _VALID_KINDS:
        source = "get_device(prefer=...)" if prefer is not None else f"${DEVICE_ENV_VAR}"
        raise ValueError(
            f"unknown device {choice!r} from {source}; valid choices are "
            f"{', '.join(_VALID_KINDS)} (optionally with an index, e.g. 'cuda:1')"
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {choice!r} was requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Install a CUDA build of torch, or use 'auto' or 'cpu'."
        )
    if kind == "mps" and not _mps_available():
        raise RuntimeError(
            "device 'mps' was requested but Apple's MPS backend is not available here; "
            "use 'auto' or 'cpu'."
        )
    return torch.device(choice)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU) with ``seed``.

    With ``deterministic=True`` torch is also asked for deterministic kernels, which
    makes some GPU operations slower and a few unavailable.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def env_summary(device: torch.device | str | None = None, width: int = 80) -> str:
    """Versions, device and CPU threads, for the top of a notebook.

    One line, or two where one line would be wider than ``width`` characters (the
    book's column holds 80), split between the versions and the device.
    """
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        where = device.type
    versions = f"genimg_lib {__version__} | Python {platform.python_version()} | torch {torch.__version__}"
    machine = f"device: {where} | CPU threads: {torch.get_num_threads()}"
    line = f"{versions} | {machine}"
    return line if len(line) <= width else f"{versions}\n{machine}"
