"""Checkers for the exercises at the end of each chapter.

Chapter: every chapter. An exercise cell ends with ``check("<chapter>.<n>", answer)``,
where ``<chapter>`` is the notebook's file name, e.g. ``check("vae_03_building.1", answer)``;
it prints whether the answer is right and, if not, a hint. The expected values are
computed here from the library, never typed in, so they stay true when the data or the
code changes. Each checker rejects the plausible wrong answers (an obvious guess, a
classic slip); ``tests/test_exercises.py`` holds at least two for each.

Add a checker with the ``@exercise("<chapter>.<n>")`` decorator: a function that takes
the reader's answer and returns ``(ok, message)``. The checkers below are in book order.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from genimg_lib.checkpoints import load_model
from genimg_lib.data import load_mnist5k, make_toy
from genimg_lib.fewlabels import choose_labelled, encode_means
from genimg_lib.gan_lab import ring_mode_coverage
from genimg_lib.invert import fill_mean, make_mask, psnr
from genimg_lib.losses import (
    bits_per_dim,
    d_loss_minimax,
    g_loss_nonsaturating,
    g_loss_saturating,
    gaussian_kl,
    gaussian_log_likelihood,
    ppca_log_likelihood,
    ppca_posterior,
)
from genimg_lib.measures import fid, precision_recall
from genimg_lib.models import ConvDecoder, DCGANDiscriminator, DCGANGenerator, count_parameters

_CHECKERS: dict[str, Callable[[Any], tuple[bool, str]]] = {}
_VERDICTS: dict[str, dict[str, str]] = {}

#: The three verdicts a checker can give.
CORRECT, WRONG, NOT_ANSWERED = "correct", "wrong", "not answered"


def exercise(key: str) -> Callable:
    """Register a checker under ``key``: the chapter's file name and the exercise number,
    e.g. ``"getting_started.1"``."""

    def register(fn: Callable[[Any], tuple[bool, str]]) -> Callable:
        if key in _CHECKERS:
            raise ValueError(f"exercise {key!r} is registered twice")
        _CHECKERS[key] = fn
        return fn

    return register


def checker_keys(chapter: str | None = None) -> list[str]:
    """The registered exercise keys (of one chapter, e.g. ``"vae_03_building"``), in book order."""
    return [k for k in _CHECKERS if chapter is None or k.rsplit(".", 1)[0] == chapter]


def grade(key: str, answer: Any) -> tuple[str, str]:
    """Grade ``answer`` for exercise ``key`` without printing: ``(verdict, message)``.

    The verdict is ``"correct"``, ``"wrong"`` or, when the answer is still the blank
    ``...`` (Ellipsis) of an exercise cell, ``"not answered"``. A malformed answer is a
    wrong answer whose message says why it could not be checked.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a string such as 'vae_03_building.1' (chapter file name, dot, number), "
                        f"got {key!r} ({type(key).__name__})")
    if key not in _CHECKERS:
        raise ValueError(f"unknown exercise {key!r}; known: {checker_keys()}")
    if answer is Ellipsis:
        return NOT_ANSWERED, "(replace ... with your answer)"
    try:
        ok, message = _CHECKERS[key](answer)
    except Exception as err:  # a malformed answer is a wrong answer, with the reason
        ok, message = False, f"could not check this answer: {type(err).__name__}: {err}"
    return (CORRECT if ok else WRONG), message


def check(key: str, answer: Any) -> None:
    """Grade ``answer`` for exercise ``key``, print the verdict and record it (see `verdicts`).

    Prints ``"<key>: correct."``, ``"<key>: not yet. <hint>"`` or, for the blank
    ``...``, ``"<key>: not answered yet (replace ... with your answer)"``. Returns None, so that a notebook cell
    ending in ``check(...)`` displays only the printed verdict.
    """
    verdict, message = grade(key, answer)
    _VERDICTS[key] = {"verdict": verdict, "message": message}
    label = {CORRECT: "correct.", WRONG: "not yet.", NOT_ANSWERED: "not answered yet"}[verdict]
    print(f"{key}: {label} {message}".rstrip())


def verdicts() -> dict[str, dict[str, str]]:
    """Every verdict `check` printed in this session: ``{key: {"verdict", "message"}}``."""
    return {k: dict(v) for k, v in _VERDICTS.items()}


# ---------------------------------------------------------------------------
# Getting started
# ---------------------------------------------------------------------------
@exercise("getting_started.1")
def _mean_pixel_of_ones(answer: Any) -> tuple[bool, str]:
    x, y = load_mnist5k("train")
    expected = x[y == 1].mean().item()
    ok = abs(float(answer) - expected) < 1e-4
    return ok, "" if ok else "Select the training images whose label is 1, then average every pixel."


@exercise("getting_started.2")
def _ring_density_at_mode(answer: Any) -> tuple[bool, str]:
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
    expected = 100 / (28 * 28 * math.log(2))
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "Divide the nats by the number of pixels, then convert nats to bits (divide by ln 2)."


@exercise("generative_models.2")
def _best_log_likelihood(answer: Any) -> tuple[bool, str]:
    toy = make_toy("gaussian_1d", std=2.0)
    x = torch.linspace(-30, 30, 200_001)[:, None]
    log_p = toy.log_prob(x).double()
    expected = (log_p.exp() * log_p).sum().item() * (60 / 200_000)  # -H by quadrature
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "No model beats p_data itself; its expected log-likelihood is minus its entropy."


