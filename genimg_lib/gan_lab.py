"""Watching a GAN train on 2-D toys, in the spirit of GAN Lab (Kahng et al., 2018).

Chapter: A GAN you can watch. The toys train with the book's one GAN loop,
`genimg_lib.train.train_gan`, fed by `toy_batches`; a `ToySnapshots` callback records a
`ToyGANSnapshot` every few steps, and `train_toy_gan` wires the three together. The
functions here compute what a snapshot holds and draw it:

- `discriminator_map`: the discriminator's output on a grid (a heat map);
- `generator_gradient`: for each generated point, the gradient of the generator's
  loss with respect to the point's position (drawn as arrows: the way the point is
  pushed);
- `draw_snapshot`, `snapshot_frames`, `animate_snapshots`: one frame, PNG frames for
  `genimg_lib.widgets.frame_scrubber`, and an animation that plays on the website;
- `ring_mode_coverage`: how many modes of a Gaussian mixture the samples cover, and
  the fraction of high-quality samples (the mode-collapse numbers).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from torch import nn

from genimg_lib import viz
from genimg_lib.data import ToyDistribution, check_int
from genimg_lib.losses import PROBABILITY_LOSSES, gan_losses
from genimg_lib.train import train_gan

class ToyBatches:
    """The iterator `toy_batches` returns; its position (batches drawn so far) can be saved and restored."""

    def __init__(self, toy: ToyDistribution, batch_size: int, seed: int = 0) -> None:
        if not isinstance(toy, ToyDistribution):
            raise TypeError(f"toy must be a ToyDistribution (from make_toy), got {type(toy).__name__}")
        self.toy, self.batch_size = toy, check_int(batch_size, "batch_size")
        self.seed, self.drawn = check_int(seed, "seed", minimum=0), 0

    def __iter__(self) -> "ToyBatches":
        return self

    def __next__(self) -> tuple[torch.Tensor]:
        self.drawn += 1
        return (self.toy.sample(self.batch_size, seed=self.seed * 1_000_003 + self.drawn),)

    def state_dict(self) -> dict[str, int]:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.drawn = int(state["drawn"])


def toy_batches(toy: ToyDistribution, batch_size: int, seed: int = 0) -> ToyBatches:
    """Endless batches ``(x,)`` of ``batch_size`` fresh points of a 2-D toy, for `train_gan`.

    Batch ``i`` (from 1) is ``toy.sample(batch_size, seed=seed * 1_000_003 + i)``: a new
    sample every time, the same sequence for the same ``seed``. The iterator's position
    is saved with a run in progress, so a resumed run draws the batches it would have.
    """
    return ToyBatches(toy, batch_size, seed)


def grid_points(limits: tuple[float, float] = (-3.0, 3.0), resolution: int = 60) -> torch.Tensor:
    """The ``resolution**2`` points of a square grid, ``(R*R, 2)``, row by row (y outer, x inner)."""
    xs = torch.linspace(limits[0], limits[1], resolution)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


@torch.no_grad()
def discriminator_map(
    D: nn.Module, loss: str = "non_saturating", limits: tuple[float, float] = (-3.0, 3.0), resolution: int = 60
) -> np.ndarray:
    r"""The discriminator's view of the plane: ``(R, R)`` values on `grid_points`.

    For ``minimax`` and ``non_saturating`` the value is :math:`D(x) = \sigma(\ell(x))`, the
    probability that ``x`` is real; for ``hinge`` and ``wasserstein_gp`` it is the critic's
    score :math:`f(x)`, which has no fixed range. Row ``i`` is ``y = linspace(*limits)[i]``.
    """
    gan_losses(loss)  # an unknown loss name is a clear error
    device = next(D.parameters()).device
    out = D(grid_points(limits, resolution).to(device))
    if loss in PROBABILITY_LOSSES:
        out = torch.sigmoid(out)
    return out.reshape(resolution, resolution).cpu().numpy()


def generator_gradient(D: nn.Module, points: torch.Tensor, loss: str = "non_saturating") -> torch.Tensor:
    r"""Per-point gradient of the generator's loss with respect to the point's position.

    .. math:: g_i = \nabla_{x_i}\, \ell_G\big(D(x_i)\big), \qquad x_i = G(z_i)

    where :math:`\ell_G` is the per-sample generator loss (e.g. :math:`-\log D(x)` for
    the non-saturating loss). The generator moves its samples along :math:`-g_i`
    (backpropagation carries :math:`-g_i` on into G's weights), so arrows are drawn
    along :math:`-g_i`. Shapes: ``points`` ``(N, 2)``; returns ``(N, 2)``.
    """
    g_loss = gan_losses(loss)[1]
    x = points.detach().clone().requires_grad_(True)
    # the losses average over the batch; times N gives each point its own loss's gradient
    total = g_loss(D(x)) * x.shape[0]
    (grad,) = torch.autograd.grad(total, x)
    return grad.detach()


@dataclass
class ToyGANSnapshot:
    """What `ToySnapshots` records at one step, enough to draw the state of the game.

    ``fake`` are G's outputs on a fixed set of latent codes (``(n, 2)``), ``grad`` the
    `generator_gradient` at those points (``(n, 2)``), ``d_map`` the `discriminator_map`
    (``(R, R)``) over ``limits``; ``loss`` says how to read ``d_map``.
    """

    step: int
    fake: np.ndarray
    grad: np.ndarray
    d_map: np.ndarray
    limits: tuple[float, float]
    loss: str
    losses: dict[str, float] = field(default_factory=dict)


def take_snapshot(
    step: int,
    G: nn.Module,
    D: nn.Module,
    z_fixed: torch.Tensor,
    loss: str,
    limits: tuple[float, float] = (-3.0, 3.0),
    resolution: int = 60,
    losses: dict[str, float] | None = None,
) -> ToyGANSnapshot:
    """Record a `ToyGANSnapshot` of ``G`` and ``D`` (used by `ToySnapshots` and for a trained pair)."""
    with torch.no_grad():
        fake = G(z_fixed)
    grad = generator_gradient(D, fake, loss)
    return ToyGANSnapshot(
        step=step,
        fake=fake.cpu().numpy(),
        grad=grad.cpu().numpy(),
        d_map=discriminator_map(D, loss, limits, resolution),
        limits=tuple(limits),
        loss=loss,
        losses=dict(losses or {}),
    )


class ToySnapshots:
    """A ``callback(step, history)`` for `genimg_lib.train.train_gan` that records snapshots of a toy GAN.

    It takes a snapshot at step 0 when created (the untrained pair), then after every
    ``every`` steps and after ``num_steps``. The ``num_fixed`` latent codes are drawn
    from ``generator`` at creation, so pass the same generator on to `train_gan`.
    The snapshots are in ``.snapshots``; ``on_snapshot(snapshot)`` is called on each.
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        loss: str,
        every: int,
        num_steps: int,
        generator: torch.Generator | None = None,
        num_fixed: int = 512,
        limits: tuple[float, float] = (-3.0, 3.0),
        resolution: int = 60,
        on_snapshot: Callable[[ToyGANSnapshot], None] | None = None,
    ) -> None:
        gan_losses(loss)
        every = check_int(every, "every", meaning="steps between snapshots")
        self.G, self.D, self.loss, self.every, self.num_steps = G, D, loss, every, num_steps
        self.limits, self.resolution, self.on_snapshot = tuple(limits), resolution, on_snapshot
        device = next(G.parameters()).device
        self.z_fixed = torch.randn(num_fixed, G.z_dim, generator=generator).to(device)
        self.snapshots: list[ToyGANSnapshot] = []
        self._take(0, {})

    def _take(self, step: int, losses: dict[str, float]) -> None:
        modes = self.G.training, self.D.training
        self.G.eval(), self.D.eval()
        snap = take_snapshot(step, self.G, self.D, self.z_fixed, self.loss, self.limits, self.resolution, losses)
        self.G.train(modes[0]), self.D.train(modes[1])
        self.snapshots.append(snap)
        if self.on_snapshot is not None:
            self.on_snapshot(snap)

    def __call__(self, step: int, history) -> None:
        if step % self.every == 0 or step == self.num_steps:
            self._take(step, {"loss_D": history.last("loss_D"), "loss_G": history.last("loss_G")})

    def state_dict(self) -> dict:
        """The fixed codes and the snapshots so far, as tensors (saved with a run in progress)."""
        return {"z_fixed": self.z_fixed.cpu(), "snapshots": [
            {"step": s.step, "fake": torch.from_numpy(s.fake), "grad": torch.from_numpy(s.grad),
             "d_map": torch.from_numpy(s.d_map), "losses": dict(s.losses)} for s in self.snapshots]}

    def load_state_dict(self, state: dict) -> None:
        """Take back the fixed codes and the snapshots of a saved run (replacing the step-0 snapshot)."""
        self.z_fixed = state["z_fixed"].to(self.z_fixed.device)
        self.snapshots = [ToyGANSnapshot(s["step"], s["fake"].numpy(), s["grad"].numpy(), s["d_map"].numpy(),
                                         self.limits, self.loss, dict(s["losses"])) for s in state["snapshots"]]


