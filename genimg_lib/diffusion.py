r"""A denoising diffusion model (DDPM, Ho et al. 2020) on the book's 2-D toys, and its loss as a weighted ELBO.

Chapter: Tools and where the field went (Part VI, ``book/practice_04_outlook.ipynb``), where
it is the small runnable bridge from the VAEs of Part II to diffusion models.

The forward process adds Gaussian noise in :math:`T` steps with variances
:math:`\beta_1, \dots, \beta_T` (`linear_schedule`):

.. math:: q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{\alpha_t}\, x_{t-1},\ \beta_t I\big),\qquad
   \alpha_t = 1 - \beta_t,\quad \bar\alpha_t = \textstyle\prod_{s \le t} \alpha_s ,

so that :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I)`
(`q_mean_var`, `q_sample`). The model is a hierarchical VAE with a fixed encoder: the
decoder :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)` predicts
the noise, :math:`\mu_\theta = (x_t - \beta_t \epsilon_\theta(x_t, t) / \sqrt{1 - \bar\alpha_t}) / \sqrt{\alpha_t}`
(`p_mean`), with :math:`\sigma_t^2 = \tilde\beta_t` for :math:`t \ge 2` and :math:`\sigma_1^2 = \beta_1`
(`p_variance`). Its negative ELBO is

.. math:: -\mathrm{ELBO}(x_0) = \mathrm{KL}\big(q(x_T\mid x_0)\,\|\,\mathcal N(0, I)\big)
   + \sum_{t=1}^{T} \lambda_t\, \mathbb E_\epsilon \lVert \epsilon - \epsilon_\theta(x_t, t)\rVert^2
   + \tfrac d2 \log(2\pi\beta_1),
   \qquad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1 - \bar\alpha_t)}

(`elbo_weight`, `negative_elbo`): each KL between the Gaussian posterior
:math:`q(x_{t-1}\mid x_t, x_0)` (`q_posterior`) and :math:`p_\theta(x_{t-1}\mid x_t)` is the
noise-prediction error times :math:`\lambda_t`. Ho et al.'s "simple" loss drops the weights
(`diffusion_loss` with ``weighting="simple"``). Times ``t`` are integers in ``1..T``; points
are ``(N, d)`` tensors; everything that depends on the schedule is computed in float64.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from genimg_lib.data import ToyDistribution, check_int, check_number
from genimg_lib.monitor import ExplosionGuard, History, progress

LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# The noise schedule
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    r"""A noise schedule: :math:`\beta_t`, :math:`\alpha_t`, :math:`\bar\alpha_t` and :math:`\tilde\beta_t` for ``t = 1..T``.

    Every tensor has shape ``(T,)`` (float64) and index ``t - 1`` holds step ``t``:
    ``betas``, ``alphas`` = 1 - betas, ``alpha_bars`` (cumulative products),
    ``alpha_bars_prev`` (:math:`\bar\alpha_{t-1}`, with :math:`\bar\alpha_0 = 1`) and
    ``posterior_variances`` :math:`\tilde\beta_t = \beta_t (1 - \bar\alpha_{t-1}) / (1 - \bar\alpha_t)`,
    the variance of :math:`q(x_{t-1} \mid x_t, x_0)` (0 at ``t = 1``).
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    alpha_bars_prev: torch.Tensor
    posterior_variances: torch.Tensor

    @property
    def num_steps(self) -> int:
        """:math:`T`, the number of noising steps."""
        return len(self.betas)


def make_schedule(betas: torch.Tensor) -> Schedule:
    r"""A `Schedule` from any :math:`\beta_1..\beta_T` in (0, 1) (a 1-D tensor or list)."""
    betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
    if len(betas) == 0:
        raise ValueError("betas must hold at least one value (T >= 1)")
    if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
        raise ValueError(f"every beta must lie strictly between 0 and 1, got values in "
                         f"[{betas.min().item():.3g}, {betas.max().item():.3g}]")
    alphas = 1.0 - betas
    alpha_bars = torch.cumprod(alphas, 0)
    alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    posterior_variances = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
    return Schedule(betas, alphas, alpha_bars, alpha_bars_prev, posterior_variances)


