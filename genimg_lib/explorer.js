// The latent explorer's front end (genimg_lib/explorer.py): an anywidget ESM module.
//
// 1. An interpreter of exported decoder programs (format "genimg-decoder/1", written
//    down in CONTRIBUTING.md): float16 weights, a list of layers, one input vector
//    [z, onehot(y)] -> one image (C, H, W) in [0, 1]. `run_program` in explorer.py
//    is the same computation in PyTorch.
// 2. The view: sliders and a 2-D pad move z (and an optional slider the truncation psi,
//    which scales z before decoding); every input event decodes and draws.
// No network, no dependency: the page's widget manager loads this source inline.

const FORMAT = "genimg-decoder/1";

/** Little-endian float16 bytes -> Float32Array. */
export function float16ToFloat32(bytes) {
  const n = bytes.length >> 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = bytes[2 * i] | (bytes[2 * i + 1] << 8);
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) out[i] = sign * m * 5.960464477539063e-8; // subnormal: m * 2^-24
    else if (e === 31) out[i] = m ? NaN : sign * Infinity;
    else out[i] = sign * (1 + m / 1024) * Math.pow(2, e - 15);
  }
  return out;
}

/** Whatever a widget model holds for a Bytes trait (DataView, ArrayBuffer, typed array) -> Uint8Array. */
export function asBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (v && v.buffer instanceof ArrayBuffer) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new Error(`genimg explorer: expected bytes, got ${Object.prototype.toString.call(v)}`);
}

const prod = (a) => a.reduce((x, y) => x * y, 1);
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Compile a program and its weights into decode(input: Float32Array) -> Float32Array (C*H*W).
 * The returned array is reused by the next call: copy it or draw it at once.
 */
export function compileProgram(program, weightBytes) {
  if (!program || program.format !== FORMAT) {
    throw new Error(`genimg explorer: expected a program of format ${FORMAT}, got ${program && program.format}`);
  }
  if (program.dtype !== "float16" || program.byte_order !== "little") {
    throw new Error(`genimg explorer: weights must be little-endian float16, got ${program.dtype} ${program.byte_order}`);
  }
  const flat = float16ToFloat32(asBytes(weightBytes));
  const T = {};
  for (const t of program.tensors) {
    const n = prod(t.shape);
    if (t.offset + n > flat.length) throw new Error(`genimg explorer: tensor ${t.name} runs past the weights`);
    T[t.name] = flat.subarray(t.offset, t.offset + n);
  }
  const inDim = program.z_dim + program.num_classes;
  let shape = [inDim];
  const steps = [];
  for (const L of program.layers) {
    if (!same(L.in_shape, shape)) {
      throw new Error(`genimg explorer: layer ${L.op} expects ${L.in_shape} but receives ${shape}`);
    }
    const out = new Float32Array(prod(L.out_shape));
    steps.push(makeStep(L, T, out));
    shape = L.out_shape;
  }
  if (!same(shape, program.output_shape)) throw new Error("genimg explorer: the layers do not end in output_shape");
  return function decode(input) {
    if (input.length !== inDim) throw new Error(`genimg explorer: input of length ${inDim} expected, got ${input.length}`);
    let x = input;
    for (const step of steps) x = step(x);
    return x;
  };
}

/**
 * The decoder's input [psi * z, onehot(y)], written into `out` (length zDim + K) and returned.
 * psi, the truncation in (0, 1], pulls the code toward the prior's centre: the image is dec(psi z).
 */
export function decoderInput(out, z, zDim, K, y, psi) {
  for (let i = 0; i < zDim; i++) out[i] = psi * z[i];
  if (K > 0) { out.fill(0, zDim); out[zDim + y] = 1; }
  return out;
}

/** A model's truncation psi: a number in (0, 1], or 1 (no truncation) for anything else. */
function truncationOf(model) {
  const v = model.get("truncation");
  return typeof v === "number" && v > 0 && v <= 1 ? v : 1;
}

function tensor(T, name, n) {
  const t = T[name];
  if (!t || t.length !== n) throw new Error(`genimg explorer: tensor ${name} missing or of the wrong size`);
  return t;
}

