"""Watching a training run: what every loop records, and what stops a run that went wrong.

- `progress`: a ``tqdm.auto`` bar (a widget in Jupyter, text elsewhere);
- `History`: losses and metrics recorded against the step;
- `check_finite`: stops a run, before the update, the moment a loss becomes NaN or
  infinite, with a message saying which loss, at which step, and what usually fixes it;
- `ExplosionGuard`: stops a run whose loss or gradient norm explodes while staying finite.

The loops of `genimg_lib.train`, `genimg_lib.classifier` and the later chapters use them
(`genimg_lib.train` hands them on under its own name too: ``train.History`` is this
`History`). Chapters: Getting started; Building a VAE.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping

import torch
from tqdm.auto import tqdm

from genimg_lib.data import check_number


class DivergenceError(FloatingPointError):
    """Training diverged: a loss or gradient norm became NaN or infinite, or exploded."""


class NonFiniteLossError(DivergenceError):
    """A loss (or a gradient norm) became NaN or infinite during training."""


class ExplodingLossError(DivergenceError):
    """A loss or a gradient norm grew past ``explode_factor`` times its reference (see `ExplosionGuard`)."""


def progress(iterable: Iterable | int, desc: str = "training", disable: bool = False, **kwargs) -> tqdm:
    """A progress bar over ``iterable``, or a bar of ``total=n`` steps to `update` by hand when given an int.

    Set the environment variable ``GENIMG_PROGRESS=0`` to hide the bars, e.g. in logs.
    """
    disable = disable or os.environ.get("GENIMG_PROGRESS", "1") == "0"
    if isinstance(iterable, int):  # initial=k: a resumed run's bar starts at step k
        return tqdm(total=iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)
    return tqdm(iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)


def check_finite(step: int, **losses: float | torch.Tensor) -> None:
    """Raise `NonFiniteLossError` if any named loss is NaN or infinite.

    Call it on every loss *before* ``backward()``, so that an optimizer never
    steps on a NaN gradient and the caller's weights stay as they were at the
    last good step, e.g. ``check_finite(step, loss_D=loss_D)``.
    """
    for name, value in losses.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().float().item()
        v = float(value)
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"loss {name!r} became {v} at step {step}. Training cannot "
                "recover from this. Common causes: a learning rate that is too "
                "high, log(0) in a hand-written loss (use the logit-based "
                "losses), or inputs outside the expected value range. Lower "
                "the learning rate or check the inputs, then restart."
            )


def _grad_norm(parameters) -> float:
    """The l2 norm of all the gradients of ``parameters`` taken together."""
    sq = [p.grad.detach().pow(2).sum() for p in parameters if p.grad is not None]
    return torch.stack(sq).sum().sqrt().item() if sq else 0.0


#: The first steps whose values set the reference of `ExplosionGuard` (the first step alone).
EXPLODE_REFERENCE_STEPS = 1


class ExplosionGuard:
    r"""Stops a run, before the update, when a loss or a gradient norm is NaN, infinite or has exploded.

    The rule, for each watched value :math:`v` (a loss, a gradient norm), with
    :math:`F` = ``explode_factor`` (default :math:`10^4`):

    .. math:: r = \max\big(1,\ |v_1|\big), \qquad
       \text{stop at the first step } t > 1 \text{ with } |v_t| > F\, r ,

    i.e. the reference :math:`r` is the value at the first step (`EXPLODE_REFERENCE_STEPS`),
    or 1 if that is smaller, so that a loss that starts near 0, like a critic's, has
    room to move. Healthy runs stay far below: over the shipped GAN histories (1,000 to
    2,000 steps) and 18 runs with the settings of the recipes and the chapters, the
    largest ratio :math:`|v_t| / r` was 55 (a WGAN-GP generator's gradient norm). A
    learning rate that diverges passes :math:`10^4` within a few steps, long before the
    values overflow (a GAN whose loss reached 3.6e22 once ran on unnoticed).
    ``explode_factor=None`` keeps only the NaN/inf check. Raises `NonFiniteLossError` or
    `ExplodingLossError`. Its references are saved with a run in progress (`state_dict`).
    """

    def __init__(self, explode_factor: float | None = 1e4) -> None:
        if explode_factor is not None:
            explode_factor = check_number(explode_factor, "explode_factor", 1.0, strict=True)
        self.explode_factor = explode_factor
        self.reference: dict[str, float] = {}

    def check(self, step: int, **values: float | torch.Tensor) -> None:
        """Check each named value at ``step``; call it before ``backward()`` (losses) or ``step()`` (gradient norms)."""
        check_finite(step, **values)
        for name, value in values.items():
            v = abs(value.detach().float().item() if isinstance(value, torch.Tensor) else float(value))
            ref = self.reference.get(name, 1.0)
            if step <= EXPLODE_REFERENCE_STEPS:
                self.reference[name] = max(ref, v)
            elif self.explode_factor is not None and v > self.explode_factor * ref:
                raise ExplodingLossError(
                    f"{name} = {v:.3g} at step {step} is more than explode_factor={self.explode_factor:g} times "
                    f"its reference {ref:.3g} (|{name}| at the start of the run, at least 1): the run is "
                    "diverging. Lower the learning rate and restart (or resume from an earlier checkpoint); "
                    "pass explode_factor=None to switch this check off."
                )

    def check_gradients(self, step: int, parameters: Iterable[torch.nn.Parameter], name: str = "grad_norm") -> float:
        """`check` the l2 norm of the gradients of ``parameters`` (after ``backward()``, before ``step()``); return it."""
        norm = _grad_norm(parameters)
        self.check(step, **{name: norm})
        return norm

    def state_dict(self) -> dict[str, float]:
        return dict(self.reference)

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.reference = {k: float(v) for k, v in state.items()}


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

    def state_dict(self, dtype: torch.dtype = torch.float32) -> dict[str, dict[str, torch.Tensor]]:
        """The curves as tensors, ``{key: {"step": int32 (T,), "value": dtype (T,)}}``: compact to save.

        A run in progress saves ``dtype=torch.float64``, which keeps every value exactly.
        """
        return {k: {"step": torch.tensor(self._steps[k], dtype=torch.int32),
                    "value": torch.tensor(self._values[k], dtype=dtype)} for k in self._values}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Mapping[str, torch.Tensor]]) -> "History":
        """Rebuild a `History` saved with `state_dict` (e.g. from a shipped checkpoint)."""
        history = cls()
        for key, curve in state.items():
            history._steps[key] = [int(v) for v in curve["step"].tolist()]
            history._values[key] = [float(v) for v in curve["value"].tolist()]
        return history

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
