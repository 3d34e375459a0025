r"""Few labels: does a generative model help a classifier that has only a handful of labelled digits?

Chapter: Generative models for classification (Part VI). The experiment takes
``per_class`` labelled training digits per class (chosen by a seed) and compares one
classifier, multinomial logistic regression, fitted on

- the pixels of the labelled digits (the baseline);
- the VAE's codes of the same digits, :math:`\mu_\phi(x)` (the encoder was trained on all
  the training images *without* their labels: the M1 model of Kingma et al., 2014);
- either of them plus samples of a conditional generator, labelled by construction;

and scores each on the test digits. The pieces:

- `choose_labelled`: a seeded, class-balanced choice of labelled examples;
- `fit_softmax_regression`: L2-regularised multinomial logistic regression, fitted to its
  unique optimum (the problem is strictly convex), returned as a `SoftmaxRegression`;
- `encode_means`: the posterior means of a VAE, the features of the second arm;
- `labelled_samples`: class-balanced samples of a conditional model with their labels;
- `paired_summary`: the mean and spread of accuracies over seeds, and of the paired
  difference between two arms, with a Student-t interval.

Logistic regression, not a network, on purpose: with 100 labels a small network's test
accuracy depends on its initialization and on when training stops, which would blur the
comparison; a convex problem has one answer per training set, so the only randomness
left is which digits are labelled (and which samples are drawn), and that is what the
seeds vary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genimg_lib.data import NUM_CLASSES, check_images, check_int, check_number


def _check_labels(y: Any, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"a {y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name}: expected integer class labels, a 1-D tensor (N,), got {got}; use y.long()")
    if y.numel() and y.min() < 0:
        raise ValueError(f"{name}: class labels must be >= 0, got {y.min().item()}")
    return y.long()


def choose_labelled(y: torch.Tensor, per_class: int = 10, seed: int = 0, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Indices of ``per_class`` examples of each class, chosen at random with ``seed``: ``(per_class * num_classes,)``.

    For each class ``c`` in order: a seeded permutation of the indices with ``y == c``,
    and its first ``per_class`` entries (one generator, seeded once, drawn from class 0
    to the last). So seed 0 always labels the same digits. Chapter: Generative models for classification.
    """
    y = _check_labels(y)
    per_class = check_int(per_class, "per_class", meaning="labelled examples per class")
    seed = check_int(seed, "seed", minimum=0)
    num_classes = check_int(num_classes, "num_classes")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).squeeze(1)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than per_class={per_class}; lower per_class")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(chosen)


