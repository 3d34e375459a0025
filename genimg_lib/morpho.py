r"""Morphometrics of a handwritten digit: slant, stroke thickness, width, height and ink area.

Chapter: Attribute vectors, measured with morphometrics (Part V). The chapter builds
attribute directions in a VAE's or a GAN's latent space and uses `measure` to check
that an edit changed the attribute it should, and by how much the others moved.

The definitions follow Morpho-MNIST (Castro, Tan, Kainz, Konukoglu and Glocker,
"Morpho-MNIST: Quantitative Assessment and Diagnostics for Representation Learning",
JMLR 20(178), 2019, its section on morphometry; reference code in the ``morphomnist``
package, github.com/dccastro/Morpho-MNIST). The pipeline, for each image:

1. **Upscale and binarize.** The image is upsampled by ``scale`` (4, as in the paper)
   with bicubic interpolation, and the **ink** is the set :math:`B` of high-resolution
   pixels whose value is at least ``threshold`` (0.5). Every length below is divided by
   ``scale``, so it is in pixels of the *input* image.
2. **Area** :math:`A = |B| / s^2`: the number of ink pixels, in input pixels.
3. **Thickness** :math:`T = \frac{2}{s}\,\operatorname{mean}_{p \in S} D(p)`, where
   :math:`S` is the skeleton of :math:`B` and :math:`D` the Euclidean distance
   transform of :math:`B` (the distance from an ink pixel to the nearest background
   pixel): twice the mean radius of the stroke along its centre line. For a long
   stroke of length :math:`L`, :math:`T \approx A / L`.
4. **Slant** from the second-order central moments of the ink, with :math:`x` to the
   right and :math:`y` *down* the image:
   :math:`\mu_{11} = \overline{(x-\bar x)(y-\bar y)}`,
   :math:`\mu_{02} = \overline{(y-\bar y)^2}`. The horizontal shear
   :math:`x' = x - k\,(y - \bar y)` with :math:`k = \mu_{11}/\mu_{02}` makes the mixed
   moment of the sheared ink zero (it deslants the digit), and the slant is the angle
   of that shear, :math:`\theta = \arctan(-\mu_{11}/\mu_{02})`, reported in
   **degrees**, **positive when the digit leans right** (its top is to the right of
   its bottom). A thin straight stroke at angle :math:`\theta` from the vertical
   measures :math:`\theta`; a thick one a little less (its own width adds to
   :math:`\mu_{02}`). Shearing a digit by an angle :math:`\varphi` adds
   :math:`\tan\varphi` to :math:`\tan\theta`. For digits with long horizontal strokes
   (2, 7) the slant is the lean of all the ink, not that of the diagonal stroke.
5. **Width and height** of the bounding parallelogram: the width is the range of the
   deslanted coordinate :math:`x'` over the ink, the height the range of :math:`y`,
   each between the quantiles :math:`f/2` and :math:`1 - f/2` of the ink's mass
   (``bound_frac`` :math:`f = 0.02`, the paper's value), so a few stray pixels do not
   stretch the box. A consequence worth knowing: an ``a``-by-``b`` rectangle of ink
   measures :math:`(1-f)\,a` by :math:`(1-f)\,b`, not ``a`` by ``b``.

Departures from the reference code, each written down and tested:

- **Absolute threshold.** The reference binarizes at half-way between each image's
  own minimum and maximum; here the threshold is the absolute value 0.5 on [0, 1]
  pixels. A faint generated digit (maximum 0.6, say) is then measured as the faint
  digit it is, and not re-normalised to look as bold as a crisp one. Every MNIST-5k
  digit spans 0 to at least 0.996, so there the two thresholds differ by under 0.002.
- **Moments and parallelogram on the binary ink.** The reference weighs pixels by the
  upscaled grey image; here every ink pixel weighs 1. Generated images often carry a
  faint haze over the whole canvas, which under grey weights pulls the slant towards
  zero and widens the box; under ink weights it is ignored as long as it stays below
  the threshold. On MNIST the two slants differ by a fraction of a degree
  (``tests/test_morpho.py`` checks it). The ink's box leaves out the blurred edge that
  the grey one includes: against the reference code on the 1,000 MNIST-5k test digits,
  widths came out 0.64 px and heights 0.47 px smaller on average, while slant differed
  by 0.25 degrees, thickness by 0.08 px and area by 0.4 px² (mean absolute
  differences).
- **Thinning skeleton.** The reference takes the medial axis
  (``skimage.morphology.medial_axis``); here :math:`S` is the thinning skeleton
  (``skimage.morphology.skeletonize``): on one CPU thread the medial axis took about
  40 ms a digit here, the thinning under 1 ms. Both run along the centre of a stroke;
  the medial axis also sends branches into corners, which the rounded ends of pen
  strokes hardly have.
- **Bicubic upsampling** (``torch.nn.functional.interpolate``) replaces
  ``skimage.transform.pyramid_expand`` (a cubic spline after Gaussian smoothing).
- The paper's sixth measurement, stroke **length**, is left out: Part V edits the five
  attributes above.

**Images with no ink** (no upscaled pixel reaches ``threshold``, as in a blank or very
faint sample) have no shape: their ``area`` is 0 and their slant, thickness, width and
height are NaN. `measure` does not raise, because one blank sample in a batch of edits
should not stop the measurement of the others; count them with
``torch.isnan(m["thickness"]).sum()`` and average the rest with ``torch.nanmean``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genimg_lib.data import check_images

#: The measured attributes, in the order of `measure`'s keys and `measure_table`'s columns.
ATTRIBUTES = ("slant", "thickness", "width", "height", "area")
#: The unit of each attribute: degrees, or pixels of the input image.
UNITS = {"slant": "degrees", "thickness": "px", "width": "px", "height": "px", "area": "px²"}
#: Upsampling factor before binarizing (the paper's 4).
SCALE = 4
#: Ink is an upsampled pixel value at least this (absolute, on [0, 1] images).
THRESHOLD = 0.5
#: Fraction of the ink's mass left out of the bounding parallelogram, half on each side.
BOUND_FRAC = 0.02
_ROUNDOFF = 1e-4  # pixel values this far outside [0, 1] are float round-off, and clipped


# ---------------------------------------------------------------------------
# Checking the inputs
# ---------------------------------------------------------------------------
def _check_images(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` as float images ``(N, 1, H, W)`` in [0, 1], or raise a clear error.

    The shapes are checked here (one image ``(H, W)`` is accepted, and any size); the
    dtype, NaN/inf and the value range by the library's image checker,
    `genimg_lib.data.check_images`. Round-off within 1e-4 of [0, 1] is clipped.
    """
    if isinstance(x, torch.Tensor):
        if x.ndim == 2:
            x = x[None, None]
        if x.ndim != 4 or x.shape[1] != 1:
            hint = "; add the channel axis with x.unsqueeze(1)" if x.ndim == 3 else ""
            raise ValueError(
                f"{name}: expected grey images of shape (N, 1, H, W) or one image (H, W), "
                f"got shape {tuple(x.shape)}{hint}"
            )
        if x.shape[-2] < 2 or x.shape[-1] < 2:
            raise ValueError(f"{name}: images must be at least 2x2 pixels, got {tuple(x.shape[-2:])}")
        if x.dtype == torch.bool:  # the shared checker's fix for bytes (/ 255) would be wrong here
            raise TypeError(f"{name}: expected float pixels in [0, 1], got dtype torch.bool; use x.float()")
    check_images(x, (0.0, 1.0), name, shape=None, tolerance=_ROUNDOFF)
    return x.detach().float().clamp(0.0, 1.0)


