import json

import pytest
import torch

from genimg_lib import checkpoints as ck


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
        ck.load_checkpoint(path, regenerate="python -m genimg_lib.train x")


def test_checksum_mismatch_names_file_and_regeneration(tmp_path, state):
    path = tmp_path / "m.pt"
    sha = ck.save_checkpoint(state, path)
    ck.save_checkpoint({**state, "step": 9}, path)  # a different, valid file
    with pytest.raises(ck.CheckpointError, match=r"m.pt has sha256 .* was expected.*Regenerate it with: cmd"):
        ck.load_checkpoint(path, expected_sha256=sha, regenerate="cmd")


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"

    import argparse  # any class outside torch's allow-list stands in for malicious code

    torch.save({"x": argparse.Namespace(a=1)}, path)
    with pytest.raises(ck.CheckpointError, match="could not be read"):
        ck.load_checkpoint(path)


def test_manifest_register_load_and_verify(tmp_path, state):
    manifest = tmp_path / "MANIFEST.json"
    path = tmp_path / "toy.pt"
    ck.save_checkpoint(state, path)
    entry = ck.register_shipped("toy", path, "python -m genimg_lib.train toy", manifest, cost={"seconds": 1.0})
    assert entry["sha256"] == ck.sha256_file(path) and entry["bytes"] == path.stat().st_size
    assert json.loads(manifest.read_text())["toy"]["cost"] == {"seconds": 1.0}
    assert ck.load_shipped("toy", manifest_path=manifest)["step"] == 7
    assert ck.verify_shipped(manifest) == {"toy": "ok"}
    # the shipped file changes behind the manifest's back
    ck.save_checkpoint({**state, "step": 1}, path)
    assert ck.verify_shipped(manifest) == {"toy": "sha256 mismatch"}
    with pytest.raises(ck.CheckpointError, match=r"toy.pt has sha256.*python -m genimg_lib.train toy"):
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
    assert sum(e["bytes"] for e in ck.read_manifest().values()) <= 10 * 1024 * 1024
