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
        "# Colab (or any machine without genimg_lib): install the book's library.\n"
        "# Elsewhere: no-op.\n"
        "import importlib.util, subprocess, sys\n"
        'if importlib.util.find_spec("genimg_lib") is None:\n'
        f'    url = "git+{url}"\n'
        '    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", url])\n'
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
    for heading in ("## Summary", "## Exercises", "## Solutions"):
        assert heading in text, f"{nb_path.name}: missing '{heading}'"
    assert ":::{admonition}" not in text, f"{nb_path.name}: admonitions do not fold in JupyterLab or Colab; use <details>"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_follow_the_convention(nb_path):
    """Blank exercise cells with the chapter's checker keys, then folded solutions (CONTRIBUTING.md)."""
    from genimg_lib.exercises import checker_keys

    nb = load(nb_path)
    chapter = nb_path.stem
    cells = nb["cells"]
    exercise = [c for c in cells if "exercise" in tags(c)]
    solution = [c for c in cells if "solution" in tags(c)]
    keys = checker_keys(chapter)
    assert keys, f"{nb_path.name}: no checker is registered for this chapter in genimg_lib.exercises"
    in_exercises = re.findall(r'check\("([^"]+)"', "".join(source(c) for c in exercise))
    assert in_exercises == keys, f"{nb_path.name}: exercise cells check {in_exercises}, the chapter's checkers are {keys}"
    for cell in exercise:
        assert cell["cell_type"] == "code" and re.search(r"= \.\.\.\s*$", source(cell), re.M), (
            f"{nb_path.name}: an exercise cell must hold a blank 'answer_n = ...'"
        )
        printed = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
        assert "not answered yet" in printed, f"{nb_path.name}: a blank exercise must print 'not answered yet'"
    md = [c for c in solution if c["cell_type"] == "markdown"]
    code = [c for c in solution if c["cell_type"] == "code"]
    assert len(md) == 1 and len(code) == 1, f"{nb_path.name}: one solution text and one solution code cell"
    assert source(md[0]).lstrip().startswith("<details>") and source(md[0]).rstrip().endswith("</details>"), (
        f"{nb_path.name}: the solution text sits inside <details>...</details>, which folds everywhere"
    )
    meta = code[0]["metadata"]
    assert "hide-input" in tags(code[0]) and meta.get("jupyter", {}).get("source_hidden") is True, (
        f"{nb_path.name}: the solution code is folded on the website (hide-input) and in JupyterLab (source_hidden)"
    )
    assert meta.get("cellView") == "form" and source(code[0]).startswith("# @title"), (
        f"{nb_path.name}: the solution code is folded in Colab (cellView form, # @title)"
    )
    solved = re.findall(r'check\("([^"]+)"', source(code[0]))
    assert solved == keys, f"{nb_path.name}: the solution cell checks {solved}, expected {keys}"
    printed = "".join("".join(o.get("text", "")) for o in code[0].get("outputs", []))
    assert printed.count(": correct.") == len(keys), f"{nb_path.name}: every solution must grade correct"
    index = cells.index(code[0])
    assert not [c for c in cells[index + 1:] if c["cell_type"] == "code"], (
        f"{nb_path.name}: no code after the solutions (it would print an answer in plain view)"
    )
    for cell in code_cells(nb):
        for out in cell.get("outputs", []):
            assert "".join(out.get("data", {}).get("text/plain", "")) not in ("True", "False"), (
                f"{nb_path.name}: a stray True/False is displayed (end the cell with a print or a semicolon)"
            )


def _png_widths(cell: dict) -> list[int]:
    import base64
    import struct

    widths = []
    for out in cell.get("outputs", []):
        png = out.get("data", {}).get("image/png")
        if png:
            raw = base64.b64decode(png if isinstance(png, str) else "".join(png))
            widths.append(struct.unpack(">I", raw[16:20])[0])  # the IHDR width
    return widths


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_pages_fit_the_column(nb_path):
    """Code and printed output at most 80 characters a line; stored figures at most the column's 690 px."""
    nb = load(nb_path)
    wide_code, wide_out, wide_fig = [], [], []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        wide_code += [(i, line) for line in source(cell).splitlines() if len(line) > 80]
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else "".join(
                out.get("data", {}).get("text/plain", "") if "image/png" not in out.get("data", {}) else "")
            if "widget-view+json" in str(out.get("data", {}).keys()):
                continue
            wide_out += [(i, line) for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if len(line) > 80]
        wide_fig += [(i, w) for w in _png_widths(cell) if w > 690]
    assert not wide_code, f"{nb_path.name}: code lines over 80 characters: {wide_code[:5]}"
    assert not wide_out, f"{nb_path.name}: output lines over 80 characters: {wide_out[:5]}"
    assert not wide_fig, f"{nb_path.name}: figures wider than the column (cell, px): {wide_fig}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_have_captions_and_alt_text(nb_path):
    nb = load(nb_path)
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and _png_widths(cell) and "remove-output" not in tags(cell):
            mystnb = cell["metadata"].get("mystnb", {})
            if not (mystnb.get("figure", {}).get("caption") and mystnb.get("image", {}).get("alt")):
                missing.append(i)
    assert not missing, f"{nb_path.name}: figure cells without a caption and alt text (mystnb metadata): {missing}"


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
