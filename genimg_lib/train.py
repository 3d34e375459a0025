"""Training loops, written out: `train_vae` and `train_gan`, and the pieces they share.

Chapters: Getting started (the pieces), Building a VAE (`train_vae`), A GAN you can
watch and DCGAN step by step (`train_gan`). Each loop is one screen of plain PyTorch
organised by comment banners, returns a `History`, and calls ``callback(step, history)``
after a step, where ``step`` counts the updates done so far (1, 2, ...). The chapters
write each loop inline first and check that the library's gives the same numbers.

- `progress`, `History`, `check_finite` and `ExplosionGuard` come from
  `genimg_lib.monitor` (a bar, the record of a run, and the checks that stop a run
  gone wrong before its update) and are handed on here;
- `RunState`: the checkpoint of a run in progress, so that a stopped run (a Colab session
  that died) continues exactly where it was: ``train_vae(..., checkpoint_path="run.pt")``,
  then ``train_vae(..., resume="run.pt")`` (CONTRIBUTING.md, "Resuming a run").

How the shipped checkpoints were trained with these loops is in `genimg_lib.recipes`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from genimg_lib.checkpoints import WEIGHTS_DIR, load_checkpoint, save_checkpoint
from genimg_lib.data import (
    check_images, check_int, check_number, dynamic_binarize, infinite_batches, load_mnist5k, make_loader,
)
from genimg_lib.losses import PROBABILITY_LOSSES, gan_losses, gradient_penalty, vae_loss
from genimg_lib.models import check_tanh_range
from genimg_lib.monitor import (  # the pieces every loop shares, handed on here as train.X
    DivergenceError, ExplodingLossError, ExplosionGuard, History, NonFiniteLossError, check_finite, progress,
)


# ===========================================================================
# Resuming a run: the checkpoint of a run in progress
# ===========================================================================
#: Marks a file written by `RunState.save` (not a shipped model's checkpoint).
RUN_FORMAT = "genimg run in progress, v1"


def _plain(value: Any) -> Any:
    """Settings as plain, comparable values: tuples become lists."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class RunState:
    """What a training loop needs to continue a run exactly where it stopped, saved as one plain dict.

    A loop builds it from its live objects: the models (``modules``), their optimizers,
    the random generators (``torch.Generator``) it draws from, and ``streams``, objects with
    ``state_dict()``/``load_state_dict()`` such as a `genimg_lib.data.BatchStream`
    (the loader's position) or a recording callback. `save` writes, with
    `genimg_lib.checkpoints.save_checkpoint` (atomic, ``weights_only``-loadable)::

        {"format", "loop", "step", "settings", "modules": {name: {"class", "state"}},
         "optimizers", "rng": {"torch": global CPU RNG, name: generator state},
         "streams", "history" (float64), "guard" (the ExplosionGuard's references)}

    `start` restores all of it from ``resume`` (a path or that dict), after refusing a
    file of another loop, another model architecture, other ``settings`` (the loss, the
    learning rates, the batch size, the seed, the data...) or a ``num_steps`` below the
    saved step. On the CPU, N steps + save + resume + M steps give bit for bit the
    losses and weights of N + M steps straight through (``tests/test_resume.py``).
    """

    def __init__(self, loop: str, settings: dict[str, Any], modules: dict[str, torch.nn.Module],
                 optimizers: dict[str, torch.optim.Optimizer], generators: dict[str, torch.Generator | None],
                 streams: dict[str, Any]) -> None:
        self.loop, self.settings = loop, {k: _plain(v) for k, v in settings.items()}
        self.modules, self.optimizers = modules, optimizers
        self.generators = {k: g for k, g in generators.items() if g is not None}
        self.streams = {k: v for k, v in streams.items() if hasattr(v, "state_dict") and hasattr(v, "load_state_dict")}

    def state_dict(self, step: int, history: History, guard: ExplosionGuard) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT, "loop": self.loop, "step": step, "settings": self.settings,
            "modules": {k: {"class": type(m).__name__, "state": m.state_dict()} for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in self.generators.items()}},
            "streams": {k: v.state_dict() for k, v in self.streams.items()},
            "history": history.state_dict(torch.float64), "guard": guard.state_dict(),
        }

    def save(self, path: str | Path, step: int, history: History, guard: ExplosionGuard) -> None:
        """Write the run at ``step`` to ``path`` atomically (a crash leaves the previous file intact)."""

        save_checkpoint(self.state_dict(step, history, guard), path)

    def start(self, resume: str | Path | dict | None, num_steps: int, guard: ExplosionGuard,
              checkpoint_path: str | Path | None) -> tuple[int, History]:
        """``(0, History())`` for a fresh run, or the saved ``(step, history)`` with every state restored."""

        if checkpoint_path is not None:
            path = Path(checkpoint_path).expanduser()
            if path.resolve().parent == WEIGHTS_DIR.resolve():
                raise ValueError(f"checkpoint_path {path} is in the package's shipped weights; choose a folder of yours")
            if resume is None and path.exists():
                raise FileExistsError(
                    f"checkpoint_path {path} already holds a run; continue it with resume={str(path)!r}, "
                    "or choose another path (or delete the file) to start a new run"
                )
        if resume is None:
            return 0, History()
        if isinstance(resume, (str, Path)):
            state = load_checkpoint(Path(resume).expanduser())
        elif isinstance(resume, Mapping):
            state = resume
        else:
            raise TypeError(f"resume must be a path or a dict saved by a training loop, got {type(resume).__name__}")
        self._check(state, num_steps)
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k]["state"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        torch.set_rng_state(state["rng"]["torch"])
        for k, g in self.generators.items():
            g.set_state(state["rng"][k])
        for k, v in self.streams.items():
            if k in state["streams"]:
                v.load_state_dict(state["streams"][k])
        guard.load_state_dict(state["guard"])
        return int(state["step"]), History.from_state_dict(state["history"])

    def _check(self, state: Mapping[str, Any], num_steps: int) -> None:
        """Refuse a resume file that cannot continue this run, saying why."""
        if not isinstance(state, Mapping) or state.get("format") != RUN_FORMAT:
            raise ValueError("resume: this is not the checkpoint of a run in progress (a shipped model's file, or "
                             "another file?); pass the checkpoint_path a training loop wrote")
        if state["loop"] != self.loop:
            raise ValueError(f"resume: the checkpoint was written by {state['loop']}, not {self.loop}")
        for k, m in self.modules.items():
            saved = state["modules"][k]
            here = {n: tuple(t.shape) for n, t in m.state_dict().items()}
            there = {n: tuple(t.shape) for n, t in saved["state"].items()}
            if saved["class"] != type(m).__name__ or here != there:
                diff = sorted(set(here.items()) ^ set(there.items()))[:3]
                raise ValueError(
                    f"resume: the saved {k} is a {saved['class']} of another architecture than this "
                    f"{type(m).__name__} (differing weights, name and shape: {diff}); build the model "
                    "with the same configuration as the saved run"
                )
        changed = {k: (state["settings"].get(k), v) for k, v in self.settings.items() if state["settings"].get(k) != v}
        if changed:
            listed = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"resume: the run was saved with other settings ({listed}). Pass the saved values to "
                             "continue it; changing them would silently make a different run")
        if num_steps < state["step"]:
            raise ValueError(f"resume: num_steps={num_steps} is below the saved step {state['step']}; num_steps "
                             "counts every step of the run, so pass at least the saved step")

    def save_every(self, path: str | Path | None, every: int, step: int, num_steps: int, history: History,
                   guard: ExplosionGuard) -> None:
        """`save` every ``every`` steps and after the last, when a ``path`` is given."""
        if path is not None and (step % every == 0 or step == num_steps):
            self.save(path, step, history, guard)