# ---------------------------------------------------------------------------
# Part II: From autoencoders to latent-variable models
# ---------------------------------------------------------------------------
def _ppca_1d_example(D: int = 784, w: float = 0.1, sigma2: float = 0.01):
    """The chapter's exercise model: d = 1, every entry of W equal to ``w``, mu = 0, x = mu."""
    W = torch.full((D, 1), w, dtype=torch.float64)
    mu = torch.zeros(D, dtype=torch.float64)
    return W, mu, sigma2


@exercise("vae_01_autoencoders.1")
def _ppca_posterior_std(answer: Any) -> tuple[bool, str]:
    W, mu, sigma2 = _ppca_1d_example()
    _, cov = ppca_posterior(mu[None], W, mu, sigma2)
    expected = cov[0, 0].sqrt().item()
    ok = abs(float(answer) - expected) / expected < 1e-3
    hint = "The posterior variance is sigma^2 / (W^T W + sigma^2); W^T W = D w^2. Take the square root."
    return ok, "" if ok else hint


@exercise("vae_01_autoencoders.2")
def _naive_mc_samples_needed(answer: Any) -> tuple[bool, str]:

    W, mu, sigma2 = _ppca_1d_example()
    x = mu[None]
    D = W.shape[0]
    # E_z[p(x|z)^2] = (4 pi sigma^2)^(-D/2) N(x; mu, W W^T + sigma^2/2 I)
    log_second_moment = -D / 2 * math.log(4 * math.pi * sigma2) + ppca_log_likelihood(x, W, mu, sigma2 / 2).item()
    rel_var = math.exp(log_second_moment - 2 * ppca_log_likelihood(x, W, mu, sigma2).item()) - 1
    expected = rel_var / 0.1**2
    ok = abs(float(answer) - expected) / expected < 0.01
    hint = (
        "The relative variance of one draw is E[p(x|z)^2] / p(x)^2 - 1, and K draws divide it by K; "
        "you need K = relative variance / 0.1^2. Use p(x|z)^2 = (4 pi sigma^2)^(-D/2) N(x; Wz + mu, sigma^2/2 I)."
    )
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part II: Deriving the ELBO
# ---------------------------------------------------------------------------
@exercise("vae_02_elbo.1")
def _kl_by_hand(answer: Any) -> tuple[bool, str]:
    expected = gaussian_kl(torch.tensor([[1.0, -0.5]]), torch.tensor([[0.0, -1.0]])).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "Sum (mu^2 + sigma^2 - log sigma^2 - 1) / 2 over the two coordinates; sigma^2 = exp(logvar)."


def _chapter_ppca() -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Section 3's pPCA model of "Deriving the ELBO", rebuilt: ``W`` (10, 2), ``mu_x`` (10,), ``sigma2``, ``x`` (5, 10)."""
    D, d, sigma2 = 10, 2, 0.25
    g = torch.Generator().manual_seed(1)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    mu_x = torch.randn(D, generator=g, dtype=torch.float64)
    z_true = torch.randn(5, d, generator=g, dtype=torch.float64)
    x = z_true @ W.T + mu_x + math.sqrt(sigma2) * torch.randn(5, D, generator=g, dtype=torch.float64)
    return W, mu_x, sigma2, x


@exercise("vae_02_elbo.2")
def _gap_is_a_kl(answer: Any) -> tuple[bool, str]:
    W, mu_x, sigma2, x = _chapter_ppca()
    d = W.shape[1]
    post_mean, post_cov = ppca_posterior(x[:1], W, mu_x, sigma2)
    prior = MultivariateNormal(torch.zeros(d, dtype=torch.float64), covariance_matrix=torch.eye(d, dtype=torch.float64))
    expected = kl_divergence(prior, MultivariateNormal(post_mean[0], covariance_matrix=post_cov)).item()
    ok = abs(float(answer) - expected) < 1e-4 * max(1.0, abs(expected))
    hint = ("The gap is KL(q || p(z|x)) with q = N(0, I) and p(z|x) from losses.ppca_posterior for the "
            "section's first data point x[0] (KL in that order).")
    return ok, "" if ok else hint


@exercise("vae_02_elbo.3")
def _mse_sigma(answer: Any) -> tuple[bool, str]:

    sigma, constant = (float(a) for a in answer)
    expected_sigma = math.sqrt(0.5)  # SSE / (2 sigma^2) = SSE
    zeros = torch.zeros(1, 784, dtype=torch.float64)
    expected_constant = -gaussian_log_likelihood(zeros, zeros, logvar=math.log(0.5)).item()  # -log p at zero error
    ok = abs(sigma - expected_sigma) < 1e-3 and abs(constant - expected_constant) < 0.1
    hint = "Match SSE / (2 sigma^2) with SSE; the constant is what -log p(x|z) is when the error is zero."
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part II: Building a VAE step by step
# ---------------------------------------------------------------------------
@exercise("vae_03_building.1")
def _kl_of_one_encoder_output(answer: Any) -> tuple[bool, str]:

    mu = torch.tensor([[1.0, 0.0, -1.0]])
    logvar = torch.tensor([[0.0, math.log(4.0), -math.log(4.0)]])
    expected = gaussian_kl(mu, logvar).item()
    ok = abs(float(answer) - expected) < 1e-4
    return ok, "" if ok else "Use sigma^2 = exp(logvar) = (1, 4, 1/4) in 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1)."


