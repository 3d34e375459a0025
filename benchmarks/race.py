"""Race the book's recipes against plain reference recipes, side by side (issue #11).

Not a test: a measurement. Each contestant trains in its own process with ONE torch
thread, all contestants of a race at the same time, so that they share whatever load the
machine has. Absolute seconds on a shared machine are noise; the ratios between
contestants of the same race are the result.

    python benchmarks/race.py gan [--steps 1500] [--contestants book,plain,before]
    python benchmarks/race.py vae [--steps 4000]
    python benchmarks/race.py notebooks [book/x.ipynb ...]   # execution time of each notebook
    python benchmarks/race.py suite                           # wall time of scripts/test.sh
    python benchmarks/race.py report                          # table.md and race.png

Each race writes ``benchmarks/results/<race>.json``: one row per (contestant, evaluation
step) with the training time spent until then (process CPU seconds of the training
thread, and wall seconds; the time spent in evaluation snapshots is excluded) and the
quality at that step:

- GANs: the book's `genimg_lib.scoreboard.Scorer` (domain FID, precision, recall, class
  coverage) on 1,000 samples against 1,000 test images; scored after training, from
  snapshots of G's weights taken at the evaluation steps.
- VAEs: the IWAE bound of the test NLL (``--iwae-k`` samples, 100 by default: the
  manifest's figures use 1,000) on the 1,000 statically binarized test images.

``report`` turns every results file into ``benchmarks/results/table.md`` (with each
contestant's time to reach the plain recipe's final quality, as a ratio, and the shipped
models' scores from the package's manifest against issue #11's targets) and
``benchmarks/results/race.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where results go (a test points this at a temporary folder).
RESULTS = Path(os.environ.get("GENIMG_BENCHMARK_RESULTS", ROOT / "benchmarks" / "results"))

# ---------------------------------------------------------------------------
# The contestants
# ---------------------------------------------------------------------------
#: GAN contestants: the same generator (DCGAN, z 64, width 32), the same MNIST-5k
#: training split, non-saturating loss, Adam betas (0.5, 0.999).
def _book_gan() -> dict:
    """The shipped gan_dcgan recipe, read from genimg_lib.recipes (so the race follows it)."""
    from genimg_lib.recipes import RECIPES

    r = RECIPES["gan_dcgan"]
    assert r["lr_G"] == r["lr_D"] and r["loss"] == "non_saturating" and r["betas"] == (0.5, 0.999), r
    return dict(d_norm=r["model"].get("d_norm"), batch_size=r["batch_size"], lr=r["lr_G"])


def _book_vae() -> dict:
    """The shipped vae_conv_z16 model, read from genimg_lib.recipes."""
    from genimg_lib.recipes import RECIPES

    r = RECIPES["vae_conv_z16"]
    assert r["train"]["batch_size"] == 128 and r["train"]["lr"] == 1e-3, r
    return dict(r["model"])


GAN_CONTESTANTS = {
    # the shipped gan_dcgan recipe (genimg_lib.recipes.RECIPES["gan_dcgan"])
    "book": _book_gan(),
    # pytorch/examples' dcgan: BatchNorm after D's second convolution
    "plain": dict(d_norm="batch", batch_size=128, lr=2e-4),
    # the recipe the book shipped before issue #11: no normalization in D, batches of 128, 2e-4
    "before": dict(d_norm=None, batch_size=128, lr=2e-4),
}
#: VAE contestants, on dynamically binarized MNIST-5k, Adam(1e-3), batches of 128.
VAE_CONTESTANTS = {
    # the shipped vae_conv_z16 recipe
    "book": _book_vae(),
    # pytorch/examples' vae: an MLP 784-400-20
    "plain": dict(z_dim=20, arch="mlp", hidden_dims=[400]),
}


def _eval_steps(num_steps: int, count: int = 6) -> list[int]:
    return sorted({max(1, round(num_steps * (i + 1) / count)) for i in range(count)})


# ---------------------------------------------------------------------------
# One contestant (runs in its own process)
# ---------------------------------------------------------------------------
class _Clock:
    """Training time so far, with the time spent in snapshots taken out."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.paused_wall = self.paused_cpu = 0.0

    def now(self) -> tuple[float, float]:
        return (time.perf_counter() - self.wall0 - self.paused_wall,
                time.process_time() - self.cpu0 - self.paused_cpu)

    def pause(self, fn) -> None:
        w, c = time.perf_counter(), time.process_time()
        fn()
        self.paused_wall += time.perf_counter() - w
        self.paused_cpu += time.process_time() - c


