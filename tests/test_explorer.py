"""The latent explorer (genimg_lib.explorer): export, the JavaScript forward pass, the widget.

1. The export: a known decoder becomes a layer list with float16 weights; a model whose
   layers or forward changed fails with a clear error.
2. The JavaScript forward pass (explorer.js, run by Node) decodes a fixed set of codes;
   every pixel agrees with PyTorch within 2/255, for each exported model.
3. The widget from Python: ``explorer.z`` round-trips, weights are shared per page.
4. In headless Chromium, a page made like the website's (the vendored require.js,
   widget manager and anywidget, widget state embedded, no kernel): the explorers render,
   a slider and the pad redraw the canvas, which matches PyTorch within 2/255; input to
   drawn frame is timed; no request leaves 127.0.0.1; with scripts off the <noscript>
   frames show. Measurements go to _build/explorer_measurements.json and a screenshot
   to _build/screenshot_explorer.png.

Needs /usr/bin/node, and for part 4 Chromium, Playwright and the vendored assets
(bash scripts/vendor_assets.sh); without them those tests are skipped, unless
GENIMG_REQUIRE_BROWSER=1 (CI), where their absence is a failure.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import shutil
import statistics
import subprocess
import threading
from pathlib import Path

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import yaml
from traitlets import TraitError as T_TraitError
from torch import nn
from torch.nn import functional as F

from conftest import ROOT
from genimg_lib import explorer as gx
from genimg_lib.models import ConvDecoder, DCGANGenerator, MLPDecoder

try:
    from genimg_lib.checkpoints import load_model
except ImportError:  # before the restructuring
    from genimg_lib.models import load_model

NODE = os.environ.get("GENIMG_NODE", "/usr/bin/node")
CHROMIUM = os.environ.get("GENIMG_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("GENIMG_REQUIRE_BROWSER") == "1"
VENDOR = ROOT / "_vendor"
MODELS = ["vae_mlp_z2", "vae_conv_z16", "gan_dcgan"]
TOLERANCE = 2  # in 1/255 steps of an 8-bit pixel
MEASUREMENTS = ROOT / "_build" / "explorer_measurements.json"


def _record(key: str, value) -> None:
    MEASUREMENTS.parent.mkdir(exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[key] = value
    MEASUREMENTS.write_text(json.dumps(data, indent=1, sort_keys=True))


def _skip_or_fail(reason: str):
    if REQUIRED:
        pytest.fail(f"GENIMG_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@functools.lru_cache(maxsize=None)
def shipped(name: str) -> nn.Module:
    return load_model(name)


def deeper_generator() -> DCGANGenerator:
    """A deeper, wider DCGAN generator than the shipped one (as a recipe change might make it).

    Its ``net`` is longer and uses every other op of the interpreter: conv2d, leaky_relu,
    nearest upsampling, a batch norm after an activation (kept as channel_affine) and one
    after a convolution (folded). Random weights and batch statistics, eval mode.
    """
    g = torch.Generator().manual_seed(3)
    G = DCGANGenerator(z_dim=8, width=12)
    w = G.width
    G.net = nn.Sequential(
        nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.LeakyReLU(0.2),  # 7 -> 14
        nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(), nn.BatchNorm2d(w),  # BN after the activation
        nn.Upsample(scale_factor=2, mode="nearest"),  # 14 -> 28
        nn.Conv2d(w, 1, 3, 1, 1), nn.Tanh(),
    )
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return G.eval()


def model_named(name: str) -> nn.Module:
    return deeper_generator() if name == "deeper_generator" else shipped(name)


# ---------------------------------------------------------------------------
# 1. The export
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_export_lists_the_layers_and_packs_float16(name):
    program, weights = gx.export_decoder(shipped(name), name=name)
    assert program["format"] == gx.FORMAT and program["dtype"] == "float16"
    assert program["output_shape"] == [1, 28, 28]
    assert {layer["op"] for layer in program["layers"]} <= set(gx.OPS)
    # every tensor lies in the buffer, back to back, in the order listed
    offset = 0
    for t in program["tensors"]:
        assert t["offset"] == offset
        offset += int(np.prod(t["shape"]))
    assert len(weights) == 2 * offset
    # the weights are the module's, rounded to float16 (a layer without batch norm is copied)
    module = shipped(name).decoder if name.startswith("vae") else shipped(name).G
    first = program["layers"][0]
    stored = gx._unpack(program, weights)[first["weight"]]
    expected = dict(module.named_parameters())[first["weight"]].detach()
    if "folded" not in first:
        assert torch.equal(stored, expected.half().float())
    last = program["layers"][-1]
    assert last == ({"op": "sigmoid", "in_shape": [1, 28, 28], "out_shape": [1, 28, 28]} if name.startswith("vae")
                    else {"op": "affine", "in_shape": [1, 28, 28], "out_shape": [1, 28, 28], "scale": 0.5, "shift": 0.5})


def test_dcgan_batch_norm_is_folded_into_the_layer_before_it():
    program, _ = gx.export_decoder(shipped("gan_dcgan"))
    ops = [layer["op"] for layer in program["layers"]]
    assert ops == ["linear", "reshape", "relu", "conv_transpose2d", "relu", "conv_transpose2d", "tanh", "affine"]
    assert program["layers"][0]["folded"] == ["net.0"] and program["layers"][3]["folded"] == ["net.3"]


def test_run_program_is_an_independent_interpreter():
    """Fold, quantize and interpret by hand for the MLP decoder: the same numbers as run_program."""
    model = shipped("vae_mlp_z2")
    program, weights = gx.export_decoder(model)
    z = torch.tensor([[0.5, -1.0], [2.0, 0.3]])
    net = model.decoder.net
    w = [p.detach().half().float() for p in (net[0].weight, net[0].bias, net[2].weight, net[2].bias)]
    by_hand = torch.sigmoid(torch.relu(z @ w[0].T + w[1]) @ w[2].T + w[3]).view(2, 1, 28, 28)
    torch.testing.assert_close(gx.run_program(program, weights, z), by_hand, rtol=0, atol=1e-6)


class GELUGenerator(DCGANGenerator):
    """The DCGAN generator with an activation that the browser does not know."""

    def __init__(self):
        super().__init__(z_dim=8, width=4)
        self.net[1] = nn.GELU()


class PermutedGenerator(DCGANGenerator):
    """Same layers, changed forward: the linear's output is laid out (7, 7, C) before the convolutions."""

    def forward(self, z, y=None):
        h = self.fc(z).view(-1, 7, 7, 2 * self.width).permute(0, 3, 1, 2)
        return self.net(h)


