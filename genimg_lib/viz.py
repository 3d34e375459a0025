"""Pictures in one style: image grids, loss curves, 2-D scatter and density plots, animations.

Chapter: Getting started. Every figure in the book goes through these functions, so
the book looks the same throughout and a reader learns one vocabulary.

Images may come in any of the book's value ranges: ``(0, 1)``, ``(-1, 1)``, or
``"auto"``, which maps the smallest value to black and the largest to white.
"""

from __future__ import annotations

import inspect
import math
import re
from typing import Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, Code
from matplotlib import animation

from genimg_lib.data import check_int

#: The width of the website's text column in inches at the book's 100 dpi (680 px): a
#: figure drawn wider is shrunk on the page until its labels are unreadable.
COLUMN_WIDTH = 6.8

#: The book's matplotlib style: sized for the column, readable, no chart junk. At 100 dpi
#: a figure of `COLUMN_WIDTH` inches is shown at its native size, so 9-11 pt text stays
#: 12-15 px on screen.
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (COLUMN_WIDTH, 3.4),
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "image.cmap": "gray",
    "animation.embed_limit": 40.0,  # MB; the default 20 is too small for some animations
}

#: One colour per class (ten digits) and per role (real, fake).
PALETTE = plt.get_cmap("tab10").colors
REAL_COLOR, FAKE_COLOR = PALETTE[0], PALETTE[3]


def set_style() -> None:
    """Apply the book's matplotlib style (called on import of this module)."""
    matplotlib.rcParams.update(STYLE)


set_style()


def figsize(height: float, width: float = COLUMN_WIDTH) -> tuple[float, float]:
    """A figure size that fits the column: ``(width, height)`` in inches, ``width`` at most `COLUMN_WIDTH`.

    Use it for every figure, e.g. ``plt.subplots(1, 2, figsize=viz.figsize(3.0))``; a
    grid of panels that would need more width is split into several figures instead.
    """
    if width > COLUMN_WIDTH + 1e-9:
        raise ValueError(
            f"a figure {width} inches wide is shrunk on the page below its labels' readable size; "
            f"use at most COLUMN_WIDTH = {COLUMN_WIDTH} inches, and split wide panel grids"
        )
    if height <= 0:
        raise ValueError(f"height must be positive, got {height}")
    return (width, height)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def to_unit_range(x, value_range: tuple[float, float] | str = "auto") -> np.ndarray:
    """Rescale images to [0, 1] for display: ``(x - lo) / (hi - lo)``, clipped.

    ``value_range`` is ``(lo, hi)``, e.g. ``(-1, 1)`` for tanh outputs, or ``"auto"``
    (the array's own min and max).
    """
    arr = _as_numpy(x)
    if arr.size == 0:
        raise ValueError(f"x is empty (shape {arr.shape}): there is no image to show")
    if not np.isfinite(arr).all():
        raise ValueError(f"x: {int((~np.isfinite(arr)).sum())} value(s) are NaN or infinite; an image of them "
                         "would be blank or misleading. Check what produced x (did training diverge?)")
    if isinstance(value_range, str):
        if value_range != "auto":
            raise ValueError(f"value_range must be (lo, hi) or 'auto', got {value_range!r}")
        lo, hi = float(arr.min()), float(arr.max())
    else:
        try:
            lo, hi = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range must be (lo, hi) or 'auto', got {value_range!r}") from None
        if not lo < hi:
            raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {value_range!r}")
    if hi <= lo:
        return np.zeros_like(arr)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0)


