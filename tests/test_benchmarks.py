"""benchmarks/race.py: the race runs end to end, and its report reads the results right.

The race itself is a measurement, not a test (its numbers live in benchmarks/results/);
here it runs for a few steps into a temporary folder, to prove the script works."""

from __future__ import annotations

import json
import os
import subprocess
import sys


from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "race.py"
sys.path.insert(0, str(SCRIPT.parent))
import race  # noqa: E402


def test_time_to_reach_is_the_first_evaluation_at_or_below_the_target():
    rows = [dict(step=1, cpu_s=1.0, fid=9.0), dict(step=3, cpu_s=3.0, fid=4.0),
            dict(step=2, cpu_s=2.0, fid=5.0), dict(step=4, cpu_s=4.0, fid=3.0)]
    assert race.time_to_reach(rows, "fid", 5.0) == 2.0  # not 3.0: rows are taken in step order
    assert race.time_to_reach(rows, "fid", 3.0) == 4.0
    assert race.time_to_reach(rows, "fid", 2.9) is None


def test_eval_steps_end_at_the_last_step():
    assert race._eval_steps(1500) == [250, 500, 750, 1000, 1250, 1500]
    assert race._eval_steps(3, 6) == [1, 2, 3]


def test_a_short_gan_race_writes_results_and_a_report(tmp_path):
    env = dict(os.environ, GENIMG_BENCHMARK_RESULTS=str(tmp_path), PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, str(SCRIPT), *a], env=env, capture_output=True,
                                    text=True, timeout=600)
    p = run("gan", "--steps", "4", "--contestants", "plain,before", "--steps-of", "before=6")
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads((tmp_path / "gan.json").read_text())
    steps = {(r["contestant"], r["step"]) for r in res["rows"]}
    assert ("plain", 4) in steps and ("before", 6) in steps and ("plain", 5) not in steps
    for r in res["rows"]:
        assert r["cpu_s"] > 0 and r["fid"] > 0 and 0 <= r["classes"] <= 10
    p = run("report")
    assert p.returncode == 0, p.stdout + p.stderr
    table = (tmp_path / "table.md").read_text()
    assert "| plain | " in table and "ratio to plain" in table and "No VAE race" in table
    assert "| gan_dcgan | fid_domain | <= 1.5 |" in table
    assert (tmp_path / "race.png").stat().st_size > 5000


def test_a_race_without_the_plain_recipe_is_refused(tmp_path):
    env = dict(os.environ, GENIMG_BENCHMARK_RESULTS=str(tmp_path))
    p = subprocess.run([sys.executable, str(SCRIPT), "gan", "--contestants", "book,before"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "must include 'plain'" in p.stderr
    assert not (tmp_path / "gan.json").exists()


def test_steps_of_names_a_contestant_of_the_race_and_a_positive_count(tmp_path):
    env = dict(os.environ, GENIMG_BENCHMARK_RESULTS=str(tmp_path))
    for bad in ("fast=6", "plain", "plain=0", "plain=x"):
        p = subprocess.run([sys.executable, str(SCRIPT), "gan", "--contestants", "book,plain",
                            "--steps-of", bad], env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and "--steps-of takes NAME=STEPS" in p.stderr and repr(bad) in p.stderr, bad
    assert not (tmp_path / "gan.json").exists()


def test_target_rows_say_which_targets_are_met_and_by_how_much():
    manifest = {"gan_dcgan": {"metrics": {"fid_domain": 2.0, "classes_covered": 10, "precision_k3": 0.75}},
                "vae_conv_z16": {"metrics": {"nll_nats": 97.0}}}
    rows = race.target_rows(manifest)
    assert "| gan_dcgan | fid_domain | <= 1.5 | 2 | no | 0.5 |" in rows
    assert "| gan_dcgan | classes_covered | >= 10 | 10 | yes | - |" in rows
    assert "| gan_dcgan | precision_k3 | >= 0.7 | 0.75 | yes | - |" in rows
    assert "| gan_dcgan | recall_k3 | >= 0.6 | not scored | - | - |" in rows
    assert "| vae_conv_z16 | nll_nats | <= 93.0 | 97 | no | 4 |" in rows


def test_explore_scores_the_last_and_the_averaged_generator_at_each_evaluation():
    explore = ROOT / "benchmarks" / "explore.py"
    p = subprocess.run([sys.executable, str(explore), "--steps", "3", "--every", "2"], capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, GENIMG_PROGRESS="0"))
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert [(r["step"], r["weights"]) for r in rows] == [(2, "last"), (2, "ema"), (3, "last"), (3, "ema")]
    assert all(r["fid"] > 0 and 0 <= r["precision"] <= 1 for r in rows)
    bad = subprocess.run([sys.executable, str(explore), "--steps", "0"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "--steps, --every, --batch-size and --n-critic must be positive" in bad.stderr