def linear_schedule(num_steps: int = 100, beta_start: float = 1e-4, beta_end: float = 0.2) -> Schedule:
    r"""The linear schedule of Ho et al. (2020): :math:`\beta_t` evenly spaced from ``beta_start`` to ``beta_end``.

    Ho et al. use :math:`T = 1000` and :math:`\beta` from :math:`10^{-4}` to 0.02 (a sum of
    about 10, so :math:`\bar\alpha_T \approx 4\cdot10^{-5}`). With the default
    :math:`T = 100` and ``beta_end = 0.2`` the sum is the same, so :math:`x_T` is as close to
    pure noise, with ten times fewer steps for the toys of the chapter.
    """
    num_steps = check_int(num_steps, "num_steps", meaning="T, the number of noising steps")
    beta_start = check_number(beta_start, "beta_start", 0.0, strict=True)
    beta_end = check_number(beta_end, "beta_end", 0.0, strict=True)
    if beta_end >= 1 or beta_start >= 1:
        raise ValueError(f"beta_start and beta_end must be below 1, got {beta_start} and {beta_end}")
    return make_schedule(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))


def log_snr_schedule(num_steps: int = 100, log_snr_max: float = 10.0, log_snr_min: float = -10.0) -> Schedule:
    r"""A schedule whose log signal-to-noise ratio falls linearly in ``t`` (Kingma et al., 2021).

    .. math:: \log\mathrm{SNR}_t = \log\frac{\bar\alpha_t}{1 - \bar\alpha_t}
       = \ell_{\max} + \frac{t}{T}(\ell_{\min} - \ell_{\max}),\qquad
       \bar\alpha_t = \operatorname{sigmoid}(\log\mathrm{SNR}_t),\qquad
       \beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}

    Every step multiplies the noise-to-signal variance ratio by the same factor
    :math:`e^{(\ell_{\max} - \ell_{\min})/T}` (1.22 with the defaults), so no step is large
    compared with the scale the data has at that noise level: the ELBO of a few hundred
    steps is then much tighter than with `linear_schedule`, whose first steps multiply the
    noise variance by 20. With the defaults the noise std of :math:`x_1` is 0.0067 times the
    signal's and :math:`\bar\alpha_T = 4.5\cdot10^{-5}`. (:math:`\bar\alpha_0 = 1`.)
    """
    num_steps = check_int(num_steps, "num_steps", meaning="T, the number of noising steps")
    log_snr_max = check_number(log_snr_max, "log_snr_max")
    log_snr_min = check_number(log_snr_min, "log_snr_min")
    if not log_snr_min < log_snr_max:
        raise ValueError(f"log_snr_min must be below log_snr_max (the SNR falls with t), got {log_snr_min} and {log_snr_max}")
    t = torch.arange(0, num_steps + 1, dtype=torch.float64)
    log_snr = log_snr_max + t / num_steps * (log_snr_min - log_snr_max)
    alpha_bars = torch.sigmoid(log_snr)
    alpha_bars[0] = 1.0  # t = 0 is the data itself
    return make_schedule(1.0 - alpha_bars[1:] / alpha_bars[:-1])


def _check_x(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of points (N, d), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, d) with N >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite floating-point values")
    return x


def _check_t(t, n: int, schedule: Schedule) -> torch.Tensor:
    """``t`` as a long tensor ``(n,)`` of steps in ``1..T`` (an int is repeated)."""
    if isinstance(t, numbers.Integral) and not isinstance(t, bool):
        t = torch.full((n,), int(t), dtype=torch.long)
    if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer step or an integer tensor (N,) of steps in 1..T, got {t!r}")
    t = t.long().flatten().cpu()  # the schedule lives on the CPU; results move to the data's device
    if t.numel() == 1 and n > 1:
        t = t.repeat(n)
    if t.numel() != n:
        raise ValueError(f"t must hold one step per point: {n}, got {t.numel()}")
    T = schedule.num_steps
    if t.min() < 1 or t.max() > T:
        raise ValueError(f"steps t must lie in 1..T = 1..{T}, got values in [{t.min().item()}, {t.max().item()}]")
    return t


def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t - 1]`` as a column ``(N, 1)`` of ``like``'s dtype and device, to broadcast over the coordinates."""
    return values[t.cpu() - 1].to(like.dtype).to(like.device)[:, None]


