"""Measuring generative models: FID, KID, precision/recall, class coverage and likelihoods.

Chapter: Measuring generative models (Part IV, ``book/evaluation.ipynb``).

Every sample-based measure here compares two sets of images through the features of
the book's domain classifier (`genimg_lib.classifier.MNISTClassifier`, the shipped
checkpoint ``classifier``), in the role Inception-v3 plays for natural images.
Images are ``(N, 1, 28, 28)`` floats in **[0, 1]**, the range every generative
model's ``sample`` returns.

- `fid` and `kid` go through ``torchmetrics`` (``FrechetInceptionDistance`` and
  ``KernelInceptionDistance`` with ``feature=`` our extractor), so nothing is
  downloaded: torchmetrics only builds Inception when ``feature`` is an integer.
- `precision_recall`: improved precision and recall (Kynkäänniemi et al., 2019) with
  k-nearest-neighbour balls in feature space.
- `class_coverage`: the histogram of the classifier's predicted digits, how many
  digits are covered, and the KL divergence of the histogram to uniform.
- `estimate_nll` and `evaluate_vae`: a VAE's test negative log-likelihood (IWAE),
  ELBO, rate, distortion and active units.
- `gaussian_blur` and `add_pixel_noise` degrade real images by a known amount: the
  sanity checks of every measure.

`genimg_lib.scoreboard` puts them together for every shipped model.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from genimg_lib.checkpoints import load_model
from genimg_lib.classifier import MNISTClassifier
from genimg_lib.data import NUM_CLASSES, check_images, check_int, check_number
from genimg_lib.losses import bernoulli_log_likelihood, bits_per_dim, kl_per_dim


def check_fake_images(x: Any, name: str = "images") -> torch.Tensor:
    """`genimg_lib.data.check_images` for the measures: ``(N, 1, 28, 28)`` in [0, 1], clipped.

    The extractor was trained on MNIST in [0, 1]; a ``[-1, 1]`` (tanh) batch or ``uint8``
    pixels would silently give wrong features, so they are refused, with the fix. Values
    within 1e-4 of the range (float round-off) are clipped into it.
    """
    return check_images(x, (0.0, 1.0), name).float().clamp(0.0, 1.0)


def check_features(f: Any, name: str = "features", num_features: int | None = None) -> torch.Tensor:
    """Return ``f`` if it is a non-empty float tensor ``(N, d)`` of finite features; else raise, naming ``name``.

    NaN features would otherwise give a precision of 0 or a NaN FID (after a linear
    algebra error deep in the covariance square root); every measure on features checks
    its inputs here first. ``num_features`` fixes ``d`` when given.
    """
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of features (N, d), got {type(f).__name__}")
    if f.dim() != 2 or (num_features is not None and f.shape[1] != num_features):
        d = "d" if num_features is None else str(num_features)
        raise ValueError(f"{name}: expected features of shape (N, {d}), got {tuple(f.shape)}; "
                         "compute them with extract_features(x)")
    if not f.is_floating_point():
        raise TypeError(f"{name}: expected float features, got dtype {f.dtype}")
    if len(f) == 0:
        raise ValueError(f"{name}: the set is empty (0 features); a measure needs samples")
    if not torch.isfinite(f).all():
        bad = int((~torch.isfinite(f)).sum())
        raise ValueError(f"{name}: {bad} feature value(s) are NaN or infinite; check the images and the extractor")
    return f


def _check_feature_pair(f_real: Any, f_fake: Any) -> None:
    check_features(f_real, "real_features")
    check_features(f_fake, "fake_features")
    if f_real.shape[1] != f_fake.shape[1]:
        raise ValueError(
            f"fake_features: expected features of shape (N, {f_real.shape[1]}) like real_features, got "
            f"{tuple(f_fake.shape)}; extract both sets with the same extractor"
        )


# ---------------------------------------------------------------------------
# The features of the domain classifier
# ---------------------------------------------------------------------------
class DomainFeatures(nn.Module):
    """The feature extractor handed to torchmetrics: ``x -> classifier.features(x)``.

    Checks every batch with `check_fake_images` and has the ``num_features`` attribute
    torchmetrics reads, so it never pushes a dummy 299x299 image through the network.
    """

    def __init__(self, classifier: MNISTClassifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, num_features)`` on the CPU for images ``(N, 1, 28, 28)`` in [0, 1] (checked)."""
        x = check_fake_images(x)
        device = next(self.classifier.parameters()).device
        return self.classifier.features(x.to(device)).float().cpu()


_DOMAIN_CLASSIFIERS: dict[str, MNISTClassifier] = {}


def domain_classifier(device: str | torch.device = "cpu") -> MNISTClassifier:
    """The shipped ``classifier`` (checksum verified, frozen, eval mode), loaded once per device."""
    key = str(device)
    if key not in _DOMAIN_CLASSIFIERS:
        model = load_model("classifier", device=device)
        for p in model.parameters():
            p.requires_grad_(False)
        _DOMAIN_CLASSIFIERS[key] = model
    return _DOMAIN_CLASSIFIERS[key]


