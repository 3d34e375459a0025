"""Morphometrics (genimg_lib.morpho) against shapes whose answer is known independently.

Synthetic strokes are rasterized here, by 16x supersampling of an exact geometric
shape (a capsule: the points within width/2 of a segment, the shape a round pen
draws), so the expected slant, thickness, width, height and area come from geometry
and not from the code under test. The tolerances come from the measuring grid: the
ink is found on a 4x finer grid, so lengths are quantized to 1/4 px.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from genimg_lib import morpho
from genimg_lib.data import load_mnist5k

ANGLES = (-30.0, -15.0, 0.0, 15.0, 30.0)
HI_RES = 1.0 / morpho.SCALE  # one pixel of the 4x grid, in input pixels


def capsule(angle: float, width: float, length: float, size: int = 28, centre=(14.0, 14.0),
            supersample: int = 16, coverage: bool = True) -> torch.Tensor:
    """A stroke of ``width`` and ``length`` (between the centres of its round caps), at
    ``angle`` degrees from the vertical, leaning right when positive, as grey coverage
    ``(size, size)`` in [0, 1]. Pixel (r, c) spans [c, c+1] x [r, r+1]; ``centre`` is (x, y).
    With ``coverage=False`` it returns the supersampled 0/1 mask instead."""
    n = size * supersample
    c = (np.arange(n) + 0.5) / supersample
    X, Y = np.meshgrid(c, c)  # x right, y down
    t = math.radians(angle)
    ux, uy = math.sin(t), -math.cos(t)  # unit vector pointing up the stroke
    px, py = X - centre[0], Y - centre[1]
    s = np.clip(px * ux + py * uy, -length / 2, length / 2)
    inside = np.hypot(px - s * ux, py - s * uy) <= width / 2
    if not coverage:
        return torch.tensor(inside)
    return torch.tensor(inside.reshape(size, supersample, size, supersample).mean((1, 3)), dtype=torch.float32)


def moment_slant(mask: np.ndarray) -> float:
    """arctan(-mu11 / mu02) in degrees of a 0/1 mask, by brute force in numpy (y down)."""
    ys, xs = np.nonzero(mask)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    return math.degrees(math.atan(-(dx * dy).mean() / (dy * dy).mean()))


def rectangle(rows: slice, cols: slice, size: int = 28) -> torch.Tensor:
    x = torch.zeros(size, size)
    x[rows, cols] = 1.0
    return x


@pytest.fixture(scope="module")
def mnist_test():
    torch.set_num_threads(1)
    x, y = load_mnist5k("test")
    return x, y, morpho.measure(x)


# ---------------------------------------------------------------------------
# Slant
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("angle", ANGLES)
def test_thin_line_slant_is_its_angle(angle):
    # A 1-px line of length 18: its moments are those of a segment up to a width bias of
    # about 0.1 degree at 30 degrees ((w/L)^2 terms), plus the raster's wobble.
    m = morpho.measure(capsule(angle, width=1.0, length=18.0))
    assert abs(m["slant"].item() - angle) < 0.5


@pytest.mark.parametrize("angle", ANGLES)
@pytest.mark.parametrize("width", [3.0, 4.0])
def test_thick_stroke_slant_is_the_moment_slant_of_the_exact_shape(angle, width):
    # For a thick stroke arctan(-mu11/mu02) is smaller than the stroke's angle (mu02 grows
    # by the stroke's own width); the reference is the same formula on the exact shape.
    expected = moment_slant(capsule(angle, width, 16.0, coverage=False).numpy())
    measured = morpho.measure(capsule(angle, width, 16.0))["slant"].item()
    assert abs(measured - expected) < 0.5
    if angle:
        assert abs(measured) < abs(angle)  # the documented bias, towards upright


def test_slant_sign_follows_the_lean():
    right, left = capsule(20, 2, 18), capsule(-20, 2, 18)
    m = morpho.measure(torch.stack([right, left])[:, None])
    assert m["slant"][0] > 15 and m["slant"][1] < -15  # positive = top to the right
    # the mirror image has the opposite slant and the same box and area, exactly
    x, _ = load_mnist5k("test")
    a, b = morpho.measure(x[:30]), morpho.measure(x[:30].flip(-1))
    torch.testing.assert_close(b["slant"], -a["slant"])
    for k in ("width", "height", "area"):
        torch.testing.assert_close(b[k], a[k])
    # thinning is not mirror-symmetric, so the skeleton, and the thickness, move a little
    assert (b["thickness"] - a["thickness"]).abs().max() < 0.1


@pytest.mark.parametrize("phi", [-20.0, -10.0, 10.0, 20.0])
def test_shearing_a_digit_adds_tan_phi_to_tan_slant(phi):
    # Shearing by x -> x + tan(phi) (y_c - y) changes mu11 by -tan(phi) mu02, so
    # tan(slant) grows by exactly tan(phi) (the slant itself by about phi).
    # Bilinear resampling blurs the sheared digit, hence the tolerances.
    x, _ = load_mnist5k("test")
    x = x[:40]
    t = math.tan(math.radians(phi))
    sheared = [
        ndimage.affine_transform(img, np.array([[1.0, 0.0], [t, 1.0]]), offset=[0.0, -t * 13.5], order=1)
        for img in x[:, 0].numpy()
    ]
    x_sheared = torch.tensor(np.stack(sheared))[:, None].clamp(0, 1)
    before, after = morpho.measure(x), morpho.measure(x_sheared)
    expected = torch.rad2deg(torch.atan(torch.tan(torch.deg2rad(before["slant"])) + t))
    error = (after["slant"] - expected).abs()
    assert error.mean() < 0.3 and error.max() < 1.5
    assert ((after["slant"] - before["slant"]) * math.copysign(1, phi)).min() > abs(phi) / 2
    # a shear keeps area and height
    assert ((after["area"] / before["area"]) - 1).abs().max() < 0.04
    assert (after["height"] - before["height"]).abs().max() < 0.5


def test_slant_on_ink_agrees_with_slant_on_grey_for_mnist():
    # The departure from the reference (moments of the binary ink, not of the grey image)
    # barely matters on clean digits: compare with grey-weighted moments in numpy.
    x, _ = load_mnist5k("test")
    x = x[::10]
    up = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic").clamp(0, 1)[:, 0].double().numpy()
    ys, xs = np.mgrid[: up.shape[1], : up.shape[2]]
    grey = []
    for g in up:
        mass = g.sum()
        dx, dy = xs - (xs * g).sum() / mass, ys - (ys * g).sum() / mass
        grey.append(math.degrees(math.atan(-(dx * dy * g).sum() / (dy * dy * g).sum())))
    d = (morpho.measure(x)["slant"].double() - torch.tensor(grey)).abs()
    assert d.mean() < 0.5 and d.max() < 3.0


def test_faint_haze_moves_ink_slant_little_but_grey_slant_a_lot():
    # Why moments are taken on the ink: a haze of 0.2 over the canvas pulls a grey-weighted
    # slant towards 0, while the ink (>= 0.5) barely changes.
    x, _ = load_mnist5k("test")
    x = x[:40]
    hazy = (x + 0.2).clamp(max=1.0)
    clean, haze = morpho.measure(x), morpho.measure(hazy)
    assert (haze["slant"] - clean["slant"]).abs().mean() < 1.0
    g = hazy[:, 0].double().numpy()
    ys, xs = np.mgrid[:28, :28]
    grey = []
    for img in g:
        mass = img.sum()
        dx, dy = xs - (xs * img).sum() / mass, ys - (ys * img).sum() / mass
        grey.append(math.degrees(math.atan(-(dx * dy * img).sum() / (dy * dy * img).sum())))
    assert np.abs(grey).mean() < 0.5 * clean["slant"].abs().mean().item()


# ---------------------------------------------------------------------------
# Thickness
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("width", [1, 2, 3, 4, 6])
def test_vertical_bar_thickness_is_its_width(width):
    # whole columns of ink: the 4x grid resolves the bar exactly
    m = morpho.measure(rectangle(slice(4, 24), slice(10, 10 + width)))
    assert m["thickness"].item() == pytest.approx(width, abs=1e-5)


@pytest.mark.parametrize("angle", ANGLES)
@pytest.mark.parametrize("width", [1.0, 2.0, 3.0, 4.0, 5.0])
def test_stroke_thickness_is_its_width_at_any_angle(angle, width):
    # The distance transform is measured between pixel centres of the 4x grid, so a
    # radius is off by up to half a fine pixel: thickness is good to one fine pixel.
    m = morpho.measure(capsule(angle, width, 18.0))
    assert abs(m["thickness"].item() - width) <= HI_RES


def test_thickness_ranks_strokes_and_ignores_their_length():
    t = [morpho.measure(capsule(10, w, 16.0))["thickness"].item() for w in (1.5, 2.5, 3.5)]
    assert t[0] < t[1] < t[2]
    short, long = (morpho.measure(capsule(10, 3.0, L))["thickness"].item() for L in (8.0, 20.0))
    assert abs(short - long) < HI_RES


def test_thickness_uses_the_distance_to_background_on_every_side():
    # brute force: 2 * mean over the skeleton of the distance to the nearest background
    # pixel of the zero-padded ink, without the library's cropping
    from skimage.morphology import skeletonize

    x, _ = load_mnist5k("test")
    x = x[:5]
    b = morpho.ink(x)[:, 0].numpy()
    measured = morpho.measure(x)["thickness"]
    for k in range(len(x)):
        ink = np.pad(b[k], 1)
        background = np.argwhere(~ink)
        skeleton = np.argwhere(skeletonize(ink))
        d = np.sqrt(((skeleton[:, None, :] - background[None, :, :]) ** 2).sum(-1)).min(1)
        assert measured[k].item() == pytest.approx(2 * d.mean() / morpho.SCALE, abs=1e-4)
    # a bar touching the border is measured as if the canvas went on empty (without the
    # padding, the distance to the missing background on the left would double it); its
    # square end at the border moves the skeleton's tip a little: 0.05 px
    bar = rectangle(slice(0, 20), slice(0, 3))
    assert morpho.measure(bar)["thickness"].item() == pytest.approx(3.0, abs=0.05)


# ---------------------------------------------------------------------------
# Width, height, area
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("rows, cols", [((4, 24), (10, 18)), ((10, 16), (3, 25)), ((2, 26), (11, 17))])
def test_rectangle_width_height_and_area(rows, cols):
    h, w = rows[1] - rows[0], cols[1] - cols[0]
    x = rectangle(slice(*rows), slice(*cols))
    m = morpho.measure(x)
    f = morpho.BOUND_FRAC
    # The box keeps the middle 98 % of the mass along each axis: (1 - f) times each side.
    # Bicubic upsampling rounds each corner off by about one fine pixel (1/16 px^2), which
    # pulls the ends of a side of length a in by about 1/(8a) px: under 0.05 px for the
    # sides of 6 px and more used here; the area loses about 4/16 px^2.
    assert m["width"].item() == pytest.approx((1 - f) * w, abs=0.05)
    assert m["height"].item() == pytest.approx((1 - f) * h, abs=0.05)
    assert m["area"].item() == pytest.approx(h * w, abs=0.5)
    assert m["slant"].item() == pytest.approx(0.0, abs=1e-6)
    m0 = morpho.measure(x, bound_frac=0.0)  # no mass cut: the sides themselves
    assert m0["width"].item() == pytest.approx(w, abs=0.05)
    assert m0["height"].item() == pytest.approx(h, abs=0.05)


def test_area_of_strokes_is_their_geometric_area():
    # a capsule has area w L + pi w^2 / 4; the threshold at 0.5 of the anti-aliased
    # coverage puts the boundary within a fine pixel, and at most a few percent
    for angle in ANGLES:
        for width in (2.0, 4.0):
            exact = width * 18.0 + math.pi * width**2 / 4
            assert morpho.measure(capsule(angle, width, 18.0))["area"].item() == pytest.approx(exact, rel=0.03)


def exact_box(mask: np.ndarray, f: float = morpho.BOUND_FRAC, supersample: int = 16):
    """Width and height of the bounding parallelogram of a supersampled 0/1 mask, in
    numpy: deslant by the mask's own moments, then the f/2 and 1 - f/2 quantiles."""
    ys, xs = np.nonzero(mask)
    xs, ys = (xs + 0.5) / supersample, (ys + 0.5) / supersample
    dx, dy = xs - xs.mean(), ys - ys.mean()
    k = (dx * dy).mean() / (dy * dy).mean()
    q = [f / 2, 1 - f / 2]
    return float(np.diff(np.quantile(dx - k * dy, q))[0]), float(np.diff(np.quantile(dy, q))[0])


