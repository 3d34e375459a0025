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
from ipywidgets.widgets.widget_string import HTMLStyle  # the style of an HTML widget
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
    layout, style = W.Layout(), HTMLStyle()  # one of each for all frames (see _frame_page)
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
        children.append(_frame_page(png, None if captions is None else captions[i], layout, style))
    stack = W.Stack(children, selected_index=0)
    slider = W.IntSlider(value=0, min=0, max=len(frames) - 1, description=description, continuous_update=True)
    play = W.Play(value=0, min=0, max=len(frames) - 1, interval=interval, description="play")
    W.jslink((play, "value"), (slider, "value"))
    W.jslink((slider, "value"), (stack, "selected_index"))
    return W.VBox([W.HBox([play, slider]), stack])


def _frame_page(png: bytes, caption: str | None, layout: W.Layout, style: HTMLStyle) -> W.VBox:
    """One page of a scrubber: the caption (if any) over the image.

    Every page of a scrubber shares the same default ``layout`` and caption ``style``:
    each widget would otherwise get its own `Layout` model (and each caption its own
    style), all identical, and a page embeds every model in its widget state, about
    4 kB a frame.
    """
    parts = [W.Image(value=png, format="png", layout=layout)]
    if caption is not None:
        parts.insert(0, W.HTML(f"<b>{caption}</b>", layout=layout, style=style))
    return W.VBox(parts, layout=layout)


def _frame_png(frame: bytes | plt.Figure | np.ndarray, where: str) -> bytes:
    """PNG bytes of one frame: PNG bytes as they are, a figure rendered (and closed), an array in [0, 1]."""
    if isinstance(frame, plt.Figure):
        return figure_to_png(frame)
    if isinstance(frame, (bytes, bytearray)):
        return bytes(frame)
    if isinstance(frame, (str, dict)) or frame is None:
        raise TypeError(f"{where} must be PNG bytes, a matplotlib figure or an image array, got {type(frame).__name__}")
    return array_to_png(frame)


def frame_grid_scrubber(
    frames: Sequence[Sequence[bytes | plt.Figure | np.ndarray]],
    row_captions: Sequence[str],
    column_captions: Sequence[str],
    row_description: str = "row",
    column_description: str = "column",
) -> W.VBox:
    """Two sliders that choose one frame of a grid of precomputed frames, with no kernel.

    ``frames[r][c]`` (PNG bytes, figures or arrays in [0, 1]) is shown when the first
    slider (``row_description``) is at ``r`` and the second (``column_description``) at
    ``c``; its caption is ``row_captions[r]`` and ``column_captions[c]``. The layout: an
    outer `Stack` of rows, each row a `Stack` of its frames; the row slider drives the
    outer stack and the column slider every inner one, all through ``jslink``, so the
    website switches frames on its own, as for `frame_scrubber`. The two sliders sit on
    separate lines, so that on a phone neither is squeezed. Chapter: The latent studio.
    """
    if isinstance(frames, (str, bytes, np.ndarray)) or len(frames) == 0:
        raise ValueError("frames: expected a non-empty list of rows, each a list of frames (frames[row][column])")
    rows = [list(row) if not isinstance(row, (str, bytes, np.ndarray, plt.Figure)) else None for row in frames]
    if any(row is None for row in rows):
        raise ValueError("frames: each row must be a list of frames (frames[row][column]), not a single frame")
    num_columns = len(rows[0])
    if num_columns == 0 or any(len(row) != num_columns for row in rows):
        raise ValueError(f"frames: every row needs the same, non-zero number of frames; got {[len(r) for r in rows]}")
    for name, captions, n in (("row_captions", row_captions, len(rows)), ("column_captions", column_captions, num_columns)):
        if isinstance(captions, str) or len(captions) != n:
            got = repr(captions) if isinstance(captions, str) else f"{len(captions)} captions"
            raise ValueError(f"{name}: expected a list of {n} captions (one per {name.split('_')[0]}), got {got}")
    column_slider = W.IntSlider(value=0, min=0, max=num_columns - 1, description=column_description,
                                continuous_update=True)
    row_slider = W.IntSlider(value=0, min=0, max=len(rows) - 1, description=row_description, continuous_update=True)
    inner = []
    layout, style = W.Layout(), HTMLStyle()  # one of each for all frames (see _frame_page)
    for r, row in enumerate(rows):
        pages = []
        for c, frame in enumerate(row):
            pages.append(_frame_page(_frame_png(frame, f"frames[{r}][{c}]"),
                                     f"{row_captions[r]}; {column_captions[c]}", layout, style))
        stack = W.Stack(pages, selected_index=0)
        W.jslink((column_slider, "value"), (stack, "selected_index"))
        inner.append(stack)
    outer = W.Stack(inner, selected_index=0)
    W.jslink((row_slider, "value"), (outer, "selected_index"))
    return W.VBox([row_slider, column_slider, outer])  # one slider a line: each keeps its width on a phone
