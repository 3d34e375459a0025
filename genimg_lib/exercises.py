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
# Part III: Deriving the GAN objective
# ---------------------------------------------------------------------------
@exercise("gan_01_objective.1")
def _c_of_g_disjoint(answer: Any) -> tuple[bool, str]:
    import math

    from genimg_lib.losses import d_loss_minimax

    # two far-apart point masses: D* is 1 on the data and 0 on the fakes, so C = V(D*, G)
    big = torch.tensor([60.0], dtype=torch.float64)
    expected = -d_loss_minimax(big, -big).item()
    ok = abs(float(answer) - expected) < 1e-3
    hint = f"With disjoint supports JSD = log 2 (about {math.log(2):.4f}); then use C = -log 4 + 2 JSD."
    return ok, "" if ok else hint


@exercise("gan_01_objective.2")
def _d_star_at_zero(answer: Any) -> tuple[bool, str]:
    x = torch.tensor(0.0)
    log_p_data = torch.distributions.Normal(0.0, 1.0).log_prob(x)
    log_p_g = torch.distributions.Normal(2.0, 1.0).log_prob(x)
    expected = torch.sigmoid(log_p_data - log_p_g).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "D*'s logit is log p_data(x) - log p_g(x); D* is its sigmoid."


@exercise("gan_01_objective.3")
def _gradients_at_confident_d(answer: Any) -> tuple[bool, str]:
    from genimg_lib.losses import g_loss_nonsaturating, g_loss_saturating

    sat, ns = (float(a) for a in answer)
    logit = torch.logit(torch.tensor([0.01], dtype=torch.float64)).requires_grad_(True)
    (g_sat,) = torch.autograd.grad(g_loss_saturating(logit), logit)
    (g_ns,) = torch.autograd.grad(g_loss_nonsaturating(logit), logit)
    ok = abs(sat - g_sat.item()) < 1e-4 and abs(ns - g_ns.item()) < 1e-4
    return ok, "" if ok else "Differentiate log(1 - sigmoid(l)) and -log sigmoid(l) with respect to l."


# ---------------------------------------------------------------------------
# Part III: A GAN you can watch
# ---------------------------------------------------------------------------
def _ring_setup():
    import math

    angles = 2 * math.pi * torch.arange(8) / 8
    return 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1), 0.05


@exercise("gan_02_watch.1")
def _smeared_generator(answer: Any) -> tuple[bool, str]:
    import math

    from genimg_lib.gan_lab import ring_mode_coverage

    means, std = _ring_setup()
    t = (torch.arange(400_000, dtype=torch.float64) + 0.5) / 400_000 * 2 * math.pi
    circle = 2.0 * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    expected = ring_mode_coverage(circle.float(), means, std).hq_fraction
    ok = abs(float(answer) - expected) < 2e-3
    hint = "Find the angle on either side of a mode at which the chord to the mode centre is 0.15."
    return ok, "" if ok else hint


@exercise("gan_02_watch.2")
def _collapsed_generator(answer: Any) -> tuple[bool, str]:
    from genimg_lib.gan_lab import ring_mode_coverage

    means, std = _ring_setup()
    cov = ring_mode_coverage(means[:1].repeat(1000, 1), means, std)
    modes, hq = answer
    ok = int(modes) == cov.modes_covered and abs(float(hq) - cov.hq_fraction) < 1e-6
    return ok, "" if ok else "Every sample sits on one mode centre: how many modes get samples, and are they within 3 sigma?"
