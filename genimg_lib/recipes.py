"""How each shipped checkpoint is made: its recipe, the run, and shipping the result safely.

Chapters: every chapter that loads a shipped model shows its recipe and reproduces it
with ``RETRAIN = True``. The library's loops (`genimg_lib.train`) know nothing of these
choices; this module holds them, so that a reader finds in one place what each file in
``genimg_lib/weights/`` is and how to make it again:

- `RECIPES`: one entry per shipped name (the manifest's names), with its model
  configuration and training settings;
- `run_recipe`: train (and evaluate) one recipe from scratch and return a `Run`;
- `save_run`: write a `Run` to a folder and record it in that folder's manifest, in
  the safe order: validate, train, evaluate, write a temporary file, check that it loads
  back, rename it into place, and only then register it.

The command line (``python -m genimg_lib train NAME --out DIR`` or ``--ship``,
`genimg_lib.cli`) is a thin layer over these two functions.
"""

from __future__ import annotations

import copy
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from genimg_lib.checkpoints import MANIFEST_PATH, WEIGHTS_DIR, register_shipped, save_checkpoint
from genimg_lib.classifier import MNISTClassifier, classifier_accuracy, train_classifier
from genimg_lib.data import check_int, infinite_batches, load_mnist5k, make_loader
from genimg_lib.device import get_device
from genimg_lib.measures import evaluate_vae
from genimg_lib.models import CVAE, DCGAN, VAE, count_parameters
from genimg_lib.monitor import History
from genimg_lib.train import train_gan, train_vae

# ---------------------------------------------------------------------------
# The recipes, by shipped name
# ---------------------------------------------------------------------------
RECIPES: dict[str, dict[str, Any]] = {
    # --- Part II: VAEs (Building a VAE; Exploring the latent space) ------------------------
    "vae_conv_z16": dict(
        kind="vae", cls="VAE", model=dict(z_dim=16, arch="conv", channels=32),
        train=dict(num_steps=4000, batch_size=128, lr=1e-3), iwae_k=1000,
    ),
    "vae_mlp_z2": dict(
        kind="vae", cls="VAE", model=dict(z_dim=2, arch="mlp", hidden_dims=[256]),
        train=dict(num_steps=3000, batch_size=128, lr=1e-3), iwae_k=100,
    ),
    "cvae_z8": dict(
        kind="vae", cls="CVAE", model=dict(z_dim=8, arch="conv", channels=32, num_classes=10),
        train=dict(num_steps=3000, batch_size=128, lr=1e-3), iwae_k=100,
    ),
    # Not a model: the results of the short runs behind "Exploring the latent space"
    # (a beta sweep and a posterior-collapse study), stored as tensors in one small file.
    "vae_latent_study": dict(
        kind="vae_study",
        sweep=dict(betas=[0.1, 0.3, 1.0, 3.0, 10.0], model=dict(z_dim=16, arch="mlp", hidden_dims=[256]),
                   train=dict(num_steps=1000, batch_size=128, lr=1e-3)),
        collapse=dict(model=dict(z_dim=32, arch="mlp", hidden_dims=[256]),
                      train=dict(num_steps=1000, batch_size=128, lr=1e-3, beta=4.0),
                      runs={"plain": {}, "kl_warmup": dict(kl_warmup_steps=500), "free_bits": dict(free_bits=0.5)}),
        iwae_k=100,
    ),
    # --- Part III: GANs (DCGAN step by step; Making GANs train) ----------------------------
    # Radford et al. (2016): DCGAN's networks and the non-saturating loss, with what won the races of
    # benchmarks/race.py (issue #11): BatchNorm after D's second convolution, as in pytorch/examples'
    # dcgan, and batches of 32; then the learning rate: Adam(2e-3, betas=(0.5, 0.999)) reached FID
    # 1.72 at 4,000 steps where 4e-4 reached 2.60 (benchmarks/README.md). 10,000 steps, ~5 CPU minutes.
    "gan_dcgan": dict(
        kind="gan", model=dict(z_dim=64, width=32, d_norm="batch"), loss="non_saturating", n_critic=1,
        lr_G=2e-3, lr_D=2e-3, betas=(0.5, 0.999), num_steps=10000, batch_size=32, conditional=False,
    ),
    # Gulrajani et al. (2017): lambda = 10, n_critic = 5. Their Algorithm 1 uses Adam betas (0, 0.9);
    # (0.5, 0.9) is what their MNIST script uses, and what we use. Their lr 1e-4 and batch 64 reached
    # FID 5.56 in 1,000 steps; batches of 32 at lr 5e-4 reached 0.96 in 3,000 (benchmarks/README.md),
    # about 8 CPU minutes. No BatchNorm in the critic: the penalty is per sample.
    "gan_wgan_gp": dict(
        kind="gan", model=dict(z_dim=64, width=32), loss="wasserstein_gp", n_critic=5, lr_G=5e-4, lr_D=5e-4,
        betas=(0.5, 0.9), num_steps=3000, batch_size=32, conditional=False,
    ),
    # Mirza & Osindero (2014): the label goes into both G (concatenated to z) and D (projection).
    # BatchNorm in D and batches of 32 as in gan_dcgan, Adam 4e-4 (it met issue #11's target, FID <= 2,
    # before gan_dcgan's learning rate was raised), 8,000 steps.
    "gan_cgan": dict(
        kind="gan", model=dict(z_dim=64, width=32, num_classes=10, d_norm="batch"), loss="non_saturating",
        n_critic=1, lr_G=4e-4, lr_D=4e-4, betas=(0.5, 0.999), num_steps=8000, batch_size=32, conditional=True,
    ),
    # --- Part IV: the domain classifier (Measuring generative models) ----------------------
    "classifier": dict(
        kind="classifier", model=dict(channels=[16, 32], num_features=64),
        train=dict(num_steps=1500, batch_size=128, lr=2e-3, outlier_weight=0.5),
    ),
    # --- Part V: an encoder for the GAN (Inversion) -----------------------------------------
    # A GANEncoder trained on pairs (z, G(z)) of the shipped gan_dcgan (genimg_lib.invert):
    # code error plus 10 x image error. It depends on G's weights: retrain it whenever
    # gan_dcgan changes (the manifest records the sha256 of the GAN it was trained for,
    # and the chapter compares it).
    "gan_dcgan_encoder": dict(
        kind="gan_encoder", gan="gan_dcgan", model=dict(channels=32),
        train=dict(num_steps=2000, batch_size=128, lr=1e-3, pixel_weight=10.0),
    ),
    # --- Part VI: VAE against GAN, and hybrids (practice_01_vae_vs_gan) ---------------------
    # The shipped conv VAE fine-tuned with an adversarial term on its samples (genimg_lib.hybrid,
    # after Larsen et al. 2016): the ELBO plus adv_weight times the generator's loss of a small D.
    "vaegan_conv_z16": dict(
        kind="vaegan", init="vae_conv_z16", model=dict(d_width=16),
        train=dict(num_steps=1000, batch_size=64, lr=1e-4, lr_D=2e-4, betas=(0.5, 0.999), adv_weight=10.0),
        iwae_k=1000,
    ),
    # Not a model: the same fine-tune at several adversarial weights (0: the control, plain VAE
    # training for as many steps), each scored like the scoreboard (NLL with iwae_k, FID, precision,
    # recall, the share of grey pixels); metrics, samples and histories in one small file.
    "vaegan_sweep": dict(
        kind="vaegan_sweep", init="vae_conv_z16", model=dict(d_width=16),
        train=dict(num_steps=1000, batch_size=64, lr=1e-4, lr_D=2e-4, betas=(0.5, 0.999)),
        adv_weights=[0.0, 1.0, 3.0, 10.0, 30.0, 100.0], iwae_k=100, num_samples=1000, num_shown=32,
    ),
    # --- Part VI: Troubleshooting and FAQ (practice_03_troubleshooting) ----------------------
    # Not a model: the short sweeps behind the chapter's answers, in one small results file.
    # Budgeted for a contended 2-core machine (1 thread): a few hundred to a few thousand
    # steps per run. Shrunk to fit that budget: 8 learning rates of 800 DCGAN steps of the recipe's
    # batch of 32 (25,600 samples each), and the two longer DCGAN runs at 2,400 steps, not the
    # recipe's own 10,000.
    "faq_study": dict(
        kind="faq_study",
        # the DCGAN of the recipe "gan_dcgan" as it is when the study runs (recorded in the file),
        # with lr_G = lr_D = lr; FID, precision and recall at n = 500 against the test split
        # (and, for long_steps, the recipe's lr against the best lr of the short runs)
        gan=dict(recipe="gan_dcgan", lrs=[1e-4, 2e-4, 4e-4, 1e-3, 2e-3, 5e-3, 2e-2, 1e-1],
                 num_steps=800, eval_steps=[400, 800], num_samples=500, batch_sizes=[32, 128, 512],
                 long_steps=2400, long_eval_steps=[800, 1600, 2400]),
        # the small MLP VAE of "vae_latent_study"'s sweep; test ELBO and IWAE NLL (K = iwae_k)
        vae=dict(model=dict(z_dim=16, arch="mlp", hidden_dims=[256]), batch_size=128, lr=1e-3, num_steps=500,
                 lrs=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1], long_steps=2000,
                 long_lrs=[3e-4, 1e-3, 3e-3, 1e-2], batch_sizes=[32, 128, 512], depths=[1, 2, 4, 8]),
        # the toy GAN of "A GAN you can watch" on the ring, deeper and deeper, three seeds
        toy_gan=dict(toy="ring", depths=[2, 3, 4, 6], hidden_dim=128, z_dim=2, num_steps=1000, batch_size=256,
                     lr=1e-3, seeds=[0, 1, 2], num_samples=2000),
        # a Gaussian decoder of fixed sigma on grey digits
        # (sigma = 0.71 = 1/sqrt(2): what "squared error summed over pixels + KL" trains)
        gaussian=dict(sigmas=[0.05, 0.1, 0.2, 0.4, 0.71], model=dict(z_dim=16, arch="mlp", hidden_dims=[256]),
                      num_steps=1000, batch_size=128, lr=1e-3),
        # discriminator domination, as in "Making GANs train": a tiny DCGAN, D 5x faster and 5 steps per G step
        domination=dict(model=dict(z_dim=16, width=8), losses=["minimax", "non_saturating"], num_steps=40,
                        batch_size=32, n_critic=5, lr_D=1e-3, lr_G=2e-4),
        iwae_k=100,
    ),
}

