r"""Diagnostics for the questions readers ask when training goes wrong, and the runs that answer them.

Chapter: Troubleshooting and FAQ (Part VI, ``book/practice_03_troubleshooting.ipynb``). The
chapter's sweeps (learning rate, batch size, depth, the Gaussian decoder's variance) are
precomputed by the recipe ``faq_study`` in `genimg_lib.recipes`, with these pieces:

- `run_guarded`: run a training loop and record where the explosion guard stopped it, if
  it did (`genimg_lib.train.ExplosionGuard`), with the history up to that step;
- `grey_fraction` and `isolated_pixels`: two numbers for "my samples are blurry" and
  "my samples are speckled", on images ``(N, 1, H, W)`` in [0, 1];
- `gaussian_vae_loss` and `train_gaussian_vae`: a VAE whose decoder is a Gaussian of fixed
  standard deviation :math:`\sigma`, the cause of blur that the Bernoulli VAEs of Part II
  do not have;
- `aggregate_posterior_log_density`: :math:`\log q(z)`, the density of the codes the encoder
  actually uses, to find the prior samples that land in the holes between them;
- `linear_macs` and `steps_at_equal_compute`: the compute of a step of an MLP, for
  comparing a deeper network at equal compute rather than at equal steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from genimg_lib.data import check_images, check_int, check_number, infinite_batches, load_mnist5k, make_loader
from genimg_lib.losses import gaussian_kl
from genimg_lib.monitor import DivergenceError, ExplosionGuard, History, progress


# ---------------------------------------------------------------------------
# Running a loop until it finishes or the guard stops it
# ---------------------------------------------------------------------------
@dataclass
class GuardedRun:
    """What `run_guarded` saw: the history, the last step done, and why the run stopped early (if it did).

    ``stopped_at`` is the step the guard refused (the weights are those after
    ``steps_done = stopped_at - 1`` updates), or None for a run that finished;
    ``error`` is the exception's class name (``"NonFiniteLossError"``,
    ``"ExplodingLossError"``) and ``message`` its text.
    """

    history: History | None
    steps_done: int
    stopped_at: int | None = None
    error: str = ""
    message: str = ""

    @property
    def diverged(self) -> bool:
        return self.stopped_at is not None


def run_guarded(train: Callable[[Callable[[int, History], None]], History]) -> GuardedRun:
    """Run ``train(callback)`` (a loop of `genimg_lib.train` called with that callback) and catch a divergence.

    The loops of the book stop with a `genimg_lib.train.DivergenceError` *before* the update
    whose loss or gradient norm is NaN, infinite or exploded. This records the history and
    the step reached, so that a learning-rate sweep can mark where each run stopped. The
    callback must be called after every step (``train_gan`` does; pass ``callback_every=1``
    to ``train_vae``). Any other exception propagates.
    """
    if not callable(train):
        raise TypeError(f"train must be a function train(callback) that runs a loop, got {type(train).__name__}")
    seen: dict[str, Any] = {"step": 0, "history": None}

    def callback(step: int, history: History) -> None:
        seen["step"], seen["history"] = step, history

    try:
        history = train(callback)
    except DivergenceError as err:
        return GuardedRun(seen["history"], seen["step"], seen["step"] + 1, type(err).__name__, str(err))
    return GuardedRun(history, seen["step"])


# ---------------------------------------------------------------------------
# Two numbers for what an image looks like: grey (blurry) and speckled
# ---------------------------------------------------------------------------
def grey_fraction(x: torch.Tensor, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    r"""The share of each image's ink that is grey: :math:`\#\{low < x_i < high\} / \#\{x_i > low\}`, shape ``(N,)``.

    0 for a black-and-white image, 1 for one whose strokes are all grey. Blur spreads a
    stroke into grey borders, so a blurry image scores higher than a sharp one; the grey
    MNIST-5k test digits, anti-aliased, score about one half. Images ``(N, 1, H, W)`` in
    [0, 1]; an image with no ink gets 0. Chapter: Troubleshooting and FAQ.
    """
    check_images(x, (0.0, 1.0), "grey_fraction(x)", shape=None)
    low, high = check_number(low, "low", 0.0), check_number(high, "high", 0.0)
    if not low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    flat = x.flatten(1).float()
    ink = (flat > low).sum(1)
    grey = ((flat > low) & (flat < high)).sum(1)
    return torch.where(ink > 0, grey / ink.clamp(min=1), torch.zeros_like(grey, dtype=torch.float32)).float()


def isolated_pixels(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """How many "on" pixels (``> threshold``) of each image have no "on" pixel among their 8 neighbours, ``(N,)``.

    A digit is made of strokes, so it has few; a Bernoulli sample of a grey decoder mean
    is speckled with them. Images ``(N, 1, H, W)`` in [0, 1]. Chapter: Troubleshooting and FAQ.
    """
    check_images(x, (0.0, 1.0), "isolated_pixels(x)", shape=None)
    threshold = check_number(threshold, "threshold", 0.0)
    on = (x > threshold).float()
    kernel = torch.ones(1, x.shape[1], 3, 3)
    kernel[:, :, 1, 1] = 0.0
    neighbours = F.conv2d(on, kernel, padding=1)
    return ((on > 0) & (neighbours == 0)).flatten(1).sum(1)


# ---------------------------------------------------------------------------
# A VAE with a Gaussian decoder of fixed variance
# ---------------------------------------------------------------------------
def gaussian_vae_loss(
    x: torch.Tensor, mean: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The negative ELBO with a Gaussian decoder :math:`p(x\mid z) = \mathcal N(m(z), \sigma^2 I)`, per image.

    .. math:: -\mathrm{ELBO} = \frac{\lVert x - m(z)\rVert^2}{2\sigma^2} + \frac D2 \log(2\pi\sigma^2)
       + \mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big)

    Up to the constant, this is the squared error plus :math:`2\sigma^2` times the KL: a
    :math:`\beta`-VAE with :math:`\beta = 2\sigma^2` and a squared-error loss. A large
    :math:`\sigma` makes the KL weigh more, the code carry less, and the decoder output the
    average of many images: blur. ``x`` and ``mean`` ``(N, 1, 28, 28)``; returns
    ``(loss, recon, kl)``, each averaged over the batch, in nats per image.
    """
    sigma = check_number(sigma, "sigma", 0.0, strict=True, meaning="the decoder's standard deviation")
    if x.shape != mean.shape:
        raise ValueError(f"x and mean must have the same shape, got {tuple(x.shape)} and {tuple(mean.shape)}")
    D = x[0].numel()
    recon = (x - mean).pow(2).flatten(1).sum(1) / (2 * sigma**2) + 0.5 * D * math.log(2 * math.pi * sigma**2)
    kl = gaussian_kl(mu, logvar)
    return (recon + kl).mean(), recon.mean(), kl.mean()


