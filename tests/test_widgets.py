"""genimg_lib.widgets: precomputed frames switched in the browser, with no kernel."""

import io

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pytest
from ipywidgets.embed import dependency_state, embed_data
from PIL import Image

from genimg_lib import widgets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_frame_scrubber_links_slider_to_stack_in_the_browser():
    frames = [np.full((4, 4), v) for v in (0.0, 0.5, 1.0)]
    box = widgets.frame_scrubber(frames, captions=["a", "b", "c"])
    (play, slider), stack = box.children[0].children, box.children[1]
    assert isinstance(stack, W.Stack) and len(stack.children) == 3
    assert slider.max == 2 and play.max == 2
    pairs = _links(box)  # what the website gets: the embedded widget state must carry the links
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


# --- frame_grid_scrubber: two sliders over a grid of frames ---
def _links(box):
    state = embed_data(views=[box])["manager_state"]["state"]
    pairs = set()
    for model in state.values():
        if model["model_name"] == "LinkModel":
            (src, s_attr), (dst, d_attr) = model["state"]["source"], model["state"]["target"]
            pairs.add((src.replace("IPY_MODEL_", ""), s_attr, dst.replace("IPY_MODEL_", ""), d_attr))
    return pairs


def test_grid_scrubber_links_both_sliders_in_the_browser():
    frames = [[np.full((4, 4), (r * 3 + c) / 6) for c in range(3)] for r in range(2)]
    box = widgets.frame_grid_scrubber(frames, ["a", "b"], ["x", "y", "z"], "mask", "digit")
    row_slider, column_slider, outer = box.children  # one slider a line (a phone's column)
    assert row_slider.description == "mask" and row_slider.max == 1
    assert column_slider.description == "digit" and column_slider.max == 2
    assert isinstance(outer, W.Stack) and len(outer.children) == 2
    pairs = _links(box)
    assert (row_slider.model_id, "value", outer.model_id, "selected_index") in pairs
    for r, inner in enumerate(outer.children):
        assert isinstance(inner, W.Stack) and len(inner.children) == 3
        assert (column_slider.model_id, "value", inner.model_id, "selected_index") in pairs
        for c, page in enumerate(inner.children):
            caption, image = page.children
            assert caption.value == f"<b>{'ab'[r]}; {'xyz'[c]}</b>"
            # the frame at [r][c] is the one shown there: its grey level survives the PNG
            assert image.value == widgets.array_to_png(frames[r][c])


def test_grid_scrubber_bad_input():
    frame = np.zeros((2, 2))
    with pytest.raises(ValueError, match="non-empty list of rows"):
        widgets.frame_grid_scrubber([], [], [])
    with pytest.raises(ValueError, match="each row must be a list"):
        widgets.frame_grid_scrubber([frame], ["a"], ["x"])
    with pytest.raises(ValueError, match=r"same, non-zero number of frames; got \[2, 1\]"):
        widgets.frame_grid_scrubber([[frame, frame], [frame]], ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="column_captions: expected a list of 2 captions"):
        widgets.frame_grid_scrubber([[frame, frame]], ["a"], ["x"])
    with pytest.raises(ValueError, match="row_captions"):
        widgets.frame_grid_scrubber([[frame]], "a", ["x"])
    with pytest.raises(TypeError, match=r"frames\[0\]\[0\] must be PNG bytes"):
        widgets.frame_grid_scrubber([[None]], ["a"], ["x"])


@pytest.mark.parametrize("kind", ["frames", "grid"])
def test_scrubber_frames_share_one_layout_and_caption_style(kind):
    # every frame's image, caption and box use the same Layout (and captions one style),
    # so the embedded state of a page does not grow by identical models with each frame
    images = [np.full((4, 4), k / 11) for k in range(12)]
    if kind == "frames":
        box = widgets.frame_scrubber(images, [f"c{k}" for k in range(12)])
        pages = list(box.children[1].children)
    else:
        box = widgets.frame_grid_scrubber([images[:6], images[6:]], ["a", "b"], list("uvwxyz"))
        pages = [page for inner in box.children[2].children for page in inner.children]
    assert len(pages) == 12
    layouts = {w.layout.model_id for page in pages for w in (page, *page.children)}
    styles = {page.children[0].style.model_id for page in pages}
    assert len(layouts) == 1 and len(styles) == 1
    state = dependency_state(box, drop_defaults=False)  # the models the box's views need
    counts = {}
    for model in state.values():
        counts[model["model_name"]] = counts.get(model["model_name"], 0) + 1
    # one layout for the frames, the rest for the sliders, play button, stacks and boxes
    assert counts["ImageModel"] == 12 and counts["LayoutModel"] <= 8, counts
    assert counts["HTMLStyleModel"] == 1, counts
