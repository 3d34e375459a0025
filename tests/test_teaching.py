"""The teaching kit (genimg_lib.teaching): student editions and the class grader.

A synthetic chapter follows the exercise convention (CONTRIBUTING.md) with the real
checkers generative_models.1 and .2; a synthetic class hands in its student edition
(looping forever, twice; solved; partly wrong; crashing; renamed; empty; untouched;
not a notebook; killing its kernel) and the grader's CSV is compared with the expected one, cell by cell, and with
the CSV shown on the instructors' page (book/teaching/), which this file regenerates:

    GENIMG_REGENERATE_TEACHING=1 .venv/bin/python -m pytest tests/test_teaching.py -k course_page

The last tests apply to the book's own chapters as soon as they follow the convention.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from conftest import ROOT
from genimg_lib import cli, exercises, teaching

CHAPTER = "generative_models"
PAGE_DIR = ROOT / "book" / "teaching"
# Per notebook, all cells together. Every synthetic notebook but the two looping ones
# runs in a few seconds on an idle CPU (importing genimg_lib.exercises, two checks; the
# kernel's start is not counted), about 20 s on a heavily shared one; the looping ones
# use it all, in parallel with the others (--jobs).
CLASS_TIMEOUT_S = 60
CLASS_JOBS = 4
# The right answers, as the solution cell computes them; the checkers compute their own.
SOLUTION_LINES = {
    1: "answer_1 = 100 / (28 * 28 * math.log(2))  # nats per image -> bits per pixel",
    2: "answer_2 = -0.5 * math.log(2 * math.pi * math.e * 2.0**2)  # minus the entropy",
}
SOLUTION_TEXT = (
    "## Solutions\n\n<details><summary>Solution</summary>\n\n"
    "1. Divide by the 784 pixels and by $\\ln 2$: $100 / (784 \\ln 2)$ bits per dimension.\n"
    "2. Nothing beats $p_\\text{data}$ itself: $-\\tfrac12 \\ln(2\\pi e \\sigma^2)$ with $\\sigma = 2$.\n\n"
    "</details>"
)


def stream(text: str):
    return new_output("stream", name="stdout", text=text)


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def exercise_cell(n: int, answer: str = "...") -> nbformat.NotebookNode:
    cell = new_code_cell(
        f"# Exercise {n}: replace ... with your answer\nanswer_{n} = {answer}\ncheck(\"{CHAPTER}.{n}\", answer_{n})",
        metadata={"tags": ["exercise"]},
        execution_count=3 + n,
    )
    cell.outputs = [stream(f"{CHAPTER}.{n}: not answered yet (replace ... with your answer)\n")]
    return cell


def full_chapter(prefilled_2: str | None = None) -> nbformat.NotebookNode:
    """A small full edition, stored as if executed, ending as the convention says."""
    body = new_code_cell('print(f"one nat is {1 / math.log(2):.4f} bits")', execution_count=2)
    body.outputs = [stream("one nat is 1.4427 bits\n")]
    solution_code = new_code_cell(
        "# @title Solution code\n" + "\n".join(SOLUTION_LINES.values())
        + f'\ncheck("{CHAPTER}.1", answer_1)\ncheck("{CHAPTER}.2", answer_2)',
        metadata={"tags": ["solution", "hide-input"], "jupyter": {"source_hidden": True}, "cellView": "form"},
        execution_count=6,
    )
    solution_code.outputs = [stream(f"{CHAPTER}.1: correct.\n{CHAPTER}.2: correct.\n")]
    return new_notebook(cells=[
        new_markdown_cell("# Likelihood in two exercises\n\nA synthetic chapter for the tests."),
        new_code_cell("import math\n\nfrom genimg_lib.exercises import check", metadata={"tags": ["nbval-ignore-output"]},
                      execution_count=1),
        body,
        new_markdown_cell("## Summary\n\n- A likelihood in nats converts to bits per dimension."),
        new_markdown_cell("## Exercises\n\n1. **Bits per dimension.** An NLL of 100 nats on MNIST...\n"
                          "2. **The best log-likelihood.** On $\\mathcal N(0, 2^2)$..."),
        exercise_cell(1),
        exercise_cell(2, prefilled_2 or "..."),
        new_markdown_cell(SOLUTION_TEXT, metadata={"tags": ["solution"]}),
        solution_code,
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def text_of(nb) -> str:
    """Everything a reader of the notebook can see: sources, outputs and metadata."""
    parts = [json.dumps(nb.get("metadata", {}))]
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(json.dumps(out))
            parts.append("".join(out.get("text", "")))
            parts += ["".join(v) if isinstance(v, list) else str(v) for v in out.get("data", {}).values()]
    return "\n".join(parts)


def solution_leaks(full, student) -> tuple[list[str], list[str]]:
    """(what was searched, what was found): every line of the full edition's solution cells
    that no other cell of the full edition contains, searched for in the student edition."""
    elsewhere = "\n".join(c.source for c in full.cells if "solution" not in tags(c))
    searched = []
    for cell in full.cells:
        if "solution" in tags(cell):
            for line in cell.source.splitlines():
                line = line.strip()
                if len(line) >= 8 and line not in elsewhere:
                    searched.append(line)
    student_text = text_of(student)
    return searched, [line for line in searched if line in student_text]


def paste_solutions(nb, answers: dict[int, str]) -> nbformat.NotebookNode:
    """The student's edit: write ``answer_n = <value>`` in place of the blank of exercise n."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if "exercise" in tags(cell):
            for n, line in answers.items():
                cell.source = cell.source.replace(f"answer_{n} = ...", line)
    return nb


