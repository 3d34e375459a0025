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
# Part III-b: DCGAN step by step; Making GANs train
# ---------------------------------------------------------------------------
@exercise("gan_03_dcgan.1")
def _full_width_discriminator(answer: Any) -> tuple[bool, str]:
    from genimg_lib.models import DCGANDiscriminator, count_parameters

    expected = count_parameters(DCGANDiscriminator(width=64))
    ok = int(answer) == expected
    return ok, "" if ok else "Add the three layers: conv 1->64, conv 64->128 (4x4 kernels, with biases), linear 128*7*7->1."


@exercise("gan_03_dcgan.2")
def _nonsaturating_at_point_one(answer: Any) -> tuple[bool, str]:
    from genimg_lib.losses import g_loss_nonsaturating

    logit = torch.logit(torch.tensor([0.1], dtype=torch.float64))
    expected = g_loss_nonsaturating(logit).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "The loss is -log D(G(z)); with D = 0.1 on every fake it is -log 0.1."


@exercise("gan_04_making_gans_train.1")
def _w1_two_gaussians(answer: Any) -> tuple[bool, str]:
    # W1 in 1-D is the integral over u of |F^-1(u) - G^-1(u)|, done here by quadrature.
    u = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(3.0, 1.0)
    expected = (p.icdf(u) - q.icdf(u)).abs().mean().item()
    ok = abs(float(answer) - expected) < 1e-2
    return ok, "" if ok else "Shifting a distribution by m moves every quantile by m; the optimal plan moves each point by m."


@exercise("gan_04_making_gans_train.2")
def _spectral_norm_2x2(answer: Any) -> tuple[bool, str]:
    w = torch.tensor([[3.0, 0.0], [4.0, 5.0]], dtype=torch.float64)
    expected = torch.linalg.matrix_norm(w, ord=2).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "sigma(W) is the square root of the largest eigenvalue of W^T W."
