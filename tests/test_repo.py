"""The repository's promises: README commands, CI, requirements, packaging and site assets."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_gives_two_commands_and_ci_runs_exactly_them():
    commands = re.findall(r"```bash\n(.+?)\n```", README.split("## Two commands")[1].split("###")[0], re.S)
    assert commands == ["bash scripts/setup.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert re.search(rf"^(\S+=\S+ )*{re.escape(command)}$", ci, re.M), f".ci/run does not run {command!r}"


def test_requirements_have_lower_bounds_and_no_hard_pins():
    lines = [l.split("#")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = [l for l in lines if l]
    assert reqs
    for req in reqs:
        assert "==" not in req, f"hard pin in requirements.txt: {req}"
        assert ">=" in req, f"no lower bound in requirements.txt: {req}"
    names = {re.split(r"[<>=!\[ ]", r)[0].lower() for r in reqs}
    for needed in ("torch", "jupyter-book", "matplotlib", "ipywidgets", "nbval", "pytest", "tqdm",
                   "mlxtend", "scikit-learn", "numpy", "sphinx-mathjax-offline", "playwright"):
        assert needed in names, f"{needed} missing from requirements.txt"
    assert "jupyter-book>=1.0,<2" in reqs  # Jupyter Book 2 fetches its theme online


def test_package_dependencies_are_in_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = (ROOT / "requirements.txt").read_text()
    for dep in project["dependencies"]:
        assert dep in reqs, f"pyproject dependency {dep} is not in requirements.txt"


def test_site_assets_come_from_the_site_not_a_cdn():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert "sphinx-mathjax-offline" in config["extra_extensions"]
    for url in config["config"]["nb_ipywidgets_js"]:
        assert not url.startswith(("http:", "https:", "//")), url
    # Jupyter Book links every .js/.css under a top-level _static into every page.
    assert not (ROOT / "_static").exists()


def test_licenses_exist():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "CC BY 4.0" in (ROOT / "LICENSE-CONTENT.md").read_text()


def test_api_reference_lists_every_module():
    api = (ROOT / "book" / "api.md").read_text()
    modules = sorted(p.stem for p in (ROOT / "genimg_lib").glob("*.py") if not p.stem.startswith("_"))
    missing = [m for m in modules if f".. automodule:: genimg_lib.{m}\n" not in api]
    assert not missing, f"book/api.md does not document: {missing}"


def test_instructors_page_maps_every_exercise_checker_and_every_chapter():
    """The exercise map in book/instructors.md lists exactly the registered checkers,
    and the 8-session plan covers every chapter of the toc."""
    from genimg_lib import exercises

    page = (ROOT / "book" / "instructors.md").read_text()
    listed = set(re.findall(r"\| `([a-z0-9_]+\.\d+)` \|", page))
    registered = set(exercises._CHECKERS)
    assert listed == registered, (
        f"book/instructors.md's exercise map is out of date: missing {sorted(registered - listed)}, "
        f"unknown {sorted(listed - registered)}"
    )
    plan8 = page[page.index("**Eight sessions"):page.index("## Map of the graded exercises")]
    toc = (ROOT / "_toc.yml").read_text()
    chapters = [c for c in re.findall(r"file: book/(\w+)", toc) if (ROOT / "book" / f"{c}.ipynb").exists()]
    missing = [c for c in chapters if f"{{doc}}`{c}`" not in plan8]
    assert not missing, f"the 8-session plan in book/instructors.md does not cover {missing}"


def test_bibliography_lists_each_paper_once():
    """One entry per paper: no two entries share a title (issue #12 item 20)."""
    import re

    from pybtex.database import parse_file  # what sphinxcontrib-bibtex reads it with

    text = (ROOT / "references.bib").read_text()
    entries = re.findall(r"@\w+\{([^,]+),(.*?)\n\}", text, flags=re.S)
    assert len(entries) >= 20
    parsed = parse_file(ROOT / "references.bib").entries  # a broken entry fails here
    assert sorted(parsed) == sorted(re.findall(r"^@\w+\{([^,]+),", text, flags=re.M))
    assert all("year" in e.fields and "title" in e.fields for e in parsed.values())
    titles = {}
    for key, body in entries:
        m = re.search(r"title\s*=\s*[{\"](.+?)[}\"],?\s*\n", body, flags=re.S)
        assert m, f"references.bib: entry {key} has no title"
        title = re.sub(r"[^a-z0-9]", "", m.group(1).lower())
        assert title not in titles, f"references.bib: {key} and {titles[title]} are the same paper"
        titles[title] = key


def test_library_modules_import_each_other_without_a_circle():
    """The import graph of genimg_lib (every import, also inside functions) has no cycle,
    so that each module imports on its own, in any order (a circle through
    checkpoints -> invert -> train -> checkpoints once broke `import genimg_lib.train`)."""
    import ast

    pkg = ROOT / "genimg_lib"
    graph = {}
    for path in pkg.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genimg_lib."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.ImportFrom) and node.module == "genimg_lib":
                deps.update(a.name for a in node.names if (pkg / f"{a.name}.py").exists())
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("genimg_lib."))
        graph[path.stem] = deps - {path.stem}
    assert len(graph) >= 20 and "checkpoints" in graph["train"]
    state: dict = {}

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
