"""genimg_lib.measures: each measure against an independent computation (scipy's sqrtm, the
unbiased MMD by hand, brute-force k-NN balls), sanity properties on the shipped classifier's
features, the VAE likelihoods, and bad input."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from conftest import FakeTemplateGenerator
from genimg_lib import measures
from genimg_lib.checkpoints import load_model
from genimg_lib.data import load_mnist5k
from genimg_lib.losses import bits_per_dim, kl_per_dim
from genimg_lib.models import CVAE, VAE


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a small shared CPU, two threads make these tests ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# A small random projection as a stand-in extractor: measure math without the classifier
# ---------------------------------------------------------------------------
class RandomProjection(nn.Module):
    def __init__(self, num_features: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.num_features = num_features
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(784, num_features, generator=g) / 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1) @ self.w


def _images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=g) * 0.8 + shift).clamp(0, 1)


def _fid_scipy(fa: np.ndarray, fb: np.ndarray) -> float:
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a, cov_b = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def test_fid_through_torchmetrics_matches_scipy_sqrtm():
    proj = RandomProjection(8)
    a, b = _images(200, 1), _images(300, 2, shift=0.1)
    expected = _fid_scipy(proj(a).double().numpy(), proj(b).double().numpy())
    got = measures.fid(a, b, extractor=proj)
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert expected > 0.01  # the two sets differ, so the check is not 0 == 0


def test_kid_matches_the_unbiased_mmd_with_a_cubic_kernel():
    proj = RandomProjection(8)
    a, b = _images(40, 3), _images(40, 4, shift=0.1)
    fa, fb = proj(a).double(), proj(b).double()
    d = fa.shape[1]

    def k(x, y):
        return (x @ y.T / d + 1) ** 3

    m = len(fa)
    kaa, kbb, kab = k(fa, fa), k(fb, fb), k(fa, fb)
    expected = ((kaa.sum() - kaa.diag().sum()) / (m * (m - 1)) + (kbb.sum() - kbb.diag().sum()) / (m * (m - 1))
                - 2 * kab.mean()).item()
    # one subset of the full size: the permutation does not matter, KID is the full-set estimate
    mean, std = measures.kid(a, b, extractor=proj, subset_size=m, subsets=1)
    assert mean == pytest.approx(expected, rel=1e-4)
    assert std == 0.0


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # features that are 0 on every image: a zero row in the covariance
def test_from_features_agree_with_the_image_versions():
    x_train, _ = load_mnist5k("train")
    x_test, _ = load_mnist5k("test")
    real, fake = x_test[:300], measures.gaussian_blur(x_train[:300], 1.0)
    ex = measures.default_extractor()
    f_real, f_fake = measures.extract_features(real, ex), measures.extract_features(fake, ex)
    torch.testing.assert_close(f_real, measures.domain_classifier().features(real))
    fid_images = measures.fid(real, fake, ex)
    kid_images = measures.kid(real, fake, ex, seed=4)
    assert measures.fid_from_features(f_real, f_fake) == pytest.approx(fid_images, rel=1e-4)
    assert measures.kid_from_features(f_real, f_fake, seed=4) == pytest.approx(kid_images, rel=1e-4)
    assert fid_images == pytest.approx(_fid_scipy(f_real.double().numpy(), f_fake.double().numpy()), rel=1e-3)
    with pytest.raises(ValueError, match=r"shape \(N, 64\)"):
        measures.fid_from_features(f_real, f_fake[:, :10])


def test_kid_is_reproducible_with_a_seed():
    proj = RandomProjection(8)
    a, b = _images(60, 5), _images(60, 6, shift=0.05)
    assert measures.kid(a, b, extractor=proj, seed=3) == measures.kid(a, b, extractor=proj, seed=3)


def test_no_inception_is_built_or_downloaded_for_a_custom_extractor(monkeypatch):
    import torchmetrics.image.fid as tm_fid
    import torchmetrics.image.kid as tm_kid

    def refuse(*args, **kwargs):
        raise AssertionError("torchmetrics tried to build Inception-v3 / reach the network")

    monkeypatch.setattr(tm_fid, "NoTrainInceptionV3", refuse)
    monkeypatch.setattr(tm_kid, "NoTrainInceptionV3", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    proj = RandomProjection(8)
    a, b = _images(50, 7), _images(50, 8)
    assert math.isfinite(measures.fid(a, b, extractor=proj))
    assert all(math.isfinite(v) for v in measures.kid(a, b, extractor=proj))


# ---------------------------------------------------------------------------
# Precision and recall against brute force
# ---------------------------------------------------------------------------
def _brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(points):
        out = []
        for i, p in enumerate(points):
            dists = sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)
            out.append(dists[k - 1])
        return out

    def inside(points, centres, rads):
        return [any(math.dist(p, c) <= r for c, r in zip(centres, rads)) for p in points]

    precision = float(np.mean(inside(fake, real, radii(real))))
    recall = float(np.mean(inside(real, fake, radii(fake))))
    return precision, recall


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_matches_brute_force(k, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(30, 3))
    fake = rng.normal(loc=0.7, scale=1.3, size=(25, 3))
    expected = _brute_precision_recall(real.tolist(), fake.tolist(), k)
    got = measures.precision_recall(torch.tensor(real), torch.tensor(fake), k=k)
    assert got == pytest.approx(expected, abs=1e-12)
    assert any(0 < v < 1 for v in expected)  # a case where the balls matter, not all-or-nothing


def test_knn_radii_excludes_the_point_itself_and_counts_duplicates():
    pts = torch.tensor([[0.0], [0.0], [1.0], [3.0]])
    assert measures.knn_radii(pts, k=1).tolist() == [0.0, 0.0, 1.0, 2.0]
    assert measures.knn_radii(pts, k=2).tolist() == [1.0, 1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="more than 4"):
        measures.knn_radii(pts, k=4)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        measures.knn_radii(torch.zeros(4), k=1)


# ---------------------------------------------------------------------------
# Sanity properties on the shipped classifier's features
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def splits():
    x_train, y_train = load_mnist5k("train")
    x_test, y_test = load_mnist5k("test")
    return x_train, y_train, x_test, y_test


def test_domain_classifier_is_the_shipped_one_frozen_and_loaded_once():
    clf = measures.domain_classifier()
    assert clf is measures.domain_classifier("cpu")
    assert not clf.training and not any(p.requires_grad for p in clf.parameters())
    shipped = load_model("classifier")
    for a, b in zip(clf.state_dict().values(), shipped.state_dict().values()):
        assert torch.equal(a, b)
    assert measures.min_samples(measures.default_extractor()) == 2 * clf.num_features == 128


def test_fid_real_against_real_is_far_below_real_against_noise(splits):
    x_train, _, x_test, _ = splits
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fid_real = measures.fid(x_test, x_train[:1000])
    fid_noise = measures.fid(x_test, noise)
    assert fid_real < 0.05 * fid_noise, (fid_real, fid_noise)


@pytest.mark.parametrize("kind, levels", [("blur", [0.0, 0.5, 1.0, 1.5, 2.5]), ("noise", [0.0, 0.1, 0.2, 0.35, 0.5])])
def test_fid_and_kid_grow_with_the_strength_of_the_degradation(splits, kind, levels):
    _, _, x_test, _ = splits
    real, base = x_test[:500], x_test[500:]
    fids, kids = [], []
    for level in levels:
        fake = measures.gaussian_blur(base, level) if kind == "blur" else measures.add_pixel_noise(base, level, seed=1)
        fids.append(measures.fid(real, fake))
        kids.append(measures.kid(real, fake)[0])
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert all(a < b for a, b in zip(kids, kids[1:])), kids


def test_class_coverage_counts_and_kl(splits):
    _, _, x_test, y_test = splits
    cov = measures.class_coverage(x_test)
    assert sum(cov["histogram"]) == 1000 and cov["classes_covered"] == 10
    p = torch.tensor(cov["histogram"], dtype=torch.float64) / 1000
    expected = sum(pi * math.log(10 * pi) for pi in p.tolist() if pi > 0)
    assert cov["kl_uniform"] == pytest.approx(expected, abs=1e-12)
    sevens = measures.class_coverage(x_test[y_test == 7], min_share=0.5)  # covered: >= 5 of the 100
    assert sevens["classes_covered"] == 1 and sevens["histogram"][7] >= 95
    assert sevens["kl_uniform"] > 0.8 * math.log(10)


def test_coverage_from_predictions_by_hand():
    preds = torch.tensor([0] * 50 + [1] * 45 + [2] * 5)
    cov = measures.coverage_from_predictions(preds)  # covered: at least 0.1 * 100 / 10 = 1 image
    assert cov["histogram"] == [50, 45, 5, 0, 0, 0, 0, 0, 0, 0] and cov["classes_covered"] == 3
    assert cov["kl_uniform"] == pytest.approx(sum(p * math.log(10 * p) for p in (0.5, 0.45, 0.05)))
    assert measures.coverage_from_predictions(preds, min_share=1.0)["classes_covered"] == 2  # 10 images needed
    one = measures.coverage_from_predictions(torch.full((20,), 4))
    assert one["kl_uniform"] == pytest.approx(math.log(10))


# ---------------------------------------------------------------------------
# Likelihoods (VAEs)
# ---------------------------------------------------------------------------
def _binary(n, seed=0):
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 0.5)


def test_evaluate_vae_against_hand_computations():
    torch.manual_seed(0)
    model = VAE(z_dim=3, arch="mlp", hidden_dims=(8,))
    x = _binary(20)
    m = measures.evaluate_vae(model, x, iwae_k=3, batch_size=10)
    assert {"nll_nats", "bits_per_dim", "elbo_nats", "iwae_k", "rate", "distortion", "active_units"} <= set(m)
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (784 * math.log(2)))
    assert m["elbo_nats"] == pytest.approx(-(m["rate"] + m["distortion"]))
    assert m["iwae_k"] == 3 and m["num_test_images"] == 20
    with torch.no_grad():
        mu, logvar = model.encode(x)  # q(z|x) does not depend on the noise
    assert m["rate"] == pytest.approx(kl_per_dim(mu, logvar).sum(1).mean().item(), rel=1e-5)
    assert m["kl_per_dim"] == pytest.approx(kl_per_dim(mu, logvar).mean(0).tolist(), rel=1e-5)
    assert m["mu_var_per_dim"] == pytest.approx(mu.var(0).tolist(), rel=1e-5)
    assert m["active_units"] == int((mu.var(0) > 0.01).sum())


def test_evaluate_vae_bad_input():
    with pytest.raises(ValueError, match="conditional: pass the labels y"):
        measures.evaluate_vae(CVAE(z_dim=2, arch="mlp", hidden_dims=(8,)), _binary(4))
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    with pytest.raises(ValueError, match="iwae_k .* integer >= 1"):
        measures.evaluate_vae(model, _binary(4), iwae_k=0)
    with pytest.raises(ValueError, match=r"evaluate_vae\(x\): expected pixels in \[0, 1\]"):
        measures.evaluate_vae(model, _binary(4) * 2 - 1)


def test_estimate_nll_is_minus_the_mean_log_px(splits):
    _, _, x_test, _ = splits
    model = FakeTemplateGenerator()
    with torch.no_grad():
        model.templates.normal_(0.5, 0.1)
    expected = -model.estimate_log_px(x_test[:30]).mean().item()
    assert measures.estimate_nll(model, x_test[:30], num_samples=1, batch_size=7) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TypeError, match="no estimate_log_px"):
        measures.estimate_nll(measures.MNISTClassifier(), x_test[:3])
    with pytest.raises(ValueError, match="at least one image"):
        measures.estimate_nll(model, x_test[:0])


def test_shipped_vae_nll_in_the_manifest_is_below_the_elbo_and_in_bits():
    from genimg_lib.checkpoints import read_manifest

    for name in ("vae_conv_z16", "vae_mlp_z2", "cvae_z8"):
        metrics = read_manifest()[name]["metrics"]
        assert {"nll_nats", "bits_per_dim", "elbo_nats", "iwae_k"} <= set(metrics)
        assert metrics["nll_nats"] <= -metrics["elbo_nats"] + 1e-6  # IWAE is the tighter bound
        assert metrics["bits_per_dim"] == pytest.approx(bits_per_dim(metrics["nll_nats"]))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_too_few_samples_names_the_minimum(splits):
    _, _, x_test, _ = splits
    minimum = measures.min_samples(measures.default_extractor())
    assert minimum == 128
    with pytest.raises(ValueError, match=f"at least {minimum} images"):
        measures.fid(x_test[:50], x_test[50:100])
    with pytest.raises(ValueError, match=f"at least {minimum} images"):
        measures.kid(x_test[:500], x_test[:100])


def test_bad_shapes_and_ranges_are_refused(splits):
    _, _, x_test, _ = splits
    with pytest.raises(ValueError, match=r"x_fake: expected images of shape \(N, 1, 28, 28\), got \(500, 28, 28\)"):
        measures.fid(x_test[:500], x_test[500:, 0])
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(500, 1, 32, 32\)"):
        measures.fid(x_test[:500], torch.rand(500, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expected pixels in \[0, 1\].*\(x \+ 1\) / 2"):
        measures.fid(x_test[:500], x_test[500:] * 2 - 1)
    with pytest.raises(ValueError, match="divide by 255"):
        measures.class_coverage(x_test * 255)
    with pytest.raises(TypeError, match=r"dtype torch.uint8; use x.float\(\) / 255"):
        measures.fid(x_test[:500], (x_test[500:] * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        measures.check_fake_images(torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="at least one image"):
        measures.class_coverage(x_test[:0])


def test_check_fake_images_clips_round_off():
    x = torch.full((1, 1, 28, 28), 1 + 5e-5)
    assert measures.check_fake_images(x).max().item() == 1.0


def test_degradations():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 14] = 1.0
    blurred = measures.gaussian_blur(x, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)  # mass kept away from the border
    assert blurred[0, 0, 14, 14] < 0.2 and torch.equal(measures.gaussian_blur(x, 0.0), x)
    # the kernel is a sampled Gaussian of std 1, normalised: the centre weight is 1 / (sum_i e^{-i^2/2})^2
    w = torch.exp(-torch.arange(-3.0, 4.0) ** 2 / 2)
    assert blurred[0, 0, 14, 14].item() == pytest.approx((1 / w.sum() ** 2).item(), rel=1e-5)
    noisy = measures.add_pixel_noise(x, 0.3, seed=0)
    assert noisy.min() >= 0 and noisy.max() <= 1 and torch.equal(noisy, measures.add_pixel_noise(x, 0.3, seed=0))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        measures.gaussian_blur(x, -1.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        measures.add_pixel_noise(x, -0.1)
