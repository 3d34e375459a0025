"""The command line: ``python -m genimg_lib <subcommand>`` (or ``genimg <subcommand>`` once installed).

Chapter: Getting started. Plain ``argparse`` subcommands, each a few lines over the
library function that does the work:

- ``list``: the shipped checkpoints, with their training cost and headline metrics;
- ``train NAME (--out DIR | --ship)``: make a shipped model again from its recipe
  (`genimg_lib.recipes`); ``--out DIR`` writes ``DIR/NAME.pt`` and ``DIR/MANIFEST.json``,
  and only ``--ship`` replaces the copy inside the package;
- ``score``: FID, KID, precision/recall and class coverage of every shipped generative
  model (`genimg_lib.scoreboard`), printed, and written into a manifest with ``--write``;
- ``verify``: check every shipped file against its sha256;
- ``student-edition PATH... --out DIR``: the chapters without their solutions, each
  exercise a blank (`genimg_lib.teaching.make_student_edition`);
- ``grade FOLDER --out DIR``: run and grade a class's notebooks into a CSV and feedback
  files (`genimg_lib.teaching.grade_submissions`).

Every argument is checked before any work starts, and a bad one ends the command with
exit status 2 and a message that names it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from genimg_lib import __version__
from genimg_lib.checkpoints import (
    GENERATIVE_FAMILIES, MANIFEST_PATH, WEIGHTS_DIR, CheckpointError, read_manifest, shipped_entries, update_metrics,
    verify_shipped,
)
from genimg_lib.data import MNIST5K_TEST_PER_CLASS, NUM_CLASSES
from genimg_lib.device import get_device
from genimg_lib.measures import min_samples
from genimg_lib.recipes import RECIPES, recipe_command, run_recipe, save_run
from genimg_lib.scoreboard import scoreboard
from genimg_lib.teaching import grade_submissions, make_student_edition

#: The range of ``score --num-samples``: the measures' minimum (twice the feature dimension) to the test split.
SCORE_MIN_SAMPLES, SCORE_MAX_SAMPLES = min_samples(), MNIST5K_TEST_PER_CLASS * NUM_CLASSES


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _num_samples(text: str) -> int:
    """An argparse type: images per set for scoring, between the measures' minimum and the test split's size."""
    value = _positive_int(text)
    if not SCORE_MIN_SAMPLES <= value <= SCORE_MAX_SAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected {SCORE_MIN_SAMPLES} to {SCORE_MAX_SAMPLES} images (twice the feature dimension up to the "
            f"test split), got {value}")
    return value


def _manifest(text: str) -> Path:
    """An argparse type: an existing, readable manifest file (a typo must not pass as 'nothing to do')."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no manifest file at {text!r}; give the MANIFEST.json of a weights folder")
    try:
        read_manifest(path)
    except CheckpointError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return path


