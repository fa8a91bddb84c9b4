// The network of a seqtext language model in the page, from its export's weights.safetensors
// (docs/export.md): embedding → RNN/LSTM/GRU cells → projection → head, as seqtext/models.py computes
// it, one token at a time with its state, and text read with it from <bos> (the engine's reading.py).
// Used by keyboard.js; no library, no build step.
"use strict";

const MARK = "▁", UNK = 1, BOS = 2, EOS = 3;
const PY_WORD = "\\p{L}\\p{N}_"; // Python's \w (str.isalnum() or "_"): the keyboard's words and the n-gram's tokens
const RUST_WORD = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}"; // the tokenizer's \w (Rust regex)
const WHOLE_WORD = new RegExp(`^[${PY_WORD}]+$`, "u");
const WORD_CHAR = new RegExp(`^[${PY_WORD}]$`, "u");
const JOINS = new RegExp(`^[${PY_WORD}\\p{Mn}]$`, "u"); // continues a word: a tokenizer merges across it
const NGRAM_TOKENS = new RegExp(`[${PY_WORD}]+|[^${PY_WORD}\\s]`, "gu");
const WORD_PIECES = new RegExp(`${MARK}?[${RUST_WORD}]+|${MARK}?[^${RUST_WORD}${MARK}]|${MARK}`, "gu");

// --- files --------------------------------------------------------------------------------------
function readTensors(buffer) {
  // safetensors: an 8-byte little-endian header size, a JSON header, then the raw little-endian tensors
  const size = Number(new DataView(buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, size)));
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const bytes = buffer.slice(8 + size + info.data_offsets[0], 8 + size + info.data_offsets[1]); // aligned copy
    tensors[name] = { shape: info.shape, data: typedArray(info.dtype, bytes, name) };
  }
  return tensors;
}

function typedArray(dtype, bytes, name) {
  if (dtype === "F32") return new Float32Array(bytes);
  if (dtype === "I32") return new Int32Array(bytes);
  if (dtype === "U16") return new Uint16Array(bytes); // the sentence memory's ids
  if (dtype === "U8") return new Uint8Array(bytes);
  if (dtype === "F16") return Float32Array.from(new Uint16Array(bytes), half);
  throw new Error(`tensor ${name}: ${dtype} is not a type an export holds`);
}