def _check_run_args(explode_factor, checkpoint_path, checkpoint_every, resume) -> ExplosionGuard:
    """Validate the arguments every loop shares; returns the loop's `ExplosionGuard`."""
    check_int(checkpoint_every, "checkpoint_every")
    if checkpoint_path is not None and not isinstance(checkpoint_path, (str, Path)):
        raise TypeError(f"checkpoint_path must be a file path or None, got {type(checkpoint_path).__name__}")
    if resume is not None and not isinstance(resume, (str, Path, Mapping)):
        raise TypeError(f"resume must be a path or a dict saved by a training loop, got {type(resume).__name__}")
    return ExplosionGuard(explode_factor)


# ===========================================================================
# Part II: the VAE loop (Building a VAE step by step)
# ===========================================================================
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
    callback: Callable[[int, History], None] | None = None,
    callback_every: int = 100,
    log_every: int = 10,
    device: str | torch.device | None = None,
    show_progress: bool = True,
    explode_factor: float | None = 1e4,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: str | Path | dict | None = None,
) -> History:
    r"""Train a `genimg_lib.models.VAE` or `CVAE` to step ``num_steps`` (Adam).

    Each step draws a batch of grey images, binarizes it afresh
    (`genimg_lib.data.dynamic_binarize`), runs the model's own forward pass
    ``logits, mu, logvar = model(x)`` (encode, `reparameterize`, decode) and
    minimises `genimg_lib.losses.vae_loss` with the KL weight

    .. math:: \beta_t = \beta \cdot \min\big(1, (t - 1) / T\big),
       \qquad t = 1, 2, \ldots

    (``kl_warmup_steps`` = :math:`T`; 0 means no warm-up). The history
    holds ``loss``, ``recon``, ``kl``, ``elbo`` (= -recon - kl, per image,
    nats) and ``beta_t`` at step 1 and every ``log_every`` steps;
    ``callback(step, history)`` runs every ``callback_every`` steps and
    after the last (the chapter's live dashboard). ``x_train`` defaults to
    the 4,000 MNIST-5k training images in [0, 1]; a `CVAE` also needs
    ``y_train`` (defaults to their labels). The batches, the binarization
    and the reparameterization noise come from three generators seeded by
    ``seed``.

    Stops before the update whose loss or gradient norm is NaN, infinite,
    or more than ``explode_factor`` times its reference (`ExplosionGuard`),
    so the model keeps its last good weights. With ``checkpoint_path`` the
    run in progress is saved there every ``checkpoint_every`` steps and
    after the last (`RunState`); ``resume`` (that path, or the loaded dict)
    continues it: ``train_vae(model, num_steps=10, resume=path)`` goes on
    to step 10 in all, exactly as if it had never stopped.
    Chapter: Building a VAE step by step.
    """
    # --- check every argument before any work
    if not isinstance(model, torch.nn.Module):
        raise TypeError("model must be a VAE or CVAE (an nn.Module), "
                        f"got {type(model).__name__}")
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    lr = check_number(lr, "lr", 0.0, strict=True, meaning="the learning rate")
    beta = check_number(beta, "beta", 0.0)
    free_bits = check_number(free_bits, "free_bits", 0.0)
    kl_warmup_steps = check_int(kl_warmup_steps, "kl_warmup_steps",
                                minimum=None)
    if kl_warmup_steps < 0:
        raise ValueError("kl_warmup_steps must be >= 0 (0: no warm-up), "
                         f"got {kl_warmup_steps}")
    seed = check_int(seed, "seed", minimum=0)
    batch_size = check_int(batch_size, "batch_size")
    callback_every = check_int(callback_every, "callback_every")
    log_every = check_int(log_every, "log_every")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be a function callback(step, history) "
                        f"or None, got {type(callback).__name__}")
    guard = _check_run_args(explode_factor, checkpoint_path, checkpoint_every,
                            resume)
    conditional = getattr(model, "num_classes", 0) > 0
    if x_train is None:
        x_train, labels = load_mnist5k("train")
        y_train = labels if y_train is None else y_train
    check_images(x_train, (0.0, 1.0), "x_train", tolerance=0.0)
    if conditional and y_train is None:
        raise ValueError(
            "a conditional model needs y_train (the labels of x_train)")
    if device is None:
        device = next(model.parameters()).device
    model.to(device).train()
    loader = make_loader(x_train, y_train if conditional else None,
                         batch_size=batch_size, seed=seed)
    batches = infinite_batches(loader)
    g_bin = torch.Generator().manual_seed(seed + 1)  # binarization noise
    g_z = torch.Generator().manual_seed(seed + 2)  # reparameterization noise
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # --- a new run, or the run saved at resume (weights, Adam, generators,
    #     batches, history)
    settings = dict(batch_size=batch_size, lr=lr, beta=beta,
                    kl_warmup_steps=kl_warmup_steps, free_bits=free_bits,
                    seed=seed, conditional=conditional,
                    data=[len(x_train), float(x_train.double().sum())])
    run = RunState("train_vae", settings, {"model": model},
                   {"optimizer": optimizer}, {"binarize": g_bin, "z": g_z},
                   {"batches": batches})
    start, history = run.start(resume, num_steps, guard, checkpoint_path)
    bar = progress(num_steps, desc="VAE", disable=not show_progress,
                   initial=start)
    for step in range(start + 1, num_steps + 1):
        # --- a batch, binarized afresh
        batch = next(batches)
        x = dynamic_binarize(batch[0], generator=g_bin).to(device)
        y = batch[1].to(device) if conditional else None
        # --- forward: the model encodes, reparameterizes and decodes
        logits, mu, logvar = model(x, y, generator=g_z)
        if kl_warmup_steps > 0:
            beta_t = beta * min(1.0, (step - 1) / kl_warmup_steps)
        else:
            beta_t = beta
        loss, recon, kl = vae_loss(x, logits, mu, logvar,
                                   beta=beta_t, free_bits=free_bits)
        # --- backward and update, only on a finite loss and gradient
        #     that have not exploded
        guard.check(step, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        guard.check_gradients(step, model.parameters())
        optimizer.step()
        # --- record, report, save the run in progress
        if step == 1 or step % log_every == 0 or step == num_steps:
            history.log(step, loss=loss, recon=recon, kl=kl,
                        elbo=-(recon + kl), beta_t=beta_t)
        bar.update()
        if callback is not None and (
                step % callback_every == 0 or step == num_steps):
            model.eval()
            callback(step, history)
            model.train()
        run.save_every(checkpoint_path, checkpoint_every, step, num_steps,
                       history, guard)
    bar.close()
    model.eval()
    return history


# ===========================================================================
# Part III: the GAN loop (A GAN you can watch; DCGAN step by step; Making GANs train)
# ===========================================================================
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
    show_progress: bool = True,
    explode_factor: float | None = 1e4,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: str | Path | dict | None = None,
) -> History:
    r"""Train a GAN until generator step ``num_steps``; returns the `History`.

    Each step is (1) ``n_critic`` updates of D on fresh real batches, then
    (2) one update of G:

    .. math::
       \text{(1)}\ \min_D \mathcal L_D(D(x), D(G(z)))
       \;[+\ \lambda\,\mathrm{GP}],\qquad
       \text{(2)}\ \min_G \mathcal L_G(D(G(z)))

    with the losses of `genimg_lib.losses.GAN_LOSSES` chosen by ``loss``:
    ``"minimax"`` (saturating G loss), ``"non_saturating"``, ``"hinge"`` or
    ``"wasserstein_gp"`` (WGAN-GP: the critic loss plus ``gp_weight`` times
    the gradient penalty on interpolates, Gulrajani et al. 2017). ``lr_G``
    and ``lr_D`` may differ (TTUR, Heusel et al. 2017); both optimizers are
    Adam with ``betas``.

    The same loop trains the 2-D toys of "A GAN you can watch" (``batches``
    of points ``(N, 2)``, from `genimg_lib.gan_lab.toy_batches`) and the
    DCGANs on MNIST (``batches`` of ``(x,)`` or ``(x, y)`` with images
    ``(N, 1, 28, 28)`` in [-1, 1], checked on the first batch; labels ``y``
    ``(N,)`` are used when ``conditional``). ``G(z[, y])`` maps
    ``(N, G.z_dim)`` noise to samples; ``D(x[, y])`` returns ``(N,)``
    logits or scores. The noise (and a conditional GAN's fake labels, drawn
    uniformly) come from ``generator``; a conditional WGAN-GP gives its
    critic's fakes the real batch's labels, so that each interpolate has
    one label.

    Logged at every step: ``loss_D``, ``loss_G``, ``D_real`` and ``D_fake``
    (mean :math:`D(x)` and :math:`D(G(z))` on the last D update:
    probabilities for the minimax and non-saturating losses, raw scores
    otherwise), ``grad_norm_G`` (the norm of G's parameter gradient) and,
    for WGAN-GP, ``gp`` and ``grad_norm`` (the mean
    :math:`\lVert\nabla_{x_t} f(x_t)\rVert` on the interpolates
    :math:`x_t`). ``callback(step, history)`` runs after every step.

    Stops before an update whose loss or gradient norm (of D or of G) is
    NaN, infinite or more than ``explode_factor`` times its reference
    (`ExplosionGuard`), so G and D keep their last good weights. With
    ``checkpoint_path`` the run in progress is saved every
    ``checkpoint_every`` steps and after the last; ``resume`` (that path,
    or the loaded dict) continues it to step ``num_steps`` exactly as if it
    had never stopped (`RunState`). That needs ``batches`` whose position
    can be saved, `genimg_lib.data.infinite_batches` or
    `genimg_lib.gan_lab.toy_batches`, built as for the first run; a
    ``callback`` with ``state_dict``/``load_state_dict`` (such as
    `genimg_lib.gan_lab.ToySnapshots`) is saved too.
    Chapters: A GAN you can watch; DCGAN step by step; Making GANs train.
    """
    d_loss_fn, g_loss_fn = gan_losses(loss)
    for name, net in (("G", G), ("D", D)):
        if not isinstance(net, torch.nn.Module):
            raise TypeError(
                f"{name} must be an nn.Module, got {type(net).__name__}")
    if not isinstance(getattr(G, "z_dim", None), numbers.Integral):
        raise TypeError("G must have an integer attribute z_dim (the noise "
                        "dimension), as the book's generators do")
    if not isinstance(batches, Iterator):
        raise TypeError(
            f"batches must be an iterator of batches, got "
            f"{type(batches).__name__}; wrap a DataLoader with "
            "genimg_lib.data.infinite_batches(loader)")
    if (isinstance(n_critic, bool)
            or not isinstance(n_critic, numbers.Integral) or n_critic < 1):
        raise ValueError(
            f"n_critic is the number of D updates per G update and must be "
            f"an integer >= 1, got {n_critic!r}")
    n_critic = int(n_critic)
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    lr_G = check_number(lr_G, "lr_G", 0.0, strict=True)
    lr_D = check_number(lr_D, "lr_D", 0.0, strict=True)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
            isinstance(b, numbers.Real) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1) (Adam's decay "
                         f"rates), got {betas!r}")
    betas = (float(betas[0]), float(betas[1]))
    gp_weight = check_number(gp_weight, "gp_weight", 0.0)
    if conditional and not getattr(G, "num_classes", 0):
        raise ValueError("conditional=True needs a conditional generator "
                         "(num_classes > 0)")
    if loss == "wasserstein_gp" and any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for m in D.modules()):
        raise ValueError(
            "WGAN-GP's gradient penalty is per sample, and a critic with batch "
            "normalization mixes the samples of a batch: build the critic "
            "without it (DCGANDiscriminator(norm=None))")
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function callback(step, history) or None, "
            f"got {type(callback).__name__}")
    guard = _check_run_args(explode_factor, checkpoint_path, checkpoint_every,
                            resume)
    if ((checkpoint_path is not None or resume is not None)
            and not hasattr(batches, "state_dict")):
        raise TypeError(
            "checkpoint_path and resume need batches whose position can be "
            "saved: genimg_lib.data.infinite_batches(loader) or "
            "genimg_lib.gan_lab.toy_batches(...)")
    device = next(G.parameters()).device
    opt_G = torch.optim.Adam(G.parameters(), lr=lr_G, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr_D, betas=betas)
    settings = dict(loss=loss, n_critic=n_critic, lr_G=lr_G, lr_D=lr_D,
                    betas=betas, gp_weight=gp_weight, conditional=conditional,
                    noise_generator=generator is not None)
    run = RunState("train_gan", settings, {"G": G, "D": D},
                   {"G": opt_G, "D": opt_D}, {"noise": generator},
                   {"batches": batches, "callback": callback})
    start, history = run.start(resume, num_steps, guard, checkpoint_path)
    G.train()
    D.train()

    def noise_and_labels(n: int):
        z = torch.randn(n, G.z_dim, generator=generator).to(device)
        y = None
        if conditional:
            y = torch.randint(0, G.num_classes, (n,), generator=generator)
            y = y.to(device)
        return z, y

    def with_labels(y):  # labels are passed only to a conditional model
        return (y,) if conditional else ()

    def real_batch(step: int):
        batch = next(batches)
        batch = (batch,) if isinstance(batch, torch.Tensor) else batch
        if conditional and len(batch) < 2:
            raise ValueError("conditional=True needs batches of (x, y); "
                             "build the loader with labels")
        x = batch[0].to(device)
        if step == start + 1 and x.dim() == 4:  # images: tanh range, once
            check_tanh_range(x)
        return x, (batch[1].to(device) if conditional else None)

    bar = progress(num_steps, desc=desc, disable=not show_progress,
                   initial=start)
    for step in range(start + 1, num_steps + 1):
        # (1) update D: maximize E[log D(x)] + E[log(1 - D(G(z)))] (or the
        #     critic's score gap), i.e. minimize d_loss, n_critic times on
        #     fresh batches; G is held fixed (fakes made under no_grad).
        for _ in range(n_critic):
            x, y_real = real_batch(step)
            z, y_fake = noise_and_labels(len(x))
            if conditional and loss == "wasserstein_gp":
                y_fake = y_real  # interpolate within a class: one label
            with torch.no_grad():
                fake = G(z, *with_labels(y_fake))
            real_out = D(x, *with_labels(y_real))
            fake_out = D(fake, *with_labels(y_fake))
            loss_D = d_loss_fn(real_out, fake_out)
            if loss == "wasserstein_gp":
                critic = (lambda t: D(t, y_real)) if conditional else D
                gp, grad_norms = gradient_penalty(critic, x, fake,
                                                  generator=generator)
                loss_D = loss_D + gp_weight * gp
            guard.check(step, loss_D=loss_D)
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            guard.check_gradients(step, D.parameters(), "grad_norm_D")
            opt_D.step()

        # (2) update G: minimize g_loss(D(G(z))), e.g. -E[log D(G(z))]
        #     (non-saturating); gradients flow through D into G, but only
        #     G's optimizer steps.
        z, y_fake = noise_and_labels(len(x))
        loss_G = g_loss_fn(D(G(z, *with_labels(y_fake)), *with_labels(y_fake)))
        guard.check(step, loss_G=loss_G)
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        grad_norm_G = guard.check_gradients(step, G.parameters(),
                                            "grad_norm_G")
        opt_G.step()
        opt_D.zero_grad(set_to_none=True)  # D's grads from (2) are not used

        # (3) record: D's view of the last real and fake batches, G's
        #     gradient norm; save the run
        with torch.no_grad():
            if loss in PROBABILITY_LOSSES:  # D's outputs as probabilities
                d_real = torch.sigmoid(real_out).mean()
                d_fake = torch.sigmoid(fake_out).mean()
            else:                           # a critic's raw scores
                d_real, d_fake = real_out.mean(), fake_out.mean()
        row = dict(loss_D=loss_D, loss_G=loss_G, D_real=d_real, D_fake=d_fake,
                   grad_norm_G=grad_norm_G)
        if loss == "wasserstein_gp":
            row.update(gp=gp, grad_norm=grad_norms.mean())
        history.log(step, **row)
        bar.update()
        if callback is not None:
            callback(step, history)
        run.save_every(checkpoint_path, checkpoint_every, step, num_steps,
                       history, guard)
    bar.close()
    return history