def _device(text: str) -> str:
    """An argparse type: a device that exists on this machine (checked before any training)."""
    try:
        get_device(text)
    except (ValueError, RuntimeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _error(message: str) -> int:
    """Print ``message`` to stderr and return the exit status of a usage error, 2."""
    print(message, file=sys.stderr)
    return 2


def _in_weights(out: Path) -> bool:
    """Whether ``out`` is the package's weights folder or inside it (only ``train --ship`` writes there)."""
    out, weights = out.expanduser().resolve(), WEIGHTS_DIR.resolve()
    return out == weights or weights in out.parents


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return value


# ---------------------------------------------------------------------------
# The subcommands
# ---------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    """Print every shipped checkpoint: name, family, size, training cost, headline metric."""
    manifest = read_manifest(args.manifest)
    if not manifest:
        print(f"no checkpoints in {args.manifest}")
        return 0
    for name, entry in manifest.items():
        metrics = entry.get("metrics") or {}
        headline = next((f"{key} {metrics[key]:.4g}" for key in ("nll_nats", "fid_domain", "test_accuracy")
                         if metrics.get(key) is not None), "")
        cost = entry.get("cost") or {}
        print(f"{name:<18} {entry.get('family', '?'):<10} {entry['bytes'] / 1e6:5.2f} MB  "
              f"{cost.get('seconds', float('nan')):6.0f} s  {headline}")
    return 0


def train_command(args: argparse.Namespace) -> int:
    """Train ``args.name`` from its recipe; write it to ``--out`` or, with ``--ship``, into the package."""
    if args.ship == (args.out is not None):
        return _error("train: say where the checkpoint goes: --out DIR (a folder of yours) or --ship "
                      "(replace the copy inside the package)")
    out_dir = WEIGHTS_DIR if args.ship else args.out.expanduser()
    if not args.ship and out_dir.resolve() == WEIGHTS_DIR.resolve():
        return _error(f"train: --out {out_dir} is the package's weights folder; use --ship to replace a shipped model")
    if out_dir.exists() and not out_dir.is_dir():
        return _error(f"train: --out {out_dir} is a file, not a folder; name a folder (it is created if missing)")
    if args.iwae_k is not None and RECIPES[args.name]["kind"] not in ("vae", "vae_study", "faq_study"):
        return _error(f"train: --iwae-k applies to VAE recipes only, not to {args.name!r}")
    existing = next(p for p in [out_dir.absolute(), *out_dir.absolute().parents] if p.exists())
    try:  # can the folder be made and written? Checked before hours of training, and leaving no trace
        with tempfile.TemporaryDirectory(dir=existing):
            pass
    except OSError as err:
        return _error(f"train: --out {out_dir} cannot be written ({err.strerror}); choose another folder")
    torch.set_num_threads(args.threads)
    run = run_recipe(args.name, num_steps=args.steps, seed=args.seed, device=args.device, iwae_k=args.iwae_k)
    command = recipe_command(args.name, args.steps, args.seed, args.iwae_k, out_dir=None if args.ship else out_dir)
    entry = save_run(run, out_dir, command, ship=args.ship)
    where = "shipped into the package" if args.ship else f"written to {out_dir}"
    print(f"{args.name}: {entry['bytes'] / 1e6:.2f} MB {where} ({entry['file']}, sha256 {entry['sha256'][:12]}...)")
    return 0


def score_command(args: argparse.Namespace) -> int:
    """Score every generative model of a manifest; print the scores, and store them with ``--write``."""
    entries = shipped_entries(GENERATIVE_FAMILIES, args.manifest)
    unknown = sorted(set(args.names or []) - set(entries))
    if unknown:
        return _error(f"score: --names {' '.join(unknown)}: not generative models in {args.manifest}; "
                      f"choose from {' '.join(entries) or '(none)'}")
    torch.set_num_threads(args.threads)
    rows = scoreboard(args.num_samples, args.names, args.seed, args.manifest, baselines=False)
    if not rows:
        print(f"no generative models (family {' or '.join(GENERATIVE_FAMILIES)}) in {args.manifest}; nothing to score")
        return 0
    for r in rows:
        print(f"{r['name']}: FID {r['fid']:.2f}, KID {r['kid']:.4f}, precision {r['precision']:.3f}, "
              f"recall {r['recall']:.3f}, {r['classes_covered']} digits covered")
        if args.write:
            update_metrics(r["name"], {
                "fid_domain": round(r["fid"], 3), "kid_domain": round(r["kid"], 5),
                "precision_k3": round(r["precision"], 4), "recall_k3": round(r["recall"], 4),
                "classes_covered": r["classes_covered"], "kl_uniform": round(r["kl_uniform"], 4),
                "score_num_samples": args.num_samples, "score_seed": args.seed,
            }, args.manifest)
    if args.write:
        print(f"scores written to {args.manifest}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Check every file of a manifest against its sha256; exit 1 if one is missing or changed."""
    results = verify_shipped(args.manifest)
    for name, status in results.items():
        print(f"{name:<18} {status}")
    return 0 if all(s == "ok" for s in results.values()) else 1


def student_edition_command(args: argparse.Namespace) -> int:
    """Write the student edition of each chapter into ``--out``; exit 1 if one could not be made."""
    if _in_weights(args.out):
        return _error(f"student-edition: --out {args.out} is in the package's weights folder; choose a folder of yours")
    notebooks: list[Path] = []
    for path in args.paths:
        if not path.exists():
            print(f"student-edition: {path} does not exist; give chapter notebooks or folders of them",
                  file=sys.stderr)
            return 2
        notebooks += sorted(path.glob("*.ipynb")) if path.is_dir() else [path]
    if not notebooks:
        print(f"student-edition: no .ipynb in {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    failed = 0
    for notebook in notebooks:
        try:
            edition = make_student_edition(notebook, args.out)
        except ValueError as err:
            failed += 1
            print(f"student-edition: not made: {err}", file=sys.stderr)
            continue
        print(f"{edition.path}: {len(edition.keys)} exercises blank, {edition.removed_cells} solution "
              f"cells removed, {edition.cleared_outputs} outputs cleared")
    return 1 if failed else 0


def grade_command(args: argparse.Namespace) -> int:
    """Grade a folder of submitted notebooks into ``--out`` (grades.csv, feedback/, executed/)."""
    if _in_weights(args.out):
        return _error(f"grade: --out {args.out} is in the package's weights folder; choose a folder of yours")
    try:
        report = grade_submissions(args.folder, args.out, timeout=args.timeout, jobs=args.jobs, progress=True)
    except ValueError as err:
        print(f"grade: {err}", file=sys.stderr)
        return 2
    print(f"{len(report.table)} students, {len(report.keys)} exercises: {report.csv_path}; "
          f"feedback in {report.feedback_dir}")
    return 0


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of ``python -m genimg_lib``, one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="python -m genimg_lib", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"genimg_lib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="list the shipped checkpoints")
    p.add_argument("--manifest", type=_manifest, default=MANIFEST_PATH)
    p.set_defaults(handler=list_command)

    p = sub.add_parser("train", help="train a shipped model again from its recipe",
                       description="Train a shipped model from scratch with its recipe (genimg_lib.recipes).")
    p.add_argument("name", choices=sorted(RECIPES), metavar="NAME", help=f"one of {', '.join(sorted(RECIPES))}")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, help="write NAME.pt and MANIFEST.json into this folder")
    where.add_argument("--ship", action="store_true", help="replace the copy shipped inside the package")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--iwae-k", type=_positive_int, default=None, help="importance samples of a VAE's test NLL")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", type=_device, default=None, help="cuda, mps or cpu (default: the best available)")
    p.set_defaults(handler=train_command)

    p = sub.add_parser("score", help="FID, KID, precision/recall and coverage of every shipped VAE and GAN")
    p.add_argument("--num-samples", type=_num_samples, default=1000,
                   help="images per set, 128 to 1000 (FID depends on it)")
    p.add_argument("--names", nargs="*", default=None, help="only these models (default: every VAE and GAN)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--manifest", type=_manifest, default=MANIFEST_PATH)
    p.add_argument("--write", action="store_true", help="store the scores in the manifest's metrics")
    p.add_argument("--threads", type=_positive_int, default=1)
    p.set_defaults(handler=score_command)

    p = sub.add_parser("verify", help="check every shipped file against its sha256")
    p.add_argument("--manifest", type=_manifest, default=MANIFEST_PATH)
    p.set_defaults(handler=verify_command)

    p = sub.add_parser("student-edition", help="the chapters without their solutions, each exercise a blank",
                       description="Write the student edition of each chapter (genimg_lib.teaching).")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="chapter notebooks, or folders of them")
    p.add_argument("--out", type=Path, required=True, help="the folder to write the student editions into")
    p.set_defaults(handler=student_edition_command)

    p = sub.add_parser("grade", help="run and grade a folder of submitted notebooks",
                       description="Run every submitted notebook in a fresh kernel and collect every "
                                   "checker's verdict (genimg_lib.teaching).")
    p.add_argument("folder", type=Path,
                   help="<folder>/<student>/<chapter>.ipynb or <folder>/<student>__<chapter>.ipynb")
    p.add_argument("--out", type=Path, required=True, help="the folder for grades.csv, feedback/ and executed/")
    p.add_argument("--timeout", type=_positive_seconds, default=600.0,
                   help="seconds per notebook, all its cells together (default 600)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="notebooks run at a time (default 1)")
    p.set_defaults(handler=grade_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m genimg_lib`` with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return _error("error: name a SUBCOMMAND (see the list above)")
    return args.handler(args)