def default_extractor() -> DomainFeatures:
    """`DomainFeatures` around the shipped classifier (the book's default feature space)."""
    return DomainFeatures(domain_classifier())


def min_samples(extractor: DomainFeatures | None = None) -> int:
    """The fewest images per set for FID/KID: twice the feature dimension (128 for the shipped classifier).

    Below the feature dimension the covariance matrix is singular; near it the
    estimate is dominated by noise. FID is still biased above this, see the chapter.
    """
    num_features = extractor.num_features if extractor is not None else MNISTClassifier().num_features
    return 2 * int(num_features)


def check_enough_samples(n: int, extractor: DomainFeatures | None, what: str) -> None:
    """Raise unless ``n`` images per set reach `min_samples` for ``extractor``."""
    minimum = min_samples(extractor)
    if n < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} images per set for a stable estimate "
            f"(twice the feature dimension), got {n}; sample more images"
        )


@torch.no_grad()
def extract_features(x: torch.Tensor, extractor: nn.Module | None = None, batch_size: int = 500) -> torch.Tensor:
    """Penultimate-layer features ``(N, num_features)`` of images ``(N, 1, 28, 28)`` in [0, 1]."""
    extractor = extractor or default_extractor()
    x = check_fake_images(x)
    return torch.cat([extractor(xb) for xb in x.split(batch_size)]) if len(x) else torch.zeros(0, extractor.num_features)


# ---------------------------------------------------------------------------
# FID and KID, through torchmetrics
# ---------------------------------------------------------------------------
def _fid_metric(extractor: nn.Module, reset_real_features: bool = True) -> FrechetInceptionDistance:
    # a Module as ``feature``: torchmetrics uses it as is and builds (downloads) no Inception
    return FrechetInceptionDistance(feature=extractor, reset_real_features=reset_real_features)


def _kid_metric(
    extractor: nn.Module, subset_size: int, subsets: int, reset_real_features: bool = True
) -> KernelInceptionDistance:
    with warnings.catch_warnings():  # "will save all extracted features in buffer": 1000 x 64 floats
        warnings.simplefilter("ignore", UserWarning)
        return KernelInceptionDistance(
            feature=extractor, subsets=subsets, subset_size=subset_size, reset_real_features=reset_real_features
        )


def _update(metric, x: torch.Tensor, real: bool, batch_size: int = 500) -> None:
    for xb in x.split(batch_size):
        metric.update(xb, real=real)


def fid(x_real: torch.Tensor, x_fake: torch.Tensor,
        extractor: nn.Module | None = None) -> float:
    r"""Fréchet distance between Gaussians fitted to two sets' features.

    .. math:: \mathrm{FID} = \lVert \mu_r - \mu_g \rVert^2
       + \operatorname{Tr}\big(\Sigma_r + \Sigma_g
       - 2 (\Sigma_r \Sigma_g)^{1/2}\big)

    (Heusel et al., 2017), computed by
    ``torchmetrics.image.fid.FrechetInceptionDistance`` on the classifier's
    features (the "domain FID"; numbers are not comparable with Inception
    FIDs). Both sets ``(N, 1, 28, 28)`` in [0, 1], at least `min_samples`
    each. FID is biased upwards at small N: compare models only at the same N.
    """
    extractor = extractor or default_extractor()
    x_real = check_fake_images(x_real, "x_real")
    x_fake = check_fake_images(x_fake, "x_fake")
    check_enough_samples(min(len(x_real), len(x_fake)), extractor, "FID")
    # a Module as ``feature``: torchmetrics builds (downloads) no Inception
    metric = _fid_metric(extractor)
    _update(metric, x_real, True)   # accumulates the sums for mu_r, Sigma_r
    _update(metric, x_fake, False)  # and for mu_g, Sigma_g
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
    x_real, x_fake = check_fake_images(x_real, "x_real"), check_fake_images(x_fake, "x_fake")
    n = min(len(x_real), len(x_fake))
    check_enough_samples(n, extractor, "KID")
    subset_size, subsets = _check_kid_subsets(subset_size, subsets, n)
    metric = _kid_metric(extractor, subset_size, subsets)
    _update(metric, x_real, True)
    _update(metric, x_fake, False)
    return _kid_compute(metric, seed)


def _check_kid_subsets(subset_size: int | None, subsets: int, n: int) -> tuple[int, int]:
    """``(subset_size, subsets)`` checked: ``subset_size`` in 2..n (default n // 2), ``subsets >= 1``."""
    subset_size = n // 2 if subset_size is None else check_int(subset_size, "subset_size", minimum=2)
    if subset_size > n:
        raise ValueError(f"subset_size={subset_size} is larger than the smaller set ({n} images); lower it")
    return subset_size, check_int(subsets, "subsets")


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
    _check_feature_pair(f_real, f_fake)
    extractor = PrecomputedFeatures(f_real.shape[-1])
    check_enough_samples(min(len(f_real), len(f_fake)), extractor, "FID")
    metric = _fid_metric(extractor)
    metric.update(extractor(f_real), real=True)
    metric.update(extractor(f_fake), real=False)
    return float(metric.compute())