def test_width_and_height_of_strokes_follow_the_exact_deslanted_box():
    # Each end of a quantile range lies within about one fine pixel (0.25 px) of the
    # exact shape's, where the threshold puts the edge: 0.5 px for the range, and much
    # less on average. (1-px strokes are left out: a stroke that half-covers two
    # columns has no pixel at 0.5 near its tips.)
    errors = []
    for angle in ANGLES:
        for width in (2.0, 3.0, 4.0):
            for length in (12.0, 18.0):
                m = morpho.measure(capsule(angle, width, length))
                w, h = exact_box(capsule(angle, width, length, coverage=False).numpy())
                errors += [m["width"].item() - w, m["height"].item() - h]
    errors = np.abs(errors)
    assert errors.max() < 2 * HI_RES and errors.mean() < 0.15
    # deslanting makes a slanted stroke narrow: its width is about w / cos(angle), not
    # the width of its upright bounding box
    m = morpho.measure(capsule(30.0, 2.0, 18.0))
    assert m["width"].item() < 2.0 / math.cos(math.radians(30)) + 2 * HI_RES


# ---------------------------------------------------------------------------
# Invariances, batches, and images without ink
# ---------------------------------------------------------------------------
def test_integer_shifts_change_nothing():
    x, _ = load_mnist5k("test")
    x = x[:30]
    # keep digits whose ink stays off the border after the shift
    inner = torch.zeros(28, 28, dtype=torch.bool)
    inner[3:-3, 3:-3] = True
    x = x[(x[:, 0] * ~inner).flatten(1).amax(1) == 0]
    assert len(x) >= 10
    a = morpho.measure(x)
    for shift in [(2, 0), (0, -3), (-1, 2)]:
        b = morpho.measure(torch.roll(x, shifts=shift, dims=(-2, -1)))
        for k in morpho.ATTRIBUTES:
            torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=0)


