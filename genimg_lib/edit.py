r"""Editing images in latent space: interpolation, latent arithmetic, attribute directions, measured edits.

Chapters: Interpolation and latent arithmetic (Part V, ``book/edit_01_interpolation.ipynb``)
and Attribute vectors, measured with morphometrics (``book/edit_02_attributes.ipynb``).

A generative model with a latent code, a VAE's decoder or a GAN's generator, turns a
vector :math:`z \in \mathbb R^d` into an image. Editing an image then means moving its
code and decoding again. This module holds the moves and the measurements:

- **Interpolation** between two codes: `lerp`, the straight line, and `slerp`, the
  great circle of White (2016), which keeps the code at the norm the Gaussian prior
  gives its samples; `interpolation_steps` and `angle` help.
- **Latent arithmetic**: `class_means` and `class_vector`, the mean code of one class
  minus that of another (Radford et al., 2016, did it with faces).
- **Attribute directions**: `regression_direction` (least squares of a measured
  attribute on the codes) and `mean_difference_direction` (mean code of the top
  quantile of the attribute minus that of the bottom quantile). Both return an
  `AttributeDirection` with a unit vector.
- **Applying and measuring an edit**: `apply_edit` computes :math:`z + \alpha u`;
  `decode_images` turns codes into images in [0, 1] for a VAE, a CVAE or a DCGAN;
  `classify` runs the domain classifier; `measure_edit` decodes a batch of codes at a
  range of :math:`\alpha`, measures every digit with `genimg_lib.morpho.measure`, and
  reports the attribute's change per unit step, whether it is monotone, the share of
  digits that keep their class, and how far the other attributes move (`EditReport`).

Codes are ``(N, d)`` float tensors (one code may be ``(d,)``), images ``(N, 1, 28, 28)``
in [0, 1]. Every function refuses non-finite codes and mismatched sizes with an error
that names the argument.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from genimg_lib.morpho import ATTRIBUTES, measure

#: Below this angle (radians) two codes count as parallel, and `slerp` falls back to `lerp`.
PARALLEL_EPS = 1e-4


# ---------------------------------------------------------------------------
# Checking the inputs
# ---------------------------------------------------------------------------
def _as_codes(z: Any, name: str, batched: bool | None = None) -> torch.Tensor:
    """``z`` as a finite float tensor ``(d,)`` or ``(N, d)`` (``batched`` forces one of them)."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of latent codes, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{name}: expected float latent codes, got dtype {z.dtype}; use {name}.float()")
    allowed = {None: (1, 2), True: (2,), False: (1,)}[batched]
    if z.ndim not in allowed:
        shapes = " or ".join({1: "(d,)", 2: "(N, d)"}[k] for k in allowed)
        raise ValueError(f"{name}: expected latent codes of shape {shapes}, got shape {tuple(z.shape)}")
    if z.shape[-1] == 0:
        raise ValueError(f"{name}: the codes have no dimension (shape {tuple(z.shape)})")
    if not torch.isfinite(z).all():
        bad = int((~torch.isfinite(z)).sum())
        raise ValueError(
            f"{name}: {bad} value(s) are NaN or infinite; latent codes must be finite "
            "(check what produced them, e.g. an encoder fed images outside [0, 1])"
        )
    return z


def _check_pair(z0: Any, z1: Any) -> tuple[torch.Tensor, torch.Tensor]:
    z0, z1 = _as_codes(z0, "z0"), _as_codes(z1, "z1")
    if z0.shape != z1.shape:
        raise ValueError(
            f"z0 and z1 must have the same shape, (d,) or (N, d), got z0 {tuple(z0.shape)} and z1 "
            f"{tuple(z1.shape)}; interpolate between codes of the same model (same z_dim), one pair per row"
        )
    return z0, z1


