"""Part IV: the metrics. Each one against an independent computation, sanity properties
on the shipped classifier's features, bad input, and the scoreboard on a temporary manifest."""

from __future__ import annotations

import json
import math
import socket

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from genimg_lib import metrics
from genimg_lib.checkpoints import read_manifest, register_shipped, save_checkpoint, sha256_file
from genimg_lib.data import load_mnist5k
from genimg_lib.losses import bits_per_dim
from genimg_lib.models import register_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a small shared CPU, two threads make these tests ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# A small random projection as a stand-in extractor: metric math without the classifier
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


def test_fid_through_torchmetrics_matches_scipy_sqrtm():
    proj = RandomProjection(8)
    a, b = _images(200, 1), _images(300, 2, shift=0.1)
    fa, fb = proj(a).double().numpy(), proj(b).double().numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a, cov_b = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean)
    got = metrics.fid(a, b, extractor=proj)
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
    mean, std = metrics.kid(a, b, extractor=proj, subset_size=m, subsets=1)
    assert mean == pytest.approx(expected, rel=1e-4)
    assert std == 0.0


def test_from_features_and_scorer_agree_with_the_image_versions():
    x_train, _ = load_mnist5k("train")
    x_test, _ = load_mnist5k("test")
    real, fake = x_test[:300], metrics.gaussian_blur(x_train[:300], 1.0)
    ex = metrics.default_extractor()
    f_real, f_fake = metrics.extract_features(real, ex), metrics.extract_features(fake, ex)
    fid_images = metrics.fid(real, fake, ex)
    kid_images = metrics.kid(real, fake, ex, seed=4)
    assert metrics.fid_from_features(f_real, f_fake) == pytest.approx(fid_images, rel=1e-4)
    assert metrics.kid_from_features(f_real, f_fake, seed=4) == pytest.approx(kid_images, rel=1e-4)
    scores = metrics.Scorer(x_real=real, seed=4).score(fake)
    assert scores["fid"] == pytest.approx(fid_images, rel=1e-4)
    assert scores["kid"] == pytest.approx(kid_images[0], rel=1e-4)
    assert (scores["precision"], scores["recall"]) == pytest.approx(metrics.precision_recall(f_real, f_fake), abs=1e-12)
    coverage = metrics.class_coverage(fake)
    assert scores["histogram"] == coverage["histogram"] and scores["kl_uniform"] == pytest.approx(coverage["kl_uniform"])
    with pytest.raises(ValueError, match=r"shape \(N, 64\)"):
        metrics.fid_from_features(f_real, f_fake[:, :10])


def test_kid_is_reproducible_with_a_seed():
    proj = RandomProjection(8)
    a, b = _images(60, 5), _images(60, 6, shift=0.05)
    assert metrics.kid(a, b, extractor=proj, seed=3) == metrics.kid(a, b, extractor=proj, seed=3)


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
    assert math.isfinite(metrics.fid(a, b, extractor=proj))
    assert all(math.isfinite(v) for v in metrics.kid(a, b, extractor=proj))


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
    got = metrics.precision_recall(torch.tensor(real), torch.tensor(fake), k=k)
    assert got == pytest.approx(expected, abs=1e-12)
    assert any(0 < v < 1 for v in expected)  # a case where the balls matter, not all-or-nothing


def test_knn_radii_excludes_the_point_itself_and_counts_duplicates():
    pts = torch.tensor([[0.0], [0.0], [1.0], [3.0]])
    assert metrics.knn_radii(pts, k=1).tolist() == [0.0, 0.0, 1.0, 2.0]
    assert metrics.knn_radii(pts, k=2).tolist() == [1.0, 1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="more than 4"):
        metrics.knn_radii(pts, k=4)


# ---------------------------------------------------------------------------
# The shipped classifier and sanity properties of the metrics on its features
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def splits():
    x_train, y_train = load_mnist5k("train")
    x_test, y_test = load_mnist5k("test")
    return x_train, y_train, x_test, y_test