# ---------------------------------------------------------------------------
# The student edition
# ---------------------------------------------------------------------------
def test_student_edition_has_no_solution_and_blank_exercises(tmp_path):
    full = full_chapter()
    nbformat.write(full, tmp_path / f"{CHAPTER}.ipynb")
    edition = teaching.make_student_edition(tmp_path / f"{CHAPTER}.ipynb", tmp_path / "release")
    student = nbformat.read(edition.path, as_version=4)

    assert edition.path == tmp_path / "release" / f"{CHAPTER}.ipynb"
    assert (edition.chapter, edition.keys, edition.removed_cells) == (CHAPTER, [f"{CHAPTER}.1", f"{CHAPTER}.2"], 2)
    assert not [c for c in student.cells if "solution" in tags(c)]
    searched, found = solution_leaks(full, student)
    assert len(searched) >= 6, searched  # the search has something to look for,
    assert solution_leaks(full, full)[1] == searched  # and finds it where it is
    assert found == [], f"solution text survives in the student edition: {found}"
    assert "Solution" not in text_of(student) and "correct." not in text_of(student)

    ex = [c for c in student.cells if "exercise" in tags(c)]
    assert [c.source.splitlines()[1] for c in ex] == ["answer_1 = ...", "answer_2 = ..."]
    assert all(c.outputs == [] and c.execution_count is None for c in ex)
    body = [c for c in student.cells if c.cell_type == "code" and "one nat is" in c.source][0]
    assert body.outputs[0]["text"] == "one nat is 1.4427 bits\n"  # an output that reveals nothing stays
    assert student.metadata["genimg"] == {"edition": "student", "chapter": CHAPTER}


def test_an_answer_left_in_an_exercise_cell_is_blanked(tmp_path):
    full = full_chapter(prefilled_2="(\n    -0.5 * math.log(2 * math.pi * math.e * 4.0)\n)")
    nbformat.write(full, tmp_path / f"{CHAPTER}.ipynb")
    edition = teaching.make_student_edition(tmp_path / f"{CHAPTER}.ipynb", tmp_path / "out" / "renamed.ipynb")
    student = nbformat.read(edition.path, as_version=4)
    ex2 = [c for c in student.cells if "exercise" in tags(c)][1]
    assert edition.blanked == ["answer_2"]
    assert ex2.source == f'# Exercise 2: replace ... with your answer\nanswer_2 = ...\ncheck("{CHAPTER}.2", answer_2)'
    assert "math.e * 4.0" not in text_of(student)