def _as_steps(t: Any, like: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``t`` as a float tensor ``(T,)`` on ``like``'s device and dtype, in [0, 1]; and whether it was a scalar."""
    scalar = isinstance(t, (int, float)) and not isinstance(t, bool)
    if isinstance(t, torch.Tensor):
        scalar = t.ndim == 0
    elif not scalar:
        if isinstance(t, bool) or not isinstance(t, Sequence) or isinstance(t, str):
            raise TypeError(f"t: expected a number in [0, 1] or a 1-D sequence of them, got {type(t).__name__}")
    steps = torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1 if not scalar else 1)
    if not scalar and torch.as_tensor(t).ndim != 1:
        raise ValueError(f"t: expected a number or a 1-D vector of steps, got shape {tuple(torch.as_tensor(t).shape)}")
    if steps.numel() == 0:
        raise ValueError("t: got no steps; give at least one t in [0, 1], e.g. interpolation_steps(9)")
    if not torch.isfinite(steps).all() or steps.min() < 0 or steps.max() > 1:
        raise ValueError(
            f"t: interpolation steps must lie in [0, 1] (0 gives z0, 1 gives z1), got values in "
            f"[{steps.min().item():.4g}, {steps.max().item():.4g}]; to move beyond an endpoint, "
            "edit the code along a direction with apply_edit"
        )
    return steps, scalar


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:  # np.int64 too
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------
# Interpolation
# ---------------------------------------------------------------------------
def interpolation_steps(num_steps: int) -> torch.Tensor:
    """``num_steps`` evenly spaced values of :math:`t` from 0 to 1, both included: ``(num_steps,)``.

    ``num_steps`` must be at least 2 (the two endpoints). Chapter: Interpolation and latent arithmetic.
    """
    _check_positive_int(num_steps, "num_steps", minimum=2)
    return torch.linspace(0.0, 1.0, num_steps)