def train_toy_gan(
    G: nn.Module,
    D: nn.Module,
    toy: ToyDistribution,
    num_steps: int,
    loss: str = "non_saturating",
    batch_size: int = 256,
    lr_G: float = 1e-3,
    lr_D: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
    gp_weight: float = 10.0,
    snapshot_every: int | None = None,
    num_fixed: int = 512,
    limits: tuple[float, float] = (-3.0, 3.0),
    resolution: int = 60,
    seed: int = 0,
    show_progress: bool = False,
    explode_factor: float | None = 1e4,
    checkpoint_path=None,
    checkpoint_every: int = 500,
    resume=None,
):
    """Train a GAN on a 2-D toy with `genimg_lib.train.train_gan`, recording snapshots to draw.

    The wiring of "A GAN you can watch": real batches from `toy_batches` (seeded by
    ``seed``), noise from a generator seeded with ``seed``, and, when ``snapshot_every``
    is set, a `ToySnapshots` callback. Initialise G and D under a fixed seed for a
    reproducible run. Returns ``(history, snapshots)``; ``snapshots`` is empty when
    ``snapshot_every`` is None. ``explode_factor``, ``checkpoint_path``,
    ``checkpoint_every`` and ``resume`` go to `train_gan`: a resumed run continues the
    batch stream, the noise and the snapshots where the saved run stopped.
    Chapter: A GAN you can watch.
    """
    seed = check_int(seed, "seed", minimum=0)
    generator = torch.Generator().manual_seed(seed)
    recorder = None
    if snapshot_every is not None:
        recorder = ToySnapshots(G, D, loss, snapshot_every, num_steps, generator, num_fixed, limits, resolution)
    else:
        torch.randn(num_fixed, G.z_dim, generator=generator)  # the same noise stream with or without snapshots
    history = train_gan(G, D, toy_batches(toy, batch_size, seed), num_steps, loss=loss, n_critic=n_critic,
                        lr_G=lr_G, lr_D=lr_D, betas=betas, gp_weight=gp_weight, callback=recorder,
                        generator=generator, desc=f"toy GAN ({loss})", show_progress=show_progress,
                        explode_factor=explode_factor, checkpoint_path=checkpoint_path,
                        checkpoint_every=checkpoint_every, resume=resume)
    return history, (recorder.snapshots if recorder is not None else [])