def test_classifier_shapes_and_one_training_step():
    model = metrics.MNISTClassifier()
    x = torch.rand(5, 1, 28, 28)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, model.num_features)
    trained, history = metrics.train_classifier(num_steps=2, batch_size=8)
    assert not trained.training and history == []
    assert metrics.outlier_images(8, torch.Generator().manual_seed(0)).shape == (8, 1, 28, 28)


def test_shipped_classifier_accuracy(splits):
    _, _, x_test, y_test = splits
    clf = metrics.load_classifier()
    acc = metrics.classifier_accuracy(clf, x_test, y_test)
    assert acc >= 0.97
    assert read_manifest()["classifier"]["metrics"]["test_accuracy"] == pytest.approx(acc, abs=1e-4)
    assert read_manifest()["classifier"]["bytes"] <= 2_000_000


def test_fid_real_against_real_is_far_below_real_against_noise(splits):
    x_train, _, x_test, _ = splits
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fid_real = metrics.fid(x_test, x_train[:1000])
    fid_noise = metrics.fid(x_test, noise)
    assert fid_real < 0.05 * fid_noise, (fid_real, fid_noise)


@pytest.mark.parametrize("kind, levels", [("blur", [0.0, 0.5, 1.0, 1.5, 2.5]), ("noise", [0.0, 0.1, 0.2, 0.35, 0.5])])
def test_fid_and_kid_grow_with_the_strength_of_the_degradation(splits, kind, levels):
    _, _, x_test, _ = splits
    real, base = x_test[:500], x_test[500:]
    fids, kids = [], []
    for level in levels:
        fake = metrics.gaussian_blur(base, level) if kind == "blur" else metrics.add_pixel_noise(base, level, seed=1)
        fids.append(metrics.fid(real, fake))
        kids.append(metrics.kid(real, fake)[0])
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert all(a < b for a, b in zip(kids, kids[1:])), kids


