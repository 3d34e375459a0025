import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from genimg_lib import exercises, train, viz, widgets


@pytest.mark.parametrize(
    "shape, expected",
    [((6, 1, 4, 5), (2 * 5 + 1, 3 * 6 + 1)), ((6, 4, 5), (11, 19)), ((4, 5), (6, 7)), ((2, 3, 4, 4), (6, 11, 3))],
)
def test_image_grid_shapes(shape, expected):
    grid = viz.image_grid(torch.rand(shape), nrow=3)
    assert grid.shape == expected


def test_image_grid_places_images_row_by_row():
    x = torch.zeros(4, 1, 2, 2)
    for i in range(4):
        x[i] = i
    grid = viz.image_grid(x, nrow=2, padding=0, value_range=(0, 3))
    np.testing.assert_allclose(grid[::2, ::2], np.array([[0, 1], [2, 3]]) / 3)


def test_value_ranges():
    x = torch.tensor([[-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(viz.to_unit_range(x, (-1, 1)), [[0, 0.5, 1]])
    np.testing.assert_allclose(viz.to_unit_range(x, "auto"), [[0, 0.5, 1]])
    np.testing.assert_allclose(viz.to_unit_range(x, (0, 1)), [[0, 0, 1]])


def test_image_grid_bad_shape():
    with pytest.raises(ValueError, match=r"expected images of shape \(N, C, H, W\) with C in \(1, 3\)"):
        viz.image_grid(torch.rand(2, 5, 4, 4))


def test_plots_return_axes():
    h = train.History()
    for step in range(10):
        h.log(step, loss=1 / (step + 1))
        if step % 5 == 0:
            h.log(step, kl=0.1 * step)
    ax = viz.plot_losses(h, smooth=3)
    assert len(ax.lines) == 3  # raw + smoothed loss, kl too short to smooth
    assert list(ax.lines[-1].get_xdata()) == [0, 5]
    viz.scatter_2d(torch.randn(10, 2), labels=torch.arange(10) % 3)
    viz.plot_density_2d(lambda p: -(p**2).sum(1), resolution=20)
    plt.close("all")


def test_history():
    h = train.History()
    h.log(0, loss=torch.tensor(2.0))
    h.log(1, loss=1.0)
    assert h["loss"] == [2.0, 1.0] and h.steps("loss") == [0, 1] and h.mean("loss") == 1.5
    with pytest.raises(KeyError, match="no curve 'kl'"):
        h["kl"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), torch.tensor(float("-inf"))])
def test_check_finite_stops_with_a_clear_message(bad):
    with pytest.raises(train.NonFiniteLossError, match=r"loss 'loss_D' became .* at step 12.*learning rate"):
        train.check_finite(12, loss_G=1.0, loss_D=bad)


def test_check_finite_passes_finite_values():
    train.check_finite(0, a=1.0, b=torch.tensor(0.5))


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


def test_frame_scrubber_bad_input():
    with pytest.raises(ValueError, match="at least one frame"):
        widgets.frame_scrubber([])
    with pytest.raises(ValueError, match="2 frames but 1 captions"):
        widgets.frame_scrubber([np.zeros((2, 2))] * 2, captions=["x"])


def test_figure_to_png_is_png():
    fig, _ = plt.subplots()
    assert widgets.figure_to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_exercise_checkers_grade_right_and_wrong(capsys):
    from genimg_lib.data import load_mnist5k, make_toy

    x, y = load_mnist5k("train")
    assert exercises.grade("getting_started.1", x[y == 1].mean().item())[0] == "correct"
    assert exercises.grade("getting_started.1", x.mean().item())[0] == "wrong"
    exercises.check("getting_started.1", x.mean().item())
    assert "not yet" in capsys.readouterr().out
    exercises.check("getting_started.1", ...)
    assert "not answered yet" in capsys.readouterr().out
    assert exercises.verdicts()["getting_started.1"]["verdict"] == "not answered"
    peak = 1 / 8 / (2 * np.pi * 0.05**2)
    assert exercises.grade("getting_started.2", peak)[0] == "correct"
    assert exercises.grade("getting_started.2", "a lot")[0] == "wrong"
    with pytest.raises(ValueError, match="unknown exercise"):
        exercises.check("nope.1", 0)


def test_animation_html_is_a_self_contained_player():
    fig, ax = plt.subplots()
    (line,) = ax.plot([0, 1], [0, 0])
    seen = []

    def update(i):
        seen.append(i)
        line.set_ydata([i, i])
        return (line,)

    html = viz.animation_html(fig, update, num_frames=4, interval=50).data
    assert "<script" in html and "data:image/png;base64" in html
    assert html.count("data:image/png;base64") == 4  # every frame embedded: no kernel, no network
    assert "http://" not in html and "https://" not in html  # matplotlib links a CDN stylesheet: dropped
    assert set(seen) >= {0, 1, 2, 3}
    assert not plt.fignum_exists(fig.number)  # closed, so not shown twice
    with pytest.raises(ValueError, match="at least 1"):
        viz.animation_html(plt.figure(), update, num_frames=0)


def test_part1_checkers_accept_the_closed_forms_and_reject_others():
    import math

    assert exercises.grade("generative_models.1", 100 / (784 * math.log(2)))[0] == "correct"
    assert exercises.grade("generative_models.1", 100 / 784)[0] == "wrong"  # nats, not bits
    assert exercises.grade("generative_models.2", -0.5 * math.log(2 * math.pi * math.e * 4.0))[0] == "correct"
    assert exercises.grade("generative_models.2", 0.5 * math.log(2 * math.pi * math.e * 4.0))[0] == "wrong"