def test_quarter_turns_keep_area_and_thickness():
    x, _ = load_mnist5k("test")
    x = x[:30]
    a, b = morpho.measure(x), morpho.measure(x.rot90(1, (-2, -1)))
    torch.testing.assert_close(b["area"], a["area"])
    assert (b["thickness"] - a["thickness"]).abs().max() < 0.1  # the thinning is not rotation-symmetric


def test_a_batch_measures_each_image_as_if_alone():
    x, _ = load_mnist5k("test")
    x = torch.cat([x[:6], torch.zeros(1, 1, 28, 28), x[6:9]])
    batch = morpho.measure(x)
    for i in range(len(x)):
        alone = morpho.measure(x[i, 0])
        for k in morpho.ATTRIBUTES:
            torch.testing.assert_close(batch[k][i], alone[k], equal_nan=True)


def test_images_without_ink_get_zero_area_and_nan_shape():
    x, _ = load_mnist5k("test")
    blank = torch.zeros(28, 28)
    faint = 0.4 * x[0, 0]  # nothing reaches 0.5, even with bicubic's overshoot (~10 %)
    m = morpho.measure(torch.stack([blank, faint, x[1, 0]])[:, None])
    assert m["area"][:2].tolist() == [0.0, 0.0]
    for k in ("slant", "thickness", "width", "height"):
        assert torch.isnan(m[k][:2]).all() and torch.isfinite(m[k][2])
    assert torch.isnan(morpho.measure(blank)["slant"])
    empty = morpho.measure(torch.zeros(0, 1, 28, 28))
    assert all(v.shape == (0,) for v in empty.values())


