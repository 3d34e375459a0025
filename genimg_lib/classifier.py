"""The domain classifier: a small MNIST conv net whose features the measures use.

Chapter: Measuring generative models (Part IV). `MNISTClassifier` plays the role that
Inception-v3 plays for natural images: FID, KID and precision/recall (`genimg_lib.measures`)
compare sets of images through its penultimate layer. `train_classifier` trains it; the
shipped checkpoint ``classifier`` is loaded with ``genimg_lib.checkpoints.load_model``
and made by ``python -m genimg_lib train classifier``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genimg_lib.data import NUM_CLASSES, check_int, check_number, load_mnist5k
from genimg_lib.monitor import ExplosionGuard, History, NonFiniteLossError


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
    callback: Callable[[int, History], None] | None = None,
    log_every: int = 100,
    explode_factor: float | None = 1e4,
) -> tuple[MNISTClassifier, History]:
    r"""Train `MNISTClassifier` on the MNIST-5k training split; the ``classifier`` subcommand calls this.

    The loss is cross-entropy on shifted digits plus *outlier exposure*
    (Hendrycks et al., 2019): on a batch of non-digit images (`outlier_images`) the
    prediction is pushed towards uniform,

    .. math:: \mathcal L = \mathrm{CE}(f(x), y) + \lambda\,\frac{1}{K}\sum_{k=1}^{K} -\log \mathrm{softmax}(f(\tilde x))_k ,

    so that noise lands away from the digits in feature space. Adam with a cosine
    learning-rate decay over ``num_steps``. At the end ``feature_scale`` is set to the
    root mean squared feature on the training split. Returns the model (eval mode)
    and a `History` with the mean ``loss`` and training-batch accuracy ``acc`` of every
    ``log_every`` steps; ``callback(step, history)`` runs after each of those rows.
    Stops, before the update, if the loss or the gradient norm becomes NaN or infinite
    or explodes (`genimg_lib.monitor.ExplosionGuard`, ``explode_factor``), and at the end if
    the features are all zero or not finite. Chapter: Measuring generative models.
    """
    num_steps, log_every = check_int(num_steps, "num_steps"), check_int(log_every, "log_every")
    batch_size, seed = check_int(batch_size, "batch_size"), check_int(seed, "seed", minimum=0)
    max_shift = check_int(max_shift, "max_shift", minimum=0)
    lr = check_number(lr, "lr", 0.0, strict=True, meaning="the learning rate")
    outlier_weight = check_number(outlier_weight, "outlier_weight", 0.0)
    if outlier_weight > 0 and batch_size < 4:
        raise ValueError(f"batch_size must be >= 4 with outlier exposure (a quarter of it are outliers), got {batch_size}")
    guard = ExplosionGuard(explode_factor)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = load_mnist5k("train")
    model = MNISTClassifier(channels, num_features).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_steps)
    history = History()
    running_loss, running_acc, count = 0.0, 0.0, 0
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
        guard.check(step, loss=loss)
        optimizer.zero_grad()
        loss.backward()
        guard.check_gradients(step, model.parameters())
        optimizer.step()
        scheduler.step()
        running_loss += loss.item()
        running_acc += (logits.argmax(1) == yb).float().mean().item()
        count += 1
        if step % log_every == 0 or step == num_steps:
            history.log(step, loss=running_loss / count, acc=running_acc / count)
            running_loss, running_acc, count = 0.0, 0.0, 0
            if callback is not None:
                callback(step, history)
    model.eval()
    with torch.no_grad():  # unit mean squared feature on the training split (see MNISTClassifier)
        f = torch.cat([model.body(xb.to(device)) for xb in x.split(500)])
        model.feature_scale = round(math.sqrt(f.pow(2).mean().item()), 4)
    if not math.isfinite(model.feature_scale) or model.feature_scale == 0:
        raise NonFiniteLossError(
            f"the trained classifier's feature scale is {model.feature_scale}: its features are all "
            "zero or not finite; lower the learning rate and train again"
        )
    return model, history


@torch.no_grad()
@torch.no_grad()
def classifier_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of images ``x`` whose predicted digit equals ``y``."""
    device = next(model.parameters()).device
    correct = 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        correct += (model(xb.to(device)).argmax(1).cpu() == yb).sum().item()
    return correct / len(x)
