"""Watching a GAN train on 2-D toys, in the spirit of GAN Lab (Kahng et al., 2018).

Chapter: A GAN you can watch. `genimg_lib.train.train_toy_gan` records a
`ToyGANSnapshot` every few steps; the functions here compute what a snapshot holds
and draw it:

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

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from genimg_lib import viz
from genimg_lib.losses import gan_losses, g_loss_wasserstein

#: Losses whose discriminator outputs a logit (drawn as the probability D(x) = sigmoid(logit));
#: the others output an unbounded critic score f(x), drawn as is.
PROBABILITY_LOSSES = ("minimax", "non_saturating")
TOY_GAN_LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein_gp")


def check_toy_loss(loss: str) -> None:
    """Raise a clear error unless ``loss`` is one of `TOY_GAN_LOSSES`."""
    if loss not in TOY_GAN_LOSSES:
        raise ValueError(f"unknown toy GAN loss {loss!r}; choose one of {list(TOY_GAN_LOSSES)}")


def generator_loss_fn(loss: str):
    """The generator's loss for a toy loss name (``wasserstein_gp`` uses :math:`-\\mathbb E f(G(z))`)."""
    check_toy_loss(loss)
    return g_loss_wasserstein if loss == "wasserstein_gp" else gan_losses(loss)[1]


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
    check_toy_loss(loss)
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
    g_loss = generator_loss_fn(loss)
    x = points.detach().clone().requires_grad_(True)
    # the losses average over the batch; times N gives each point its own loss's gradient
    total = g_loss(D(x)) * x.shape[0]
    (grad,) = torch.autograd.grad(total, x)
    return grad.detach()


@dataclass
class ToyGANSnapshot:
    """What `train_toy_gan` records at one step, enough to draw the state of the game.

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
    """Record a `ToyGANSnapshot` of ``G`` and ``D`` (used by `train_toy_gan` and for a trained pair)."""
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
    from PIL import Image

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
