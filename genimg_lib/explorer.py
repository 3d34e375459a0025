"""A latent explorer whose decoder runs in the reader's browser.

Chapters: Exploring the latent space; DCGAN step by step. `LatentExplorer` shows the
image :math:`x = \\mathrm{dec}(z)` of a shipped decoder or generator and lets the reader
move :math:`z` with sliders and a 2-D pad. The forward pass runs in JavaScript
(``explorer.js``, next to this file), so the widget answers on every input event with no
kernel: in JupyterLab, Colab and VS Code as on the static website, where the page's own
widget manager renders it from the saved widget state.

The bridge is an *export*: `export_decoder` walks a known model into a short list of
layers (linear, conv2d, conv_transpose2d, activations, reshapes; batch norm folded into
the layer before it) and packs the weights as float16. The browser interprets that list.
The format is documented once, in ``CONTRIBUTING.md`` ("The latent explorer's export
format"), and `run_program` is its reference interpreter in PyTorch. Each export checks
itself: it runs the exported program on random codes and compares the images with the
module's own ``forward``, so a model whose layers changed fails the export with a clear
error instead of drawing garbage in the browser.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import anywidget
import numpy as np
import torch
import traitlets as T
from torch import nn
from torch.nn import functional as F

from genimg_lib.models import VAEBase, DCGAN, ConvDecoder, DCGANGenerator, MLPDecoder

FORMAT = "genimg-decoder/1"
#: The operations the browser's interpreter knows, in ``explorer.js`` and `run_program`.
OPS = (
    "linear", "conv2d", "conv_transpose2d", "reshape", "relu", "leaky_relu", "tanh",
    "sigmoid", "affine", "channel_affine", "upsample_nearest",
)
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_ESM = (Path(__file__).with_name("explorer.js")).read_text()


class DecoderExportError(ValueError):
    """A model cannot be exported to the browser, or its export disagrees with its ``forward``."""


# ---------------------------------------------------------------------------
# The export table: each known decoder's forward, read as a list of steps
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Reshape:
    """A step of an export-table entry: view the activation as ``shape`` (per sample)."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class ExportEntry:
    """How one decoder class is exported.

    ``steps(module)`` lists, in the order ``forward`` applies them, the submodules
    (``nn.Sequential`` are entered) and `Reshape` steps that map the decoder's input
    (``z``, then the one-hot label of a conditional model) to its output.
    ``output`` is ``"logits"`` (Bernoulli logits, shown through a sigmoid) or ``"tanh"``
    (values in [-1, 1], shown as :math:`(x + 1) / 2`). ``forward(module, z, y)`` calls the
    module as its chapter does, with integer labels ``y`` or None.
    """

    steps: Callable[[nn.Module], list]
    output: str
    forward: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _onehot_or_none(y: torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    return None if y is None else F.one_hot(y, num_classes).float()


#: A changed architecture needs an entry here (and nothing in the JavaScript) as long as
#: it uses the layers of `OPS`.
EXPORT_TABLE: dict[type[nn.Module], ExportEntry] = {
    MLPDecoder: ExportEntry(
        steps=lambda m: [m.net, Reshape((1, 28, 28))],
        output="logits",
        forward=lambda m, z, y: m(z, _onehot_or_none(y, m.net[0].in_features - z.shape[1])),
    ),
    ConvDecoder: ExportEntry(
        steps=lambda m: [m.fc, Reshape((2 * m.c, 7, 7)), m.deconv],
        output="logits",
        forward=lambda m, z, y: m(z, _onehot_or_none(y, m.fc.in_features - z.shape[1])),
    ),
    DCGANGenerator: ExportEntry(
        steps=lambda m: [m.fc, Reshape((2 * m.width, 7, 7)), m.net],
        output="tanh",
        forward=lambda m, z, y: m(z, y),
    ),
}


def _table_entry(module: nn.Module) -> ExportEntry:
    for cls in type(module).__mro__:
        if cls in EXPORT_TABLE:
            return EXPORT_TABLE[cls]
    known = ", ".join(c.__name__ for c in EXPORT_TABLE)
    raise DecoderExportError(
        f"cannot export a {type(module).__name__}: the export table knows {known} (and VAE, CVAE, "
        "DCGAN, whose decoder or G it takes). Add an ExportEntry for the class to "
        "EXPORT_TABLE in genimg_lib/explorer.py"
    )


def _decoder_of(model: nn.Module, num_classes: int | None) -> tuple[nn.Module, int, int]:
    """``(decoder module, z_dim, num_classes)`` of a VAE, CVAE, DCGAN or a bare decoder."""
    if isinstance(model, VAEBase):
        module, z_dim, k = model.decoder, model.z_dim, model.num_classes
    elif isinstance(model, DCGAN):
        module, z_dim, k = model.G, model.G.z_dim, model.G.num_classes
    elif isinstance(model, DCGANGenerator):
        module, z_dim, k = model, model.z_dim, model.num_classes
    else:
        module = model
        _table_entry(module)  # refuses an unknown class with the table's message
        first = next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
        if first is None:
            raise DecoderExportError(f"{type(module).__name__} has no linear input layer to read z_dim from")
        k = 0 if num_classes is None else num_classes
        z_dim = first.in_features - k
    if num_classes is not None and num_classes != k:
        raise DecoderExportError(f"num_classes={num_classes} but the model has {k} classes; leave num_classes=None")
    _table_entry(module)
    return module, z_dim, k


# ---------------------------------------------------------------------------
# Walking a module into layers
# ---------------------------------------------------------------------------
class _Walk:
    """Accumulates layers and float64 tensors while the steps of an entry are walked."""

    def __init__(self, in_dim: int, root: nn.Module) -> None:
        self.layers: list[dict[str, Any]] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.shape: tuple[int, ...] = (in_dim,)
        self.names = {m: n for n, m in root.named_modules()}
        self.used: set[str] = set()

    def tensor(self, name: str, value: torch.Tensor) -> str:
        self.tensors[name] = value.detach().double().cpu().numpy().copy()
        return name

    def emit(self, op: str, out_shape: tuple[int, ...], **fields) -> None:
        self.layers.append({"op": op, "in_shape": list(self.shape), "out_shape": list(out_shape), **fields})
        self.shape = out_shape

    def where(self, module: nn.Module) -> str:
        return f"{self.names.get(module, '?')} ({type(module).__name__})"

    def param(self, module: nn.Module, attr: str) -> torch.Tensor | None:
        value = getattr(module, attr, None)
        if value is not None:
            self.used.add(f"{self.names[module]}.{attr}".lstrip("."))
        return value


def _pair(v, what: str, where: str) -> list[int]:
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise DecoderExportError(f"{where}: {what} must be an int or a pair of ints, got {v!r}")
    return list(v)


_STALE = "; the model no longer matches its entry in EXPORT_TABLE (genimg_lib/explorer.py): update the entry"


def _conv_checks(m: nn.Module, where: str) -> None:
    if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise DecoderExportError(
            f"{where}: the browser's convolutions support groups=1, dilation=1, numeric zero padding; "
            f"got groups={m.groups}, dilation={m.dilation}, padding={m.padding!r}, padding_mode={m.padding_mode!r}"
        )


def _walk_step(w: _Walk, step) -> None:
    if isinstance(step, Reshape):
        if math.prod(step.shape) != math.prod(w.shape):
            raise DecoderExportError(f"cannot reshape {w.shape} to {step.shape}: the sizes differ{_STALE}")
        w.emit("reshape", tuple(step.shape), shape=list(step.shape))
        return
    if isinstance(step, nn.Sequential):
        for child in step:
            _walk_step(w, child)
        return
    where, name = w.where(step), w.names.get(step, "?")
    if isinstance(step, nn.Linear):
        if w.shape != (step.in_features,):
            raise DecoderExportError(
                f"{where} expects {step.in_features} features but receives shape {w.shape}{_STALE}"
            )
        b = w.param(step, "bias")
        w.emit("linear", (step.out_features,), weight=w.tensor(f"{name}.weight", w.param(step, "weight")),
               bias=w.tensor(f"{name}.bias", b if b is not None else torch.zeros(step.out_features)))
    elif isinstance(step, (nn.Conv2d, nn.ConvTranspose2d)):
        _conv_checks(step, where)
        if len(w.shape) != 3 or w.shape[0] != step.in_channels:
            raise DecoderExportError(f"{where} expects ({step.in_channels}, H, W) but receives shape {w.shape}{_STALE}")
        k, s, p = (_pair(getattr(step, a), a, where) for a in ("kernel_size", "stride", "padding"))
        _, h, wd = w.shape
        b = w.param(step, "bias")
        fields = dict(kernel=k, stride=s, padding=p, weight=w.tensor(f"{name}.weight", w.param(step, "weight")),
                      bias=w.tensor(f"{name}.bias", b if b is not None else torch.zeros(step.out_channels)))
        if isinstance(step, nn.Conv2d):
            out = (step.out_channels, (h + 2 * p[0] - k[0]) // s[0] + 1, (wd + 2 * p[1] - k[1]) // s[1] + 1)
            w.emit("conv2d", out, **fields)
        else:
            op = _pair(step.output_padding, "output_padding", where)
            out = (step.out_channels, (h - 1) * s[0] - 2 * p[0] + k[0] + op[0],
                   (wd - 1) * s[1] - 2 * p[1] + k[1] + op[1])
            w.emit("conv_transpose2d", out, output_padding=op, **fields)
    elif isinstance(step, (nn.BatchNorm1d, nn.BatchNorm2d)):
        _fold_batch_norm(w, step, where)
    elif isinstance(step, nn.ReLU):
        w.emit("relu", w.shape)
    elif isinstance(step, nn.LeakyReLU):
        w.emit("leaky_relu", w.shape, slope=float(step.negative_slope))
    elif isinstance(step, nn.Tanh):
        w.emit("tanh", w.shape)
    elif isinstance(step, nn.Sigmoid):
        w.emit("sigmoid", w.shape)
    elif isinstance(step, nn.Identity):
        pass
    elif isinstance(step, nn.Upsample) and step.mode == "nearest" and step.size is None:
        f = step.scale_factor
        f = f if isinstance(f, (int, float)) else tuple(f)[0] if len(set(tuple(f))) == 1 else None
        if f is None or float(f) != int(f) or len(w.shape) != 3:
            raise DecoderExportError(
                f"{where}: only an integer, equal scale_factor on (C, H, W) is supported, got {step.scale_factor}"
            )
        c, h, wd = w.shape
        w.emit("upsample_nearest", (c, h * int(f), wd * int(f)), scale=int(f))
    else:
        raise DecoderExportError(
            f"cannot export layer {where}: the browser's forward pass knows only Linear, Conv2d, "
            "ConvTranspose2d, BatchNorm1d/2d (folded), ReLU, LeakyReLU, Tanh, Sigmoid, Identity and "
            "nearest Upsample. Add the layer to _walk_step in genimg_lib/explorer.py and to the "
            "interpreter in genimg_lib/explorer.js (and run_program)"
        )


def _fold_batch_norm(w: _Walk, bn: nn.Module, where: str) -> None:
    """Eval-mode batch norm :math:`y = \\gamma (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta = s x + t`.

    Folded into the last linear/convolution when only reshapes lie between them (the
    channel of a flat output index ``o`` is ``o // (H W)`` of the current shape), else
    kept as a ``channel_affine`` layer.
    """
    if bn.running_mean is None:
        raise DecoderExportError(f"{where}: batch norm without running statistics cannot be exported")
    c = w.shape[0]
    if bn.num_features != c:
        raise DecoderExportError(f"{where} expects {bn.num_features} channels but receives shape {w.shape}{_STALE}")
    name = w.names[bn]
    gamma = w.param(bn, "weight") if bn.affine else torch.ones(c)
    beta = w.param(bn, "bias") if bn.affine else torch.zeros(c)
    w.used.update({f"{name}.running_mean", f"{name}.running_var"})
    gamma, beta, mean, var = (v.detach().double().cpu() for v in (gamma, beta, bn.running_mean, bn.running_var))
    s = (gamma / torch.sqrt(var + bn.eps)).numpy()
    t = (beta - mean * torch.from_numpy(s)).numpy()
    i = len(w.layers) - 1
    while i >= 0 and w.layers[i]["op"] == "reshape":
        i -= 1
    prev = w.layers[i] if i >= 0 else None
    if prev is not None and prev["op"] == "linear":
        per = math.prod(w.shape[1:])  # the flat outputs of the linear, channel by channel
        s_o, t_o = np.repeat(s, per), np.repeat(t, per)
        w.tensors[prev["weight"]] *= s_o[:, None]
        w.tensors[prev["bias"]] = w.tensors[prev["bias"]] * s_o + t_o
        prev["folded"] = prev.get("folded", []) + [name]
    elif prev is not None and prev["op"] in ("conv2d", "conv_transpose2d") and i == len(w.layers) - 1:
        axis = 0 if prev["op"] == "conv2d" else 1  # Conv2d weights (out, in, kh, kw); transposed (in, out, kh, kw)
        shape = [1, 1, 1, 1]
        shape[axis] = c
        w.tensors[prev["weight"]] *= s.reshape(shape)
        w.tensors[prev["bias"]] = w.tensors[prev["bias"]] * s + t
        prev["folded"] = prev.get("folded", []) + [name]
    else:
        w.emit("channel_affine", w.shape, scale=w.tensor(f"{name}.scale", torch.as_tensor(s)),
               shift=w.tensor(f"{name}.shift", torch.as_tensor(t)))


# ---------------------------------------------------------------------------
# Export, its reference interpreter, and its self-check
# ---------------------------------------------------------------------------
def export_decoder(
    model: nn.Module, name: str | None = None, num_classes: int | None = None,
    atol: float = 1.5 / 255, num_checks: int = 64,
) -> tuple[dict[str, Any], bytes]:
    """Export a decoder or generator for the browser: ``(program, weights)``.

    ``model`` is a `VAE` or `CVAE` (its ``decoder`` is exported), a `DCGAN` (its ``G``),
    or one of the classes of `EXPORT_TABLE` (`MLPDecoder`, `ConvDecoder`,
    `DCGANGenerator`; a bare VAE decoder is taken as unconditional unless
    ``num_classes`` says otherwise). ``program`` is a JSON-ready dict (the layer list,
    the tensors' names, shapes and offsets); ``weights`` holds every tensor as
    little-endian float16, batch norm folded in eval mode. The program maps an input
    :math:`[z, \\mathrm{onehot}(y)]` of length ``z_dim + num_classes`` to an image
    ``(C, H, W)`` in [0, 1]: :math:`\\sigma(l)` for a VAE's logits, :math:`(x + 1) / 2`
    for a tanh generator.

    The export checks itself: `run_program` decodes ``num_checks`` random codes
    (:math:`z \\sim \\mathcal N(0, 2^2 I)`, labels cycling) with the float16 weights,
    and every pixel must agree with the module's ``forward`` (in eval mode) within
    ``atol``. Otherwise `DecoderExportError` says that the module and its export-table
    entry disagree. Chapter: Exploring the latent space.
    """
    module, z_dim, k = _decoder_of(model, num_classes)
    entry = _table_entry(module)
    if entry.output not in ("logits", "tanh"):
        raise DecoderExportError(f"unknown output kind {entry.output!r} in the export table; use 'logits' or 'tanh'")
    walk = _Walk(z_dim + k, module)
    for step in entry.steps(module):
        _walk_step(walk, step)
    if entry.output == "logits":
        walk.emit("sigmoid", walk.shape)
    else:
        if not walk.layers or walk.layers[-1]["op"] != "tanh":
            raise DecoderExportError(
                f"{type(module).__name__} is exported as a tanh generator but its last layer is not Tanh{_STALE}"
            )
        walk.emit("affine", walk.shape, scale=0.5, shift=0.5)
    if len(walk.shape) != 3:
        raise DecoderExportError(f"the exported output has shape {walk.shape}; an image (C, H, W) is needed")
    expected = {n for n, _ in module.named_parameters()} | {
        n for n, _ in module.named_buffers() if not n.endswith("num_batches_tracked")
    }
    unused = sorted(expected - walk.used)
    if unused:
        raise DecoderExportError(
            f"{type(module).__name__} has weights that its export-table entry never uses: {unused}. "
            "The architecture changed: update EXPORT_TABLE in genimg_lib/explorer.py"
        )
    program: dict[str, Any] = {
        "format": FORMAT, "name": name or type(module).__name__, "class": type(module).__name__,
        "z_dim": z_dim, "num_classes": k, "output": entry.output, "output_shape": list(walk.shape),
        "dtype": "float16", "byte_order": "little", "tensors": [], "layers": walk.layers,
    }
    chunks, offset = [], 0
    for tname, arr in walk.tensors.items():
        if not np.isfinite(arr).all() or np.abs(arr).max(initial=0.0) > _FLOAT16_MAX:
            raise DecoderExportError(
                f"tensor {tname} has values that float16 cannot hold (max |w| = {np.abs(arr).max():.3g})"
            )
        chunks.append(arr.astype("<f2").tobytes())
        program["tensors"].append({"name": tname, "shape": list(arr.shape), "offset": offset})
        offset += arr.size
    weights = b"".join(chunks)
    _verify(program, weights, module, entry, atol, num_checks)
    return program, weights


def _unpack(program: Mapping[str, Any], weights: bytes) -> dict[str, torch.Tensor]:
    flat = torch.from_numpy(np.frombuffer(weights, dtype="<f2").astype(np.float32))
    out = {}
    for t in program["tensors"]:
        n = math.prod(t["shape"])
        if t["offset"] + n > flat.numel():
            raise DecoderExportError(f"tensor {t['name']} runs past the end of the weights ({flat.numel()} values)")
        out[t["name"]] = flat[t["offset"]:t["offset"] + n].view(*t["shape"])
    return out


def run_program(
    program: Mapping[str, Any], weights: bytes, z: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """The reference interpreter of an exported program, in PyTorch (float32).

    ``z`` is ``(N, z_dim)``; ``y`` holds ``N`` integer labels for a conditional model.
    Returns images ``(N, C, H, W)`` in [0, 1]. ``explorer.js`` computes the same thing,
    layer by layer, in the browser. Chapter: Exploring the latent space.
    """
    if program.get("format") != FORMAT:
        raise DecoderExportError(f"expected a program of format {FORMAT!r}, got {program.get('format')!r}")
    z_dim, k = program["z_dim"], program["num_classes"]
    if z.dim() != 2 or z.shape[1] != z_dim:
        raise ValueError(f"z must have shape (N, {z_dim}), got {tuple(z.shape)}")
    x = z.float()
    if k:
        if y is None:
            raise ValueError(f"this program is conditional: pass y, N labels in 0..{k - 1}")
        x = torch.cat([x, F.one_hot(torch.as_tensor(y).long(), k).float()], dim=1)
    elif y is not None:
        raise ValueError("this program is unconditional: pass no labels y")
    ts = _unpack(program, weights)
    n = x.shape[0]
    for layer in program["layers"]:
        op = layer["op"]
        if op == "linear":
            x = F.linear(x, ts[layer["weight"]], ts[layer["bias"]])
        elif op == "conv2d":
            x = F.conv2d(x, ts[layer["weight"]], ts[layer["bias"]], layer["stride"], layer["padding"])
        elif op == "conv_transpose2d":
            x = F.conv_transpose2d(x, ts[layer["weight"]], ts[layer["bias"]], layer["stride"], layer["padding"],
                                   layer["output_padding"])
        elif op == "reshape":
            x = x.reshape(n, *layer["shape"])
        elif op == "relu":
            x = torch.relu(x)
        elif op == "leaky_relu":
            x = F.leaky_relu(x, layer["slope"])
        elif op == "tanh":
            x = torch.tanh(x)
        elif op == "sigmoid":
            x = torch.sigmoid(x)
        elif op == "affine":
            x = x * layer["scale"] + layer["shift"]
        elif op == "channel_affine":
            view = (1, -1) + (1,) * (x.dim() - 2)
            x = x * ts[layer["scale"]].view(view) + ts[layer["shift"]].view(view)
        elif op == "upsample_nearest":
            x = F.interpolate(x, scale_factor=layer["scale"], mode="nearest")
        else:
            raise DecoderExportError(f"unknown op {op!r}; known: {', '.join(OPS)}")
        if tuple(x.shape[1:]) != tuple(layer["out_shape"]):
            raise DecoderExportError(
                f"layer {op} produced shape {tuple(x.shape[1:])}, the program says {layer['out_shape']}"
            )
    return x


def decode_with_module(model: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Decode ``z`` ``(N, z_dim)`` with the model's own ``forward``: images ``(N, C, H, W)`` in [0, 1], on the CPU.

    The reference that the browser's pixels are compared with. Chapter: Exploring the latent space.
    """
    module, _, k = _decoder_of(model, None)
    entry = _table_entry(module)
    if k and y is None:
        raise ValueError(f"this model is conditional: pass y, {len(z)} labels in 0..{k - 1}")
    device = next(module.parameters()).device  # the model may live on a GPU; the result comes back to the CPU
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            y = None if y is None else torch.as_tensor(y).long().to(device)
            out = entry.forward(module, z.float().to(device), y).cpu()
    finally:
        module.train(was_training)
    return torch.sigmoid(out) if entry.output == "logits" else (out + 1) / 2


def _verify(program, weights, module, entry, atol: float, num_checks: int) -> None:
    g = torch.Generator().manual_seed(0)
    z = 2.0 * torch.randn(num_checks, program["z_dim"], generator=g)
    k = program["num_classes"]
    y = torch.arange(num_checks) % k if k else None
    try:
        want = decode_with_module(module, z, y)
        got = run_program(program, weights, z, y)
    except DecoderExportError:
        raise
    except Exception as err:  # a forward that no longer matches the steps fails in shape, not in value
        raise DecoderExportError(
            f"running the exported program of {type(module).__name__} failed ({err}); the module's forward "
            "no longer matches its entry in EXPORT_TABLE (genimg_lib/explorer.py): update the entry"
        ) from err
    if got.shape != want.shape:
        raise DecoderExportError(
            f"the exported program of {type(module).__name__} makes images {tuple(got.shape[1:])} but its forward "
            f"makes {tuple(want.shape[1:])}: update its entry in EXPORT_TABLE (genimg_lib/explorer.py)"
        )
    err = (got - want).abs().max().item()
    if not err <= atol:
        raise DecoderExportError(
            f"the exported program of {type(module).__name__} disagrees with its forward by up to {err:.3g} "
            f"(allowed {atol:.3g}) on {num_checks} random codes: the module's layers or forward changed and "
            "no longer match its entry in EXPORT_TABLE (genimg_lib/explorer.py). Update the entry; the browser "
            "would otherwise draw wrong images"
        )
    program["check"] = {"num_codes": num_checks, "max_abs_error": round(err, 6)}


# ---------------------------------------------------------------------------
# The widgets
# ---------------------------------------------------------------------------
class DecoderWeights(anywidget.AnyWidget):
    """An exported decoder as a widget model, with no view: ``program`` (JSON) and ``weights`` (float16 bytes).

    Several `LatentExplorer` instances refer to one `DecoderWeights`, so a page's saved
    widget state holds each model's weights once. Build it with `decoder_weights`.
    """

    _esm = "export default {};\n"
    program = T.Dict().tag(sync=True)
    weights = T.Bytes().tag(sync=True)


_SHARED: dict[str, DecoderWeights] = {}


def decoder_weights(model: nn.Module, name: str | None = None, num_classes: int | None = None) -> DecoderWeights:
    """The `DecoderWeights` of ``model`` (see `export_decoder`), made once per kernel and then shared."""
    program, weights = export_decoder(model, name=name, num_classes=num_classes)
    key = hashlib.sha256(json.dumps(program, sort_keys=True).encode() + weights).hexdigest()
    shared = _SHARED.get(key)
    if shared is None or shared.comm is None:  # none yet, or closed
        shared = _SHARED[key] = DecoderWeights(program=program, weights=weights)
    return shared


class _LatentCode(T.List):
    """A list of floats that also accepts a tensor or array of shape ``(z_dim,)`` or ``(1, z_dim)``."""

    def validate(self, obj, value):
        if isinstance(value, (torch.Tensor, np.ndarray)):
            value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
            value = value.reshape(-1).tolist() if value.ndim == 2 and value.shape[0] == 1 else value.tolist()
        return super().validate(obj, value)


def _as_matrix(x, what: str, cols: int) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise ValueError(f"{what} must have shape (K, {cols}) (one row per vector), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def _directions(directions, names, z_dim: int) -> tuple[np.ndarray, list[str]]:
    """``(K, z_dim)`` directions and their names, from axes, a dict, or vectors."""
    if directions is None:
        directions = list(range(min(z_dim, 8)))
    if isinstance(directions, Mapping):
        names = list(directions) if names is None else names
        vectors = [np.asarray(torch.as_tensor(v).cpu(), dtype=float).reshape(-1) for v in directions.values()]
        d = _as_matrix(np.stack(vectors), "directions", z_dim)
    elif isinstance(directions, Sequence) and all(isinstance(i, (int, np.integer)) for i in directions):
        bad = [i for i in directions if not 0 <= i < z_dim]
        if bad or len(set(directions)) != len(directions) or not directions:
            raise ValueError(f"directions: expected distinct axes in 0..{z_dim - 1}, got {list(directions)}")
        d = np.eye(z_dim)[list(directions)]
        names = [f"z[{i}]" for i in directions] if names is None else names
    else:
        d = _as_matrix(directions, "directions", z_dim)
        names = [f"d{i}" for i in range(len(d))] if names is None else names
    names = [str(n) for n in names]
    if len(names) != len(d):
        raise ValueError(f"got {len(d)} directions but {len(names)} names; give one name per direction")
    if not 1 <= len(d) <= 16:
        raise ValueError(f"give between 1 and 16 directions (one slider each), got {len(d)}")
    if np.linalg.matrix_rank(d) < len(d):
        raise ValueError("the directions are linearly dependent, so the coordinates along them are not defined; "
                         "drop the redundant ones")
    return d, names


def _check_truncation(psi, error: type[Exception]) -> float:
    """``psi`` as a float in (0, 1], or ``error`` saying what was expected."""
    ok = isinstance(psi, (int, float, np.floating, np.integer)) and not isinstance(psi, bool)
    if not ok or not (math.isfinite(psi) and 0 < psi <= 1):
        raise error(
            f"truncation must be a number psi in (0, 1] (the image is dec(psi * z)), got {psi!r}; "
            "use 1 for no truncation, or truncation=None for no slider"
        )
    return float(psi)


class LatentExplorer(anywidget.AnyWidget):
    r"""Move :math:`z` with sliders and a 2-D pad; the browser decodes :math:`x = \mathrm{dec}(z)` on every input.

    ``LatentExplorer(model, directions=None, ...)`` takes a `VAE`, `CVAE`, `DCGAN` or a
    decoder of `EXPORT_TABLE`. The weights travel once per page (`decoder_weights`).

    - ``directions``: None (the prior's first axes, at most 8), a list of axes, a dict
      ``{name: vector}``, or a ``(K, z_dim)`` array/tensor (then ``names``). Slider
      :math:`k` shows the coordinate :math:`c_k` of :math:`z - z_0` in the directions
      :math:`d_k`: :math:`c = D^{+} (z - z_0)`, with :math:`D^{+}` the pseudo-inverse
      of the ``(z_dim, K)`` matrix of directions and :math:`z_0` = ``origin`` (zeros by
      default). Moving it to :math:`c_k'` sets :math:`z \leftarrow z + (c_k' - c_k)\, d_k`;
      the part of :math:`z` outside the directions' span stays as it is.
    - ``pad``: the two directions the 2-D pad moves (default the first two; None for
      no pad). ``codes`` ``(N, z_dim)`` (e.g. the encoder's means on the data) and
      ``code_labels`` ``(N,)`` draw the data's codes under the pad.
    - ``z``: the starting code (default ``origin``); ``y``: the class of a conditional
      model. Both are read and written from Python: ``explorer.z = z`` redraws the
      image in the browser, and moving a slider updates ``explorer.z``.
    - ``extent``: sliders and pad span :math:`[-\mathrm{extent}, \mathrm{extent}]`.
    - ``truncation``: None (no truncation slider, :math:`\psi = 1`) or a number
      :math:`\psi \in (0, 1]`, the start of a truncation slider. The image is then
      :math:`\mathrm{dec}(\psi z)`: the code is pulled toward the prior's centre before
      decoding (a simple form of the truncation trick, Brock et al. 2019), while the
      sliders and the pad keep showing :math:`z` itself. ``explorer.truncation`` is read
      and written from Python like ``z``.

    Displayed in a notebook, the widget is preceded by a ``<noscript>`` block of
    precomputed frames (`fallback_html`), which only a browser that runs no scripts
    shows. Chapters: Exploring the latent space; DCGAN step by step.
    """

    _esm = _ESM
    _css = """
.genimg-explorer { font: 13px/1.3 system-ui, sans-serif; color: inherit; max-width: 660px; }
.genimg-explorer .gx-row { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.genimg-explorer canvas.gx-image { image-rendering: pixelated; border: 1px solid #bbb; background: #000; }
.genimg-explorer canvas.gx-pad { border: 1px solid #bbb; background: #fafafa; cursor: crosshair; touch-action: none; }
.genimg-explorer .gx-slider { display: grid; grid-template-columns: 8em 1fr 3.5em; gap: 6px; align-items: center; }
.genimg-explorer .gx-slider input { width: 100%; margin: 2px 0; }
.genimg-explorer .gx-note { color: #666; font-size: 11px; }
.genimg-explorer .gx-legend span { display: inline-block; padding: 0 3px; margin-right: 2px; color: #fff;
  border-radius: 2px; }
"""
    decoder = anywidget.WidgetTrait().tag(sync=True)
    z = _LatentCode(T.Float()).tag(sync=True)
    y = T.Int(0).tag(sync=True)
    directions = T.List(T.List(T.Float())).tag(sync=True)
    inverse = T.List(T.List(T.Float())).tag(sync=True)
    origin = T.List(T.Float()).tag(sync=True)
    names = T.List(T.Unicode()).tag(sync=True)
    pad = T.List(T.Int()).tag(sync=True)
    extent = T.Float(3.0).tag(sync=True)
    codes = T.Bytes(b"").tag(sync=True)
    code_labels = T.Bytes(b"").tag(sync=True)
    scale = T.Int(7).tag(sync=True)
    title = T.Unicode("").tag(sync=True)
    truncation = T.Float(1.0).tag(sync=True)
    truncation_slider = T.Bool(False).tag(sync=True)

    def __init__(
        self, model: torch.nn.Module, directions=None, names: Sequence[str] | None = None, z=None, origin=None,
        pad: tuple[int, int] | None = (0, 1), codes=None, code_labels=None, y: int = 0, extent: float = 3.0,
        scale: int = 7, title: str = "", name: str | None = None, fallback: bool = True,
        truncation: float | None = None,
    ) -> None:
        module, z_dim, k = _decoder_of(model, None)
        if truncation is not None:
            _check_truncation(truncation, ValueError)
        d, names = _directions(directions, names, z_dim)
        origin = np.zeros(z_dim) if origin is None else _as_matrix(origin, "origin", z_dim)[0]
        if not (isinstance(extent, (int, float)) and 0 < extent <= 100):
            raise ValueError(f"extent must be a positive number (the sliders' half range), got {extent!r}")
        if pad is not None:
            pad = [int(i) for i in pad]
            if len(d) < 2:
                pad = None
            elif len(pad) != 2 or pad[0] == pad[1] or not all(0 <= i < len(d) for i in pad):
                raise ValueError(
                    f"pad must name two different directions in 0..{len(d) - 1}, got {pad}; or pass pad=None"
                )
        if k and not 0 <= int(y) < k:
            raise ValueError(f"y must be a class in 0..{k - 1}, got {y}")
        inverse = np.linalg.pinv(d.T)  # (K, z_dim): c = inverse @ (z - origin)
        xy, lab = b"", b""
        if codes is not None:
            if pad is None:
                raise ValueError("codes are drawn under the 2-D pad, but pad is None; give pad=(i, j)")
            c = _as_matrix(codes, "codes", z_dim)
            if len(c) > 10000:
                raise ValueError(f"codes: at most 10000 points travel with the page, got {len(c)}; pass a subset")
            xy = ((c - origin) @ inverse[pad].T).astype("<f2").tobytes()
            if code_labels is not None:
                labels = np.asarray(torch.as_tensor(code_labels).cpu()).reshape(-1)
                if len(labels) != len(c) or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
                    raise ValueError(f"code_labels must be {len(c)} integers in 0..255, got shape {labels.shape}")
                lab = labels.astype(np.uint8).tobytes()
        self._module, self._z_dim, self._num_classes = module, z_dim, k
        self.fallback = fallback
        super().__init__(
            decoder=decoder_weights(model, name=name), directions=d.tolist(), inverse=inverse.tolist(),
            origin=origin.tolist(), names=names, pad=[] if pad is None else pad, extent=float(extent),
            codes=xy, code_labels=lab, scale=int(scale), title=title, y=int(y),
            z=origin.tolist() if z is None else z,
            truncation=1.0 if truncation is None else float(truncation),
            truncation_slider=truncation is not None,
        )

    @T.validate("z")
    def _check_z(self, proposal):
        z = proposal["value"]
        z_dim = getattr(self, "_z_dim", len(z))
        if len(z) != z_dim or not all(math.isfinite(v) for v in z):
            raise T.TraitError(
                f"z must be {z_dim} finite numbers (a code of this model), got {len(z)} values: {z[:4]}..."
            )
        return z

    @T.validate("y")
    def _check_y(self, proposal):
        y, k = proposal["value"], getattr(self, "_num_classes", 0)
        if (k and not 0 <= y < k) or (not k and y != 0):
            raise T.TraitError(f"y must be a class in 0..{max(k - 1, 0)} for this model, got {y}")
        return y

    @T.validate("truncation")
    def _check_truncation_trait(self, proposal):
        return _check_truncation(proposal["value"], T.TraitError)

    def coordinates(self) -> list[float]:
        """The sliders' values: :math:`c = D^{+}(z - z_0)`, one per direction."""
        return (np.asarray(self.inverse) @ (np.asarray(self.z) - np.asarray(self.origin))).tolist()

    def decode(self) -> torch.Tensor:
        r"""The image :math:`\mathrm{dec}(\psi z)` of the current ``z`` (and ``y``) from the PyTorch model.

        :math:`\psi` is ``truncation`` (1 unless a truncation was given). Returns
        ``(1, C, H, W)`` in [0, 1], what the browser draws.
        """
        y = torch.tensor([self.y]) if self._num_classes else None
        z = self.truncation * torch.tensor([self.z], dtype=torch.float64)
        return decode_with_module(self._module, z.float(), y)

    def fallback_html(self, steps: int = 5) -> str:
        r"""Precomputed frames in a ``<noscript>`` block: what a browser that runs no scripts shows.

        One row per direction (at most 4), ``steps`` columns from ``-extent`` to
        ``+extent`` along it, starting from the current ``z``; decoded by PyTorch, at the
        current ``truncation`` :math:`\psi` (each frame is :math:`\mathrm{dec}(\psi z)`).
        """
        from genimg_lib.widgets import array_to_png

        d = np.asarray(self.directions)[:4]
        coeffs = np.linspace(-self.extent, self.extent, steps)
        coords, z0 = np.asarray(self.coordinates()), np.asarray(self.z)
        # row r: coordinate r runs through coeffs, the others stay where z has them
        z = torch.tensor(np.concatenate([z0 + (coeffs[:, None] - coords[r]) * d[r] for r in range(len(d))]),
                         dtype=torch.float32)
        y = torch.full((len(z),), self.y) if self._num_classes else None
        img = decode_with_module(self._module, self.truncation * z, y).numpy()  # (R*S, C, H, W)
        c, h, w = img.shape[1:]
        grid = np.ones((len(d) * (h + 2) - 2, steps * (w + 2) - 2, c))
        for i, im in enumerate(img):
            r, s = divmod(i, steps)
            grid[r * (h + 2):r * (h + 2) + h, s * (w + 2):s * (w + 2) + w] = im.transpose(1, 2, 0)
        png = base64.b64encode(array_to_png(grid[..., 0] if c == 1 else grid, scale=2)).decode()
        rows = ", ".join(html.escape(n) for n in self.names[:4])
        psi = self.truncation
        at = f", each decoded at truncation psi = {psi:g} (the image of psi z)" if psi != 1 else ""
        alt = f"Decoded images: one row per direction ({rows}), from {-self.extent:g} to {self.extent:g}{at}"
        return (
            '<noscript><div class="genimg-explorer-fallback">'
            f"<p>This page runs no scripts, so the latent explorer cannot decode in your browser. "
            f"Precomputed frames instead: rows {rows}; columns from {-self.extent:g} to {self.extent:g} "
            f"along each direction{html.escape(at)}.</p><img src=\"data:image/png;base64,{png}\" alt=\"{html.escape(alt)}\">"
            "</div></noscript>"
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.fallback:
            display({"text/html": self.fallback_html()}, raw=True)
        bundle = self._repr_mimebundle_()
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        display(data, metadata=meta, raw=True)
