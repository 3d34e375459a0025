"""The small shared pieces of a training loop.

Chapter: Getting started. The loops themselves stay in the chapters, written out so
that a reader sees every step; they use these pieces:

- `progress`: a `tqdm.auto` bar (a widget in Jupyter, text elsewhere);
- `History`: records losses and metrics against the step;
- `check_finite`: stops a run the moment a loss becomes NaN or infinite, with a
  message saying which loss, at which step, and what usually fixes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite during training."""


def progress(iterable: Iterable | int, desc: str = "training", **kwargs) -> tqdm:
    """A progress bar over ``iterable`` (or ``range(n)`` when given an int).

    Set the environment variable ``GENIMG_PROGRESS=0`` to hide the bars, e.g. in logs.
    """
    if isinstance(iterable, int):
        iterable = range(iterable)
    disable = os.environ.get("GENIMG_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)


def check_finite(step: int, **losses: float | torch.Tensor) -> None:
    """Raise `NonFiniteLossError` if any named loss is NaN or infinite.

    Call it once per step, e.g. ``check_finite(step, loss_D=loss_D, loss_G=loss_G)``.
    """
    for name, value in losses.items():
        v = value.detach().float().item() if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"loss {name!r} became {v} at step {step}. Training cannot recover from this. "
                "Common causes: a learning rate that is too high, log(0) in a hand-written "
                "loss (use the logit-based losses), or inputs outside the expected value "
                "range. Lower the learning rate or check the inputs, then restart."
            )


class History(Mapping):
    """Losses and metrics recorded against the step: ``history["loss"]`` is a list.

    ``history.log(step, loss=0.3, kl=1.2)`` appends one row. Keys may appear at any
    step; each curve keeps its own list of steps (``history.steps("kl")``).
    """

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self._steps: dict[str, list[int]] = {}

    def log(self, step: int, **values: float | torch.Tensor) -> None:
        for key, value in values.items():
            v = value.detach().float().item() if isinstance(value, torch.Tensor) else float(value)
            self._values.setdefault(key, []).append(v)
            self._steps.setdefault(key, []).append(int(step))

    def steps(self, key: str) -> list[int]:
        return self._steps[key]

    def last(self, key: str) -> float:
        return self._values[key][-1]

    def mean(self, key: str, last: int | None = None) -> float:
        vals = self._values[key][-last:] if last else self._values[key]
        return sum(vals) / len(vals)

    def to_dict(self) -> dict[str, dict[str, list]]:
        return {k: {"step": self._steps[k], "value": self._values[k]} for k in self._values}

    def __getitem__(self, key: str) -> list[float]:
        if key not in self._values:
            raise KeyError(f"no curve {key!r} in the history; it has {sorted(self._values)}")
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        parts = [f"{k}: {len(v)} points, last {v[-1]:.4g}" for k, v in self._values.items()]
        return "History(" + "; ".join(parts) + ")"


# ---------------------------------------------------------------------------
# The command line: ``python -m genimg_lib.train <subcommand> [options]``.
# Each part registers its subcommand (``vae``, ``gan``, ``classifier``) in its own
# section below with `subcommand`; ``main`` only dispatches.
# ---------------------------------------------------------------------------
SUBCOMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {}


def subcommand(name: str, help: str) -> Callable:
    """Decorator: register ``fn(argv) -> exit code`` as ``python -m genimg_lib.train name``."""

    def register(fn):
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS[name] = (help, fn)
        return fn

    return register


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its subcommand; with no argument, list the subcommands."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m genimg_lib.train <subcommand> [options]\n\nsubcommands:")
        for name, (text, _) in sorted(SUBCOMMANDS.items()):
            print(f"  {name:<12} {text}")
        if not SUBCOMMANDS:
            print("  (none yet)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"unknown subcommand {name!r}; choose one of {sorted(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[name][1](rest)


# ===========================================================================
# Part II: VAEs (train_vae, the ``vae`` subcommand)
# ===========================================================================


# ===========================================================================
# Part III: GANs (train_gan, the ``gan`` subcommand)
# ===========================================================================

# --- Part III-a: the toy GAN loop and snapshots (A GAN you can watch)


# --- Part III-b: train_gan and the ``gan`` subcommand (DCGAN, WGAN-GP, cGAN)


# ===========================================================================
# Part IV: the domain classifier (the ``classifier`` subcommand)
# ===========================================================================
@subcommand("classifier", "train and ship the MNIST classifier whose features the metrics use (Part IV)")
def _classifier_command(argv: list[str]) -> int:
    from genimg_lib.metrics import classifier_cli

    return classifier_cli(argv)


@subcommand("score", "score every shipped VAE/GAN (FID, KID, precision, recall, coverage) into the manifest")
def _score_command(argv: list[str]) -> int:
    from genimg_lib.metrics import score_cli

    return score_cli(argv)


if __name__ == "__main__":
    raise SystemExit(main())
