"""Training loops, written out: `train_vae` and `train_gan`, and the pieces they share.

Chapters: Getting started (the pieces), Building a VAE (`train_vae`), A GAN you can
watch and DCGAN step by step (`train_gan`). Each loop is one screen of plain PyTorch
organised by comment banners, returns a `History`, and calls ``callback(step, history)``
after a step, where ``step`` counts the updates done so far (1, 2, ...). The chapters
write each loop inline first and check that the library's gives the same numbers.

- `progress`: a ``tqdm.auto`` bar (a widget in Jupyter, text elsewhere);
- `History`: losses and metrics recorded against the step;
- `check_finite`: stops a run, before the update, the moment a loss becomes NaN or
  infinite, with a message saying which loss, at which step, and what usually fixes it.

How the shipped checkpoints were trained with these loops is in `genimg_lib.recipes`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from genimg_lib.data import check_images, dynamic_binarize, infinite_batches, load_mnist5k, make_loader
from genimg_lib.losses import PROBABILITY_LOSSES, gan_losses, gradient_penalty, vae_loss
from genimg_lib.models import check_tanh_range


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite during training."""


def progress(iterable: Iterable | int, desc: str = "training", disable: bool = False, **kwargs) -> tqdm:
    """A progress bar over ``iterable``, or a bar of ``total=n`` steps to `update` by hand when given an int.

    Set the environment variable ``GENIMG_PROGRESS=0`` to hide the bars, e.g. in logs.
    """
    disable = disable or os.environ.get("GENIMG_PROGRESS", "1") == "0"
    if isinstance(iterable, int):
        return tqdm(total=iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)
    return tqdm(iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)


def check_finite(step: int, **losses: float | torch.Tensor) -> None:
    """Raise `NonFiniteLossError` if any named loss is NaN or infinite.

    Call it on every loss *before* ``backward()``, so that an optimizer never steps on a
    NaN gradient and the caller's weights stay as they were at the last good step, e.g.
    ``check_finite(step, loss_D=loss_D)``.
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

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The curves as tensors, ``{key: {"step": int32 (T,), "value": float32 (T,)}}``: compact to save."""
        return {k: {"step": torch.tensor(self._steps[k], dtype=torch.int32),
                    "value": torch.tensor(self._values[k], dtype=torch.float32)} for k in self._values}

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