# ---------------------------------------------------------------------------
# measuring mode collapse
# ---------------------------------------------------------------------------
@dataclass
class ModeCoverage:
    """The mode-collapse numbers for samples of a Gaussian mixture (see `ring_mode_coverage`)."""

    modes_covered: int
    num_modes: int
    hq_fraction: float
    counts: list[int]

    def __str__(self) -> str:
        return f"modes covered {self.modes_covered}/{self.num_modes}, high-quality fraction {self.hq_fraction:.2f}"


def ring_mode_coverage(
    samples: torch.Tensor,
    means: torch.Tensor,
    std: float,
    num_std: float = 3.0,
    min_fraction: float = 0.01,
) -> ModeCoverage:
    r"""Modes covered and fraction of high-quality samples, for a mixture of isotropic Gaussians.

    A sample is *high quality* when it lies within ``num_std`` standard deviations of
    its nearest mode mean, :math:`\min_k \lVert x - m_k\rVert \le 3\sigma`. A mode is
    *covered* when at least ``min_fraction`` of all samples are high-quality samples
    assigned to it. These are the two numbers that Srivastava et al. (2017, VEEGAN)
    report for the ring of 8 Gaussians (papers differ on the threshold for a covered
    mode; here it is ``min_fraction``). A model that equals the data scores
    ``K/K`` modes and an HQ fraction of :math:`1 - e^{-9/2} \approx 0.989` in 2-D.

    Shapes: ``samples`` ``(N, d)``, ``means`` ``(K, d)``. Chapter: A GAN you can watch.
    """
    samples = torch.as_tensor(samples, dtype=torch.float32)
    means = torch.as_tensor(means, dtype=torch.float32)
    if samples.ndim != 2 or means.ndim != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(
            f"expected samples (N, d) and means (K, d) with the same d, got {tuple(samples.shape)} "
            f"and {tuple(means.shape)}"
        )
    if len(samples) == 0:
        raise ValueError("ring_mode_coverage needs at least one sample")
    if std <= 0 or num_std <= 0:
        raise ValueError(f"std and num_std must be positive, got std={std}, num_std={num_std}")
    dist = torch.cdist(samples, means)  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= num_std * std
    counts = torch.bincount(nearest[hq], minlength=len(means))
    covered = int((counts >= min_fraction * len(samples)).sum())
    return ModeCoverage(covered, len(means), float(hq.float().mean()), counts.tolist())


