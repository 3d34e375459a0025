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
def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""The Gaussian KL to :math:`\mathcal N(0, I)` per latent dimension, ``(N, d)`` (nats).

    .. math:: \mathrm{KL}_j = \tfrac12\big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big)

    Its sum over ``j`` is `genimg_lib.losses.gaussian_kl`. Averaged over the data, it shows
    which units carry information (posterior collapse). Chapter: Exploring the latent space.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def vae_loss(
    x: torch.Tensor,
    logits: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The VAE training loss and its two terms, averaged over the batch.

    .. math:: \text{loss} = \underbrace{-\tfrac1N\sum_n \log p(x_n\mid z_n)}_{\text{recon}}
       + \beta \sum_j \max\big(\lambda,\ \tfrac1N\textstyle\sum_n \mathrm{KL}_{nj}\big)

    with :math:`\lambda` = ``free_bits`` nats per dimension (0: the plain
    :math:`\beta`-weighted ELBO, whose KL is ``gaussian_kl(mu, logvar).mean()``; Kingma
    et al., 2016, for free bits). Returns ``(loss, recon, kl)`` where ``kl`` is the
    *unclamped* batch-mean KL, so the logged rate is always the true one.
    Chapters: Building a VAE; Exploring the latent space.
    """
    from genimg_lib.losses import bernoulli_log_likelihood

    if beta < 0:
        raise ValueError(f"beta must be >= 0 (it weighs the KL term), got {beta}")
    if free_bits < 0:
        raise ValueError(f"free_bits must be >= 0 nats per dimension, got {free_bits}")
    if x.shape[0] != mu.shape[0]:
        raise ValueError(f"batch sizes differ: x has {x.shape[0]} rows, mu has {mu.shape[0]}")
    recon = -bernoulli_log_likelihood(x, logits).mean()  # summed over pixels, mean over batch
    kl_dims = kl_per_dim(mu, logvar).mean(dim=0)  # (d,) batch mean per dimension
    kl_term = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl_dims.sum()
    return recon + beta * kl_term, recon, kl_dims.sum()


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


# --- Part III-b: train_gan and the ``gan`` subcommand (DCGAN, WGAN-GP, cGAN)


# ===========================================================================
# Part IV: the domain classifier (the ``classifier`` subcommand)
# ===========================================================================


if __name__ == "__main__":
    raise SystemExit(main())