# ---------------------------------------------------------------------------
# The forward process q
# ---------------------------------------------------------------------------
def q_mean_var(x0: torch.Tensor, t, schedule: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The moments of :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I)`.

    ``x0`` ``(N, d)``, ``t`` an int or ``(N,)`` in ``1..T``; returns the mean ``(N, d)`` and
    the variance ``(N, 1)`` (the same for every coordinate).
    """
    x0 = _check_x(x0, "x0")
    t = _check_t(t, len(x0), schedule)
    return _at(schedule.alpha_bars, t, x0).sqrt() * x0, 1.0 - _at(schedule.alpha_bars, t, x0)


def q_sample(x0: torch.Tensor, t, schedule: Schedule, noise: torch.Tensor) -> torch.Tensor:
    r""":math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon`: a draw from :math:`q(x_t\mid x_0)` in one step.

    ``noise`` :math:`\epsilon \sim \mathcal N(0, I)` has the shape of ``x0`` ``(N, d)``; it is an
    argument so that the loss can compare it with the model's prediction.
    """
    mean, var = q_mean_var(x0, t, schedule)
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        raise ValueError(f"noise must be a tensor of the shape of x0 {tuple(x0.shape)}, "
                         f"got {tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__}")
    return mean + var.sqrt() * noise


def q_posterior(x0: torch.Tensor, xt: torch.Tensor, t, schedule: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Gaussian posterior :math:`q(x_{t-1}\mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)`.

    .. math:: \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\, x_0
       + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\, x_t,\qquad
       \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t

    Returns the mean ``(N, d)`` and variance ``(N, 1)``; at ``t = 1`` the posterior is the
    point :math:`x_0` (variance 0).
    """
    x0, xt = _check_x(x0, "x0"), _check_x(xt, "xt")
    if x0.shape != xt.shape:
        raise ValueError(f"x0 and xt must have the same shape, got {tuple(x0.shape)} and {tuple(xt.shape)}")
    t = _check_t(t, len(x0), schedule)
    ab, ab_prev = _at(schedule.alpha_bars, t, x0), _at(schedule.alpha_bars_prev, t, x0)
    beta, alpha = _at(schedule.betas, t, x0), _at(schedule.alphas, t, x0)
    mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + (alpha.sqrt() * (1 - ab_prev) / (1 - ab)) * xt
    return mean, _at(schedule.posterior_variances, t, x0)


# ---------------------------------------------------------------------------
# The reverse process p, and the ELBO
# ---------------------------------------------------------------------------
def p_variance(t, schedule: Schedule) -> torch.Tensor:
    r""":math:`\sigma_t^2` of :math:`p_\theta(x_{t-1}\mid x_t)`: :math:`\tilde\beta_t` for :math:`t \ge 2`, :math:`\beta_1` at :math:`t = 1`.

    With :math:`\sigma_t^2 = \tilde\beta_t` the KL terms of the ELBO have no variance part, so
    they are exactly weighted noise-prediction errors; :math:`\tilde\beta_1 = 0` would make the
    last step a point mass, so the decoder :math:`p(x_0\mid x_1)` uses :math:`\beta_1`.
    ``t`` is ``(N,)`` (or an int); returns ``(N,)`` float64.
    """
    t = _check_t(t, 1 if isinstance(t, numbers.Integral) else torch.as_tensor(t).numel(), schedule)
    return torch.where(t == 1, schedule.betas[0], schedule.posterior_variances[t - 1])


def elbo_weight(t, schedule: Schedule) -> torch.Tensor:
    r"""The weight :math:`\lambda_t = \beta_t^2 / (2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t))` of the noise error in the ELBO.

    For :math:`t \ge 2`, :math:`\mathrm{KL}(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))
    = \lambda_t \lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2`; at :math:`t = 1`,
    :math:`-\log p_\theta(x_0\mid x_1) = \lambda_1 \lVert\epsilon - \epsilon_\theta\rVert^2 + \tfrac d2 \log(2\pi\beta_1)`,
    with :math:`\lambda_1 = 1/(2\alpha_1)`. ``t`` an int or ``(N,)``; returns ``(N,)`` float64.
    """
    var = p_variance(t, schedule)
    t = _check_t(t, len(var), schedule)
    beta, alpha, ab = schedule.betas[t - 1], schedule.alphas[t - 1], schedule.alpha_bars[t - 1]
    return beta**2 / (2 * var * alpha * (1 - ab))


