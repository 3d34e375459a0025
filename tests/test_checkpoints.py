"""genimg_lib.checkpoints: atomic saves, checksummed loads, the manifest, and load_model over the
explicit class table; every shipped checkpoint verified, loaded and sampled."""

import argparse
import json
import shutil

import pytest
import torch
from torch import nn

from genimg_lib import checkpoints as ck
from genimg_lib.classifier import MNISTClassifier
from genimg_lib.invert import GANEncoder
from genimg_lib.hybrid import VAEGAN
from genimg_lib.models import CVAE, DCGAN, VAE


@pytest.fixture
def state():
    return {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"z_dim": 4}, "step": 7}


def test_round_trip_and_sha(tmp_path, state):
    path = tmp_path / "m.pt"
    sha = ck.save_checkpoint(state, path)
    assert sha == ck.sha256_file(path)
    loaded = ck.load_checkpoint(path, expected_sha256=sha)
    torch.testing.assert_close(loaded["model"]["w"], state["model"]["w"])
    assert loaded["config"] == {"z_dim": 4} and loaded["step"] == 7


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, state):
    path = tmp_path / "m.pt"
    ck.save_checkpoint(state, path)
    ck.save_checkpoint({**state, "step": 8}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert ck.load_checkpoint(path)["step"] == 8


def test_failed_save_keeps_the_old_file(tmp_path, state, monkeypatch):
    path = tmp_path / "m.pt"
    ck.save_checkpoint(state, path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint({"other": 1}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_missing_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(ck.CheckpointError, match=r"nope.pt does not exist. Regenerate it with: make it"):
        ck.load_checkpoint(tmp_path / "nope.pt", regenerate="make it")


def test_truncated_file_is_a_clear_error(tmp_path, state):
    path = tmp_path / "m.pt"
    ck.save_checkpoint(state, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ck.CheckpointError, match=r"m.pt could not be read .* truncated, corrupted"):
        ck.load_checkpoint(path, regenerate="python -m genimg_lib train x --out d")


def test_checksum_mismatch_names_file_and_regeneration(tmp_path, state):
    path = tmp_path / "m.pt"
    sha = ck.save_checkpoint(state, path)
    ck.save_checkpoint({**state, "step": 9}, path)  # a different, valid file
    with pytest.raises(ck.CheckpointError, match=r"m.pt has sha256 .* was expected.*Regenerate it with: cmd"):
        ck.load_checkpoint(path, expected_sha256=sha, regenerate="cmd")


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"

    # any class outside torch's allow-list stands in for malicious code
    torch.save({"x": argparse.Namespace(a=1)}, path)
    with pytest.raises(ck.CheckpointError, match="could not be read"):
        ck.load_checkpoint(path)


def test_manifest_register_load_and_verify(tmp_path, state):
    manifest = tmp_path / "MANIFEST.json"
    path = tmp_path / "toy.pt"
    ck.save_checkpoint(state, path)
    entry = ck.register_shipped("toy", path, "python -m genimg_lib train toy --out d", manifest, cost={"seconds": 1.0})
    assert entry["sha256"] == ck.sha256_file(path) and entry["bytes"] == path.stat().st_size
    assert json.loads(manifest.read_text())["toy"]["cost"] == {"seconds": 1.0}
    assert ck.load_shipped("toy", manifest_path=manifest)["step"] == 7
    assert ck.verify_shipped(manifest) == {"toy": "ok"}
    # the shipped file changes behind the manifest's back
    ck.save_checkpoint({**state, "step": 1}, path)
    assert ck.verify_shipped(manifest) == {"toy": "sha256 mismatch"}
    with pytest.raises(ck.CheckpointError, match=r"toy.pt has sha256.*python -m genimg_lib train toy --out d"):
        ck.load_shipped("toy", manifest_path=manifest)
    path.unlink()
    assert ck.verify_shipped(manifest) == {"toy": "missing"}


def test_unknown_shipped_name_lists_available(tmp_path):
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text(json.dumps({"a": {}, "b": {}}))
    with pytest.raises(ValueError, match=r"no shipped checkpoint named 'c'; available: \['a', 'b'\]"):
        ck.load_shipped("c", manifest_path=manifest)


def test_broken_manifest_says_how_to_restore(tmp_path):
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text("{not json")
    with pytest.raises(ck.CheckpointError, match="not valid JSON.*git"):
        ck.read_manifest(manifest)


def test_register_refuses_files_outside_the_weights_folder(tmp_path, state):
    (tmp_path / "w").mkdir()
    path = tmp_path / "m.pt"
    ck.save_checkpoint(state, path)
    with pytest.raises(ValueError, match="must be in"):
        ck.register_shipped("m", path, "cmd", tmp_path / "w" / "MANIFEST.json")


def test_every_shipped_checkpoint_matches_its_checksum():
    results = ck.verify_shipped()
    assert all(v == "ok" for v in results.values()), results
    for name, entry in ck.read_manifest().items():
        assert entry["bytes"] <= 2 * 1024 * 1024, f"{name} is over 2 MB"
    # 12 MB in all: the package stays a small download (the GAN recipes of issue #11 ship 10,000-step histories)
    assert sum(e["bytes"] for e in ck.read_manifest().values()) <= 12 * 1024 * 1024


# ---------------------------------------------------------------------------
# save_checkpoint reads the file back before it takes the real name
# ---------------------------------------------------------------------------
def test_save_refuses_an_object_that_would_not_load_back_and_keeps_the_old_file(tmp_path, state):
    path = tmp_path / "m.pt"
    ck.save_checkpoint(state, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"m.pt\): the object would not load back with weights_only=True.*state_dict"):
        ck.save_checkpoint({"x": argparse.Namespace(a=1)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    with pytest.raises(TypeError, match="would not load back"):
        ck.save_checkpoint({"model": nn.Linear(2, 2)}, tmp_path / "new.pt")  # the module, not its state_dict
    assert not (tmp_path / "new.pt").exists()


def test_save_removes_temporary_files_left_by_a_killed_save(tmp_path, state):
    (tmp_path / ".m.pt.abc123.tmp").write_bytes(b"half a file")
    (tmp_path / ".other.pt.abc123.tmp").write_bytes(b"another file's")
    ck.save_checkpoint(state, tmp_path / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc123.tmp", "m.pt"]


# ---------------------------------------------------------------------------
# The manifest: one writer, metrics merged, entries by family
# ---------------------------------------------------------------------------
def _two_entries(tmp_path, state):
    manifest = tmp_path / "MANIFEST.json"
    for name, family in [("b_gan", "gan"), ("a_clf", "classifier")]:
        ck.save_checkpoint(state, tmp_path / f"{name}.pt")
        ck.register_shipped(name, tmp_path / f"{name}.pt", "cmd", manifest, family=family, metrics={"x": 1})
    return manifest


def test_update_metrics_merges_and_leaves_the_file_alone(tmp_path, state):
    manifest = _two_entries(tmp_path, state)
    before = ck.read_manifest(manifest)
    entry = ck.update_metrics("b_gan", {"fid_domain": 3.5, "x": 2}, manifest)
    after = ck.read_manifest(manifest)
    assert entry["metrics"] == after["b_gan"]["metrics"] == {"x": 2, "fid_domain": 3.5}
    assert {k: v for k, v in after["b_gan"].items() if k != "metrics"} == {k: v for k, v in before["b_gan"].items() if k != "metrics"}
    assert after["a_clf"] == before["a_clf"]
    assert ck.verify_shipped(manifest) == {"a_clf": "ok", "b_gan": "ok"}
    assert list(json.loads(manifest.read_text())) == ["a_clf", "b_gan"]  # written sorted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MANIFEST.json", "a_clf.pt", "b_gan.pt"]  # no temp file left
    with pytest.raises(ValueError, match=r"no entry 'c' in .*; entries: \['a_clf', 'b_gan'\]"):
        ck.update_metrics("c", {}, manifest)


def test_shipped_entries_filters_by_family_in_name_order(tmp_path, state):
    manifest = _two_entries(tmp_path, state)
    assert list(ck.shipped_entries(manifest_path=manifest)) == ["a_clf", "b_gan"]
    assert list(ck.shipped_entries(ck.GENERATIVE_FAMILIES, manifest)) == ["b_gan"]
    assert ck.shipped_entries(("vae",), manifest) == {}
    assert set(ck.shipped_entries(ck.GENERATIVE_FAMILIES)) == {
        "vae_conv_z16", "vae_mlp_z2", "cvae_z8", "gan_dcgan", "gan_wgan_gp", "gan_cgan", "vaegan_conv_z16"}


# ---------------------------------------------------------------------------
# load_model: the explicit class table
# ---------------------------------------------------------------------------
def test_model_classes_is_an_explicit_table_of_every_shipped_class():
    assert ck.MODEL_CLASSES == {"VAE": VAE, "CVAE": CVAE, "DCGAN": DCGAN, "MNISTClassifier": MNISTClassifier,
                                "GANEncoder": GANEncoder,
                                "VAEGAN": VAEGAN}
    shipped = {e["class"] for e in ck.read_manifest().values() if "class" in e}
    assert shipped <= set(ck.MODEL_CLASSES)


def test_load_model_refuses_results_unknown_names_and_unknown_classes(tmp_path, state):
    with pytest.raises(ValueError, match=r"'vae_latent_study' .* is not a model .*load_shipped\('vae_latent_study'\)"):
        ck.load_model("vae_latent_study")
    with pytest.raises(ValueError, match=r"no shipped model named 'vae_z99' .*available: \['classifier'"):
        ck.load_model("vae_z99")
    manifest = tmp_path / "MANIFEST.json"
    ck.save_checkpoint(state, tmp_path / "m.pt")
    ck.register_shipped("m", tmp_path / "m.pt", "cmd", manifest, **{"class": "StyleGAN", "config": {}})
    with pytest.raises(ValueError, match=r"class 'StyleGAN'.*\['CVAE', 'DCGAN', 'GANEncoder', 'MNISTClassifier', 'VAE', 'VAEGAN'\]"):
        ck.load_model("m", manifest_path=manifest)


def test_load_model_reads_a_manifest_of_your_own(tmp_path):
    torch.manual_seed(0)
    model = VAE(z_dim=3, arch="mlp", hidden_dims=[16])
    config = {"z_dim": 3, "arch": "mlp", "hidden_dims": [16]}
    ck.save_checkpoint({"model": model.state_dict(), "config": config}, tmp_path / "mine.pt")
    ck.register_shipped("mine", tmp_path / "mine.pt", "cmd", tmp_path / "MANIFEST.json", **{"class": "VAE", "config": config})
    loaded = ck.load_model("mine", manifest_path=tmp_path / "MANIFEST.json")
    assert isinstance(loaded, VAE) and not loaded.training
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# The shipped checkpoints
# ---------------------------------------------------------------------------
MODELS = ["vae_conv_z16", "vae_mlp_z2", "cvae_z8", "gan_dcgan", "gan_wgan_gp", "gan_cgan", "classifier"]


@pytest.mark.parametrize("name", MODELS + ["vae_latent_study"])
def test_shipped_checkpoints_verified_and_small(name):
    manifest = ck.read_manifest()
    assert name in manifest, f"{name} is not in MANIFEST.json; run python -m genimg_lib train {name} --ship"
    entry = manifest[name]
    assert ck.sha256_file(ck.WEIGHTS_DIR / entry["file"]) == entry["sha256"]
    assert entry["bytes"] == (ck.WEIGHTS_DIR / entry["file"]).stat().st_size <= 2 * 1024 * 1024
    assert {"seconds", "device", "steps"} <= set(entry["cost"])
    ck.load_shipped(name)  # verifies the checksum again on load


@pytest.mark.parametrize("name", MODELS)
def test_shipped_models_load_in_eval_mode_with_their_weights(name):
    entry = ck.read_manifest()[name]
    model = ck.load_model(name)
    assert type(model) is ck.MODEL_CLASSES[entry["class"]] and not model.training
    state = ck.load_shipped(name)["model"]
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("name", ["vae_conv_z16", "vae_mlp_z2", "cvae_z8", "gan_dcgan", "gan_wgan_gp", "gan_cgan"])
def test_shipped_generative_models_sample_digit_like_images(name):
    model = ck.load_model(name)
    s = model.sample(16, generator=torch.Generator().manual_seed(0))
    assert s.shape == (16, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    # a trained model draws dark backgrounds with bright strokes, like MNIST
    assert s.mean() < 0.35 and (s > 0.5).float().mean() > 0.03


def test_shipped_gan_rejects_a_corrupted_file(tmp_path):
    manifest = ck.read_manifest()
    entry = manifest["gan_dcgan"]
    shutil.copy(ck.WEIGHTS_DIR / entry["file"], tmp_path / entry["file"])
    with open(tmp_path / entry["file"], "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"gan_dcgan": entry}))
    with pytest.raises(ck.CheckpointError, match="sha256"):
        ck.load_shipped("gan_dcgan", manifest_path=tmp_path / "MANIFEST.json")
    with pytest.raises(ck.CheckpointError, match=r"sha256 .*Regenerate it with: python -m genimg_lib train gan_dcgan --ship"):
        ck.load_model("gan_dcgan", manifest_path=tmp_path / "MANIFEST.json")


def test_part2_checkpoints_fit_the_budget():
    manifest = ck.read_manifest()
    total = sum(manifest[n]["bytes"] for n in ["vae_conv_z16", "vae_mlp_z2", "cvae_z8", "vae_latent_study"])
    assert total <= 5 * 1024 * 1024