def test_absolute_threshold_measures_a_faint_digit_as_faint():
    # the reference re-normalises each image to its own maximum; here 0.5 is absolute
    x, _ = load_mnist5k("test")
    x = x[:20]
    crisp, faint = morpho.measure(x), morpho.measure(0.6 * x)
    assert (faint["area"] < crisp["area"]).all()
    assert (faint["thickness"] < crisp["thickness"]).float().mean() > 0.9
    assert morpho.measure(x, threshold=0.3)["area"].sum() > crisp["area"].sum()


# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------
def test_shapes_dtypes_table_and_ink():
    x, _ = load_mnist5k("test")
    m = morpho.measure(x[:7])
    assert list(m) == list(morpho.ATTRIBUTES) == ["slant", "thickness", "width", "height", "area"]
    assert all(v.shape == (7,) and v.dtype == torch.float32 for v in m.values())
    table = morpho.measure_table(x[:7])
    assert table.shape == (7, 5)
    torch.testing.assert_close(table[:, morpho.ATTRIBUTES.index("width")], m["width"])
    one = morpho.measure(x[3, 0])
    assert all(v.shape == () for v in one.values())
    torch.testing.assert_close(morpho.measure_table(x[3, 0]), table[3])
    assert set(morpho.UNITS) == set(morpho.ATTRIBUTES)
    b = morpho.ink(x[:2])
    assert b.shape == (2, 1, 112, 112) and b.dtype == torch.bool
    assert morpho.ink(x[0, 0]).shape == (112, 112)
    assert b[0].sum().item() / 16 == pytest.approx(m["area"][0].item())
    assert morpho.measure(x[:3], scale=2)["area"].shape == (3,)


