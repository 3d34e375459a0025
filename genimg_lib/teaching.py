"""The teaching kit: student editions of the chapters, and a grader for a class's notebooks.

Chapter: *For instructors* (appendix), section "Course cycle". The cycle is
release, collect, grade, return:

- `make_student_edition` removes a chapter's solutions and turns each exercise cell
  into a blank (``answer_n = ...``) that `genimg_lib.exercises.check` reports as
  "not answered".
- `grade_submissions` executes every submitted notebook in a fresh kernel under a
  wall-clock limit, reads the checkers' verdicts out of the kernel
  (`genimg_lib.exercises.verdicts`), and writes one CSV (student x exercise) and one
  feedback file per student.

Cells are recognised by the tags of the exercise convention (CONTRIBUTING.md):
``exercise`` on each exercise cell, ``solution`` on the solution cells. A notebook's
chapter is recognised by the checker keys in its ``check("<chapter>.<n>", ...)``
calls, so a renamed file is still graded (and the rename reported).

Submissions are laid out one folder per student, ``<folder>/<student>/<chapter>.ipynb``,
or flat, ``<folder>/<student>__<chapter>.ipynb``.

Command line (`genimg_lib.cli`)::

    python -m genimg_lib student-edition book/ --out release/
    python -m genimg_lib grade submissions/ --out graded/ --timeout 600
"""

from __future__ import annotations

import ast
import copy
import csv
import io
import json
import math
import re
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from genimg_lib import exercises

#: The tag of an exercise cell (a blank ``answer_n = ...`` and a ``check`` call).
EXERCISE_TAG = "exercise"
#: The tag of a solution cell (markdown or code); student editions drop these cells.
SOLUTION_TAG = "solution"
#: What a submitted exercise can be in the CSV, besides the three verdicts of
#: `genimg_lib.exercises` (``"correct"``, ``"wrong"``, ``"not answered"``).
NOT_SUBMITTED = "not submitted"

_KEY = re.compile(r"""\bcheck\(\s*["']([A-Za-z0-9_]+)\.(\d+)["']""")
_ANSWER_NAME = re.compile(r"answer_\d+\Z")
_SOLUTIONS_HEADING = re.compile(r"\A\s*#+\s*Solutions?\s*\Z")
_VERDICT_LINE = re.compile(r"\b[A-Za-z0-9_]+\.\d+: (correct|not yet)\.")
# Evaluated in the student's kernel (as a silent user expression, with no output and
# no history): the verdicts recorded by every check(...) that has run, as JSON; "{}" if
# genimg_lib.exercises was never imported (then no check has run; it is not imported here).
_VERDICTS_EXPRESSION = (
    "__import__('json').dumps(getattr(__import__('sys').modules.get('genimg_lib.exercises'), "
    "'verdicts', dict)())"
)
_TIME_LIMIT_ENAME = "GradingTimeLimit"


# ---------------------------------------------------------------------------
# Release: the student edition of a chapter
# ---------------------------------------------------------------------------
@dataclass
class StudentEdition:
    """What `make_student_edition` wrote: the path, the chapter, its exercise keys,
    how many solution cells it removed, which ``answer_n`` it blanked, and how many
    cells' outputs it cleared."""

    path: Path
    chapter: str
    keys: list[str]
    removed_cells: int
    blanked: list[str]
    cleared_outputs: int


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _keys_in(source: str) -> list[str]:
    return [f"{chapter}.{n}" for chapter, n in _KEY.findall(source)]


