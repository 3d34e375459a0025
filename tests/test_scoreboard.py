"""genimg_lib.scoreboard: the Scorer agrees with the measures it wraps, the data baselines, and
the scoreboard over a temporary manifest of fake models (``fake_manifest`` in conftest.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from genimg_lib import measures, scoreboard, viz
from genimg_lib.checkpoints import load_model, read_manifest
from genimg_lib.data import IMAGE_SHAPE, load_mnist5k
from genimg_lib.losses import bits_per_dim


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def splits():
    x_train, y_train = load_mnist5k("train")
    x_test, y_test = load_mnist5k("test")
    return x_train, y_train, x_test, y_test


def test_scorer_agrees_with_the_measures(splits):
    x_train, _, x_test, _ = splits
    real, fake = x_test[:300], measures.gaussian_blur(x_train[:300], 1.0)
    ex = measures.default_extractor()
    f_real, f_fake = measures.extract_features(real, ex), measures.extract_features(fake, ex)
    scores = scoreboard.Scorer(x_real=real, seed=4).score(fake)
    assert scores["fid"] == pytest.approx(measures.fid(real, fake, ex), rel=1e-4)
    kid_mean, kid_std = measures.kid(real, fake, ex, seed=4)
    assert scores["kid"] == pytest.approx(kid_mean, rel=1e-4) and scores["kid_std"] == pytest.approx(kid_std, rel=1e-4)
    assert (scores["precision"], scores["recall"]) == pytest.approx(measures.precision_recall(f_real, f_fake), abs=1e-12)
    coverage = measures.class_coverage(fake)
    assert scores["histogram"] == coverage["histogram"] and scores["kl_uniform"] == pytest.approx(coverage["kl_uniform"])
    assert scores["classes_covered"] == coverage["classes_covered"]


def test_scorer_draws_its_reference_set_from_the_test_split_with_the_seed(splits):
    _, _, x_test, _ = splits
    scorer = scoreboard.Scorer(num_samples=300, seed=2)
    idx = torch.randperm(1000, generator=torch.Generator().manual_seed(2))[:300]
    assert scorer.num_samples == 300 and torch.equal(scorer.x_real, x_test[idx])
    torch.testing.assert_close(scorer.features_real, measures.extract_features(x_test[idx]))


def test_precision_falls_for_noise_and_recall_falls_for_copies(splits):
    x_train, _, _, _ = splits
    scorer = scoreboard.Scorer(num_samples=500)
    real = scorer.score(x_train[:500])
    noise = scorer.score(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    copies = scorer.score(x_train[:1].repeat(500, 1, 1, 1))
    assert real["precision"] > 0.6 and real["recall"] > 0.6, real
    assert noise["precision"] < 0.1 * real["precision"], noise
    assert copies["recall"] < 0.1 * real["recall"], copies
    assert copies["precision"] in (0.0, 1.0)  # N copies of one point: all inside a real ball, or none
    assert copies["classes_covered"] == 1 and real["classes_covered"] == 10


def test_scorer_bad_input(splits):
    _, _, x_test, _ = splits
    with pytest.raises(ValueError, match="at least 128 images"):
        scoreboard.Scorer(num_samples=100)
    with pytest.raises(ValueError, match=r"num_samples must be an integer in 1..1000 \(the test split\), got 2000"):
        scoreboard.Scorer(num_samples=2000)
    scorer = scoreboard.Scorer(num_samples=500)
    with pytest.raises(ValueError, match=r"sets of 500 images .* got 600.*Scorer\(num_samples=600\)"):
        scorer.score(x_test[:600])
    with pytest.raises(ValueError, match=r"x_fake: expected pixels in \[0, 1\]"):
        scorer.score(x_test[:500] * 2 - 1)


def test_data_baselines(splits):
    x_train, _, _, _ = splits
    base = scoreboard.data_baselines(num_samples=50, seed=0)
    assert list(base) == ["train split", "uniform noise", "one image copied"]
    assert all(x.shape == (50, *IMAGE_SHAPE) for x in base.values())
    rows = {bytes((r * 255).round().to(torch.uint8).numpy()) for r in x_train.flatten(1)}
    assert all(bytes((r * 255).round().to(torch.uint8).numpy()) in rows for r in base["train split"].flatten(1))
    assert (base["one image copied"] == base["one image copied"][:1]).all()
    noise = base["uniform noise"]
    assert 0 <= noise.min() and noise.max() <= 1 and abs(noise.mean().item() - 0.5) < 0.01
    torch.testing.assert_close(scoreboard.data_baselines(50, 0)["uniform noise"], noise)  # seeded


# ---------------------------------------------------------------------------
# The scoreboard over a temporary manifest, with fake models registered only there
# ---------------------------------------------------------------------------
def test_scoreboard_reads_every_generative_model_from_the_manifest(fake_manifest):
    rows = scoreboard.scoreboard(num_samples=200, manifest_path=fake_manifest)
    by_name = {r["name"]: r for r in rows}
    assert [r["kind"] for r in rows] == ["baseline"] * 3 + ["gan", "vae"]
    assert set(by_name) == {"train split", "uniform noise", "one image copied", "fake_gan", "fake_vae"}
    assert all(set(r) == set(scoreboard.SCOREBOARD_COLUMNS) for r in rows)
    gan, vae = by_name["fake_gan"], by_name["fake_vae"]
    assert gan["nll_nats"] is None and vae["nll_nats"] == 100.0
    assert vae["bits_per_dim"] == pytest.approx(bits_per_dim(100.0))
    assert gan["parameters"] == 7840 and gan["train_seconds"] == 1.5 and gan["train_device"] == "cpu"
    # ten templates, one per digit: all digits covered, but far less diverse than real data
    assert gan["classes_covered"] == 10
    assert gan["recall"] < by_name["train split"]["recall"]
    assert by_name["train split"]["fid"] < gan["fid"] < by_name["uniform noise"]["fid"]
    table = scoreboard.format_scoreboard(rows)
    assert "| fake_vae | vae |" in table and f"| {vae['fid']:.2f} |" in table
    assert table.splitlines()[0].startswith("| model | kind | FID |") and len(table.splitlines()) == 2 + len(rows)
    fig = scoreboard.plot_scoreboard(rows, title="a title")
    assert len(fig.axes) == 3
    fid_ax, cov_ax, pr_ax = fig.axes
    fig.canvas.draw()
    ticks = sorted((t.get_position()[1], t.get_text()) for t in fid_ax.get_yticklabels())
    assert [name for _, name in ticks] == [r["name"] for r in rows][::-1]  # the first row on top
    assert sorted(p.get_width() for p in fid_ax.patches) == pytest.approx(sorted(r["fid"] for r in rows))
    assert sorted(p.get_width() for p in cov_ax.patches) == sorted(r["classes_covered"] for r in rows)
    points = sorted(tuple(float(v) for v in o.get_offsets()[0]) for o in pr_ax.collections)
    expected = sorted((r["recall"], r["precision"]) for r in rows)
    assert [v for p in points for v in p] == pytest.approx([v for p in expected for v in p])
    # drawn for the book's column: at native size its labels stay readable
    width, height = fig.get_size_inches()
    assert width <= viz.COLUMN_WIDTH and height < 12
    plt.close(fig)


def test_scoreboard_samples_each_model_with_the_seed(fake_manifest):
    """A model's row is the Scorer's score of model.sample(N, generator seeded with seed)."""
    scorer = scoreboard.Scorer(num_samples=200, seed=1)
    rows = scoreboard.scoreboard(names=["fake_gan"], seed=1, manifest_path=fake_manifest, baselines=False, scorer=scorer)
    model = load_model("fake_gan", manifest_path=fake_manifest)
    x = model.sample(200, generator=torch.Generator().manual_seed(1))
    expected = scorer.score(x)
    assert [r["name"] for r in rows] == ["fake_gan"]
    assert rows[0]["fid"] == pytest.approx(expected["fid"]) and rows[0]["recall"] == expected["recall"]


def test_scoreboard_leaves_off_models_that_do_not_make_images(fake_manifest):
    from genimg_lib.checkpoints import register_shipped, save_checkpoint

    from conftest import FakeToyGenerator

    path = fake_manifest.parent / "toy.pt"
    save_checkpoint({"model": FakeToyGenerator().state_dict(), "config": {}}, path)
    register_shipped("toy_gan", path, "(test)", manifest_path=fake_manifest,
                     **{"class": "FakeToyGenerator", "config": {}, "family": "gan"})
    with pytest.warns(UserWarning, match=r"toy_gan: sample\(200\) has shape \(200, 2\)"):
        rows = scoreboard.scoreboard(num_samples=200, manifest_path=fake_manifest, baselines=False)
    assert [r["name"] for r in rows] == ["fake_gan", "fake_vae"]


def test_scoreboard_with_no_generative_model_and_unknown_names(tmp_path, fake_manifest):
    empty = tmp_path / "empty" / "MANIFEST.json"
    rows = scoreboard.scoreboard(num_samples=200, manifest_path=empty)
    assert [r["kind"] for r in rows] == ["baseline"] * 3
    with pytest.raises(ValueError, match="not shipped generative models: \\['not_generative'\\]"):
        scoreboard.scoreboard(num_samples=200, names=["not_generative"], manifest_path=fake_manifest)


def test_manifest_nll_and_live_estimate(fake_manifest, splits):
    _, _, x_test, _ = splits
    assert scoreboard.manifest_nll("fake_gan", fake_manifest) is None
    assert scoreboard.manifest_nll("fake_vae", fake_manifest) == {
        "nll_nats": 100.0, "bits_per_dim": pytest.approx(bits_per_dim(100.0))}
    with pytest.raises(ValueError, match="no shipped model named 'nope'"):
        scoreboard.manifest_nll("nope", fake_manifest)
    model = load_model("fake_vae", manifest_path=fake_manifest)
    expected = -model.estimate_log_px(x_test[:30]).mean().item()
    assert measures.estimate_nll(model, x_test[:30], num_samples=1, batch_size=7) == pytest.approx(expected, rel=1e-6)


def test_manifest_nll_of_the_shipped_vaes():
    for name in ("vae_conv_z16", "vae_mlp_z2", "cvae_z8"):
        metrics = read_manifest()[name]["metrics"]
        assert scoreboard.manifest_nll(name) == {"nll_nats": metrics["nll_nats"], "bits_per_dim": metrics["bits_per_dim"]}
    assert scoreboard.manifest_nll("gan_dcgan") is None
