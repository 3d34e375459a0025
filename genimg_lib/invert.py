r"""Inversion: the code :math:`z` of a real image, and what it buys (inpainting, denoising).

Chapters: Inversion (``book/edit_03_inversion.ipynb``); Inpainting and denoising with a
generative prior (``book/edit_04_inpainting.ipynb``).

A decoder (a VAE's, or a GAN's generator) maps a code to an image,
:math:`\hat x = g(z)` in [0, 1]. *Inverting* it means finding a code for an image
:math:`x` that the model did not make. Three ways, all here:

- **optimization** (`invert_optimize`): minimise the objective

  .. math:: L(z) = \big\lVert m \odot (g(z) - x) \big\rVert^2 + \frac{\lambda}{2} \lVert z \rVert^2

  over :math:`z` with Adam, from several random starts, and keep, for each image, the
  start that ends lowest. :math:`m` is a mask (1 = observed pixel), :math:`\lambda` the
  weight of the prior term. The second term is the negative log-density of the
  prior :math:`\mathcal N(0, I)` up to a constant; with Gaussian pixel noise of variance
  :math:`\sigma^2`, :math:`L / 2\sigma^2` is the negative log-posterior when
  :math:`\lambda = 2\sigma^2`, so minimising :math:`L` is MAP estimation
  (Zhu et al., 2016; Creswell & Bharath, 2018; Bora et al., 2017);
- **an encoder** (`encode_images`): one forward pass. For a VAE its own encoder's mean
  :math:`\mu_\phi(x)`; for a GAN, which has none, a `GANEncoder` trained on the GAN's
  own samples, pairs :math:`(z, G(z))` (`train_gan_encoder`, shipped as the recipe
  ``gan_dcgan_encoder``);
- **the hybrid** (`invert_hybrid`): the encoder's code as the start of the optimization.

**Masked inversion is inpainting** (Yeh et al., 2017): only observed pixels enter
:math:`L`, and the completion keeps them, :math:`m \odot x + (1 - m) \odot g(z)`
(`complete`, `inpaint`). A mask can leave several digits possible: `sample_posterior`
draws several completions by Langevin dynamics instead of one. **Denoising** inverts the noisy image with a full mask and
keeps :math:`g(z)` (`denoise`). The baselines: the mean training image (`fill_mean`), the
nearest training image on the observed pixels (`fill_nearest`), a median filter
(`median_denoise`). Quality is the PSNR on the pixels that were missing (`psnr`), and a
code's plausibility under the prior is its norm against the chi distribution
(`typical_set_interval`, `in_typical_set`).

Images are ``(N, 1, H, W)`` in [0, 1]; codes ``(N, z_dim)``; masks hold 1 where a pixel
is observed and 0 where it is missing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genimg_lib.data import check_images
from genimg_lib.monitor import History, check_finite, progress

#: The masks of the chapters: what is *missing* (``"centre"``: a square in the middle;
#: ``"left"``: the left half; ``"random"``: a random half of the pixels).
MASK_KINDS = ("centre", "left", "random")
#: Side in pixels of the missing centre square of a 28x28 image.
CENTRE_SIZE = 12
#: A perfect reconstruction has an MSE of 0 and an infinite PSNR; `psnr` floors the MSE here (100 dB).
MSE_FLOOR = 1e-10

Decoder = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------
# Checking the inputs
# ---------------------------------------------------------------------------
def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_x(x: Any, name: str = "x") -> torch.Tensor:
    """Images ``(N, C, H, W)`` in [0, 1], finite (the library's one checker, any image size)."""
    if isinstance(x, torch.Tensor) and x.dim() != 4:
        hint = "; add the channel axis with x.unsqueeze(1)" if x.dim() == 3 else ""
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got {tuple(x.shape)}{hint}")
    return check_images(x, (0.0, 1.0), name, shape=None)


def check_mask(mask: Any, x: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Return ``mask`` as a float tensor of 0s and 1s that broadcasts against ``x``, or raise.

    Accepted shapes: ``x.shape`` (one mask per image), ``(1, *x.shape[1:])`` (one for
    all) or ``x.shape[-2:]`` (one ``(H, W)`` for all). Values must be 0 or 1 (bool or
    float); 1 marks an observed pixel.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of 0s and 1s, got {type(mask).__name__}")
    shape = tuple(mask.shape)
    if shape == tuple(x.shape[-2:]):
        mask = mask.view(1, 1, *shape)
    elif shape not in (tuple(x.shape), (1, *x.shape[1:])):
        raise ValueError(
            f"{name}: its shape {shape} does not fit the images {tuple(x.shape)}; expected "
            f"{tuple(x.shape)} (one mask per image), {(1, *x.shape[1:])} or {tuple(x.shape[-2:])} "
            "(one mask for all); make one with make_mask(kind, num_images)"
        )
    mask = mask.float() if mask.dtype == torch.bool else mask
    if not mask.is_floating_point():
        mask = mask.float()
    if not torch.isfinite(mask).all() or not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name}: expected only 0 (missing) and 1 (observed), got other values")
    return mask.to(x.device, x.dtype)


def _check_z(z: Any, n: int, z_dim: int, name: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of codes, got {type(z).__name__}")
    if tuple(z.shape) != (n, z_dim):
        raise ValueError(
            f"{name}: expected codes of shape ({n}, {z_dim}) (one {z_dim}-d code per image), got {tuple(z.shape)}"
        )
    if not torch.isfinite(z).all():
        raise ValueError(f"{name}: {int((~torch.isfinite(z)).sum())} value(s) are NaN or infinite")
    return z


# ---------------------------------------------------------------------------
# The decoders and encoders of the book's models, as functions of z
# ---------------------------------------------------------------------------
def image_decoder(model: nn.Module | Decoder, z_dim: int | None = None) -> tuple[Decoder, int]:
    r"""A differentiable map from codes ``(N, z_dim)`` to images ``(N, 1, 28, 28)`` in [0, 1], and ``z_dim``.

    - a VAE (`genimg_lib.models.VAE`): :math:`g(z) = \sigma(\text{decoder}(z))`, the
      Bernoulli means (the decoder returns logits);
    - a `genimg_lib.models.DCGAN` or its generator ``.G``: :math:`g(z) = (G(z) + 1) / 2`
      (the generator ends in tanh);
    - any other callable (a test's toy decoder) is used as it is, with ``z_dim`` given.

    A model must be in eval mode: in training mode batch normalization would make each
    image depend on the others in its batch, and inversion would not be per image.
    Conditional models (CVAE, cGAN) are refused: their decoder also needs a label.
    """
    from genimg_lib.models import DCGAN, DCGANGenerator, VAEBase

    if isinstance(model, (VAEBase, DCGAN, DCGANGenerator)):
        if model.training:
            raise ValueError(
                f"{type(model).__name__} is in training mode, where batch normalization mixes the images "
                "of a batch; call model.eval() first (load_model returns models in eval mode)"
            )
        if getattr(model, "num_classes", 0):
            raise ValueError(f"{type(model).__name__} is conditional; invert an unconditional model (a VAE, a DCGAN)")
        if z_dim is not None and z_dim != model.z_dim:
            raise ValueError(f"z_dim: the model's codes have {model.z_dim} dimensions, got z_dim={z_dim}")
        if isinstance(model, VAEBase):
            return (lambda z: torch.sigmoid(model.decode(z))), model.z_dim
        G = model.G if isinstance(model, DCGAN) else model
        return (lambda z: (G(z) + 1) / 2), model.z_dim
    if not callable(model):
        raise TypeError(f"model: expected a VAE, a DCGAN, its generator or a callable decoder, got {type(model).__name__}")
    if z_dim is None:
        z_dim = getattr(model, "z_dim", None)
    if z_dim is None:
        raise ValueError("z_dim: a plain callable decoder needs z_dim (the length of its codes)")
    return model, _check_positive_int(z_dim, "z_dim")


@torch.no_grad()
def encode_images(encoder: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    r"""One forward pass from images to codes: ``(N, 1, 28, 28)`` in [0, 1] -> ``(N, z_dim)``.

    A VAE returns its posterior mean :math:`\mu_\phi(x)` (the most probable code under
    :math:`q_\phi(z\mid x)`); a `GANEncoder` its prediction :math:`E(x)`.
    """
    from genimg_lib.models import VAEBase

    x = _check_x(x)
    _check_positive_int(batch_size, "batch_size")
    if isinstance(encoder, VAEBase):
        if encoder.num_classes:
            raise ValueError("encoder: a conditional VAE needs labels; use an unconditional VAE")
        fn = lambda xb: encoder.encode(xb)[0]  # noqa: E731
    elif isinstance(encoder, GANEncoder):
        fn = encoder
    else:
        raise TypeError(f"encoder: expected a VAE or a GANEncoder, got {type(encoder).__name__}")
    device = next(encoder.parameters()).device
    return torch.cat([fn(xb.to(device)).cpu() for xb in x.split(batch_size)]) if len(x) else x.new_zeros(0, 0)


# ---------------------------------------------------------------------------
# The objective, and inversion by optimization
# ---------------------------------------------------------------------------
def inversion_loss(
    x_hat: torch.Tensor, x: torch.Tensor, z: torch.Tensor, mask: torch.Tensor | None = None, prior_weight: float = 0.0
) -> torch.Tensor:
    r"""The per-image objective :math:`L(z) = \lVert m \odot (\hat x - x) \rVert^2 + \frac{\lambda}{2}\lVert z\rVert^2`.

    ``x_hat = g(z)`` and ``x``: ``(N, C, H, W)``; ``z``: ``(N, d)``; ``mask`` :math:`m`
    (1 = observed) broadcasts against ``x`` (None: every pixel); ``prior_weight`` is
    :math:`\lambda`. Returns ``(N,)``: squared errors summed over the observed pixels,
    plus the prior term. Chapter: Inversion.
    """
    diff = x_hat - x if mask is None else mask * (x_hat - x)
    loss = diff.pow(2).flatten(1).sum(1)  # (N,)
    if prior_weight:
        loss = loss + 0.5 * prior_weight * z.pow(2).sum(1)
    return loss


@dataclass
class Inversion:
    r"""What an inversion found, for ``N`` images.

    - ``z`` ``(N, d)``: each image's code (the best start's); ``x_hat`` ``(N, 1, H, W)``:
      :math:`g(z)` in [0, 1]; ``loss`` ``(N,)``: the objective :math:`L(z)` there;
    - ``z_all`` ``(R, N, d)`` and ``loss_all`` ``(R, N)``: every start's final code and
      objective (``R = num_restarts``; different starts may land on different digits);
    - ``history``: ``loss``, the mean over images of the best start's objective, at
      every step (step 0 is the start); ``snapshots``: ``{step: z (N, d)}`` of the best
      start at the steps asked for; ``seconds``: the wall time.
    """

    z: torch.Tensor
    x_hat: torch.Tensor
    loss: torch.Tensor
    z_all: torch.Tensor
    loss_all: torch.Tensor
    history: History = field(default_factory=History)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0


def invert_optimize(
    model: nn.Module | Decoder,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    num_steps: int = 100,
    lr: float = 0.1,
    num_restarts: int = 1,
    prior_weight: float = 0.0,
    z_init: torch.Tensor | None = None,
    seed: int = 0,
    z_dim: int | None = None,
    snapshot_steps: Sequence[int] = (),
    callback: Callable[[int, History], None] | None = None,
    show_progress: bool = False,
) -> Inversion:
    r"""Invert ``model`` on images ``x`` by minimising :math:`L(z)` (`inversion_loss`) with Adam.

    Every image gets ``num_restarts`` starts. The starts are :math:`z \sim \mathcal N(0, I)`
    (a generator seeded with ``seed``, drawn start by start, so that start ``r`` does not
    depend on how many there are), except that ``z_init`` ``(N, d)``, if given, is the
    first start (the hybrid's encoder code). All ``R * N`` codes are optimised at once as
    one batch: the objective is a sum of per-code terms and Adam's update is elementwise,
    so this is exactly ``R * N`` separate optimizations, run in one pass (``tests``
    check it). Each of ``num_steps`` steps evaluates :math:`L` and takes one Adam step
    (learning rate ``lr``, default betas); after the last, :math:`L` is evaluated once
    more, and each image keeps the start with the lowest objective (with
    ``prior_weight = 0`` that is the lowest reconstruction error). Only the codes are
    optimised: the model's weights get no gradient (``torch.autograd.grad`` on ``z``).

    ``mask`` (1 = observed; see `check_mask`) restricts the error to observed pixels:
    inpainting. ``prior_weight`` :math:`\lambda \ge 0` adds :math:`\frac{\lambda}{2}\lVert z\rVert^2`.
    ``snapshot_steps`` lists steps (0 = the start) at which the best start's codes are
    kept, e.g. to animate the path. ``callback(step, history)`` runs after each step.
    Returns an `Inversion`. Chapters: Inversion; Inpainting and denoising.
    """
    decoder, z_dim = image_decoder(model, z_dim)
    x = _check_x(x)
    n = len(x)
    if mask is not None:
        mask = check_mask(mask, x)
    num_steps = _check_positive_int(num_steps, "num_steps")
    num_restarts = _check_positive_int(num_restarts, "num_restarts")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    prior_weight = _check_non_negative(prior_weight, "prior_weight")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    snapshot_steps = sorted({int(s) for s in snapshot_steps})
    if snapshot_steps and (snapshot_steps[0] < 0 or snapshot_steps[-1] > num_steps):
        raise ValueError(f"snapshot_steps must lie in 0..num_steps={num_steps}, got {snapshot_steps}")

    start_time = time.perf_counter()
    device = x.device
    generator = torch.Generator().manual_seed(seed)
    # one draw per start, in order: start r is the same whatever num_restarts is
    z0 = torch.stack([torch.randn(n, z_dim, generator=generator) for _ in range(num_restarts)])
    z0 = z0.to(device, x.dtype)  # (R, N, d)
    if z_init is not None:
        z0[0] = _check_z(z_init, n, z_dim, "z_init").to(device, z0.dtype)
    z = z0.reshape(num_restarts * n, z_dim).clone().requires_grad_(True)  # (R N, d): one batch
    x_rep = x.repeat(num_restarts, 1, 1, 1)  # (R N, C, H, W), restart-major like z
    mask_rep = None if mask is None else (mask.repeat(num_restarts, 1, 1, 1) if len(mask) == n > 1 else mask)
    optimizer = torch.optim.Adam([z], lr=lr)
    history = History()
    snapshots: dict[int, torch.Tensor] = {}

    def evaluate(step: int) -> torch.Tensor:
        """L for every code (R N,), and the bookkeeping of step ``step`` (codes before its update)."""
        loss = inversion_loss(decoder(z), x_rep, z, mask_rep, prior_weight)
        with torch.no_grad():
            per_start = loss.detach().view(num_restarts, n)
            history.log(step, loss=per_start.min(0).values.mean())
            if step in snapshot_steps:
                best = per_start.argmin(0)  # (N,)
                snapshots[step] = z.detach().view(num_restarts, n, z_dim)[best, torch.arange(n)].cpu().clone()
        return loss

    bar = progress(num_steps, desc="inversion", disable=not show_progress)
    for step in range(num_steps):
        # --- the objective at the current codes (step 0: the starts)
        loss = evaluate(step)
        check_finite(step, loss=loss.sum())
        # --- one Adam step on the codes only
        (grad,) = torch.autograd.grad(loss.sum(), z)
        z.grad = grad
        optimizer.step()
        bar.update()
        if callback is not None:
            callback(step + 1, history)
    bar.close()
    # --- the objective at the final codes; keep each image's best start
    with torch.no_grad():
        loss_all = evaluate(num_steps).view(num_restarts, n)
        z_all = z.detach().view(num_restarts, n, z_dim)
        best = loss_all.argmin(0)
        z_best = z_all[best, torch.arange(n, device=best.device)]
        x_hat = decoder(z_best)
    return Inversion(z_best.clone(), x_hat, loss_all[best, torch.arange(n, device=best.device)], z_all.clone(),
                     loss_all, history, snapshots, time.perf_counter() - start_time)


@torch.no_grad()
def invert_encoder(
    encoder: nn.Module, model: nn.Module | Decoder, x: torch.Tensor, mask: torch.Tensor | None = None,
    prior_weight: float = 0.0,
) -> Inversion:
    r"""Invert by one encoder pass, :math:`z = E(x)`, then decode: an `Inversion` with one "start".

    ``encoder`` is a VAE (its mean :math:`\mu_\phi(x)`) or a `GANEncoder`; ``model`` the
    decoder to invert (the same VAE, or the DCGAN). ``loss`` is `inversion_loss` at
    :math:`z` (``mask`` and ``prior_weight`` only change what is reported; the encoder
    sees the whole of ``x``). Chapter: Inversion.
    """
    start_time = time.perf_counter()
    decoder, z_dim = image_decoder(model)
    x = _check_x(x)
    if mask is not None:
        mask = check_mask(mask, x)
    z = encode_images(encoder, x).to(x.device)
    _check_z(z, len(x), z_dim, "the encoder's codes")
    x_hat = decoder(z)
    loss = inversion_loss(x_hat, x, z, mask, _check_non_negative(prior_weight, "prior_weight"))
    history = History()
    history.log(0, loss=loss.mean())
    return Inversion(z, x_hat, loss, z[None], loss[None], history, {}, time.perf_counter() - start_time)


def invert_hybrid(
    encoder: nn.Module, model: nn.Module | Decoder, x: torch.Tensor, num_steps: int = 100, lr: float = 0.1,
    **options: Any,
) -> Inversion:
    r"""The hybrid: start the optimization at the encoder's code, :math:`z_0 = E(x)` (Zhu et al., 2016).

    `invert_optimize` with ``z_init = encode_images(encoder, x)`` and one start;
    ``options`` are passed on (``mask``, ``prior_weight``, ``snapshot_steps``, ...). The
    ``seconds`` include the encoder's pass. Chapter: Inversion.
    """
    if "z_init" in options or "num_restarts" in options:
        raise ValueError("invert_hybrid sets z_init (the encoder's code) and num_restarts=1 itself")
    start_time = time.perf_counter()
    z_init = encode_images(encoder, _check_x(x)).to(x.device)
    result = invert_optimize(model, x, num_steps=num_steps, lr=lr, num_restarts=1, z_init=z_init, **options)
    result.seconds = time.perf_counter() - start_time
    return result


# ---------------------------------------------------------------------------
# Sampling the posterior: several answers instead of one
# ---------------------------------------------------------------------------
@dataclass
class PosteriorSamples:
    r"""Codes drawn by `sample_posterior` for ``N`` images, ``K`` per image.

    ``z`` ``(K, N, d)``; ``x_hat`` ``(K, N, 1, H, W)``: :math:`g(z)` in [0, 1];
    ``energy`` ``(K, N)``: :math:`U(z)` at the last step; ``history``: ``energy``, its
    mean over all chains, at every step (step 0 is the start).
    """

    z: torch.Tensor
    x_hat: torch.Tensor
    energy: torch.Tensor
    history: History = field(default_factory=History)


def sample_posterior(
    model: nn.Module | Decoder,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    noise_std: float = 0.3,
    num_samples: int = 8,
    num_steps: int = 300,
    step_size: float = 3e-3,
    seed: int = 0,
    z_dim: int | None = None,
) -> PosteriorSamples:
    r"""Draw codes from the posterior :math:`p(z \mid x_{\text{observed}})` by unadjusted Langevin dynamics.

    With Gaussian pixel noise of std :math:`\sigma` (``noise_std``) on the observed
    pixels and the prior :math:`\mathcal N(0, I)`, the negative log-posterior is, up to
    a constant,

    .. math:: U(z) = \frac{1}{2\sigma^2}\big\lVert m \odot (g(z) - x)\big\rVert^2
       + \frac12 \lVert z \rVert^2 ,

    the objective of `invert_optimize` with :math:`\lambda = 2\sigma^2`, divided by
    :math:`2\sigma^2`. Each of ``num_samples`` chains per image starts at
    :math:`z_0 \sim \mathcal N(0, I)` (seeded) and takes ``num_steps`` steps

    .. math:: z_{t+1} = z_t - \eta\, \nabla U(z_t) + \sqrt{2\eta}\; \varepsilon_t,
       \qquad \varepsilon_t \sim \mathcal N(0, I),

    with ``step_size`` :math:`\eta`; all chains of all images run as one batch. Where
    optimization stops at one mode, the noise keeps the chain moving, and its last code
    is (approximately) a draw from the posterior: different chains can land on
    different digits when the observed pixels allow several. Two approximations, both
    to keep in mind: there is no Metropolis correction, so the chain samples a slightly
    wider distribution than :math:`e^{-U}` (for a Gaussian with precision :math:`p`, the
    variance :math:`2 / (p (2 - \eta p))` instead of :math:`1/p`; ``tests`` check it),
    and a finite chain may not have mixed between distant modes. Returns
    `PosteriorSamples`. Chapter: Inpainting and denoising.
    """
    decoder, z_dim = image_decoder(model, z_dim)
    x = _check_x(x)
    n = len(x)
    if mask is not None:
        mask = check_mask(mask, x)
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std > 0 \
            or not math.isfinite(noise_std):
        raise ValueError(f"noise_std must be a finite number > 0, got {noise_std!r}")
    num_samples = _check_positive_int(num_samples, "num_samples")
    num_steps = _check_positive_int(num_steps, "num_steps")
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not step_size > 0 \
            or not math.isfinite(step_size):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    generator = torch.Generator().manual_seed(seed)
    z = torch.stack([torch.randn(n, z_dim, generator=generator) for _ in range(num_samples)])
    z = z.reshape(num_samples * n, z_dim).to(x.device, x.dtype).requires_grad_(True)
    x_rep = x.repeat(num_samples, 1, 1, 1)
    mask_rep = None if mask is None else (mask.repeat(num_samples, 1, 1, 1) if len(mask) == n > 1 else mask)
    history = History()

    def energy() -> torch.Tensor:
        return inversion_loss(decoder(z), x_rep, z, mask_rep, 2 * noise_std**2) / (2 * noise_std**2)

    for step in range(num_steps):
        u = energy()
        history.log(step, energy=u.detach().mean())
        check_finite(step, energy=u.sum())
        (grad,) = torch.autograd.grad(u.sum(), z)
        noise = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
        with torch.no_grad():  # a gradient step on U, plus Gaussian noise of variance 2 eta
            z -= step_size * grad
            z += math.sqrt(2 * step_size) * noise
    with torch.no_grad():
        u = energy()
        history.log(num_steps, energy=u.mean())
        x_hat = decoder(z)
    return PosteriorSamples(z.detach().view(num_samples, n, z_dim).clone(), x_hat.view(num_samples, n, *x.shape[1:]),
                            u.view(num_samples, n), history)


# ---------------------------------------------------------------------------
# Masks, inpainting and denoising
# ---------------------------------------------------------------------------
def make_mask(
    kind: str, num_images: int = 1, size: int = CENTRE_SIZE, fraction: float = 0.5, seed: int = 0,
    shape: tuple[int, int] = (28, 28),
) -> torch.Tensor:
    """Masks ``(num_images, 1, H, W)`` of 1s (observed) and 0s (missing), float32.

    ``kind``: ``"centre"``, a missing ``size`` x ``size`` square in the middle (rows and
    columns ``(H - size) // 2`` on); ``"left"``, the missing left half (columns
    ``0 .. W//2 - 1``); ``"random"``, a missing random ``fraction`` of the pixels, exactly
    ``round(fraction * H * W)`` per image, a different draw for each image from a
    generator seeded with ``seed``. Chapter: Inpainting and denoising.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {list(MASK_KINDS)}")
    num_images = _check_positive_int(num_images, "num_images")
    h, w = shape
    mask = torch.ones(num_images, 1, h, w)
    if kind == "centre":
        size = _check_positive_int(size, "size")
        if size > min(h, w):
            raise ValueError(f"size must be at most {min(h, w)} for {h}x{w} images, got {size}")
        top, left = (h - size) // 2, (w - size) // 2
        mask[:, :, top : top + size, left : left + size] = 0
    elif kind == "left":
        mask[:, :, :, : w // 2] = 0
    else:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction!r}")
        k = round(fraction * h * w)
        generator = torch.Generator().manual_seed(seed)
        for i in range(num_images):
            missing = torch.randperm(h * w, generator=generator)[:k]
            mask[i, 0].view(-1)[missing] = 0
    return mask


def complete(x: torch.Tensor, mask: torch.Tensor, x_fill: torch.Tensor) -> torch.Tensor:
    r"""The completion :math:`m \odot x + (1 - m) \odot x_{\text{fill}}`: observed pixels from ``x``, the rest from ``x_fill``.

    ``x_fill`` broadcasts against ``x`` (e.g. one mean image ``(1, 1, H, W)``). The
    observed pixels of the result are exactly those of ``x``: a selection, not an
    arithmetic blend (``torch.where``), so no round-off touches them.
    """
    x = _check_x(x)
    mask = check_mask(mask, x)
    return torch.where(mask.bool(), x, x_fill.to(x.dtype).expand_as(x))


def inpaint(model: nn.Module | Decoder, x: torch.Tensor, mask: torch.Tensor, **options: Any) -> tuple[torch.Tensor, Inversion]:
    r"""Inpaint by masked inversion: invert on the observed pixels, fill the rest with :math:`g(z)`.

    Returns ``(completion, inversion)``: ``complete(x, mask, inversion.x_hat)`` (the
    observed pixels are ``x``'s exactly, the contract) and the `Inversion` of
    `invert_optimize` (``options``: ``prior_weight``, ``num_restarts``, ...). The missing
    pixels of ``x`` are never read (tested). Yeh et al. (2017). Chapter: Inpainting and denoising.
    """
    x = _check_x(x)
    mask = check_mask(mask, x)
    inversion = invert_optimize(model, x * mask, mask=mask, **options)  # x * mask: the missing pixels are unseen
    return complete(x, mask, inversion.x_hat), inversion


def denoise(model: nn.Module | Decoder, x_noisy: torch.Tensor, **options: Any) -> Inversion:
    r"""Denoise by inversion: fit :math:`g(z)` to every pixel of the noisy image; ``result.x_hat`` is the estimate.

    Every pixel is observed but noisy, so the mask is full and nothing of ``x_noisy`` is
    kept: the estimate is the decoder's image, which can only be a digit the model can
    make. ``options`` go to `invert_optimize` (a ``prior_weight`` of :math:`2\sigma^2`
    makes it the MAP estimate under noise of std :math:`\sigma`). Chapter: Inpainting and denoising.
    """
    if "mask" in options:
        raise ValueError("denoise uses every pixel (a full mask); for missing pixels use inpaint")
    return invert_optimize(model, x_noisy, **options)


def add_gaussian_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    r"""Noisy images :math:`\operatorname{clip}(x + \sigma\varepsilon, 0, 1)`, :math:`\varepsilon \sim \mathcal N(0, I)` (seeded).

    Clipping keeps the images in [0, 1], so the noise is not exactly Gaussian near black
    and white. Chapter: Inpainting and denoising.
    """
    x = _check_x(x)
    std = _check_non_negative(std, "std")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device, x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------
def fill_mean(x: torch.Tensor, mask: torch.Tensor, x_train: torch.Tensor) -> torch.Tensor:
    r"""Baseline: fill the missing pixels with the mean training image, :math:`\bar x = \frac1M\sum_j x_j`."""
    x_train = _check_x(x_train, "x_train")
    return complete(x, mask, x_train.mean(0, keepdim=True).to(x.device))


@torch.no_grad()
def nearest_neighbours(
    x: torch.Tensor, mask: torch.Tensor, x_train: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    r"""For each image, the index of the training image closest on the observed pixels: ``(N,)`` int64.

    :math:`j^*(x) = \arg\min_j \lVert m \odot (x_j - x) \rVert^2`, computed as
    :math:`\lVert m x_j\rVert^2 - 2 \langle m x_j, m x\rangle + \lVert m x\rVert^2` in
    float64, in batches of ``batch_size`` images. Ties go to the lower index.
    """
    x = _check_x(x)
    mask = check_mask(mask, x)
    x_train = _check_x(x_train, "x_train")
    if x_train.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_train: images of shape {tuple(x_train.shape[1:])}, but x has {tuple(x.shape[1:])}")
    train = x_train.flatten(1).double()  # (M, P)
    masks = mask.expand_as(x).flatten(1).double()  # (N, P)
    out = []
    for start in range(0, len(x), batch_size):
        xm = x[start : start + batch_size].flatten(1).double() * masks[start : start + batch_size]  # (B, P)
        mb = masks[start : start + batch_size]
        # ||m x_j||^2 = (x_j^2) . m (a mask is 0/1, so m^2 = m), per image of the batch
        d2 = mb @ (train**2).T - 2 * xm @ train.T + (xm**2).sum(1, keepdim=True)  # (B, M)
        out.append(d2.argmin(1))
    return torch.cat(out).cpu()


def fill_nearest(x: torch.Tensor, mask: torch.Tensor, x_train: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    r"""Baseline: fill the missing pixels from the nearest training image on the observed ones (`nearest_neighbours`)."""
    index = nearest_neighbours(x, mask, x_train, batch_size)
    return complete(x, mask, x_train[index].to(x.device))


def median_denoise(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    r"""Baseline denoiser: each pixel replaced by the median of its ``size`` x ``size`` neighbourhood.

    ``scipy.ndimage.median_filter`` on each image (borders: ``mode="reflect"``).
    """
    from scipy.ndimage import median_filter

    x = _check_x(x)
    size = _check_positive_int(size, "size")
    arr = x.detach().cpu().numpy()
    out = np.stack([median_filter(arr[i, c], size=size, mode="reflect")
                    for i in range(arr.shape[0]) for c in range(arr.shape[1])])
    return torch.from_numpy(out.reshape(arr.shape)).to(x.device, x.dtype)


# ---------------------------------------------------------------------------
# Measuring: PSNR and the prior's typical set
# ---------------------------------------------------------------------------
def psnr(x_hat: torch.Tensor, x: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    r"""Peak signal-to-noise ratio of each image, in dB, on the pixels ``where`` selects: ``(N,)``.

    .. math:: \mathrm{PSNR} = 10 \log_{10} \frac{1}{\mathrm{MSE}}, \qquad
       \mathrm{MSE} = \frac{1}{|W|} \sum_{i \in W} (\hat x_i - x_i)^2

    for pixels in [0, 1] (the peak is 1). ``where`` is a mask (1 = counted; see
    `check_mask`) or None (every pixel). For inpainting pass the *missing* pixels,
    ``where = 1 - mask``: the observed ones are copied and would flatter the score. The
    MSE is floored at `MSE_FLOOR` (a perfect match reads 100 dB). Higher is better; one
    halving of the MSE adds 3.01 dB. Chapters: Inversion; Inpainting and denoising.
    """
    x = _check_x(x)
    x_hat = _check_x(x_hat, "x_hat")
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat has shape {tuple(x_hat.shape)} but x has {tuple(x.shape)}; they must match")
    sq = (x_hat - x).pow(2)
    if where is None:
        mse = sq.flatten(1).mean(1)
    else:
        w = check_mask(where, x, "where").expand_as(x).flatten(1)
        count = w.sum(1)
        if (count == 0).any():
            raise ValueError("where: selects no pixel of some image; PSNR needs at least one")
        mse = (sq.flatten(1) * w).sum(1) / count
    return 10 * torch.log10(1.0 / mse.clamp(min=MSE_FLOOR))


def chi_quantile(z_dim: int, q: float | torch.Tensor) -> torch.Tensor:
    r"""Quantile of the norm :math:`\lVert z \rVert` of :math:`z \sim \mathcal N(0, I_d)` (the chi distribution).

    :math:`\lVert z\rVert^2 \sim \chi^2_d`, whose CDF is the regularized lower incomplete
    gamma function :math:`P(d/2, r^2/2)` (``torch.special.gammainc``). The quantile
    :math:`r_q` solves :math:`P(d/2, r_q^2/2) = q`, found by bisection in float64 to
    about 1e-12. ``q`` in (0, 1), a number or a tensor. Chapter: Inversion.
    """
    z_dim = _check_positive_int(z_dim, "z_dim")
    q = torch.as_tensor(q, dtype=torch.float64)
    if not ((q > 0) & (q < 1)).all():
        raise ValueError(f"q must lie strictly between 0 and 1, got {q.tolist()}")
    a = torch.tensor(z_dim / 2, dtype=torch.float64)
    lo = torch.zeros_like(q)
    hi = torch.full_like(q, math.sqrt(z_dim) + 40.0)  # P(d/2, hi^2/2) = 1 to double precision
    for _ in range(200):
        mid = (lo + hi) / 2
        below = torch.special.gammainc(a, mid**2 / 2) < q
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


def typical_set_interval(z_dim: int, mass: float = 0.99) -> tuple[float, float]:
    r"""The central ``mass`` interval of :math:`\lVert z\rVert`, :math:`z \sim \mathcal N(0, I_d)`: ``(lo, hi)``.

    The quantiles :math:`(1 - \text{mass})/2` and :math:`(1 + \text{mass})/2` of the chi
    distribution (`chi_quantile`). In high dimension almost every draw has a norm close
    to :math:`\sqrt d` (for :math:`d = 64`, 99 % lie between about 6.2 and 9.9); a code
    far outside is one the decoder rarely saw in training. Chapter: Inversion.
    """
    if isinstance(mass, bool) or not isinstance(mass, (int, float)) or not 0 < mass < 1:
        raise ValueError(f"mass must lie strictly between 0 and 1, got {mass!r}")
    lo, hi = chi_quantile(z_dim, torch.tensor([(1 - mass) / 2, (1 + mass) / 2], dtype=torch.float64)).tolist()
    return lo, hi


def in_typical_set(z: torch.Tensor, mass: float = 0.99) -> torch.Tensor:
    r"""Whether each code's norm lies in the prior's central ``mass`` interval (`typical_set_interval`): ``(N,)`` bool.

    ``z``: ``(N, d)``. This is a check of the norm alone (a code can have a typical norm
    and still point somewhere the data never goes). Chapter: Inversion.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError(f"z: expected codes of shape (N, d), got {getattr(z, 'shape', type(z).__name__)}")
    if not torch.isfinite(z).all():
        raise ValueError("z: some values are NaN or infinite")
    lo, hi = typical_set_interval(z.shape[1], mass)
    norm = z.double().norm(dim=1)
    return (norm >= lo) & (norm <= hi)


# ---------------------------------------------------------------------------
# An encoder for a GAN, trained on its own samples
# ---------------------------------------------------------------------------
class GANEncoder(nn.Module):
    r"""A small convolutional encoder :math:`E: x \mapsto \hat z` for a generator that has none.

    Shapes (``c = channels``)::

        x (N, 1, 28, 28) in [0, 1]
        Conv2d(1, c, 4, 2, 1)      -> (N, c, 14, 14),  LeakyReLU(0.2)
        Conv2d(c, 2c, 4, 2, 1)     -> (N, 2c, 7, 7),   LeakyReLU(0.2)
        Conv2d(2c, 2c, 3, 2, 1)    -> (N, 2c, 4, 4),   LeakyReLU(0.2), flatten (N, 32c)
        Linear(32c, z_dim)         -> (N, z_dim)

    Trained by `train_gan_encoder` on the generator's own samples, pairs
    :math:`(z, G(z))` (Perarnau et al., 2016; Zhu et al., 2016 use such a network to
    start the optimization). With ``z_dim=64, channels=32``
    it has 135,904 parameters. Chapter: Inversion.
    """

    def __init__(self, z_dim: int = 64, channels: int = 32) -> None:
        super().__init__()
        self.z_dim = _check_positive_int(z_dim, "z_dim")
        c = _check_positive_int(channels, "channels")
        self.channels = c
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1),  # (N, 1, 28, 28) -> (N, c, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1),  # -> (N, 2c, 7, 7)
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 2 * c, 3, 2, 1),  # -> (N, 2c, 4, 4)
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # -> (N, 32c)
            nn.Linear(2 * c * 16, z_dim),  # -> (N, z_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, z_dim)`` for images ``(N, 1, 28, 28)`` in [0, 1] (checked)."""
        check_images(x, (0.0, 1.0), "GANEncoder(x)")
        return self.net(x)


def train_gan_encoder(
    G: nn.Module,
    num_steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    channels: int = 32,
    pixel_weight: float = 10.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    callback: Callable[[int, History], None] | None = None,
    log_every: int = 10,
    show_progress: bool = True,
) -> tuple[GANEncoder, History]:
    r"""Train a `GANEncoder` for the generator ``G`` on its own samples; returns ``(encoder, history)``.

    Each step draws :math:`z \sim \mathcal N(0, I)` (``batch_size`` codes, a generator
    seeded with ``seed``), makes :math:`x = g(z) = (G(z) + 1)/2` with ``G`` in eval mode,
    and takes one Adam step on the encoder's weights for

    .. math:: \ell = \frac{1}{B} \sum_{b} \Big( \frac{1}{d}\lVert E(x_b) - z_b \rVert^2
       + w\, \frac{1}{P} \lVert g(E(x_b)) - x_b \rVert^2 \Big),

    the code's mean squared error per coordinate plus ``pixel_weight`` :math:`w` times the
    image's, over its :math:`P` pixels (the gradient flows through the frozen ``G``). The
    code term alone is what regressing :math:`z` on :math:`G(z)` means (Perarnau et al.,
    2016); the image term asks for what inversion is judged on, :math:`g(E(x)) \approx x`.
    The encoder never sees a real digit: on real images it extrapolates, which is why
    the hybrid refines its codes. ``G`` is a
    `genimg_lib.models.DCGAN` (its ``.G``) or a `DCGANGenerator`; it is left in eval
    mode. The history holds ``loss`` at step 1 and every ``log_every`` steps;
    ``callback(step, history)`` runs after every step. Chapter: Inversion.
    """
    from genimg_lib.models import DCGAN, DCGANGenerator

    if isinstance(G, DCGAN):
        G = G.G
    if not isinstance(G, DCGANGenerator):
        raise TypeError(f"G: expected a DCGAN or a DCGANGenerator, got {type(G).__name__}")
    if G.num_classes:
        raise ValueError("G: a conditional generator needs labels; train the encoder of an unconditional one")
    num_steps = _check_positive_int(num_steps, "num_steps")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    pixel_weight = _check_non_negative(pixel_weight, "pixel_weight")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    torch.manual_seed(seed)
    encoder = GANEncoder(G.z_dim, channels).to(device)
    G = G.to(device).eval()
    requires_grad = [p.requires_grad for p in G.parameters()]
    for p in G.parameters():  # G is frozen: the image term's gradient reaches E only
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    history = History()
    bar = progress(num_steps, desc="GAN encoder", disable=not show_progress)
    for step in range(1, num_steps + 1):
        # --- a batch of the generator's own samples, with the codes that made them
        z = torch.randn(batch_size, G.z_dim, generator=generator).to(device)
        with torch.no_grad():
            x = ((G(z) + 1) / 2).clamp(0, 1)
        # --- the code's error, and the image's error through the frozen generator
        z_hat = encoder(x)
        code_loss = F.mse_loss(z_hat, z)
        image_loss = F.mse_loss((G(z_hat) + 1) / 2, x) if pixel_weight else torch.zeros(())
        loss = code_loss + pixel_weight * image_loss
        check_finite(step, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == 1 or step % log_every == 0 or step == num_steps:
            history.log(step, loss=loss, code_loss=code_loss, image_loss=image_loss)
        bar.update()
        if callback is not None:
            callback(step, history)
    bar.close()
    for p, flag in zip(G.parameters(), requires_grad):
        p.requires_grad_(flag)
    return encoder.eval(), history