def _is_ellipsis(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _blank_exercise_source(source: str, where: str) -> tuple[str, list[str]]:
    """Replace the value of every top-level ``answer_n = <value>`` by ``...``.

    Returns the new source and the names it blanked. Raises ValueError when the cell is
    not Python, or passes an answer to ``check`` other than through a name.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{where}: the exercise cell is not valid Python ({err.msg}, line {err.lineno})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check" and len(node.args) >= 2:
            answer = node.args[1]
            if not (isinstance(answer, ast.Name) or _is_ellipsis(answer)):
                raise ValueError(
                    f"{where}: check(...) receives the answer directly "
                    f"({ast.get_source_segment(source, answer)!r}); expected the convention "
                    "'answer_n = ...' then 'check(\"<chapter>.<n>\", answer_n)', so that the "
                    "student edition can blank it. Fix the exercise cell."
                )
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def position(lineno: int, col_offset: int) -> int:  # ast counts columns in UTF-8 bytes
        return offsets[lineno - 1] + len(lines[lineno - 1].encode()[:col_offset].decode())

    edits: list[tuple[int, int]] = []
    blanked: list[str] = []
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name) and _ANSWER_NAME.match(t.id)]
        if not names or _is_ellipsis(node.value):
            continue
        # from the '=' after the last target (or annotation) to the statement's end, so
        # that parentheses around the value go too
        before = node.annotation if isinstance(node, ast.AnnAssign) else targets[-1]
        start = source.index("=", position(before.end_lineno, before.end_col_offset)) + 1
        edits.append((start, position(node.end_lineno, node.end_col_offset)))
        blanked += names
    for start, end in sorted(edits, reverse=True):
        source = source[:start] + " ..." + source[end:]
    return source, blanked


def _output_text(output: Any) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    elif output.get("output_type") == "error":
        text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def _chapter_of_keys(keys: Sequence[str], where: str) -> str:
    chapters = sorted({k.rsplit(".", 1)[0] for k in keys})
    if len(chapters) != 1:
        raise ValueError(f"{where}: the exercise cells check keys of {len(chapters)} chapters {chapters}; expected one")
    return chapters[0]


def make_student_edition(notebook: str | Path, out: str | Path) -> StudentEdition:
    """Write the student edition of a chapter that follows the exercise convention.

    From the full edition ``notebook`` it removes every cell tagged ``solution`` (the
    dropdown text and the solution code) and a bare ``## Solutions`` heading left
    behind; in every cell tagged ``exercise`` it replaces the value of each
    ``answer_n = <value>`` by the blank ``...`` and clears the outputs; it clears the
    outputs of any other cell that quotes a checker's verdict (``<key>: correct.``).
    Everything else, figures included, is kept as the full edition stored it.

    ``out`` is a folder (the edition is written there under the same file name) or a
    ``.ipynb`` path. Raises ValueError if the notebook has no ``exercise`` cell (it does
    not follow the convention yet), if its checker keys are not registered in
    `genimg_lib.exercises`, or if ``out`` would overwrite a full edition.
    """
    import nbformat

    source_path = Path(notebook)
    if not source_path.is_file() or source_path.suffix != ".ipynb":
        raise ValueError(f"notebook: expected an existing .ipynb file, got {str(source_path)!r}")
    out = Path(out)
    target = out if out.suffix == ".ipynb" else out / source_path.name
    if target.resolve() == source_path.resolve():
        raise ValueError(
            f"out: {str(target)!r} is the full edition itself; write the student edition to another folder"
        )
    if target.exists():
        existing = nbformat.read(target, as_version=4)
        if any(SOLUTION_TAG in _tags(c) for c in existing.cells):
            raise ValueError(
                f"out: {str(target)!r} exists and has cells tagged {SOLUTION_TAG!r} (a full edition); "
                "refusing to overwrite it. Choose an empty output folder."
            )

    nb = nbformat.read(source_path, as_version=4)
    name = source_path.name
    exercise_cells = [c for c in nb.cells if c.cell_type == "code" and EXERCISE_TAG in _tags(c)]
    if not exercise_cells:
        raise ValueError(
            f"{name}: no code cell is tagged {EXERCISE_TAG!r}, so this chapter does not follow the "
            "exercise convention (CONTRIBUTING.md) yet and its solutions cannot be told apart"
        )
    keys = [k for c in exercise_cells for k in _keys_in(c.source)]
    if not keys:
        raise ValueError(f"{name}: its exercise cells call no check(\"<chapter>.<n>\", ...)")
    chapter = _chapter_of_keys(keys, name)
    unknown = [k for k in keys if k not in exercises.checker_keys(chapter)]
    if unknown:
        raise ValueError(f"{name}: no checker is registered for {unknown} in genimg_lib.exercises")
    for i, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if cell.cell_type == "code" and _keys_in(cell.source) and not {EXERCISE_TAG, SOLUTION_TAG} & set(tags):
            raise ValueError(
                f"{name}, cell {i + 1}: calls check(...) but is tagged neither {EXERCISE_TAG!r} nor "
                f"{SOLUTION_TAG!r}, so the student edition would keep it and give the answer away; "
                "tag it, or move the call into the exercise or solution cell"
            )

    cells, removed, blanked, cleared = [], 0, [], 0
    for i, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if SOLUTION_TAG in tags:
            removed += 1
            continue
        if cell.cell_type == "markdown" and _SOLUTIONS_HEADING.match(cell.source):
            removed += 1
            continue
        cell = copy.deepcopy(cell)
        if cell.cell_type == "code":
            reveals = any(_VERDICT_LINE.search(_output_text(o)) for o in cell.get("outputs", []))
            if EXERCISE_TAG in tags:
                cell.source, names = _blank_exercise_source(cell.source, f"{name}, cell {i + 1}")
                blanked += names
            if (EXERCISE_TAG in tags or reveals) and (cell.outputs or cell.execution_count is not None):
                cell.outputs, cell.execution_count = [], None
                cleared += 1
        cells.append(cell)
    nb.cells = cells
    nb.metadata["genimg"] = {"edition": "student", "chapter": chapter}
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return StudentEdition(target, chapter, sorted(set(keys), key=keys.index), removed, blanked, cleared)


# ---------------------------------------------------------------------------
# Grade: execute each submission, read the verdicts, write the reports
# ---------------------------------------------------------------------------
@dataclass
class Submission:
    """One graded file: who sent it, which chapter it holds, the verdict and checker
    message of each of that chapter's exercises (``{key: {"verdict", "message"}}``),
    and notes on anything unusual (a rename, a crash, a time-out, an empty notebook)."""

    student: str
    file: str
    chapter: str | None = None
    verdicts: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    counted: bool = True


@dataclass
class ClassReport:
    """The result of `grade_submissions`: every submission, the exercise keys (the CSV's
    columns), each student's verdicts (``table[student][key]``), and the files written."""

    submissions: list[Submission]
    keys: list[str]
    table: dict[str, dict[str, str]]
    csv_path: Path
    feedback_dir: Path


def _student_and_name(rel: Path) -> tuple[str, str, str | None]:
    """(student, file name without the student prefix, a note if the name breaks the layout)."""
    if len(rel.parts) >= 2:
        return rel.parts[0], rel.name, None
    stem, suffix = rel.name[: -len(rel.suffix)] if rel.suffix else rel.name, rel.suffix
    if "__" in stem:
        student, rest = stem.split("__", 1)
        return student, rest + suffix, None
    note = (
        f"{rel.name}: the name does not say who sent it (expected <student>/<chapter>.ipynb "
        f"or <student>__<chapter>.ipynb); graded as student {stem!r}"
    )
    return stem, rel.name, note


def _recognise_chapter(nb: Any, name: str) -> str | None:
    """The chapter a notebook holds: the one most of its checker keys name (keys in
    exercise cells first, then in any code cell), else the student edition's metadata,
    else the file name; None if none of these names a chapter with checkers."""
    chapters = {k.rsplit(".", 1)[0] for k in exercises.checker_keys()}
    code = [c for c in nb.cells if c.cell_type == "code"]
    keys = [k for c in code if EXERCISE_TAG in _tags(c) for k in _keys_in(c.source)]
    keys = keys or [k for c in code for k in _keys_in(c.source)]
    named = [k.rsplit(".", 1)[0] for k in keys if k.rsplit(".", 1)[0] in chapters]
    if named:
        return max(dict.fromkeys(named), key=named.count)  # ties: the first named
    for candidate in (nb.metadata.get("genimg", {}).get("chapter"), Path(name).stem):
        if candidate in chapters:
            return candidate
    return None


def _first_line(source: str, width: int = 40) -> str:
    """The cell's first line of code (its first line if it is all comments), shortened."""
    lines = [l.strip() for l in source.splitlines() if l.strip()]
    line = next((l for l in lines if not l.startswith("#")), lines[0] if lines else "")
    return line if len(line) <= width else line[: width - 3] + "..."


def _read_verdicts(client: Any, timeout: int) -> dict[str, dict[str, str]] | None:
    """The kernel's `genimg_lib.exercises.verdicts`, through a silent user expression;
    None if the kernel does not answer within ``timeout`` seconds or cannot say."""
    client.timeout = timeout
    msg_id = client.kc.execute(
        "", silent=True, store_history=False, user_expressions={"v": _VERDICTS_EXPRESSION}
    )
    reply = client.wait_for_reply(msg_id)
    if reply is None or reply["content"].get("status") != "ok":
        return None
    value = reply["content"].get("user_expressions", {}).get("v", {})
    if value.get("status") != "ok":
        return None
    return json.loads(ast.literal_eval(value["data"]["text/plain"]))


def _execute(nb: Any, timeout: float, workdir: Path, read_timeout: int = 10) -> tuple[dict, list[str]]:
    """Run ``nb`` cell by cell in a fresh kernel, within ``timeout`` seconds in all.

    Errors do not stop the run (the next cells run and their exercises are graded).
    A cell still running at the deadline is interrupted (KeyboardInterrupt in the
    kernel) and the run stops there. The verdicts are read after every code cell, so
    those recorded before a hang, or before the kernel died, are kept.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    replies: dict[int, dict] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict) -> None:
        replies[cell_index] = execute_reply

    client = NotebookClient(
        nb,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": _TIME_LIMIT_ENAME, "evalue": f"{timeout:g} s", "traceback": []},
        resources={"metadata": {"path": str(workdir)}},
        record_timing=False,
        shell_timeout_interval=1,  # how often a silent kernel is checked on, in seconds
        on_cell_executed=on_cell_executed,
    )
    notes: list[str] = []
    errors: list[str] = []
    verdicts: dict = {}
    with client.setup_kernel():
        deadline = time.monotonic() + timeout
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            where = f"cell {index + 1} ({_first_line(cell.source)!r})"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                notes.append(f"timed out: the {timeout:g} s limit was reached before {where}; it and the cells after it did not run")
                break
            client.timeout = max(1, math.ceil(remaining))
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                notes.append(f"{where}: the kernel died while running it; the cells after it did not run")
                break
            content = replies.get(index, {}).get("content", {})
            if content.get("ename") == _TIME_LIMIT_ENAME:
                try:
                    now = _read_verdicts(client, read_timeout)
                except DeadKernelError:
                    now = None
                verdicts = now if now is not None else verdicts
                stopped = "it was interrupted" if now is not None else "it did not stop when interrupted, so the kernel was shut down"
                notes.append(
                    f"timed out: {where} was still running when the {timeout:g} s limit was reached; "
                    f"{stopped}, and the cells after it did not run"
                )
                break
            if content.get("status") == "error" and "raises-exception" not in _tags(cell):
                errors.append(f"{where} raised {content.get('ename')}: {content.get('evalue')}")
            try:
                now = _read_verdicts(client, read_timeout)
            except DeadKernelError:
                notes.append(f"the kernel died after {where}; the cells after it did not run")
                break
            verdicts = now if now is not None else verdicts
    if errors:
        more = f" (and {len(errors) - 1} more cells raised errors)" if len(errors) > 1 else ""
        notes.insert(0, f"crashed: {errors[0]}{more}; the other cells still ran")
    return verdicts, notes


def grade_notebook(path: str | Path, student: str, name: str, timeout: float = 600.0,
                   executed_out: Path | None = None) -> Submission:
    """Grade one submitted notebook (see `grade_submissions`).

    ``name`` is the file name without any ``<student>__`` prefix; it is compared with the
    chapter the notebook holds to report a rename.
    """
    import nbformat

    path = Path(path)
    sub = Submission(student=student, file=name)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # an empty or corrupt file is graded as unanswered
        chapter = Path(name).stem if exercises.checker_keys(Path(name).stem) else None
        sub.chapter = chapter
        sub.notes.append(f"{name} is not a readable notebook ({type(err).__name__}); nothing could run")
        _fill(sub, {})
        return sub
    chapter = sub.chapter = _recognise_chapter(nb, name)
    if chapter is None:
        sub.notes.append(
            f"{name}: no check(\"<chapter>.<n>\", ...) call and the file name is not a chapter, "
            "so it could not be graded"
        )
        return sub
    if Path(name).stem != chapter:
        sub.notes.append(f"renamed: {name} holds {chapter} (expected {chapter}.ipynb)")
    if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
        sub.notes.append(f"{name} is empty (no code to run)")
        _fill(sub, {})
        return sub
    with tempfile.TemporaryDirectory(prefix="genimg-grade-") as workdir:
        verdicts, notes = _execute(nb, timeout, Path(workdir))
    sub.notes += notes
    extra = sorted(k for k in verdicts if k.rsplit(".", 1)[0] != chapter)
    if extra:
        sub.notes.append(f"{name} also checks {extra}, which are not counted for {chapter}")
    _fill(sub, verdicts)
    if executed_out is not None:
        executed_out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed_out)
    return sub


def _fill(sub: Submission, verdicts: dict[str, dict[str, str]]) -> None:
    for key in exercises.checker_keys(sub.chapter) if sub.chapter else []:
        sub.verdicts[key] = verdicts.get(key) or {
            "verdict": exercises.NOT_ANSWERED,
            "message": f'check("{key}", ...) never ran.',
        }


def discover(folder: str | Path) -> tuple[list[tuple[str, str, Path]], list[Submission]]:
    """Every notebook under ``folder`` as ``(student, name, path)``, and a note-only
    `Submission` for each other file (never skipped silently). Hidden files and folders
    (``.ipynb_checkpoints``, ``.DS_Store``) are editors' copies, not submissions: ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder: expected a folder of submissions, got {str(folder)!r}")
    notebooks, others = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .ipynb_checkpoints, .DS_Store: editor files, not submissions
        student, name, note = _student_and_name(rel)
        if path.suffix != ".ipynb":
            others.append(Submission(student, name, notes=[f"{rel} is not a notebook (.ipynb): not graded"], counted=False))
            continue
        notebooks.append((student, name, path))
        if note:
            others.append(Submission(student, name, notes=[note], counted=False))
    return notebooks, others


def grade_submissions(folder: str | Path, out_dir: str | Path, timeout: float = 600.0,
                      jobs: int = 1, progress: bool = False) -> ClassReport:
    """Grade a folder of submitted notebooks; write ``grades.csv`` and ``feedback/``.

    Layout: ``<folder>/<student>/<file>.ipynb`` (one folder per student) or
    ``<folder>/<student>__<file>.ipynb``. Each notebook runs top to bottom in a fresh
    kernel, in a temporary working directory, for at most ``timeout`` seconds in all;
    a cell that raises does not stop it. Every checker's verdict is read from the kernel
    (`genimg_lib.exercises.verdicts`); an exercise whose ``check`` never ran is
    "not answered". Crashes, time-outs, renamed and empty notebooks, and files that are
    not notebooks, are reported in the CSV's ``notes`` column and the feedback.

    Writes ``out_dir/grades.csv`` (a row per student; a column per exercise of every
    chapter submitted, holding ``"correct"``, ``"wrong"``, ``"not answered"`` or
    ``"not submitted"``; then ``correct``, the count, and ``notes``),
    ``out_dir/feedback/<student>.txt`` (the checkers' messages, quoted) and
    ``out_dir/executed/<student>/<file>`` (each notebook as it ran). ``jobs`` notebooks
    run at a time, each in its own kernel.
    """
    folder, out_dir = Path(folder).resolve(), Path(out_dir).resolve()
    if timeout <= 0:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout}")
    if out_dir == folder or folder in out_dir.parents:
        raise ValueError(
            f"out_dir: {str(out_dir)!r} is inside the submissions folder {str(folder)!r}; the next run "
            "would grade the reports. Choose a folder outside it."
        )
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs: expected a whole number >= 1 of notebooks to run at a time, got {jobs!r}")
    notebooks, others = discover(folder)
    if not notebooks and not others:  # a wrong folder must not pass as a class of 0 students
        raise ValueError(f"folder: {str(folder)!r} holds no submissions; expected "
                         "<folder>/<student>/<chapter>.ipynb or <folder>/<student>__<chapter>.ipynb")
    submissions: list[Submission] = []
    # threads suffice: each notebook runs in its own kernel process; a thread only waits on it
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(_timed_grade, path, student, name, timeout, out_dir / "executed" / student / name)
            for student, name, path in notebooks
        ]
        for (student, name, path), future in zip(notebooks, futures):
            sub, seconds = future.result()
            submissions.append(sub)
            if progress:
                counts = {v: sum(d["verdict"] == v for d in sub.verdicts.values())
                          for v in (exercises.CORRECT, exercises.WRONG, exercises.NOT_ANSWERED)}
                summary = ", ".join(f"{n} {v}" for v, n in counts.items())
                print(f"{path.relative_to(folder)}: {sub.chapter or 'unknown chapter'}: {summary} "
                      f"({seconds:.1f} s)" + "".join(f"\n  {n}" for n in sub.notes), flush=True)
    return write_reports(submissions + others, out_dir)