def test_student_edition_refuses_what_it_cannot_make_safely(tmp_path):
    path = tmp_path / f"{CHAPTER}.ipynb"
    old_ending = full_chapter()
    for cell in old_ending.cells:
        cell.metadata["tags"] = [t for t in tags(cell) if t not in ("exercise", "solution")]
    nbformat.write(old_ending, path)
    with pytest.raises(ValueError, match="no code cell is tagged 'exercise'"):
        teaching.make_student_edition(path, tmp_path / "out")

    leaky = full_chapter()
    leaky.cells.insert(3, new_code_cell(f'check("{CHAPTER}.1", 100 / (784 * math.log(2)))'))
    nbformat.write(leaky, path)
    with pytest.raises(ValueError, match="cell 4: calls check.*give the answer away"):
        teaching.make_student_edition(path, tmp_path / "out")

    direct = full_chapter()
    direct.cells[5].source = f'check("{CHAPTER}.1", 0.184)'
    nbformat.write(direct, path)
    with pytest.raises(ValueError, match=r"receives the answer directly \('0.184'\)"):
        teaching.make_student_edition(path, tmp_path / "out")

    nbformat.write(full_chapter(), path)
    with pytest.raises(ValueError, match="is the full edition itself"):
        teaching.make_student_edition(path, tmp_path)
    shutil.copy(path, tmp_path / "out.ipynb")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        teaching.make_student_edition(path, tmp_path / "out.ipynb")
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4) == nbformat.read(path, as_version=4)


# ---------------------------------------------------------------------------
# A synthetic class, graded through the command line
# ---------------------------------------------------------------------------
RIGHT = {n: line.split("  #")[0] for n, line in SOLUTION_LINES.items()}
SIGN_SLIP = "answer_2 = 0.5 * math.log(2 * math.pi * math.e * 2.0**2)"  # the entropy, not minus it


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Release the synthetic chapter and grade the class's submissions, both by the CLI."""
    root = tmp_path_factory.mktemp("course")
    nbformat.write(full_chapter(), root / f"{CHAPTER}.ipynb")
    release = root / "release"
    cmd = [sys.executable, "-m", "genimg_lib"]
    made = subprocess.run(cmd + ["student-edition", str(root / f"{CHAPTER}.ipynb"), "--out", str(release)],
                          env=env(), capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    student = nbformat.read(release / f"{CHAPTER}.ipynb", as_version=4)

    subs = root / "submissions"
    crashing = paste_solutions(student, {1: RIGHT[1]})
    crashing.cells.insert(2, new_code_cell("scale = 1 / 0"))
    # Two infinite loops; they sleep, leaving the CPU to the other notebooks. The second
    # swallows the interrupt with a bare except, as students' retry loops do.
    looping = paste_solutions(student, {1: RIGHT[1], 2: "answer_2 = 0.0\nimport time\n"
                                        "while answer_2 < 1:\n    time.sleep(0.5)"})
    stubborn = paste_solutions(student, {1: RIGHT[1], 2: "answer_2 = 0.0\nimport time\n"
                                         "while answer_2 < 1:\n    try:\n        time.sleep(0.5)\n"
                                         "    except:\n        pass"})
    dying = paste_solutions(student, {1: RIGHT[1], 2: RIGHT[2]})
    dying.cells.insert(6, new_code_cell("import os\nos._exit(1)  # as a segfault or running out of memory would"))
    class_ = {
        f"ali/{CHAPTER}.ipynb": looping,
        f"amy/{CHAPTER}.ipynb": stubborn,
        f"ben/{CHAPTER}.ipynb": paste_solutions(student, RIGHT),
        f"cat/{CHAPTER}.ipynb": paste_solutions(student, {1: RIGHT[1], 2: SIGN_SLIP}),
        f"dan/{CHAPTER}.ipynb": crashing,
        "eli/homework_final.ipynb": paste_solutions(student, RIGHT),
        f"fay/{CHAPTER}.ipynb": new_notebook(),
        f"gus__{CHAPTER}.ipynb": student,
    }
    for rel, nb in class_.items():
        (subs / rel).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, subs / rel)
    nbformat.write(dying, subs / f"ivy__{CHAPTER}.ipynb")
    (subs / "hal").mkdir()
    (subs / "hal" / f"{CHAPTER}.pdf").write_bytes(b"%PDF-1.4 not a notebook\n")

    out = root / "graded"
    graded = subprocess.run(cmd + ["grade", str(subs), "--out", str(out), "--timeout", str(CLASS_TIMEOUT_S), "--jobs", str(CLASS_JOBS)],
                            env=env(), capture_output=True, text=True, timeout=600)
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    return {"root": root, "release": release, "subs": subs, "out": out, "stdout": graded.stdout}


