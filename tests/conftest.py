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