def _timed_grade(*args: Any) -> tuple[Submission, float]:
    start = time.perf_counter()
    return grade_notebook(*args), time.perf_counter() - start


def write_reports(submissions: Sequence[Submission], out_dir: str | Path) -> ClassReport:
    """Write ``grades.csv`` and ``feedback/<student>.txt`` from graded submissions."""
    out_dir = Path(out_dir)
    chapters = {s.chapter for s in submissions if s.chapter}
    keys = [k for k in exercises.checker_keys() if k.rsplit(".", 1)[0] in chapters]
    students = sorted({s.student for s in submissions})
    by_student: dict[str, list[Submission]] = {st: [s for s in submissions if s.student == st] for st in students}
    table: dict[str, dict[str, str]] = {}
    notes: dict[str, list[str]] = {}
    used: dict[str, dict[str, Submission]] = {}
    for st in students:
        table[st] = {k: NOT_SUBMITTED for k in keys}
        notes[st] = [n for s in by_student[st] for n in s.notes]
        used[st] = {}
        handed_in = {s.chapter for s in by_student[st] if s.chapter and s.counted}
        for chapter in [c for c in dict.fromkeys(k.rsplit(".", 1)[0] for k in keys) if c in handed_in]:
            held = [s for s in by_student[st] if s.chapter == chapter and s.counted]
            best = next((s for s in held if Path(s.file).stem == chapter), held[0])
            if len(held) > 1:
                notes[st].append(
                    f"{len(held)} notebooks hold {chapter} ({', '.join(s.file for s in held)}); "
                    f"the grades are those of {best.file}"
                )
            used[st][chapter] = best
            for key, v in best.verdicts.items():
                table[st][key] = v["verdict"]

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "grades.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *keys, "correct", "notes"])
    for st in students:
        correct = sum(v == exercises.CORRECT for v in table[st].values())
        writer.writerow([st, *(table[st][k] for k in keys), correct, "; ".join(notes[st])])
    csv_path.write_text(buffer.getvalue())

    feedback_dir = out_dir / "feedback"
    feedback_dir.mkdir(exist_ok=True)
    for st in students:
        (feedback_dir / f"{st}.txt").write_text(_feedback(st, used[st], notes[st]))
    return ClassReport(list(submissions), keys, table, csv_path, feedback_dir)


def _feedback(student: str, used: dict[str, Submission], notes: list[str], width: int = 78) -> str:
    """A student's feedback, as plain text wrapped at ``width`` characters."""
    label = {exercises.CORRECT: "correct.", exercises.WRONG: "not yet.", exercises.NOT_ANSWERED: "not answered:"}

    def item(text: str, first: str, rest: str) -> list[str]:
        return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False)

    lines = [f"Feedback for {student}", ""]
    if not used:
        lines += ["No notebook of yours could be graded.", ""]
    for chapter, sub in used.items():
        n_correct = sum(v["verdict"] == exercises.CORRECT for v in sub.verdicts.values())
        lines.append(f"{chapter} ({sub.file}): {n_correct} of {len(sub.verdicts)} correct")
        for key, v in sub.verdicts.items():
            lines += item(f"{key}: {label[v['verdict']]} {v['message']}", "  ", "      ")
        lines.append("")
    if notes:
        lines.append("Notes:")
        for note in notes:
            lines += item(note, "  - ", "    ")
    return "\n".join(lines).rstrip() + "\n"
