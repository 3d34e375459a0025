"""Latent-space editing (genimg_lib.edit) against independent computations.

Interpolation is checked against geometry built here (a rotation in the plane of the
two codes, numpy's arccos in float64); the attribute directions against numpy's least
squares, a hand-worked example and the population answer for Gaussian codes; the
measurement of an edit against a "decoder" that draws a rectangle whose width is known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genimg_lib import edit
from genimg_lib.models import DCGAN, VAE


def random_pairs(n: int, d: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


# ---------------------------------------------------------------------------
# Interpolation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [edit.lerp, edit.slerp])
def test_endpoints_are_exact(fn):
    z0, z1 = random_pairs(5, 64)
    path = fn(z0, z1, [0.0, 0.3, 1.0])
    assert path.shape == (5, 3, 64)
    assert torch.equal(path[:, 0], z0) and torch.equal(path[:, -1], z1)
    assert torch.equal(fn(z0[0], z1[0], 0.0), z0[0]) and torch.equal(fn(z0[0], z1[0], 1), z1[0])


def test_lerp_is_the_straight_line():
    z0, z1 = random_pairs(4, 8, dtype=torch.float64)
    t = torch.tensor([0.25, 0.5])
    expected = torch.stack([0.75 * z0 + 0.25 * z1, (z0 + z1) / 2], dim=1)
    torch.testing.assert_close(edit.lerp(z0, z1, t), expected)
    assert edit.lerp(z0[0], z1[0], t).shape == (2, 8)  # one pair, a vector of steps
    assert edit.lerp(z0, z1, 0.5).shape == (4, 8)  # N pairs, one step


def test_slerp_keeps_the_norm_of_equal_norm_endpoints():
    z0, z1 = random_pairs(50, 64, dtype=torch.float64)
    z1 = z1 * (z0.norm(dim=1, keepdim=True) / z1.norm(dim=1, keepdim=True))  # equal norms, pair by pair
    path = edit.slerp(z0, z1, torch.linspace(0, 1, 11))
    norms = path.norm(dim=-1)  # (50, 11)
    torch.testing.assert_close(norms, z0.norm(dim=1, keepdim=True).expand(-1, 11), rtol=1e-10, atol=1e-10)
    # lerp does not: its midpoint is shorter by cos(omega / 2)
    mid = edit.lerp(z0, z1, 0.5).norm(dim=1)
    omega = torch.from_numpy(np.arccos(np.clip(np.sum(z0.numpy() * z1.numpy(), 1)
                                               / (np.linalg.norm(z0.numpy(), axis=1) ** 2), -1, 1)))
    torch.testing.assert_close(mid, z0.norm(dim=1) * torch.cos(omega / 2))


def test_slerp_is_the_rotation_in_the_plane_of_the_two_codes():
    """Equal norms: z(t) = r (cos(t w) e1 + sin(t w) e2), with e1, e2 from Gram-Schmidt."""
    z0, z1 = random_pairs(1, 16, seed=3, dtype=torch.float64)
    z0, z1 = z0[0], z1[0]
    r = z0.norm()
    z1 = z1 / z1.norm() * r
    e1 = z0 / r
    e2 = z1 - (z1 @ e1) * e1
    e2 = e2 / e2.norm()
    omega = math.acos(float(z0 @ z1) / float(r * r))
    for t in (0.1, 0.5, 0.8):
        expected = r * (math.cos(t * omega) * e1 + math.sin(t * omega) * e2)
        torch.testing.assert_close(edit.slerp(z0, z1, t), expected)


def test_slerp_midpoint_angle_is_half_the_angle():
    z0, z1 = random_pairs(20, 32, seed=1, dtype=torch.float64)
    z1 = z1 * (z0.norm(dim=1, keepdim=True) / z1.norm(dim=1, keepdim=True))  # equal norms
    mid = edit.slerp(z0, z1, 0.5)
    a = z0.numpy(), z1.numpy(), mid.numpy()

    def angle_np(u, v):
        return np.arccos(np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)))

    np.testing.assert_allclose(angle_np(a[0], a[2]), angle_np(a[0], a[1]) / 2, rtol=1e-9)
    np.testing.assert_allclose(angle_np(a[2], a[1]), angle_np(a[0], a[1]) / 2, rtol=1e-9)


def test_slerp_of_unequal_norms_worked_example():
    """z0 = 3 e1, z1 = 5 e2 (omega = pi/2): the midpoint is sin(pi/4) (3, 5), of norm sqrt(17)."""
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 5.0])
    torch.testing.assert_close(edit.slerp(z0, z1, 0.5), torch.tensor([3.0, 5.0]) * math.sqrt(0.5))
    assert abs(edit.slerp(z0, z1, 0.5).norm().item() - math.sqrt(17)) < 1e-5


def test_slerp_batched_equals_one_pair_at_a_time():
    z0, z1 = random_pairs(6, 10, seed=2)
    t = [0.0, 0.2, 0.7, 1.0]
    batched = edit.slerp(z0, z1, t)
    for i in range(6):
        torch.testing.assert_close(batched[i], edit.slerp(z0[i], z1[i], t))


@pytest.mark.parametrize("scale", [2.0, -3.0, 0.0])
def test_slerp_falls_back_to_lerp_for_parallel_opposite_and_zero_codes(scale):
    z0 = torch.tensor([[1.0, 2.0, -1.0]])
    z1 = scale * z0
    path = edit.slerp(z0, z1, torch.linspace(0, 1, 5))
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path, edit.lerp(z0, z1, torch.linspace(0, 1, 5)))


def test_angle_is_accurate_near_zero_and_pi():
    z0 = torch.tensor([1.0, 0.0])
    for theta in (1e-5, 0.3, math.pi - 1e-5):
        z1 = torch.tensor([math.cos(theta), math.sin(theta)]) * 2.5
        assert abs(edit.angle(z0, z1).item() - theta) < 1e-6
    z0, z1 = random_pairs(30, 64, seed=4, dtype=torch.float64)
    cos = (z0 * z1).sum(1) / (z0.norm(dim=1) * z1.norm(dim=1))
    torch.testing.assert_close(edit.angle(z0, z1), torch.from_numpy(np.arccos(cos.numpy())))


def test_interpolation_steps():
    torch.testing.assert_close(edit.interpolation_steps(5), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    for bad in (0, -3, 1, 2.5, True):
        with pytest.raises(ValueError, match="num_steps"):
            edit.interpolation_steps(bad)


def test_interpolation_bad_inputs_name_the_argument():
    z = torch.zeros(3, 16)
    with pytest.raises(ValueError, match="z0 and z1 must have the same shape"):
        edit.slerp(z, torch.zeros(3, 64), 0.5)
    with pytest.raises(ValueError, match="t: interpolation steps must lie in"):
        edit.lerp(z, z, 1.5)
    with pytest.raises(ValueError, match="t: interpolation steps must lie in"):
        edit.slerp(z, z, [0.0, -0.1])
    with pytest.raises(ValueError, match="t: interpolation steps must lie in"):
        edit.slerp(z, z, float("nan"))
    with pytest.raises(ValueError, match="t: got no steps"):
        edit.lerp(z, z, [])
    bad = z.clone()
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="z1: 1 value"):
        edit.slerp(z, bad, 0.5)
    with pytest.raises(ValueError, match="z0: expected latent codes of shape"):
        edit.lerp(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), 0.5)
    with pytest.raises(TypeError, match="z0: expected float"):
        edit.lerp(torch.zeros(3, dtype=torch.long), torch.zeros(3), 0.5)


# ---------------------------------------------------------------------------
# Class vectors
# ---------------------------------------------------------------------------
def test_class_means_and_vector_by_hand():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0], [6.0, 6.0]])
    y = torch.tensor([0, 0, 1, 1, 2])
    torch.testing.assert_close(edit.class_means(z, y), torch.tensor([[1.0, 0.0], [0.0, 3.0], [6.0, 6.0]]))
    torch.testing.assert_close(edit.class_vector(z, y, source=0, target=1), torch.tensor([-1.0, 3.0]))
    with pytest.raises(ValueError, match=r"no code has class \[3\]"):
        edit.class_means(z, y, num_classes=4)
    with pytest.raises(ValueError, match="target: no code has class 7"):
        edit.class_vector(z, y, 0, 7)
    with pytest.raises(ValueError, match="y: got 3 labels for 5 codes"):
        edit.class_means(z, y[:3])


# ---------------------------------------------------------------------------
# Attribute directions
# ---------------------------------------------------------------------------
def correlated_codes(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes z = g A, g ~ N(0, I), with A = U diag(s) V^T (random rotations, singular values
    from 0.5 to 2), so that the coordinates correlate but no direction is degenerate; float64."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    mix = u @ torch.diag(torch.linspace(0.5, 2.0, d, dtype=torch.float64)) @ v.T
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix, mix


def test_regression_recovers_a_planted_linear_attribute():
    d = 16
    z, _ = correlated_codes(4000, d)
    g = torch.Generator().manual_seed(5)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    a = z @ w + 3.0 + 0.5 * torch.randn(len(z), generator=g, dtype=torch.float64)
    direction = edit.regression_direction(z.float(), a.float(), attribute="planted")
    assert direction.method == "regression" and direction.attribute == "planted" and direction.num_codes == 4000
    assert abs(direction.vector.norm().item() - 1) < 1e-5
    cosine = float(direction.vector.double() @ (w / w.norm()))
    assert cosine > 0.999, cosine
    assert abs(direction.predicted_slope - w.norm().item()) < 0.02 * w.norm().item()
    # R^2 against numpy's least squares with an intercept
    X = np.c_[z.numpy(), np.ones(len(z))]
    coef, *_ = np.linalg.lstsq(X, a.numpy(), rcond=None)
    resid = a.numpy() - X @ coef
    r2 = 1 - (resid**2).sum() / ((a.numpy() - a.numpy().mean()) ** 2).sum()
    assert abs(direction.r2 - r2) < 1e-4
    assert abs(direction.predicted_slope - np.linalg.norm(coef[:-1])) < 1e-4  # the slope is |w|
    np.testing.assert_allclose(direction.vector.double().numpy(), coef[:-1] / np.linalg.norm(coef[:-1]), atol=1e-5)


def test_difference_of_means_by_hand():
    z = torch.arange(16, dtype=torch.float32).view(8, 2)  # rows (0,1), (2,3), ..., (14,15)
    a = torch.tensor([5.0, 0.0, 7.0, 1.0, 6.0, 2.0, 3.0, 4.0])
    # a holds 0..7: its 0.25 quantile is 1.75 and its 0.75 quantile 5.25 (linear interpolation),
    # so the top group is a = 7, 6 (rows 2 and 4) and the bottom group a = 0, 1 (rows 1 and 3)
    top = (z[2] + z[4]) / 2
    bottom = (z[1] + z[3]) / 2
    v = top - bottom
    direction = edit.mean_difference_direction(z, a, quantile=0.25)
    torch.testing.assert_close(direction.vector, v / v.norm())
    # the predicted slope and R^2: numpy's straight line through (z u, a) over all eight codes
    s = (z @ (v / v.norm())).numpy()
    slope, intercept = np.polyfit(s, a.numpy(), 1)
    assert abs(direction.predicted_slope - slope) < 1e-5
    assert abs(direction.r2 - np.corrcoef(s, a.numpy())[0, 1] ** 2) < 1e-6


def test_difference_of_means_leans_towards_correlated_directions():
    """Gaussian codes with covariance S and a = w.z: E[z | a] is proportional to S w, not w."""
    d = 6
    z, mix = correlated_codes(40000, d, seed=2)
    cov = mix.T @ mix  # the covariance of z = g A
    w = torch.zeros(d, dtype=torch.float64)
    w[0] = 1.0
    a = z @ w
    dm = edit.mean_difference_direction(z, a, quantile=0.2)
    expected = cov @ w
    assert float(dm.vector @ (expected / expected.norm())) > 0.999
    reg = edit.regression_direction(z, a)
    assert float(reg.vector @ w) > 0.9999  # the regression finds w itself
    assert float(dm.vector @ w) < 0.95  # ... and the two disagree here
    assert reg.r2 > 0.9999 and dm.r2 < reg.r2  # the regression direction explains the most


def test_direction_bad_inputs():
    z = torch.randn(50, 4)
    a = torch.randn(50)
    with pytest.raises(ValueError, match="a: got 40 attribute values for 50 codes"):
        edit.regression_direction(z, a[:40])
    nan_a = a.clone()
    nan_a[3] = float("nan")
    with pytest.raises(ValueError, match=r"a: 1 attribute value\(s\) are NaN"):
        edit.mean_difference_direction(z, nan_a)
    with pytest.raises(ValueError, match="z: need at least 6 codes"):
        edit.regression_direction(z[:5], a[:5])
    with pytest.raises(ValueError, match="quantile must be in"):
        edit.mean_difference_direction(z, a, quantile=0.7)
    with pytest.raises(ValueError, match="top and bottom"):
        edit.mean_difference_direction(z, torch.ones(50))


# ---------------------------------------------------------------------------
# Applying an edit
# ---------------------------------------------------------------------------
def test_apply_edit_shapes_and_renorm():
    z = torch.randn(5, 64)
    u = torch.zeros(64)
    u[0] = 1.0
    out = edit.apply_edit(z, u, [-2.0, 0.0, 3.0])
    assert out.shape == (5, 3, 64)
    torch.testing.assert_close(out[:, 1], z)
    torch.testing.assert_close(out[:, 2] - z, 3.0 * u.expand(5, -1))
    assert edit.apply_edit(z[0], u, 1.0).shape == (64,)
    renormed = edit.apply_edit(z, u, [-2.0, 0.0, 3.0], renorm=True)
    torch.testing.assert_close(renormed.norm(dim=-1), z.norm(dim=-1, keepdim=True).expand(-1, 3))
    # renorm shrinks the component along u: from alpha to alpha |z| / |z + alpha u|
    expected = 3.0 * z.norm(dim=1) / (z + 3.0 * u).norm(dim=1) + z[:, 0] * z.norm(dim=1) / (z + 3.0 * u).norm(dim=1)
    torch.testing.assert_close(renormed[:, 2, 0], expected)
    direction = edit.AttributeDirection(u, "regression", 1.0, 0.5, 10, "slant")
    torch.testing.assert_close(edit.apply_edit(z, direction, 2.0), z + 2 * u)
    with pytest.raises(ValueError, match="direction: has 16 dimensions but the codes have 64"):
        edit.apply_edit(z, torch.zeros(16), 1.0)
    with pytest.raises(ValueError, match="alpha: expected finite"):
        edit.apply_edit(z, u, [1.0, float("inf")])


# ---------------------------------------------------------------------------
# Decoding, classifying, monotonicity
# ---------------------------------------------------------------------------
def test_decode_images_for_a_vae_and_a_dcgan():
    torch.manual_seed(0)
    vae, gan = VAE(z_dim=4).eval(), DCGAN(z_dim=8, width=4).eval()
    z4, z8 = torch.randn(3, 4), torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(edit.decode_images(vae, z4), torch.sigmoid(vae.decoder(z4)))
        torch.testing.assert_close(edit.decode_images(gan, z8), (gan.G(z8) + 1) / 2)
        torch.testing.assert_close(edit.decode_images(gan.G, z8, batch_size=2), (gan.G(z8) + 1) / 2)
    with pytest.raises(ValueError, match="z: the model has z_dim = 4"):
        edit.decode_images(vae, z8)
    with pytest.raises(ValueError, match="training mode"):
        edit.decode_images(gan.train(), z8)
    with pytest.raises(TypeError, match="decode_images knows"):
        edit.decode_images(torch.nn.Linear(4, 784), z4)


def test_classify_matches_the_classifier():
    from genimg_lib.data import load_mnist5k
    from genimg_lib.measures import domain_classifier

    x, y = load_mnist5k("test")
    pred, conf = edit.classify(x[:50])
    with torch.no_grad():
        p = domain_classifier()(x[:50]).softmax(1)
    assert torch.equal(pred, p.argmax(1))
    torch.testing.assert_close(conf, p.max(1).values)
    assert (pred == y[:50]).float().mean() > 0.9


@pytest.mark.parametrize(
    "values, increasing, expected",
    [([1, 2, 3], None, True), ([3, 2, 1], None, True), ([3, 2, 1], True, False), ([1, 2, 2], None, False),
     ([1, 3, 2], None, False), ([1.0, float("nan"), 3.0], None, False), ([1], None, False),
     ([0.0, 0.1, 5.0], True, True)],
)
def test_is_monotone(values, increasing, expected):
    assert edit.is_monotone(values, increasing) is expected


def test_least_squares_slope():
    x = np.array([-2.0, -1, 0, 1, 2])
    y = np.array([1.0, 2.5, 2.0, 4.0, 6.0])
    assert abs(edit.least_squares_slope(x, y) - np.polyfit(x, y, 1)[0]) < 1e-12


# ---------------------------------------------------------------------------
# Measuring an edit, on a decoder whose answer is known
# ---------------------------------------------------------------------------
class BoxVAE(VAE):
    """A "VAE" whose decoder draws a 16-row rectangle, 6 + 2 z[0] columns wide, centred."""

    def __init__(self) -> None:
        super().__init__(z_dim=2, arch="mlp", hidden_dims=(8,))

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        cols = torch.arange(28, dtype=z.dtype) + 0.5 - 14.0  # column centres, relative to the middle
        half = (6.0 + 2.0 * z[:, :1]) / 2  # (N, 1)
        inside_cols = (cols.abs() < half).to(z.dtype)  # (N, 28)
        rows = torch.zeros(28, dtype=z.dtype)
        rows[6:22] = 1.0
        ink = rows.view(1, 28, 1) * inside_cols.view(-1, 1, 28)
        return (20.0 * ink - 10.0).unsqueeze(1)  # logits: +10 on the ink, -10 elsewhere


def test_measure_edit_on_a_rectangle_of_known_width():
    model = BoxVAE().eval()
    z = torch.tensor([[0.0, 0.0], [1.0, 0.3], [2.0, -1.0]])  # widths 6, 8, 10 columns
    u = torch.tensor([1.0, 0.0])
    alphas = [-1.0, 0.0, 1.0, 2.0]  # widths change by 2 columns per unit step
    scale = {"slant": 1.0, "thickness": 1.0, "width": 2.0, "height": 1.0, "area": 10.0}
    report = edit.measure_edit(model, z, u, alphas, attribute="width", scale=scale)
    assert report.images.shape == (3, 4, 1, 28, 28)
    # a rectangle of a columns measures (1 - bound_frac) a wide (morpho's docstring)
    expected_width = (6.0 + 2.0 * (z[:, :1] + torch.tensor(alphas))) * 0.98
    torch.testing.assert_close(report.values["width"], expected_width, atol=0.06, rtol=0)
    assert abs(report.slope - 2 * 0.98) < 0.03
    assert report.monotone and report.monotone_share == 1.0
    assert report.class_kept[1] == 1.0  # alpha = 0 is the reference
    # the width changes by 2 columns x 3 units of alpha = 6 columns, in units of 2: 2.94 with the 0.98
    assert abs(report.change_sd["width"] - 6 * 0.98 / 2) < 0.05
    # the height does not move; the area grows by 16 rows x 6 columns = 96 px^2, in units of 10
    assert report.entanglement["height"] < 0.02
    assert abs(report.change_sd["area"] - 9.6) < 0.1
    assert set(report.entanglement) == {"slant", "thickness", "height", "area"}
    summary = report.summary()
    assert summary["most_entangled"] == "area" and summary["monotone"] is True
    # the mean curve is the average over the codes, and the slope a least-squares line through it
    torch.testing.assert_close(report.mean_curve, report.values["width"].mean(0))
    assert abs(report.slope - np.polyfit(alphas, report.mean_curve.numpy(), 1)[0]) < 1e-5


def test_measure_edit_bad_inputs():
    model = BoxVAE().eval()
    z = torch.zeros(2, 2)
    u = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="alphas: must include 0"):
        edit.measure_edit(model, z, u, [1.0, 2.0], attribute="width")
    with pytest.raises(ValueError, match="alphas: expected at least 2 finite, increasing"):
        edit.measure_edit(model, z, u, [1.0, 0.0], attribute="width")
    with pytest.raises(ValueError, match="attribute must be one of"):
        edit.measure_edit(model, z, u, [0.0, 1.0], attribute="smile")
    with pytest.raises(ValueError, match="scale: give a standard deviation"):
        edit.measure_edit(model, z, u, [0.0, 1.0], attribute="width", scale={"width": 1.0})