def p_mean(eps_pred: torch.Tensor, xt: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    r"""The mean of :math:`p_\theta(x_{t-1}\mid x_t)` from the predicted noise:
    :math:`\mu_\theta = \big(x_t - \tfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta\big) / \sqrt{\alpha_t}`.

    ``eps_pred`` and ``xt`` ``(N, d)``; returns ``(N, d)``. It equals :math:`\tilde\mu_t` when
    :math:`\epsilon_\theta` is the true noise (`q_posterior`).
    """
    xt, eps_pred = _check_x(xt, "xt"), _check_x(eps_pred, "eps_pred")
    if xt.shape != eps_pred.shape:
        raise ValueError(f"eps_pred and xt must have the same shape, got {tuple(eps_pred.shape)} and {tuple(xt.shape)}")
    t = _check_t(t, len(xt), schedule)
    beta, alpha, ab = _at(schedule.betas, t, xt), _at(schedule.alphas, t, xt), _at(schedule.alpha_bars, t, xt)
    return (xt - beta / (1 - ab).sqrt() * eps_pred) / alpha.sqrt()


def prior_kl(x0: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    r""":math:`L_T = \mathrm{KL}(q(x_T\mid x_0)\,\|\,\mathcal N(0, I))` per point ``(N,)``, in nats (no parameter to learn).

    .. math:: L_T = \tfrac12 \big(\bar\alpha_T \lVert x_0\rVert^2 + d\,(1 - \bar\alpha_T) - d - d\log(1 - \bar\alpha_T)\big)
    """
    x0 = _check_x(x0, "x0")
    ab = schedule.alpha_bars[-1].to(x0.dtype)
    d = x0.shape[1]
    return 0.5 * (ab * x0.pow(2).sum(1) + d * (1 - ab) - d - d * torch.log(1 - ab))


# ---------------------------------------------------------------------------
# The noise predictor
# ---------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, num_steps: int, dim: int = 32) -> torch.Tensor:
    r"""Sinusoidal features of the step: :math:`(\sin(\omega_k s), \cos(\omega_k s))_k`, :math:`s = t / T`.

    ``t`` ``(N,)`` integers; returns ``(N, dim)`` with frequencies :math:`\omega_k = \pi\, 2^{k}`
    for ``k = 0 .. dim/2 - 1`` (capped at 2^10), so that nearby steps get similar features
    and the network can still tell step 1 from step 2. ``dim`` must be even.
    """
    dim = check_int(dim, "dim")
    if dim % 2:
        raise ValueError(f"dim must be even (sine and cosine pairs), got {dim}")
    s = t.float()[:, None] / num_steps  # (N, 1) in (0, 1]; float32 works on every device
    k = torch.arange(dim // 2, dtype=torch.float32, device=t.device).clamp(max=10)
    angles = s * (math.pi * 2.0**k)  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class NoisePredictor(nn.Module):
    r"""A small MLP :math:`\epsilon_\theta(x_t, t)`: the point and an embedding of its step in, the noise out.

    ``(N, d)`` points and ``(N,)`` steps in ``1..T`` -> concat ``[x_t, emb(t)]`` ``(N, d + time_dim)``
    -> ``num_layers`` x (Linear ``hidden_dim``, SiLU) -> Linear -> ``(N, d)``. About 35,000
    parameters with the defaults. Chapter: Tools and where the field went.
    """

    def __init__(self, data_dim: int = 2, num_steps: int = 100, hidden_dim: int = 128, num_layers: int = 3,
                 time_dim: int = 32) -> None:
        super().__init__()
        self.data_dim, self.num_steps = check_int(data_dim, "data_dim"), check_int(num_steps, "num_steps")
        hidden_dim, num_layers = check_int(hidden_dim, "hidden_dim"), check_int(num_layers, "num_layers")
        self.time_dim = check_int(time_dim, "time_dim")
        layers, width = [], self.data_dim + self.time_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.SiLU()]
            width = hidden_dim
        layers.append(nn.Linear(width, self.data_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if xt.ndim != 2 or xt.shape[1] != self.data_dim:
            raise ValueError(f"expected points of shape (N, {self.data_dim}), got {tuple(xt.shape)}")
        emb = timestep_embedding(t, self.num_steps, self.time_dim).to(xt.device, xt.dtype)
        return self.net(torch.cat([xt, emb], dim=1))


def _check_model(model: nn.Module, schedule: Schedule) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a noise predictor (an nn.Module such as NoisePredictor), got {type(model).__name__}")
    T = getattr(model, "num_steps", schedule.num_steps)
    if T != schedule.num_steps:
        raise ValueError(f"the model was built for T = {T} steps but the schedule has {schedule.num_steps}; "
                         "build both with the same T")


# ---------------------------------------------------------------------------
# Losses: the simple loss, the weighted (ELBO) loss, and the whole negative ELBO
# ---------------------------------------------------------------------------
def diffusion_loss(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    weighting: str = "simple",
) -> torch.Tensor:
    r"""One Monte Carlo estimate of the training loss on a batch ``x0`` (N, d).

    Draw :math:`t \sim U\{1..T\}` and :math:`\epsilon \sim \mathcal N(0, I)`
    per point, form :math:`x_t` by `q_sample`, and average
    :math:`w_t \lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2` over the
    batch, with :math:`w_t = 1` (``"simple"``, Ho et al.'s
    :math:`L_{\text{simple}}`) or :math:`w_t = T\lambda_t` (``"elbo"``: an
    unbiased estimate of the sum over ``t`` in `negative_elbo`, without its
    constant terms). Returns a scalar.
    """
    _check_model(model, schedule)
    x0 = _check_x(x0, "x0")
    if weighting not in ("simple", "elbo"):
        raise ValueError(
            f"weighting must be 'simple' or 'elbo', got {weighting!r}")
    T = schedule.num_steps
    t = torch.randint(1, T + 1, (len(x0),), generator=generator)
    t = t.to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    noise = noise.to(x0.device)
    eps_pred = model(q_sample(x0, t, schedule, noise), t)
    err = (noise - eps_pred).pow(2).sum(1)  # (N,) squared errors
    if weighting == "elbo":
        weight = T * elbo_weight(t, schedule)  # (N,), on the CPU
        err = err * weight.to(err.dtype).to(err.device)
    return err.mean()


@torch.no_grad()
def negative_elbo(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    num_noise: int = 1,
) -> dict[str, torch.Tensor]:
    r"""The negative ELBO of each point, a bound on :math:`-\log p_\theta(x_0)`.

    Every step ``t = 1..T`` is summed (``t`` is not sampled); the expectation
    over :math:`\epsilon` uses ``num_noise`` draws per step. Returns, in nats,
    ``{"nelbo": (N,), "prior": (N,)`` :math:`L_T` ``, "diffusion": (N,)``
    :math:`\sum_t \lambda_t \lVert\epsilon - \epsilon_\theta\rVert^2`
    ``, "constant":`` :math:`\tfrac d2 \log(2\pi\beta_1)`
    ``, "per_step": (T,)}``, the last the mean over points of each step's term.
    """
    _check_model(model, schedule)
    x0 = _check_x(x0, "x0")
    num_noise = check_int(num_noise, "num_noise")
    n, d = x0.shape
    per_step = torch.zeros(schedule.num_steps, dtype=torch.float64)
    diffusion = torch.zeros(n, dtype=torch.float64)
    for step in range(1, schedule.num_steps + 1):
        t = torch.full((n,), step, dtype=torch.long, device=x0.device)
        err = torch.zeros(n, dtype=torch.float64)
        for _ in range(num_noise):  # E over eps of ||eps - eps_theta||^2
            noise = torch.randn(x0.shape, generator=generator,
                                dtype=x0.dtype).to(x0.device)
            eps_pred = model(q_sample(x0, t, schedule, noise), t)
            err += (noise - eps_pred).pow(2).sum(1).double().cpu()
        # KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) = lambda_t ||eps - eps_th||^2
        term = elbo_weight(step, schedule).item() * err / num_noise
        diffusion += term
        per_step[step - 1] = term.mean()
    prior = prior_kl(x0.cpu().double(), schedule)  # L_T
    constant = 0.5 * d * math.log(2 * math.pi * schedule.betas[0].item())
    return {"nelbo": prior + diffusion + constant, "prior": prior,
            "diffusion": diffusion,
            "constant": torch.tensor(constant, dtype=torch.float64),
            "per_step": per_step}


# ---------------------------------------------------------------------------
# Sampling: the reverse process
# ---------------------------------------------------------------------------
@torch.no_grad()
def sample(
    model: nn.Module, num_samples: int, schedule: Schedule, generator: torch.Generator | None = None,
    record_steps: tuple[int, ...] = (),
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    r"""Ancestral sampling: :math:`x_T \sim \mathcal N(0, I)`, then :math:`x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z` down to :math:`x_0`.

    The last step (``t = 1``) returns the mean :math:`\mu_\theta(x_1, 1)` without noise, as
    Ho et al. do. Returns ``(x0, path)``: ``x0`` ``(num_samples, d)`` and ``path``, the points
    :math:`x_t` at the steps listed in ``record_steps`` (``T`` is :math:`x_T`, 0 is :math:`x_0`).
    """
    _check_model(model, schedule)
    num_samples = check_int(num_samples, "num_samples")
    T = schedule.num_steps
    bad = [s for s in record_steps if not isinstance(s, numbers.Integral) or not 0 <= s <= T]
    if bad:
        raise ValueError(f"record_steps must be integers in 0..T = 0..{T}, got {bad}")
    device = next(model.parameters()).device
    d = getattr(model, "data_dim", 2)
    x = torch.randn(num_samples, d, generator=generator).to(device)
    path = {T: x.cpu().clone()} if T in record_steps else {}
    for step in range(T, 0, -1):
        t = torch.full((num_samples,), step, dtype=torch.long, device=device)
        mean = p_mean(model(x, t), x, t, schedule)
        if step > 1:
            noise = torch.randn(num_samples, d, generator=generator).to(device)
            sigma = p_variance(step, schedule).sqrt().item()
            x = mean + sigma * noise
        else:
            x = mean
        if step - 1 in record_steps:
            path[step - 1] = x.cpu().clone()
    return x, path


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def train_diffusion(
    model: nn.Module,
    toy: ToyDistribution,
    schedule: Schedule,
    num_steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    weighting: str = "simple",
    seed: int = 0,
    callback: Callable[[int, History], None] | None = None,
    log_every: int = 10,
    show_progress: bool = True,
    explode_factor: float | None = 1e4,
) -> History:
    r"""Train a noise predictor on a 2-D toy with `diffusion_loss` and Adam; returns the `History` (``loss``).

    Each step draws a fresh batch from ``toy`` (a seeded stream), a step ``t`` and a noise
    per point. Like the book's other loops it stops, before the update, on a NaN or
    exploding loss or gradient (`genimg_lib.train.ExplosionGuard`), and calls
    ``callback(step, history)`` after each logged step. Chapter: Tools and where the field went.
    """
    _check_model(model, schedule)
    if not isinstance(toy, ToyDistribution):
        raise TypeError(f"toy must be a ToyDistribution from genimg_lib.data.make_toy, got {type(toy).__name__}")
    num_steps, batch_size = check_int(num_steps, "num_steps", minimum=0), check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", 0.0, strict=True, meaning="the learning rate")
    seed, log_every = check_int(seed, "seed", minimum=0), check_int(log_every, "log_every")
    if weighting not in ("simple", "elbo"):
        raise ValueError(f"weighting must be 'simple' or 'elbo', got {weighting!r}")
    device = next(model.parameters()).device
    data_gen, noise_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    guard, history = ExplosionGuard(explode_factor), History()
    model.train()
    bar = progress(num_steps, desc="diffusion", disable=not show_progress)
    for step in range(1, num_steps + 1):
        x0 = toy._sample(batch_size, data_gen).to(device)  # a fresh batch from the seeded stream
        loss = diffusion_loss(model, x0, schedule, noise_gen, weighting)
        guard.check(step, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        guard.check_gradients(step, model.parameters())
        optimizer.step()
        if step == 1 or step % log_every == 0 or step == num_steps:
            history.log(step, loss=loss)
            if callback is not None:
                callback(step, history)
        bar.update()
    bar.close()
    model.eval()
    return history