def _check_options(scale: Any, threshold: Any, bound_frac: Any) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer (the paper uses 4), got {scale!r}")
    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not is_number(threshold) or not 0 < threshold < 1:
        raise ValueError(
            f"threshold must be a number strictly between 0 and 1 (default 0.5), got {threshold!r}"
        )
    if not is_number(bound_frac) or not 0 <= bound_frac < 1:
        raise ValueError(f"bound_frac must be in [0, 1) (the paper uses 0.02), got {bound_frac!r}")


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------
def ink(x: torch.Tensor, scale: int = SCALE, threshold: float = THRESHOLD) -> torch.Tensor:
    """The binary ink :math:`B`: ``x`` upsampled ``scale`` times (bicubic), ``>= threshold``.

    ``x``: ``(N, 1, H, W)`` in [0, 1] (or one image ``(H, W)``). Returns a bool tensor
    ``(N, 1, scale*H, scale*W)`` (or ``(scale*H, scale*W)``), on the CPU. This is step 1
    of `measure`; draw it to see what the measurements are made on.
    """
    _check_options(scale, threshold, BOUND_FRAC)
    one = isinstance(x, torch.Tensor) and x.ndim == 2
    b = _ink(_check_images(x, "ink(x)"), scale, threshold)
    return b[0, 0] if one else b


