"""Checkers for the exercises at the end of each chapter.

Chapter: every chapter. An exercise cell ends with ``check("chapter.n", answer)``,
which prints whether the answer is right and, if not, a hint. The expected values
are computed here from the library, never typed in, so they stay true when the data
or the code changes.

Add a checker with the ``@exercise("chapter.n")`` decorator: a function that takes
the reader's answer and returns ``(ok, message)``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

_CHECKERS: dict[str, Callable[[Any], tuple[bool, str]]] = {}


def exercise(key: str) -> Callable:
    """Register a checker under ``key`` (e.g. ``"getting_started.1"``)."""

    def register(fn: Callable[[Any], tuple[bool, str]]) -> Callable:
        if key in _CHECKERS:
            raise ValueError(f"exercise {key!r} is registered twice")
        _CHECKERS[key] = fn
        return fn

    return register


def check(key: str, answer: Any) -> bool:
    """Grade ``answer`` for exercise ``key``; prints the verdict and returns it."""
    if key not in _CHECKERS:
        raise ValueError(f"unknown exercise {key!r}; known: {sorted(_CHECKERS)}")
    try:
        ok, message = _CHECKERS[key](answer)
    except Exception as err:  # a malformed answer is a wrong answer, with the reason
        ok, message = False, f"could not check this answer: {type(err).__name__}: {err}"
    print(f"{key}: {'correct' if ok else 'not yet'}. {message}")
    return ok


# ---------------------------------------------------------------------------
# Getting started
# ---------------------------------------------------------------------------
@exercise("getting_started.1")
def _mean_pixel_of_ones(answer: Any) -> tuple[bool, str]:
    from genimg_lib.data import load_mnist5k

    x, y = load_mnist5k("train")
    expected = x[y == 1].mean().item()
    ok = abs(float(answer) - expected) < 1e-4
    return ok, "" if ok else "Select the training images whose label is 1, then average every pixel."


@exercise("getting_started.2")
def _ring_density_at_mode(answer: Any) -> tuple[bool, str]:
    from genimg_lib.data import make_toy

    ring = make_toy("ring")
    expected = ring.log_prob(torch.tensor([[2.0, 0.0]])).exp().item()
    ok = abs(float(answer) - expected) / expected < 1e-3
    hint = (
        "A mode of the ring has 1/8 of the mass in a 2-D Gaussian of std s, whose peak "
        "is 1/(2 pi s^2); the other modes are too far away to add anything."
    )
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part I: What is a generative model?
# ---------------------------------------------------------------------------
@exercise("generative_models.1")
def _bits_per_dim(answer: Any) -> tuple[bool, str]:
    import math

    expected = 100 / (28 * 28 * math.log(2))
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "Divide the nats by the number of pixels, then convert nats to bits (divide by ln 2)."


@exercise("generative_models.2")
def _best_log_likelihood(answer: Any) -> tuple[bool, str]:
    from genimg_lib.data import make_toy

    toy = make_toy("gaussian_1d", std=2.0)
    x = torch.linspace(-30, 30, 200_001)[:, None]
    log_p = toy.log_prob(x).double()
    expected = (log_p.exp() * log_p).sum().item() * (60 / 200_000)  # -H by quadrature
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "No model beats p_data itself; its expected log-likelihood is minus its entropy."


# ---------------------------------------------------------------------------
# Part IV: Measuring generative models
# ---------------------------------------------------------------------------
@exercise("evaluation.1")
def _mixture_penalty_bits(answer: Any) -> tuple[bool, str]:
    import math

    from genimg_lib.losses import bits_per_dim

    expected = float(bits_per_dim(math.log(100)))
    ok = abs(float(answer) - expected) < 1e-4
    hint = (
        "log p_mix(x) >= log(0.01) + log p_good(x), so the NLL grows by at most log 100 nats "
        "per image; divide by 784 ln 2 to get bits per dimension."
    )
    return ok, "" if ok else hint


@exercise("evaluation.2")
def _precision_with_an_outlier(answer: Any) -> tuple[bool, str]:
    from genimg_lib.metrics import precision_recall

    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [20.0]])
    fake = torch.tensor([[0.5], [12.0]])
    expected, _ = precision_recall(real, fake, k=1)
    ok = abs(float(answer) - expected) < 1e-9
    hint = (
        "Give each real point a ball whose radius is the distance to its nearest other real "
        "point; the outlier at 20 gets a very large ball. Then count the fakes inside any ball."
    )
    return ok, "" if ok else hint


@exercise("evaluation.3")
def _fid_between_test_halves(answer: Any) -> tuple[bool, str]:
    from genimg_lib.data import load_mnist5k
    from genimg_lib.metrics import fid

    x, _ = load_mnist5k("test")
    expected = fid(x[:500], x[500:])
    ok = abs(float(answer) - expected) < 1e-3 * max(1.0, abs(expected))
    hint = "Split the 1,000 test images into the first and last 500 and call metrics.fid on them."
    return ok, "" if ok else hint