EXPECTED_CSV = f"""\
student,{CHAPTER}.1,{CHAPTER}.2,correct,notes
ali,correct,not answered,1,"timed out: cell 7 ('answer_2 = 0.0') was still running when the {CLASS_TIMEOUT_S} s limit was reached; it was interrupted, and the cells after it did not run"
amy,correct,not answered,1,"timed out: cell 7 ('answer_2 = 0.0') was still running when the {CLASS_TIMEOUT_S} s limit was reached; it did not stop when interrupted, so the kernel was shut down, and the cells after it did not run"
ben,correct,correct,2,
cat,correct,wrong,1,
dan,correct,not answered,1,crashed: cell 3 ('scale = 1 / 0') raised ZeroDivisionError: division by zero; the other cells still ran
eli,correct,correct,2,renamed: homework_final.ipynb holds {CHAPTER} (expected {CHAPTER}.ipynb)
fay,not answered,not answered,0,{CHAPTER}.ipynb is empty (no code to run)
gus,not answered,not answered,0,
hal,not submitted,not submitted,0,hal/{CHAPTER}.pdf is not a notebook (.ipynb): not graded
ivy,correct,not answered,1,cell 7 ('import os'): the kernel died while running it; the cells after it did not run
"""


def test_the_class_gets_the_expected_csv(graded_class):
    assert (graded_class["out"] / "grades.csv").read_text() == EXPECTED_CSV