def angle(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    r"""The angle :math:`\omega \in [0, \pi]` between codes, in radians: ``()`` or ``(N,)``.

    .. math:: \omega = 2 \operatorname{atan2}\big(\lVert \hat z_0 - \hat z_1 \rVert,\;
       \lVert \hat z_0 + \hat z_1 \rVert\big), \qquad \hat z = z / \lVert z \rVert

    which equals :math:`\arccos(\hat z_0 \cdot \hat z_1)` but stays accurate near 0 and
    :math:`\pi`, where the arccosine loses half its digits. A zero code has no direction;
    its angle is reported as 0. Chapter: Interpolation and latent arithmetic.
    """
    z0, z1 = _check_pair(z0, z1)
    n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
    tiny = torch.finfo(z0.dtype).tiny
    u0, u1 = z0 / n0.clamp_min(tiny), z1 / n1.clamp_min(tiny)
    omega = 2 * torch.atan2((u0 - u1).norm(dim=-1), (u0 + u1).norm(dim=-1))
    zero = (n0 == 0).squeeze(-1) | (n1 == 0).squeeze(-1)
    return torch.where(zero, torch.zeros_like(omega), omega)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    r"""Linear interpolation :math:`z(t) = (1 - t)\, z_0 + t\, z_1`, :math:`t \in [0, 1]`.

    ``z0``, ``z1``: ``(d,)`` or ``(N, d)`` (N pairs, one per row). ``t``: a number, or
    a 1-D vector of ``T`` steps. Returns ``z0``'s shape for a number, and ``(T, d)``
    or ``(N, T, d)`` for a vector. The endpoints are exact: ``t = 0`` returns ``z0``
    and ``t = 1`` returns ``z1`` bit for bit.

    Under the prior :math:`\mathcal N(0, I_d)` the midpoint of two independent codes is
    :math:`\mathcal N(0, \tfrac12 I_d)`: its norm concentrates near :math:`\sqrt{d/2}`,
    not :math:`\sqrt d` like a sample's (see `slerp`). Chapter: Interpolation and latent arithmetic.
    """
    z0, z1 = _check_pair(z0, z1)
    steps, scalar = _as_steps(t, z0)
    s = steps.view(-1, 1)  # (T, 1)
    path = (1 - s) * z0.unsqueeze(-2) + s * z1.unsqueeze(-2)  # (..., T, d)
    # (1 - t) z0 + t z1 is already exact at t = 0 and t = 1 for finite codes; say so explicitly
    path = torch.where(s == 0, z0.unsqueeze(-2), torch.where(s == 1, z1.unsqueeze(-2), path))
    return path.squeeze(-2) if scalar else path


def slerp(
    z0: torch.Tensor, z1: torch.Tensor, t: float | Sequence[float] | torch.Tensor, eps: float = PARALLEL_EPS
) -> torch.Tensor:
    r"""Spherical linear interpolation (White, 2016, after Shoemake, 1985):

    .. math:: z(t) = \frac{\sin\big((1 - t)\,\omega\big)}{\sin \omega}\, z_0
       + \frac{\sin(t\,\omega)}{\sin \omega}\, z_1, \qquad t \in [0, 1],

    with :math:`\omega` the angle between :math:`z_0` and :math:`z_1` (see `angle`).
    For endpoints of equal norm :math:`r` the path is the arc of the great circle of
    radius :math:`r` through both, so every point has norm :math:`r` and the angle from
    :math:`z_0` grows linearly, :math:`t\,\omega`. For unequal norms the formula still
    runs from ``z0`` to ``z1``, with a norm that moves smoothly between theirs.

    Why: two independent draws from :math:`\mathcal N(0, I_d)` both have norm near
    :math:`\sqrt d`, while their `lerp` midpoint has norm near :math:`\sqrt{d/2}`: a code
    the prior almost never produces, and the decoder was never trained on. Slerp stays
    on the shell where the prior puts its mass.

    Shapes and ``t`` as in `lerp`. The endpoints are exact. **Degenerate pairs:** when
    :math:`\omega <` ``eps`` (parallel codes, or a zero code) :math:`\sin\omega` is 0 and
    the formula is 0/0; slerp then returns `lerp`, which differs from the arc by a
    relative :math:`O(\omega^2)`, below float precision. When :math:`\omega > \pi -`
    ``eps`` (opposite codes) every great circle through both is equally short, so the
    arc is undefined; slerp also returns `lerp` there, a path through the origin.
    Random codes in many dimensions are almost orthogonal, so neither case arises in
    practice. Chapter: Interpolation and latent arithmetic.
    """
    z0, z1 = _check_pair(z0, z1)
    steps, scalar = _as_steps(t, z0)
    if not (isinstance(eps, (int, float)) and 0 < eps < 1):
        raise ValueError(f"eps must be a small positive angle in radians (default {PARALLEL_EPS}), got {eps!r}")
    omega = angle(z0, z1).unsqueeze(-1).unsqueeze(-1)  # (..., 1, 1)
    s = steps.view(-1, 1)  # (T, 1)
    degenerate = (omega < eps) | (omega > math.pi - eps)
    sin_omega = torch.where(degenerate, torch.ones_like(omega), torch.sin(omega))
    w0 = torch.sin((1 - s) * omega) / sin_omega  # (..., T, 1)
    w1 = torch.sin(s * omega) / sin_omega
    path = w0 * z0.unsqueeze(-2) + w1 * z1.unsqueeze(-2)
    straight = lerp(z0, z1, steps)  # the fallback, (..., T, d)
    path = torch.where(degenerate, straight, path)
    path = torch.where(s == 0, z0.unsqueeze(-2), torch.where(s == 1, z1.unsqueeze(-2), path))
    return path.squeeze(-2) if scalar else path


# ---------------------------------------------------------------------------
# Latent arithmetic with classes
# ---------------------------------------------------------------------------
def _check_labels(y: Any, n: int, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"shape {tuple(y.shape)}, dtype {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name}: expected integer labels of shape ({n},), got {got}; use torch.as_tensor(y).long()")
    if len(y) != n:
        raise ValueError(f"{name}: got {len(y)} labels for {n} codes; give one label per row of z")
    if len(y) and y.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0, got {y.min().item()}")
    return y


def class_means(z: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    r"""The mean code of each class, :math:`\bar z_c = \frac{1}{n_c}\sum_{i: y_i = c} z_i`: ``(num_classes, d)``.

    ``z``: ``(N, d)``; ``y``: integer labels ``(N,)`` (true labels, or a classifier's
    predictions for a model's samples). ``num_classes`` defaults to ``y.max() + 1``. A
    class with no code raises an error naming it. Chapter: Interpolation and latent arithmetic.
    """
    z = _as_codes(z, "z", batched=True)
    y = _check_labels(y, len(z))
    k = int(y.max().item()) + 1 if num_classes is None else _check_positive_int(num_classes, "num_classes")
    if len(y) and y.max() >= k:
        raise ValueError(f"y: labels must be < num_classes = {k}, got {y.max().item()}")
    counts = torch.bincount(y, minlength=k)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"y: no code has class {missing}; every class needs at least one code to have a mean")
    sums = torch.zeros(k, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, y.to(z.device), z)
    return sums / counts.to(z.device, z.dtype).unsqueeze(1)


def class_vector(z: torch.Tensor, y: torch.Tensor, source: int, target: int) -> torch.Tensor:
    r"""The class vector :math:`\bar z_{\text{target}} - \bar z_{\text{source}}`: ``(d,)``.

    Added to the code of a ``source`` digit (``apply_edit(z, v, 1.0)``), it moves the
    code by the average difference between the two classes: latent arithmetic in the
    manner of Radford et al. (2016), "smiling woman - neutral woman + neutral man".
    The vector is not normalised. Chapter: Interpolation and latent arithmetic.
    """
    z = _as_codes(z, "z", batched=True)
    y = _check_labels(y, len(z))
    for name, c in (("source", source), ("target", target)):
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 0:
            raise ValueError(f"{name} must be a class index (an integer >= 0), got {c!r}")
        if not (y == c).any():
            raise ValueError(f"{name}: no code has class {c}; pick a class present in y")
    return z[y == target].mean(0) - z[y == source].mean(0)


# ---------------------------------------------------------------------------
# Attribute directions
# ---------------------------------------------------------------------------
@dataclass
class AttributeDirection:
    r"""A direction in latent space along which an attribute grows.

    - ``vector``: the unit vector :math:`u` ``(d,)``;
    - ``method``: ``"regression"`` or ``"difference of means"``;
    - ``predicted_slope`` and ``r2``: the slope :math:`c` and the coefficient of
      determination of the least-squares line :math:`a \approx c\, s + b` of the
      attribute on the codes' coordinate along the direction, :math:`s = z^\top u`.
      :math:`c` is the change of the attribute per unit step along :math:`u` that the
      codes predict, in the attribute's units (degrees, pixels); :math:`R^2` how much of
      the attribute's variance that one coordinate explains. For the regression
      direction they equal :math:`\lVert \hat w \rVert` and the multiple-regression
      :math:`R^2` (both follow from the normal equations). Whether an edit achieves the
      predicted slope is a separate question, which `measure_edit` answers;
    - ``num_codes``: how many codes the direction was built from; ``attribute``: its name.
    """

    vector: torch.Tensor
    method: str
    predicted_slope: float
    r2: float
    num_codes: int
    attribute: str | None = None

    def __repr__(self) -> str:
        name = f"{self.attribute!r}, " if self.attribute else ""
        return (f"AttributeDirection({name}{self.method}, d={self.vector.numel()}, "
                f"predicted_slope={self.predicted_slope:.4g}, r2={self.r2:.3f}, num_codes={self.num_codes})")


def _check_attribute_data(z: Any, a: Any, minimum: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = _as_codes(z, "z", batched=True)
    if not isinstance(a, torch.Tensor) or a.ndim != 1:
        got = f"shape {tuple(a.shape)}" if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"a: expected one attribute value per code, a tensor of shape ({len(z)},), got {got}")
    if len(a) != len(z):
        raise ValueError(f"a: got {len(a)} attribute values for {len(z)} codes; give one per row of z")
    if not torch.isfinite(a).all():
        bad = int((~torch.isfinite(a)).sum())
        raise ValueError(
            f"a: {bad} attribute value(s) are NaN or infinite (morpho.measure gives NaN for an image "
            "with no ink); drop them first: keep = torch.isfinite(a); z, a = z[keep], a[keep]"
        )
    if len(z) < minimum:
        raise ValueError(f"z: need at least {minimum} codes for this fit, got {len(z)}")
    return z.double(), a.double()


def _projection_fit(z: torch.Tensor, a: torch.Tensor, u: torch.Tensor) -> tuple[float, float]:
    r"""Slope and :math:`R^2` of the least-squares line :math:`a \approx c\,s + b` on :math:`s = z^\top u` (float64).

    :math:`c = \operatorname{cov}(s, a) / \operatorname{var}(s)` and
    :math:`R^2 = \operatorname{cov}(s, a)^2 / (\operatorname{var}(s)\operatorname{var}(a))`.
    """
    s = z @ u
    sc, ac = s - s.mean(), a - a.mean()
    sxx, sxy, syy = (sc * sc).sum(), (sc * ac).sum(), (ac * ac).sum()
    if sxx == 0:
        raise ValueError("z: the codes do not vary along the direction; no slope can be fitted")
    slope = float(sxy / sxx)
    r2 = float(sxy**2 / (sxx * syy)) if syy > 0 else float("nan")
    return slope, r2


def regression_direction(z: torch.Tensor, a: torch.Tensor, attribute: str | None = None) -> AttributeDirection:
    r"""The direction of a linear regression of the attribute on the codes.

    Least squares with an intercept, in float64:

    .. math:: (\hat w, \hat b) = \arg\min_{w, b} \sum_i \big(a_i - w^\top z_i - b\big)^2,
       \qquad u = \hat w / \lVert \hat w \rVert,

    with ``z`` ``(N, d)`` and ``a`` ``(N,)``, :math:`N > d + 1`. Under the fitted linear
    model a step :math:`\alpha u` changes the attribute by :math:`\alpha \lVert \hat w\rVert`,
    the ``predicted_slope``; ``r2`` is :math:`R^2 = 1 - \sum (a_i - \hat a_i)^2 / \sum (a_i - \bar a)^2`.
    This describes how the attribute varies *across* the codes; for codes drawn from a
    Gaussian it is also the average effect of moving one code (Stein's lemma:
    :math:`\mathbb E[\nabla a(z)] = \Sigma^{-1}\operatorname{cov}(z, a)`), for other codes
    not necessarily.
    The regression holds the other coordinates fixed, so it removes the part of the
    attribute explained by correlated directions (compare `mean_difference_direction`).
    Related: InterFaceGAN (Shen et al., 2020) uses the normal of a linear classifier's
    boundary. Chapter: Attribute vectors, measured with morphometrics.
    """
    z64, a64 = _check_attribute_data(z, a, minimum=z.shape[-1] + 2 if isinstance(z, torch.Tensor) else 2)
    design = torch.cat([z64, torch.ones(len(z64), 1, dtype=torch.float64, device=z64.device)], dim=1)
    coef = torch.linalg.lstsq(design.cpu(), a64.cpu().unsqueeze(1)).solution.squeeze(1)  # (d + 1,)
    w = coef[:-1]
    norm = w.norm()
    if norm == 0:
        raise ValueError("a: the attribute does not vary linearly with z at all (w = 0); no direction to follow")
    u = w / norm
    slope, r2 = _projection_fit(z64.cpu(), a64.cpu(), u)  # slope = |w| by the normal equations
    return AttributeDirection(u.to(z.dtype).to(z.device), "regression", slope, r2, len(z64), attribute)


def mean_difference_direction(
    z: torch.Tensor, a: torch.Tensor, quantile: float = 0.25, attribute: str | None = None
) -> AttributeDirection:
    r"""The difference of the mean codes of the top and bottom ``quantile`` of the attribute.

    With :math:`q_{\text{lo}}`, :math:`q_{\text{hi}}` the ``quantile`` and ``1 - quantile``
    quantiles of ``a`` (``torch.quantile``, linear interpolation),
    :math:`H = \{i : a_i \ge q_{\text{hi}}\}` and :math:`L = \{i : a_i \le q_{\text{lo}}\}`:

    .. math:: v = \bar z_H - \bar z_L, \qquad u = v / \lVert v \rVert .

    ``predicted_slope`` and ``r2`` come from the least-squares line of the attribute on
    :math:`s = z^\top u` over *all* the codes (see `AttributeDirection`), not from the
    two groups alone: the groups' own ratio :math:`(\bar a_H - \bar a_L)/\lVert v\rVert`
    overstates the slope by about :math:`1/R^2` when the attribute is noisy. The recipe of the "smile vector" (Larsen et al., 2016; White,
    2016). Unlike `regression_direction` it does not hold other coordinates fixed: if
    codes vary along a direction that correlates with the attribute, :math:`v` leans
    towards it. Chapter: Attribute vectors, measured with morphometrics.
    """
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5] (default 0.25: top quarter against bottom quarter), got {quantile!r}")
    z64, a64 = _check_attribute_data(z, a, minimum=2)
    q_lo, q_hi = torch.quantile(a64, quantile), torch.quantile(a64, 1 - quantile)
    hi, lo = a64 >= q_hi, a64 <= q_lo
    if q_hi <= q_lo or not hi.any() or not lo.any():
        raise ValueError(f"a: the attribute takes (almost) one value, so its top and bottom {quantile:g} quantiles coincide")
    v = z64[hi].mean(0) - z64[lo].mean(0)
    norm = v.norm()
    if norm == 0:
        raise ValueError("z: the two groups have the same mean code; no direction to follow")
    u = v / norm
    slope, r2 = _projection_fit(z64, a64, u)
    return AttributeDirection(u.to(z.dtype), "difference of means", slope, r2, len(z64), attribute)


