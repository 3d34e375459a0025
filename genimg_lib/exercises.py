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
# Part II: Building a VAE step by step; Exploring the latent space
# ---------------------------------------------------------------------------
@exercise("vae_03_building.1")
def _kl_by_hand(answer: Any) -> tuple[bool, str]:
    import math

    from genimg_lib.losses import gaussian_kl

    mu = torch.tensor([[1.0, 0.0, -1.0]])
    logvar = torch.tensor([[0.0, math.log(4.0), -math.log(4.0)]])
    expected = gaussian_kl(mu, logvar).item()
    ok = abs(float(answer) - expected) < 1e-4
    return ok, "" if ok else "Use sigma^2 = exp(logvar) = (1, 4, 1/4) in 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1)."


@exercise("vae_03_building.2")
def _conv_decoder_parameters(answer: Any) -> tuple[bool, str]:
    from genimg_lib.models import ConvDecoder, count_parameters

    expected = count_parameters(ConvDecoder(16, channels=32))
    ok = int(answer) == expected
    return ok, "" if ok else (
        "Add weights and biases: Linear(16, 64*7*7), ConvTranspose2d(64, 32, 4) and "
        "ConvTranspose2d(32, 1, 4); a transposed convolution's weight is in x out x 4 x 4."
    )


def _shipped_test_codes(name: str) -> torch.Tensor:
    """The posterior means of the static binarized test split under a shipped model."""
    from genimg_lib.data import load_mnist5k
    from genimg_lib.models import load_model

    model = load_model(name)
    x, _ = load_mnist5k("test", binarize="static")
    with torch.no_grad():
        mu, _ = model.encode(x)
    return mu


@exercise("vae_04_latent_space.1")
def _prior_mass_of_the_box(answer: Any) -> tuple[bool, str]:
    mu = _shipped_test_codes("vae_mlp_z2")
    lo, hi = torch.quantile(mu, 0.01, dim=0), torch.quantile(mu, 0.99, dim=0)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = torch.prod(normal.cdf(hi) - normal.cdf(lo)).item()
    ok = abs(float(answer) - expected) < 2e-3
    return ok, "" if ok else (
        "Under N(0, I) the two coordinates are independent: multiply, for each axis, "
        "Phi(99th percentile) - Phi(1st percentile) of the encoded test means."
    )


@exercise("vae_04_latent_space.2")
def _active_units_conv(answer: Any) -> tuple[bool, str]:
    mu = _shipped_test_codes("vae_conv_z16")
    expected = int((mu.var(dim=0) > 0.01).sum().item())
    ok = int(answer) == expected
    return ok, "" if ok else "Encode the test set, take the variance of each coordinate of mu over the images, count those above 0.01."