class ExtraLayerGenerator(DCGANGenerator):
    """A new layer outside ``net`` that the export-table entry does not know about."""

    def __init__(self):
        super().__init__(z_dim=8, width=4)
        self.skip = nn.Linear(8, 784)

    def forward(self, z, y=None):
        return torch.tanh(torch.atanh(super().forward(z).clamp(-0.999, 0.999)) + self.skip(z).view(-1, 1, 28, 28))


def test_export_refuses_a_layer_the_browser_does_not_know():
    with pytest.raises(gx.DecoderExportError, match=r"cannot export layer net\.1 \(GELU\).*explorer\.js"):
        gx.export_decoder(GELUGenerator().eval())


def test_export_refuses_a_model_whose_forward_changed():
    G = PermutedGenerator(z_dim=8, width=4).eval()
    with pytest.raises(gx.DecoderExportError, match=r"disagrees with its forward by up to .* EXPORT_TABLE"):
        gx.export_decoder(G)


def test_export_refuses_a_model_with_weights_its_entry_ignores():
    with pytest.raises(gx.DecoderExportError, match=r"never uses: \['skip\.bias', 'skip\.weight'\]"):
        gx.export_decoder(ExtraLayerGenerator().eval())


def test_export_refuses_a_generator_whose_first_map_changed():
    G = DCGANGenerator(z_dim=8, width=4)
    G.fc = nn.Linear(8, 2 * 4 * 4 * 4)  # now a 4x4 start: the entry's Reshape to (8, 7, 7) is stale
    with pytest.raises(gx.DecoderExportError, match=r"cannot reshape \(128,\) to \(8, 7, 7\).*update the entry"):
        gx.export_decoder(G.eval())


def test_export_refuses_unknown_classes_and_float16_overflow():
    with pytest.raises(gx.DecoderExportError, match="cannot export a Linear: the export table knows MLPDecoder"):
        gx.export_decoder(nn.Linear(2, 784))
    dec = MLPDecoder(z_dim=2)
    with torch.no_grad():
        dec.net[0].weight[0, 0] = 1e6
    with pytest.raises(gx.DecoderExportError, match="net.0.weight has values that float16 cannot hold"):
        gx.export_decoder(dec)


def test_a_deeper_generator_exports_with_no_new_code():
    program, _ = gx.export_decoder(deeper_generator())
    ops = [layer["op"] for layer in program["layers"]]
    assert ops == ["linear", "reshape", "relu", "conv_transpose2d", "leaky_relu", "conv2d", "relu",
                   "channel_affine", "upsample_nearest", "conv2d", "tanh", "affine"]


def test_bare_and_conditional_decoders_export():
    program, _ = gx.export_decoder(ConvDecoder(z_dim=4, channels=8).eval())
    assert (program["z_dim"], program["num_classes"]) == (4, 0)
    program, _ = gx.export_decoder(MLPDecoder(z_dim=3, num_classes=10).eval(), num_classes=10)
    assert (program["z_dim"], program["num_classes"]) == (3, 10)
    program, _ = gx.export_decoder(shipped_or_skip("gan_cgan"))
    assert (program["z_dim"], program["num_classes"]) == (64, 10)


def shipped_or_skip(name: str) -> nn.Module:
    try:
        return shipped(name)
    except ValueError as err:
        pytest.skip(str(err))


# ---------------------------------------------------------------------------
# 2. The JavaScript forward pass, in Node
# ---------------------------------------------------------------------------
NODE_RUNNER = r"""
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [, , esm, dir] = process.argv;
const { compileProgram } = await import(pathToFileURL(esm).href);
const program = JSON.parse(readFileSync(`${dir}/program.json`, "utf8"));
const decode = compileProgram(program, new Uint8Array(readFileSync(`${dir}/weights.bin`)));
const inputs = JSON.parse(readFileSync(`${dir}/inputs.json`, "utf8"));
// what a canvas stores: Uint8ClampedArray rounds x * 255 to the nearest integer
const pixels = inputs.map((v) => Array.from(Uint8ClampedArray.from(decode(Float32Array.from(v)), (x) => x * 255)));
writeFileSync(`${dir}/pixels.json`, JSON.stringify(pixels));
"""