function half(bits) {
  const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const lines = (tensor) => new TextDecoder().decode(tensor.data).split("\n"); // a word list: UTF-8 joined by \n

// --- the network (models.py: embedding → RNN/LSTM/GRU cells → projection → head) ----------------------
// Its matrix-vector products run in WebAssembly with 128-bit SIMD (affine.wat, assembled below), where
// the browser has it, about 4× plain JavaScript's speed; plain JavaScript otherwise (same results to
// float rounding).
const AFFINE_WASM = "AGFzbQEAAAABCgFgBn9/f39/fwADAgEABQMBAAEHEwIGbWVtb3J5AgAGYWZmaW5lAAAK6AEB5QEDBH8CewF9IAAhBwJAA0AgBiAETw0B/QwAAAAAAAAAAAAAAAAAAAAAIQr9DAAAAAAAAAAAAAAAAAAAAAAhCyAHIAVBAnRqIQkgAiEIAkADQCAHIAlPDQEgCiAH/QAEACAI/QAEAP3mAf3kASEKIAsgB/0ABBAgCP0ABBD95gH95AEhCyAHQSBqIQcgCEEgaiEIDAALCyAKIAv95AEhCiAK/R8AIAr9HwGSIAr9HwIgCv0fA5KSIQwgAQRAIAwgASAGQQJ0aioCAJIhDAsgAyAGQQJ0aiAMOAIAIAZBAWohBgwACwsL";

function affine(weight, bias, x, rows, cols, out) {
  for (let r = 0; r < rows; r++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, c = 0;
    const base = r * cols;
    for (; c + 3 < cols; c += 4) {
      s0 += weight[base + c] * x[c]; s1 += weight[base + c + 1] * x[c + 1];
      s2 += weight[base + c + 2] * x[c + 2]; s3 += weight[base + c + 3] * x[c + 3];
    }
    for (; c < cols; c++) s0 += weight[base + c] * x[c];
    out[r] = (bias ? bias[r] : 0) + (s0 + s1) + (s2 + s3);
  }
  return out;
}

function javascriptKernel(matrices) {
  return { name: "JavaScript", apply: (name, x) => { const m = matrices[name]; return affine(m.w, m.b, x, m.rows, m.cols, new Float64Array(m.rows)); } };
}

function wasmKernel(matrices) {
  // every matrix copied once into the module's memory, its rows padded with zeros to a multiple of 8
  const code = Uint8Array.from(atob(AFFINE_WASM), (c) => c.charCodeAt(0));
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(code)); // throws where WebAssembly is off
  const padded = (n) => Math.ceil(n / 8) * 8, placed = {};
  let end = 16, widest = 8;
  for (const [name, m] of Object.entries(matrices)) {
    const at = { w: end, b: 0, out: 0, rows: m.rows, cols: m.cols, stride: padded(m.cols) };
    end += 4 * m.rows * at.stride;
    if (m.b) { at.b = end; end += 4 * m.rows; }
    at.out = end; end += 4 * m.rows;
    widest = Math.max(widest, at.stride);
    placed[name] = at;
  }
  const x = end, pages = Math.ceil((x + 4 * widest) / 65536);
  exports.memory.grow(pages - exports.memory.buffer.byteLength / 65536);
  const f32 = new Float32Array(exports.memory.buffer);
  for (const [name, m] of Object.entries(matrices)) {
    const at = placed[name];
    for (let r = 0; r < m.rows; r++) f32.set(m.w.subarray(r * m.cols, (r + 1) * m.cols), at.w / 4 + r * at.stride);
    if (m.b) f32.set(m.b, at.b / 4);
  }
  return {
    name: "WebAssembly SIMD",
    apply(name, input) {
      const at = placed[name];
      f32.set(input, x / 4);
      f32.fill(0, x / 4 + at.cols, x / 4 + at.stride);
      exports.affine(at.w, at.b, x, at.out, at.rows, at.stride);
      return f32.slice(at.out / 4, at.out / 4 + at.rows);
    },
  };
}

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

class Network {
  constructor(tensors, shape, useWasm = true) {
    const w = (name) => { if (!tensors[name]) throw new Error(`weights.safetensors has no ${name}`); return tensors[name]; };
    const matrices = {}, add = (name, prefix, bias) => {
      const weight = w(`${prefix}weight${bias}`);
      matrices[name] = { w: weight.data, b: w(`${prefix}bias${bias}`).data, rows: weight.shape[0], cols: weight.shape[1] };
    };
    this.cell = shape.cell;
    this.hidden = shape.hidden_dim;
    this.gates = { lstm: 4, gru: 3, rnn: 1 }[shape.cell];
    const table = tensors["embed.table"] || w("embed.weight"); // a character-aware input: its precomputed table
    this.table = table.data;
    this.inputDim = table.shape[1];
    this.layers = shape.layers;
    for (let l = 0; l < shape.layers; l++) { add(`ih${l}`, "rnn.", `_ih_l${l}`); add(`hh${l}`, "rnn.", `_hh_l${l}`); }
    this.projected = Boolean(tensors["proj.weight"]);
    if (this.projected) add("proj", "proj.", "");
    add("head", "head.", "");
    this.kernel = null;
    if (useWasm) try { this.kernel = wasmKernel(matrices); } catch { this.kernel = null; } // no WebAssembly here
    this.kernel ||= javascriptKernel(matrices);
  }

  zeroState() {
    const zeros = () => Array.from({ length: this.layers }, () => new Float64Array(this.hidden));
    return { h: zeros(), c: this.cell === "lstm" ? zeros() : null };
  }

