"""genimg_lib.widgets: precomputed frames switched in the browser, with no kernel."""

import io

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from genimg_lib import widgets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_frame_scrubber_links_slider_to_stack_in_the_browser():
    frames = [np.full((4, 4), v) for v in (0.0, 0.5, 1.0)]
    box = widgets.frame_scrubber(frames, captions=["a", "b", "c"])
    (play, slider), stack = box.children[0].children, box.children[1]
    assert isinstance(stack, W.Stack) and len(stack.children) == 3
    assert slider.max == 2 and play.max == 2
    # what the website gets: the embedded widget state must carry the links
    from ipywidgets.embed import embed_data

    state = embed_data(views=[box])["manager_state"]["state"]
    pairs = set()
    for model in state.values():
        if model["model_name"] == "LinkModel":
            (src, s_attr), (dst, d_attr) = model["state"]["source"], model["state"]["target"]
            pairs.add((src.replace("IPY_MODEL_", ""), s_attr, dst.replace("IPY_MODEL_", ""), d_attr))
    assert (slider.model_id, "value", stack.model_id, "selected_index") in pairs
    assert (play.model_id, "value", slider.model_id, "value") in pairs


def test_frame_scrubber_takes_png_bytes_figures_and_arrays():
    fig, _ = plt.subplots()
    png = widgets.array_to_png(np.zeros((2, 2)))
    box = widgets.frame_scrubber([png, fig, np.ones((3, 3))])
    images = [page.children[0] for page in box.children[1].children]
    assert all(isinstance(im, W.Image) and im.value[:8] == PNG_MAGIC for im in images)
    assert images[0].value == png
    assert not plt.fignum_exists(fig.number)  # rendered, then closed


def test_frame_scrubber_bad_input():
    with pytest.raises(ValueError, match="at least one frame"):
        widgets.frame_scrubber([])
    with pytest.raises(ValueError, match="2 frames but 1 captions"):
        widgets.frame_scrubber([np.zeros((2, 2))] * 2, captions=["x"])


def test_figure_to_png_is_png():
    fig, _ = plt.subplots()
    assert widgets.figure_to_png(fig)[:8] == PNG_MAGIC
    assert not plt.fignum_exists(fig.number)


def test_array_to_png_enlarges_and_keeps_the_grey_levels():
    image = np.array([[0.0, 1.0], [1.0, 0.0]])
    png = widgets.array_to_png(image, scale=3)
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert decoded.shape == (6, 6)
    np.testing.assert_array_equal(decoded, np.kron(image, np.ones((3, 3))) * 255)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 3\) image, got shape \(2, 2, 2, 2\)"):
        widgets.array_to_png(np.zeros((2, 2, 2, 2)))