@exercise("vae_03_building.2")
def _conv_decoder_parameters(answer: Any) -> tuple[bool, str]:
    expected = count_parameters(ConvDecoder(16, channels=32))
    ok = int(answer) == expected
    return ok, "" if ok else (
        "Add weights and biases: Linear(16, 64*7*7), ConvTranspose2d(64, 32, 4) and "
        "ConvTranspose2d(32, 1, 4); a transposed convolution's weight is in x out x 4 x 4."
    )


# ---------------------------------------------------------------------------
# Part II: Exploring the latent space
# ---------------------------------------------------------------------------
def _shipped_test_codes(name: str) -> torch.Tensor:
    """The posterior means of the static binarized test split under a shipped model."""

    model = load_model(name)
    x, _ = load_mnist5k("test", binarize="static")
    with torch.no_grad():
        mu, _ = model.encode(x)
    return mu


@exercise("vae_04_latent_space.1")
def _prior_mass_outside_the_box(answer: Any) -> tuple[bool, str]:
    mu = _shipped_test_codes("vae_mlp_z2")
    lo, hi = torch.quantile(mu, 0.01, dim=0), torch.quantile(mu, 0.99, dim=0)
    normal = Normal(0.0, 1.0)
    expected = 1.0 - torch.prod(normal.cdf(hi) - normal.cdf(lo)).item()
    ok = abs(float(answer) - expected) < 0.02 * expected
    return ok, "" if ok else (
        "Under N(0, I) the two coordinates are independent: the box's mass is the product over the "
        "axes of Phi(99th percentile) - Phi(1st percentile) of the encoded test means; answer 1 minus it."
    )


@exercise("vae_04_latent_space.2")
def _active_units_conv(answer: Any) -> tuple[bool, str]:
    mu = _shipped_test_codes("vae_conv_z16")
    expected = int((mu.var(dim=0) > 0.01).sum().item())
    ok = int(answer) == expected
    return ok, "" if ok else "Encode the test set, take the variance of each coordinate of mu over the images, count those above 0.01."


# ---------------------------------------------------------------------------
# Part III: Deriving the GAN objective
# ---------------------------------------------------------------------------
@exercise("gan_01_objective.1")
def _c_of_g_disjoint(answer: Any) -> tuple[bool, str]:

    # two far-apart point masses: D* is 1 on the data and 0 on the fakes, so C = V(D*, G)
    big = torch.tensor([60.0], dtype=torch.float64)
    expected = -d_loss_minimax(big, -big).item()
    ok = abs(float(answer) - expected) < 1e-3
    hint = f"With disjoint supports JSD = log 2 (about {math.log(2):.4f}); then use C = -log 4 + 2 JSD."
    return ok, "" if ok else hint


@exercise("gan_01_objective.2")
def _d_star_at_zero(answer: Any) -> tuple[bool, str]:
    x = torch.tensor(0.0)
    log_p_data = Normal(0.0, 1.0).log_prob(x)
    log_p_g = Normal(2.0, 1.0).log_prob(x)
    expected = torch.sigmoid(log_p_data - log_p_g).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "D*'s logit is log p_data(x) - log p_g(x); D* is its sigmoid."


@exercise("gan_01_objective.3")
def _gradients_at_confident_d(answer: Any) -> tuple[bool, str]:
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
    angles = 2 * math.pi * torch.arange(8) / 8
    return 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1), 0.05


@exercise("gan_02_watch.1")
def _smeared_generator(answer: Any) -> tuple[bool, str]:

    means, std = _ring_setup()
    t = (torch.arange(400_000, dtype=torch.float64) + 0.5) / 400_000 * 2 * math.pi
    circle = 2.0 * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    expected = ring_mode_coverage(circle.float(), means, std).hq_fraction
    ok = abs(float(answer) - expected) < 2e-3
    hint = "Find the angle on either side of a mode at which the chord to the mode centre is 0.15."
    return ok, "" if ok else hint


@exercise("gan_02_watch.2")
def _spread_collapsed_generator(answer: Any) -> tuple[bool, str]:
    means, std = _ring_setup()
    g = torch.Generator().manual_seed(0)
    samples = means[0] + 2 * std * torch.randn(200_000, 2, generator=g)  # one mode, twice as spread
    cov = ring_mode_coverage(samples, means, std)
    modes, hq = answer
    ok = int(modes) == cov.modes_covered and abs(float(hq) - cov.hq_fraction) < 5e-3
    return ok, "" if ok else (
        "Every sample is near mode 0, so count the modes that get samples. For the fraction: a sample "
        "is high quality when its distance r to the centre is at most 3 sigma, and for a 2-D Gaussian "
        "of std s, P(r <= a) = 1 - exp(-a^2 / (2 s^2))."
    )


# ---------------------------------------------------------------------------
# Part III: DCGAN step by step
# ---------------------------------------------------------------------------
@exercise("gan_03_dcgan.1")
def _full_width_discriminator(answer: Any) -> tuple[bool, str]:
    expected = count_parameters(DCGANDiscriminator(width=64))
    ok = int(answer) == expected
    return ok, "" if ok else "Add the three layers: conv 1->64, conv 64->128 (4x4 kernels, with biases), linear 128*7*7->1."


