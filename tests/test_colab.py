"""What Colab does with a chapter, reproduced here (Colab itself cannot be reached from CI).

A fresh virtual environment gets only what Colab has that a chapter uses (torch, numpy,
matplotlib, ipywidgets) plus ipykernel and nbclient to run a notebook. The chapter's
setup cell then installs genimg_lib with pip from this repository (``git+file://`` of
the repository root instead of ``repository.url``: the committed HEAD, as pip clones it),
and the chapter runs to the end in a directory that holds nothing but the notebook.
This proves that ``pip install git+...`` brings everything a chapter needs, the shipped
weights included, and that nothing it requires replaces the torch already installed.

Nothing is cached between runs: the environment lives in a temporary directory and pip
runs with its cache off. Slow (a few minutes: torch is installed from a local wheel,
the rest comes from the package index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import ROOT

CHAPTER = ROOT / "book" / "vae_03_building.ipynb"
# what Colab has preinstalled, of what a chapter imports; torch pinned to the CPU wheel
# that scripts/setup.sh installs (a bare `torch` would fetch a 1 GB CUDA build)
COLAB_PACKAGES = ["torch==2.13.0", "numpy", "matplotlib", "ipywidgets"]
RUNNER = ["ipykernel", "nbclient"]

pytestmark = pytest.mark.colab


def _env(tmp: Path) -> dict:
    """The environment of a machine that has never seen this repository."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR")}
    env.update(
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
        JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        MPLCONFIGDIR=str(tmp / "matplotlib"),
        GENIMG_PROGRESS="0",
    )
    return env


def _run(cmd: list[str], env: dict, cwd: Path, timeout: int) -> str:
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:6])} ... failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result.stdout


def _colab_notebook(venv: Path) -> nbformat.NotebookNode:
    """The chapter, with its install URL pointed at this repository, between two cells
    that check where it runs and what it ended up using."""
    nb = nbformat.read(CHAPTER, as_version=4)
    url = "git+" + yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    setup = next(c for c in nb.cells if c.cell_type == "code" and url in c.source)
    setup.source = setup.source.replace(url, f"git+file://{ROOT}")
    before = nbformat.v4.new_code_cell(textwrap.dedent(f"""\
        import importlib.util, sys
        assert sys.prefix == {str(venv)!r}, sys.prefix
        assert importlib.util.find_spec("genimg_lib") is None, "genimg_lib is already importable"
        """))
    after = nbformat.v4.new_code_cell(textwrap.dedent("""\
        import json, importlib.metadata
        import genimg_lib, torch
        from genimg_lib import checkpoints
        print(json.dumps({"genimg_lib": genimg_lib.__file__, "torch": torch.__version__,
                          "version": importlib.metadata.version("genimg_lib"),
                          "weights": sorted(p.name for p in checkpoints.WEIGHTS_DIR.glob("*.pt"))}))
        """))
    nb.cells = [before, *nb.cells, after]
    return nb


def test_a_chapter_runs_after_pip_installs_the_repository_in_a_colab_like_environment(tmp_path):
    venv = tmp_path / "venv"
    env = _env(tmp_path)
    python = str(venv / "bin" / "python")
    _run([sys.executable, "-m", "venv", str(venv)], env, tmp_path, 300)
    # GENIMG_TORCH_INDEX: where the CPU build of torch comes from, as for scripts/setup.sh
    index = os.environ.get("GENIMG_TORCH_INDEX")
    extra = ["--extra-index-url", index] if index else []
    _run([python, "-m", "pip", "install", "-q", *COLAB_PACKAGES, *RUNNER, *extra], env, tmp_path, 1200)
    torch_before = _run([python, "-c", "import torch; print(torch.__version__)"], env, tmp_path, 300).strip()

    work = tmp_path / "colab"  # the notebook alone, as Colab has it
    work.mkdir()
    nbformat.write(_colab_notebook(venv), work / CHAPTER.name)
    runner = textwrap.dedent(f"""\
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({CHAPTER.name!r}, as_version=4)
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={{"metadata": {{"path": "."}}}}).execute()
        nbformat.write(nb, "executed.ipynb")
        """)
    _run([python, "-c", runner], env, work, 1800)

    executed = nbformat.read(work / "executed.ipynb", as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == [], errors
    report = json.loads(executed.cells[-1].outputs[0]["text"])
    assert report["genimg_lib"].startswith(str(venv)), report  # the installed package, not this checkout
    assert report["torch"] == torch_before, report  # nothing replaced the torch that was there
    shipped = sorted(p.name for p in (ROOT / "genimg_lib" / "weights").glob("*.pt"))
    assert report["weights"] == shipped, report  # the weights came with the package
    _run([python, "-m", "pip", "check"], env, tmp_path, 300)