def fixed_codes(z_dim: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """24 codes: zero, +-3 on the first axes, and draws from N(0, 2^2 I); labels cycle."""
    g = torch.Generator().manual_seed(1)
    z = [torch.zeros(z_dim)]
    for i in range(min(z_dim, 2)):
        for s in (-3.0, 3.0):
            z.append(torch.zeros(z_dim).index_fill(0, torch.tensor(i), s))
    z = torch.cat([torch.stack(z), 2 * torch.randn(24 - len(z), z_dim, generator=g)])
    return z, (torch.arange(len(z)) % k if k else None)


@pytest.mark.parametrize("name", MODELS + ["deeper_generator", "gan_cgan"])
def test_javascript_decodes_like_pytorch(name, tmp_path):
    if not Path(NODE).exists():
        _skip_or_fail(f"no Node at {NODE}")
    model = shipped_or_skip(name) if name == "gan_cgan" else model_named(name)
    program, weights = gx.export_decoder(model, name=name)
    z, y = fixed_codes(program["z_dim"], program["num_classes"])
    inputs = torch.cat([z, F.one_hot(y, program["num_classes"]).float()], 1) if y is not None else z
    (tmp_path / "program.json").write_text(json.dumps(program))
    (tmp_path / "weights.bin").write_bytes(weights)
    (tmp_path / "inputs.json").write_text(json.dumps(inputs.tolist()))
    shutil.copy(ROOT / "genimg_lib" / "explorer.js", tmp_path / "explorer.mjs")
    (tmp_path / "run.mjs").write_text(NODE_RUNNER)
    subprocess.run([NODE, str(tmp_path / "run.mjs"), str(tmp_path / "explorer.mjs"), str(tmp_path)],
                   check=True, timeout=120, capture_output=True)
    js = np.array(json.loads((tmp_path / "pixels.json").read_text()), dtype=float)
    torch_pixels = gx.decode_with_module(model, z, y).reshape(len(z), -1).numpy() * 255
    err = np.abs(js - torch_pixels).max()
    _record(f"node_max_pixel_error/{name}", round(float(err), 3))
    assert err <= TOLERANCE, f"{name}: a JS pixel differs from PyTorch by {err:.2f}/255"
    assert js.std() > 3  # not a constant image


NODE_TRUNCATION_RUNNER = r"""
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [, , esm, dir] = process.argv;
const { compileProgram, decoderInput } = await import(pathToFileURL(esm).href);
const program = JSON.parse(readFileSync(`${dir}/program.json`, "utf8"));
const decode = compileProgram(program, new Uint8Array(readFileSync(`${dir}/weights.bin`)));
const { z, y, psi } = JSON.parse(readFileSync(`${dir}/inputs.json`, "utf8"));
const input = new Float32Array(program.z_dim + program.num_classes);
// the view's own path: decoderInput builds [psi z, onehot(y)], then the program decodes it
const pixels = psi.map((p) => z.map((v, i) => Array.from(Uint8ClampedArray.from(
  decode(decoderInput(input, v, program.z_dim, program.num_classes, y[i], p)), (x) => x * 255))));
writeFileSync(`${dir}/pixels.json`, JSON.stringify(pixels));
"""


@pytest.mark.parametrize("name", ["gan_dcgan", "gan_cgan"])
def test_javascript_truncation_scales_z_before_decoding(name, tmp_path):
    """The browser draws dec(psi z) (decoderInput + the program), as LatentExplorer.decode() does."""
    if not Path(NODE).exists():
        _skip_or_fail(f"no Node at {NODE}")
    model = shipped_or_skip(name)
    program, weights = gx.export_decoder(model, name=name)
    z, y = fixed_codes(program["z_dim"], program["num_classes"])
    z, y = z[:8], (y[:8] if y is not None else torch.zeros(8, dtype=torch.long))
    psis = [1.0, 0.6, 0.25]
    (tmp_path / "program.json").write_text(json.dumps(program))
    (tmp_path / "weights.bin").write_bytes(weights)
    (tmp_path / "inputs.json").write_text(json.dumps({"z": z.tolist(), "y": y.tolist(), "psi": psis}))
    shutil.copy(ROOT / "genimg_lib" / "explorer.js", tmp_path / "explorer.mjs")
    (tmp_path / "run.mjs").write_text(NODE_TRUNCATION_RUNNER)
    subprocess.run([NODE, str(tmp_path / "run.mjs"), str(tmp_path / "explorer.mjs"), str(tmp_path)],
                   check=True, timeout=120, capture_output=True)
    js = np.array(json.loads((tmp_path / "pixels.json").read_text()), dtype=float)  # (psi, code, pixel)
    conditional = program["num_classes"] > 0
    for p, psi in enumerate(psis):
        for i in range(len(z)):
            explorer = gx.LatentExplorer(model, z=z[i], y=int(y[i]), truncation=psi)
            python = explorer.decode().reshape(-1).numpy() * 255
            # independently: the model's own forward on psi * z
            direct = gx.decode_with_module(model, psi * z[i:i + 1], y[i:i + 1] if conditional else None)
            np.testing.assert_allclose(python, direct.reshape(-1).numpy() * 255, atol=1e-3)
            err = np.abs(js[p, i] - python).max()
            assert err <= TOLERANCE, f"{name}, psi={psi}: a JS pixel differs from PyTorch by {err:.2f}/255"
    # the truncation changes the picture (a view that ignored psi would draw js[0] three times)
    assert np.abs(js[2] - js[0]).max() > 100


def test_truncation_is_checked_and_round_trips(monkeypatch):
    model = shipped("gan_dcgan")
    z0 = torch.randn(64, generator=torch.Generator().manual_seed(5))
    plain = gx.LatentExplorer(model, z=z0)
    assert plain.truncation == 1.0 and plain.truncation_slider is False
    torch.testing.assert_close(plain.decode(), gx.decode_with_module(model, z0[None]))
    explorer = gx.LatentExplorer(model, z=z0, truncation=0.5)
    assert explorer.truncation == 0.5 and explorer.truncation_slider is True
    assert explorer.z == pytest.approx(z0.tolist())  # z itself is kept; only the image is truncated
    torch.testing.assert_close(explorer.decode(), gx.decode_with_module(model, 0.5 * z0[None]))
    assert (explorer.decode() - plain.decode()).abs().max() > 0.2
    sent = []
    monkeypatch.setattr(explorer, "_send", lambda msg, buffers=None: sent.append(msg))
    explorer.truncation = 0.25
    assert sent == [{"method": "update", "state": {"truncation": 0.25}, "buffer_paths": []}]
    torch.testing.assert_close(explorer.decode(), gx.decode_with_module(model, 0.25 * z0[None]))
    for bad in (0, 0.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ValueError, match=r"truncation must be a number psi in \(0, 1\]"):
            gx.LatentExplorer(model, truncation=bad)
    for bad in (0.0, 1.01, -1.0, float("nan")):
        with pytest.raises(T_TraitError, match=r"truncation must be a number psi in \(0, 1\]"):
            explorer.truncation = bad
    assert explorer.truncation == 0.25  # a refused value leaves it as it was


def test_noscript_frames_are_truncated_too():
    model = shipped("gan_dcgan")
    z0 = torch.randn(64, generator=torch.Generator().manual_seed(6))
    explorer = gx.LatentExplorer(model, z=z0, directions=[0, 1], truncation=0.4)
    html = explorer.fallback_html(steps=3)
    assert "psi = 0.4" in html
    png = base64.b64decode(html.split("base64,")[1].split('"')[0])
    grid = plt.imread(io.BytesIO(png))[..., 0]  # 2 rows x 3 frames of 28 px, 2 px apart, enlarged twice
    frame = grid[0:56:2, 2 * 60:2 * 60 + 56:2]  # row z[0], last column: z[0] = +extent
    z = z0.clone()
    z[0] = explorer.extent
    want = gx.decode_with_module(model, 0.4 * z[None])[0, 0].numpy()
    assert np.abs(frame - want).max() <= TOLERANCE / 255 + 1e-6
    untruncated = gx.decode_with_module(model, z[None])[0, 0].numpy()
    assert np.abs(frame - untruncated).max() > 0.2


# ---------------------------------------------------------------------------
# 3. The widget, from Python
# ---------------------------------------------------------------------------
def test_z_round_trips_from_python(monkeypatch):
    """Python -> browser: setting z sends an update message; browser -> Python: an update sets z."""
    explorer = gx.LatentExplorer(shipped("vae_mlp_z2"))
    sent = []
    monkeypatch.setattr(explorer, "_send", lambda msg, buffers=None: sent.append(msg))
    assert explorer.z == [0.0, 0.0] and explorer.names == ["z[0]", "z[1]"] and explorer.pad == [0, 1]
    explorer.z = torch.tensor([0.5, -1.25])  # a tensor is accepted and stored as floats
    assert explorer.z == [0.5, -1.25] and explorer.coordinates() == pytest.approx([0.5, -1.25])
    assert sent == [{"method": "update", "state": {"z": [0.5, -1.25]}, "buffer_paths": []}]
    # the message a slider's save_changes() makes the front end send over the comm
    explorer._handle_msg({"content": {"data": {"method": "update", "state": {"z": [1.5, 2.0]}, "buffer_paths": []}},
                          "buffers": []})
    assert explorer.z == [1.5, 2.0]
    torch.testing.assert_close(explorer.decode(), gx.decode_with_module(shipped("vae_mlp_z2"), torch.tensor([[1.5, 2.0]])))
    with pytest.raises(Exception, match=r"z must be 2 finite numbers \(a code of this model\), got 3"):
        explorer.z = [0.0, 1.0, 2.0]
    with pytest.raises(Exception, match="z must be 2 finite numbers"):
        explorer.z = [0.0, float("nan")]


def test_coordinates_along_non_orthogonal_directions():
    model = shipped("vae_conv_z16")
    g = torch.Generator().manual_seed(0)
    d = torch.randn(2, 16, generator=g)
    origin = torch.randn(16, generator=g)
    explorer = gx.LatentExplorer(model, directions={"a": d[0], "b": d[1]}, origin=origin)
    explorer.z = origin + 1.5 * d[0] - 0.5 * d[1]
    assert explorer.names == ["a", "b"]
    assert explorer.coordinates() == pytest.approx([1.5, -0.5], abs=1e-5)


def test_weights_travel_once_per_page():
    model = shipped("gan_dcgan")
    a, b = gx.LatentExplorer(model), gx.LatentExplorer(model, directions=[5, 6, 7])
    assert a.decoder is b.decoder
    state = W.Widget.get_manager_state(widgets=[a, b, a.decoder])["state"]
    buffers = [buf for m in state.values() for buf in m.get("buffers", []) if buf["path"] == ["weights"]]
    assert len(buffers) == 1
    assert state[a.model_id]["state"]["decoder"] == f"anywidget:{a.decoder.model_id}"


def test_explorer_arguments_are_checked():
    model = shipped("vae_conv_z16")
    with pytest.raises(ValueError, match="linearly dependent"):
        gx.LatentExplorer(model, directions=torch.ones(2, 16))
    with pytest.raises(ValueError, match=r"directions: expected distinct axes in 0..15, got \[3, 16\]"):
        gx.LatentExplorer(model, directions=[3, 16])
    with pytest.raises(ValueError, match=r"pad must name two different directions in 0..1, got \[0, 0\]"):
        gx.LatentExplorer(model, directions=[0, 1], pad=(0, 0))
    with pytest.raises(ValueError, match=r"codes must have shape \(K, 16\)"):
        gx.LatentExplorer(model, codes=torch.zeros(5, 2))
    with pytest.raises(ValueError, match="got 2 directions but 1 names"):
        gx.LatentExplorer(model, directions=[0, 1], names=["a"])


def test_codes_under_the_pad_are_their_coordinates():
    model = shipped("vae_mlp_z2")
    codes = torch.tensor([[0.5, -1.0], [2.0, 2.5]])
    explorer = gx.LatentExplorer(model, codes=codes, code_labels=[3, 7])
    xy = np.frombuffer(explorer.codes, dtype="<f2").reshape(-1, 2)
    np.testing.assert_allclose(xy, codes.numpy(), atol=2e-3)
    assert list(explorer.code_labels) == [3, 7]


def test_noscript_fallback_holds_precomputed_frames():
    explorer = gx.LatentExplorer(shipped("vae_mlp_z2"), z=[0.2, 0.1])
    html = explorer.fallback_html(steps=5)
    assert html.startswith("<noscript>") and html.endswith("</noscript>")
    png = base64.b64decode(html.split("base64,")[1].split('"')[0])
    grid = plt.imread(io.BytesIO(png))[..., 0]  # 2 rows x 5 frames of 28 px, 2 px apart, enlarged twice
    assert grid.shape == (2 * (2 * 30 - 2), 2 * (5 * 30 - 2))
    frame = grid[0:56:2, 4 * 60:4 * 60 + 56:2]  # row z[0], last column: z = (3, 0.1)
    want = gx.decode_with_module(shipped("vae_mlp_z2"), torch.tensor([[3.0, 0.1]]))[0, 0].numpy()
    assert np.abs(frame - want).max() <= TOLERANCE / 255 + 1e-6


# ---------------------------------------------------------------------------
# 4. In headless Chromium
# ---------------------------------------------------------------------------
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
    "--metrics-recording-only", "--disable-breakpad",
]


