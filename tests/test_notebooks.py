"""The book's notebooks follow the conventions in CONTRIBUTING.md, and nbval really compares."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]


def install_block(url: str) -> str:
    return (
        "# Colab (or any machine without genimg_lib): install the book's library. Elsewhere: no-op.\n"
        "import importlib.util, subprocess, sys\n"
        'if importlib.util.find_spec("genimg_lib") is None:\n'
        f'    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "git+{url}"])\n'
    )


def toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        if "root" in node:
            files.append(node["root"])
        for value in node.values():
            files += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += toc_files(item)
    return files


def load(nb: Path) -> dict:
    return json.loads(nb.read_text())


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks under book/"


def test_toc_and_book_folder_agree():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = toc_files(toc)
    for entry in entries:
        matches = [p for p in (ROOT / Path(entry).parent).glob(Path(entry).name + ".*") if p.suffix in (".md", ".ipynb")]
        assert matches, f"_toc.yml lists {entry}, which does not exist"
    listed = {str(Path(e)) for e in entries}
    for nb in NOTEBOOKS:
        rel = str(nb.relative_to(ROOT).with_suffix(""))
        assert rel in listed, f"{rel}.ipynb is not in _toc.yml, so the website would not show it"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_configured_repository(nb_path):
    first = code_cells(load(nb_path))[0]
    assert source(first).startswith(install_block(REPO_URL)), (
        f"{nb_path.name}: the first code cell must start with the Colab install block for "
        f"{REPO_URL} (see CONTRIBUTING.md)"
    )
    assert "nbval-ignore-output" in tags(first)
    for expected in ("get_device()", "seed_everything(", "env_summary("):
        assert expected in source(first), f"{nb_path.name}: the setup cell lacks {expected}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_executed_without_unexpected_errors(nb_path):
    nb = load(nb_path)
    for i, cell in enumerate(code_cells(nb)):
        assert cell.get("execution_count") is not None, f"{nb_path.name}: code cell {i} was not executed"
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        if "raises-exception" in tags(cell):
            assert errors, f"{nb_path.name}: cell {i} is tagged raises-exception but stored no error"
        else:
            assert not errors, f"{nb_path.name}: cell {i} stored an error: {errors[0]['ename']}"
    has_widgets = any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for c in code_cells(nb) for o in c.get("outputs", [])
    )
    if has_widgets:
        state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        assert state.get("state"), f"{nb_path.name}: widgets without stored state are blank on the website"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_structure(nb_path):
    nb = load(nb_path)
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert markdown and markdown[0].startswith("# "), f"{nb_path.name}: must open with a '# Title' cell"
    for phrase in ("Run time", "What you will learn", "Prerequisites"):
        assert phrase in markdown[0], f"{nb_path.name}: the title cell must state '{phrase}'"
    text = "\n".join(markdown)
    for heading in ("## Summary", "## Exercises"):
        assert heading in text, f"{nb_path.name}: missing '{heading}'"
    assert ":class: dropdown" in text, f"{nb_path.name}: solutions belong behind a dropdown toggle"
    assert "exercises import check" in source(code_cells(nb)[0]) or "check(" in "".join(
        source(c) for c in code_cells(nb)
    ), f"{nb_path.name}: exercises are graded with genimg_lib.exercises.check"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_runtime_downloads(nb_path):
    for cell in code_cells(load(nb_path)):
        src = source(cell)
        assert not re.search(r"download\s*=\s*True|urlopen|requests\.get|wget |curl ", src), (
            f"{nb_path.name}: code that downloads at run time fails offline"
        )


def test_sanitize_file_never_masks_results():
    """The substitutions only touch addresses, progress-bar timings and printed wall times."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "nbval_sanitize.cfg")
    patterns = [(parser[s]["regex"], parser[s]["replace"]) for s in parser.sections()]
    results = [
        "moons   integral of p(x) over the grid: 1.0000",
        "final NLL 2.1210 nats",
        "test accuracy 97.30 %",
        "tensor([0.3367, 0.1288, 0.2345]) same draws: True",
        "FID 12.3, KID 0.0041, precision 0.712, recall 0.655",
        "training images per digit: [400, 400, 400]",
    ]
    for line in results:
        out = line
        for regex, replace in patterns:
            out = re.sub(regex, replace, out)
        assert out == line, f"nbval_sanitize.cfg changes a result line: {line!r} -> {out!r}"
    noisy = "<Figure at 0x7f3a2b1c9d90> fitting: 100%|####| 300/300 [00:01<00:00, 250.31it/s] took 3.2 s"
    out = noisy
    for regex, replace in patterns:
        out = re.sub(regex, replace, out)
    assert "0x7f3a" not in out and "250.31" not in out and "3.2 s" not in out


def test_ci_compares_outputs():
    for script in ("scripts/test.sh", ".ci/run"):
        text = (ROOT / script).read_text()
        assert "--nbval-lax" not in text and "nbval-lax" not in text
    assert "--nbval " in (ROOT / "scripts/test.sh").read_text()


def test_a_changed_stored_output_makes_nbval_fail(tmp_path):
    """Edit one compared number in a copy of a real chapter: nbval must catch it."""
    nb = load(ROOT / "book" / "getting_started.ipynb")
    target = None
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", ""))
            if out.get("output_type") == "stream" and "integral of p(x) over the grid: 1.0000" in text:
                out["text"] = text.replace("1.0000", "1.0001", 1)
                target = cell
    assert target is not None and "nbval-ignore-output" not in tags(target)
    copy = tmp_path / "changed.ipynb"
    copy.write_text(json.dumps(nb))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(copy), "--nbval-sanitize-with",
         str(ROOT / "nbval_sanitize.cfg"), "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "1.0001" in proc.stdout, proc.stdout[-3000:]