@exercise("gan_03_dcgan.2")
def _nonsaturating_at_point_one(answer: Any) -> tuple[bool, str]:
    logit = torch.logit(torch.tensor([0.1], dtype=torch.float64))
    expected = g_loss_nonsaturating(logit).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "The loss is -log D(G(z)); with D = 0.1 on every fake it is -log 0.1."


# ---------------------------------------------------------------------------
# Part III: Making GANs train
# ---------------------------------------------------------------------------
@exercise("gan_04_making_gans_train.1")
def _w1_two_gaussians(answer: Any) -> tuple[bool, str]:
    # W1 in 1-D is the integral over u of |F^-1(u) - G^-1(u)|, done here by quadrature.
    u = (torch.arange(400_000, dtype=torch.float64) + 0.5) / 400_000
    p, q = Normal(0.0, 1.0), Normal(1.0, 2.0)
    expected = (p.icdf(u) - q.icdf(u)).abs().mean().item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else (
        "In 1-D the optimal plan couples equal quantiles: W1 = E|F^-1(U) - G^-1(U)| with U uniform. "
        "Here the quantiles differ by 1 + eps with eps ~ N(0, 1): find E|1 + eps| (not just the shift)."
    )


@exercise("gan_04_making_gans_train.2")
def _spectral_norm_2x2(answer: Any) -> tuple[bool, str]:
    w = torch.tensor([[3.0, 0.0], [4.0, 5.0]], dtype=torch.float64)
    expected = torch.linalg.matrix_norm(w, ord=2).item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "sigma(W) is the square root of the largest eigenvalue of W^T W."


# ---------------------------------------------------------------------------
# Part IV: Measuring generative models
# ---------------------------------------------------------------------------
@exercise("evaluation.1")
def _mixture_penalty_bits(answer: Any) -> tuple[bool, str]:

    expected = float(bits_per_dim(math.log(100)))
    ok = abs(float(answer) - expected) < 1e-4
    hint = (
        "log p_mix(x) >= log(0.01) + log p_good(x), so the NLL grows by at most log 100 nats "
        "per image; divide by 784 ln 2 to get bits per dimension."
    )
    return ok, "" if ok else hint


@exercise("evaluation.2")
def _precision_with_an_outlier(answer: Any) -> tuple[bool, str]:
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [20.0]])
    fake = torch.tensor([[0.5], [12.0], [40.0]])
    expected, _ = precision_recall(real, fake, k=1)
    ok = abs(float(answer) - expected) < 1e-6
    hint = (
        "Give each real point a ball whose radius is the distance to its nearest other real "
        "point; the outlier at 20 gets a very large ball. Then count the fakes inside any ball."
    )
    return ok, "" if ok else hint


@exercise("evaluation.3")
def _fid_between_test_halves(answer: Any) -> tuple[bool, str]:

    x, _ = load_mnist5k("test")
    expected = fid(x[:500], x[500:])
    ok = abs(float(answer) - expected) < 1e-3 * max(1.0, abs(expected))
    hint = "Split the 1,000 test images into the first and last 500 and call measures.fid on them."
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part V: Interpolation and latent arithmetic (edit_01_interpolation)
# ---------------------------------------------------------------------------
@exercise("edit_01_interpolation.1")
def _lerp_squared_norm(answer: Any) -> tuple[bool, str]:
    # z(t) = (1 - t) z0 + t z1 with z0, z1 independent N(0, I_64): each coordinate has
    # variance (1 - t)^2 + t^2, so E||z(t)||^2 = 64 ((1 - t)^2 + t^2) (checked by Monte Carlo below)
    d, t = 64, 0.25
    expected = d * ((1 - t) ** 2 + t**2)
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(20_000, d, generator=g), torch.randn(20_000, d, generator=g)
    monte_carlo = ((1 - t) * z0 + t * z1).pow(2).sum(1).mean().item()
    assert abs(monte_carlo - expected) < 0.3, (monte_carlo, expected)  # 6 standard errors
    ok = abs(float(answer) - expected) < 0.05
    return ok, "" if ok else (
        "Each coordinate of (1 - t) z0 + t z1 is a sum of two independent Gaussians: its variance is "
        "(1 - t)^2 + t^2, not 1 and not 1 - t. Add it up over the 64 coordinates."
    )


@exercise("edit_01_interpolation.2")
def _lerp_midpoints_below_the_shell(answer: Any) -> tuple[bool, str]:
    from scipy.stats import chi2

    d = 64
    q01 = chi2.ppf(0.01, d)  # ||z||^2 of a prior sample is chi-squared with 64 degrees of freedom
    expected = float(chi2.cdf(2 * q01, d))  # the midpoint's ||m||^2 is half a chi-squared(64)
    ok = abs(float(answer) - expected) < 0.005
    return ok, "" if ok else (
        "||z||^2 of a prior sample is chi-squared with 64 degrees of freedom; the lerp midpoint is "
        "N(0, I/2), so ||m||^2 is half of one. Find the 1 % quantile q of chi2(64) (scipy.stats.chi2.ppf), "
        "then P(||m||^2 < q) = P(chi2(64) < 2 q)."
    )


