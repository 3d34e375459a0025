"""The small shared pieces of a training loop.

Chapter: Getting started. The loops themselves stay in the chapters, written out so
that a reader sees every step; they use these pieces:

- `progress`: a `tqdm.auto` bar (a widget in Jupyter, text elsewhere);
- `History`: records losses and metrics against the step;
- `check_finite`: stops a run the moment a loss becomes NaN or infinite, with a
  message saying which loss, at which step, and what usually fixes it.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite during training."""


def progress(iterable: Iterable | int, desc: str = "training", **kwargs) -> tqdm:
    """A progress bar over ``iterable`` (or ``range(n)`` when given an int).

    Set the environment variable ``GENIMG_PROGRESS=0`` to hide the bars, e.g. in logs.
    """
    if isinstance(iterable, int):
        iterable = range(iterable)
    disable = os.environ.get("GENIMG_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, disable=disable, mininterval=0.5, **kwargs)


def check_finite(step: int, **losses: float | torch.Tensor) -> None:
    """Raise `NonFiniteLossError` if any named loss is NaN or infinite.

    Call it once per step, e.g. ``check_finite(step, loss_D=loss_D, loss_G=loss_G)``.
    """
    for name, value in losses.items():
        v = value.detach().float().item() if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"loss {name!r} became {v} at step {step}. Training cannot recover from this. "
                "Common causes: a learning rate that is too high, log(0) in a hand-written "
                "loss (use the logit-based losses), or inputs outside the expected value "
                "range. Lower the learning rate or check the inputs, then restart."
            )


class History(Mapping):
    """Losses and metrics recorded against the step: ``history["loss"]`` is a list.

    ``history.log(step, loss=0.3, kl=1.2)`` appends one row. Keys may appear at any
    step; each curve keeps its own list of steps (``history.steps("kl")``).
    """

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self._steps: dict[str, list[int]] = {}

    def log(self, step: int, **values: float | torch.Tensor) -> None:
        for key, value in values.items():
            v = value.detach().float().item() if isinstance(value, torch.Tensor) else float(value)
            self._values.setdefault(key, []).append(v)
            self._steps.setdefault(key, []).append(int(step))

    def steps(self, key: str) -> list[int]:
        return self._steps[key]

    def last(self, key: str) -> float:
        return self._values[key][-1]

    def mean(self, key: str, last: int | None = None) -> float:
        vals = self._values[key][-last:] if last else self._values[key]
        return sum(vals) / len(vals)

    def to_dict(self) -> dict[str, dict[str, list]]:
        return {k: {"step": self._steps[k], "value": self._values[k]} for k in self._values}

    def __getitem__(self, key: str) -> list[float]:
        if key not in self._values:
            raise KeyError(f"no curve {key!r} in the history; it has {sorted(self._values)}")
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        parts = [f"{k}: {len(v)} points, last {v[-1]:.4g}" for k, v in self._values.items()]
        return "History(" + "; ".join(parts) + ")"


# ---------------------------------------------------------------------------
# The command line: ``python -m genimg_lib.train <subcommand> [options]``.
# Each part registers its subcommand (``vae``, ``gan``, ``classifier``) in its own
# section below with `subcommand`; ``main`` only dispatches.
# ---------------------------------------------------------------------------
SUBCOMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {}