# ---------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------
def draw_snapshot(
    snapshot: ToyGANSnapshot,
    real: torch.Tensor | np.ndarray,
    ax: plt.Axes | None = None,
    num_arrows: int = 128,
    title: str | None = None,
    colorbar: bool = False,
) -> plt.Axes:
    """Draw one state of the game: heat map of D, real points, fake points, gradient arrows.

    The heat map is :math:`D(x)` in [0, 1] (blue: "real", white: 0.5, red: "fake") for the
    probability losses, and the critic's score (centred on 0) for the others. Arrows show
    :math:`-\\nabla_x \\ell_G` at the first ``num_arrows`` fake points, scaled per frame
    (their length is relative, not absolute).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    lo, hi = snapshot.limits
    if snapshot.loss in PROBABILITY_LOSSES:
        vmin, vmax, label = 0.0, 1.0, "D(x)"
    else:
        c = float(np.median(snapshot.d_map))
        r = float(np.abs(snapshot.d_map - c).max()) or 1.0
        vmin, vmax, label = c - r, c + r, "f(x)"
    mesh = ax.imshow(snapshot.d_map, origin="lower", extent=(lo, hi, lo, hi), cmap="RdBu",
                     vmin=vmin, vmax=vmax, alpha=0.45, interpolation="bilinear")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label=label)
    real = viz._as_numpy(real)
    ax.scatter(real[:, 0], real[:, 1], s=4, color=viz.REAL_COLOR, alpha=0.5, label="real")
    ax.scatter(snapshot.fake[:, 0], snapshot.fake[:, 1], s=4, color=viz.FAKE_COLOR, alpha=0.7, label="generated")
    n = min(num_arrows, len(snapshot.fake))
    if n:
        move = -snapshot.grad[:n]
        scale = np.linalg.norm(move, axis=1).max()
        if scale > 0:
            move = move / scale * 0.15 * (hi - lo)
        ax.quiver(snapshot.fake[:n, 0], snapshot.fake[:n, 1], move[:, 0], move[:, 1], angles="xy",
                  scale_units="xy", scale=1, width=0.004, color="k", alpha=0.6)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    ax.grid(False)
    ax.set_title(title if title is not None else f"step {snapshot.step}")
    return ax


def _as_runs(snapshots) -> dict[str, list[ToyGANSnapshot]]:
    runs = snapshots if isinstance(snapshots, dict) else {"": list(snapshots)}
    lengths = {len(v) for v in runs.values()}
    if not runs or 0 in lengths:
        raise ValueError("need at least one snapshot; pass snapshot_every to train_toy_gan")
    if len(lengths) != 1:
        raise ValueError(f"runs to show side by side need the same number of snapshots, got {sorted(lengths)}")
    return runs


def _draw_frame(axes, runs: dict[str, list[ToyGANSnapshot]], i: int, real) -> None:
    for ax, (name, snaps) in zip(axes, runs.items()):
        ax.clear()
        draw_snapshot(snaps[i], real, ax=ax, title=f"{name + ': ' if name else ''}step {snaps[i].step}")


def _palette_png(png: bytes) -> bytes:
    """Re-encode a PNG with a 256-colour palette: about 5 times smaller for these frames."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def snapshot_frames(
    snapshots, real: torch.Tensor | np.ndarray, size: float = 3.6, dpi: int = 72, palette: bool = True
) -> list[bytes]:
    """One PNG per snapshot (for `genimg_lib.widgets.frame_scrubber`).

    ``snapshots`` is a list of `ToyGANSnapshot`, or a dict ``{name: list}`` of runs with
    the same number of snapshots, drawn side by side in each frame. ``dpi`` is kept low
    and, with ``palette=True``, the PNGs use a 256-colour palette, because the frames are
    stored in the notebook.
    """
    runs = _as_runs(snapshots)
    frames = []
    for i in range(len(next(iter(runs.values())))):
        fig, axes = plt.subplots(1, len(runs), figsize=(size * len(runs), size), squeeze=False, dpi=dpi)
        _draw_frame(axes[0], runs, i, real)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        frames.append(_palette_png(buf.getvalue()) if palette else buf.getvalue())
    return frames


def animate_snapshots(
    snapshots, real: torch.Tensor | np.ndarray, size: float = 4.0, interval: int = 250, dpi: int = 72
):
    """An animation of the snapshots that plays on the website (`genimg_lib.viz.animation_html`).

    ``snapshots`` is a list of `ToyGANSnapshot`, or a dict ``{name: list}`` of runs drawn
    side by side. Frames are embedded as JPEG at ``dpi`` to keep the notebook small.
    """
    runs = _as_runs(snapshots)
    fig, axes = plt.subplots(1, len(runs), figsize=(size * len(runs), size), squeeze=False, dpi=dpi)
    _draw_frame(axes[0], runs, 0, real)
    fig.tight_layout()
    with plt.rc_context({"animation.frame_format": "jpeg", "savefig.dpi": dpi}):
        return viz.animation_html(fig, lambda i: _draw_frame(axes[0], runs, i, real),
                                  len(next(iter(runs.values()))), interval=interval)