def kid_from_features(
    f_real: torch.Tensor, f_fake: torch.Tensor, subset_size: int | None = None, subsets: int = 50, seed: int = 0
) -> tuple[float, float]:
    """`kid` on features ``(N, d)`` already computed, through torchmetrics; returns ``(mean, std)``."""
    _check_feature_pair(f_real, f_fake)
    extractor = PrecomputedFeatures(f_real.shape[-1])
    n = min(len(f_real), len(f_fake))
    check_enough_samples(n, extractor, "KID")
    subset_size, subsets = _check_kid_subsets(subset_size, subsets, n)
    metric = _kid_metric(extractor, subset_size, subsets)
    metric.update(extractor(f_real), real=True)
    metric.update(extractor(f_fake), real=False)
    return _kid_compute(metric, seed)


# ---------------------------------------------------------------------------
# Improved precision and recall (k-nearest-neighbour manifolds)
# ---------------------------------------------------------------------------
def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    r"""Distance from each point to its k-th nearest *other* point: :math:`r_i = \lVert f_i - \mathrm{NN}_k(f_i)\rVert`, shape ``(N,)``."""
    check_features(features, "features")
    k = check_int(k, "k", meaning="the number of nearest neighbours")
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
    _check_feature_pair(real_features, fake_features)
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
    min_share = check_number(min_share, "min_share", 0.0)
    x = check_fake_images(x)
    if len(x) == 0:
        raise ValueError("class_coverage needs at least one image in x")
    classifier = classifier or domain_classifier()
    device = next(classifier.parameters()).device
    preds = torch.cat([classifier(xb.to(device)).argmax(1).cpu() for xb in x.split(500)])
    return coverage_from_predictions(preds, min_share)


def coverage_from_predictions(preds: torch.Tensor, min_share: float = 0.1) -> dict[str, Any]:
    """`class_coverage` from predicted digits ``(N,)`` already computed."""
    counts = torch.bincount(preds, minlength=NUM_CLASSES)
    p = counts.double() / counts.sum()
    nz = p > 0
    kl = (p[nz] * (p[nz] * NUM_CLASSES).log()).sum().item()
    covered = int((counts >= min_share * len(preds) / NUM_CLASSES).sum().item())
    return {"histogram": counts.tolist(), "classes_covered": covered, "kl_uniform": kl}


# ---------------------------------------------------------------------------
# Likelihoods (VAEs)
# ---------------------------------------------------------------------------
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
    check_images(x, (0.0, 1.0), "estimate_nll(x)")
    if len(x) == 0:
        raise ValueError("estimate_nll needs at least one image in x")
    num_samples, batch_size = check_int(num_samples, "num_samples"), check_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    total = 0.0
    for xb in x.split(batch_size):
        total += model.estimate_log_px(xb.to(device), num_samples=num_samples).double().sum().item()
    return -total / len(x)


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
    conditional = getattr(model, "num_classes", 0) > 0
    if conditional and y is None:
        raise ValueError(f"{type(model).__name__} is conditional: pass the labels y of x to evaluate_vae")
    check_images(x, (0.0, 1.0), "evaluate_vae(x)")
    if len(x) == 0:
        raise ValueError("evaluate_vae needs at least one image in x")
    if isinstance(iwae_k, bool) or not isinstance(iwae_k, numbers.Integral) or iwae_k < 1:
        raise ValueError(f"iwae_k is the number of importance samples and must be an integer >= 1, got {iwae_k!r}")
    iwae_k = int(iwae_k)
    batch_size = check_int(batch_size, "batch_size")
    if conditional and len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels; they must match")
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    mus, kls, recons = [], [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device) if conditional else None
        logits, mu, logvar = model(xb, yb, generator=g)  # one z per image, as in training
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


# ---------------------------------------------------------------------------
# Degrading real images by a known amount: the metrics' sanity checks
# ---------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""Blur images ``(N, 1, H, W)`` with a Gaussian kernel of std ``sigma`` pixels (``sigma = 0``: unchanged).

    The kernel :math:`w_i \propto e^{-i^2 / 2\sigma^2}`, :math:`|i| \le \lceil 3\sigma \rceil`, is
    applied along rows, then columns, with zero padding; the range stays in [0, 1].
    """
    sigma = check_number(sigma, "sigma", 0.0)
    check_images(x, (0.0, 1.0), "gaussian_blur(x)", shape=None)
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
    std = check_number(std, "std", 0.0)
    check_images(x, (0.0, 1.0), "add_pixel_noise(x)", shape=None)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return (x + std * noise).clamp(0.0, 1.0)