def train_gaussian_vae(
    model: nn.Module,
    sigma: float,
    num_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    x_train: torch.Tensor | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> History:
    r"""Train a `genimg_lib.models.VAE` as a Gaussian-decoder VAE of fixed ``sigma`` on grey images (Adam).

    The decoder's mean is :math:`m(z) = \operatorname{sigmoid}(\text{logits})`, in [0, 1]; the
    loss is `gaussian_vae_loss`. The images are the grey MNIST-5k training digits (not
    binarized: a Gaussian models grey levels). The history holds ``loss``, ``recon``
    (:math:`\lVert x - m\rVert^2 / 2\sigma^2` plus the constant), ``kl`` and ``sse`` (the squared
    error per image) every 10 steps. Stops on a divergence like the other loops. Chapter:
    Troubleshooting and FAQ.
    """
    num_steps, batch_size = check_int(num_steps, "num_steps", minimum=0), check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", 0.0, strict=True, meaning="the learning rate")
    sigma = check_number(sigma, "sigma", 0.0, strict=True, meaning="the decoder's standard deviation")
    if x_train is None:
        x_train, _ = load_mnist5k("train")
    check_images(x_train, (0.0, 1.0), "x_train", tolerance=0.0)
    device = next(model.parameters()).device
    batches = infinite_batches(make_loader(x_train, None, batch_size=batch_size, seed=seed))
    g_z = torch.Generator().manual_seed(seed + 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    guard, history = ExplosionGuard(), History()
    model.train()
    bar = progress(num_steps, desc=f"Gaussian VAE (sigma={sigma:g})", disable=not show_progress)
    for step in range(1, num_steps + 1):
        x = next(batches)[0].to(device)
        logits, mu, logvar = model(x, generator=g_z)
        mean = torch.sigmoid(logits)
        loss, recon, kl = gaussian_vae_loss(x, mean, mu, logvar, sigma)
        guard.check(step, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        guard.check_gradients(step, model.parameters())
        optimizer.step()
        if step == 1 or step % 10 == 0 or step == num_steps:
            sse = (x - mean).detach().pow(2).flatten(1).sum(1).mean()
            history.log(step, loss=loss, recon=recon, kl=kl, sse=sse)
        bar.update()
    bar.close()
    model.eval()
    return history


# ---------------------------------------------------------------------------
# The aggregate posterior: where the codes are
# ---------------------------------------------------------------------------
def aggregate_posterior_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                                    chunk: int = 512) -> torch.Tensor:
    r""":math:`\log q(z)` of the aggregate posterior :math:`q(z) = \frac1N \sum_n \mathcal N(z;\ \mu_n, \operatorname{diag}\sigma_n^2)`, shape ``(M,)``.

    ``z`` ``(M, d)`` are the points to evaluate; ``mu`` and ``logvar`` ``(N, d)`` are the
    encoder's outputs for ``N`` images. A prior sample :math:`z \sim \mathcal N(0, I)` with a
    low :math:`q(z)` lies in a hole between the codes the decoder was trained on
    (Exploring the latent space); the decoder has never been asked what to draw there.
    Computed with a log-sum-exp over the ``N`` components, ``chunk`` points at a time.
    """
    for name, t in (("z", z), ("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or len(t) == 0:
            raise ValueError(f"{name} must be a non-empty tensor (rows, d), got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if mu.shape != logvar.shape or z.shape[1] != mu.shape[1]:
        raise ValueError(f"mu and logvar must be (N, d) and z (M, d) with the same d, got z {tuple(z.shape)}, "
                         f"mu {tuple(mu.shape)}, logvar {tuple(logvar.shape)}")
    chunk = check_int(chunk, "chunk")
    mu, logvar = mu.double(), logvar.double()
    inv_var = torch.exp(-logvar)  # (N, d)
    log_norm = -0.5 * (math.log(2 * math.pi) * mu.shape[1] + logvar.sum(1))  # (N,)
    out = []
    for zc in z.double().split(chunk):
        sq = ((zc[:, None, :] - mu[None]) ** 2 * inv_var[None]).sum(-1)  # (m, N)
        out.append(torch.logsumexp(log_norm[None] - 0.5 * sq, dim=1) - math.log(len(mu)))
    return torch.cat(out)


# ---------------------------------------------------------------------------
# Compute: deeper networks at equal compute
# ---------------------------------------------------------------------------
def linear_macs(model: nn.Module) -> int:
    r"""Multiply-accumulates of one forward pass of one sample through the `nn.Linear` layers of ``model``.

    :math:`\sum_{\text{layers}} d_{\text{in}}\, d_{\text{out}}` (biases and activations are
    negligible). A training step costs about three forward passes (the backward pass about
    two), so for MLPs the compute of ``num_steps`` steps at batch size ``B`` is
    :math:`\approx 6 \cdot \text{MACs} \cdot B \cdot \text{num\_steps}` floating-point operations. Convolutions
    are not counted: the function refuses a model that has any. Chapter: Troubleshooting and FAQ.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    convs = [type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if convs:
        raise ValueError(f"linear_macs counts only Linear layers, and this model has convolutions ({convs[0]}); "
                         "compare convolutional models by measured time or by a FLOP counter")
    return int(sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)))


def steps_at_equal_compute(base_steps: int, base_macs: int, macs: int) -> int:
    r"""The steps a model of ``macs`` per sample may take for the compute of ``base_steps`` steps of one of ``base_macs``.

    :math:`\operatorname{round}(\text{base\_steps} \cdot \text{base\_macs} / \text{macs})`, at least 1, at
    the same batch size. Chapter: Troubleshooting and FAQ.
    """
    base_steps = check_int(base_steps, "base_steps")
    base_macs, macs = check_int(base_macs, "base_macs"), check_int(macs, "macs")
    return max(1, round(base_steps * base_macs / macs))