def _run_gan(name: str, num_steps: int, seed: int) -> list[dict]:
    import torch

    from genimg_lib.data import infinite_batches, load_mnist5k, make_loader
    from genimg_lib.models import DCGAN
    from genimg_lib.recipes import RECIPES
    from genimg_lib.scoreboard import Scorer
    from genimg_lib.train import train_gan

    c = GAN_CONTESTANTS[name]
    torch.manual_seed(seed)
    shape = {k: v for k, v in RECIPES["gan_dcgan"]["model"].items() if k in ("z_dim", "width")}
    model = DCGAN(**shape, d_norm=c["d_norm"])  # every contestant: the shipped generator's shape
    x, y = load_mnist5k("train", value_range=(-1, 1))
    batches = infinite_batches(make_loader(x, y, batch_size=c["batch_size"], seed=seed))
    evals, snaps = set(_eval_steps(num_steps)), []
    clock = _Clock()

    def snapshot(step, history):
        if step in evals:
            wall, cpu = clock.now()
            clock.pause(lambda: snaps.append((step, wall, cpu, copy.deepcopy(model.G.state_dict()))))

    train_gan(model.G, model.D, batches, num_steps, loss="non_saturating", lr_G=c["lr"], lr_D=c["lr"],
              betas=(0.5, 0.999), generator=torch.Generator().manual_seed(seed), callback=snapshot,
              show_progress=False)
    scorer, rows = Scorer(num_samples=1000), []
    for step, wall, cpu, state in snaps:
        model.G.load_state_dict(state)
        model.G.eval()
        with torch.no_grad():
            z = torch.randn(1000, model.z_dim, generator=torch.Generator().manual_seed(seed))
            s = scorer.score(((model.G(z) + 1) / 2).clamp(0, 1))
        rows.append(dict(contestant=name, step=step, cpu_s=round(cpu, 1), wall_s=round(wall, 1),
                         fid=round(s["fid"], 3), precision=round(s["precision"], 3),
                         recall=round(s["recall"], 3), classes=int(s["classes_covered"]), **c))
    return rows


def _run_vae(name: str, num_steps: int, seed: int, iwae_k: int) -> list[dict]:
    import torch

    from genimg_lib.data import load_mnist5k
    from genimg_lib.measures import estimate_nll
    from genimg_lib.models import VAE
    from genimg_lib.train import train_vae

    torch.manual_seed(seed)
    model = VAE(**VAE_CONTESTANTS[name])
    evals, snaps = set(_eval_steps(num_steps, 4)), []
    clock = _Clock()

    def snapshot(step, history):
        if step in evals:
            wall, cpu = clock.now()
            clock.pause(lambda: snaps.append((step, wall, cpu, copy.deepcopy(model.state_dict()))))

    every = min(evals)
    train_vae(model, num_steps, batch_size=128, lr=1e-3, seed=seed, callback=snapshot,
              callback_every=every if all(s % every == 0 for s in evals) else 1, show_progress=False)
    x_test, _ = load_mnist5k("test", binarize="static")
    rows = []
    for step, wall, cpu, state in snaps:
        model.load_state_dict(state)
        model.eval()
        torch.manual_seed(seed)
        nll = estimate_nll(model, x_test, num_samples=iwae_k)
        rows.append(dict(contestant=name, step=step, cpu_s=round(cpu, 1), wall_s=round(wall, 1),
                         nll=round(nll, 2), iwae_k=iwae_k, **VAE_CONTESTANTS[name]))
    return rows


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    if args.race == "gan":
        rows = _run_gan(args.contestant, args.steps, args.seed)
    else:
        rows = _run_vae(args.contestant, args.steps, args.seed, args.iwae_k)
    print("ROWS " + json.dumps(rows), flush=True)


