"""Execute book notebooks in place and store them with their outputs and widget state.

    .venv/bin/python scripts/run_notebooks.py book/getting_started.ipynb [...]
    .venv/bin/python scripts/run_notebooks.py --all

Each notebook runs top to bottom in a fresh kernel, with the book/ folder as its
working directory, exactly as nbval will run it. The wall time of each is printed
and compared with the budget (90 s on a 2-core CPU, see CONTRIBUTING.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 90.0


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    # make the checkout's genimg_lib importable even without `pip install -e .`
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nbformat.write(nb, path)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every notebook under book/")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    paths = sorted((ROOT / "book").rglob("*.ipynb")) if args.all else args.notebooks
    paths = [p for p in paths if ".ipynb_checkpoints" not in p.parts]
    if not paths:
        parser.error("name notebooks to run, or pass --all")
    over = []
    for path in paths:
        elapsed = run(path.resolve(), args.timeout)
        flag = "" if elapsed <= BUDGET_S else f"  OVER the {BUDGET_S:.0f} s budget"
        print(f"{path}: {elapsed:.1f} s{flag}", flush=True)
        if flag:
            over.append(path)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