def site_script_tags() -> str:
    """The widget scripts of a site page, in _config.yml's order (as myst-nb writes them)."""
    js = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["nb_ipywidgets_js"]
    tags = []
    for src, attrs in js.items():
        extra = "".join(f' {k}="{v}"' for k, v in (attrs or {}).items())
        tags.append(f'<script src="../_static/{src}"{extra}></script>')
    return "\n".join(tags)


def page_html(views: list, fallbacks: list[str]) -> str:
    """A page laid out like a built chapter: widget state in the head, one view per output."""
    widgets = []
    for v in views:
        widgets += [v, v.layout, v.decoder, v.decoder.layout]
    state = W.Widget.get_manager_state(widgets=list({w.model_id: w for w in widgets}.values()))
    body = []
    for view, fallback in zip(views, fallbacks):
        spec = json.dumps({"version_major": 2, "version_minor": 0, "model_id": view.model_id})
        body.append(f'<div class="cell_output">{fallback}'
                    f'<script type="application/vnd.jupyter.widget-view+json">{spec}</script></div>')
    return (
        "<!doctype html><html><head><meta charset='utf-8'>" + site_script_tags()
        + f'<script type="application/vnd.jupyter.widget-state+json">{json.dumps(state)}</script>'
        + "</head><body><article>" + "\n".join(body) + "</article></body></html>"
    )