# ---------------------------------------------------------------------------
# A race: every contestant at once
# ---------------------------------------------------------------------------
def race(kind: str, contestants: list[str], steps: dict[str, int], seed: int, iwae_k: int) -> Path:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", GENIMG_PROGRESS="0",
               PYTHONPATH=str(ROOT))
    load0 = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    procs = {name: subprocess.Popen(
        [sys.executable, __file__, "_worker", kind, name, str(steps[name]), str(seed), str(iwae_k)],
        env=env, stdout=subprocess.PIPE, text=True) for name in contestants}
    rows = []
    for name, p in procs.items():
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"contestant {name!r} failed (exit {p.returncode})")
        rows += json.loads(next(line[5:] for line in out.splitlines() if line.startswith("ROWS ")))
    result = dict(race=kind, started=started, seed=seed, load_average_at_start=round(load0, 2),
                  load_average_at_end=round(os.getloadavg()[0], 2), cpu_count=os.cpu_count(),
                  threads_per_contestant=1, device="cpu", rows=rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def time_notebooks(paths: list[str]) -> Path:
    """Execute each notebook (not stored) and record its wall time."""
    import nbformat
    from nbclient import NotebookClient

    rows = []
    for p in paths or sorted(str(q.relative_to(ROOT)) for q in (ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(ROOT / p, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(ROOT / "book")}}).execute()
        rows.append(dict(notebook=p, wall_s=round(time.perf_counter() - t0, 1),
                         load_average=round(os.getloadavg()[0], 2)))
        print(rows[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "notebooks.json"
    path.write_text(json.dumps(dict(cpu_count=os.cpu_count(), rows=rows), indent=1) + "\n")
    return path


def time_suite() -> Path:
    t0 = time.perf_counter()
    rc = subprocess.call(["bash", "scripts/test.sh", "-q"], cwd=ROOT)
    row = dict(command="bash scripts/test.sh", exit_code=rc, wall_s=round(time.perf_counter() - t0, 1),
               load_average=round(os.getloadavg()[0], 2), cpu_count=os.cpu_count())
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "suite.json"
    path.write_text(json.dumps(row, indent=1) + "\n")
    return path


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------
#: Issue #11's targets for the shipped models: (model, manifest metric, "<=" or ">=", target).
TARGETS = [
    ("gan_dcgan", "fid_domain", "<=", 1.5), ("gan_dcgan", "classes_covered", ">=", 10),
    ("gan_dcgan", "precision_k3", ">=", 0.7), ("gan_dcgan", "recall_k3", ">=", 0.6),
    ("gan_wgan_gp", "fid_domain", "<=", 2.0), ("gan_wgan_gp", "classes_covered", ">=", 10),
    ("gan_cgan", "fid_domain", "<=", 2.0), ("gan_cgan", "classes_covered", ">=", 10),
    ("vae_conv_z16", "nll_nats", "<=", 93.0),
]


def target_rows(manifest: dict) -> list[str]:
    """Markdown rows: each target against the shipped model's score in ``manifest``, and the gap."""
    rows = ["| model | metric | target | shipped | met | gap |", "|---|---|---|---|---|---|"]
    for name, key, op, goal in TARGETS:
        value = manifest.get(name, {}).get("metrics", {}).get(key)
        if value is None:
            rows.append(f"| {name} | {key} | {op} {goal} | not scored | - | - |")
            continue
        met = value <= goal if op == "<=" else value >= goal
        gap = "-" if met else f"{abs(value - goal):.3g}"
        rows.append(f"| {name} | {key} | {op} {goal} | {value:.4g} | {'yes' if met else 'no'} | {gap} |")
    return rows


def time_to_reach(rows: list[dict], key: str, target: float) -> float | None:
    """CPU seconds at the first evaluation whose ``key`` is at or below ``target``."""
    for r in sorted(rows, key=lambda r: r["step"]):
        if r[key] <= target:
            return r["cpu_s"]
    return None


def report() -> Path:
    lines = ["# Recipe races (generated by `python benchmarks/race.py report`)", ""]
    for kind, key, label in (("gan", "fid", "domain FID"), ("vae", "nll", "IWAE NLL (nats)")):
        path = RESULTS / f"{kind}.json"
        if not path.exists():
            lines += [f"No {kind.upper()} race has been run yet.", ""]
            continue
        res = json.loads(path.read_text())
        rows = res["rows"]
        plain = sorted((r for r in rows if r["contestant"] == "plain"), key=lambda r: r["step"])
        target = plain[-1][key]
        t_plain = time_to_reach(plain, key, target)
        lines += [f"## {kind.upper()} race, started {res['started']}",
                  f"{len(set(r['contestant'] for r in rows))} contestants side by side, one thread each, "
                  f"on {res['cpu_count']} cores (load average {res['load_average_at_start']} at the start, "
                  f"{res['load_average_at_end']} at the end). Device: CPU; the GPU column was not "
                  "measured (no GPU in this run).", ""]
        cols = ["contestant", "step", "cpu_s", "wall_s", key] + (
            ["precision", "recall", "classes"] if kind == "gan" else [])
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in sorted(rows, key=lambda r: (r["contestant"], r["step"])):
            lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
        lines += ["", f"Time to reach the plain recipe's final {label} ({target}), in CPU seconds "
                  "of the training thread, and as a ratio to the plain recipe's:", "",
                  "| contestant | CPU s | ratio to plain |", "|---|---|---|"]
        for name in sorted(set(r["contestant"] for r in rows)):
            t = time_to_reach([r for r in rows if r["contestant"] == name], key, target)
            ratio = "not reached" if t is None else f"{t / t_plain:.2f}"
            lines.append(f"| {name} | {'-' if t is None else t} | {ratio} |")
        lines.append("")
    from genimg_lib.checkpoints import read_manifest

    manifest = read_manifest()
    lines += ["## The shipped models against issue #11's targets",
              "Scores from `genimg_lib/weights/MANIFEST.json` (domain metrics at N = 1000, the VAE's "
              "NLL with the manifest's K); what was tried is in `benchmarks/README.md`.", ""]
    lines += target_rows(manifest) + [""]
    for name, title in (("notebooks", "Notebook execution times"), ("suite", "The whole test suite")):
        path = RESULTS / f"{name}.json"
        if path.exists():
            lines += [f"## {title}", "", "```", path.read_text().strip(), "```", ""]
    out = RESULTS / "table.md"
    out.write_text("\n".join(lines))
    _plot()
    print(f"wrote {out}")
    return out


#: One colour per contestant name in every panel of race.png.
COLORS = {"book": "C0", "plain": "C1", "before": "C2"}


def _plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("gan", "vae") if (RESULTS / f"{k}.json").exists()]
    if not kinds:
        return
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.8, 3.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = json.loads((RESULTS / f"{kind}.json").read_text())["rows"]
        key = "fid" if kind == "gan" else "nll"
        for name in sorted(set(r["contestant"] for r in rows)):
            rs = sorted((r for r in rows if r["contestant"] == name), key=lambda r: r["step"])
            ax.plot([r["cpu_s"] for r in rs], [r[key] for r in rs], "o-", label=name,
                    color=COLORS.get(name))
        ax.set_xlabel("training CPU seconds (1 thread)")
        ax.set_ylabel("domain FID" if kind == "gan" else "test NLL, nats (IWAE)")
        if kind == "gan":  # FID spans a decade: log axis, ticks written plainly
            ax.set_yscale("log")
            ticks = [t for t in (2, 3, 4, 6, 10, 20, 40, 80)
                     if min(r[key] for r in rows) / 1.5 <= t <= max(r[key] for r in rows) * 1.5]
            ax.set_yticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        ax.set_title(f"{kind.upper()} recipes")
        ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "race.png", dpi=100)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        kind, name, steps, seed, iwae_k = argv[1:6]
        _worker(argparse.Namespace(race=kind, contestant=name, steps=int(steps), seed=int(seed),
                                   iwae_k=int(iwae_k)))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    for kind, table, default in (("gan", GAN_CONTESTANTS, 1500), ("vae", VAE_CONTESTANTS, 4000)):
        q = sub.add_parser(kind)
        q.add_argument("--contestants", default=",".join(table))
        q.add_argument("--steps", type=int, default=default, help="training steps of every contestant")
        q.add_argument("--steps-of", default="", help="per contestant, e.g. book=3000")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--iwae-k", type=int, default=100)
    nb = sub.add_parser("notebooks")
    nb.add_argument("paths", nargs="*")
    sub.add_parser("suite")
    sub.add_parser("report")
    a = p.parse_args(argv)
    if a.what in ("gan", "vae"):
        table = GAN_CONTESTANTS if a.what == "gan" else VAE_CONTESTANTS
        names = a.contestants.split(",")
        unknown = [n for n in names if n not in table]
        if unknown or "plain" not in names:
            p.error(f"contestants must include 'plain' and come from {sorted(table)}, got {names}")
        steps = {n: a.steps for n in names}
        for item in filter(None, a.steps_of.split(",")):
            n, _, s = item.partition("=")
            if n not in names or not s.isdigit() or int(s) < 1:
                p.error(f"--steps-of takes NAME=STEPS for a contestant of this race (one of {names}) "
                        f"and a positive number of steps, got {item!r}")
            steps[n] = int(s)
        race(a.what, names, steps, a.seed, a.iwae_k)
    elif a.what == "notebooks":
        time_notebooks(a.paths)
    elif a.what == "suite":
        time_suite()
    else:
        report()


if __name__ == "__main__":
    main()