def test_precision_falls_for_noise_and_recall_falls_for_copies(splits):
    x_train, _, x_test, _ = splits
    scorer = metrics.Scorer(N=500)
    real = scorer.score(x_train[:500])
    noise = scorer.score(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    copies = scorer.score(x_train[:1].repeat(500, 1, 1, 1))
    assert real["precision"] > 0.6 and real["recall"] > 0.6, real
    assert noise["precision"] < 0.1 * real["precision"], noise
    assert copies["recall"] < 0.1 * real["recall"], copies
    assert copies["precision"] in (0.0, 1.0)  # N copies of one point: all inside a real ball, or none
    assert copies["classes_covered"] == 1 and real["classes_covered"] == 10


def test_class_coverage_counts_and_kl(splits):
    _, _, x_test, y_test = splits
    cov = metrics.class_coverage(x_test)
    assert sum(cov["histogram"]) == 1000 and cov["classes_covered"] == 10
    p = torch.tensor(cov["histogram"], dtype=torch.float64) / 1000
    expected = sum(pi * math.log(10 * pi) for pi in p.tolist() if pi > 0)
    assert cov["kl_uniform"] == pytest.approx(expected, abs=1e-12)
    sevens = metrics.class_coverage(x_test[y_test == 7], min_share=0.5)  # covered: >= 5 of the 100
    assert sevens["classes_covered"] == 1 and sevens["histogram"][7] >= 95
    assert sevens["kl_uniform"] > 0.8 * math.log(10)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_too_few_samples_names_the_minimum(splits):
    _, _, x_test, _ = splits
    minimum = metrics.min_samples(metrics.default_extractor())
    assert minimum == 128
    with pytest.raises(ValueError, match=f"at least {minimum} images"):
        metrics.fid(x_test[:50], x_test[50:100])
    with pytest.raises(ValueError, match=f"at least {minimum} images"):
        metrics.kid(x_test[:500], x_test[:100])
    with pytest.raises(ValueError, match=f"at least {minimum} images"):
        metrics.Scorer(N=100)


def test_bad_shapes_and_ranges_are_refused(splits):
    _, _, x_test, _ = splits
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(500, 28, 28\)"):
        metrics.fid(x_test[:500], x_test[500:, 0])
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(500, 1, 32, 32\)"):
        metrics.fid(x_test[:500], torch.rand(500, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expect pixels in \[0, 1\].*\(x \+ 1\) / 2"):
        metrics.fid(x_test[:500], x_test[500:] * 2 - 1)
    with pytest.raises(ValueError, match="divide by 255"):
        metrics.class_coverage(x_test * 255)
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        metrics.fid(x_test[:500], (x_test[500:] * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        metrics.check_images(torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="N=500"):
        metrics.Scorer(N=500).score(x_test[:600])


# ---------------------------------------------------------------------------
# The scoreboard over a temporary manifest, with fake models registered only here
# ---------------------------------------------------------------------------
@register_model
class _FakeTemplateGenerator(nn.Module):
    """Test-only 'generator': a random one of ten learnable templates plus a little noise."""

    def __init__(self, noise: float = 0.05, num_templates: int = 10) -> None:
        super().__init__()
        self.noise = noise
        self.templates = nn.Parameter(torch.zeros(num_templates, 1, 28, 28))

    @torch.no_grad()
    def sample(self, num_samples, generator=None, y=None):
        idx = torch.randint(0, len(self.templates), (num_samples,), generator=generator)
        x = self.templates[idx] + self.noise * torch.randn(num_samples, 1, 28, 28, generator=generator)
        return x.clamp(0, 1)

    def estimate_log_px(self, x, num_samples=1):
        return -((x - self.templates.mean(0)) ** 2).flatten(1).sum(1)


@pytest.fixture()
def fake_manifest(tmp_path, splits):
    x_train, y_train, _, _ = splits
    manifest = tmp_path / "MANIFEST.json"
    model = _FakeTemplateGenerator()
    with torch.no_grad():
        model.templates.copy_(torch.stack([x_train[y_train == c][0] for c in range(10)]))
    for name, family, extra in [("fake_gan", "gan", {}), ("fake_vae", "vae", {"nll_nats": 100.0})]:
        path = tmp_path / f"{name}.pt"
        save_checkpoint({"model": model.state_dict(), "config": {"noise": 0.05}}, path)
        register_shipped(name, path, f"(test) {name}", manifest_path=manifest,
                         **{"class": "_FakeTemplateGenerator", "config": {"noise": 0.05}, "family": family,
                            "cost": {"seconds": 1.5, "device": "cpu", "steps": 1}, "metrics": dict(extra)})
    save_checkpoint({"model": {}}, tmp_path / "other.pt")
    register_shipped("not_generative", tmp_path / "other.pt", "(test)", manifest_path=manifest,
                     **{"class": "MNISTClassifier", "family": "classifier"})
    return manifest


def test_scoreboard_reads_every_generative_model_from_the_manifest(fake_manifest):
    rows = metrics.scoreboard(N=200, manifest_path=fake_manifest)
    by_name = {r["name"]: r for r in rows}
    assert [r["kind"] for r in rows] == ["baseline"] * 3 + ["gan", "vae"]
    assert set(by_name) == {"train split", "uniform noise", "one image copied", "fake_gan", "fake_vae"}
    assert all(set(r) == set(metrics.SCOREBOARD_COLUMNS) for r in rows)
    gan, vae = by_name["fake_gan"], by_name["fake_vae"]
    assert gan["nll_nats"] is None and vae["nll_nats"] == 100.0
    assert vae["bits_per_dim"] == pytest.approx(bits_per_dim(100.0))
    assert gan["parameters"] == 7840 and gan["train_seconds"] == 1.5
    # ten templates, one per digit: all digits covered, but far less diverse than real data
    assert gan["classes_covered"] == 10
    assert gan["recall"] < by_name["train split"]["recall"]
    assert by_name["train split"]["fid"] < gan["fid"] < by_name["uniform noise"]["fid"]
    assert "| fake_vae | vae |" in metrics.format_scoreboard(rows)
    import matplotlib.pyplot as plt

    fig = metrics.plot_scoreboard(rows)
    assert len(fig.axes) == 3
    plt.close(fig)


@register_model
class _FakeToyGenerator(nn.Module):
    """Test-only 2-D 'GAN': its samples are points, not images."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))

    def sample(self, num_samples, generator=None, y=None):
        return self.loc + torch.randn(num_samples, 2, generator=generator)


def test_scoreboard_leaves_off_models_that_do_not_make_images(fake_manifest):
    path = fake_manifest.parent / "toy.pt"
    save_checkpoint({"model": _FakeToyGenerator().state_dict(), "config": {}}, path)
    register_shipped("toy_gan", path, "(test)", manifest_path=fake_manifest,
                     **{"class": "_FakeToyGenerator", "config": {}, "family": "gan"})
    with pytest.warns(UserWarning, match=r"toy_gan: sample\(200\) has shape \(200, 2\)"):
        rows = metrics.scoreboard(N=200, manifest_path=fake_manifest, baselines=False)
    assert [r["name"] for r in rows] == ["fake_gan", "fake_vae"]


def test_scoreboard_with_no_generative_model_and_unknown_names(tmp_path, fake_manifest):
    empty = tmp_path / "empty" / "MANIFEST.json"
    rows = metrics.scoreboard(N=200, manifest_path=empty)
    assert [r["kind"] for r in rows] == ["baseline"] * 3
    with pytest.raises(ValueError, match="not shipped generative models: \\['not_generative'\\]"):
        metrics.scoreboard(N=200, names=["not_generative"], manifest_path=fake_manifest)


def test_score_cli_writes_metrics_and_keeps_checksums(fake_manifest):
    from genimg_lib.train import main

    before = read_manifest(fake_manifest)
    assert main(["score", "--N", "200", "--manifest", str(fake_manifest)]) == 0
    after = read_manifest(fake_manifest)
    for name in before:
        assert after[name]["sha256"] == before[name]["sha256"] == sha256_file(fake_manifest.parent / before[name]["file"])
    assert after["fake_vae"]["metrics"]["nll_nats"] == 100.0  # kept
    for name in ("fake_gan", "fake_vae"):
        m = after[name]["metrics"]
        assert m["score_N"] == 200 and m["classes_covered"] == 10 and m["fid_domain"] > 0
    assert "fid_domain" not in after["not_generative"].get("metrics", {})
    json.loads(fake_manifest.read_text())  # still valid JSON


def test_manifest_nll_and_live_estimate(fake_manifest, splits):
    _, _, x_test, _ = splits
    assert metrics.manifest_nll("fake_gan", fake_manifest) is None
    assert metrics.manifest_nll("fake_vae", fake_manifest) == {"nll_nats": 100.0, "bits_per_dim": pytest.approx(bits_per_dim(100.0))}
    model = metrics.load_generative("fake_vae", fake_manifest)
    expected = -model.estimate_log_px(x_test[:30]).mean().item()
    assert metrics.estimate_nll(model, x_test[:30], num_samples=1, batch_size=7) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TypeError, match="no estimate_log_px"):
        metrics.estimate_nll(metrics.MNISTClassifier(), x_test[:3])


def test_degradations():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 14] = 1.0
    blurred = metrics.gaussian_blur(x, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)  # mass kept away from the border
    assert blurred[0, 0, 14, 14] < 0.2 and torch.equal(metrics.gaussian_blur(x, 0.0), x)
    noisy = metrics.add_pixel_noise(x, 0.3, seed=0)
    assert noisy.min() >= 0 and noisy.max() <= 1 and torch.equal(noisy, metrics.add_pixel_noise(x, 0.3, seed=0))