@exercise("edit_01_interpolation.3")
def _slerp_unequal_norms(answer: Any) -> tuple[bool, str]:
    # z0 = 3 e1, z1 = 5 e2: omega = pi / 2, both weights sin(pi/4) / sin(pi/2) = 1/sqrt(2)
    z0 = torch.tensor([3.0, 0.0], dtype=torch.float64)
    z1 = torch.tensor([0.0, 5.0], dtype=torch.float64)
    omega = math.acos(float(z0 @ z1) / float(z0.norm() * z1.norm()))
    mid = (math.sin(omega / 2) * z0 + math.sin(omega / 2) * z1) / math.sin(omega)
    expected = mid.norm().item()
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else (
        "Use slerp's formula with omega = pi/2 and t = 1/2: both weights are sin(pi/4) / sin(pi/2). "
        "The result is not the average of the norms: slerp keeps the norm only when the two are equal."
    )




# ---------------------------------------------------------------------------
# Part V: Attribute vectors, measured with morphometrics (edit_02_attributes)
# ---------------------------------------------------------------------------
def _exercise_codes() -> tuple[torch.Tensor, torch.Tensor]:
    """The codes and attribute of edit_02_attributes.1: 500 codes in 4-D, a = 2 z_0 - z_2 + noise."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 4, generator=g)
    a = 2 * z[:, 0] - z[:, 2] + 0.1 * torch.randn(500, generator=g)
    return z, a


@exercise("edit_02_attributes.1")
def _regression_slope(answer: Any) -> tuple[bool, str]:
    import numpy as np

    z, a = _exercise_codes()
    design = np.c_[z.double().numpy(), np.ones(len(z))]
    coef, *_ = np.linalg.lstsq(design, a.double().numpy(), rcond=None)
    expected = float(np.linalg.norm(coef[:-1]))  # the step along w / |w| changes a by |w| per unit
    ok = abs(float(answer) - expected) < 0.01
    return ok, "" if ok else (
        "Fit a = w.z + b by least squares (edit.regression_direction does it); a unit step along "
        "u = w / |w| changes the prediction by w.u = |w|, the length of w (not its largest entry, "
        "not the sum of its entries, not |w|^2)."
    )


@exercise("edit_02_attributes.2")
def _mean_difference_angle(answer: Any) -> tuple[bool, str]:
    # z ~ N(0, S), S = [[1, 0.8], [0.8, 1]], a = z_1. Regression: w = (1, 0). For Gaussian codes
    # E[z | a] = S w a / (w' S w), so the difference of group means is parallel to S w = (1, 0.8).
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    w = torch.tensor([1.0, 0.0], dtype=torch.float64)
    v = cov @ w
    expected = math.degrees(math.acos(float(v @ w) / float(v.norm() * w.norm())))
    ok = abs(float(answer) - expected) < 0.5
    return ok, "" if ok else (
        "The regression finds w = (1, 0). For Gaussian codes the mean of z given a is proportional "
        "to S w = (1, 0.8): the groups also differ along z_2, which correlates with z_1. Give the angle "
        "between (1, 0) and (1, 0.8) in degrees."
    )


@exercise("edit_02_attributes.3")
def _renorm_shrinks_the_step(answer: Any) -> tuple[bool, str]:
    z = torch.zeros(64, dtype=torch.float64)
    z[0] = 8.0  # a code of norm 8, the prior's typical norm in 64 dimensions
    u = torch.zeros(64, dtype=torch.float64)
    u[1] = 1.0  # a unit direction orthogonal to it
    edited = z + 3.0 * u
    renormed = edited * z.norm() / edited.norm()
    expected = float(renormed @ u)
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else (
        "z + 3u has norm sqrt(64 + 9); rescaling it to norm 8 multiplies every component, the one "
        "along u too, by 8 / sqrt(73)."
    )




# ---------------------------------------------------------------------------
# Part V: Inversion (edit_03_inversion)
# ---------------------------------------------------------------------------
@exercise("edit_03_inversion.1")
def _first_adam_step_length(answer: Any) -> tuple[bool, str]:
    code = torch.zeros(64, requires_grad=True)
    adam = torch.optim.Adam([code], lr=0.1)
    code.grad = torch.linspace(-3.0, 2.0, 64) + 0.01  # any gradient with no zero coordinate
    adam.step()
    expected = code.detach().norm().item()
    ok = abs(float(answer) - expected) < 1e-3
    hint = (
        "After bias correction Adam's first step is lr * g / |g| in every coordinate: each of the 64 "
        "coordinates moves by lr. The distance is the Euclidean length of that step."
    )
    return ok, "" if ok else hint


def _exercise_linear_decoder() -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """W, the first test digit (flattened), b and lambda of edit_03_inversion.2."""
    W = 0.02 * torch.randn(784, 5, generator=torch.Generator().manual_seed(0))
    x_test, _ = load_mnist5k("test")
    return W.double(), x_test[0].flatten().double(), 0.5, 0.1


@exercise("edit_03_inversion.2")
def _ridge_inversion(answer: Any) -> tuple[bool, str]:
    W, x, b, lam = _exercise_linear_decoder()
    expected = torch.linalg.solve(W.T @ W + lam / 2 * torch.eye(5, dtype=W.dtype), W.T @ (x - b))
    got = torch.as_tensor(answer, dtype=torch.float64).detach().cpu().flatten()
    if got.shape != (5,):
        return False, f"expected 5 numbers (one code), got {tuple(got.shape)}."
    ok = bool((got - expected).norm() < 1e-3 * expected.norm())
    hint = (
        "Set the gradient 2 W^T (W z + b - x) + lambda z to zero and solve: "
        "z = (W^T W + lambda/2 I)^-1 W^T (x - b). Watch the factor 1/2 and the bias b."
    )
    return ok, "" if ok else hint


@exercise("edit_03_inversion.3")
def _norm_tail_probability(answer: Any) -> tuple[bool, str]:
    # ||z||^2 ~ chi^2_64, whose upper tail is the regularized upper incomplete gamma Q(32, r^2 / 2)
    expected = torch.special.gammaincc(torch.tensor(32.0, dtype=torch.float64),
                                       torch.tensor(11.0**2 / 2, dtype=torch.float64)).item()
    ok = abs(float(answer) - expected) < 1e-3 * expected
    hint = (
        "||z||^2 follows a chi-square distribution with 64 degrees of freedom: "
        "P(||z|| >= 11) = P(chi2_64 >= 121). Square the norm first."
    )
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part V: Inpainting and denoising with a generative prior (edit_04_inpainting)
# ---------------------------------------------------------------------------
@exercise("edit_04_inpainting.1")
def _psnr_flattery_centre_mask(answer: Any) -> tuple[bool, str]:
    missing = int((1 - make_mask("centre")).sum())  # 144 of 784 pixels
    expected = 10 * math.log10(784 / missing)
    ok = abs(float(answer) - expected) < 0.01
    hint = (
        "With the observed pixels exact, the MSE over all pixels is the missing pixels' MSE times the "
        "fraction f of pixels that are missing; 10 log10(1 / (f MSE)) - 10 log10(1 / MSE) = 10 log10(1 / f)."
    )
    return ok, "" if ok else hint


@exercise("edit_04_inpainting.2")
def _map_prior_weight(answer: Any) -> tuple[bool, str]:
    sigma = 0.3
    expected = 2 * sigma**2
    ok = abs(float(answer) - expected) < 1e-6
    hint = (
        "-log p(z | x) = ||g(z) - x||^2 / (2 sigma^2) + ||z||^2 / 2 + const; multiply by 2 sigma^2 "
        "to get ||g(z) - x||^2 + (lambda / 2) ||z||^2 and read off lambda."
    )
    return ok, "" if ok else hint


@exercise("edit_04_inpainting.3")
def _mean_fill_psnr(answer: Any) -> tuple[bool, str]:
    x_test, _ = load_mnist5k("test")
    x_train, _ = load_mnist5k("train")
    x = x_test[:100]
    mask = make_mask("centre", 100)
    expected = psnr(fill_mean(x, mask, x_train), x, 1 - mask).mean().item()
    ok = abs(float(answer) - expected) < 0.01
    hint = (
        "Fill with invert.fill_mean(x, mask, x_train), then average invert.psnr(..., where=1 - mask) "
        "over the 100 digits: the PSNR of each image, on its missing pixels, then the mean."
    )
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part V: The latent studio (edit_05_studio)
# ---------------------------------------------------------------------------
@exercise("edit_05_studio.1")
def _interpolation_slider_value(answer: Any) -> tuple[bool, str]:
    # origin m = (z_a + z_b) / 2, direction d = (z_b - z_a) / 2: m + c d = lerp(z_a, z_b, (c + 1) / 2)
    t = 0.25
    expected = 2 * t - 1
    ok = abs(float(answer) - expected) < 1e-6
    hint = (
        "Write m + c d with m = (z_a + z_b) / 2 and d = (z_b - z_a) / 2 as (1 - t) z_a + t z_b: "
        "the weight of z_b is t = (1 + c) / 2. Solve for c; the slider runs from -1 (z_a) to 1 (z_b)."
    )
    return ok, "" if ok else hint


@exercise("edit_05_studio.2")
def _non_orthogonal_sliders(answer: Any) -> tuple[bool, str]:
    # two unit directions with u1 . u2 = 0.6; slider 1 moved from 0 to 1: z - z0 = u1
    rho = 0.6
    D = torch.tensor([[1.0, 0.0], [rho, math.sqrt(1 - rho**2)]], dtype=torch.float64)  # rows u1, u2 in 2-D
    step = D[0]
    slider_2 = (torch.linalg.pinv(D.T) @ step)[1].item()  # c = D^+ (z - z0), as LatentExplorer reads it
    projection = float(step @ D[1])
    got = [float(v) for v in answer]
    if len(got) != 2:
        return False, f"expected two numbers (slider 2's value, the projection on u2), got {len(got)}."
    ok = abs(got[0] - slider_2) < 1e-6 and abs(got[1] - projection) < 1e-6
    hint = (
        "The sliders show the coefficients c of z - z0 = c_1 u_1 + c_2 u_2 (the pseudo-inverse), not the "
        "projections u_k . (z - z0). Moving slider 1 adds u_1, whose coefficients are (1, 0); its "
        "projection on u_2 is u_1 . u_2."
    )
    return ok, "" if ok else hint


@exercise("edit_05_studio.3")
def _norm_after_orthogonal_step(answer: Any) -> tuple[bool, str]:
    z = torch.zeros(64, dtype=torch.float64)
    z[0] = 8.0  # a code on the prior's typical shell, ||z|| = sqrt(64)
    u = torch.zeros(64, dtype=torch.float64)
    u[1] = 1.0  # a unit direction orthogonal to z
    expected = (z + 3.0 * u).norm().item()
    ok = abs(float(answer) - expected) < 1e-3
    hint = (
        "The step is orthogonal to z, so Pythagoras applies to the lengths: ||z + 3u||^2 = ||z||^2 + 3^2 "
        "||u||^2. Lengths of orthogonal vectors do not add."
    )
    return ok, "" if ok else hint


# ---------------------------------------------------------------------------
# Part VI: VAE against GAN, and hybrids (practice_01_vae_vs_gan)
# ---------------------------------------------------------------------------
@exercise("practice_01_vae_vs_gan.1")
def _transposed_conv_macs(answer: Any) -> tuple[bool, str]:
    layer = DCGANGenerator(z_dim=64, width=32).net[2]  # ConvTranspose2d(64, 32, 4, 2, 1): 7x7 -> 14x14
    c_in, c_out = layer.in_channels, layer.out_channels
    kh, kw = layer.kernel_size
    expected = c_in * 7 * 7 * c_out * kh * kw  # every input value meets every weight of its channel once
    ok = int(answer) == expected
    return ok, "" if ok else (
        "Count from the input side: each of the 64 x 7 x 7 input values is multiplied by the "
        "32 x 4 x 4 weights that spread it over the output (not 14 x 14 x 32 outputs times "
        "64 x 4 x 4, which counts the zeros of the stride)."
    )


@exercise("practice_01_vae_vs_gan.2")
def _confident_mistake_cost(answer: Any) -> tuple[bool, str]:
    expected = -math.log(1 - 0.99) - (-math.log(1 - 0.7))  # the pixel is background (x = 0)
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else (
        "A background pixel (x = 0) costs -log(1 - p) nats under Bernoulli(p): compare p = 0.99 "
        "with p = 0.7, in nats (natural log), as the extra cost of the sharper decoder."
    )


@exercise("practice_01_vae_vs_gan.3")
def _d_loss_at_equilibrium(answer: Any) -> tuple[bool, str]:
    half = torch.zeros(4)  # logit 0: D(x) = 1/2 on real and fake alike
    expected = d_loss_minimax(half, half).item()
    ok = abs(float(answer) - expected) < 1e-4
    return ok, "" if ok else (
        "With D = 1/2 everywhere, loss_D = -log(1/2) on the real batch plus -log(1 - 1/2) on the "
        "fake batch: both terms count."
    )



# ---------------------------------------------------------------------------
# Part VI: Generative models for classification (practice_02_classification)
# ---------------------------------------------------------------------------
#: The two variants' accuracies (%) over five seeds of exercise 1, seed by seed.
_PAIRED_A = (76.0, 78.5, 74.9, 77.2, 75.4)
_PAIRED_B = (77.1, 79.2, 76.3, 78.0, 76.9)


@exercise("practice_02_classification.1")
def _paired_interval_half_width(answer: Any) -> tuple[bool, str]:
    from scipy.stats import t as student_t

    d = torch.tensor(_PAIRED_B, dtype=torch.float64) - torch.tensor(_PAIRED_A, dtype=torch.float64)
    expected = float(student_t.ppf(0.975, len(d) - 1)) * d.std().item() / math.sqrt(len(d))
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else (
        "Pair the seeds: d = b - a seed by seed, then t_{0.975, 4} * std(d, ddof=1) / sqrt(5) "
        "(scipy.stats.t.ppf(0.975, 4)); not the two arms' own standard deviations, not 1.96."
    )


@exercise("practice_02_classification.2")
def _parameter_ratio_pixels_codes(answer: Any) -> tuple[bool, str]:
    expected = (784 * 10 + 10) / (16 * 10 + 10)
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else "W has (features x classes) entries and b one per class: (784*10 + 10) / (16*10 + 10)."


@exercise("practice_02_classification.3")
def _nearest_neighbour_on_codes(answer: Any) -> tuple[bool, str]:
    vae = load_model("vae_conv_z16")
    x_train, y_train = load_mnist5k("train")
    x_test, y_test = load_mnist5k("test")
    codes_train, codes_test = encode_means(vae, x_train), encode_means(vae, x_test)
    shift, scale = codes_train.mean(0), codes_train.std(0)
    idx = choose_labelled(y_train, 10, seed=0)
    nearest = torch.cdist((codes_test - shift) / scale, (codes_train[idx] - shift) / scale).argmin(1)
    expected = (y_train[idx][nearest] == y_test).double().mean().item()
    ok = abs(float(answer) - expected) < 5e-4
    hint = ("Standardize every code with the mean and std of the 4,000 training codes, then give each "
            "test code the label of the nearest of the 100 labelled codes of seed 0 (torch.cdist, argmin); "
            "answer a fraction, not a percentage.")
    return ok, "" if ok else hint



# ---------------------------------------------------------------------------
# Part VI: Troubleshooting and FAQ (practice_03_troubleshooting)
# ---------------------------------------------------------------------------
@exercise("practice_03_troubleshooting.1")
def _guard_threshold(answer: Any) -> tuple[bool, str]:
    from genimg_lib.train import ExplosionGuard

    guard = ExplosionGuard()  # the default explode_factor, 1e4
    guard.check(1, loss_D=0.4)  # the reference is set at step 1: max(1, |0.4|)
    expected = guard.explode_factor * guard.reference["loss_D"]
    guard.check(2, loss_D=expected)  # the value itself passes (the rule is "more than")
    ok = abs(float(answer) - expected) <= 1e-6 * expected
    return ok, "" if ok else (
        "The reference is |loss_D| at step 1, but never less than 1 (read ExplosionGuard's rule); the guard "
        "stops a later step only when |loss_D| is more than explode_factor times the reference."
    )


@exercise("practice_03_troubleshooting.2")
def _mean_mse_is_a_huge_sigma(answer: Any) -> tuple[bool, str]:
    # mean over D = 784 pixels: SSE / D + KL = (SSE + D KL) / D, i.e. beta = D = 2 sigma^2
    D = 784
    expected = math.sqrt(D / 2)
    ok = abs(float(answer) - expected) < 1e-3 * expected
    return ok, "" if ok else (
        "A Gaussian decoder of fixed sigma gives SSE / (2 sigma^2) + KL + const, i.e. SSE + 2 sigma^2 KL up "
        "to a factor. Write the mean squared error over 784 pixels plus the KL the same way and solve "
        "2 sigma^2 = (the factor in front of the KL)."
    )


@exercise("practice_03_troubleshooting.3")
def _adam_first_step(answer: Any) -> tuple[bool, str]:
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.Adam([w], lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    w.grad = torch.full((1,), 1e-7, dtype=torch.float64)
    opt.step()  # bias-corrected: m = g, v = g^2, step = lr g / (|g| + eps)
    expected = abs(w.item())
    assert abs(expected - 2e-4 * 1e-7 / (1e-7 + 1e-8)) < 1e-12
    ok = abs(float(answer) - expected) < 0.01 * expected
    return ok, "" if ok else (
        "Adam divides the (bias-corrected) first moment by the square root of the second plus eps: after one "
        "step m = g and sqrt(v) = |g|, so the weight moves by lr |g| / (|g| + eps), nearly lr whatever the "
        "gradient's scale (not lr times g, as plain SGD would)."
    )


@exercise("practice_03_troubleshooting.4")
def _deeper_at_equal_compute(answer: Any) -> tuple[bool, str]:
    from genimg_lib.models import VAE
    from genimg_lib.troubleshoot import linear_macs, steps_at_equal_compute

    shallow = linear_macs(VAE(z_dim=16, arch="mlp", hidden_dims=[256]))
    deep = linear_macs(VAE(z_dim=16, arch="mlp", hidden_dims=[256] * 8))
    expected = steps_at_equal_compute(500, shallow, deep)
    ok = abs(float(answer) - expected) <= 1
    return ok, "" if ok else (
        "Count the multiply-accumulates of the Linear layers of both VAEs (troubleshoot.linear_macs: encoder "
        "and decoder), then scale 500 steps by their ratio. The extra layers are 256 x 256, far cheaper than "
        "the 784-wide ones: not 8 times the compute."
    )


# ---------------------------------------------------------------------------
# Part VI: Tools and where the field went (practice_04_outlook)
# ---------------------------------------------------------------------------
@exercise("practice_04_outlook.1")
def _diffusion_weight(answer: Any) -> tuple[bool, str]:
    from genimg_lib.diffusion import elbo_weight, log_snr_schedule

    schedule = log_snr_schedule(100)
    expected = elbo_weight(50, schedule).item()
    snr = schedule.alpha_bars / (1 - schedule.alpha_bars)
    assert abs(expected - 0.5 * (snr[48] / snr[49] - 1).item()) < 1e-9  # lambda_t = (SNR_{t-1} / SNR_t - 1) / 2
    ok = abs(float(answer) - expected) < 1e-3 * expected
    return ok, "" if ok else (
        "Write lambda_t with SNR_t = abar_t / (1 - abar_t): it is (SNR_{t-1} / SNR_t - 1) / 2. The schedule "
        "lowers log SNR by 20 / 100 per step, so the ratio is exp(0.2) (not 1 + 0.2)."
    )


@exercise("practice_04_outlook.2")
def _short_chain_prior_term(answer: Any) -> tuple[bool, str]:
    from genimg_lib.diffusion import linear_schedule, prior_kl, q_mean_var

    schedule = linear_schedule(10, 1e-4, 0.2)
    x0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    expected = prior_kl(x0, schedule).item()
    mean, var = q_mean_var(x0, 10, schedule)  # the same KL from torch.distributions
    check = kl_divergence(Normal(mean, var.sqrt().expand_as(mean)), Normal(0.0, 1.0)).sum().item()
    assert abs(expected - check) < 1e-9
    ok = abs(float(answer) - expected) < 1e-3
    return ok, "" if ok else (
        "q(x_T | x_0) = N(sqrt(abar_T) x_0, (1 - abar_T) I) with abar_T the product of (1 - beta_t) over the "
        "10 steps; the KL to N(0, I) has a mean part and a variance part (both coordinates)."
    )


@exercise("practice_04_outlook.3")
def _truncation_kl(answer: Any) -> tuple[bool, str]:
    d, psi = 64, 0.7
    one = torch.ones((), dtype=torch.float64)
    truncated, prior = Normal(0 * one, psi * one), Normal(0 * one, one)
    expected = d * kl_divergence(truncated, prior).item()  # KL(N(0, psi^2 I) || N(0, I)), summed over d
    assert abs(expected - d / 2 * (psi**2 - 1 - math.log(psi**2))) < 1e-9
    ok = abs(float(answer) - expected) < 1e-3 * expected
    return ok, "" if ok else (
        "The truncated codes psi z are N(0, psi^2 I): KL(N(0, psi^2 I) || N(0, I)) = d/2 (psi^2 - 1 - ln psi^2). "
        "Mind the direction: from the distribution the samples come from, to the prior."
    )