@pytest.fixture(scope="module")
def browser_setup(tmp_path_factory):
    if not (VENDOR / "offline" / "anywidget" / "index.js").exists():
        _skip_or_fail(f"no vendored anywidget in {VENDOR}; run bash scripts/vendor_assets.sh")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _skip_or_fail(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed; pip install -r requirements.txt")
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(VENDOR, site / "_static")
    (site / "book").mkdir()
    shutil.copy(ROOT / "genimg_lib" / "explorer.js", site / "explorer.js")

    mlp = shipped("vae_mlp_z2")
    from genimg_lib.data import load_mnist5k

    x, labels = load_mnist5k(split="test")
    with torch.no_grad():
        codes = mlp.encode(x[:500])[0]  # the encoder's means: the data's codes under the pad
    views = [
        gx.LatentExplorer(mlp, codes=codes, code_labels=labels[:500],
                          title="vae_mlp_z2", z=[0.4, -0.6]),
        gx.LatentExplorer(shipped("vae_conv_z16"), title="vae_conv_z16", z=0.5 * torch.ones(16)),
        gx.LatentExplorer(shipped("gan_dcgan"), title="gan_dcgan",
                          z=torch.randn(64, generator=torch.Generator().manual_seed(4))),
        gx.LatentExplorer(shipped("gan_dcgan"), directions=[10, 11, 12], title="gan_dcgan, other axes"),
    ]
    (site / "book" / "explorer.html").write_text(page_html(views, [v.fallback_html() for v in views]))
    (site / "book" / "harness.html").write_text("<!doctype html><html><body><div id='el'></div></body></html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "browser": browser, "views": views,
               "page_bytes": (site / "book" / "explorer.html").stat().st_size}
        browser.close()
    httpd.shutdown()


def open_offline(browser, log: dict, **context):
    ctx = browser.new_context(viewport={"width": 1000, "height": 900}, **context)
    page = ctx.new_page()
    for key in ("outside", "failed", "page_errors", "bad_status"):
        log.setdefault(key, [])

    def route(r):
        from urllib.parse import urlparse

        if r.request.url.startswith(("data:", "blob:")) or urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            log["outside"].append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda req: log["failed"].append(req.url))
    page.on("pageerror", lambda err: log["page_errors"].append(str(err)))
    page.on("response", lambda resp: log["bad_status"].append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    return page


CANVAS_JS = """(i) => { const c = document.querySelectorAll('.genimg-explorer canvas.gx-image')[i];
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, k) => k % 4 === 0); }"""
Z_JS = "(i) => JSON.parse(document.querySelectorAll('.genimg-explorer')[i].dataset.z)"


def canvas_error(page, i: int, model, z) -> tuple[float, np.ndarray]:
    pixels = np.array(page.evaluate(CANVAS_JS, i), dtype=float)
    want = gx.decode_with_module(model, torch.as_tensor([z], dtype=torch.float32)).reshape(-1).numpy() * 255
    return float(np.abs(pixels - want).max()), pixels


@pytest.fixture(scope="module")
def page_report(browser_setup):
    log: dict = {}
    page = open_offline(browser_setup["browser"], log)
    page.goto(f"{browser_setup['url']}/book/explorer.html", wait_until="networkidle")
    page.wait_for_function("() => document.querySelectorAll('.genimg-explorer').length === 4", timeout=30000)
    report = {"log": log, "errors": {}, "changed": {}, "decode_ms": {}, "frame_ms": {}}
    views = browser_setup["views"]
    for i, view in enumerate(views):
        model = view._module
        report["errors"][f"{i} start"] = canvas_error(page, i, model, view.z)[0]
        # a real key press on the first slider: End moves it to +extent
        slider = page.locator(".genimg-explorer").nth(i).locator("input[type=range]").first
        before = np.array(page.evaluate(CANVAS_JS, i))
        slider.focus()
        slider.press("End")
        z = page.evaluate(Z_JS, i)
        expected_z = np.asarray(view.z) + (view.extent - view.coordinates()[0]) * np.asarray(view.directions[0])
        report[f"z {i}"] = (z, expected_z.tolist())
        err, after = canvas_error(page, i, model, z)
        report["errors"][f"{i} slider"] = err
        report["changed"][i] = int((after != before).sum())
    # the pad: a click at a quarter of its width and height sets the first two coordinates
    pad = page.locator(".genimg-explorer").nth(0).locator("canvas.gx-pad")
    pad.click(position={"x": 50, "y": 50})  # in the pad's 200 x 200 CSS pixels
    z = page.evaluate(Z_JS, 0)
    report["pad z"] = z
    report["errors"]["0 pad"] = canvas_error(page, 0, views[0]._module, z)[0]
    # decode time per model: 60 slider inputs each, as the widget measures them
    for i, view in enumerate(views[:3]):
        report["decode_ms"][view.title] = page.evaluate(
            """(i) => { const root = document.querySelectorAll('.genimg-explorer')[i];
            const s = root.querySelector('input[type=range]'), out = [];
            for (let k = 0; k < 60; k++) { s.value = String(-2.5 + 5 * k / 59);
              s.dispatchEvent(new Event('input', {bubbles: true})); out.push(parseFloat(root.dataset.decodeMs)); }
            return out; }""", i)
    # input to drawn frame on the DCGAN: trusted key presses, from the event's time stamp
    # to the end of the draw, and to the next animation frame (when the browser paints it)
    page.evaluate("""() => { const root = document.querySelectorAll('.genimg-explorer')[2];
      window.__frames = []; root.querySelector('input[type=range]').addEventListener('input', (ev) => {
        const t1 = performance.now();
        requestAnimationFrame(() => window.__frames.push([t1 - ev.timeStamp, performance.now() - ev.timeStamp]));
      }); }""")
    slider = page.locator(".genimg-explorer").nth(2).locator("input[type=range]").first
    slider.focus()
    for k in range(60):
        slider.press("PageDown" if k % 2 else "PageUp")
    page.wait_for_timeout(200)
    frames = page.evaluate("() => window.__frames")
    report["frame_ms"] = {"to_drawn": [f[0] for f in frames], "to_next_frame": [f[1] for f in frames]}
    page.locator(".genimg-explorer").nth(0).scroll_into_view_if_needed()
    page.screenshot(path=str(ROOT / "_build" / "screenshot_explorer.png"), full_page=True)
    page.close()
    return report


def test_explorers_render_offline_with_no_request_leaving(page_report):
    log = page_report["log"]
    assert log["outside"] == [] and log["failed"] == [], (log["outside"], log["failed"])
    assert log["page_errors"] == [], log["page_errors"]
    assert log["bad_status"] == [], log["bad_status"]


def test_canvas_matches_pytorch_and_follows_the_slider(page_report, browser_setup):
    errors = page_report["errors"]
    _record("browser_max_pixel_error", {k: round(v, 3) for k, v in errors.items()})
    assert max(errors.values()) <= TOLERANCE, errors
    for i in range(4):
        z, expected = page_report[f"z {i}"]
        np.testing.assert_allclose(z, expected, atol=1e-6)
        assert page_report["changed"][i] > 20, page_report["changed"]


def test_pad_sets_the_first_two_coordinates(page_report):
    # a quarter across and a quarter down; [-extent, extent] spans the pad less a margin of
    # 4% of its width on each side (PAD_MARGIN in explorer.js). One CSS pixel is 0.033.
    u = (0.25 - 0.04) / (1 - 2 * 0.04) * 2 - 1
    np.testing.assert_allclose(page_report["pad z"], [3.0 * u, -3.0 * u], atol=0.02)


def test_decode_and_input_to_frame_times(page_report, browser_setup):
    decode = {k: statistics.median(v) for k, v in page_report["decode_ms"].items()}
    frames = page_report["frame_ms"]
    assert len(frames["to_drawn"]) >= 50
    to_drawn, to_frame = statistics.median(frames["to_drawn"]), statistics.median(frames["to_next_frame"])
    _record("browser_median_decode_ms", {k: round(v, 3) for k, v in decode.items()})
    _record("browser_dcgan_input_to_frame_ms", {"median_to_drawn": round(to_drawn, 2),
                                                 "median_to_next_animation_frame": round(to_frame, 2),
                                                 "num_inputs": len(frames["to_drawn"])})
    _record("page_bytes_4_explorers_3_models", browser_setup["page_bytes"])
    assert to_drawn <= 30, f"DCGAN: median input-to-drawn {to_drawn:.1f} ms > 30 ms"


HARNESS_JS = """async ([state, program, weights, newZ, newY]) => {
  const mod = await import('/explorer.js');
  const bytes = (a) => Uint8Array.from(a);
  const handlers = {}, sent = [];
  state.codes = bytes(state.codes); state.code_labels = bytes(state.code_labels);
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; (handlers['change:' + k] || []).forEach((f) => f()); },
    save_changes: () => sent.push(state.z.slice()),
    on: (e, f) => { (handlers[e] = handlers[e] || []).push(f); }, off: () => {},
  };
  const weightsModel = { get: (k) => (k === 'program' ? program : new DataView(bytes(weights).buffer)) };
  const host = { getModel: async (ref) => { if (ref !== state.decoder) throw new Error(ref); return weightsModel; } };
  const el = document.getElementById('el');
  await mod.default.render({ model, el, host });
  const read = () => { const c = el.querySelector('canvas.gx-image');
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, k) => k % 4 === 0); };
  const first = read();
  model.set('z', newZ);  // what a change from Python does: the model's z changes, the view follows
  const followed = read();
  model.set('y', newY);  // a conditional model's class, set from Python
  const relabelled = read();
  const sliders = el.querySelectorAll('input[type=range]');
  const values = Array.from(sliders, (s) => parseFloat(s.value));
  sliders[1].value = '-2'; sliders[1].dispatchEvent(new Event('input'));
  return { first, followed, relabelled, values, sent };
}"""


@pytest.mark.parametrize("name, z_dim", [("vae_conv_z16", 16), ("cvae_z8", 8)])
def test_python_sets_z_and_the_picture_follows(browser_setup, name, z_dim):
    """The view's side of explorer.z (and y): a change from the kernel redraws; a slider sends z back.

    The view gets a stand-in for its widget model (get/set/on/save_changes, the part of
    anywidget's model that it uses); the real manager is exercised by page_report.
    """
    model = shipped_or_skip(name)
    conditional = name == "cvae_z8"
    explorer = gx.LatentExplorer(model, directions=[2, 5], y=1 if conditional else 0)
    state = {k: (list(v) if isinstance(v, bytes) else v) for k, v in explorer.get_state().items()}
    new_z = torch.randn(z_dim, generator=torch.Generator().manual_seed(7)).tolist()
    new_y = 3 if conditional else 0
    log: dict = {}
    page = open_offline(browser_setup["browser"], log)
    page.goto(f"{browser_setup['url']}/book/harness.html")
    out = page.evaluate(HARNESS_JS, [state, explorer.decoder.program, list(explorer.decoder.weights), new_z, new_y])
    page.close()

    def want(z, y):
        y = torch.tensor([y]) if conditional else None
        return gx.decode_with_module(model, torch.tensor([z]), y).reshape(-1).numpy() * 255

    assert np.abs(np.array(out["first"]) - want(explorer.z, explorer.y)).max() <= TOLERANCE
    assert np.abs(np.array(out["followed"]) - want(new_z, explorer.y)).max() <= TOLERANCE
    assert np.abs(np.array(out["relabelled"]) - want(new_z, new_y)).max() <= TOLERANCE
    if conditional:
        assert np.abs(np.array(out["relabelled"]) - np.array(out["followed"])).max() > 50  # the class matters
    assert out["values"] == pytest.approx([new_z[2], new_z[5]], abs=0.006)  # the sliders moved too (step 0.01)
    explorer.set_state({"z": out["sent"][-1]})  # back in Python, as the comm would deliver it
    assert explorer.coordinates()[1] == pytest.approx(-2.0) and explorer.z[2] == pytest.approx(new_z[2])
    assert log["page_errors"] == [] and log["outside"] == []


HARNESS_PSI_JS = """async ([state, program, weights, newPsi, sliderPsi]) => {
  const mod = await import('/explorer.js');
  const bytes = (a) => Uint8Array.from(a);
  const handlers = {}, sent = [];
  state.codes = bytes(state.codes); state.code_labels = bytes(state.code_labels);
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; (handlers['change:' + k] || []).forEach((f) => f()); },
    save_changes: () => sent.push(state.truncation),
    on: (e, f) => { (handlers[e] = handlers[e] || []).push(f); }, off: () => {},
  };
  const weightsModel = { get: (k) => (k === 'program' ? program : new DataView(bytes(weights).buffer)) };
  const host = { getModel: async () => weightsModel };
  const el = document.getElementById('el');
  el.innerHTML = '';
  await mod.default.render({ model, el, host });
  const read = () => { const c = el.querySelector('canvas.gx-image');
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, k) => k % 4 === 0); };
  const psiSlider = el.querySelector('input[aria-label="truncation psi"]');
  const first = read();
  model.set('truncation', newPsi);  // a change from Python: the picture and the slider follow
  const followed = read(), sliderValue = parseFloat(psiSlider.value);
  psiSlider.value = String(sliderPsi); psiSlider.dispatchEvent(new Event('input'));
  const slid = read();
  return { first, followed, sliderValue, slid, sent, label: psiSlider.parentElement.textContent };
}"""


def test_truncation_slider_in_the_browser(browser_setup):
    """The view draws dec(psi z); psi follows Python and the slider sends it back."""
    model = shipped("gan_dcgan")
    z0 = torch.randn(64, generator=torch.Generator().manual_seed(8))
    explorer = gx.LatentExplorer(model, z=z0, directions=[0, 1], truncation=0.9)
    state = {k: (list(v) if isinstance(v, bytes) else v) for k, v in explorer.get_state().items()}
    log: dict = {}
    page = open_offline(browser_setup["browser"], log)
    page.goto(f"{browser_setup['url']}/book/harness.html")
    out = page.evaluate(HARNESS_PSI_JS, [state, explorer.decoder.program, list(explorer.decoder.weights), 0.3, 0.6])
    page.close()

    def want(psi):
        return gx.decode_with_module(model, psi * z0[None]).reshape(-1).numpy() * 255

    assert np.abs(np.array(out["first"]) - want(0.9)).max() <= TOLERANCE
    assert np.abs(np.array(out["followed"]) - want(0.3)).max() <= TOLERANCE
    assert np.abs(np.array(out["slid"]) - want(0.6)).max() <= TOLERANCE
    assert np.abs(np.array(out["followed"]) - np.array(out["first"])).max() > 50
    assert out["sliderValue"] == pytest.approx(0.3) and out["sent"] == [pytest.approx(0.6)]
    assert "truncation" in out["label"]
    explorer.set_state({"truncation": out["sent"][-1]})  # back in Python, as the comm would deliver it
    torch.testing.assert_close(explorer.decode(), gx.decode_with_module(model, 0.6 * z0[None]))
    assert log["page_errors"] == [] and log["outside"] == []


def test_without_scripts_the_precomputed_frames_show(browser_setup):
    log: dict = {}
    page = open_offline(browser_setup["browser"], log, java_script_enabled=False)
    page.goto(f"{browser_setup['url']}/book/explorer.html", wait_until="load")
    shown = page.evaluate(
        "() => [...document.querySelectorAll('.genimg-explorer-fallback img')]"
        ".map(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().height > 0)"
    )
    page.screenshot(path=str(ROOT / "_build" / "screenshot_explorer_noscript.png"))
    page.close()
    assert shown == [True] * 4
    assert log["outside"] == []
