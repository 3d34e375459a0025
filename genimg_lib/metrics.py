"""Measuring generative models: a domain classifier's features, FID, KID, precision/recall,
class coverage and likelihoods, and a scoreboard of every shipped model.

Chapter: Measuring generative models (Part IV, ``book/evaluation.ipynb``).

Every sample-based metric here compares two sets of images through the features of
a small MNIST classifier that the book trains and ships (`MNISTClassifier`, the
shipped checkpoint ``classifier``), in the role Inception-v3 plays for natural
images. Images are ``(N, 1, 28, 28)`` floats in **[0, 1]**, the range every
generative model's ``sample`` returns.

- `fid` and `kid` go through ``torchmetrics`` (``FrechetInceptionDistance`` and
  ``KernelInceptionDistance`` with ``feature=`` our extractor), so nothing is
  downloaded: torchmetrics only builds Inception when ``feature`` is an integer.
- `precision_recall`: improved precision and recall (Kynkänniemi et al., 2019) with
  k-nearest-neighbour balls in feature space.
- `class_coverage`: the histogram of the classifier's predicted digits, how many
  digits are covered, and the KL divergence of the histogram to uniform.
- `manifest_nll` reads a VAE's negative log-likelihood from the manifest;
  `estimate_nll` recomputes it live with the model's ``estimate_log_px``.
- `Scorer`, `score_model`, `scoreboard` and `plot_scoreboard` put it all together;
  ``python -m genimg_lib.train score`` writes each model's scores to the manifest.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pkgutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from genimg_lib.checkpoints import MANIFEST_PATH, WEIGHTS_DIR, load_shipped, read_manifest, register_shipped, save_checkpoint
from genimg_lib.models import MODEL_CLASSES, count_parameters, register_model

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
CLASSIFIER_NAME = "classifier"
GENERATIVE_FAMILIES = ("vae", "gan")


# ---------------------------------------------------------------------------
# The domain classifier: the feature extractor of every metric in this module
# ---------------------------------------------------------------------------
@register_model
class MNISTClassifier(nn.Module):
    r"""A small conv net for MNIST digits whose penultimate layer serves as the feature space.

    ``(N, 1, 28, 28)`` in [0, 1] -> conv 3x3 (c1) -> ReLU -> max-pool -> ``(N, c1, 14, 14)``
    -> conv 3x3 (c2) -> ReLU -> max-pool -> ``(N, c2, 7, 7)`` -> conv 3x3 (c2) -> ReLU ->
    max-pool -> ``(N, c2, 3, 3)`` -> linear -> ReLU -> **features** ``(N, num_features)``
    -> linear -> logits ``(N, 10)``.

    ``features(x)`` returns the penultimate layer divided by the constant
    ``feature_scale``, chosen after training so that the mean squared feature is 1
    on the training split (KID's cubic kernel :math:`(a^\top b / d + 1)^3` assumes
    features of order 1; FID scales with ``feature_scale**2``). ``forward(x)``
    returns the logits. The ``num_features`` attribute tells torchmetrics the
    feature dimension. Chapter: Measuring generative models.
    """

    def __init__(
        self, channels: tuple[int, int] | list[int] = (16, 32), num_features: int = 64, feature_scale: float = 1.0
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.num_features = int(num_features)
        self.feature_scale = float(feature_scale)
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (N, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, c2, 7, 7)
            nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, c2, 3, 3)
            nn.Flatten(),
            nn.Linear(c2 * 9, self.num_features), nn.ReLU(),              # (N, num_features)
        )
        self.head = nn.Linear(self.num_features, NUM_CLASSES)            # (N, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer over ``feature_scale``, ``(N, num_features)``, for images ``(N, 1, 28, 28)`` in [0, 1]."""
        return self.body(x) / self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, 10)``."""
        return self.head(self.body(x))


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding): light augmentation."""
    n = x.shape[0]
    padded = F.pad(x, [max_shift] * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = dy[:, None] + torch.arange(28)[None]  # (n, 28)
    cols = dx[:, None] + torch.arange(28)[None]
    idx = torch.arange(n)[:, None, None]
    return padded[idx, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def outlier_images(n: int, generator: torch.Generator) -> torch.Tensor:
    """Images that are not digits, ``(n, 1, 28, 28)`` in [0, 1], for outlier exposure.

    Half uniform noise, a quarter sparse salt noise, a quarter smooth random blobs
    (noise blurred and stretched): the kinds of non-digits a failing generator emits.
    """
    k1, k2 = n // 2, n // 4
    k3 = n - k1 - k2
    uniform = torch.rand(k1, 1, 28, 28, generator=generator)
    salt = (torch.rand(k2, 1, 28, 28, generator=generator) < 0.2).float()
    coarse = torch.rand(k3, 1, 7, 7, generator=generator)
    blobs = F.interpolate(coarse, size=(28, 28), mode="bilinear", align_corners=False)
    blobs = (blobs - blobs.amin((2, 3), keepdim=True)) / (blobs.amax((2, 3), keepdim=True) - blobs.amin((2, 3), keepdim=True) + 1e-8)
    return torch.cat([uniform, salt, blobs])


def train_classifier(
    num_steps: int = 1500,
    batch_size: int = 128,
    lr: float = 2e-3,
    max_shift: int = 2,
    outlier_weight: float = 0.5,
    seed: int = 0,
    channels: tuple[int, int] = (16, 32),
    num_features: int = 64,
    device: str | torch.device = "cpu",
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[MNISTClassifier, list[dict[str, float]]]:
    r"""Train `MNISTClassifier` on the MNIST-5k training split; the ``classifier`` subcommand calls this.

    The loss is cross-entropy on shifted digits plus *outlier exposure*
    (Hendrycks et al., 2019): on a batch of non-digit images (`outlier_images`) the
    prediction is pushed towards uniform,

    .. math:: \mathcal L = \mathrm{CE}(f(x), y) + \lambda\,\frac{1}{K}\sum_{k=1}^{K} -\log \mathrm{softmax}(f(\tilde x))_k ,

    so that noise lands away from the digits in feature space. Adam with a cosine
    learning-rate decay over ``num_steps``. At the end ``feature_scale`` is set to the
    root mean squared feature on the training split. Returns the model (eval mode)
    and a list of ``{"step", "loss", "acc"}`` rows, one every 100 steps.
    """
    from genimg_lib.data import load_mnist5k

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = load_mnist5k("train")
    model = MNISTClassifier(channels, num_features).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_steps)
    history: list[dict[str, float]] = []
    running_loss, running_acc = 0.0, 0.0
    model.train()
    for step in range(1, num_steps + 1):
        idx = torch.randint(0, len(x), (batch_size,), generator=generator)
        xb = _random_shift(x[idx], max_shift, generator) if max_shift > 0 else x[idx]
        xb, yb = xb.to(device), y[idx].to(device)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        if outlier_weight > 0:
            x_out = outlier_images(batch_size // 4, generator).to(device)
            loss = loss + outlier_weight * (-F.log_softmax(model(x_out), dim=1).mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        running_loss += loss.item()
        running_acc += (logits.argmax(1) == yb).float().mean().item()
        if step % 100 == 0:
            row = {"step": step, "loss": running_loss / 100, "acc": running_acc / 100}
            history.append(row)
            running_loss, running_acc = 0.0, 0.0
            if callback is not None:
                callback(step, row)
    model.eval()
    with torch.no_grad():  # unit mean squared feature on the training split (see MNISTClassifier)
        f = torch.cat([model.body(xb.to(device)) for xb in x.split(500)])
        model.feature_scale = round(math.sqrt(f.pow(2).mean().item()), 4)
    return model, history


@torch.no_grad()
def classifier_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of images ``x`` whose predicted digit equals ``y``."""
    device = next(model.parameters()).device
    correct = 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        correct += (model(xb.to(device)).argmax(1).cpu() == yb).sum().item()
    return correct / len(x)


_CLASSIFIER_CACHE: dict[tuple[str, str], MNISTClassifier] = {}


def load_classifier(device: str | torch.device = "cpu", manifest_path: str | Path = MANIFEST_PATH) -> MNISTClassifier:
    """The shipped classifier (checksum verified, eval mode), cached after the first load."""
    key = (str(manifest_path), str(device))
    if key not in _CLASSIFIER_CACHE:
        manifest = read_manifest(manifest_path)
        if CLASSIFIER_NAME not in manifest:
            raise ValueError(
                f"no shipped {CLASSIFIER_NAME!r} in {manifest_path}; train it with "
                "`python -m genimg_lib.train classifier`"
            )
        model = MNISTClassifier(**manifest[CLASSIFIER_NAME].get("config", {}))
        model.load_state_dict(load_shipped(CLASSIFIER_NAME, map_location=device, manifest_path=manifest_path)["model"])
        for p in model.parameters():
            p.requires_grad_(False)
        _CLASSIFIER_CACHE[key] = model.to(device).eval()
    return _CLASSIFIER_CACHE[key]


def classifier_cli(argv: list[str]) -> int:
    """``python -m genimg_lib.train classifier``: train, evaluate and ship the domain classifier."""
    from genimg_lib.data import load_mnist5k

    parser = argparse.ArgumentParser(prog="python -m genimg_lib.train classifier", description=train_classifier.__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--outlier-weight", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / "classifier.pt")
    parser.add_argument("--no-ship", action="store_true", help="train and report, do not write the manifest")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cpu"
    start = time.perf_counter()

    def report(step: int, row: dict[str, float]) -> None:
        print(f"step {step:5d}  loss {row['loss']:.4f}  train acc {row['acc']:.4f}", flush=True)

    config = {"channels": [16, 32], "num_features": 64}
    model, _ = train_classifier(
        num_steps=args.num_steps, batch_size=args.batch_size, lr=args.lr, outlier_weight=args.outlier_weight,
        seed=args.seed, channels=tuple(config["channels"]), num_features=config["num_features"],
        device=device, callback=report,
    )
    config["feature_scale"] = model.feature_scale
    seconds = time.perf_counter() - start
    x_test, y_test = load_mnist5k("test")
    acc = classifier_accuracy(model, x_test, y_test)
    params = count_parameters(model)
    print(f"test accuracy {100 * acc:.2f} % ({params} parameters, feature scale {config['feature_scale']}, {seconds:.0f} s on {device})")
    if args.no_ship:
        return 0
    save_checkpoint({"model": model.state_dict(), "config": config}, args.out)
    command = "python -m genimg_lib.train classifier" + ("" if not argv else " " + " ".join(argv))
    register_shipped(
        CLASSIFIER_NAME, args.out, command, manifest_path=args.out.parent / "MANIFEST.json",
        **{"class": "MNISTClassifier", "config": config, "family": "classifier",
           "cost": {"seconds": round(seconds, 1), "device": f"cpu ({args.threads} thread{'s' if args.threads > 1 else ''}, shared machine)", "steps": args.num_steps},
           "metrics": {"test_accuracy": round(acc, 4), "parameters": params}},
    )
    print(f"shipped {args.out}")
    return 0


# ---------------------------------------------------------------------------
# Checking the inputs, and the features
# ---------------------------------------------------------------------------
def check_images(x: Any, name: str = "images") -> torch.Tensor:
    """Return ``x`` as float images ``(N, 1, 28, 28)`` in [0, 1], or raise a clear error.

    The extractor was trained on MNIST in [0, 1]; a ``[-1, 1]`` (tanh) batch or
    ``uint8`` pixels would silently give wrong features, so they are refused, with the fix.
    Values within 1e-4 of the range (float round-off) are clipped.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of images (N, 1, 28, 28), got {type(x).__name__}")
    if tuple(x.shape[1:]) != IMAGE_SHAPE or x.ndim != 4:
        raise ValueError(
            f"{name}: expected images of shape (N, 1, 28, 28), got {tuple(x.shape)}; "
            "add the channel axis with x.unsqueeze(1) or reshape with x.view(-1, 1, 28, 28)"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected float pixels in [0, 1], got dtype {x.dtype}; use x.float() / 255")
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite pixels; the model that produced them has diverged")
    if x.numel():
        lo, hi = x.min().item(), x.max().item()
        if lo < -1e-4 or hi > 1 + 1e-4:
            hint = " (this looks like [-1, 1]: map it with (x + 1) / 2)" if lo < -0.5 else ""
            hint = " (this looks like [0, 255]: divide by 255)" if hi > 2 else hint
            raise ValueError(
                f"{name}: the classifier's features expect pixels in [0, 1], got values in "
                f"[{lo:.3g}, {hi:.3g}]{hint}"
            )
    return x.float().clamp(0.0, 1.0)


class DomainFeatures(nn.Module):
    """The feature extractor handed to torchmetrics: ``x -> classifier.features(x)``.

    Checks every batch with `check_images` and has the ``num_features`` attribute
    torchmetrics reads, so it never pushes a dummy 299x299 image through the network.
    """

    def __init__(self, classifier: MNISTClassifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, num_features)`` on the CPU for images ``(N, 1, 28, 28)`` in [0, 1] (checked)."""
        x = check_images(x)
        device = next(self.classifier.parameters()).device
        return self.classifier.features(x.to(device)).float().cpu()


def default_extractor() -> DomainFeatures:
    """`DomainFeatures` around the shipped classifier (the book's default feature space)."""
    return DomainFeatures(load_classifier())


def min_samples(extractor: DomainFeatures | None = None) -> int:
    """The fewest images per set for FID/KID: twice the feature dimension (128 for the shipped classifier).

    Below the feature dimension the covariance matrix is singular; near it the
    estimate is dominated by noise. FID is still biased above this, see the chapter.
    """
    num_features = extractor.num_features if extractor is not None else MNISTClassifier().num_features
    return 2 * int(num_features)


def _check_enough(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} images per set for a stable estimate "
            f"(twice the feature dimension), got {n}; sample more images"
        )


@torch.no_grad()
def extract_features(x: torch.Tensor, extractor: nn.Module | None = None, batch_size: int = 500) -> torch.Tensor:
    """Penultimate-layer features ``(N, num_features)`` of images ``(N, 1, 28, 28)`` in [0, 1]."""
    extractor = extractor or default_extractor()
    x = check_images(x)
    return torch.cat([extractor(xb) for xb in x.split(batch_size)]) if len(x) else torch.zeros(0, extractor.num_features)


# ---------------------------------------------------------------------------
# FID and KID, through torchmetrics
# ---------------------------------------------------------------------------
def _fid_metric(extractor: nn.Module, reset_real_features: bool = True):
    from torchmetrics.image.fid import FrechetInceptionDistance

    # a Module as ``feature``: torchmetrics uses it as is and builds (downloads) no Inception
    return FrechetInceptionDistance(feature=extractor, reset_real_features=reset_real_features)


def _kid_metric(extractor: nn.Module, subset_size: int, subsets: int, reset_real_features: bool = True):
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():  # "will save all extracted features in buffer": 1000 x 64 floats
        warnings.simplefilter("ignore", UserWarning)
        return KernelInceptionDistance(
            feature=extractor, subsets=subsets, subset_size=subset_size, reset_real_features=reset_real_features
        )


def _update(metric, x: torch.Tensor, real: bool, batch_size: int = 500) -> None:
    for xb in x.split(batch_size):
        metric.update(xb, real=real)


def fid(x_real: torch.Tensor, x_fake: torch.Tensor, extractor: nn.Module | None = None) -> float:
    r"""Fréchet distance between Gaussians fitted to the two sets' features (Heusel et al., 2017).

    .. math:: \mathrm{FID} = \lVert \mu_r - \mu_g \rVert^2
       + \operatorname{Tr}\big(\Sigma_r + \Sigma_g - 2 (\Sigma_r \Sigma_g)^{1/2}\big)

    computed by ``torchmetrics.image.fid.FrechetInceptionDistance`` on the
    classifier's features (the "domain FID"; numbers are not comparable with
    Inception FIDs). Both sets ``(N, 1, 28, 28)`` in [0, 1], at least `min_samples`
    each. FID is biased upwards at small N: compare models only at the same N.
    """
    extractor = extractor or default_extractor()
    x_real, x_fake = check_images(x_real, "x_real"), check_images(x_fake, "x_fake")
    _check_enough(min(len(x_real), len(x_fake)), min_samples(extractor), "FID")
    metric = _fid_metric(extractor)
    _update(metric, x_real, True)
    _update(metric, x_fake, False)
    return float(metric.compute())


def kid(
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    extractor: nn.Module | None = None,
    subset_size: int | None = None,
    subsets: int = 50,
    seed: int = 0,
) -> tuple[float, float]:
    r"""Kernel Inception Distance (Bińkowski et al., 2018): the unbiased squared MMD with a cubic kernel.

    .. math:: k(a, b) = \big(\tfrac{1}{d}\, a^\top b + 1\big)^3, \qquad
       \mathrm{KID} = \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i\neq j} [k(r_i, r_j) + k(g_i, g_j)]
       - \frac{2}{m^2} \sum_{i,j} k(r_i, g_j)

    averaged over ``subsets`` random subsets of ``subset_size`` (default: half the
    smaller set) by ``torchmetrics.image.kid.KernelInceptionDistance``; returns
    ``(mean, std)`` over the subsets. The subsets are drawn from a seeded generator,
    so the result is reproducible. Unlike FID the estimate is unbiased, so it can be
    negative for two samples of the same distribution.
    """
    extractor = extractor or default_extractor()
    x_real, x_fake = check_images(x_real, "x_real"), check_images(x_fake, "x_fake")
    n = min(len(x_real), len(x_fake))
    _check_enough(n, min_samples(extractor), "KID")
    subset_size = subset_size or n // 2
    metric = _kid_metric(extractor, subset_size, subsets)
    _update(metric, x_real, True)
    _update(metric, x_fake, False)
    return _kid_compute(metric, seed)


def _kid_compute(metric, seed: int) -> tuple[float, float]:
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets with the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


class PrecomputedFeatures(nn.Module):
    """An identity "extractor" for features computed beforehand, ``(N, num_features)``.

    Handing it to torchmetrics lets `fid_from_features` and `kid_from_features` run
    the same torchmetrics computation as `fid` and `kid` without a second pass
    through the classifier, when the same sets are compared many times.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``features`` (as float) after checking its shape ``(N, num_features)``."""
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"expected features of shape (N, {self.num_features}), got {tuple(features.shape)}; "
                "compute them with extract_features(x)"
            )
        return features.float()


def fid_from_features(f_real: torch.Tensor, f_fake: torch.Tensor) -> float:
    """`fid` on features ``(N, d)`` already computed (e.g. by `extract_features`), through torchmetrics."""
    extractor = PrecomputedFeatures(f_real.shape[-1])
    _check_enough(min(len(f_real), len(f_fake)), 2 * extractor.num_features, "FID")
    metric = _fid_metric(extractor)
    metric.update(extractor(f_real), real=True)
    metric.update(extractor(f_fake), real=False)
    return float(metric.compute())


def kid_from_features(
    f_real: torch.Tensor, f_fake: torch.Tensor, subset_size: int | None = None, subsets: int = 50, seed: int = 0
) -> tuple[float, float]:
    """`kid` on features ``(N, d)`` already computed, through torchmetrics; returns ``(mean, std)``."""
    extractor = PrecomputedFeatures(f_real.shape[-1])
    n = min(len(f_real), len(f_fake))
    _check_enough(n, 2 * extractor.num_features, "KID")
    metric = _kid_metric(extractor, subset_size or n // 2, subsets)
    metric.update(extractor(f_real), real=True)
    metric.update(extractor(f_fake), real=False)
    return _kid_compute(metric, seed)


# ---------------------------------------------------------------------------
# Improved precision and recall (k-nearest-neighbour manifolds)
# ---------------------------------------------------------------------------
def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    r"""Distance from each point to its k-th nearest *other* point: :math:`r_i = \lVert f_i - \mathrm{NN}_k(f_i)\rVert`, shape ``(N,)``."""
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, d), got {tuple(features.shape)}")
    if len(features) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(features)}")
    dist = torch.cdist(features.double(), features.double())  # (N, N); the diagonal (self) is 0
    return dist.kthvalue(k + 1, dim=1).values  # k + 1: the point itself is its own nearest neighbour


def manifold_fraction(reference: torch.Tensor, radii: torch.Tensor, query: torch.Tensor, chunk: int = 1024) -> float:
    r"""Fraction of ``query`` points inside the union of balls :math:`B(f_i, r_i)` around ``reference``."""
    inside = []
    for q in query.double().split(chunk):
        dist = torch.cdist(q, reference.double())  # (chunk, N_ref)
        inside.append((dist <= radii[None, :]).any(dim=1))
    return torch.cat(inside).double().mean().item() if inside else float("nan")


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall (Kynkäänniemi et al., 2019) on feature sets ``(N, d)`` and ``(M, d)``.

    The real manifold is the union of balls around each real feature with radius its
    distance to the k-th nearest real neighbour; likewise for the fakes.

    .. math:: \text{precision} = \frac1M \sum_j \mathbb 1\big[g_j \in \textstyle\bigcup_i B(r_i, \mathrm{NN}_k(r_i))\big],
       \qquad \text{recall} = \frac1N \sum_i \mathbb 1\big[r_i \in \textstyle\bigcup_j B(g_j, \mathrm{NN}_k(g_j))\big]

    Precision: how many samples look real (quality). Recall: how much of the real
    data the samples cover (diversity). ``k = 3`` as in the paper.
    """
    radii_real = knn_radii(real_features, k)
    radii_fake = knn_radii(fake_features, k)
    precision = manifold_fraction(real_features, radii_real, fake_features)
    recall = manifold_fraction(fake_features, radii_fake, real_features)
    return precision, recall


# ---------------------------------------------------------------------------
# Class coverage
# ---------------------------------------------------------------------------
@torch.no_grad()
def class_coverage(x: torch.Tensor, classifier: nn.Module | None = None, min_share: float = 0.1) -> dict[str, Any]:
    r"""What digits does a set of images contain, by the classifier's vote?

    Returns ``{"histogram": counts per digit (list of 10), "classes_covered": int,
    "kl_uniform": float}``. A digit is *covered* when it receives at least
    ``min_share`` of its fair share, i.e. ``min_share * N / 10`` images (default: 1 %
    of the set). The KL divergence of the predicted-class frequencies :math:`\hat p`
    to uniform, in nats,

    .. math:: \mathrm{KL}(\hat p \,\|\, U) = \sum_c \hat p_c \log (10\, \hat p_c) = \log 10 - H(\hat p),

    is 0 for perfectly balanced classes and :math:`\log 10 \approx 2.303` when every image is the same digit.
    """
    classifier = classifier or load_classifier()
    x = check_images(x)
    if len(x) == 0:
        raise ValueError("class_coverage needs at least one image")
    device = next(classifier.parameters()).device
    preds = torch.cat([classifier(xb.to(device)).argmax(1).cpu() for xb in x.split(500)])
    return _coverage(preds, min_share)


def _coverage(preds: torch.Tensor, min_share: float = 0.1) -> dict[str, Any]:
    counts = torch.bincount(preds, minlength=NUM_CLASSES)
    p = counts.double() / counts.sum()
    nz = p > 0
    kl = (p[nz] * (p[nz] * NUM_CLASSES).log()).sum().item()
    covered = int((counts >= min_share * len(preds) / NUM_CLASSES).sum().item())
    return {"histogram": counts.tolist(), "classes_covered": covered, "kl_uniform": kl}


# ---------------------------------------------------------------------------
# Likelihoods
# ---------------------------------------------------------------------------
def manifest_nll(name: str, manifest_path: str | Path = MANIFEST_PATH) -> dict[str, float] | None:
    """A shipped model's test NLL from its manifest entry: ``{"nll_nats", "bits_per_dim"}``, or None.

    The VAE command line stores ``metrics["nll_nats"]`` (IWAE, k = 1000, on the test
    split); bits/dim is converted with `genimg_lib.losses.bits_per_dim` when the entry lacks it.
    Models without a likelihood (GANs) return None.
    """
    from genimg_lib.losses import bits_per_dim

    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no shipped model named {name!r} in {manifest_path}")
    metrics = manifest[name].get("metrics") or {}
    if metrics.get("nll_nats") is None:
        return None
    nll = float(metrics["nll_nats"])
    bpd = metrics.get("bits_per_dim")
    return {"nll_nats": nll, "bits_per_dim": float(bpd) if bpd is not None else float(bits_per_dim(nll))}


@torch.no_grad()
def estimate_nll(model: nn.Module, x: torch.Tensor, num_samples: int = 100, batch_size: int = 100) -> float:
    r"""A live estimate of the test NLL in nats, :math:`-\frac1N\sum_n \log \hat p(x_n)`, via the model's ``estimate_log_px``.

    ``x`` must be in the form the model was trained on (e.g. the statically
    binarized test split for a Bernoulli VAE). With ``num_samples`` importance
    samples the estimate is an IWAE bound, so it *overestimates* the NLL, less as
    ``num_samples`` grows; the manifest's figure uses 1000.
    """
    if not hasattr(model, "estimate_log_px"):
        raise TypeError(f"{type(model).__name__} has no estimate_log_px: only models with a likelihood (VAEs) have an NLL")
    device = next(model.parameters()).device
    total = 0.0
    for xb in x.split(batch_size):
        total += model.estimate_log_px(xb.to(device), num_samples=num_samples).double().sum().item()
    return -total / len(x)


# ---------------------------------------------------------------------------
# Degrading real images by a known amount: the metrics' sanity checks
# ---------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""Blur images ``(N, 1, H, W)`` with a Gaussian kernel of std ``sigma`` pixels (``sigma = 0``: unchanged).

    The kernel :math:`w_i \propto e^{-i^2 / 2\sigma^2}`, :math:`|i| \le \lceil 3\sigma \rceil`, is
    applied along rows, then columns, with zero padding; the range stays in [0, 1].
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clone()
    radius = max(1, math.ceil(3 * sigma))
    i = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-(i**2) / (2 * sigma**2))
    w = w / w.sum()
    out = F.conv2d(x, w.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(out, w.view(1, 1, -1, 1), padding=(radius, 0))


def add_pixel_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Add Gaussian noise of std ``std`` to every pixel (seeded), then clip to [0, 1]."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return (x + std * noise).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------
# Scoring models: one reference set, every model at the same N
# ---------------------------------------------------------------------------
class Scorer:
    """Scores sets of ``N`` images against ``N`` images of the test split, at a fixed ``N``.

    The reference images (a seeded choice of ``N`` test images, or ``x_real``), their
    features, k-NN radii and torchmetrics states are computed once; `score` then
    returns FID, KID, precision, recall and class coverage for one set of fakes.
    FID depends on ``N`` (see the chapter), so `score` refuses a set of another size.
    """

    def __init__(
        self,
        N: int = 1000,
        seed: int = 0,
        x_real: torch.Tensor | None = None,
        extractor: DomainFeatures | None = None,
        k: int = 3,
        kid_subsets: int = 50,
    ) -> None:
        from genimg_lib.data import load_mnist5k

        self.extractor = extractor or default_extractor()
        self.k, self.seed, self.kid_subsets = k, seed, kid_subsets
        if x_real is None:
            x_test, _ = load_mnist5k("test")
            if N > len(x_test):
                raise ValueError(f"the test split has {len(x_test)} images; N={N} is too many")
            x_real = x_test[torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[:N]]
        self.x_real = check_images(x_real, "x_real")
        self.N = len(self.x_real)
        _check_enough(self.N, min_samples(self.extractor), "Scoring")
        self.features_real, _ = self._features_and_predictions(self.x_real)
        self.radii_real = knn_radii(self.features_real, k)
        # torchmetrics keeps the real statistics (reset_real_features=False) and gets the
        # features computed here, so each image goes through the classifier exactly once
        identity = PrecomputedFeatures(self.extractor.num_features)
        self._fid = _fid_metric(identity, reset_real_features=False)
        self._fid.update(self.features_real, real=True)
        self._kid = _kid_metric(identity, self.N // 2, kid_subsets, reset_real_features=False)
        self._kid.update(self.features_real, real=True)

    @torch.no_grad()
    def _features_and_predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        classifier = self.extractor.classifier
        device = next(classifier.parameters()).device
        features, preds = [], []
        for xb in x.split(500):
            hidden = classifier.body(xb.to(device))  # one pass: features and the class vote
            features.append((hidden / classifier.feature_scale).float().cpu())
            preds.append(classifier.head(hidden).argmax(1).cpu())
        return torch.cat(features), torch.cat(preds)

    def score(self, x_fake: torch.Tensor) -> dict[str, Any]:
        """``{"fid", "kid", "kid_std", "precision", "recall", "classes_covered", "kl_uniform", "histogram"}``."""
        x_fake = check_images(x_fake, "x_fake")
        if len(x_fake) != self.N:
            raise ValueError(
                f"this Scorer compares sets of N={self.N} images (FID depends on N); got {len(x_fake)}. "
                f"Sample exactly {self.N} images, or build a Scorer(N={len(x_fake)})"
            )
        features_fake, preds = self._features_and_predictions(x_fake)
        self._fid.reset()
        self._fid.update(features_fake, real=False)
        self._kid.reset()
        self._kid.update(features_fake, real=False)
        kid_mean, kid_std = _kid_compute(self._kid, self.seed)
        precision = manifold_fraction(self.features_real, self.radii_real, features_fake)
        recall = manifold_fraction(features_fake, knn_radii(features_fake, self.k), self.features_real)
        coverage = _coverage(preds)
        return {"fid": float(self._fid.compute()), "kid": kid_mean, "kid_std": kid_std,
                "precision": precision, "recall": recall, **coverage}


@torch.no_grad()
def sample_images(model: nn.Module, N: int, seed: int = 0) -> torch.Tensor:
    """``model.sample(N, generator=...)`` with a seeded generator on the model's device, checked, on the CPU."""
    if not hasattr(model, "sample"):
        raise TypeError(f"{type(model).__name__} has no sample(num_samples, generator=None, y=None) method")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(seed)
    x = model.sample(N, generator=generator)
    return check_images(x.detach().float().cpu(), f"{type(model).__name__}.sample({N})")


def score_model(model: nn.Module, N: int = 1000, seed: int = 0, scorer: Scorer | None = None) -> dict[str, Any]:
    """Sample ``N`` images from ``model`` (seeded) and `Scorer.score` them against ``N`` test images."""
    scorer = scorer or Scorer(N)
    if scorer.N != N:
        raise ValueError(f"the scorer was built for N={scorer.N}, not N={N}")
    model.eval()
    return scorer.score(sample_images(model, N, seed))


def data_baselines(N: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    """Reference "models" made of data, ``{name: (N, 1, 28, 28)}``, that frame the scoreboard.

    - ``"train split"``: N real training images, the best a model can hope for;
    - ``"uniform noise"``: pixels drawn uniformly, no digit at all;
    - ``"one image copied"``: a single training image N times, perfect quality and no diversity.
    """
    from genimg_lib.data import load_mnist5k

    x_train, _ = load_mnist5k("train")
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randperm(len(x_train), generator=g)[:N]
    return {
        "train split": x_train[idx],
        "uniform noise": torch.rand(N, *IMAGE_SHAPE, generator=g),
        "one image copied": x_train[idx[:1]].repeat(N, 1, 1, 1),
    }


def generative_entries(manifest_path: str | Path = MANIFEST_PATH) -> dict[str, dict[str, Any]]:
    """Every manifest entry whose family is ``"vae"`` or ``"gan"``, by name (sorted)."""
    manifest = read_manifest(manifest_path)
    return {name: e for name, e in sorted(manifest.items()) if e.get("family") in GENERATIVE_FAMILIES}


def _import_genimg_modules() -> None:
    """Import every ``genimg_lib`` module so that their `register_model` classes exist."""
    import genimg_lib

    for info in pkgutil.iter_modules(genimg_lib.__path__):
        importlib.import_module(f"genimg_lib.{info.name}")


def load_generative(name: str, manifest_path: str | Path = MANIFEST_PATH, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a shipped model from ``manifest_path`` (class, config, verified weights), in eval mode."""
    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no shipped model named {name!r} in {manifest_path}; available: {sorted(manifest)}")
    entry = manifest[name]
    if entry.get("class") not in MODEL_CLASSES:
        _import_genimg_modules()
    if entry.get("class") not in MODEL_CLASSES:
        raise ValueError(f"model {name!r} needs class {entry.get('class')!r}, which no genimg_lib module registers")
    model = MODEL_CLASSES[entry["class"]](**entry.get("config", {}))
    model.load_state_dict(load_shipped(name, map_location=device, manifest_path=manifest_path)["model"])
    return model.to(device).eval()


SCOREBOARD_COLUMNS = (
    "name", "kind", "fid", "kid", "precision", "recall", "classes_covered", "kl_uniform",
    "nll_nats", "bits_per_dim", "parameters", "train_seconds", "train_device",
)


def scoreboard(
    N: int = 1000,
    names: list[str] | None = None,
    seed: int = 0,
    manifest_path: str | Path = MANIFEST_PATH,
    baselines: bool = True,
    scorer: Scorer | None = None,
) -> list[dict[str, Any]]:
    """Score every shipped generative model (manifest family ``"vae"``/``"gan"``) at the same ``N``.

    Rows are dicts with the keys `SCOREBOARD_COLUMNS` (missing values are None):
    the data baselines first (kind ``"baseline"``, see `data_baselines`), then each
    model (kind = its family), all against the same ``N`` test images, each model
    sampled with the same ``seed``. ``names`` restricts the models; an unknown
    name is an error. A model whose samples are not ``(N, 1, 28, 28)`` (a 2-D toy
    GAN) is left off with a warning; samples outside [0, 1] are an error. NLL comes from the manifest (`manifest_nll`); parameters are
    counted on the rebuilt model; the training cost is the manifest's ``cost``.
    """
    entries = generative_entries(manifest_path)
    if names is not None:
        unknown = sorted(set(names) - set(entries))
        if unknown:
            raise ValueError(f"not shipped generative models: {unknown}; the manifest has {sorted(entries) or 'none'}")
        entries = {n: entries[n] for n in names}
    scorer = scorer or Scorer(N, seed=seed)
    rows: list[dict[str, Any]] = []
    if baselines:
        for name, x in data_baselines(N, seed).items():
            rows.append({**dict.fromkeys(SCOREBOARD_COLUMNS), "name": name, "kind": "baseline", **_pick(scorer.score(x))})
    for name, entry in entries.items():
        model = load_generative(name, manifest_path)
        x_fake = _sample_or_skip(name, model, N, seed)
        if x_fake is None:
            continue
        scores = scorer.score(x_fake)
        cost = entry.get("cost") or {}
        row = {**dict.fromkeys(SCOREBOARD_COLUMNS), "name": name, "kind": entry["family"], **_pick(scores),
               "parameters": count_parameters(model), "train_seconds": cost.get("seconds"), "train_device": cost.get("device")}
        row.update(manifest_nll(name, manifest_path) or {})
        rows.append(row)
    return rows


def _sample_or_skip(name: str, model: nn.Module, N: int, seed: int) -> torch.Tensor | None:
    """Samples of a shipped model, or None (with a warning) when it does not make MNIST images, e.g. a 2-D toy GAN."""
    import warnings

    model.eval()
    with torch.no_grad():
        params = list(model.parameters())
        generator = torch.Generator(device=params[0].device if params else "cpu").manual_seed(seed)
        x = model.sample(N, generator=generator)
    if tuple(x.shape) != (N, *IMAGE_SHAPE):
        warnings.warn(f"{name}: sample({N}) has shape {tuple(x.shape)}, not MNIST images {(N, *IMAGE_SHAPE)}; "
                      "left off the scoreboard", stacklevel=3)
        return None
    return check_images(x.detach().float().cpu(), f"{name}.sample({N})")


def _pick(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: scores[k] for k in ("fid", "kid", "precision", "recall", "classes_covered", "kl_uniform")}


def format_scoreboard(rows: list[dict[str, Any]]) -> str:
    """The scoreboard as a Markdown table (numbers rounded for reading, "-" where undefined)."""
    header = ["model", "kind", "FID", "KID", "precision", "recall", "classes", "KL to uniform",
              "NLL (nats)", "bits/dim", "parameters", "training"]

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cost = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f} s, {r['train_device']}"
        lines.append("| " + " | ".join([
            r["name"], r["kind"], num(r["fid"], ".2f"), num(r["kid"], ".3f"), num(r["precision"], ".3f"),
            num(r["recall"], ".3f"), num(r["classes_covered"], "d"), num(r["kl_uniform"], ".3f"),
            num(r["nll_nats"], ".1f"), num(r["bits_per_dim"], ".3f"), num(r["parameters"], ","), cost,
        ]) + " |")
    return "\n".join(lines)


def plot_scoreboard(rows: list[dict[str, Any]], title: str | None = None):
    """Three panels: FID (log scale), precision against recall, classes covered. Returns the figure."""
    import matplotlib.pyplot as plt

    from genimg_lib import viz

    colors = {"baseline": "0.6", "vae": viz.PALETTE[0], "gan": viz.PALETTE[3]}
    names = [r["name"] for r in rows]
    c = [colors.get(r["kind"], "C2") for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 1.8 + 0.4 * max(len(rows), 4)), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    y = list(range(len(rows)))[::-1]
    axes[0].barh(y, [max(r["fid"], 1e-3) for r in rows], color=c)
    axes[0].set(yticks=y, yticklabels=names, xscale="log", xlabel="domain FID (log scale, lower is better)", title="FID")
    placed: list[tuple[float, float]] = []
    for r, cc in zip(rows, c):
        pt = (r["recall"], r["precision"])
        axes[1].scatter(*pt, color=cc, s=40, zorder=3)
        # a label that would run into an already labelled point to its right goes on the left
        crowded = any(abs(pt[1] - q[1]) < 0.05 and -0.05 < q[0] - pt[0] < 0.3 for q in placed)
        axes[1].annotate(r["name"], pt, textcoords="offset points", xytext=(-5, 3) if crowded else (4, 3),
                         ha="right" if crowded else "left", fontsize=8)
        placed.append(pt)
    axes[1].set(xlim=(-0.05, 1.1), ylim=(-0.05, 1.1), xlabel="recall (diversity)", ylabel="precision (quality)",
                title="precision and recall (k = 3)")
    axes[2].barh(y, [r["classes_covered"] for r in rows], color=c)
    axes[2].set(yticks=y, yticklabels=[], xlim=(0, NUM_CLASSES + 0.5), xlabel="digits covered (of 10)", title="class coverage")
    handles = [plt.Rectangle((0, 0), 1, 1, color=col) for col in colors.values()]
    fig.legend(handles, ["data baseline", "VAE", "GAN"], loc="lower center", ncol=3, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


# ---------------------------------------------------------------------------
# The ``score`` subcommand: write each model's scores into its manifest entry
# ---------------------------------------------------------------------------
def update_manifest_metrics(name: str, metrics: dict[str, Any], manifest_path: str | Path = MANIFEST_PATH) -> dict[str, Any]:
    """Merge ``metrics`` into ``manifest[name]["metrics"]`` (atomic rewrite); sha256 and file are untouched."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no entry {name!r} in {manifest_path}")
    manifest[name]["metrics"] = {**(manifest[name].get("metrics") or {}), **metrics}
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    os.replace(tmp, manifest_path)
    return manifest[name]


def score_cli(argv: list[str]) -> int:
    """``python -m genimg_lib.train score``: domain FID, KID, precision, recall and coverage into the manifest."""
    parser = argparse.ArgumentParser(prog="python -m genimg_lib.train score", description=score_cli.__doc__)
    parser.add_argument("--N", type=int, default=1000, help="images per set (FID is only comparable at one N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--names", nargs="*", default=None, help="only these models (default: every vae/gan)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = scoreboard(args.N, args.names, args.seed, args.manifest, baselines=False)
    if not rows:
        print(f"no generative models (family vae or gan) in {args.manifest}; nothing to score")
        return 0
    for r in rows:
        update_manifest_metrics(r["name"], {
            "fid_domain": round(r["fid"], 3), "kid_domain": round(r["kid"], 5), "precision_k3": round(r["precision"], 4),
            "recall_k3": round(r["recall"], 4), "classes_covered": r["classes_covered"],
            "kl_uniform": round(r["kl_uniform"], 4), "score_N": args.N, "score_seed": args.seed,
        }, args.manifest)
        print(f"{r['name']}: FID {r['fid']:.2f}, KID {r['kid']:.4f}, precision {r['precision']:.3f}, "
              f"recall {r['recall']:.3f}, {r['classes_covered']} digits covered")
    return 0