VAE_CLASSES: dict[str, type[nn.Module]] = {"VAE": VAE, "CVAE": CVAE}
#: The recipe kinds whose evaluation estimates a test NLL with ``iwae_k`` importance samples.
LIKELIHOOD_KINDS = ("vae", "vae_study", "vaegan", "vaegan_sweep", "faq_study")
#: The steps at which a GAN recipe stores the samples of its fixed noise (plus the last step).
GAN_SNAPSHOT_STEPS = (0, 100, 250, 500, 1000)


@dataclass
class Run:
    """What `run_recipe` produced: the checkpoint to save and the manifest fields that describe it.

    ``state`` is what `save_run` writes (``{"model": state_dict, "config": ...}`` for a
    model); ``info`` holds the manifest fields other than the file, its sha256 and the
    command: ``class``, ``config``, ``family``, ``cost`` and ``metrics``.
    """

    name: str
    state: dict[str, Any]
    info: dict[str, Any]
    model: nn.Module | None = None
    history: History | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def check_recipe_name(name: str) -> dict[str, Any]:
    """The recipe ``name`` (a deep copy), or a clear error listing the shipped names."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; the shipped names are {sorted(RECIPES)}")
    return copy.deepcopy(RECIPES[name])


# ---------------------------------------------------------------------------
# Running a recipe
# ---------------------------------------------------------------------------
def run_recipe(
    name: str,
    num_steps: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    iwae_k: int | None = None,
    log: Callable[[str], None] = print,
    callback: Callable[[int, History], None] | None = None,
) -> Run:
    """Train the shipped model ``name`` from scratch with its recipe, evaluate it, and return the `Run`.

    ``num_steps`` overrides the recipe's training steps (a quick check; the result is
    then not the shipped model) and ``iwae_k`` the number of importance samples of a
    VAE's test NLL. Every argument is checked before any training starts. Nothing is
    written to disk: `save_run` does that. ``log`` receives one-line progress reports.
    """
    recipe = check_recipe_name(name)
    if num_steps is not None:
        num_steps = check_int(num_steps, "num_steps")
    if iwae_k is not None:
        iwae_k = check_int(iwae_k, "iwae_k")
        if recipe["kind"] not in LIKELIHOOD_KINDS:
            raise ValueError(f"iwae_k only applies to VAE recipes, not to {name!r}")
    seed = check_int(seed, "seed", minimum=0)
    device = get_device(None if device is None else str(device))
    cost = {"device": str(device), "threads": torch.get_num_threads(),
            "load_average_at_start": round(os.getloadavg()[0], 1)}  # how busy the machine was: costs are wall time
    run_one = {"vae": _run_vae, "vae_study": _run_latent_study, "gan": _run_gan, "classifier": _run_classifier,
               "gan_encoder": _run_gan_encoder,
               "vaegan": _run_vaegan, "vaegan_sweep": _run_vaegan_sweep, "faq_study": _run_faq_study}
    return run_one[recipe["kind"]](name, recipe, num_steps, seed, device, iwae_k, cost, log, callback)


def _run_vae(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    train = dict(recipe["train"])
    if num_steps is not None:
        train["num_steps"] = num_steps
    if iwae_k is not None:
        recipe["iwae_k"] = iwae_k
    torch.manual_seed(seed)
    model = VAE_CLASSES[recipe["cls"]](**recipe["model"]).to(device)
    start = time.perf_counter()
    history = train_vae(model, seed=seed, device=device, callback=callback, **train)
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=train["num_steps"], batch_size=train["batch_size"])
    x_test, y_test = load_mnist5k("test", binarize="static")
    start = time.perf_counter()
    metrics = evaluate_vae(model, x_test, y_test if recipe["cls"] == "CVAE" else None, iwae_k=recipe["iwae_k"], seed=seed)
    metrics.update(eval_seconds=round(time.perf_counter() - start, 1),
                   train_elbo_last10_logged=history.mean("elbo", last=10), num_parameters=count_parameters(model))
    log(f"{name}: NLL {metrics['nll_nats']:.2f} nats = {metrics['bits_per_dim']:.4f} bits/dim "
        f"(K = {recipe['iwae_k']}), {cost['seconds']:.0f} s of training")
    state = {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": recipe["model"]}
    info = {"class": recipe["cls"], "family": "vae", "config": recipe["model"], "training": train,
            "cost": cost, "metrics": metrics}
    return Run(name, state, info, model.eval(), history)


def _run_latent_study(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    """The beta sweep and the collapse runs of "Exploring the latent space": tensors to save, summary metrics."""
    if iwae_k is not None:
        recipe["iwae_k"] = iwae_k
    x_test, _ = load_mnist5k("test", binarize="static")
    x_show = x_test[:8]
    start = time.perf_counter()
    out: dict[str, Any] = {"betas": torch.tensor(recipe["sweep"]["betas"])}
    rates, dists, nlls, samples, recons, kl_dims, mu_vars = [], [], [], [], [], [], []
    for beta in recipe["sweep"]["betas"]:
        torch.manual_seed(seed)
        model = VAE(**recipe["sweep"]["model"]).to(device)
        train = dict(recipe["sweep"]["train"], **({"num_steps": num_steps} if num_steps else {}))
        train_vae(model, beta=beta, seed=seed, show_progress=False, **train)
        m = evaluate_vae(model, x_test, iwae_k=recipe["iwae_k"], seed=seed)
        log(f"  beta={beta:g}: rate {m['rate']:.2f}, distortion {m['distortion']:.2f}, NLL {m['nll_nats']:.2f}")
        rates.append(m["rate"]), dists.append(m["distortion"]), nlls.append(m["nll_nats"])
        kl_dims.append(torch.tensor(m["kl_per_dim"])), mu_vars.append(torch.tensor(m["mu_var_per_dim"]))
        samples.append(model.sample(16, generator=torch.Generator().manual_seed(seed)).cpu())
        with torch.no_grad():
            mu, _ = model.encode(x_show.to(device))
            recons.append(torch.sigmoid(model.decode(mu)).cpu())
    out.update(rate=torch.tensor(rates), distortion=torch.tensor(dists), nll=torch.tensor(nlls),
               samples=torch.stack(samples).half(), recons=torch.stack(recons).half(), x_show=x_show.half(),
               kl_per_dim=torch.stack(kl_dims), mu_var_per_dim=torch.stack(mu_vars))
    runs = recipe["collapse"]["runs"]
    out["collapse_runs"] = list(runs)
    for run_name, extra in runs.items():
        torch.manual_seed(seed)
        model = VAE(**recipe["collapse"]["model"]).to(device)
        train = dict(recipe["collapse"]["train"], **({"num_steps": num_steps} if num_steps else {}))
        history = train_vae(model, seed=seed, show_progress=False, **train, **extra)
        m = evaluate_vae(model, x_test, iwae_k=recipe["iwae_k"], seed=seed)
        log(f"  collapse {run_name}: active {m['active_units']}, KL {m['rate']:.2f}, NLL {m['nll_nats']:.2f}")
        out[f"collapse_{run_name}"] = {
            "kl_per_dim": torch.tensor(m["kl_per_dim"]),
            "mu_var_per_dim": torch.tensor(m["mu_var_per_dim"]),
            "metrics": torch.tensor([m["active_units"], m["rate"], m["distortion"], m["elbo_nats"], m["nll_nats"]]),
            "kl_curve": torch.tensor(history["kl"]),
            "kl_curve_steps": torch.tensor(history.steps("kl")),
        }
    out["collapse_metric_names"] = ["active_units", "rate", "distortion", "elbo_nats", "nll_nats"]
    metrics = {f"beta_{b:g}_nll": n for b, n in zip(recipe["sweep"]["betas"], nlls)}
    metrics.update({f"{k}_active_units": int(out[f"collapse_{k}"]["metrics"][0]) for k in runs})
    metrics["iwae_k"] = recipe["iwae_k"]
    steps = num_steps or recipe["sweep"]["train"]["num_steps"]
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=steps * (len(recipe["sweep"]["betas"]) + len(runs)))
    config = {k: v for k, v in recipe.items() if k != "kind"}
    return Run(name, {"results": out, "config": config}, {"family": "results", "config": config, "cost": cost,
                                                          "metrics": metrics})


def fixed_noise(model: DCGAN, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed noise (and labels) whose samples a GAN recipe stores as it trains.

    64 draws for an unconditional model (an 8x8 grid); 60 for a conditional one, with
    labels ``0..9`` repeated so that a grid of 10 columns has one class per column.
    """
    g = torch.Generator().manual_seed(seed)
    if model.num_classes:
        return torch.randn(60, model.z_dim, generator=g), torch.arange(model.num_classes).repeat(60 // model.num_classes)
    return torch.randn(64, model.z_dim, generator=g), None


def _run_gan(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    steps = recipe["num_steps"] if num_steps is None else num_steps
    torch.manual_seed(seed)
    x, y = load_mnist5k("train", value_range=(-1, 1))
    batches = infinite_batches(make_loader(x, y, batch_size=recipe["batch_size"], seed=seed))
    model = DCGAN(**recipe["model"]).to(device)
    z_fixed, y_fixed = fixed_noise(model)
    shot_steps, shots = [], []

    def snapshot(step: int) -> None:
        was_training = model.G.training
        model.G.eval()
        with torch.no_grad():
            labels = () if y_fixed is None else (y_fixed.to(device),)
            img = (model.G(z_fixed.to(device), *labels) + 1) / 2
        model.G.train(was_training)
        shot_steps.append(step)
        shots.append((img.clamp(0, 1) * 255).round().to(torch.uint8).cpu())

    def every_step(step: int, history: History) -> None:
        if step in GAN_SNAPSHOT_STEPS:
            snapshot(step)
        if callback is not None:
            callback(step, history)

    snapshot(0)
    start = time.perf_counter()
    history = train_gan(model.G, model.D, batches, steps, loss=recipe["loss"], n_critic=recipe["n_critic"],
                        lr_G=recipe["lr_G"], lr_D=recipe["lr_D"], betas=recipe["betas"],
                        conditional=recipe["conditional"], callback=every_step,
                        generator=torch.Generator().manual_seed(seed), desc=name)
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=steps)
    if shot_steps[-1] != steps:
        snapshot(steps)
    model.eval()
    snapshots = {"steps": torch.tensor(shot_steps), "images": torch.stack(shots)}
    log(f"{name}: {steps} steps in {cost['seconds']:.0f} s on {device}")
    training = {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items() if k not in ("kind", "model")}
    training["num_steps"] = steps
    state = {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": recipe["model"],
             "history": history.state_dict(), "snapshots": snapshots}
    info = {"class": "DCGAN", "config": recipe["model"], "family": "gan", "training": training, "cost": cost,
            "metrics": {}}
    return Run(name, state, info, model, history, {"snapshots": snapshots})


def _run_classifier(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    train = dict(recipe["train"])
    if num_steps is not None:
        train["num_steps"] = num_steps

    def report(step: int, history: History) -> None:
        log(f"step {step:5d}  loss {history.last('loss'):.4f}  train acc {history.last('acc'):.4f}")
        if callback is not None:
            callback(step, history)

    start = time.perf_counter()
    model, history = train_classifier(seed=seed, channels=tuple(recipe["model"]["channels"]),
                                      num_features=recipe["model"]["num_features"], device=device,
                                      callback=report, **train)
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=train["num_steps"])
    config = dict(recipe["model"], feature_scale=model.feature_scale)
    x_test, y_test = load_mnist5k("test")
    accuracy = classifier_accuracy(model, x_test, y_test)
    log(f"{name}: test accuracy {100 * accuracy:.2f} %, feature scale {model.feature_scale}")
    state = {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": config}
    info = {"class": MNISTClassifier.__name__, "config": config, "family": "classifier", "training": train,
            "cost": cost, "metrics": {"test_accuracy": round(accuracy, 4), "parameters": count_parameters(model)}}
    return Run(name, state, info, model, history)


# ---------------------------------------------------------------------------
# Saving a run: never over the shipped weights unless asked
# ---------------------------------------------------------------------------
def recipe_command(
    name: str, num_steps: int | None = None, seed: int = 0, iwae_k: int | None = None, out_dir: str | Path | None = None
) -> str:
    """The command line that makes ``name`` again (what the manifest records).

    It ships (``--ship``) unless ``out_dir`` is given: a run written to a folder of yours
    records ``--out out_dir``, so following its manifest never replaces a shipped model.
    """
    where = "--ship" if out_dir is None else f"--out {shlex.quote(str(out_dir))}"
    extra = "".join(f" --{k} {v}" for k, v in (("steps", num_steps), ("iwae-k", iwae_k)) if v is not None)
    return f"python -m genimg_lib train {name} {where}{extra}" + (f" --seed {seed}" if seed else "")


def _check_finite_state(state: Any, where: str = "state") -> None:
    """Raise if any floating point tensor of ``state`` (nested dicts and lists) holds NaN or inf."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not torch.isfinite(state).all():
            raise ValueError(f"the run's {where} holds NaN or infinite values: the training diverged; "
                             "nothing was written. Lower the learning rate and train again")
    elif isinstance(state, dict):
        for key, value in state.items():
            _check_finite_state(value, f"{where}[{key!r}]")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            _check_finite_state(value, f"{where}[{i}]")


def save_run(run: Run, out_dir: str | Path, command: str, ship: bool = False) -> dict[str, Any]:
    """Write ``run`` to ``out_dir/<name>.pt`` and record it in ``out_dir/MANIFEST.json``; return the entry.

    The checkpoint is written atomically (`genimg_lib.checkpoints.save_checkpoint`: a
    temporary file, read back, then renamed), and registered only afterwards, so the
    manifest never lists a file that is not complete. Writing into the package's own
    weights folder is refused unless ``ship=True`` (the command line's ``--ship``): a
    quick run never replaces a shipped model by accident. A model trained into another
    folder loads with ``load_model(name, manifest_path=out_dir / "MANIFEST.json")``.
    """
    out_dir = Path(out_dir).expanduser()
    into_package = out_dir.resolve() == WEIGHTS_DIR.resolve()
    if into_package and not ship:
        raise PermissionError(
            f"{out_dir} holds the book's shipped weights; a run writes there only when asked to ship "
            "(python -m genimg_lib train NAME --ship). Choose another folder with --out DIR"
        )
    if ship and not into_package:
        raise ValueError(f"ship=True writes into {WEIGHTS_DIR}, not {out_dir}")
    _check_finite_state(run.state)
    path = out_dir / f"{run.name}.pt"
    save_checkpoint(run.state, path)
    manifest_path = MANIFEST_PATH if into_package else out_dir / "MANIFEST.json"
    return register_shipped(run.name, path, command, manifest_path=manifest_path, **run.info)


# ---------------------------------------------------------------------------
# Part V: the GAN's encoder (Inversion)
# ---------------------------------------------------------------------------
def _run_gan_encoder(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    """Train a `genimg_lib.invert.GANEncoder` on the samples of the shipped GAN ``recipe["gan"]``; evaluate it.

    Metrics: on 1,000 fresh samples of the GAN (codes seeded apart from training), the
    per-coordinate MSE of the predicted codes (1 = no better than predicting 0) and the
    pixel MSE of :math:`G(E(G(z)))` against :math:`G(z)`; on the 1,000 test digits, the
    pixel MSE of :math:`G(E(x))` against :math:`x`, all images in [0, 1].
    """
    from genimg_lib.checkpoints import load_model, read_manifest
    from genimg_lib.invert import encode_images, train_gan_encoder

    train = dict(recipe["train"])
    if num_steps is not None:
        train["num_steps"] = num_steps
    gan_entry = read_manifest(MANIFEST_PATH)[recipe["gan"]]
    gan = load_model(recipe["gan"], device=device)
    start = time.perf_counter()
    encoder, history = train_gan_encoder(gan, channels=recipe["model"]["channels"], seed=seed, device=device,
                                         callback=callback, **train)
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=train["num_steps"])
    with torch.no_grad():
        z = torch.randn(1000, gan.z_dim, generator=torch.Generator().manual_seed(10_000 + seed)).to(device)
        x = ((gan.G(z) + 1) / 2).clamp(0, 1)
        z_hat = encode_images(encoder, x).to(device)
        x_test, _ = load_mnist5k("test")
        x_test_hat = (gan.G(encode_images(encoder, x_test).to(device)) + 1) / 2
        metrics = {
            "sample_code_mse": round(float((z_hat - z).pow(2).mean()), 4),
            "sample_image_mse": round(float(((gan.G(z_hat) + 1) / 2 - x).pow(2).mean()), 5),
            "test_image_mse": round(float((x_test_hat.cpu() - x_test).pow(2).mean()), 5),
            "parameters": count_parameters(encoder),
        }
    log(f"{name}: code MSE {metrics['sample_code_mse']:.3f} on the GAN's samples, image MSE "
        f"{metrics['test_image_mse']:.4f} on test digits, {cost['seconds']:.0f} s of training")
    training = dict(train, gan=recipe["gan"], gan_sha256=gan_entry["sha256"])
    config = {"z_dim": encoder.z_dim, "channels": encoder.channels}  # z_dim: the GAN's
    state = {"model": {k: v.cpu() for k, v in encoder.state_dict().items()}, "config": config,
             "history": history.state_dict()}
    info = {"class": "GANEncoder", "family": "encoder", "config": config, "training": training,
            "cost": cost, "metrics": metrics}
    return Run(name, state, info, encoder, history)


# ---------------------------------------------------------------------------
# Part VI: the VAE-GAN (VAE against GAN, and hybrids)
# ---------------------------------------------------------------------------
#: The steps at which the VAE-GAN recipe stores the samples of its fixed noise (plus the last step).
VAEGAN_SNAPSHOT_STEPS = (0, 100, 250, 500, 1000)


def _uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8: what a results file stores to show them."""
    return (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def _vaegan_fine_tune(recipe, adv_weight, num_steps, seed, device, callback=None):
    """The shipped VAE ``recipe["init"]`` fine-tuned with `genimg_lib.hybrid.train_vaegan`: (model, history, snapshots, init sha256)."""
    from genimg_lib.checkpoints import load_model, read_manifest
    from genimg_lib.hybrid import VAEGAN, train_vaegan

    init_sha = read_manifest()[recipe["init"]]["sha256"]
    torch.manual_seed(seed)  # D's initialization
    model = VAEGAN.from_vae(load_model(recipe["init"], device=device), **recipe["model"])
    train = {k: (tuple(v) if k == "betas" else v) for k, v in recipe["train"].items() if k != "adv_weight"}
    train["num_steps"] = num_steps
    z_fixed = torch.randn(8, model.z_dim, generator=torch.Generator().manual_seed(1234)).to(device)
    shot_steps, shots = [], []

    def snapshot(step: int, history: History | None = None) -> None:
        if step in VAEGAN_SNAPSHOT_STEPS or step == num_steps:
            with torch.no_grad():
                shots.append(_uint8(torch.sigmoid(model.decode(z_fixed))))
            shot_steps.append(step)
        if callback is not None and history is not None:
            callback(step, history)

    model.eval()
    snapshot(0)
    history = train_vaegan(model, adv_weight=adv_weight, seed=seed, callback=snapshot, callback_every=50,
                           show_progress=False, **train)
    snapshots = {"steps": torch.tensor(shot_steps), "images": torch.stack(shots)}
    return model.eval(), history, snapshots, init_sha


def _run_vaegan(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    if iwae_k is not None:
        recipe["iwae_k"] = iwae_k
    steps = recipe["train"]["num_steps"] if num_steps is None else num_steps
    start = time.perf_counter()
    model, history, snapshots, init_sha = _vaegan_fine_tune(recipe, recipe["train"]["adv_weight"], steps, seed, device,
                                                            callback)
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=steps, batch_size=recipe["train"]["batch_size"])
    x_test, _ = load_mnist5k("test", binarize="static")
    start = time.perf_counter()
    metrics = evaluate_vae(model, x_test, iwae_k=recipe["iwae_k"], seed=seed)
    metrics.update(eval_seconds=round(time.perf_counter() - start, 1), num_parameters=count_parameters(model),
                   train_elbo_last10_logged=history.mean("elbo", last=10))
    log(f"{name}: NLL {metrics['nll_nats']:.2f} nats (K = {recipe['iwae_k']}), {cost['seconds']:.0f} s of fine-tuning")
    config = {"z_dim": model.z_dim, "arch": model.arch, "channels": model.decoder.c, "d_width": model.d_width}
    training = {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe["train"].items()}
    training.update(num_steps=steps, init=recipe["init"], init_sha256=init_sha)
    state = {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": config,
             "history": history.state_dict(), "snapshots": snapshots}
    info = {"class": "VAEGAN", "family": "hybrid", "config": config, "training": training, "cost": cost,
            "metrics": metrics}
    return Run(name, state, info, model, history, {"snapshots": snapshots})


def _run_vaegan_sweep(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    """The VAE-GAN fine-tune at each of ``recipe["adv_weights"]``, scored like the scoreboard: tensors to save."""
    from genimg_lib.hybrid import grey_fraction
    from genimg_lib.scoreboard import Scorer

    if iwae_k is not None:
        recipe["iwae_k"] = iwae_k
    steps = recipe["train"]["num_steps"] if num_steps is None else num_steps
    x_test, _ = load_mnist5k("test", binarize="static")
    scorer = Scorer(recipe["num_samples"], seed=seed)
    keys = ("nll_nats", "elbo_nats", "rate", "distortion", "fid", "kid", "precision", "recall", "classes_covered",
            "grey_fraction", "D_fake_last100")
    table: dict[str, list[float]] = {k: [] for k in keys}
    shown, histories = [], {}
    start = time.perf_counter()
    for adv_weight in recipe["adv_weights"]:
        model, history, _, init_sha = _vaegan_fine_tune(recipe, adv_weight, steps, seed, device)
        m = evaluate_vae(model, x_test, iwae_k=recipe["iwae_k"], seed=seed)
        with torch.no_grad():
            x = model.sample(recipe["num_samples"], generator=torch.Generator().manual_seed(seed))  # as the scoreboard
        s = scorer.score(x)
        row = {**{k: m[k] for k in ("nll_nats", "elbo_nats", "rate", "distortion")},
               **{k: s[k] for k in ("fid", "kid", "precision", "recall", "classes_covered")},
               "grey_fraction": grey_fraction(x), "D_fake_last100": history.mean("D_fake", last=10)}
        for k in keys:
            table[k].append(float(row[k]))
        shown.append(_uint8(x[: recipe["num_shown"]]))
        histories[f"{adv_weight:g}"] = history.state_dict()
        log(f"  adv_weight {adv_weight:g}: NLL {row['nll_nats']:.2f}, FID {row['fid']:.2f}, precision "
            f"{row['precision']:.3f}, recall {row['recall']:.3f}, grey {row['grey_fraction']:.3f}")
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=steps * len(recipe["adv_weights"]))
    out = {"adv_weights": torch.tensor(recipe["adv_weights"]), "metric_names": list(keys),
           "metrics": torch.tensor([table[k] for k in keys], dtype=torch.float64),  # (len(keys), len(adv_weights))
           "samples": torch.stack(shown), "histories": histories}
    config = {k: v for k, v in recipe.items() if k != "kind"}
    config["train"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config["train"].items()}
    config["train"]["num_steps"] = steps
    config["init_sha256"] = init_sha
    metrics = {f"adv_{w:g}_{k}": round(table[k][i], 4) for i, w in enumerate(recipe["adv_weights"])
               for k in ("nll_nats", "fid", "precision", "recall")}
    metrics["iwae_k"] = recipe["iwae_k"]
    return Run(name, {"results": out, "config": config}, {"family": "results", "config": config, "cost": cost,
                                                          "metrics": metrics})


# ---------------------------------------------------------------------------
# Part VI: the sweeps of "Troubleshooting and FAQ" (recipe "faq_study")
# ---------------------------------------------------------------------------
def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, CPU seconds of this process)``: on a shared machine the CPU time is the fair cost."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _run_faq_study(name, recipe, num_steps, seed, device, iwae_k, cost, log, callback) -> Run:
    """The sweeps of "Troubleshooting and FAQ": learning rate, batch size and depth at equal compute, the
    Gaussian decoder's variance, and discriminator domination; tensors to save, headline metrics.

    ``num_steps`` (a quick check) rescales every run's length by ``num_steps`` over its section's
    ``num_steps``. Costs are recorded per run as wall and CPU seconds (1 thread): on a shared machine
    the CPU seconds of the process are the fair measure of a run's cost.
    """
    from genimg_lib.data import make_toy
    from genimg_lib.gan_lab import ring_mode_coverage, toy_batches
    from genimg_lib.losses import gaussian_kl
    from genimg_lib.models import MLPDiscriminator, MLPGenerator
    from genimg_lib.scoreboard import Scorer
    from genimg_lib.troubleshoot import grey_fraction, linear_macs, run_guarded, steps_at_equal_compute, train_gaussian_vae

    if iwae_k is not None:
        recipe["iwae_k"] = iwae_k
    total_steps = 0

    def scaled(base: int, section_steps: int) -> int:
        return base if num_steps is None else max(1, round(base * num_steps / section_steps))

    start = time.perf_counter()
    out: dict[str, Any] = {}

    # --- 1. the DCGAN: learning rates, then batch sizes at equal samples seen ----------------------
    gan = recipe["gan"]
    dcgan = copy.deepcopy(RECIPES[gan["recipe"]])
    gan_steps = scaled(gan["num_steps"], gan["num_steps"])
    scorer = Scorer(num_samples=gan["num_samples"], seed=seed)
    x_gan, y_gan = load_mnist5k("train", value_range=(-1, 1))
    z_show = torch.randn(16, dcgan["model"]["z_dim"], generator=torch.Generator().manual_seed(1234))

    def score_gan(model: DCGAN) -> dict[str, Any]:
        model.G.eval()
        with torch.no_grad():
            fakes = model.sample(gan["num_samples"], generator=torch.Generator().manual_seed(seed + 1)).cpu()
            shown = ((model.G(z_show.to(device)) + 1) / 2).cpu()
        model.G.train()
        if not (torch.isfinite(fakes).all() and torch.isfinite(shown).all()):
            raise ValueError("the generator's samples are not finite")
        return {**scorer.score(fakes), "shown": shown}

    def train_dcgan(lr: float, batch_size: int, steps: int, evals: list[int]):
        torch.manual_seed(seed)
        model = DCGAN(**dcgan["model"]).to(device)
        batches = infinite_batches(make_loader(x_gan, y_gan, batch_size=batch_size, seed=seed))
        scores: list[tuple[int, dict[str, Any]]] = []

        def every_step(step: int, history: History) -> None:
            if step in evals:
                scores.append((step, score_gan(model)))
            if callback is not None:
                callback(step, history)

        def train(cb):
            def both(step, history):
                cb(step, history)
                every_step(step, history)
            return train_gan(model.G, model.D, batches, steps, loss=dcgan["loss"], n_critic=dcgan["n_critic"],
                             lr_G=lr, lr_D=lr, betas=dcgan["betas"], conditional=dcgan["conditional"],
                             callback=both, generator=torch.Generator().manual_seed(seed), show_progress=False)

        run, wall, cpu = _timed(lambda: run_guarded(train))
        if run.diverged or not scores or scores[-1][0] != run.steps_done:  # score the last good weights
            scores.append((run.steps_done, score_gan(model)))
        return run, scores, wall, cpu

    def scored_row(run, scores, wall, cpu) -> dict[str, Any]:
        """What a DCGAN run of the study keeps: where it stopped, its scores at each evaluation, its samples."""
        return dict(
            steps_done=run.steps_done, stopped_at=-1 if run.stopped_at is None else run.stopped_at, error=run.error,
            eval_steps=torch.tensor([s for s, _ in scores]),
            **{key: torch.tensor([r[key] for _, r in scores]) for key in ("fid", "precision", "recall")},
            samples=_uint8(scores[-1][1]["shown"]), cpu_seconds=cpu, wall_seconds=wall,
        )

    lr_rows = []
    for lr in gan["lrs"]:
        evals = [s for s in (scaled(e, gan["num_steps"]) for e in gan["eval_steps"]) if s <= gan_steps]
        run, scores, wall, cpu = train_dcgan(lr, dcgan["batch_size"], gan_steps, evals)
        total_steps += run.steps_done
        last = scores[-1][1]
        log(f"  DCGAN lr={lr:g}: {run.steps_done} steps, {run.error or 'finished'}; FID {last['fid']:.2f}, "
            f"precision {last['precision']:.3f}, recall {last['recall']:.3f} ({cpu:.0f} s CPU)")
        h = run.history
        lr_rows.append(dict(
            lr=lr, **scored_row(run, scores, wall, cpu), message=run.message,
            classes_covered=torch.tensor([r["classes_covered"] for _, r in scores]),
            **{key: torch.tensor(h[key] if h is not None else []) for key in ("loss_D", "loss_G", "D_real", "D_fake")},
        ))
    out["gan_lr"] = lr_rows

    # the recipe's lr and the best lr of the short runs, each for long_steps
    long_steps = scaled(gan["long_steps"], gan["num_steps"])
    short_fid = {r["lr"]: r["fid"][-1].item() for r in lr_rows}
    recipe_lr = dcgan["lr_G"]
    challenger = min((lr for lr in short_fid if lr != recipe_lr), key=short_fid.get)
    long_rows = []
    for lr in (recipe_lr, challenger):
        evals = [s for s in (scaled(e, gan["num_steps"]) for e in gan["long_eval_steps"]) if s <= long_steps]
        run, scores, wall, cpu = train_dcgan(lr, dcgan["batch_size"], long_steps, evals)
        total_steps += run.steps_done
        last = scores[-1][1]
        log(f"  DCGAN lr={lr:g}, {long_steps} steps: {run.steps_done} done, {run.error or 'finished'}; "
            f"FID {last['fid']:.2f} ({cpu:.0f} s CPU)")
        long_rows.append(dict(lr=lr, **scored_row(run, scores, wall, cpu)))
    out["gan_lr_long"] = long_rows

    samples_seen = dcgan["batch_size"] * gan_steps
    batch_rows = []
    for batch_size in gan["batch_sizes"]:
        steps = max(1, round(samples_seen / batch_size))
        same = [r for r in lr_rows if r["lr"] == dcgan["lr_G"] == dcgan["lr_D"]]
        if batch_size == dcgan["batch_size"] and steps == gan_steps and same:  # that run is in the lr sweep
            r = same[0]
            row = dict(batch_size=batch_size, steps=steps, fid=r["fid"][-1].item(), precision=r["precision"][-1].item(),
                       recall=r["recall"][-1].item(), cpu_seconds=r["cpu_seconds"], wall_seconds=r["wall_seconds"],
                       steps_done=r["steps_done"], samples=r["samples"])
        else:
            run, scores, wall, cpu = train_dcgan(dcgan["lr_G"], batch_size, steps, [steps])
            total_steps += run.steps_done
            last = scores[-1][1]
            row = dict(batch_size=batch_size, steps=steps, fid=last["fid"], precision=last["precision"],
                       recall=last["recall"], cpu_seconds=cpu, wall_seconds=wall, steps_done=run.steps_done,
                       samples=_uint8(last["shown"]))
        log(f"  DCGAN batch {batch_size} x {row['steps_done']} steps: FID {row['fid']:.2f} ({row['cpu_seconds']:.0f} s CPU)")
        batch_rows.append(row)
    out["gan_batch"] = batch_rows

    # --- 2. the MLP VAE: learning rates (short and longer runs), batch sizes, depth -----------------
    vae = recipe["vae"]
    x_test_bin, _ = load_mnist5k("test", binarize="static")

    vae_cache: dict[tuple, dict[str, Any]] = {}

    def train_mlp_vae(lr: float, steps: int, batch_size: int, hidden_dims: list[int]):
        key = (lr, steps, batch_size, tuple(hidden_dims))
        if key in vae_cache:  # the same run is already in another sweep
            return dict(vae_cache[key], reused=True)
        torch.manual_seed(seed)
        model = VAE(**dict(vae["model"], hidden_dims=hidden_dims)).to(device)

        def train(cb):
            return train_vae(model, num_steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
                             callback=cb, callback_every=1, show_progress=False)

        run, wall, cpu = _timed(lambda: run_guarded(train))
        m = evaluate_vae(model, x_test_bin, iwae_k=recipe["iwae_k"], seed=seed)
        h = run.history
        vae_cache[key] = dict(lr=lr, batch_size=batch_size, hidden_layers=len(hidden_dims), steps=steps,
                    steps_done=run.steps_done, stopped_at=-1 if run.stopped_at is None else run.stopped_at,
                    error=run.error, message=run.message, nll=m["nll_nats"], elbo=m["elbo_nats"], rate=m["rate"],
                    cpu_seconds=cpu, wall_seconds=wall, macs=linear_macs(model),
                    curve_steps=torch.tensor(h.steps("elbo") if h is not None else [], dtype=torch.int32),
                    curve_elbo=torch.tensor(h["elbo"] if h is not None else []), reused=False)
        return dict(vae_cache[key])

    vae_steps = scaled(vae["num_steps"], vae["num_steps"])
    hidden = vae["model"]["hidden_dims"]
    for key, lrs, steps in (("vae_lr", vae["lrs"], vae_steps),
                            ("vae_lr_long", vae["long_lrs"], scaled(vae["long_steps"], vae["num_steps"]))):
        rows = []
        for lr in lrs:
            row = train_mlp_vae(lr, steps, vae["batch_size"], hidden)
            total_steps += 0 if row["reused"] else row["steps_done"]
            log(f"  VAE lr={lr:g}, {steps} steps: {row['steps_done']} done, {row['error'] or 'finished'}; "
                f"NLL {row['nll']:.1f}, ELBO {row['elbo']:.1f}")
            rows.append(row)
        out[key] = rows

    rows, seen = [], vae["batch_size"] * vae_steps
    for batch_size in vae["batch_sizes"]:
        steps = max(1, round(seen / batch_size))
        row = train_mlp_vae(vae["lr"], steps, batch_size, hidden)
        total_steps += 0 if row["reused"] else row["steps_done"]
        log(f"  VAE batch {batch_size} x {row['steps_done']}: NLL {row['nll']:.1f} ({row['cpu_seconds']:.0f} s CPU)")
        rows.append(row)
    out["vae_batch"] = rows

    rows = []
    base_macs = linear_macs(VAE(**dict(vae["model"], hidden_dims=[hidden[0]] * vae["depths"][0])))
    for depth in vae["depths"]:
        dims = [hidden[0]] * depth
        macs = linear_macs(VAE(**dict(vae["model"], hidden_dims=dims)))
        for budget, steps in (("equal_steps", vae_steps),
                              ("equal_compute", steps_at_equal_compute(vae_steps, base_macs, macs))):
            row = train_mlp_vae(vae["lr"], steps, vae["batch_size"], dims)
            total_steps += 0 if row["reused"] else row["steps_done"]
            row["budget"] = budget
            log(f"  VAE {depth} hidden layers, {budget} ({steps} steps): NLL {row['nll']:.1f}")
            rows.append(row)
    out["vae_depth"] = rows

    # --- 3. the toy GAN on the ring: depth at equal steps and at equal compute ----------------------
    tg = recipe["toy_gan"]
    toy = make_toy(tg["toy"])
    angle = 2 * torch.pi * torch.arange(8) / 8
    means, std = 2.0 * torch.stack([angle.cos(), angle.sin()], 1), 0.05
    tg_steps = scaled(tg["num_steps"], tg["num_steps"])

    def toy_macs(depth: int) -> int:
        return linear_macs(MLPGenerator(tg["z_dim"], tg["hidden_dim"], depth)) + \
            linear_macs(MLPDiscriminator(2, tg["hidden_dim"], depth))

    rows, toy_cache = [], {}
    for depth in tg["depths"]:
        for budget, steps in (("equal_steps", tg_steps),
                              ("equal_compute", steps_at_equal_compute(tg_steps, toy_macs(tg["depths"][0]), toy_macs(depth)))):
            for s in tg["seeds"]:
                if (depth, steps, s) in toy_cache:  # equal compute is equal steps for the shallowest
                    rows.append(dict(toy_cache[(depth, steps, s)], budget=budget))
                    continue
                torch.manual_seed(s)
                G = MLPGenerator(tg["z_dim"], tg["hidden_dim"], depth)
                D = MLPDiscriminator(2, tg["hidden_dim"], depth)

                def train(cb, G=G, D=D, steps=steps, s=s):  # the wiring of gan_lab.train_toy_gan, with a callback
                    return train_gan(G, D, toy_batches(toy, tg["batch_size"], s), steps, lr_G=tg["lr"], lr_D=tg["lr"],
                                     callback=cb, generator=torch.Generator().manual_seed(s), show_progress=False)

                run, wall, cpu = _timed(lambda: run_guarded(train))
                total_steps += run.steps_done
                cov = ring_mode_coverage(G.sample(tg["num_samples"], generator=torch.Generator().manual_seed(s + 100)),
                                         means, std)
                rows.append(dict(depth=depth, budget=budget, seed=s, steps=steps, steps_done=run.steps_done,
                                 modes=cov.modes_covered, hq_fraction=cov.hq_fraction, error=run.error,
                                 cpu_seconds=cpu, macs=toy_macs(depth)))
                toy_cache[(depth, steps, s)] = rows[-1]
            log(f"  toy GAN depth {depth}, {budget} ({steps} steps): modes "
                f"{[r['modes'] for r in rows[-len(tg['seeds']):]]}")
    out["toy_depth"] = rows

    # --- 4. the Gaussian decoder's sigma ------------------------------------------------------------
    gs = recipe["gaussian"]
    x_grey, _ = load_mnist5k("test")
    x_show = x_grey[:8]
    rows = []
    for sigma in gs["sigmas"]:
        torch.manual_seed(seed)
        model = VAE(**gs["model"]).to(device)
        steps = scaled(gs["num_steps"], gs["num_steps"])
        (_, wall, cpu) = _timed(lambda: train_gaussian_vae(model, sigma, steps, gs["batch_size"], gs["lr"], seed=seed))
        total_steps += steps
        with torch.no_grad():
            mu, logvar = model.encode(x_grey.to(device))
            recon = torch.sigmoid(model.decode(mu)).cpu()
            rate = gaussian_kl(mu, logvar).mean().item()
            samples = model.sample(500, generator=torch.Generator().manual_seed(seed + 1)).cpu()  # decoder means
        sse = (recon - x_grey).pow(2).flatten(1).sum(1).mean().item()
        row = dict(sigma=sigma, rate=rate, sse=sse, grey_recon=grey_fraction(recon).mean().item(),
                   grey_samples=grey_fraction(samples).mean().item(), recons=_uint8(recon[:8]),
                   samples=_uint8(samples[:8]), cpu_seconds=cpu, wall_seconds=wall)
        log(f"  Gaussian decoder sigma={sigma:g}: rate {rate:.1f}, SSE {sse:.1f}, grey share of recons "
            f"{row['grey_recon']:.2f}, of samples {row['grey_samples']:.2f}")
        rows.append(row)
    out["gaussian"] = rows
    out["gaussian_x_show"] = _uint8(x_show)
    out["grey_data"] = grey_fraction(x_grey).mean().item()

    # --- 5. discriminator domination ----------------------------------------------------------------
    dm = recipe["domination"]
    x_dom, y_dom = load_mnist5k("train", value_range=(-1, 1))
    rows = []
    for loss in dm["losses"]:
        torch.manual_seed(seed)
        tiny = DCGAN(**dm["model"]).to(device)
        batches = infinite_batches(make_loader(x_dom, y_dom, batch_size=dm["batch_size"], seed=seed))
        steps = scaled(dm["num_steps"], dm["num_steps"])
        h = train_gan(tiny.G, tiny.D, batches, steps, loss=loss, n_critic=dm["n_critic"], lr_D=dm["lr_D"],
                      lr_G=dm["lr_G"], generator=torch.Generator().manual_seed(seed), show_progress=False)
        total_steps += steps
        rows.append(dict(loss=loss, D_real=torch.tensor(h["D_real"]), D_fake=torch.tensor(h["D_fake"]),
                         grad_norm_G=torch.tensor(h["grad_norm_G"]), loss_D=torch.tensor(h["loss_D"])))
    out["domination"] = rows

    config = {k: v for k, v in recipe.items() if k != "kind"}
    config["gan_recipe"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dcgan.items() if k != "kind"}
    cost.update(seconds=round(time.perf_counter() - start, 1), steps=total_steps,
                cpu_seconds=round(time.process_time(), 1))
    best = min(lr_rows, key=lambda r: r["fid"][-1].item())
    stopped = [r["lr"] for r in lr_rows if r["stopped_at"] > 0]
    vstopped = [r["lr"] for r in out["vae_lr"] if r["stopped_at"] > 0]
    metrics = {"gan_best_lr": best["lr"], "gan_best_fid_500": round(best["fid"][-1].item(), 3),
               "gan_smallest_lr_stopped": min(stopped) if stopped else None,
               "vae_best_lr": min(out["vae_lr"], key=lambda r: r["nll"])["lr"],
               "vae_smallest_lr_stopped": min(vstopped) if vstopped else None, "iwae_k": recipe["iwae_k"]}
    log(f"{name}: {total_steps} steps in {cost['seconds']:.0f} s")
    return Run(name, {"results": out, "config": config}, {"family": "results", "config": config, "cost": cost,
                                                          "metrics": metrics})
