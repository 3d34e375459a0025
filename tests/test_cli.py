"""genimg_lib.cli: ``python -m genimg_lib {list,train,score,verify}``.

Every recipe is trained for 2 steps into a temporary folder (in-process, through ``cli.main``),
loaded back from that folder's manifest, listed, verified and scored there; the shipped weights
and MANIFEST.json must be byte-for-byte what they were before. One real subprocess proves the
``python -m genimg_lib`` entry point."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import shutil
import subprocess
import sys
import tomllib

import pytest
import torch

from conftest import ROOT
from genimg_lib import checkpoints as ck
from genimg_lib import cli
from genimg_lib.classifier import MNISTClassifier
from genimg_lib.hybrid import VAEGAN
from genimg_lib.recipes import GAN_SNAPSHOT_STEPS, LIKELIHOOD_KINDS, RECIPES, VAEGAN_SNAPSHOT_STEPS
from genimg_lib.train import History

VAE_KINDS = LIKELIHOOD_KINDS  # the recipes that take --iwae-k
RESULTS_KINDS = ("vae_study", "vaegan_sweep", "faq_study")  # results files, not models
STEPS = 2
SCORE_KEYS = {"fid_domain", "kid_domain", "precision_k3", "recall_k3", "classes_covered", "kl_uniform",
              "score_num_samples", "score_seed"}


def _shipped_state() -> dict[str, str]:
    """The sha256 of every file in the package's weights folder, MANIFEST.json included."""
    return {p.name: ck.sha256_file(p) for p in sorted(ck.WEIGHTS_DIR.iterdir())}


