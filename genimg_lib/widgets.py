"""Widgets that keep working on the static website.

Chapter: Getting started. A widget that calls Python on every change (``interact``)
goes blank on the website, where there is no kernel. The widgets here instead
precompute their frames in Python and switch between them in the browser, through
links between widget properties (``jslink``) that the page's widget manager runs on
its own. The same widget works in Jupyter, in Colab and on the website.
"""

from __future__ import annotations

import io
from typing import Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np

from genimg_lib.data import check_int


def figure_to_png(fig: plt.Figure, close: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes (and close it, so it is not shown twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    if close:
        plt.close(fig)
    return buf.getvalue()


def array_to_png(image: np.ndarray, scale: int = 4) -> bytes:
    """Encode an ``(H, W)`` or ``(H, W, 3)`` image in [0, 1] as PNG, enlarged ``scale`` times."""
    scale = check_int(scale, "scale")
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise ValueError(f"image: expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"image: {int((~np.isfinite(arr)).sum())} pixel(s) are NaN or infinite")
    arr = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    plt.imsave(buf, np.clip(arr, 0, 1), cmap="gray", vmin=0, vmax=1, format="png")
    return buf.getvalue()


def frame_scrubber(
    frames: Sequence[bytes | plt.Figure | np.ndarray],
    captions: Sequence[str] | None = None,
    description: str = "frame",
    interval: int = 700,
) -> W.VBox:
    """A slider (and play button) that shows one of several precomputed frames.

    ``frames`` are PNG bytes, matplotlib figures (closed after rendering), or images
    as arrays in [0, 1]. The slider drives a `Stack` through ``jslink``, so scrubbing
    needs no kernel: it works on the website as it does in a notebook.
    """
    if isinstance(frames, (str, bytes, np.ndarray)) or len(frames) == 0:
        raise ValueError("frame_scrubber needs at least one frame: a list of PNG bytes, figures or arrays")
    if isinstance(captions, str):
        raise ValueError(f"captions must be a list with one caption per frame, got the string {captions!r}")
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"got {len(frames)} frames but {len(captions)} captions; give one caption per frame")
    interval = check_int(interval, "interval", meaning="milliseconds")
    children = []
    for i, frame in enumerate(frames):
        if isinstance(frame, plt.Figure):
            png = figure_to_png(frame)
        elif isinstance(frame, (bytes, bytearray)):
            png = bytes(frame)
        elif isinstance(frame, (str, dict)) or frame is None:
            raise TypeError(f"frames[{i}] must be PNG bytes, a matplotlib figure or an image array, "
                            f"got {type(frame).__name__}")
        else:
            png = array_to_png(frame)
        parts = [W.Image(value=png, format="png")]
        if captions is not None:
            parts.insert(0, W.HTML(f"<b>{captions[i]}</b>"))
        children.append(W.VBox(parts))
    stack = W.Stack(children, selected_index=0)
    slider = W.IntSlider(value=0, min=0, max=len(frames) - 1, description=description, continuous_update=True)
    play = W.Play(value=0, min=0, max=len(frames) - 1, interval=interval, description="play")
    W.jslink((play, "value"), (slider, "value"))
    W.jslink((slider, "value"), (stack, "selected_index"))
    return W.VBox([W.HBox([play, slider]), stack])