function makeStep(L, T, out) {
  const n = out.length;
  switch (L.op) {
    case "linear": {
      const nIn = L.in_shape[0], nOut = L.out_shape[0];
      const W = tensor(T, L.weight, nOut * nIn), b = tensor(T, L.bias, nOut);
      return (x) => {
        for (let o = 0, r = 0; o < nOut; o++, r += nIn) {
          let s = b[o];
          for (let i = 0; i < nIn; i++) s += W[r + i] * x[i];
          out[o] = s;
        }
        return out;
      };
    }
    case "conv2d": {
      const [Ci, H, Wd] = L.in_shape, [Co, Ho, Wo] = L.out_shape;
      const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding;
      const W = tensor(T, L.weight, Co * Ci * kh * kw), b = tensor(T, L.bias, Co);
      return (x) => {
        for (let co = 0; co < Co; co++) out.fill(b[co], co * Ho * Wo, (co + 1) * Ho * Wo);
        for (let co = 0; co < Co; co++) for (let ci = 0; ci < Ci; ci++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
          const w = W[((co * Ci + ci) * kh + i) * kw + j];
          for (let oh = 0; oh < Ho; oh++) {
            const ih = oh * sh - ph + i;
            if (ih < 0 || ih >= H) continue;
            const xo = (ci * H + ih) * Wd, oo = (co * Ho + oh) * Wo;
            for (let ow = 0; ow < Wo; ow++) {
              const iw = ow * sw - pw + j;
              if (iw >= 0 && iw < Wd) out[oo + ow] += w * x[xo + iw];
            }
          }
        }
        return out;
      };
    }
    case "conv_transpose2d": {
      // out[co, ih*s - p + i, iw*s - p + j] += x[ci, ih, iw] * W[ci, co, i, j].
      // The weights are reordered once to (i, j, ci, co) and the sums kept channels-last
      // (oh, ow, co), so that the innermost loop runs over co through contiguous memory.
      const [Ci, H, Wd] = L.in_shape, [Co, Ho, Wo] = L.out_shape;
      const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding;
      const W = tensor(T, L.weight, Ci * Co * kh * kw), b = tensor(T, L.bias, Co);
      const Wt = new Float32Array(W.length);
      for (let ci = 0; ci < Ci; ci++) for (let co = 0; co < Co; co++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
        Wt[((i * kw + j) * Ci + ci) * Co + co] = W[((ci * Co + co) * kh + i) * kw + j];
      }
      const acc = new Float32Array(Ho * Wo * Co), plane = Ho * Wo;
      return (x) => {
        for (let p = 0; p < plane; p++) acc.set(b, p * Co);
        for (let ci = 0; ci < Ci; ci++) for (let ih = 0; ih < H; ih++) for (let iw = 0; iw < Wd; iw++) {
          const v = x[(ci * H + ih) * Wd + iw];
          if (v === 0) continue; // after a ReLU about half the inputs are zero
          for (let i = 0; i < kh; i++) {
            const oh = ih * sh - ph + i;
            if (oh < 0 || oh >= Ho) continue;
            for (let j = 0; j < kw; j++) {
              const ow = iw * sw - pw + j;
              if (ow < 0 || ow >= Wo) continue;
              const a = (oh * Wo + ow) * Co, w = ((i * kw + j) * Ci + ci) * Co;
              for (let co = 0; co < Co; co++) acc[a + co] += v * Wt[w + co];
            }
          }
        }
        for (let co = 0; co < Co; co++) for (let p = 0; p < plane; p++) out[co * plane + p] = acc[p * Co + co];
        return out;
      };
    }
    case "reshape":
      return (x) => { out.set(x); return out; };
    case "relu":
      return (x) => { for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] : 0; return out; };
    case "leaky_relu": {
      const a = L.slope;
      return (x) => { for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] : a * x[i]; return out; };
    }
    case "tanh":
      return (x) => { for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]); return out; };
    case "sigmoid":
      return (x) => { for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-x[i])); return out; };
    case "affine": {
      const s = L.scale, t = L.shift;
      return (x) => { for (let i = 0; i < n; i++) out[i] = s * x[i] + t; return out; };
    }
    case "channel_affine": {
      const C = L.in_shape[0], per = n / C;
      const s = tensor(T, L.scale, C), t = tensor(T, L.shift, C);
      return (x) => { for (let i = 0; i < n; i++) { const c = (i / per) | 0; out[i] = s[c] * x[i] + t[c]; } return out; };
    }
    case "upsample_nearest": {
      const [C, H, Wd] = L.in_shape, f = L.scale, Ho = H * f, Wo = Wd * f;
      return (x) => {
        for (let c = 0; c < C; c++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
          out[(c * Ho + oh) * Wo + ow] = x[(c * H + ((oh / f) | 0)) * Wd + ((ow / f) | 0)];
        }
        return out;
      };
    }
    default:
      throw new Error(`genimg explorer: unknown layer ${L.op}; update genimg_lib/explorer.js`);
  }
}