def _main(argv: list[str]) -> tuple[int, str, str]:
    """Run ``cli.main(argv)`` in this process: ``(exit status, stdout, stderr)``; argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def shipped_before() -> dict[str, str]:
    return _shipped_state()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shipped_before):
    """Every recipe, 2 steps (VAEs with --iwae-k 2), written to one temporary folder."""
    before_threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("runs")
    results = {}
    for name, recipe in RECIPES.items():
        extra = ["--iwae-k", "2"] if recipe["kind"] in VAE_KINDS else []
        results[name] = _main(["train", name, "--out", out, "--steps", STEPS, *extra])
    torch.set_num_threads(before_threads)
    return out, results


# ---------------------------------------------------------------------------
# train NAME --out DIR
# ---------------------------------------------------------------------------
def test_train_writes_every_recipe_into_the_folder(trained, shipped_before):
    out, results = trained
    for name, (code, stdout, stderr) in results.items():
        assert code == 0, (name, stderr)
        assert f"{name}: " in stdout and f"written to {out} ({name}.pt, sha256 " in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(["MANIFEST.json", *(f"{n}.pt" for n in RECIPES)])
    assert ck.verify_shipped(out / "MANIFEST.json") == {name: "ok" for name in sorted(RECIPES)}
    assert _shipped_state() == shipped_before


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items() if r["kind"] not in RESULTS_KINDS])
def test_a_trained_model_loads_from_the_folders_manifest(trained, name):
    out, _ = trained
    manifest = out / "MANIFEST.json"
    entry = ck.read_manifest(manifest)[name]
    model = ck.load_model(name, manifest_path=manifest)
    assert type(model) is ck.MODEL_CLASSES[entry["class"]] and not model.training
    state = ck.load_checkpoint(out / f"{name}.pt", entry["sha256"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state["model"].items())
    assert entry["cost"]["steps"] == STEPS
    kind = RECIPES[name]["kind"]
    if kind == "vae":
        assert entry["metrics"]["iwae_k"] == 2 and entry["metrics"]["nll_nats"] > 0
        assert entry["config"] == RECIPES[name]["model"]
    elif kind == "gan":
        assert entry["training"]["num_steps"] == STEPS and entry["config"] == RECIPES[name]["model"]
        snapshots = state["snapshots"]
        assert snapshots["steps"].tolist() == [s for s in GAN_SNAPSHOT_STEPS if s < STEPS] + [STEPS] == [0, 2]
        per_grid = 60 if RECIPES[name]["conditional"] else 64
        assert snapshots["images"].shape == (2, per_grid, 1, 28, 28) and snapshots["images"].dtype == torch.uint8
        history = History.from_state_dict(state["history"])
        assert history.steps("loss_D") == [1, 2] and ("gp" in history) == (RECIPES[name]["loss"] == "wasserstein_gp")
    elif kind == "gan_encoder":
        assert entry["training"]["num_steps"] == STEPS and entry["family"] == "encoder"
        assert entry["training"]["gan_sha256"] == ck.read_manifest()[RECIPES[name]["gan"]]["sha256"]
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, entry["config"]["z_dim"])
        assert History.from_state_dict(state["history"]).steps("loss") == [1, 2]
        assert {"sample_code_mse", "sample_image_mse", "test_image_mse"} <= set(entry["metrics"])
    elif kind == "vaegan":
        assert isinstance(model, VAEGAN) and entry["family"] == "hybrid" and entry["metrics"]["iwae_k"] == 2
        assert entry["training"]["init"] == RECIPES[name]["init"] and entry["training"]["num_steps"] == STEPS
        assert entry["training"]["init_sha256"] == ck.read_manifest()[RECIPES[name]["init"]]["sha256"]
        assert state["snapshots"]["steps"].tolist() == [s for s in VAEGAN_SNAPSHOT_STEPS if s < STEPS] + [STEPS]
        assert History.from_state_dict(state["history"]).steps("loss") == [1, 2]
    else:
        assert isinstance(model, MNISTClassifier) and model.feature_scale == entry["config"]["feature_scale"] > 0
    if kind not in ("gan", "gan_encoder"):
        s = model(torch.zeros(2, 1, 28, 28)) if kind == "classifier" else model.sample(2)
        assert torch.isfinite(s).all()


def test_the_latent_study_results_load_from_the_folders_manifest(trained):
    out, _ = trained
    manifest = out / "MANIFEST.json"
    results = ck.load_shipped("vae_latent_study", manifest_path=manifest)["results"]
    betas = RECIPES["vae_latent_study"]["sweep"]["betas"]
    assert results["betas"].tolist() == pytest.approx(betas)
    assert results["nll"].shape == (len(betas),) and torch.isfinite(results["nll"]).all()
    assert results["collapse_runs"] == list(RECIPES["vae_latent_study"]["collapse"]["runs"])
    entry = ck.read_manifest(manifest)["vae_latent_study"]
    assert entry["family"] == "results" and entry["metrics"]["iwae_k"] == 2
    assert entry["cost"]["steps"] == STEPS * (len(betas) + len(results["collapse_runs"]))
    with pytest.raises(ValueError, match="is not a model"):
        ck.load_model("vae_latent_study", manifest_path=manifest)


def test_the_vaegan_sweep_results_load_from_the_folders_manifest(trained):
    out, _ = trained
    manifest = out / "MANIFEST.json"
    results = ck.load_shipped("vaegan_sweep", manifest_path=manifest)["results"]
    weights = RECIPES["vaegan_sweep"]["adv_weights"]
    assert results["adv_weights"].tolist() == pytest.approx(weights)
    assert results["metrics"].shape == (len(results["metric_names"]), len(weights))
    assert torch.isfinite(results["metrics"]).all()
    assert results["samples"].shape == (len(weights), RECIPES["vaegan_sweep"]["num_shown"], 1, 28, 28)
    assert sorted(results["histories"]) == sorted(f"{w:g}" for w in weights)
    entry = ck.read_manifest(manifest)["vaegan_sweep"]
    assert entry["family"] == "results" and entry["metrics"]["iwae_k"] == 2
    assert entry["cost"]["steps"] == STEPS * len(weights)


def test_the_faq_study_results_load_from_the_folders_manifest(trained):
    out, _ = trained
    manifest = out / "MANIFEST.json"
    study = ck.load_shipped("faq_study", manifest_path=manifest)
    results, recipe = study["results"], RECIPES["faq_study"]
    assert [r["lr"] for r in results["gan_lr"]] == recipe["gan"]["lrs"]
    assert [r["lr"] for r in results["vae_lr"]] == recipe["vae"]["lrs"]
    assert [r["sigma"] for r in results["gaussian"]] == recipe["gaussian"]["sigmas"]
    assert all(r["steps_done"] >= 1 and r["samples"].dtype == torch.uint8 for r in results["gan_lr"])
    assert study["config"]["gan_recipe"]["lr_G"] == RECIPES["gan_dcgan"]["lr_G"]
    entry = ck.read_manifest(manifest)["faq_study"]
    assert entry["family"] == "results" and entry["metrics"]["iwae_k"] == 2 and entry["cost"]["steps"] > 0
    with pytest.raises(ValueError, match="is not a model"):
        ck.load_model("faq_study", manifest_path=manifest)


def test_the_recorded_command_makes_the_file_again_in_the_same_folder(trained):
    """A run written with --out records a command that writes to --out too, never one that ships."""
    out, _ = trained
    for name, entry in ck.read_manifest(out / "MANIFEST.json").items():
        extra = " --iwae-k 2" if RECIPES[name]["kind"] in VAE_KINDS else ""
        assert entry["command"] == f"python -m genimg_lib train {name} --out {out} --steps 2{extra}"


# ---------------------------------------------------------------------------
# train: bad arguments end with exit status 2 before any work
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["train", "gan_dcgan", "--steps", "2"], "say where the checkpoint goes: --out DIR"),
    (["train", "gan_dcgan", "--out", ck.WEIGHTS_DIR, "--steps", "2"], "is the package's weights folder; use --ship"),
    (["train", "gan_dcgan", "--out", ck.WEIGHTS_DIR / ".." / "weights"], "is the package's weights folder"),
    (["train", "gan_dcgan", "--out", "x", "--iwae-k", "2"], "--iwae-k applies to VAE recipes only"),
    (["train", "gan_dcgan", "--out", "x", "--ship"], "not allowed with argument"),
    (["train", "gan_stylegan", "--out", "x"], "invalid choice: 'gan_stylegan'"),
    (["train", "gan_dcgan", "--out", "x", "--steps", "0"], "expected a positive integer, got 0"),
    (["train", "gan_dcgan", "--out", "x", "--steps", "two"], "expected a positive integer, got 'two'"),
    (["train", "gan_dcgan", "--out", "x", "--seed", "-1"], "expected a non-negative integer, got -1"),
    (["score", "--num-samples", "0"], "expected a positive integer"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, monkeypatch, shipped_before, argv, message):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _main(argv)
    assert code == 2 and message in stderr
    assert list(tmp_path.iterdir()) == []  # nothing was written
    assert _shipped_state() == shipped_before


def test_train_help_lists_every_recipe_and_an_unknown_name_lists_them_too():
    code, stdout, _ = _main(["train", "--help"])
    assert code == 0 and "--out" in stdout and "--ship" in stdout
    assert all(name in stdout for name in RECIPES)
    code, _, stderr = _main(["train", "gan_stylegan", "--out", "x"])
    assert code == 2 and all(name in stderr for name in RECIPES)


def test_no_subcommand_prints_help_and_exits_2():
    code, stdout, _ = _main([])
    assert code == 2 and stdout.startswith("usage: python -m genimg_lib")
    assert all(f"    {sub} " in stdout for sub in ("list", "train", "score", "verify"))


def test_version():
    from genimg_lib import __version__

    code, stdout, _ = _main(["--version"])
    assert code == 0 and stdout.strip() == f"genimg_lib {__version__}"


# ---------------------------------------------------------------------------
# list and verify
# ---------------------------------------------------------------------------
def test_list_prints_every_entry_with_its_headline(trained, tmp_path):
    out, _ = trained
    code, stdout, _ = _main(["list", "--manifest", out / "MANIFEST.json"])
    lines = stdout.splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == sorted(RECIPES)
    manifest = ck.read_manifest(out / "MANIFEST.json")
    vae = next(line for line in lines if line.startswith("vae_mlp_z2 "))
    assert f"nll_nats {manifest['vae_mlp_z2']['metrics']['nll_nats']:.4g}" in vae and " vae " in vae
    clf = next(line for line in lines if line.startswith("classifier "))
    assert f"test_accuracy {manifest['classifier']['metrics']['test_accuracy']:.4g}" in clf
    code, stdout, _ = _main(["list"])
    assert code == 0 and [line.split()[0] for line in stdout.splitlines()] == sorted(ck.read_manifest())
    gan = next(line for line in stdout.splitlines() if line.startswith("gan_dcgan "))
    assert f"fid_domain {ck.read_manifest()['gan_dcgan']['metrics']['fid_domain']:.4g}" in gan
    (tmp_path / "MANIFEST.json").write_text("{}\n")
    code, stdout, _ = _main(["list", "--manifest", tmp_path / "MANIFEST.json"])
    assert code == 0 and "no checkpoints in" in stdout


def test_verify_reports_ok_changed_and_missing_files(trained, tmp_path):
    out, _ = trained
    code, stdout, _ = _main(["verify", "--manifest", out / "MANIFEST.json"])
    assert code == 0 and stdout.split() == [w for n in sorted(RECIPES) for w in (n, "ok")]
    code, stdout, _ = _main(["verify"])  # the shipped weights
    assert code == 0 and stdout.count(" ok") == len(ck.read_manifest())
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "gan_dcgan.pt", "r+b") as f:
        f.seek(500)
        f.write(b"\x00\x01\x02")
    (copy / "classifier.pt").unlink()
    code, stdout, _ = _main(["verify", "--manifest", copy / "MANIFEST.json"])
    status = dict(line.split(maxsplit=1) for line in stdout.splitlines())
    assert code == 1
    assert status["gan_dcgan"] == "sha256 mismatch" and status["classifier"] == "missing" and status["vae_mlp_z2"] == "ok"


# ---------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------
def test_score_writes_metrics_into_a_temporary_manifest_only_with_write(trained, tmp_path, shipped_before):
    out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = copy / "MANIFEST.json"
    before_bytes, before = manifest.read_bytes(), ck.read_manifest(manifest)
    generative = sorted(ck.shipped_entries(ck.GENERATIVE_FAMILIES, manifest))
    assert len(generative) == 7  # 3 VAEs, 3 GANs, the VAE-GAN

    code, stdout, _ = _main(["score", "--num-samples", "200", "--manifest", manifest])
    assert code == 0 and [line.split(":")[0] for line in stdout.splitlines()] == generative
    assert manifest.read_bytes() == before_bytes  # printed, not written

    code, stdout, _ = _main(["score", "--num-samples", "200", "--manifest", manifest, "--write"])
    assert code == 0 and stdout.splitlines()[-1] == f"scores written to {manifest}"
    after = ck.read_manifest(manifest)
    assert ck.verify_shipped(manifest) == {n: "ok" for n in sorted(RECIPES)}
    for name in before:
        assert {k: v for k, v in after[name].items() if k != "metrics"} == {k: v for k, v in before[name].items() if k != "metrics"}
        if name in generative:
            m = after[name]["metrics"]
            assert m["score_num_samples"] == 200 and m["score_seed"] == 0 and m["fid_domain"] > 0
            assert 1 <= m["classes_covered"] <= 10 and 0 <= m["precision_k3"] <= 1
            assert all(m[k] == v for k, v in before[name]["metrics"].items() if k not in SCORE_KEYS)  # kept
        else:
            assert after[name] == before[name]
    assert _shipped_state() == shipped_before


def test_score_cli_writes_metrics_and_keeps_checksums(fake_manifest):
    before = ck.read_manifest(fake_manifest)
    code, stdout, _ = _main(["score", "--num-samples", "200", "--manifest", fake_manifest, "--write"])
    assert code == 0
    after = ck.read_manifest(fake_manifest)
    for name in before:
        assert after[name]["sha256"] == before[name]["sha256"] == ck.sha256_file(fake_manifest.parent / before[name]["file"])
    assert after["fake_vae"]["metrics"]["nll_nats"] == 100.0  # kept
    for name in ("fake_gan", "fake_vae"):
        m = after[name]["metrics"]
        assert m["score_num_samples"] == 200 and m["classes_covered"] == 10 and m["fid_domain"] > 0
    assert "fid_domain" not in after["not_generative"].get("metrics", {})
    json.loads(fake_manifest.read_text())  # still valid JSON


def test_score_with_no_generative_model(trained, tmp_path):
    out, _ = trained
    shutil.copy(out / "classifier.pt", tmp_path)
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text(json.dumps({"classifier": ck.read_manifest(out / "MANIFEST.json")["classifier"]}))
    before = manifest.read_bytes()
    code, stdout, _ = _main(["score", "--num-samples", "200", "--manifest", manifest, "--write"])
    assert code == 0 and "no generative models (family vae, gan or hybrid)" in stdout and "nothing to score" in stdout
    assert manifest.read_bytes() == before


# ---------------------------------------------------------------------------
# The entry points, and the shipped files at the end
# ---------------------------------------------------------------------------
def test_python_dash_m_genimg_lib_runs():
    r = subprocess.run([sys.executable, "-m", "genimg_lib", "--help"], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert r.returncode == 0, r.stderr
    for sub in ("list", "train", "score", "verify"):
        assert sub in r.stdout


def test_the_console_script_points_at_the_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["genimg"].partition(":")
    assert getattr(importlib.import_module(module), attr) is cli.main


def test_nothing_shipped_changed(trained, shipped_before):
    """Run last in this file: after every command above, the package's weights are untouched."""
    assert _shipped_state() == shipped_before
    assert ck.verify_shipped() == {name: "ok" for name in sorted(ck.read_manifest())}