def _ink(x: torch.Tensor, scale: int, threshold: float) -> torch.Tensor:
    x = x.cpu()
    if scale > 1:
        # bicubic overshoots a little around edges; the threshold makes that harmless
        x = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    return x >= threshold


def _mass_quantile_range(
    values: torch.Tensor, image: torch.Tensor, num_images: int, frac: float, num_iter: int = 40
) -> torch.Tensor:
    r"""Distance between the quantiles ``frac/2`` and ``1 - frac/2`` of each image's ink mass.

    ``values`` ``(M,)``: one coordinate of every ink pixel of the batch; ``image``
    ``(M,)``: the index of the image each pixel belongs to. Each ink pixel is read as a
    unit of mass spread evenly over :math:`[v_i - \tfrac12, v_i + \tfrac12]` (the
    pixel itself, not its centre), so an image's cumulative mass is the piecewise-linear
    :math:`F(t) = G(t) - G(t - 1)` with :math:`G(t) = \frac1n \sum_i (t - v_i + \tfrac12)_+`,
    and a block of ``a`` whole columns measures exactly ``(1 - frac) * a``. ``G`` is
    evaluated with one sort, a prefix sum and a binary search for the whole batch, and
    :math:`F(t) = p` is solved by bisection. Returns ``(num_images,)``; 0 where no ink.
    """
    if len(values) == 0:  # no ink anywhere in the batch
        return torch.zeros(num_images, dtype=values.dtype)
    # one sorted array for the whole batch: image k's pixels sit around k * span
    span = 2.0 * values.abs().max().item() + 4.0
    left = values - 0.5  # left end of each pixel's unit interval
    order = torch.argsort(image * span + left)
    left, image = left[order], image[order]
    keys = image * span + left
    prefix = F.pad(left.cumsum(0), (1, 0))  # prefix[c]: sum of the c first left ends
    count = torch.bincount(image, minlength=num_images)
    first = F.pad(count.cumsum(0), (1, 0))[:-1]  # index of each image's first pixel
    last = (first + count - 1).clamp(min=0)
    n = count.clamp(min=1).to(values.dtype)[:, None]
    offset = (torch.arange(num_images, dtype=values.dtype) * span)[:, None]

    def cdf(t: torch.Tensor) -> torch.Tensor:  # F(t) for t (num_images, K)
        def g(u: torch.Tensor) -> torch.Tensor:
            c = torch.searchsorted(keys, (offset + u).flatten()).view_as(u)  # left ends below u
            below = c - first[:, None]
            return (below.to(u.dtype) * u - (prefix[c] - prefix[first][:, None])) / n
        return g(t) - g(t - 1.0)

    p = torch.tensor([frac / 2, 1 - frac / 2], dtype=values.dtype).expand(num_images, 2)
    has = (count > 0)[:, None]
    lo = torch.where(has, left[first.clamp(max=len(left) - 1)][:, None], 0.0).expand(-1, 2)
    hi = torch.where(has, left[last][:, None] + 1.0, 0.0).expand(-1, 2)
    for _ in range(num_iter):  # F is non-decreasing from 0 at lo to 1 at hi: bisect F(t) = p
        mid = (lo + hi) / 2
        below = cdf(mid) < p
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    q = (lo + hi) / 2
    return q[:, 1] - q[:, 0]