// One compiled decoder per weights object, shared by every explorer on the page (each
// anywidget instance imports its own copy of this module, so the cache lives on window).
const CACHE_KEY = "__genimg_explorer_decoders__";
function sharedDecoder(program, weights) {
  const cache = (globalThis[CACHE_KEY] = globalThis[CACHE_KEY] || new WeakMap());
  let d = cache.get(weights);
  if (!d) {
    d = compileProgram(program, weights);
    cache.set(weights, d);
  }
  return d;
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

async function weightsModel(model, host) {
  const ref = model.get("decoder");
  if (host && host.getModel) return host.getModel(ref);
  return model.widget_manager.get_model(String(ref).replace(/^anywidget:/, ""));
}

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function render({ model, el, host }) {
  const wm = await weightsModel(model, host);
  const program = wm.get("program");
  const decode = sharedDecoder(program, wm.get("weights"));
  const [C, H, W] = program.output_shape;
  const zDim = program.z_dim, K = program.num_classes;
  const input = new Float32Array(zDim + K);

  const D = model.get("directions"), P = model.get("inverse"), origin = model.get("origin");
  const names = model.get("names"), pad = model.get("pad"), extent = model.get("extent");
  let z = Float64Array.from(model.get("z"));
  let psi = truncationOf(model);
  let pushing = false;

  const coord = (k) => { let s = 0; for (let i = 0; i < zDim; i++) s += P[k][i] * (z[i] - origin[i]); return s; };
  const setCoord = (k, v) => { const d = v - coord(k); for (let i = 0; i < zDim; i++) z[i] += d * D[k][i]; };

  // --- the layout: [pad] [image], then one slider per direction
  const root = h("div", { class: "genimg-explorer" });
  const title = model.get("title");
  if (title) root.append(h("div", { style: "font-weight:600;margin-bottom:4px" }, title));
  const row = h("div", { class: "gx-row" });
  const scale = model.get("scale");
  const image = h("canvas", { class: "gx-image", width: W, height: H, style: `width:${W * scale}px;height:${H * scale}px` });
  const note = h("div", { class: "gx-note" }, "");
  const imageBox = h("div", {}, image, note);
  const ctx = image.getContext("2d");
  const pixels = ctx.createImageData(W, H);

  let padCanvas = null, padBg = null, padCtx = null;
  const padSize = 200, dpr = Math.max(1, Math.round(globalThis.devicePixelRatio || 1));
  // pad coordinates: [-extent, extent] spans the pad less a margin that keeps the marker visible
  if (pad.length === 2) {
    padCanvas = h("canvas", {
      class: "gx-pad", width: padSize * dpr, height: padSize * dpr, tabindex: "0",
      style: `width:${padSize}px;height:${padSize}px`,
      "aria-label": `2-D pad: ${names[pad[0]]} across, ${names[pad[1]]} up; arrow keys move it`,
    });
    padCtx = padCanvas.getContext("2d");
    padBg = drawPadBackground(model, extent, padSize, dpr);
    const padBox = h("div", {}, padCanvas, h("div", { class: "gx-note" }, `${names[pad[0]]} \u2192, ${names[pad[1]]} \u2191`));
    const labels = asBytes(model.get("code_labels") || new Uint8Array(0));
    if (labels.length) {
      const legend = h("div", { class: "gx-note gx-legend" });
      for (const c of [...new Set(labels)].sort((a, b) => a - b)) {
        legend.append(h("span", { style: `background:${PALETTE[c % 10]}` }, String(c)));
      }
      padBox.append(legend);
    }
    row.append(padBox);
  }
  row.append(imageBox);
  root.append(row);

  let select = null;
  if (K > 0) {
    select = h("select", { "aria-label": "class y" });
    for (let c = 0; c < K; c++) select.append(h("option", { value: String(c) }, `class ${c}`));
    select.value = String(model.get("y"));
    root.append(h("div", { class: "gx-slider" }, h("label", {}, "class y"), select, h("span")));
  }
  const sliders = [], readouts = [];
  for (let k = 0; k < D.length; k++) {
    const input_ = h("input", { type: "range", min: String(-extent), max: String(extent), step: "0.01", "aria-label": names[k] });
    const out = h("span", {}, "");
    input_.addEventListener("input", () => { setCoord(k, parseFloat(input_.value)); redraw(k); push(); });
    sliders.push(input_);
    readouts.push(out);
    root.append(h("div", { class: "gx-slider" }, h("label", {}, names[k]), input_, out));
  }
  let psiSlider = null, psiOut = null;
  if (model.get("truncation_slider")) {
    psiSlider = h("input", { type: "range", min: "0.01", max: "1", step: "0.01", "aria-label": "truncation psi" });
    psiSlider.value = String(psi);
    psiOut = h("span", {}, psi.toFixed(2));
    psiSlider.addEventListener("input", () => {
      psi = parseFloat(psiSlider.value);
      redraw();
      pushing = true;
      model.set("truncation", psi);
      model.save_changes();
      pushing = false;
    });
    root.append(h("div", { class: "gx-slider", title: "the image is decoded from psi * z" },
      h("label", {}, "truncation \u03c8"), psiSlider, psiOut));
  }
  el.append(root);

  function draw() {
    const t0 = performance.now();
    decoderInput(input, z, zDim, K, model.get("y"), psi);
    const x = decode(input);
    const data = pixels.data, hw = H * W;
    for (let p = 0; p < hw; p++) {
      const r = x[p] * 255;
      const g = C === 3 ? x[hw + p] * 255 : r, b = C === 3 ? x[2 * hw + p] * 255 : r;
      data[4 * p] = r; data[4 * p + 1] = g; data[4 * p + 2] = b; data[4 * p + 3] = 255;
    }
    ctx.putImageData(pixels, 0, 0);
    const ms = performance.now() - t0;
    root.dataset.decodeMs = ms.toFixed(3);
    note.textContent = `decoded in your browser in ${ms < 1 ? ms.toFixed(2) : ms.toFixed(1)} ms`;
  }

  function drawPad() {
    if (!padCanvas) return;
    const s = padSize * dpr;
    padCtx.clearRect(0, 0, s, s);
    padCtx.drawImage(padBg, 0, 0);
    const [px, py] = toPad(coord(pad[0]), coord(pad[1]), extent, s);
    padCtx.strokeStyle = "#000";
    padCtx.lineWidth = 2 * dpr;
    padCtx.beginPath();
    padCtx.arc(px, py, 6 * dpr, 0, 2 * Math.PI);
    padCtx.stroke();
  }

  function redraw(skip = -1) {
    draw();
    drawPad();
    root.dataset.z = JSON.stringify(Array.from(z));
    for (let k = 0; k < D.length; k++) {
      const c = coord(k);
      if (k !== skip) sliders[k].value = String(c);
      readouts[k].textContent = c.toFixed(2);
    }
    root.dataset.truncation = String(psi);
    if (psiOut) psiOut.textContent = psi.toFixed(2);
  }

  function push() {
    pushing = true;
    model.set("z", Array.from(z));
    model.save_changes();
    pushing = false;
  }

  if (padCanvas) {
    const moveTo = (ev) => {
      const r = padCanvas.getBoundingClientRect(), w = padCanvas.clientWidth, m = PAD_MARGIN * w;
      const x = ev.clientX - r.left - padCanvas.clientLeft, y = ev.clientY - r.top - padCanvas.clientTop;
      const u = ((x - m) / (w - 2 * m)) * 2 - 1, v = 1 - ((y - m) / (padCanvas.clientHeight - 2 * m)) * 2;
      setCoord(pad[0], Math.max(-1, Math.min(1, u)) * extent);
      setCoord(pad[1], Math.max(-1, Math.min(1, v)) * extent);
      redraw();
      push();
    };
    let dragging = false;
    padCanvas.addEventListener("pointerdown", (ev) => { dragging = true; padCanvas.setPointerCapture(ev.pointerId); moveTo(ev); });
    padCanvas.addEventListener("pointermove", (ev) => { if (dragging) moveTo(ev); });
    padCanvas.addEventListener("pointerup", () => { dragging = false; });
    padCanvas.addEventListener("pointercancel", () => { dragging = false; });
    padCanvas.addEventListener("keydown", (ev) => {
      const step = extent / 30, keys = { ArrowLeft: [0, -step], ArrowRight: [0, step], ArrowDown: [1, -step], ArrowUp: [1, step] };
      if (!(ev.key in keys)) return;
      ev.preventDefault();
      const [a, d] = keys[ev.key];
      setCoord(pad[a], Math.max(-extent, Math.min(extent, coord(pad[a]) + d)));
      redraw();
      push();
    });
  }
  if (select) {
    select.addEventListener("change", () => { model.set("y", parseInt(select.value, 10)); model.save_changes(); });
  }
  const onZ = () => { if (!pushing) { z = Float64Array.from(model.get("z")); redraw(); } };
  const onY = () => { if (select) select.value = String(model.get("y")); redraw(); };
  const onPsi = () => {
    if (pushing) return;
    psi = truncationOf(model);
    if (psiSlider) psiSlider.value = String(psi);
    redraw();
  };
  model.on("change:z", onZ);
  model.on("change:y", onY);
  model.on("change:truncation", onPsi);
  redraw();
  return () => { model.off("change:z", onZ); model.off("change:y", onY); model.off("change:truncation", onPsi); };
}

// The pad's margin, as a fraction of its width, and the map from coordinates to pad pixels.
export const PAD_MARGIN = 0.04;
function toPad(u, v, extent, s) {
  const m = PAD_MARGIN * s, inner = s - 2 * m;
  return [m + ((u / extent + 1) / 2) * inner, m + ((1 - v / extent) / 2) * inner];
}

function drawPadBackground(model, extent, size, dpr) {
  const s = size * dpr;
  const bg = document.createElement("canvas");
  bg.width = s; bg.height = s;
  const g = bg.getContext("2d");
  g.fillStyle = "#fafafa"; g.fillRect(0, 0, s, s);
  g.strokeStyle = "#ddd"; g.lineWidth = dpr;
  for (let t = -Math.floor(extent); t <= extent; t++) {
    const [p, q] = toPad(t, t, extent, s);
    g.beginPath(); g.moveTo(p, 0); g.lineTo(p, s); g.moveTo(0, q); g.lineTo(s, q); g.stroke();
  }
  const xy = asBytes(model.get("codes") || new Uint8Array(0));
  const labels = asBytes(model.get("code_labels") || new Uint8Array(0));
  const pts = float16ToFloat32(xy);
  g.globalAlpha = 0.55;
  for (let i = 0; i < pts.length / 2; i++) {
    const [px, py] = toPad(pts[2 * i], pts[2 * i + 1], extent, s);
    g.fillStyle = labels.length ? PALETTE[labels[i] % 10] : "#555";
    g.fillRect(px - 1.5 * dpr, py - 1.5 * dpr, 3 * dpr, 3 * dpr);
  }
  g.globalAlpha = 1;
  return bg;
}

export default { render };