def test_gradients_and_float64_inputs_are_accepted():
    x, _ = load_mnist5k("test")
    x = x[:3].double().requires_grad_(True)
    m = morpho.measure(x)
    assert m["area"].dtype == torch.float32 and not m["area"].requires_grad


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (np.zeros((28, 28)), TypeError, ["torch.Tensor", "ndarray"]),
        (torch.zeros(5, 28, 28), ValueError, ["(N, 1, H, W)", "(5, 28, 28)", "unsqueeze(1)"]),
        (torch.zeros(5, 3, 28, 28), ValueError, ["(N, 1, H, W)", "(5, 3, 28, 28)"]),
        (torch.zeros(28), ValueError, ["(N, 1, H, W)", "(28,)"]),
        (torch.zeros(2, 1, 1, 28), ValueError, ["at least 2x2"]),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), TypeError, ["float", "uint8", "/ 255"]),
        (torch.zeros(2, 1, 28, 28, dtype=torch.bool), TypeError, ["float", "bool", "x.float()"]),
        (torch.full((2, 1, 28, 28), math.nan), ValueError, ["NaN", "1568 pixel(s)"]),
        (torch.zeros(3, 1, 28, 28).index_fill(0, torch.tensor([2]), math.inf), ValueError, ["infinite"]),
        (torch.full((2, 1, 28, 28), 255.0), ValueError, ["[0, 1]", "255", "divide by 255"]),
        (torch.full((2, 1, 28, 28), -1.0), ValueError, ["[0, 1]", "[-1, 1]", "(x + 1) / 2"]),
        (torch.full((2, 1, 28, 28), 1.2), ValueError, ["[0, 1]", "1.2"]),
    ],
)
def test_bad_images_get_clear_errors(bad, error, words):
    with pytest.raises(error) as info:
        morpho.measure(bad)
    message = str(info.value)
    assert message.startswith("measure(x):")
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    with pytest.raises(error, match=r"^ink\(x\):"):
        morpho.ink(bad)