def _skeleton_thickness(b: np.ndarray) -> float:
    """Twice the mean distance transform over the thinning skeleton of one ink mask ``(H, W)``."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    rows, cols = np.flatnonzero(b.any(1)), np.flatnonzero(b.any(0))
    # crop to the ink with a one-pixel border of background: the distance transform then
    # sees background on every side, and there are fewer pixels to process
    crop = np.pad(b[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 1)
    distance = ndimage.distance_transform_edt(crop)
    skeleton = skeletonize(crop)
    return 2.0 * float(distance[skeleton].mean())


def measure(
    x: torch.Tensor,
    scale: int = SCALE,
    threshold: float = THRESHOLD,
    bound_frac: float = BOUND_FRAC,
) -> dict[str, torch.Tensor]:
    r"""Slant, thickness, width, height and area of each digit in ``x``.

    ``x``: images ``(N, 1, H, W)`` in [0, 1], or one image ``(H, W)``. Returns a dict
    with the keys of `ATTRIBUTES`, in that order, each a float32 tensor of shape
    ``(N,)`` (a 0-dim tensor for one image), on ``x``'s device:

    - ``slant``: :math:`\arctan(-\mu_{11}/\mu_{02})` in **degrees**, positive when the
      digit leans right;
    - ``thickness``: :math:`\frac{2}{s}\operatorname{mean}_{S} D`, in input pixels;
    - ``width``, ``height``: sides of the bounding parallelogram of the deslanted ink
      between its ``bound_frac/2`` and ``1 - bound_frac/2`` mass quantiles, in pixels;
    - ``area``: :math:`|B| / s^2`, ink pixels counted in input pixels.

    The definitions, and where they depart from Morpho-MNIST, are in the module's
    docstring. Images without ink get area 0 and NaN for the other four.
    ``scale`` (4), ``threshold`` (0.5, absolute here, relative in the paper) and
    ``bound_frac`` (0.02) are the paper's values.
    Moments, area and the parallelogram are computed for the whole batch at once; the
    skeleton is a loop over the images (about 1 ms each).
    """
    _check_options(scale, threshold, bound_frac)
    one = isinstance(x, torch.Tensor) and x.ndim == 2
    x = _check_images(x, "measure(x)")
    device = x.device
    b = _ink(x, scale, threshold)[:, 0]  # (N, sH, sW) bool
    num_images = len(b)
    image, row, col = b.nonzero(as_tuple=True)  # (M,) each: the ink pixels of the batch
    count = torch.bincount(image, minlength=num_images).double()  # |B| of each image
    has_ink = count > 0

    def image_mean(v: torch.Tensor) -> torch.Tensor:  # mean of v over each image's ink
        return torch.bincount(image, weights=v, minlength=num_images) / count.clamp(min=1)

    # (2) area, in input pixels
    area = count / scale**2

    # (3) thickness: skeleton and distance transform, one image at a time
    thickness = torch.full((num_images,), math.nan, dtype=torch.float64)
    b_np = b.numpy()
    for i in torch.nonzero(has_ink).flatten().tolist():
        thickness[i] = _skeleton_thickness(b_np[i]) / scale

    # (4) slant from the central moments of the ink; x right, y down (hi-res pixels)
    xs, ys = col.double(), row.double()
    dx = xs - image_mean(xs)[image]
    dy = ys - image_mean(ys)[image]
    mu11 = image_mean(dx * dy)
    mu02 = image_mean(dy * dy)
    shear = mu11 / mu02.clamp(min=1e-12)  # k: the shear x' = x - k (y - y_bar) zeroes mu11
    slant = torch.rad2deg(torch.atan(-shear))

    # (5) bounding parallelogram: mass-quantile ranges of x' (deslanted) and y over the ink
    x_sheared = dx - shear[image] * dy
    box_width = _mass_quantile_range(x_sheared, image, num_images, bound_frac) / scale
    box_height = _mass_quantile_range(dy, image, num_images, bound_frac) / scale

    nan = torch.tensor(math.nan, dtype=torch.float64)
    out = {
        "slant": torch.where(has_ink & (mu02 > 0), slant, nan),
        "thickness": thickness,
        "width": torch.where(has_ink, box_width, nan),
        "height": torch.where(has_ink, box_height, nan),
        "area": area,
    }
    return {k: (v[0] if one else v).float().to(device) for k, v in out.items()}


def measure_table(x: torch.Tensor, **options: Any) -> torch.Tensor:
    """`measure` as a tensor ``(N, 5)`` whose columns follow `ATTRIBUTES` (``(5,)`` for one image).

    Keyword options (``scale``, ``threshold``, ``bound_frac``) are passed to `measure`.
    Handy for regressions: ``measure_table(x)[:, ATTRIBUTES.index("slant")]``.
    """
    m = measure(x, **options)
    return torch.stack([m[k] for k in ATTRIBUTES], dim=-1)