def test_the_student_edition_runs_blank_and_every_checker_says_not_answered(graded_class):
    """gus handed in the student edition untouched: it ran top to bottom without an error,
    and each exercise cell printed the checker's own 'not answered yet'."""
    ran = nbformat.read(graded_class["out"] / "executed" / "gus" / f"{CHAPTER}.ipynb", as_version=4)
    code = [c for c in ran.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    blank_message = exercises.grade(f"{CHAPTER}.1", ...)[1]
    for n, cell in enumerate([c for c in code if "exercise" in tags(c)], start=1):
        assert "".join(o.get("text", "") for o in cell.outputs) == f"{CHAPTER}.{n}: not answered yet {blank_message}\n"
    feedback = " ".join((graded_class["out"] / "feedback" / "gus.txt").read_text().split())
    assert f"{CHAPTER}.1: not answered: {blank_message}" in feedback


def test_feedback_quotes_the_checkers_messages(graded_class):
    feedback = (graded_class["out"] / "feedback" / "cat.txt").read_text()
    hint = exercises.grade(f"{CHAPTER}.2", 0.5 * math.log(2 * math.pi * math.e * 4.0))[1]
    assert hint  # the checker does give a hint for this slip
    assert feedback.startswith(f"Feedback for cat\n\n{CHAPTER} ({CHAPTER}.ipynb): 1 of 2 correct\n"
                               f"  {CHAPTER}.1: correct.\n  {CHAPTER}.2: not yet. ")
    assert " ".join(feedback.split()).endswith(f"{CHAPTER}.2: not yet. {hint}")  # wrapped, not cut
    assert max(len(line) for line in feedback.splitlines()) <= 78
    ali = " ".join((graded_class["out"] / "feedback" / "ali.txt").read_text().split())
    assert f'{CHAPTER}.2: not answered: check("{CHAPTER}.2", ...) never ran.' in ali
    assert "timed out" in ali.split("Notes:")[1]


def test_the_grader_prints_each_notebook_and_keeps_the_executed_copies(graded_class):
    for rel in (f"ben/{CHAPTER}.ipynb", "eli/homework_final.ipynb", f"gus__{CHAPTER}.ipynb"):
        assert rel in graded_class["stdout"]
    assert (graded_class["out"] / "executed" / "eli" / "homework_final.ipynb").exists()
    crashed = nbformat.read(graded_class["out"] / "executed" / "dan" / f"{CHAPTER}.ipynb", as_version=4)
    assert [o["ename"] for c in crashed.cells for o in c.get("outputs", []) if o["output_type"] == "error"] == [
        "ZeroDivisionError"
    ]


def test_course_page_shows_what_the_synthetic_class_produces(graded_class):
    """book/teaching/ holds the grader's output for this class; the instructors' page
    includes it. Regenerate with GENIMG_REGENERATE_TEACHING=1."""
    produced = {"grades.csv": (graded_class["out"] / "grades.csv").read_text()}
    for path in sorted((graded_class["out"] / "feedback").glob("*.txt")):
        produced[f"feedback/{path.name}"] = path.read_text()
    produced["submissions.txt"] = "\n".join(
        str(p.relative_to(graded_class["subs"])) for p in sorted(graded_class["subs"].rglob("*")) if p.is_file()
    ) + "\n"
    if os.environ.get("GENIMG_REGENERATE_TEACHING") == "1":
        shutil.rmtree(PAGE_DIR, ignore_errors=True)
        for rel, text in produced.items():
            (PAGE_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            (PAGE_DIR / rel).write_text(text)
    committed = {str(p.relative_to(PAGE_DIR)): p.read_text() for p in sorted(PAGE_DIR.rglob("*")) if p.is_file()}
    assert committed == produced, (
        "book/teaching/ differs from what the synthetic class produces; regenerate it with "
        "GENIMG_REGENERATE_TEACHING=1 .venv/bin/python -m pytest tests/test_teaching.py -k course_page"
    )
    page = (ROOT / "book" / "instructors.md").read_text()
    cycle = page[page.index("## Course cycle"):]
    assert f"--timeout {CLASS_TIMEOUT_S}`" in cycle, "the page must state the limit the class was graded with"
    for included in ("teaching/grades.csv", "teaching/submissions.txt", "teaching/feedback/cat.txt",
                     "teaching/feedback/ali.txt"):
        assert included in cycle, f"the course cycle section no longer shows {included}"


def test_readme_and_page_give_both_commands():
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "book" / "instructors.md").read_text()
    for text in (readme, page):
        assert "python -m genimg_lib student-edition book/ --out release/" in text
        assert "python -m genimg_lib grade submissions/ --out graded/" in text


# ---------------------------------------------------------------------------
# The reports' bookkeeping, and bad arguments
# ---------------------------------------------------------------------------
def test_reports_mark_chapters_not_submitted_and_duplicates(tmp_path):
    def sub(student, file, chapter, verdicts):
        keys = exercises.checker_keys(chapter)
        return teaching.Submission(student, file, chapter, {k: {"verdict": v, "message": ""} for k, v in zip(keys, verdicts)})

    report = teaching.write_reports([
        sub("ann", f"{CHAPTER}.ipynb", CHAPTER, ["correct", "correct"]),
        sub("ann", "getting_started.ipynb", "getting_started", ["correct", "wrong"]),
        sub("ben", f"{CHAPTER} (1).ipynb", CHAPTER, ["wrong", "wrong"]),
        sub("ben", f"{CHAPTER}.ipynb", CHAPTER, ["correct", "not answered"]),
    ], tmp_path)
    # columns in book order (getting_started comes first), whatever the order of submission
    assert report.keys == exercises.checker_keys("getting_started") + exercises.checker_keys(CHAPTER)
    assert report.csv_path.read_text() == (
        f"student,getting_started.1,getting_started.2,{CHAPTER}.1,{CHAPTER}.2,correct,notes\n"
        "ann,correct,wrong,correct,correct,3,\n"
        f'ben,not submitted,not submitted,correct,not answered,1,"2 notebooks hold {CHAPTER} '
        f'({CHAPTER} (1).ipynb, {CHAPTER}.ipynb); the grades are those of {CHAPTER}.ipynb"\n'
    )


def test_command_line_names_the_bad_argument(tmp_path, capsys):
    assert cli.main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "graded")]) == 2
    assert "expected a folder of submissions" in capsys.readouterr().err
    assert cli.main(["student-edition", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path)]) == 2
    assert "missing.ipynb does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli.main(["grade", str(tmp_path), "--out", str(tmp_path / "x"), "--timeout", "0"])
    assert stop.value.code == 2 and "expected a positive number of seconds, got 0.0" in capsys.readouterr().err
    old_ending = full_chapter()
    for cell in old_ending.cells:
        cell.metadata["tags"] = []
    nbformat.write(old_ending, tmp_path / f"{CHAPTER}.ipynb")
    assert cli.main(["student-edition", str(tmp_path), "--out", str(tmp_path / "release")]) == 1
    assert "not made: generative_models.ipynb: no code cell is tagged 'exercise'" in capsys.readouterr().err
    assert not (tmp_path / "release").exists()