# ===========================================================================
# Part II: the VAE loop (Building a VAE step by step)
# ===========================================================================
def train_vae(
    model: torch.nn.Module,
    num_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    beta: float = 1.0,
    kl_warmup_steps: int = 0,
    free_bits: float = 0.0,
    x_train: torch.Tensor | None = None,
    y_train: torch.Tensor | None = None,
    seed: int = 0,
    callback: Callable[[int, History], None] | None = None,
    callback_every: int = 100,
    log_every: int = 10,
    device: str | torch.device | None = None,
    show_progress: bool = True,
) -> History:
    r"""Train a `genimg_lib.models.VAE` or `CVAE` for ``num_steps`` Adam steps on dynamically binarized images.

    Each step draws a batch of grey images, binarizes it afresh
    (`genimg_lib.data.dynamic_binarize`), runs the model's own forward pass
    ``logits, mu, logvar = model(x)`` (encode, `reparameterize`, decode) and minimises
    `genimg_lib.losses.vae_loss` with the KL weight

    .. math:: \beta_t = \beta \cdot \min\big(1, (t - 1) / T_{\text{warm-up}}\big), \qquad t = 1, 2, \ldots

    (``kl_warmup_steps`` = :math:`T_{\text{warm-up}}`; 0 means no warm-up). The history holds
    ``loss``, ``recon``, ``kl``, ``elbo`` (= -recon - kl, per image, nats) and ``beta_t``
    at step 1 and every ``log_every`` steps; ``callback(step, history)`` runs every
    ``callback_every`` steps and after the last (the chapter's live dashboard).
    ``x_train`` defaults to the 4,000 MNIST-5k training images in [0, 1]; a `CVAE` also
    needs ``y_train`` (defaults to their labels). The batches, the binarization and the
    reparameterization noise come from three generators seeded by ``seed``. Stops with
    `NonFiniteLossError` before an update whose loss is NaN or infinite.
    Chapter: Building a VAE step by step.
    """
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if kl_warmup_steps < 0:
        raise ValueError(f"kl_warmup_steps must be >= 0, got {kl_warmup_steps}")
    conditional = getattr(model, "num_classes", 0) > 0
    if x_train is None:
        x_train, labels = load_mnist5k("train")
        y_train = labels if y_train is None else y_train
    check_images(x_train, (0.0, 1.0), "x_train", tolerance=0.0)
    if conditional and y_train is None:
        raise ValueError("a conditional model needs y_train (the labels of x_train)")
    if device is None:
        device = next(model.parameters()).device
    model.to(device).train()
    batches = infinite_batches(make_loader(x_train, y_train if conditional else None, batch_size=batch_size, seed=seed))
    g_bin = torch.Generator().manual_seed(seed + 1)  # binarization noise
    g_z = torch.Generator().manual_seed(seed + 2)  # reparameterization noise
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    bar = progress(num_steps, desc="VAE", disable=not show_progress)
    for step in range(1, num_steps + 1):
        # --- a batch, binarized afresh
        batch = next(batches)
        x = dynamic_binarize(batch[0], generator=g_bin).to(device)
        y = batch[1].to(device) if conditional else None
        # --- forward: the model encodes, reparameterizes and decodes
        logits, mu, logvar = model(x, y, generator=g_z)
        beta_t = beta * min(1.0, (step - 1) / kl_warmup_steps) if kl_warmup_steps > 0 else beta
        loss, recon, kl = vae_loss(x, logits, mu, logvar, beta=beta_t, free_bits=free_bits)
        # --- backward and update, only on a finite loss
        check_finite(step, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # --- record, report
        if step == 1 or step % log_every == 0 or step == num_steps:
            history.log(step, loss=loss, recon=recon, kl=kl, elbo=-(recon + kl), beta_t=beta_t)
        bar.update()
        if callback is not None and (step % callback_every == 0 or step == num_steps):
            model.eval()
            callback(step, history)
            model.train()
    bar.close()
    model.eval()
    return history


# ===========================================================================
# Part III: the GAN loop (A GAN you can watch; DCGAN step by step; Making GANs train)
# ===========================================================================
def _grad_norm(parameters) -> float:
    """The l2 norm of all the gradients of ``parameters`` taken together."""
    sq = [p.grad.detach().pow(2).sum() for p in parameters if p.grad is not None]
    return torch.stack(sq).sum().sqrt().item() if sq else 0.0


def train_gan(
    G: torch.nn.Module,
    D: torch.nn.Module,
    batches: Iterator,
    num_steps: int,
    loss: str = "non_saturating",
    n_critic: int = 1,
    lr_G: float = 2e-4,
    lr_D: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    gp_weight: float = 10.0,
    conditional: bool = False,
    callback: Callable[[int, History], None] | None = None,
    generator: torch.Generator | None = None,
    desc: str = "GAN",
    show_progress: bool = True,
) -> History:
    r"""Train a GAN for ``num_steps`` generator steps; returns the `History`.

    Each step is (1) ``n_critic`` updates of D on fresh real batches, then (2) one
    update of G:

    .. math::
       \text{(1)}\ \min_D \mathcal L_D(D(x), D(G(z))) \;[+\ \lambda\,\mathrm{GP}],\qquad
       \text{(2)}\ \min_G \mathcal L_G(D(G(z)))

    with the losses of `genimg_lib.losses.GAN_LOSSES` chosen by ``loss``:
    ``"minimax"`` (saturating G loss), ``"non_saturating"``, ``"hinge"`` or
    ``"wasserstein_gp"`` (WGAN-GP: the critic loss plus ``gp_weight`` times the
    gradient penalty on interpolates, Gulrajani et al. 2017). ``lr_G`` and ``lr_D``
    may differ (TTUR, Heusel et al. 2017); both optimizers are Adam with ``betas``.

    The same loop trains the 2-D toys of "A GAN you can watch" (``batches`` of points
    ``(N, 2)``, from `genimg_lib.gan_lab.toy_batches`) and the DCGANs on MNIST
    (``batches`` of ``(x,)`` or ``(x, y)`` with images ``(N, 1, 28, 28)`` in [-1, 1],
    checked on the first batch; labels ``y`` ``(N,)`` are used when ``conditional``).
    ``G(z[, y])`` maps ``(N, G.z_dim)`` noise to samples; ``D(x[, y])`` returns ``(N,)``
    logits or scores. The noise (and a conditional GAN's fake labels, drawn uniformly)
    come from ``generator``; a conditional WGAN-GP gives its critic's fakes the real
    batch's labels, so that each interpolate has one label.

    Logged at every step: ``loss_D``, ``loss_G``, ``D_real`` and ``D_fake`` (mean
    :math:`D(x)` and :math:`D(G(z))` on the last D update: probabilities for the
    minimax and non-saturating losses, raw scores otherwise), ``grad_norm_G`` (the norm
    of G's parameter gradient) and, for WGAN-GP, ``gp`` and ``grad_norm`` (the mean
    :math:`\lVert\nabla_{\hat x} f(\hat x)\rVert` on the interpolates).
    ``callback(step, history)`` runs after every step. Stops with `NonFiniteLossError`
    before an update whose loss is NaN or infinite, so G and D keep their last finite weights.
    Chapters: A GAN you can watch; DCGAN step by step; Making GANs train.
    """
    d_loss_fn, g_loss_fn = gan_losses(loss)
    if not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"n_critic is the number of D updates per G update and must be an integer >= 1, got {n_critic!r}")
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    if conditional and not getattr(G, "num_classes", 0):
        raise ValueError("conditional=True needs a conditional generator (num_classes > 0)")
    device = next(G.parameters()).device
    opt_G = torch.optim.Adam(G.parameters(), lr=lr_G, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr_D, betas=betas)
    history = History()
    G.train()
    D.train()

    def noise_and_labels(n: int):
        z = torch.randn(n, G.z_dim, generator=generator).to(device)
        y = torch.randint(0, G.num_classes, (n,), generator=generator).to(device) if conditional else None
        return z, y

    def with_labels(y):  # labels are passed only to a conditional model
        return (y,) if conditional else ()

    def real_batch(step: int):
        batch = next(batches)
        if conditional and len(batch) < 2:
            raise ValueError("conditional=True needs batches of (x, y); build the loader with labels")
        x = batch[0].to(device)
        if step == 1 and x.dim() == 4:  # images: the tanh range, checked once
            check_tanh_range(x)
        return x, (batch[1].to(device) if conditional else None)

    bar = progress(num_steps, desc=desc, disable=not show_progress)
    for step in range(1, num_steps + 1):
        # (1) update D: maximize E[log D(x)] + E[log(1 - D(G(z)))]  (or the critic's score gap),
        #     i.e. minimize d_loss, n_critic times on fresh batches; G is held fixed (fake.detach()).
        for _ in range(n_critic):
            x, y_real = real_batch(step)
            z, y_fake = noise_and_labels(len(x))
            if conditional and loss == "wasserstein_gp":
                y_fake = y_real  # interpolate real and fake of the same class: one label per pair
            with torch.no_grad():
                fake = G(z, *with_labels(y_fake))
            real_out = D(x, *with_labels(y_real))
            fake_out = D(fake, *with_labels(y_fake))
            loss_D = d_loss_fn(real_out, fake_out)
            if loss == "wasserstein_gp":
                critic = (lambda t: D(t, y_real)) if conditional else D
                gp, grad_norms = gradient_penalty(critic, x, fake, generator=generator)
                loss_D = loss_D + gp_weight * gp
            check_finite(step, loss_D=loss_D)
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()

        # (2) update G: minimize g_loss(D(G(z))), e.g. -E[log D(G(z))] (non-saturating);
        #     gradients flow through D into G, but only G's optimizer steps.
        z, y_fake = noise_and_labels(len(x))
        loss_G = g_loss_fn(D(G(z, *with_labels(y_fake)), *with_labels(y_fake)))
        check_finite(step, loss_G=loss_G)
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
        opt_D.zero_grad(set_to_none=True)  # D's grads from (2) are not used

        # (3) record: D's view of the last real and fake batches, G's gradient norm
        with torch.no_grad():
            as_prob = loss in PROBABILITY_LOSSES
            d_real = torch.sigmoid(real_out).mean() if as_prob else real_out.mean()
            d_fake = torch.sigmoid(fake_out).mean() if as_prob else fake_out.mean()
        row = dict(loss_D=loss_D, loss_G=loss_G, D_real=d_real, D_fake=d_fake, grad_norm_G=_grad_norm(G.parameters()))
        if loss == "wasserstein_gp":
            row.update(gp=gp, grad_norm=grad_norms.mean())
        history.log(step, **row)
        bar.update()
        if callback is not None:
            callback(step, history)
    bar.close()
    return history