# ---------------------------------------------------------------------------
# Applying an edit
# ---------------------------------------------------------------------------
def _as_direction(direction: Any, d: int) -> torch.Tensor:
    vector = direction.vector if isinstance(direction, AttributeDirection) else direction
    vector = _as_codes(vector, "direction", batched=False)
    if vector.numel() != d:
        raise ValueError(f"direction: has {vector.numel()} dimensions but the codes have {d}; use a direction of the same model")
    return vector


def apply_edit(
    z: torch.Tensor,
    direction: AttributeDirection | torch.Tensor,
    alpha: float | Sequence[float] | torch.Tensor,
    renorm: bool = False,
) -> torch.Tensor:
    r"""Move codes along a direction: :math:`z' = z + \alpha\, v`.

    ``z``: ``(N, d)`` or ``(d,)``; ``direction``: an `AttributeDirection` (its unit
    vector) or any vector ``(d,)``, used as given (e.g. a `class_vector`); ``alpha``: a
    number (returns ``z``'s shape) or a 1-D vector of ``A`` values (returns
    ``(N, A, d)``, or ``(A, d)`` for one code). Negative values move the other way.

    ``renorm=True`` rescales each edited code to the norm of the code it came from,
    :math:`z' \leftarrow z' \,\lVert z \rVert / \lVert z' \rVert`. Why: a code drawn from
    :math:`\mathcal N(0, I_d)` has a norm near :math:`\sqrt d` (the prior's typical
    shell), and a step of length :math:`\alpha` roughly orthogonal to it lengthens it to
    :math:`\sqrt{\lVert z\rVert^2 + \alpha^2}`, off the shell the generator was trained
    on. Rescaling puts it back, so the edit turns the code instead of lengthening it.
    Keeping each code's own norm (rather than forcing :math:`\sqrt d`) leaves codes that
    were not prior samples, such as a VAE's posterior means, at their own distance
    from the origin. The price: the component of the step along :math:`v` shrinks by the
    same factor, so an edit with ``renorm`` moves the attribute a little less per unit
    of :math:`\alpha`. Chapter: Attribute vectors, measured with morphometrics.
    """
    z = _as_codes(z, "z")
    v = _as_direction(direction, z.shape[-1]).to(z.device, z.dtype)
    if isinstance(alpha, torch.Tensor):
        alphas, scalar = alpha.to(z.device, z.dtype).reshape(-1), alpha.ndim == 0
    elif isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        alphas, scalar = torch.tensor([float(alpha)], dtype=z.dtype, device=z.device), True
    elif isinstance(alpha, Sequence) and not isinstance(alpha, str):
        alphas, scalar = torch.as_tensor(alpha, dtype=z.dtype, device=z.device).reshape(-1), False
    else:
        raise TypeError(f"alpha: expected a number or a 1-D sequence of numbers, got {type(alpha).__name__}")
    if alphas.numel() == 0 or not torch.isfinite(alphas).all():
        raise ValueError(f"alpha: expected finite step sizes, got {alphas.tolist()}")
    edited = z.unsqueeze(-2) + alphas.view(-1, 1) * v  # (..., A, d)
    if renorm:
        old = z.norm(dim=-1, keepdim=True).unsqueeze(-2)  # (..., 1, 1)
        new = edited.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
        edited = edited * (old / new)
    return edited.squeeze(-2) if scalar else edited