def test_grader_refuses_to_write_inside_the_submissions(tmp_path):
    with pytest.raises(ValueError, match="inside the submissions folder"):
        teaching.grade_submissions(tmp_path, tmp_path / "graded")
    with pytest.raises(ValueError, match="expected a folder of submissions"):
        teaching.grade_submissions(tmp_path / "missing", tmp_path / "graded")


# ---------------------------------------------------------------------------
# The book's chapters, once they follow the exercise convention
# ---------------------------------------------------------------------------
BOOK = sorted((ROOT / "book").glob("*.ipynb"))


def converted(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any(c.cell_type == "code" and "exercise" in tags(c) for c in nb.cells)


def not_converted_reason(path: Path) -> str:
    return (f"{path.name} has no cell tagged 'exercise' yet (old ending: an admonition dropdown); "
            "this test covers it as soon as it follows the exercise convention")


@pytest.mark.parametrize("path", BOOK, ids=lambda p: p.name)
def test_real_chapter_student_edition_leaks_no_solution(path, tmp_path):
    if not converted(path):
        pytest.skip(not_converted_reason(path))
    full = nbformat.read(path, as_version=4)
    edition = teaching.make_student_edition(path, tmp_path)
    student = nbformat.read(edition.path, as_version=4)
    assert edition.chapter == path.stem, "checker keys are the notebook's file name plus the exercise number"
    assert edition.keys == exercises.checker_keys(path.stem)
    searched, found = solution_leaks(full, student)
    assert searched and solution_leaks(full, full)[1] == searched
    assert found == [], f"{path.name}: solution text survives in the student edition: {found}"
    for cell in student.cells:
        if "exercise" in tags(cell):  # every check(...) gets a name bound to the blank
            tree = ast.parse(cell.source)
            blanks = {t.id for node in tree.body if isinstance(node, ast.Assign)
                      and isinstance(node.value, ast.Constant) and node.value.value is Ellipsis
                      for t in node.targets if isinstance(t, ast.Name)}
            for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "check"]:
                assert isinstance(call.args[1], ast.Name) and call.args[1].id in blanks, cell.source


def test_one_real_chapter_student_edition_runs_with_every_checker_not_answered(tmp_path):
    """The quickest converted chapter (by the run time its title cell states) runs top to
    bottom as a student edition; every checker reports 'not answered' (CI time: one chapter)."""
    chapters = [p for p in BOOK if converted(p)]
    if not chapters:
        pytest.skip("no chapter has cells tagged 'exercise' yet; this runs the quickest one once one does")

    def stated_seconds(path: Path) -> float:
        title = nbformat.read(path, as_version=4).cells[0].source
        found = re.search(r"about (\d+) s", title)
        return float(found.group(1)) if found else math.inf

    path = min(chapters, key=stated_seconds)
    edition = teaching.make_student_edition(path, tmp_path / "release")
    sub = teaching.grade_notebook(edition.path, "blank", path.name, timeout=600)
    assert sub.notes == [], sub.notes
    blank = exercises.grade(edition.keys[0], ...)[1]
    assert sub.verdicts == {k: {"verdict": "not answered", "message": blank} for k in exercises.checker_keys(path.stem)}