def image_grid(
    x, nrow: int = 8, padding: int = 1, value_range: tuple[float, float] | str = "auto", pad_value: float = 1.0
) -> np.ndarray:
    """Tile a batch of images into one array: ``(H', W')`` for grey, ``(H', W', 3)`` for colour.

    ``x`` is ``(N, C, H, W)`` with C in {1, 3}, ``(N, H, W)``, or a single ``(H, W)``
    image; a tensor or an array. Images are placed row by row, ``nrow`` per row.
    """
    arr = to_unit_range(x, value_range)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(
            f"expected images of shape (N, C, H, W) with C in (1, 3), (N, H, W) or (H, W); "
            f"got {tuple(_as_numpy(x).shape)}"
        )
    nrow, padding = check_int(nrow, "nrow", minimum=None), check_int(padding, "padding", minimum=0)
    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}")
    n, c, h, w = arr.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = np.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value, np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top : top + h, left : left + w] = arr[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def show_images(
    x,
    nrow: int = 8,
    title: str | None = None,
    value_range: tuple[float, float] | str = "auto",
    ax: plt.Axes | None = None,
    scale: float = 0.6,
) -> plt.Figure:
    """Draw a grid of images (see `image_grid`) with no axes; returns the figure."""
    grid = image_grid(x, nrow=nrow, value_range=value_range)
    if ax is None:
        h, w = grid.shape[:2]
        size = min(scale * nrow, COLUMN_WIDTH)
        _, ax = plt.subplots(figsize=(size, size * h / w + (0.3 if title else 0)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def plot_losses(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    steps: Sequence[float] | None = None,
    ax: plt.Axes | None = None,
    title: str = "Training losses",
    ylabel: str = "loss",
    smooth: int = 1,
) -> plt.Axes:
    """Plot curves from a history (a `train.History` or a dict of lists) against the step.

    ``smooth`` > 1 draws a running mean over that many points over the raw curve.
    """
    if ax is None:
        _, ax = plt.subplots()
    if steps is None and "step" in history:
        steps = history["step"]
    keys = [k for k in (keys or history.keys()) if k != "step"]
    if not keys:
        raise ValueError("the history has no curves to plot")
    for i, key in enumerate(keys):
        if key not in history:
            raise ValueError(f"no curve {key!r} in the history; it has {sorted(history.keys())}")
        y = np.asarray(history[key], dtype=float)
        if steps is not None:
            xs = np.asarray(steps)[: len(y)]
        elif hasattr(history, "steps"):  # a train.History keeps each curve's own steps
            xs = np.asarray(history.steps(key))
        else:
            xs = np.arange(len(y))
        color = PALETTE[i % len(PALETTE)]
        if smooth > 1 and len(y) >= smooth:
            ax.plot(xs, y, color=color, alpha=0.25, lw=0.8)
            kernel = np.ones(smooth) / smooth
            ax.plot(xs[smooth - 1 :], np.convolve(y, kernel, mode="valid"), color=color, label=key)
        else:
            ax.plot(xs, y, color=color, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return ax


def scatter_2d(
    points,
    labels=None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    color=None,
    s: float = 4.0,
    alpha: float = 0.6,
    label: str | None = None,
) -> plt.Axes:
    """Scatter ``(n, 2)`` points, coloured by integer ``labels`` when given."""
    pts = _as_numpy(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected points of shape (n, 2), got {pts.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    if labels is not None:
        lab = _as_numpy(labels).astype(int)
        for c in np.unique(lab):
            m = lab == c
            ax.scatter(pts[m, 0], pts[m, 1], s=s, alpha=alpha, color=PALETTE[c % 10], label=str(c))
    else:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color or REAL_COLOR, label=label)
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title)
    return ax


def density_grid(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float] = (-3, 3),
    ylim: tuple[float, float] = (-3, 3),
    resolution: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``exp(log_prob)`` on a ``resolution x resolution`` grid: returns ``(X, Y, P)``."""
    xs = torch.linspace(*xlim, resolution)
    ys = torch.linspace(*ylim, resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    with torch.no_grad():
        p = log_prob(pts).exp().reshape(resolution, resolution)
    return gx.numpy(), gy.numpy(), p.numpy()


def plot_density_2d(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float] = (-3, 3),
    ylim: tuple[float, float] = (-3, 3),
    ax: plt.Axes | None = None,
    title: str | None = None,
    resolution: int = 200,
    cmap: str = "Blues",
) -> plt.Axes:
    """Draw a 2-D density given its log density, as a filled image over the limits."""
    X, Y, P = density_grid(log_prob, xlim, ylim, resolution)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.pcolormesh(X, Y, P, cmap=cmap, shading="auto")
    ax.set_aspect("equal")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def animation_html(
    fig: plt.Figure, update: Callable[[int], object], num_frames: int, interval: int = 200
):
    """A matplotlib animation as a self-contained HTML player (``to_jshtml``).

    It plays on the static website with no kernel. ``update(i)`` redraws frame ``i``.
    The figure is closed so that it is not also shown as a still image. The first frame
    is the picture's ``src`` in the HTML itself, so it shows before any script runs:
    in JupyterLab, which renders cells lazily (windowed mode) and skips scripts in an
    untrusted notebook, and in viewers that run no JavaScript. The player starts once
    its elements are in the page.
    """
    if check_int(num_frames, "num_frames", minimum=None) < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    anim = animation.FuncAnimation(fig, update, frames=num_frames, interval=interval)
    html = anim.to_jshtml(default_mode="loop")
    plt.close(fig)
    # matplotlib's player links Font Awesome 4 from a CDN for its button icons. The book
    # never loads anything from outside the site: drop the link; the site's theme ships
    # Font Awesome itself (and Jupyter has it), so the buttons keep their icons.
    html = re.sub(r"<link[^>]*font-awesome[^>]*>\s*", "", html)
    # matplotlib's <img> has no src until its script sets one. The script's strings
    # continue over lines with a backslash; the src is the same data URI in one piece.
    first = re.search(r'frames\[0\] = "(data:image/[a-z]+;base64,[^"]*)"', html)
    img = re.search(r'<img id="(_anim_img\w+)">', html)
    if first is None or img is None:
        raise RuntimeError("matplotlib's to_jshtml output changed: update viz.animation_html")
    src = re.sub(r"\\\n", "", first.group(1))
    html = html.replace(img.group(0), f'<img id="{img.group(1)}" src="{src}" alt="frame 1 of {num_frames}">', 1)
    # matplotlib starts the player on a zero timeout and assumes its elements exist by
    # then; start it once they are in the document (checked every 100 ms, for 10 min).
    # The leading ";" ends matplotlib's last frames[...] line, which has none.
    html, started = re.subn(
        r"setTimeout\(function\(\) \{\s*(anim\w+ = new Animation\([^;]*\);)\s*\}, 0\);",
        r";(function start(tries) { if (document.getElementById(img_id)) { \1 }"
        r" else if (tries < 6000) { setTimeout(function () { start(tries + 1); }, 100); } })(0);",
        html,
    )
    if started != 1:
        raise RuntimeError("matplotlib's to_jshtml output changed: update viz.animation_html")
    return HTML(html)


def show_source(obj) -> Code:
    """Show the source of a library function or class on the page, highlighted.

    The chapters use it wherever they introduce a library function they did not write
    inline first, so that the code behind every call is one look away, e.g.
    ``viz.show_source(genimg_lib.train.train_vae)``. The docstring is kept: it states the math.
    """
    return Code(inspect.getsource(obj), language="python")