@dataclass
class SoftmaxRegression:
    r"""A fitted multinomial logistic regression :math:`p(y\mid f) = \operatorname{softmax}(W^\top f + b)_y`.

    ``W`` ``(d, K)`` and ``b`` ``(K,)`` in float64; ``loss`` is the minimised objective
    (see `fit_softmax_regression`), ``grad_norm`` the norm of its gradient at the answer
    (how close to the optimum the fit ended), ``num_iterations`` what L-BFGS used.
    """

    W: torch.Tensor
    b: torch.Tensor
    l2: float
    loss: float
    grad_norm: float
    num_iterations: int

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` features -> ``(N, K)`` logits."""
        features = _check_features(features, "features")
        if features.shape[1] != self.W.shape[0]:
            raise ValueError(f"features: the model was fitted on {self.W.shape[0]} features, got {features.shape[1]}")
        return features.double() @ self.W + self.b

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The most probable class of each row, ``(N,)``."""
        return self.logits(features).argmax(1)

    def accuracy(self, features: torch.Tensor, y: torch.Tensor) -> float:
        """The share of rows whose predicted class is ``y``."""
        y = _check_labels(y)
        if len(y) != len(features):
            raise ValueError(f"y: got {len(y)} labels for {len(features)} rows of features")
        return (self.predict(features) == y).double().mean().item()


def _check_features(features: Any, name: str) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or not features.is_floating_point():
        got = f"shape {tuple(features.shape)}, dtype {features.dtype}" if isinstance(features, torch.Tensor) \
            else type(features).__name__
        raise ValueError(f"{name}: expected float features of shape (N, d), got {got}; flatten images with x.flatten(1)")
    if not torch.isfinite(features).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return features


def softmax_regression_loss(
    W: torch.Tensor, b: torch.Tensor, features: torch.Tensor, y: torch.Tensor, l2: float
) -> torch.Tensor:
    r"""The objective of `fit_softmax_regression`: mean cross-entropy plus an L2 penalty on ``W``.

    .. math:: \mathcal L(W, b) = -\frac1N \sum_{n=1}^N \log \operatorname{softmax}(W^\top f_n + b)_{y_n}
       + \frac{\lambda}{2}\lVert W\rVert_F^2

    (:math:`\lambda` = ``l2``; the bias is not penalised). Shapes: ``W`` ``(d, K)``, ``b``
    ``(K,)``, ``features`` ``(N, d)``, ``y`` ``(N,)``. It is scikit-learn's
    ``LogisticRegression(C=1 / (l2 * N))`` objective divided by :math:`N C`, so both have the same minimiser.
    """
    return F.cross_entropy(features @ W + b, y) + 0.5 * l2 * W.pow(2).sum()


def fit_softmax_regression(
    features: torch.Tensor,
    y: torch.Tensor,
    l2: float = 0.1,
    num_classes: int = NUM_CLASSES,
    tolerance: float = 1e-6,
    max_iterations: int = 2000,
) -> SoftmaxRegression:
    r"""Fit multinomial logistic regression by minimising `softmax_regression_loss` with L-BFGS, in float64.

    ``features`` ``(N, d)``, ``y`` ``(N,)`` with values in ``0..num_classes - 1``. With
    :math:`\lambda` = ``l2`` > 0 the objective is strictly convex in ``W`` (and convex in
    ``b``), so the answer does not depend on where the optimizer starts (here at zero):
    L-BFGS (strong Wolfe line search) runs until the gradient's largest entry is below
    ``tolerance``. A fit that stops before (``max_iterations``) is refused with an error,
    so a reported accuracy always belongs to the optimum. Chapter: Generative models for classification.
    """
    features = _check_features(features, "features").double()
    y = _check_labels(y)
    if len(y) != len(features):
        raise ValueError(f"y: got {len(y)} labels for {len(features)} rows of features; give one label per row")
    if y.numel() == 0:
        raise ValueError("features: got no rows; fit needs at least one labelled example")
    num_classes = check_int(num_classes, "num_classes")
    if y.max() >= num_classes:
        raise ValueError(f"y: labels must lie in 0..{num_classes - 1}, got {y.max().item()}")
    l2 = check_number(l2, "l2", 0.0, strict=True, meaning="the penalty that makes the optimum unique")
    tolerance = check_number(tolerance, "tolerance", 0.0, strict=True)
    max_iterations = check_int(max_iterations, "max_iterations")
    W = torch.zeros(features.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iterations, tolerance_grad=tolerance, tolerance_change=0.0,
                            history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = softmax_regression_loss(W, b, features, y, l2)
        loss.backward()
        return loss

    opt.step(closure)
    iterations = opt.state[opt._params[0]]["n_iter"]
    loss = softmax_regression_loss(W, b, features, y, l2)
    gW, gb = torch.autograd.grad(loss, [W, b])
    grad_max = max(gW.abs().max().item(), gb.abs().max().item())
    if grad_max > 10 * tolerance:
        raise RuntimeError(
            f"fit_softmax_regression did not converge: the gradient's largest entry is {grad_max:.2e} after "
            f"{iterations} iterations (tolerance {tolerance:g}); raise max_iterations, scale the features "
            "(e.g. standardize them), or ask for a tolerance above float64 round-off (1e-8 or more)"
        )
    return SoftmaxRegression(W.detach(), b.detach(), float(l2), loss.item(),
                             torch.cat([gW.flatten(), gb]).norm().item(), int(iterations))


@torch.no_grad()
def encode_means(vae: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    r"""The posterior means :math:`\mu_\phi(x)` of an unconditional VAE for images ``x`` ``(N, 1, 28, 28)`` in [0, 1]: ``(N, z_dim)``.

    The grey images go in as they are (the encoder was trained on binarized ones, whose
    expectation they are). Computed in eval mode on the model's device, returned on the CPU.
    """
    if not hasattr(vae, "encode") or getattr(vae, "num_classes", 0):
        raise TypeError(f"encode_means: expected an unconditional VAE (with .encode(x)), got {type(vae).__name__}")
    check_images(x, (0.0, 1.0), "encode_means(x)")
    vae.eval()
    device = next(vae.parameters()).device
    return torch.cat([vae.encode(xb.to(device))[0].cpu() for xb in x.split(batch_size)])


@torch.no_grad()
def labelled_samples(
    model: nn.Module, per_class: int, seed: int = 0, num_classes: int = NUM_CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` samples of each class from a conditional model, with their labels: ``(x, y)``.

    ``x`` ``(per_class * num_classes, 1, 28, 28)`` in [0, 1] (the model's ``sample(n,
    generator, y)``: a `genimg_lib.models.CVAE` or a conditional `genimg_lib.models.DCGAN`),
    ``y`` the labels they were drawn with, class 0 first. Seeded by ``seed``.
    """
    per_class = check_int(per_class, "per_class", meaning="samples per class")
    seed = check_int(seed, "seed", minimum=0)
    if not getattr(model, "num_classes", 0):
        raise TypeError(f"labelled_samples: expected a conditional model (num_classes > 0), got {type(model).__name__}")
    model.eval()
    y = torch.arange(num_classes).repeat_interleave(per_class)
    x = model.sample(len(y), generator=torch.Generator().manual_seed(seed), y=y)
    return check_images(x.float().cpu(), (0.0, 1.0), f"{type(model).__name__}.sample"), y


def paired_summary(baseline: Sequence[float], other: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    r"""Mean and spread over seeds of two arms and of their paired difference ``other - baseline``.

    Both sequences hold one number per seed, in the same order (seed ``s`` of one arm used
    the same labelled digits as seed ``s`` of the other). Returns ``mean_a``, ``std_a``,
    ``mean_b``, ``std_b`` (sample standard deviations, ``ddof = 1``), ``diff_mean``,
    ``diff_std`` and the Student-t interval of the mean difference,

    .. math:: \bar d \pm t_{1-\alpha/2,\,S-1}\, s_d / \sqrt S,

    as ``ci_low``, ``ci_high``. Pairing removes the part of the spread that both arms
    share (a lucky or unlucky choice of labelled digits). Needs at least two seeds.
    """
    from scipy.stats import t as student_t

    a, b = torch.as_tensor(baseline, dtype=torch.float64), torch.as_tensor(other, dtype=torch.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"paired_summary: expected two 1-D sequences of the same length >= 2 (one value per seed), "
                         f"got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    d = b - a
    half = float(student_t.ppf(0.5 + confidence / 2, len(d) - 1)) * d.std().item() / math.sqrt(len(d))
    return {"mean_a": a.mean().item(), "std_a": a.std().item(), "mean_b": b.mean().item(), "std_b": b.std().item(),
            "diff_mean": d.mean().item(), "diff_std": d.std().item(),
            "ci_low": d.mean().item() - half, "ci_high": d.mean().item() + half}