def subcommand(name: str, help: str) -> Callable:
    """Decorator: register ``fn(argv) -> exit code`` as ``python -m genimg_lib.train name``."""

    def register(fn):
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS[name] = (help, fn)
        return fn

    return register


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its subcommand; with no argument, list the subcommands."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m genimg_lib.train <subcommand> [options]\n\nsubcommands:")
        for name, (text, _) in sorted(SUBCOMMANDS.items()):
            print(f"  {name:<12} {text}")
        if not SUBCOMMANDS:
            print("  (none yet)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"unknown subcommand {name!r}; choose one of {sorted(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[name][1](rest)


# ===========================================================================
# Part II: VAEs (train_vae, the ``vae`` subcommand)
# ===========================================================================
# kl_per_dim and vae_loss live in genimg_lib.losses; imported here for the loop below.
from genimg_lib.losses import kl_per_dim, vae_loss  # noqa: E402


def train_vae(
    model: torch.nn.Module,
    num_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    beta: float = 1.0,
    kl_warmup_steps: int = 0,
    free_bits: float = 0.0,
    x_train: torch.Tensor | None = None,
    y_train: torch.Tensor | None = None,
    seed: int = 0,
    callback: Callable | None = None,
    callback_every: int = 100,
    log_every: int = 10,
    device: str | torch.device | None = None,
    show_progress: bool = True,
) -> History:
    r"""Train a `VAE` or `CVAE` for ``num_steps`` Adam steps on dynamically binarized MNIST-5k.

    Each step: draw a batch of grey images, binarize it afresh (`genimg_lib.data.dynamic_binarize`),
    run ``model(x) -> (logits, mu, logvar)`` and minimise `vae_loss` with the KL weight

    .. math:: \beta_t = \beta \cdot \min(1, t / T_{\text{warm-up}})

    (``kl_warmup_steps`` = :math:`T_{\text{warm-up}}`; 0 means no warm-up). The history holds
    ``loss``, ``recon``, ``kl``, ``elbo`` (= -recon - kl, per image, nats) and ``beta_t``
    every ``log_every`` steps; ``callback(step, history, model)`` runs every
    ``callback_every`` steps (the chapter's live dashboard). ``x_train`` defaults to the
    4,000 MNIST-5k training images in [0, 1]; a `CVAE` also needs ``y_train`` (defaults to
    their labels). Stops with `NonFiniteLossError` on a NaN. Chapter: Building a VAE.
    """
    from genimg_lib.data import dynamic_binarize, infinite_batches, load_mnist5k, make_loader

    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if kl_warmup_steps < 0:
        raise ValueError(f"kl_warmup_steps must be >= 0, got {kl_warmup_steps}")
    conditional = getattr(model, "num_classes", 0) > 0
    if x_train is None:
        x_train, labels = load_mnist5k("train")
        y_train = labels if y_train is None else y_train
    if x_train.numel() and (x_train.min() < 0 or x_train.max() > 1):
        raise ValueError("x_train must hold pixel probabilities in [0, 1]; load with value_range=(0, 1)")
    if conditional and y_train is None:
        raise ValueError("a conditional model needs y_train (the labels of x_train)")
    if device is None:
        device = next(model.parameters()).device
    model.to(device).train()
    loader = make_loader(x_train, y_train if conditional else None, batch_size=batch_size, seed=seed)
    batches = infinite_batches(loader)
    g_bin = torch.Generator().manual_seed(seed + 1)  # binarization noise
    g_z = torch.Generator().manual_seed(seed + 2)  # reparameterization noise
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    steps = progress(num_steps, desc="VAE") if show_progress else range(num_steps)
    for step in steps:
        batch = next(batches)
        x = dynamic_binarize(batch[0], generator=g_bin).to(device)
        y = batch[1].to(device) if conditional else None
        beta_t = beta * min(1.0, step / kl_warmup_steps) if kl_warmup_steps > 0 else beta
        # forward: encode, reparameterize, decode (z drawn with our generator on the CPU)
        mu, logvar = model.encode(x, y) if conditional else model.encode(x)
        eps = torch.randn(mu.shape, generator=g_z).to(device)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = model.decode(z, y) if conditional else model.decode(z)
        loss, recon, kl = vae_loss(x, logits, mu, logvar, beta=beta_t, free_bits=free_bits)
        check_finite(step, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == num_steps - 1:
            history.log(step, loss=loss, recon=recon, kl=kl, elbo=-(recon + kl), beta_t=beta_t)
        if callback is not None and (step % callback_every == 0 or step == num_steps - 1):
            model.eval()
            callback(step, history, model)
            model.train()
    model.eval()
    return history


@torch.no_grad()
def evaluate_vae(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    iwae_k: int = 100,
    batch_size: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    r"""Test metrics of a VAE on binary images ``x``: NLL (IWAE), ELBO, rate, distortion, active units.

    - ``nll_nats`` = :math:`-\frac1N\sum_n \hat{\mathcal L}_K(x_n)` with K = ``iwae_k``
      (``VAE.estimate_log_px``), and ``bits_per_dim`` = nll / (784 ln 2);
    - ``elbo_nats`` (one z per image), ``rate`` = mean KL, ``distortion`` = mean
      :math:`-\log p(x\mid z)`;
    - ``active_units``: dimensions with :math:`\operatorname{Cov}_x(\mathbb E_q[z_j]) > 0.01`
      (Burda et al., 2016), with ``mu_var_per_dim`` and ``kl_per_dim`` (lists, one value per unit).

    Chapters: Building a VAE; Exploring the latent space.
    """
    from genimg_lib.losses import bernoulli_log_likelihood, bits_per_dim

    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    conditional = getattr(model, "num_classes", 0) > 0
    mus, kls, recons = [], [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device) if conditional else None
        mu, logvar = model.encode(xb, yb) if conditional else model.encode(xb)
        eps = torch.randn(mu.shape, generator=g).to(device)
        logits = model.decode(mu + torch.exp(0.5 * logvar) * eps, yb) if conditional else model.decode(
            mu + torch.exp(0.5 * logvar) * eps
        )
        recons.append(-bernoulli_log_likelihood(xb, logits).cpu())
        kls.append(kl_per_dim(mu, logvar).cpu())
        mus.append(mu.cpu())
    mu_all, kl_all, recon_all = torch.cat(mus), torch.cat(kls), torch.cat(recons)
    log_px = model.estimate_log_px(
        x, num_samples=iwae_k, y=y if conditional else None, batch_size=batch_size, generator=g
    )
    nll = -log_px.mean().item()
    rate, distortion = kl_all.sum(1).mean().item(), recon_all.mean().item()
    return {
        "nll_nats": nll,
        "bits_per_dim": float(bits_per_dim(nll)),
        "elbo_nats": -(rate + distortion),
        "iwae_k": iwae_k,
        "num_test_images": len(x),
        "rate": rate,
        "distortion": distortion,
        "active_units": int((mu_all.var(dim=0) > 0.01).sum().item()),
        "kl_per_dim": kl_all.mean(0).tolist(),
        "mu_var_per_dim": mu_all.var(dim=0).tolist(),
    }


# Every shipped Part II checkpoint, reproducible with ``python -m genimg_lib.train vae --config NAME``.
VAE_CONFIGS: dict[str, dict] = {
    "vae_conv_z16": dict(
        cls="VAE", model=dict(z_dim=16, arch="conv", channels=32),
        train=dict(num_steps=4000, batch_size=128, lr=1e-3), iwae_k=1000,
    ),
    "vae_mlp_z2": dict(
        cls="VAE", model=dict(z_dim=2, arch="mlp", hidden_dims=[256]),
        train=dict(num_steps=3000, batch_size=128, lr=1e-3), iwae_k=100,
    ),
    "cvae_z8": dict(
        cls="CVAE", model=dict(z_dim=8, arch="conv", channels=32, num_classes=10),
        train=dict(num_steps=3000, batch_size=128, lr=1e-3), iwae_k=100,
    ),
    # Not a model: the results of the short runs behind "Exploring the latent space"
    # (a beta sweep and a posterior-collapse study), stored as tensors in one small file.
    "vae_latent_study": dict(
        cls=None,
        sweep=dict(betas=[0.1, 0.3, 1.0, 3.0, 10.0], model=dict(z_dim=16, arch="mlp", hidden_dims=[256]),
                   train=dict(num_steps=1000, batch_size=128, lr=1e-3)),
        collapse=dict(model=dict(z_dim=32, arch="mlp", hidden_dims=[256]),
                      train=dict(num_steps=1000, batch_size=128, lr=1e-3, beta=4.0),
                      runs={"plain": {}, "kl_warmup": dict(kl_warmup_steps=500), "free_bits": dict(free_bits=0.5)}),
        iwae_k=100,
    ),
}


def _run_latent_study(cfg: dict, steps_override: int | None, seed: int) -> tuple[dict, dict]:
    """Train the beta sweep and the collapse runs; returns (tensors to save, summary metrics)."""
    from genimg_lib.data import load_mnist5k
    from genimg_lib.models import VAE

    x_test, y_test = load_mnist5k("test", binarize="static")
    x_show = x_test[:8]
    out: dict = {"betas": torch.tensor(cfg["sweep"]["betas"])}
    rates, dists, nlls, samples, recons, kld, muv = [], [], [], [], [], [], []
    for beta in cfg["sweep"]["betas"]:
        torch.manual_seed(seed)
        model = VAE(**cfg["sweep"]["model"])
        tr = dict(cfg["sweep"]["train"])
        if steps_override:
            tr["num_steps"] = steps_override
        train_vae(model, beta=beta, seed=seed, show_progress=False, **tr)
        m = evaluate_vae(model, x_test, iwae_k=cfg["iwae_k"], seed=seed)
        print(f"  beta={beta:g}: rate {m['rate']:.2f}, distortion {m['distortion']:.2f}, NLL {m['nll_nats']:.2f}", flush=True)
        rates.append(m["rate"]); dists.append(m["distortion"]); nlls.append(m["nll_nats"])
        kld.append(torch.tensor(m["kl_per_dim"]))
        muv.append(torch.tensor(m["mu_var_per_dim"]))
        samples.append(model.sample(16, generator=torch.Generator().manual_seed(seed)))
        with torch.no_grad():
            mu, _ = model.encode(x_show)
            recons.append(torch.sigmoid(model.decode(mu)))
    out.update(rate=torch.tensor(rates), distortion=torch.tensor(dists), nll=torch.tensor(nlls),
               samples=torch.stack(samples).half(), recons=torch.stack(recons).half(), x_show=x_show.half(),
               kl_per_dim=torch.stack(kld), mu_var_per_dim=torch.stack(muv))
    runs = cfg["collapse"]["runs"]
    out["collapse_runs"] = list(runs)
    for name, extra in runs.items():
        torch.manual_seed(seed)
        model = VAE(**cfg["collapse"]["model"])
        tr = dict(cfg["collapse"]["train"])
        if steps_override:
            tr["num_steps"] = steps_override
        hist = train_vae(model, seed=seed, show_progress=False, **tr, **extra)
        m = evaluate_vae(model, x_test, iwae_k=cfg["iwae_k"], seed=seed)
        print(f"  collapse {name}: active {m['active_units']}, KL {m['rate']:.2f}, NLL {m['nll_nats']:.2f}", flush=True)
        out[f"collapse_{name}"] = {
            "kl_per_dim": torch.tensor(m["kl_per_dim"]),
            "mu_var_per_dim": torch.tensor(m["mu_var_per_dim"]),
            "metrics": torch.tensor([m["active_units"], m["rate"], m["distortion"], m["elbo_nats"], m["nll_nats"]]),
            "kl_curve": torch.tensor(hist["kl"]),
            "kl_curve_steps": torch.tensor(hist.steps("kl")),
        }
    out["collapse_metric_names"] = ["active_units", "rate", "distortion", "elbo_nats", "nll_nats"]
    summary = {f"beta_{b:g}_nll": n for b, n in zip(cfg["sweep"]["betas"], nlls)}
    summary.update({f"{k}_active_units": int(out[f"collapse_{k}"]["metrics"][0]) for k in runs})
    summary["iwae_k"] = cfg["iwae_k"]
    return out, summary


@subcommand("vae", "train a shipped VAE/CVAE (or the latent-space study) from scratch: --config NAME")
def vae_command(argv: list[str]) -> int:
    """``python -m genimg_lib.train vae --config vae_conv_z16`` rebuilds that checkpoint and its metrics."""
    import argparse
    import json
    import time
    from pathlib import Path

    from genimg_lib.checkpoints import WEIGHTS_DIR, register_shipped, save_checkpoint
    from genimg_lib.data import load_mnist5k
    from genimg_lib.device import get_device
    from genimg_lib.models import MODEL_CLASSES, count_parameters

    parser = argparse.ArgumentParser(prog="python -m genimg_lib.train vae", description=vae_command.__doc__)
    parser.add_argument("--config", required=True, help=f"one of {sorted(VAE_CONFIGS)}")
    parser.add_argument("--steps", type=int, default=None, help="override the number of training steps (a quick test)")
    parser.add_argument("--iwae-k", type=int, default=None, help="override K of the IWAE NLL estimate")
    parser.add_argument("--out-dir", default=str(WEIGHTS_DIR), help="where to write the file (default: the shipped weights)")
    parser.add_argument("--no-register", action="store_true", help="do not write MANIFEST.json")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: auto)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.config not in VAE_CONFIGS:
        print(f"unknown config {args.config!r}; choose one of {sorted(VAE_CONFIGS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cfg = json.loads(json.dumps(VAE_CONFIGS[args.config]))  # a deep copy
    if args.iwae_k:
        cfg["iwae_k"] = args.iwae_k
    device = get_device(args.device)
    command = f"python -m genimg_lib.train vae --config {args.config}"
    out_path = Path(args.out_dir) / f"{args.config}.pt"
    t0 = time.perf_counter()
    if cfg["cls"] is None:
        results, metrics = _run_latent_study(cfg, args.steps, args.seed)
        seconds = time.perf_counter() - t0
        save_checkpoint({"results": results, "config": cfg}, out_path)
        steps = cfg["sweep"]["train"]["num_steps"] if not args.steps else args.steps
        cost = {"seconds": round(seconds, 1), "device": f"{device} ({torch.get_num_threads()} threads)",
                "steps": steps * (len(cfg["sweep"]["betas"]) + len(cfg["collapse"]["runs"]))}
        info = dict(family="results", config=cfg, cost=cost, metrics=metrics)
    else:
        torch.manual_seed(args.seed)
        model = MODEL_CLASSES[cfg["cls"]](**cfg["model"]).to(device)
        train = cfg["train"]
        if args.steps is not None:
            train["num_steps"] = args.steps
        history = train_vae(model, seed=args.seed, device=device, **train)
        seconds = time.perf_counter() - t0
        save_checkpoint({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": cfg["model"]}, out_path)
        cost = {"seconds": round(seconds, 1), "device": f"{device} ({torch.get_num_threads()} threads)",
                "steps": train["num_steps"], "batch_size": train["batch_size"]}
        x_test, y_test = load_mnist5k("test", binarize="static")
        # a quick K <= 100 estimate first, so that the checkpoint is usable while the K = 1000 one runs
        for k in sorted({min(100, cfg["iwae_k"]), cfg["iwae_k"]}):
            t1 = time.perf_counter()
            metrics = evaluate_vae(model, x_test, y_test, iwae_k=k, seed=args.seed)
            metrics["eval_seconds"] = round(time.perf_counter() - t1, 1)
            metrics["train_elbo_last10_logged"] = history.mean("elbo", last=10)
            metrics["num_parameters"] = count_parameters(model)
            info = dict(**{"class": cfg["cls"]}, family="vae", config=cfg["model"], cost=cost, metrics=metrics)
            print(f"{args.config} (K = {k}): NLL {metrics['nll_nats']:.2f} nats, {metrics['bits_per_dim']:.4f} bits/dim", flush=True)
            if not args.no_register and out_path.resolve().parent == WEIGHTS_DIR.resolve():
                register_shipped(args.config, out_path, command, **info)
    print(f"{args.config}: {json.dumps(info['metrics'])[:600]}")
    print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB) after {seconds:.0f} s of training")
    if not args.no_register:
        if out_path.resolve().parent != WEIGHTS_DIR.resolve():
            print("not registered: --out-dir is not the shipped weights folder", file=sys.stderr)
        else:
            register_shipped(args.config, out_path, command, **info)
            print(f"registered {args.config} in {WEIGHTS_DIR / 'MANIFEST.json'}")
    return 0


# ===========================================================================
# Part III: GANs (train_gan, the ``gan`` subcommand)
# ===========================================================================

# --- Part III-a: the toy GAN loop and snapshots (A GAN you can watch)
def train_toy_gan(
    G: torch.nn.Module,
    D: torch.nn.Module,
    toy,
    num_steps: int,
    loss: str = "non_saturating",
    batch_size: int = 256,
    lr: float = 1e-3,
    lr_d: float | None = None,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
    gp_weight: float = 10.0,
    snapshot_every: int | None = None,
    num_fixed: int = 512,
    limits: tuple[float, float] = (-3.0, 3.0),
    resolution: int = 60,
    callback: Callable | None = None,
    seed: int = 0,
    show_progress: bool = False,
):
    r"""Train a GAN on a 2-D toy distribution, recording snapshots to draw.

    Each step is the game of Goodfellow et al. (2014), written out:

    1. ``n_critic`` times, update D on a fresh real batch and a fake batch:
       minimise the discriminator loss (for ``wasserstein_gp``, plus
       :math:`\lambda\,\mathbb E(\lVert\nabla f(\hat x)\rVert - 1)^2`, ``gp_weight`` = :math:`\lambda`);
    2. update G once on a fresh fake batch: minimise the generator loss.

    ``loss`` is one of ``genimg_lib.gan_lab.TOY_GAN_LOSSES``: ``"minimax"`` (saturating
    G loss), ``"non_saturating"``, ``"hinge"`` or ``"wasserstein_gp"``. Both players use
    Adam with ``betas``; D's learning rate is ``lr_d`` (default ``lr``).

    Every ``snapshot_every`` steps (and at step 0 and at the end) a
    `genimg_lib.gan_lab.ToyGANSnapshot` is taken on ``num_fixed`` fixed latent codes and
    passed to ``callback(snapshot)`` if given. Real batches are ``toy.sample(batch_size,
    seed=...)`` with seeds derived from ``seed``; z comes from a generator seeded with
    ``seed``. Initialise G and D under a fixed seed for a reproducible run.

    Returns ``(history, snapshots)``: a `History` with ``loss_D``, ``loss_G`` (and
    ``grad_norm`` for ``wasserstein_gp``) per step, and the list of snapshots.
    Chapter: A GAN you can watch.
    """
    from genimg_lib.gan_lab import check_toy_loss, generator_loss_fn, take_snapshot
    from genimg_lib.losses import d_loss_wasserstein, gan_losses, gradient_penalty

    check_toy_loss(loss)
    if not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"n_critic must be an integer >= 1 (D updates per G update), got {n_critic!r}")
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    if snapshot_every is not None and snapshot_every < 1:
        raise ValueError(f"snapshot_every must be >= 1 or None, got {snapshot_every!r}")
    d_loss_fn = d_loss_wasserstein if loss == "wasserstein_gp" else gan_losses(loss)[0]
    g_loss_fn = generator_loss_fn(loss)
    device = next(G.parameters()).device
    latent_dim = G.latent_dim
    gen = torch.Generator().manual_seed(seed)
    z_fixed = torch.randn(num_fixed, latent_dim, generator=gen).to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr if lr_d is None else lr_d, betas=betas)
    history, snapshots = History(), []

    def snap(step: int, losses: dict) -> None:
        G.eval(), D.eval()
        s = take_snapshot(step, G, D, z_fixed, loss, limits, resolution, losses)
        G.train(), D.train()
        snapshots.append(s)
        if callback is not None:
            callback(s)

    if snapshot_every is not None:
        snap(0, {})
    batch_seed = seed * 1_000_003
    steps = progress(num_steps, desc=f"toy GAN ({loss})") if show_progress else range(num_steps)
    for step in steps:
        # (1) update D: maximise log D(x) + log(1 - D(G(z))) (or the critic's score gap)
        for _ in range(n_critic):
            batch_seed += 1
            x = toy.sample(batch_size, seed=batch_seed).to(device)
            z = torch.randn(batch_size, latent_dim, generator=gen).to(device)
            with torch.no_grad():
                fake = G(z)
            loss_D = d_loss_fn(D(x), D(fake))
            if loss == "wasserstein_gp":
                penalty, grad_norms = gradient_penalty(D, x, fake, generator=gen)
                loss_D = loss_D + gp_weight * penalty
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()
        # (2) update G: make D call the fakes real
        z = torch.randn(batch_size, latent_dim, generator=gen).to(device)
        loss_G = g_loss_fn(D(G(z)))
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
        check_finite(step, loss_D=loss_D, loss_G=loss_G)
        history.log(step + 1, loss_D=loss_D, loss_G=loss_G)
        if loss == "wasserstein_gp":
            history.log(step + 1, grad_norm=grad_norms.mean())
        done = step + 1
        if snapshot_every is not None and (done % snapshot_every == 0 or done == num_steps):
            snap(done, {"loss_D": loss_D.item(), "loss_G": loss_G.item()})
    return history, snapshots




# --- Part III-b: train_gan and the ``gan`` subcommand (DCGAN, WGAN-GP, cGAN)
# Chapters: DCGAN step by step (gan_03_dcgan), Making GANs train (gan_04_making_gans_train).
GAN_TRAIN_LOSSES = ("minimax", "non_saturating", "wasserstein_gp", "hinge")


def _grad_norm(parameters) -> float:
    """The l2 norm of all the gradients of ``parameters`` taken together."""
    sq = [p.grad.detach().pow(2).sum() for p in parameters if p.grad is not None]
    return torch.stack(sq).sum().sqrt().item() if sq else 0.0


def train_gan(
    G: torch.nn.Module,
    D: torch.nn.Module,
    batches: Iterator,
    num_steps: int,
    loss: str = "non_saturating",
    n_critic: int = 1,
    lr_G: float = 2e-4,
    lr_D: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    gp_weight: float = 10.0,
    conditional: bool = False,
    callback: Callable[[int, History], None] | None = None,
    generator: torch.Generator | None = None,
    desc: str = "GAN",
) -> History:
    r"""Train a GAN for ``num_steps`` generator steps; returns the `History`.

    Each step is (1) ``n_critic`` updates of D on fresh real batches, then (2) one
    update of G:

    .. math::
       \text{(1)}\ \min_D \mathcal L_D(D(x), D(G(z))) \;[+\ \lambda\,\mathrm{GP}],\qquad
       \text{(2)}\ \min_G \mathcal L_G(D(G(z)))

    with the losses of `genimg_lib.losses` chosen by ``loss``: ``"minimax"``
    (saturating G loss), ``"non_saturating"``, ``"wasserstein_gp"`` (WGAN-GP:
    critic loss plus ``gp_weight`` times the gradient penalty on interpolates,
    Gulrajani et al. 2017) or ``"hinge"``. ``lr_G`` and ``lr_D`` may differ (TTUR,
    Heusel et al. 2017); both optimizers are Adam with ``betas``.

    ``batches`` yields ``(x,)`` or ``(x, y)`` with ``x`` of shape ``(N, 1, 28, 28)``
    in [-1, 1] (checked on the first batch) and labels ``y`` of shape ``(N,)`` (used
    when ``conditional``). ``G(z[, y])`` maps ``(N, G.z_dim)`` noise to images;
    ``D(x[, y])`` returns ``(N,)`` logits or scores. Noise (and the fake labels of a
    conditional GAN, drawn uniformly) come from ``generator``; a conditional WGAN-GP
    gives its critic's fakes the real batch's labels, so that each interpolate has one label.

    Logged once per generator step: ``loss_D``, ``loss_G``, ``D_real`` and
    ``D_fake`` (mean :math:`D(x)` and :math:`D(G(z))` on the last D step: probabilities
    for the minimax and non-saturating losses, raw scores otherwise),
    ``grad_norm_G`` (norm of G's parameter gradient) and, for WGAN-GP, ``gp`` and
    ``grad_norm`` (mean :math:`\lVert\nabla_{\hat x} f(\hat x)\rVert` on the
    interpolates). ``callback(step, history)`` runs after every step.
    Chapters: DCGAN step by step; Making GANs train.
    """
    from genimg_lib.losses import d_loss_hinge, d_loss_minimax, d_loss_wasserstein, g_loss_nonsaturating
    from genimg_lib.losses import g_loss_saturating, g_loss_wasserstein, gradient_penalty
    from genimg_lib.models import check_tanh_range

    if loss not in GAN_TRAIN_LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}; choose one of {list(GAN_TRAIN_LOSSES)}")
    if not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"n_critic is the number of D updates per G update and must be an integer >= 1, got {n_critic!r}")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    d_loss_fn = {"minimax": d_loss_minimax, "non_saturating": d_loss_minimax,
                 "wasserstein_gp": d_loss_wasserstein, "hinge": d_loss_hinge}[loss]
    g_loss_fn = {"minimax": g_loss_saturating, "non_saturating": g_loss_nonsaturating,
                 "wasserstein_gp": g_loss_wasserstein, "hinge": g_loss_wasserstein}[loss]
    as_prob = loss in ("minimax", "non_saturating")
    device = next(G.parameters()).device
    opt_G = torch.optim.Adam(G.parameters(), lr=lr_G, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr_D, betas=betas)
    history = History()
    G.train()
    D.train()

    def noise_and_labels(n: int):
        z = torch.randn(n, G.z_dim, generator=generator).to(device)
        y = torch.randint(0, G.num_classes, (n,), generator=generator).to(device) if conditional else None
        return z, y

    def cond(y):  # labels are passed only to a conditional model
        return (y,) if conditional else ()

    checked = False
    for step in progress(num_steps, desc=desc):
        # (1) update D: maximize E[log D(x)] + E[log(1 - D(G(z)))]  (or the critic's score gap),
        #     i.e. minimize d_loss, n_critic times on fresh batches; G is held fixed (fake.detach()).
        for _ in range(n_critic):
            batch = next(batches)
            x = batch[0].to(device)
            y_real = batch[1].to(device) if conditional else None
            if conditional and len(batch) < 2:
                raise ValueError("conditional=True needs batches of (x, y); build the loader with labels")
            if not checked:
                check_tanh_range(x)
                checked = True
            z, y_fake = noise_and_labels(len(x))
            if conditional and loss == "wasserstein_gp":
                y_fake = y_real  # interpolate real and fake of the same class: one label per pair
            with torch.no_grad():
                fake = G(z, *cond(y_fake))
            real_out = D(x, *cond(y_real))
            fake_out = D(fake, *cond(y_fake))
            loss_D = d_loss_fn(real_out, fake_out)
            if loss == "wasserstein_gp":
                critic = (lambda t: D(t, y_real)) if conditional else D
                gp, grad_norms = gradient_penalty(critic, x, fake, generator=generator)
                loss_D = loss_D + gp_weight * gp
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()

        # (2) update G: minimize g_loss(D(G(z))), e.g. -E[log D(G(z))] (non-saturating);
        #     gradients flow through D into G, but only G's optimizer steps.
        z, y_fake = noise_and_labels(len(x))
        loss_G = g_loss_fn(D(G(z, *cond(y_fake)), *cond(y_fake)))
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
        opt_D.zero_grad(set_to_none=True)  # D's grads from (2) are not used

        check_finite(step, loss_D=loss_D, loss_G=loss_G)
        with torch.no_grad():
            d_real = torch.sigmoid(real_out).mean() if as_prob else real_out.mean()
            d_fake = torch.sigmoid(fake_out).mean() if as_prob else fake_out.mean()
        row = dict(loss_D=loss_D, loss_G=loss_G, D_real=d_real, D_fake=d_fake, grad_norm_G=_grad_norm(G.parameters()))
        if loss == "wasserstein_gp":
            row.update(gp=gp, grad_norm=grad_norms.mean())
        history.log(step, **row)
        if callback is not None:
            callback(step, history)
    return history


GAN_CONFIGS: dict[str, dict] = {
    # Radford et al. (2016): non-saturating loss, Adam(2e-4, betas=(0.5, 0.999)).
    "dcgan": dict(model=dict(z_dim=64, width=32), loss="non_saturating", n_critic=1, lr_G=2e-4, lr_D=2e-4,
                  betas=(0.5, 0.999), steps=1500, batch_size=128, conditional=False),
    # Gulrajani et al. (2017): lambda = 10, n_critic = 5, Adam(1e-4, betas=(0.5, 0.9)).
    "wgan_gp": dict(model=dict(z_dim=64, width=32), loss="wasserstein_gp", n_critic=5, lr_G=1e-4, lr_D=1e-4,
                    betas=(0.5, 0.9), steps=1000, batch_size=64, conditional=False),
    # Mirza & Osindero (2014): the label goes into both G (concatenated to z) and D (projection).
    "cgan": dict(model=dict(z_dim=64, width=32, num_classes=10), loss="non_saturating", n_critic=1, lr_G=2e-4,
                 lr_D=2e-4, betas=(0.5, 0.999), steps=2000, batch_size=128, conditional=True),
}


def fixed_noise(model, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed noise (and labels) whose samples the ``gan`` runs store as they train.

    64 draws for an unconditional model (an 8x8 grid); 60 for a conditional one, with
    labels ``0..9`` repeated so that a grid of 10 columns has one class per column.
    """
    g = torch.Generator().manual_seed(seed)
    if model.num_classes:
        return torch.randn(60, model.z_dim, generator=g), torch.arange(model.num_classes).repeat(60 // model.num_classes)
    return torch.randn(64, model.z_dim, generator=g), None


def run_gan_config(name: str, steps: int | None = None, seed: int = 0, snapshot_steps=(0, 100, 250, 500, 1000),
                   callback: Callable[[int, History], None] | None = None) -> tuple:
    """Train the shipped GAN ``name`` (a key of `GAN_CONFIGS`) from scratch.

    Returns ``(model, history, snapshots, seconds)``: a `genimg_lib.models.DCGAN`
    in eval mode, the `History`, the fixed-noise samples at ``snapshot_steps`` and at
    the end (``{"steps": (S,), "images": (S, n, 1, 28, 28) uint8}``), and the training
    wall time. This is what ``python -m genimg_lib.train gan --config name`` runs.
    """
    from genimg_lib.data import infinite_batches, load_mnist5k, make_loader
    from genimg_lib.device import get_device, seed_everything
    from genimg_lib.models import DCGAN

    if name not in GAN_CONFIGS:
        raise ValueError(f"unknown GAN config {name!r}; choose one of {sorted(GAN_CONFIGS)}")
    cfg = GAN_CONFIGS[name]
    steps = cfg["steps"] if steps is None else steps
    seed_everything(seed)
    device = get_device()
    x, y = load_mnist5k("train", value_range=(-1, 1))
    batches = infinite_batches(make_loader(x, y, batch_size=cfg["batch_size"], seed=seed))
    model = DCGAN(**cfg["model"]).to(device)
    z_fix, y_fix = fixed_noise(model)
    shots_steps, shots = [], []

    def snapshot(step):
        was_training = model.G.training
        model.G.eval()
        with torch.no_grad():
            img = (model.G(z_fix.to(device), *(() if y_fix is None else (y_fix.to(device),))) + 1) / 2
        model.G.train(was_training)
        shots_steps.append(step)
        shots.append((img.clamp(0, 1) * 255).round().to(torch.uint8).cpu())

    def cb(step, history):
        if step + 1 in snapshot_steps:
            snapshot(step + 1)
        if callback is not None:
            callback(step, history)

    import time

    snapshot(0)
    start = time.perf_counter()
    history = train_gan(model.G, model.D, batches, steps, loss=cfg["loss"], n_critic=cfg["n_critic"],
                        lr_G=cfg["lr_G"], lr_D=cfg["lr_D"], betas=cfg["betas"], conditional=cfg["conditional"],
                        callback=cb, generator=torch.Generator().manual_seed(seed), desc=name)
    seconds = time.perf_counter() - start
    if shots_steps[-1] != steps:
        snapshot(steps)
    model.eval()
    return model, history, {"steps": torch.tensor(shots_steps), "images": torch.stack(shots)}, seconds


def history_to_tensors(history: History) -> dict[str, dict[str, torch.Tensor]]:
    """A `History` as ``{key: {"step": int32 tensor, "value": float32 tensor}}`` (compact to save)."""
    return {k: {"step": torch.tensor(history.steps(k), dtype=torch.int32),
                "value": torch.tensor(history[k], dtype=torch.float32)} for k in history}


@subcommand("gan", "train a DCGAN, WGAN-GP or conditional GAN on MNIST-5k (--config dcgan|wgan_gp|cgan)")
def gan_main(argv: list[str]) -> int:
    """``python -m genimg_lib.train gan --config {dcgan,wgan_gp,cgan} [--steps N] [--out DIR]``."""
    import argparse
    from pathlib import Path

    import genimg_lib.checkpoints as ckpt

    parser = argparse.ArgumentParser(prog="python -m genimg_lib.train gan",
                                     description="Train one of the book's GANs on MNIST-5k and ship it.")
    parser.add_argument("--config", required=True, choices=sorted(GAN_CONFIGS), help="which shipped GAN to train")
    parser.add_argument("--steps", type=int, default=None, help="generator steps (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="write the checkpoint here instead of shipping it")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = round(os.getloadavg()[0], 1)  # how busy the machine was: costs are wall time
    model, history, snapshots, seconds = run_gan_config(args.config, steps=args.steps, seed=args.seed)
    cfg = GAN_CONFIGS[args.config]
    steps = cfg["steps"] if args.steps is None else args.steps
    state = {"model": model.state_dict(), "config": cfg["model"], "history": history_to_tensors(history),
             "snapshots": snapshots}
    device = str(next(model.parameters()).device)
    command = f"python -m genimg_lib.train gan --config {args.config}"
    if args.out is not None:
        path = Path(args.out) / f"gan_{args.config}.pt"
        ckpt.save_checkpoint(state, path)
        print(f"saved {path} ({seconds:.0f} s, {steps} steps on {device})")
        return 0
    path = ckpt.WEIGHTS_DIR / f"gan_{args.config}.pt"
    ckpt.save_checkpoint(state, path)
    train_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if k != "model"}
    train_cfg["steps"] = steps
    entry = ckpt.register_shipped(
        f"gan_{args.config}", path, command + ("" if args.steps is None else f" --steps {args.steps}"),
        **{"class": "DCGAN", "config": cfg["model"], "family": "gan", "training": train_cfg,
           "cost": {"seconds": round(seconds, 1), "device": device, "steps": steps,
                    "threads": args.threads, "load_average_at_start": load_before},
           "metrics": {}},
    )
    print(f"shipped gan_{args.config}: {entry['bytes']} bytes, {seconds:.0f} s, {steps} steps on {device}")
    return 0


# ===========================================================================
# Part IV: the domain classifier (the ``classifier`` subcommand)
# ===========================================================================
@subcommand("classifier", "train and ship the MNIST classifier whose features the metrics use (Part IV)")
def _classifier_command(argv: list[str]) -> int:
    from genimg_lib.metrics import classifier_cli

    return classifier_cli(argv)


@subcommand("score", "score every shipped VAE/GAN (FID, KID, precision, recall, coverage) into the manifest")
def _score_command(argv: list[str]) -> int:
    from genimg_lib.metrics import score_cli

    return score_cli(argv)


if __name__ == "__main__":
    raise SystemExit(main())
