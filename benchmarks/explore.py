"""One DCGAN recipe, trained long and scored along the way: the exploratory runs of issue #11.

Not a race (``race.py`` races recipes side by side): one recipe, one process, one torch
thread, its generator and an exponential moving average (EMA) of its weights scored with
the book's `Scorer` (domain FID, precision, recall, class coverage; 1,000 samples against
1,000 test images) every ``--every`` steps. One JSON line per score, on stdout:

    python benchmarks/explore.py --steps 4000 --lr 2e-3              # the shipped gan_dcgan's recipe
    python benchmarks/explore.py --steps 4000 --lr 2e-4 --lr-d 4e-4  # TTUR
    python benchmarks/explore.py --steps 8000 --conditional --lr 4e-4  # the shipped gan_cgan's
    python benchmarks/explore.py --steps 3000 --loss wasserstein_gp --n-critic 5 --d-norm none \
        --lr 2e-4 --beta2 0.9                                        # WGAN-GP

The numbers quoted in benchmarks/README.md under "What was tried" come from this script
(seed 0). Times are the training thread's CPU seconds, scoring excluded.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--every", type=int, default=2000, help="score every this many steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="both players' Adam learning rate")
    p.add_argument("--lr-d", type=float, default=None, help="D's learning rate, if not --lr")
    p.add_argument("--d-norm", choices=["batch", "none"], default="batch")
    p.add_argument("--conditional", action="store_true")
    p.add_argument("--loss", choices=["non_saturating", "hinge", "wasserstein_gp"], default="non_saturating")
    p.add_argument("--n-critic", type=int, default=1, help="D steps per G step")
    p.add_argument("--beta2", type=float, default=0.999, help="Adam's second beta (WGAN-GP: 0.9)")
    p.add_argument("--ema", type=float, default=0.999, help="decay of the EMA of G's weights")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if min(a.steps, a.every, a.batch_size, a.n_critic) < 1 or not 0 < a.ema < 1:
        p.error("--steps, --every, --batch-size and --n-critic must be positive and --ema in (0, 1)")

    import torch

    from genimg_lib.data import infinite_batches, load_mnist5k, make_loader
    from genimg_lib.models import DCGAN
    from genimg_lib.scoreboard import Scorer
    from genimg_lib.train import train_gan

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    model = DCGAN(z_dim=64, width=32, num_classes=10 if a.conditional else 0,
                  d_norm=None if a.d_norm == "none" else a.d_norm)
    x, y = load_mnist5k("train", value_range=(-1, 1))
    batches = infinite_batches(make_loader(x, y, batch_size=a.batch_size, seed=a.seed))
    ema = copy.deepcopy(model.G).eval()
    snaps, cpu0 = [], time.process_time()

    def every_step(step, history):
        with torch.no_grad():  # ema <- decay * ema + (1 - decay) * G; buffers (BatchNorm statistics) copied
            for pe, pg in zip(ema.parameters(), model.G.parameters()):
                pe.lerp_(pg, 1 - a.ema)
            for be, bg in zip(ema.buffers(), model.G.buffers()):
                be.copy_(bg)
        if step % a.every == 0 or step == a.steps:
            snaps.append((step, time.process_time() - cpu0,
                          copy.deepcopy(model.G.state_dict()), copy.deepcopy(ema.state_dict())))

    train_gan(model.G, model.D, batches, a.steps, loss=a.loss, n_critic=a.n_critic, lr_G=a.lr,
              lr_D=a.lr_d or a.lr, betas=(0.5, a.beta2), conditional=a.conditional, generator=torch.Generator().manual_seed(a.seed),
              callback=every_step, show_progress=False)
    scorer, rows = Scorer(num_samples=1000), []
    for step, cpu, raw, averaged in snaps:
        for weights, state in (("last", raw), ("ema", averaged)):
            model.G.load_state_dict(state)
            model.G.eval()
            with torch.no_grad():
                z = torch.randn(1000, 64, generator=torch.Generator().manual_seed(a.seed))
                labels = (torch.arange(1000) % 10,) if a.conditional else ()
                s = scorer.score(((model.G(z, *labels) + 1) / 2).clamp(0, 1))
            rows.append(dict(step=step, cpu_s=round(cpu), weights=weights, fid=round(s["fid"], 3),
                             precision=round(s["precision"], 3), recall=round(s["recall"], 3),
                             classes=int(s["classes_covered"]), lr=a.lr, lr_d=a.lr_d or a.lr,
                             batch_size=a.batch_size, d_norm=a.d_norm, conditional=a.conditional,
                             loss=a.loss, n_critic=a.n_critic))
            print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