# ---------------------------------------------------------------------------
# Decoding and classifying
# ---------------------------------------------------------------------------
def _model_kind(model: nn.Module) -> str:
    from genimg_lib.models import DCGAN, DCGANGenerator, VAEBase

    if isinstance(model, VAEBase):
        return "vae"
    if isinstance(model, DCGAN):
        return "dcgan"
    if isinstance(model, DCGANGenerator):
        return "generator"
    raise TypeError(
        f"model: decode_images knows the book's VAE, CVAE, DCGAN and DCGANGenerator, got {type(model).__name__}; "
        "decode your codes yourself into (N, 1, 28, 28) images in [0, 1]"
    )


@torch.no_grad()
def decode_images(
    model: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 500
) -> torch.Tensor:
    r"""Decode codes into images ``(N, 1, 28, 28)`` in [0, 1], on the CPU, for any of the book's models.

    - a `genimg_lib.models.VAE` or ``CVAE``: :math:`\sigma(\text{decoder}(z))`, the
      Bernoulli means (the decoder returns logits);
    - a `genimg_lib.models.DCGAN` (or its ``.G``): :math:`(G(z) + 1) / 2` (the generator
      ends in tanh, in [-1, 1]).

    ``z``: ``(N, z_dim)``; ``y``: labels ``(N,)`` for a conditional model (CVAE, cGAN),
    None otherwise. The model must be in eval mode: in training mode the DCGAN's batch
    normalization would make each image depend on the other codes of its batch.
    Chapters: Part V.
    """
    kind = _model_kind(model)
    z = _as_codes(z, "z", batched=True)
    _check_positive_int(batch_size, "batch_size")
    if model.training:
        raise ValueError(
            "model: is in training mode, where batch normalization mixes the codes of a batch; "
            "call model.eval() before decoding (load_model returns models in eval mode)"
        )
    z_dim = model.z_dim
    if z.shape[1] != z_dim:
        raise ValueError(f"z: the model has z_dim = {z_dim}, got codes of shape {tuple(z.shape)}")
    device = next(model.parameters()).device
    images = []
    for i in range(0, len(z), batch_size):
        zb = z[i : i + batch_size].to(device)
        yb = None if y is None else torch.as_tensor(y)[i : i + batch_size].to(device)
        if kind == "vae":
            xb = torch.sigmoid(model.decode(zb, yb))
        else:
            G = model.G if kind == "dcgan" else model
            xb = (G(zb, yb) + 1) / 2
        images.append(xb.float().cpu())
    return torch.cat(images) if images else torch.zeros(0, 1, 28, 28)


