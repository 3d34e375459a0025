"""genimg_lib.viz: image grids, value ranges, loss curves, 2-D plots and the animation player."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from genimg_lib import train, viz


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
    np.testing.assert_allclose(viz.to_unit_range(torch.full((2, 2), 0.3), "auto"), np.zeros((2, 2)))  # flat image
    with pytest.raises(ValueError, match="value_range must be"):
        viz.to_unit_range(x, "minmax")


def test_image_grid_bad_shape():
    with pytest.raises(ValueError, match=r"expected images of shape \(N, C, H, W\) with C in \(1, 3\)"):
        viz.image_grid(torch.rand(2, 5, 4, 4))
    with pytest.raises(ValueError, match="nrow must be at least 1"):
        viz.image_grid(torch.rand(2, 1, 4, 4), nrow=0)


def test_show_images_draws_the_grid_without_axes():
    x = torch.rand(6, 1, 4, 4)
    fig = viz.show_images(x, nrow=3, title="six", value_range=(0, 1))
    ax = fig.axes[0]
    assert ax.get_title() == "six" and not ax.axison
    np.testing.assert_allclose(ax.images[0].get_array(), viz.image_grid(x, nrow=3, value_range=(0, 1)))
    plt.close(fig)


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


def test_plot_losses_bad_keys():
    with pytest.raises(ValueError, match=r"no curve 'kl' in the history; it has \['loss'\]"):
        viz.plot_losses({"loss": [1.0, 0.5]}, keys=["kl"])
    with pytest.raises(ValueError, match="no curves to plot"):
        viz.plot_losses({"step": [0, 1]})
    with pytest.raises(ValueError, match=r"points of shape \(n, 2\)"):
        viz.scatter_2d(torch.randn(10, 3))
    plt.close("all")


def test_density_grid_of_a_standard_normal_integrates_to_one():
    dist = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    X, Y, P = viz.density_grid(dist.log_prob, (-6, 6), (-6, 6), resolution=241)
    cell = (X[0, 1] - X[0, 0]) * (Y[1, 0] - Y[0, 0])
    assert P.sum() * cell == pytest.approx(1.0, abs=1e-3)
    assert P[120, 120] == pytest.approx(1 / (2 * np.pi), rel=1e-5)  # the centre of the grid is (0, 0)


def test_style_is_applied_on_import():
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["figure.dpi"] == viz.STYLE["figure.dpi"]
    assert matplotlib.rcParams["figure.figsize"][0] == viz.COLUMN_WIDTH  # a default figure fits the column


def test_figsize_fits_the_column():
    assert viz.figsize(3.0) == (viz.COLUMN_WIDTH, 3.0)
    assert viz.figsize(2.0, width=4.5) == (4.5, 2.0)
    assert viz.COLUMN_WIDTH * viz.STYLE["figure.dpi"] <= 690  # the website's column, in pixels
    with pytest.raises(ValueError, match=r"a figure 13 inches wide .*at most COLUMN_WIDTH = 6.8 inches"):
        viz.figsize(3.0, width=13)
    with pytest.raises(ValueError, match="height must be positive, got 0"):
        viz.figsize(0)


def test_show_images_never_draws_wider_than_the_column():
    fig = viz.show_images(torch.rand(32, 1, 4, 4), nrow=16)  # 16 columns at 0.6 inch would be 9.6 inches
    assert fig.get_size_inches()[0] == pytest.approx(viz.COLUMN_WIDTH)
    plt.close(fig)


def test_show_source_shows_the_code():
    code = viz.show_source(viz.image_grid)
    assert "def image_grid(" in code.data


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
    # every frame embedded (no kernel, no network), the first twice: it is also the <img>'s src
    assert html.count("data:image/png;base64") == 5
    assert "http://" not in html and "https://" not in html  # matplotlib links a CDN stylesheet: dropped
    assert set(seen) >= {0, 1, 2, 3}
    assert not plt.fignum_exists(fig.number)  # closed, so not shown twice
    with pytest.raises(ValueError, match="at least 1"):
        viz.animation_html(plt.figure(), update, num_frames=0)
    plt.close("all")