  step(id, state) {
    // one token from a state: the new state and the logits (V,)
    const H = this.hidden, next = { h: [], c: this.cell === "lstm" ? [] : null };
    let x = this.table.subarray(id * this.inputDim, (id + 1) * this.inputDim);
    for (let l = 0; l < this.layers; l++) {
      const h = state.h[l], fromInput = this.kernel.apply(`ih${l}`, x), fromState = this.kernel.apply(`hh${l}`, h);
      const out = new Float64Array(H);
      if (this.cell === "lstm") { // gates i f g o
        const c = new Float64Array(H), old = state.c[l];
        for (let j = 0; j < H; j++) {
          const i = fromInput[j] + fromState[j], f = fromInput[H + j] + fromState[H + j];
          const g = fromInput[2 * H + j] + fromState[2 * H + j], o = fromInput[3 * H + j] + fromState[3 * H + j];
          c[j] = sigmoid(f) * old[j] + sigmoid(i) * Math.tanh(g);
          out[j] = sigmoid(o) * Math.tanh(c[j]);
        }
        next.c.push(c);
      } else if (this.cell === "gru") { // gates r z n; n reads r · (W_hn h + b_hn)
        for (let j = 0; j < H; j++) {
          const r = sigmoid(fromInput[j] + fromState[j]), z = sigmoid(fromInput[H + j] + fromState[H + j]);
          const n = Math.tanh(fromInput[2 * H + j] + r * fromState[2 * H + j]);
          out[j] = (1 - z) * n + z * h[j];
        }
      } else {
        for (let j = 0; j < H; j++) out[j] = Math.tanh(fromInput[j] + fromState[j]);
      }
      next.h.push(out);
      x = out;
    }
    if (this.projected) x = this.kernel.apply("proj", x);
    return { state: next, logits: this.kernel.apply("head", x) };
  }
}

function softmax(logits, log) {
  const n = logits.length, out = new Float64Array(n);
  let max = -Infinity, total = 0;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (!Number.isFinite(max)) throw new Error("the model's output is not finite");
  for (let i = 0; i < n; i++) { out[i] = Math.exp(logits[i] - max); total += out[i]; }
  if (log) { const shift = max + Math.log(total); for (let i = 0; i < n; i++) out[i] = logits[i] - shift; }
  else for (let i = 0; i < n; i++) out[i] /= total;
  return out;
}

// --- reading (reading.py): the network after some text, from <bos>, with a cache keyed by the text -------
class Reader {
  constructor(network, vocab, wordLevel, cacheSize = 256) {
    Object.assign(this, { network, wordLevel, cacheSize, cache: new Map() });
    this.ids = new Map(vocab.map((token, i) => [token, i]));
    const { state, logits } = network.step(BOS, network.zeroState()); // a line starts from <bos>, zero state
    this.start = { state, dist: softmax(logits, !wordLevel) };
  }

  read(text) {
    const hit = this.cache.get(text);
    if (hit) { this.cache.delete(text); this.cache.set(text, hit); return hit; }
    let baseText = "", read = this.start;
    for (const [cached, value] of this.cache) {
      if (baseText.length < cached.length && cached.length < text.length && text.startsWith(cached) && this.splits(text, cached.length)) {
        baseText = cached; read = value;
      }
    }
    const ids = text === baseText ? [] : this.tokenIds(text.slice(baseText.length));
    if (!ids.length) return read;
    let { state } = read, logits = null;
    for (const id of ids) ({ state, logits } = this.network.step(id, state));
    read = { state, dist: softmax(logits, !this.wordLevel) };
    this.cache.set(text, read);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value);
    return read;
  }

  splits(text, at) {
    // true when the tokens of text[:at] are a prefix of those of text: never inside a word, nor a space's mark
    if (!this.wordLevel) return true;
    const before = text[at - 1], after = text[at];
    if (/[\uD800-\uDFFF]/.test(before + after)) return false;
    if (before === "\n" || after === "\n") return true;
    if (before === " " || before === MARK) return after === " " || after === MARK;
    return !(JOINS.test(before) && JOINS.test(after));
  }

  tokenIds(text) {
    // a newline (stream models) is <eos>; word level: the tokenizer's pieces; otherwise one token a character
    const ids = [];
    text.split("\n").forEach((line, n) => {
      if (n) ids.push(EOS);
      const pieces = this.wordLevel ? line.replaceAll(" ", MARK).match(WORD_PIECES) || [] : line;
      for (const piece of pieces) ids.push(this.ids.get(piece) ?? UNK);
    });
    return ids;
  }
}