def test_roundoff_outside_the_range_is_clipped_not_refused():
    x, _ = load_mnist5k("test")
    m = morpho.measure((x[:2] * 1.00005) - 0.00002)
    assert torch.isfinite(m["thickness"]).all()


@pytest.mark.parametrize(
    "option, words",
    [
        ({"scale": 0}, ["scale", "positive integer", "0"]),
        ({"scale": 2.5}, ["scale", "2.5"]),
        ({"scale": True}, ["scale", "True"]),
        ({"threshold": 0.0}, ["threshold", "between 0 and 1"]),
        ({"threshold": 1.5}, ["threshold", "1.5"]),
        ({"bound_frac": -0.1}, ["bound_frac", "-0.1"]),
        ({"bound_frac": 1.0}, ["bound_frac", "[0, 1)"]),
    ],
)
def test_bad_options_get_clear_errors(option, words):
    with pytest.raises(ValueError) as info:
        morpho.measure(torch.zeros(1, 1, 28, 28), **option)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------
# Real digits: plausible, not hard-coded
# ---------------------------------------------------------------------------
def test_mnist_measurements_are_plausible(mnist_test):
    x, y, m = mnist_test
    assert all(torch.isfinite(v).all() for v in m.values())  # every MNIST digit has ink

    def median(k, digit):
        return m[k][y == digit].median().item()

    # ones are narrow, zeros and others wide; heights are similar (MNIST fits each digit
    # in a 20x20 box, so the taller side is about 20 px)
    assert median("width", 1) < 0.5 * min(median("width", d) for d in (0, 2, 3, 4, 5, 6, 8, 9))
    assert all(14 < median("height", d) < 22 for d in range(10))
    # ones have the least ink, eights and zeros much more
    assert median("area", 1) < 0.7 * min(median("area", 0), median("area", 8))
    # strokes are 1 to 6 px thick (the pen of MNIST), and thickness ~ area / length:
    # a one (one stroke, ~18 px long) has thickness close to area / 18
    assert 1.0 < m["thickness"].quantile(0.01) and m["thickness"].quantile(0.99) < 6.0
    ones = y == 1
    ratio = (m["thickness"][ones] / (m["area"][ones] / m["height"][ones])).median().item()
    assert 0.7 < ratio < 1.3
    # MNIST leans right on average, by a few degrees, and no digit lies flat
    assert 0.0 < m["slant"].mean().item() < 15.0
    assert m["slant"].abs().max().item() < 60.0


def test_slant_separates_digits_that_lean_opposite_ways(mnist_test):
    x, y, m = mnist_test
    order = m["slant"].argsort()
    left, right = x[order[:20]], x[order[-20:]]
    # independent check with the moments of the grey 28x28 images themselves
    def grey_slant(batch):
        out = []
        ys, xs = np.mgrid[:28, :28]
        for img in batch[:, 0].double().numpy():
            mass = img.sum()
            dx, dy = xs - (xs * img).sum() / mass, ys - (ys * img).sum() / mass
            out.append(math.degrees(math.atan(-(dx * dy * img).sum() / (dy * dy * img).sum())))
        return np.array(out)

    assert (grey_slant(left) < -10).all() and (grey_slant(right) > 20).all()