@torch.no_grad()
def classify(
    x: torch.Tensor, classifier: nn.Module | None = None, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The domain classifier's vote and confidence: ``(pred (N,), confidence (N,))``.

    ``confidence`` is the largest softmax probability, :math:`\max_c p(c \mid x)`; a
    clean digit gets close to 1, an ambiguous or broken one less. ``x``: images
    ``(N, 1, 28, 28)`` in [0, 1] (checked); ``classifier`` defaults to the shipped one
    (`genimg_lib.measures.domain_classifier`). Chapters: Part V.
    """
    from genimg_lib.measures import check_fake_images, domain_classifier

    x = check_fake_images(x, "x")
    classifier = classifier or domain_classifier()
    device = next(classifier.parameters()).device
    preds, confidence = [], []
    for xb in x.split(batch_size):
        p = classifier(xb.to(device)).softmax(dim=1).cpu()
        c, k = p.max(dim=1)
        preds.append(k)
        confidence.append(c)
    if not preds:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(preds), torch.cat(confidence)


# ---------------------------------------------------------------------------
# Measuring an edit
# ---------------------------------------------------------------------------
def is_monotone(values: Sequence[float] | torch.Tensor, increasing: bool | None = None) -> bool:
    r"""Whether a sequence is strictly monotone: every step :math:`v_{k+1} - v_k` has the same sign, none 0.

    ``increasing``: True or False demands that direction; None accepts either (the sign
    of the first step decides). A sequence with a NaN, or of fewer than 2 values, is
    not monotone. Chapter: Attribute vectors, measured with morphometrics.
    """
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if len(v) < 2 or not torch.isfinite(v).all():
        return False
    steps = v[1:] - v[:-1]
    if increasing is None:
        increasing = bool(steps[0] > 0)
    return bool((steps > 0).all()) if increasing else bool((steps < 0).all())


def least_squares_slope(x: Sequence[float] | torch.Tensor, y: Sequence[float] | torch.Tensor) -> float:
    r"""The slope of the least-squares line through :math:`(x_k, y_k)`: :math:`\sum (x-\bar x)(y-\bar y) / \sum (x-\bar x)^2`."""
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two sequences of the same length >= 2, got {len(x)} and {len(y)}")
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


@dataclass
class EditReport:
    r"""What `measure_edit` measured. ``N`` codes, ``A`` values of :math:`\alpha`.

    - ``alphas`` ``(A,)``, increasing, with 0 among them; ``attribute``: the edited one;
    - ``images`` ``(N, A, 1, 28, 28)`` in [0, 1]; ``values``: every attribute of
      `genimg_lib.morpho.ATTRIBUTES`, ``{name: (N, A)}`` (NaN for an image with no ink);
    - ``preds``, ``confidence`` ``(N, A)``: the domain classifier's vote and confidence;
    - ``mean_curve`` ``(A,)``: the edited attribute averaged over the codes (NaNs left out);
    - ``slope``: the least-squares slope of ``mean_curve`` against ``alphas``, the
      attribute's change per unit step, in its units (degrees or pixels);
    - ``monotone``: whether ``mean_curve`` is strictly monotone over the range;
      ``monotone_share``: the share of codes whose own curve is;
    - ``class_kept`` ``(A,)``: the share of codes whose vote at :math:`\alpha` equals
      their vote at :math:`\alpha = 0`; ``class_kept_mean``: averaged over the
      non-zero :math:`\alpha`;
    - ``change_sd``: ``{name: float}``, the mean over codes of
      :math:`|b_i(\alpha_{\max}) - b_i(\alpha_{\min})|`, the change of attribute
      :math:`b` across the whole range, in units of ``scale[b]`` (a standard deviation);
      for the edited attribute it is the size of the effect, for the others the
      entanglement (``entanglement`` holds only the others).
    """

    alphas: torch.Tensor
    attribute: str
    images: torch.Tensor
    values: dict[str, torch.Tensor]
    preds: torch.Tensor
    confidence: torch.Tensor
    mean_curve: torch.Tensor
    slope: float
    monotone: bool
    monotone_share: float
    class_kept: torch.Tensor
    class_kept_mean: float
    change_sd: dict[str, float]
    scale: dict[str, float] = field(default_factory=dict)

    @property
    def entanglement(self) -> dict[str, float]:
        """``change_sd`` of the attributes that were not edited."""
        return {k: v for k, v in self.change_sd.items() if k != self.attribute}

    def summary(self) -> dict[str, Any]:
        """The headline numbers: slope, monotone, class kept, effect and the most entangled attribute."""
        worst = max(self.entanglement.items(), key=lambda kv: kv[1]) if self.entanglement else ("", float("nan"))
        return {
            "attribute": self.attribute,
            "slope": self.slope,
            "monotone": self.monotone,
            "monotone_share": self.monotone_share,
            "class_kept": self.class_kept_mean,
            "effect_sd": self.change_sd[self.attribute],
            "most_entangled": worst[0],
            "most_entangled_sd": worst[1],
        }


def measure_edit(
    model: nn.Module,
    z: torch.Tensor,
    direction: AttributeDirection | torch.Tensor,
    alphas: Sequence[float] | torch.Tensor,
    attribute: str | None = None,
    y: torch.Tensor | None = None,
    renorm: bool = False,
    scale: dict[str, float] | None = None,
    classifier: nn.Module | None = None,
) -> EditReport:
    r"""Edit ``N`` codes at ``A`` step sizes, decode, measure and classify every image.

    For each code :math:`z_i` and each :math:`\alpha_k`: :math:`x_{ik} =
    \text{decode}(z_i + \alpha_k u)` (`apply_edit`, `decode_images`), then
    `genimg_lib.morpho.measure` and `classify`. Returns an `EditReport`: the slope of the
    mean attribute against :math:`\alpha` (least squares), whether that curve is
    monotone, the share of digits that keep the class they had at :math:`\alpha = 0`,
    and the change of every attribute across the range in units of ``scale``.

    ``alphas``: increasing, including 0 (the unedited code, the reference for the class
    and the changes). ``attribute``: one of `genimg_lib.morpho.ATTRIBUTES`; defaults to
    the direction's own. ``y``: labels for a conditional model. ``scale``: the standard
    deviation of each attribute to express changes in (e.g. over the test digits, so
    that two models are compared in the same units); default: the standard deviation
    over the ``N`` unedited images. Chapter: Attribute vectors, measured with morphometrics.
    """
    z = _as_codes(z, "z", batched=True)
    if attribute is None and isinstance(direction, AttributeDirection):
        attribute = direction.attribute
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
    alphas = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    if len(alphas) < 2 or not torch.isfinite(alphas).all() or not (alphas[1:] > alphas[:-1]).all():
        raise ValueError(f"alphas: expected at least 2 finite, increasing step sizes, got {alphas.tolist()}")
    if not (alphas == 0).any():
        raise ValueError(f"alphas: must include 0 (the unedited code, the reference), got {alphas.tolist()}")
    n, num_alphas = len(z), len(alphas)
    edited = apply_edit(z, direction, alphas.to(z.dtype), renorm=renorm)  # (N, A, d)
    y_rep = None if y is None else torch.as_tensor(y).repeat_interleave(num_alphas)
    images = decode_images(model, edited.reshape(n * num_alphas, -1), y_rep)
    m = measure(images)
    values = {k: v.reshape(n, num_alphas).double() for k, v in m.items()}
    preds, confidence = classify(images, classifier)
    preds, confidence = preds.reshape(n, num_alphas), confidence.reshape(n, num_alphas)

    k0 = int(torch.nonzero(alphas == 0)[0])
    target = values[attribute]
    mean_curve = torch.nanmean(target, dim=0)
    slope = least_squares_slope(alphas, mean_curve) if torch.isfinite(mean_curve).all() else float("nan")
    increasing = slope > 0
    monotone = is_monotone(mean_curve, increasing) if math.isfinite(slope) and slope != 0 else False
    per_code = [is_monotone(row, increasing) for row in target] if math.isfinite(slope) else [False] * n
    kept = (preds == preds[:, k0 : k0 + 1]).double().mean(0)
    nonzero = alphas != 0
    if scale is None:
        scale = {k: float(v[:, k0][torch.isfinite(v[:, k0])].std()) for k, v in values.items()}
    missing = [k for k in ATTRIBUTES if k not in scale]
    if missing:
        raise ValueError(f"scale: give a standard deviation for every attribute; missing {missing}")
    change_sd = {}
    for k, v in values.items():
        s = float(scale[k])
        if not s > 0:
            raise ValueError(f"scale[{k!r}] must be a positive standard deviation, got {s}")
        change_sd[k] = float(torch.nanmean((v[:, -1] - v[:, 0]).abs()) / s)
    return EditReport(
        alphas=alphas.float(), attribute=attribute, images=images.reshape(n, num_alphas, 1, 28, 28),
        values={k: v.float() for k, v in values.items()}, preds=preds, confidence=confidence,
        mean_curve=mean_curve.float(), slope=slope, monotone=monotone,
        monotone_share=float(sum(per_code) / n), class_kept=kept.float(),
        class_kept_mean=float(kept[nonzero].mean()), change_sd=change_sd,
        scale={k: float(scale[k]) for k in ATTRIBUTES},
    )
