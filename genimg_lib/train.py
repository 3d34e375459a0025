"""The small shared pieces of a training loop.

Chapter: Getting started. The loops themselves stay in the chapters, written out so
that a reader sees every step; they use these pieces:

- `progress`: a `tqdm.auto` bar (a widget in Jupyter, text elsewhere);
- `History`: records losses and metrics against the step;
- `check_finite`: stops a run the moment a loss becomes NaN or infinite, with a
  message saying which loss, at which step, and what usually fixes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite during training."""


def progress(iterable: Iterable | int, desc: str = "training", **kwargs) -> tqdm:
    """A progress bar over ``iterable`` (or ``range(n)`` when given an int).

    Set the environment variable ``GENIMG_PROGRESS=0`` to hide the bars, e.g. in logs.
    """
    if isinstance(iterable, int):
        iterable = range(iterable)
    disable = os.environ.get("GENIMG_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)


def check_finite(step: int, **losses: float | torch.Tensor) -> None:
    """Raise `NonFiniteLossError` if any named loss is NaN or infinite.

    Call it once per step, e.g. ``check_finite(step, loss_D=loss_D, loss_G=loss_G)``.
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

    def to_dict(self) -> dict[str, dict[str, list]]:
        return {k: {"step": self._steps[k], "value": self._values[k]} for k in self._values}

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


# ---------------------------------------------------------------------------
# The command line: ``python -m genimg_lib.train <subcommand> [options]``.
# Each part registers its subcommand (``vae``, ``gan``, ``classifier``) in its own
# section below with `subcommand`; ``main`` only dispatches.
# ---------------------------------------------------------------------------
SUBCOMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {}


def subcommand(name: str, help: str) -> Callable:
    """Decorator: register ``fn(argv) -> exit code`` as ``python -m genimg_lib.train name``."""

    def register(fn):
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS[name] = (help, fn)
        return fn

    return register


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its subcommand; with no argument, list the subcommands."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m genimg_lib.train <subcommand> [options]\n\nsubcommands:")
        for name, (text, _) in sorted(SUBCOMMANDS.items()):
            print(f"  {name:<12} {text}")
        if not SUBCOMMANDS:
            print("  (none yet)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"unknown subcommand {name!r}; choose one of {sorted(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[name][1](rest)


# ===========================================================================
# Part II: VAEs (train_vae, the ``vae`` subcommand)
# ===========================================================================


# ===========================================================================
# Part III: GANs (train_gan, the ``gan`` subcommand)
# ===========================================================================

# --- Part III-a: the toy GAN loop and snapshots (A GAN you can watch)
def train_toy_gan(
    G: torch.nn.Module,
    D: torch.nn.Module,
    toy,
    num_steps: int,
    loss: str = "non_saturating",
    batch_size: int = 256,
    lr: float = 1e-3,
    lr_d: float | None = None,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
    gp_weight: float = 10.0,
    snapshot_every: int | None = None,
    num_fixed: int = 512,
    limits: tuple[float, float] = (-3.0, 3.0),
    resolution: int = 60,
    callback: Callable | None = None,
    seed: int = 0,
    show_progress: bool = False,
):
    r"""Train a GAN on a 2-D toy distribution, recording snapshots to draw.

    Each step is the game of Goodfellow et al. (2014), written out:

    1. ``n_critic`` times, update D on a fresh real batch and a fake batch:
       minimise the discriminator loss (for ``wasserstein_gp``, plus
       :math:`\lambda\,\mathbb E(\lVert\nabla f(\hat x)\rVert - 1)^2`, ``gp_weight`` = :math:`\lambda`);
    2. update G once on a fresh fake batch: minimise the generator loss.

    ``loss`` is one of ``genimg_lib.gan_lab.TOY_GAN_LOSSES``: ``"minimax"`` (saturating
    G loss), ``"non_saturating"``, ``"hinge"`` or ``"wasserstein_gp"``. Both players use
    Adam with ``betas``; D's learning rate is ``lr_d`` (default ``lr``).

    Every ``snapshot_every`` steps (and at step 0 and at the end) a
    `genimg_lib.gan_lab.ToyGANSnapshot` is taken on ``num_fixed`` fixed latent codes and
    passed to ``callback(snapshot)`` if given. Real batches are ``toy.sample(batch_size,
    seed=...)`` with seeds derived from ``seed``; z comes from a generator seeded with
    ``seed``. Initialise G and D under a fixed seed for a reproducible run.

    Returns ``(history, snapshots)``: a `History` with ``loss_D``, ``loss_G`` (and
    ``grad_norm`` for ``wasserstein_gp``) per step, and the list of snapshots.
    Chapter: A GAN you can watch.
    """
    from genimg_lib.gan_lab import check_toy_loss, generator_loss_fn, take_snapshot
    from genimg_lib.losses import d_loss_wasserstein, gan_losses, gradient_penalty

    check_toy_loss(loss)
    if not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"n_critic must be an integer >= 1 (D updates per G update), got {n_critic!r}")
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    if snapshot_every is not None and snapshot_every < 1:
        raise ValueError(f"snapshot_every must be >= 1 or None, got {snapshot_every!r}")
    d_loss_fn = d_loss_wasserstein if loss == "wasserstein_gp" else gan_losses(loss)[0]
    g_loss_fn = generator_loss_fn(loss)
    device = next(G.parameters()).device
    latent_dim = G.latent_dim
    gen = torch.Generator().manual_seed(seed)
    z_fixed = torch.randn(num_fixed, latent_dim, generator=gen).to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr if lr_d is None else lr_d, betas=betas)
    history, snapshots = History(), []

    def snap(step: int, losses: dict) -> None:
        G.eval(), D.eval()
        s = take_snapshot(step, G, D, z_fixed, loss, limits, resolution, losses)
        G.train(), D.train()
        snapshots.append(s)
        if callback is not None:
            callback(s)

    if snapshot_every is not None:
        snap(0, {})
    batch_seed = seed * 1_000_003
    steps = progress(num_steps, desc=f"toy GAN ({loss})") if show_progress else range(num_steps)
    for step in steps:
        # (1) update D: maximise log D(x) + log(1 - D(G(z))) (or the critic's score gap)
        for _ in range(n_critic):
            batch_seed += 1
            x = toy.sample(batch_size, seed=batch_seed).to(device)
            z = torch.randn(batch_size, latent_dim, generator=gen).to(device)
            with torch.no_grad():
                fake = G(z)
            loss_D = d_loss_fn(D(x), D(fake))
            if loss == "wasserstein_gp":
                penalty, grad_norms = gradient_penalty(D, x, fake, generator=gen)
                loss_D = loss_D + gp_weight * penalty
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()
        # (2) update G: make D call the fakes real
        z = torch.randn(batch_size, latent_dim, generator=gen).to(device)
        loss_G = g_loss_fn(D(G(z)))
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
        check_finite(step, loss_D=loss_D, loss_G=loss_G)
        history.log(step + 1, loss_D=loss_D, loss_G=loss_G)
        if loss == "wasserstein_gp":
            history.log(step + 1, grad_norm=grad_norms.mean())
        done = step + 1
        if snapshot_every is not None and (done % snapshot_every == 0 or done == num_steps):
            snap(done, {"loss_D": loss_D.item(), "loss_G": loss_G.item()})
    return history, snapshots




# --- Part III-b: train_gan and the ``gan`` subcommand (DCGAN, WGAN-GP, cGAN)


# ===========================================================================
# Part IV: the domain classifier (the ``classifier`` subcommand)
# ===========================================================================
@subcommand("classifier", "train and ship the MNIST classifier whose features the metrics use (Part IV)")
def _classifier_command(argv: list[str]) -> int:
    from genimg_lib.metrics import classifier_cli

    return classifier_cli(argv)


@subcommand("score", "score every shipped VAE/GAN (FID, KID, precision, recall, coverage) into the manifest")
def _score_command(argv: list[str]) -> int:
    from genimg_lib.metrics import score_cli

    return score_cli(argv)


if __name__ == "__main__":
    raise SystemExit(main())
