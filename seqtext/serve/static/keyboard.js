// The keyboard of `seqtext complete`, run in the page from a model's export (docs/export.md): the
// network's step (network.js) from weights.safetensors, the n-gram mix, the lexicon and the sentence memory
// from ngram.safetensors, lexicon.safetensors, memory.safetensors and keyboard.json, and the same ranking as the engine
// (seqtext/keyboard/: completion.py, reading.py, mixing.py, ngram.py, words.py), so that the page
// suggests what the server would. No library, no build step: one keystroke inside a word costs a
// prefix lookup, a finished word one step of the network.
"use strict";

// --- words (words.py) ---------------------------------------------------------------------------
function partialWord(typed) {
  // the trailing run of \w, scanned back from the end (a regex anchored at the end tries every position)
  let start = typed.length;
  while (start > 0) {
    const pair = start > 1 && /[\uDC00-\uDFFF]/.test(typed[start - 1]) ? 2 : 1;
    if (!WORD_CHAR.test(typed.slice(start - pair, start))) break;
    start -= pair;
  }
  return typed.slice(start);
}

const fold = (text) => text.normalize("NFD").replace(/\p{Mn}/gu, "").toLowerCase();
const isUpper = (s) => s === s.toUpperCase() && s !== s.toLowerCase();
const isLower = (s) => s === s.toLowerCase() && s !== s.toUpperCase();
const first = (s) => String.fromCodePoint(s.codePointAt(0));

function matchCase(word, typed) {
  if ([...typed].length > 1 && isUpper(typed)) return word.toUpperCase();
  if (typed && isUpper(first(typed)) && word && isLower(first(word))) return first(word).toUpperCase() + word.slice(first(word).length);
  return word;
}

function topK(n, from, to, valueOf) {
  // the n largest valueOf(i) for i in [from, to), best first, as [i, value]; equal values keep index order
  const best = [];
  for (let i = from; i < to; i++) {
    const v = valueOf(i);
    if (best.length === n && !(v > best[n - 1][1])) continue;
    let at = best.length;
    while (at > 0 && best[at - 1][1] < v) at--;
    best.splice(at, 0, [i, v]);
    if (best.length > n) best.pop();
  }
  return best;
}

class WordIndex {
  // words sorted by a key (the word, or folded), so the words with a key prefix are one range
  constructor(entries) { // [key, word, id]
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[2] - b[2]));
    this.keys = entries.map((e) => e[0]);
    this.words = entries.map((e) => e[1]);
    this.ids = Int32Array.from(entries, (e) => e[2]);
  }

  best(probs, prefix, n) {
    // the n most likely words whose key starts with prefix, best first; of equal float32 probabilities (the
    // engine's), the first in key order, as the engine keeps them
    let lo = 0, hi = this.keys.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.keys[mid] < prefix) lo = mid + 1; else hi = mid; }
    let end = lo;
    while (end < this.keys.length && this.keys[end].startsWith(prefix)) end++;
    const ids = this.ids, best = [];
    let worst = -Infinity;
    for (let i = lo; i < end; i++) {
      const v = Math.fround(probs[ids[i]]);
      if (best.length === n && !(v > worst)) continue;
      let at = best.length;
      while (at > 0 && best[at - 1][1] < v) at--;
      best.splice(at, 0, [i, v]);
      if (best.length > n) best.pop();
      worst = best[best.length - 1][1];
    }
    return best.map(([i, p]) => [this.words[i], p]);
  }
}

// --- the n-gram (ngram.py) and its mix with the network (mixing.py) ------------------------------------
class Ngram {
  constructor(tensors, order) {
    this.vocab = lines(tensors.vocab);
    this.ids = new Map(this.vocab.map((w, i) => [w, i]));
    this.unigram = tensors.unigram.data;
    this.order = order;
    this.tables = [];
    for (let n = 2; n <= order; n++) {
      const t = (name) => tensors[`order${n}.${name}`].data;
      const contexts = t("contexts"), rows = new Map();
      for (let r = 0; r < t("gamma").length; r++) rows.set(contexts.subarray(r * (n - 1), (r + 1) * (n - 1)).join(","), r);
      this.tables.push({ rows, gamma: t("gamma"), offsets: t("offsets"), words: t("words"), alpha: t("alpha") });
    }
  }

  history(line) {
    // the last order − 1 token ids of the line, from <s>; an unknown word is -1
    if (this.order === 1) return [];
    const tokens = ["<s>", ...(line.match(NGRAM_TOKENS) || [])].slice(-(this.order - 1));
    return tokens.map((t) => this.ids.get(t) ?? -1);
  }

  distAndOrder(history) {
    const p = Float64Array.from(this.unigram), V = p.length;
    let matched = 1;
    this.tables.forEach((table, i) => {
      const n = i + 2;
      if (history.length < n - 1) return;
      const row = table.rows.get(history.slice(history.length - n + 1).join(","));
      if (row === undefined) return; // an unseen context: all its mass is in the lower order
      const gamma = table.gamma[row];
      for (let j = 0; j < V; j++) p[j] *= gamma;
      for (let e = table.offsets[row]; e < table.offsets[row + 1]; e++) p[table.words[e]] += table.alpha[e];
      matched = n;
    });
    let total = 0;
    for (let j = 0; j < V; j++) total += p[j];
    for (let j = 0; j < V; j++) p[j] /= total; // alpha and gamma are 16-bit: renormalise their rounding
    return { dist: p, matched };
  }
}

class Memory {
  // the training lines as n-gram ids, sorted (memory.py): the lines that begin as the typed line are one range
  constructor(tensors, vocabSize, shape) {
    const ids = tensors.ids.data, offsets = tensors.offsets.data, counts = tensors.counts.data;
    this.lines = [];
    this.cumulative = new Float64Array(counts.length + 1);
    for (let i = 0; i < counts.length; i++) {
      this.lines.push(ids.subarray(offsets[i], offsets[i + 1]));
      this.cumulative[i + 1] = this.cumulative[i] + counts[i];
    }
    Object.assign(this, { counts, vocabSize, shape });
  }

  lowerBound(prefix) {
    let lo = 0, hi = this.lines.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (compareIds(this.lines[mid], prefix) < 0) lo = mid + 1; else hi = mid; }
    return lo;
  }

  nextTokens(line, ids) {
    // {bucket, total, follow: Map id → lines} for the line so far, or null (too short, no line, too many)
    const words = line.match(NGRAM_TOKENS) || [], shape = this.shape;
    if (words.length < shape.min_tokens) return null;
    const prefix = words.map((w) => ids.get(w) ?? -1);
    if (prefix.includes(-1)) return null;
    const lo = this.lowerBound(prefix), hi = this.lowerBound([...prefix, this.vocabSize]);
    if (lo === hi || hi - lo > shape.max_scan) return null;
    const follow = new Map(), at = prefix.length;
    for (let i = lo; i < hi; i++) {
      if (this.lines[i].length > at) follow.set(this.lines[i][at], (follow.get(this.lines[i][at]) || 0) + this.counts[i]);
    }
    const total = this.cumulative[hi] - this.cumulative[lo];
    const length = shape.lengths.filter((n) => at >= n).length - 1, many = shape.counts.filter((c) => total >= c).length - 1;
    return { bucket: length * shape.counts.length + many, total, follow };
  }
}

function compareIds(a, b) {
  // Python's order of tuples: the first differing id, else the shorter first
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

class Mixer {
  // the union of the n-gram's and the network's words (the n-gram's first), and the mixed distribution
  constructor(vocab, ngram, weights, lexicon, lexiconWeight, oovWeights = weights, memory = null, memoryWeights = []) {
    const modelWords = { false: new Map(), true: new Map() };
    vocab.forEach((token, i) => {
      const word = token.startsWith(MARK) ? token.slice(MARK.length) : token;
      if (WHOLE_WORD.test(word)) modelWords[token.startsWith(MARK)].set(word, i);
    });
    const words = ngram.vocab.filter((w) => WHOLE_WORD.test(w)), known = new Set(words);
    const fromModel = [...new Set([...modelWords.false.keys(), ...modelWords.true.keys()])].filter((w) => !known.has(w));
    words.push(...fromModel.sort(byCodePoints));
    let novel = [];
    if (lexicon) {
      words.forEach((w) => known.add(w));
      novel = lexicon.words.map((w, i) => [w, lexicon.probs[i]]).filter(([w]) => !known.has(w));
      words.push(...novel.map(([w]) => w));
    }
    this.lexicon = new Float64Array(words.length);
    const share = novel.reduce((sum, [, p]) => sum + p, 0);
    novel.forEach(([, p], i) => { this.lexicon[words.length - novel.length + i] = p / Math.max(share, 1e-30); });
    this.lexiconWeight = lexicon ? lexiconWeight : 0;
    Object.assign(this, { words, ngram, weights, oovWeights, memory, memoryWeights, vocabSize: vocab.length, cache: new Map() });
    this.ngramIds = Int32Array.from(words, (w) => ngram.ids.get(w) ?? -1);
    this.unionOf = new Int32Array(ngram.vocab.length).fill(-1); // n-gram id → union index
    this.ngramIds.forEach((g, u) => { if (g >= 0) this.unionOf[g] = u; });
    this.modelIds = { false: Int32Array.from(words, (w) => modelWords.false.get(w) ?? -1), true: Int32Array.from(words, (w) => modelWords.true.get(w) ?? -1) };
  }

  mix(probs, text, marked) {
    const key = `${marked}\u0000${text}`, hit = this.cache.get(key);
    if (hit && hit.probs === probs) return hit.mixed;
    const { dist, matched } = this.ngram.distAndOrder(this.ngram.history(text.slice(text.lastIndexOf("\n") + 1)));
    const at = Math.min(matched, this.weights.length) - 1, weight = this.weights[at], oov = this.oovWeights[at];
    const ids = this.modelIds[marked];
    const U = this.words.length, ngramIds = this.ngramIds, fromNgram = new Float64Array(U), mixed = new Float64Array(U);
    let lacked = 0;
    for (let u = 0; u < U; u++) {
      const g = ngramIds[u];
      fromNgram[u] = g < 0 ? 0 : dist[g];
      if (ids[u] < 0) lacked += fromNgram[u];
    }
    // a word the network lacks shares its <unk> probability, in proportion to the n-gram's
    const unk = lacked > 0 ? probs[UNK] / lacked : 0, mu = this.lexiconWeight, lexicon = this.lexicon;
    // the words it lacks may take a share of their own: renormalise by 1 + (λ' − λ)(P_ngram − P_model of them)
    const scale = 1 / (1 + (oov - weight) * (lacked - (lacked > 0 ? probs[UNK] : 0)));
    for (let u = 0; u < U; u++) {
      const model = ids[u] < 0 ? unk * fromNgram[u] : probs[ids[u]], share = ids[u] < 0 ? oov : weight;
      mixed[u] = ((1 - share) * model + share * fromNgram[u]) * (oov === weight ? 1 : scale);
    }
    const found = this.memory ? this.memory.nextTokens(text.slice(text.lastIndexOf("\n") + 1), this.ngram.ids) : null;
    const nu = found ? this.memoryWeights[found.bucket] : 0;
    if (nu) { // the training lines that begin as this one: their next words take a share ν of the mix
      for (let u = 0; u < U; u++) mixed[u] *= 1 - nu;
      for (const [g, lines] of found.follow) if (this.unionOf[g] >= 0) mixed[this.unionOf[g]] += nu * lines / found.total;
    }
    if (mu) for (let u = 0; u < U; u++) mixed[u] = (1 - mu) * mixed[u] + mu * lexicon[u];
    this.cache.set(key, { probs, mixed });
    if (this.cache.size > 16) this.cache.delete(this.cache.keys().next().value);
    return mixed;
  }
}

function byCodePoints(a, b) {
  // Python's order of strings (by code point), which differs from JavaScript's (UTF-16) beyond U+FFFF
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0) - y[i].codePointAt(0);
  }
  return x.length - y.length;
}

// --- the keyboard (completion.py) ---------------------------------------------------------------
class PageKeyboard {
  // files: keyboard.json and vocab.json (parsed), weights.safetensors, ngram.safetensors and
  // lexicon.safetensors (ArrayBuffers; the last two when keyboard.json names them); wasm: false runs the
  // network in plain JavaScript
  constructor(files, { wasm = true } = {}) {
    const shape = files["keyboard.json"], vocab = files["vocab.json"].tokens;
    this.shape = shape;
    this.wordLevel = shape.level === "word";
    this.stream = shape.sample_by === "stream";
    this.reader = new Reader(new Network(readTensors(files["weights.safetensors"]), shape, wasm), vocab, this.wordLevel);
    const words = [];
    vocab.forEach((token, i) => { if (WHOLE_WORD.test(token.startsWith(MARK) ? token.slice(MARK.length) : token)) words.push([token, i]); });
    if (!words.length) throw new Error("this model has no words in its vocabulary; it cannot complete");
    if (this.wordLevel) {
      this.exact = {}; this.folded = {};
      for (const marked of [false, true]) {
        const chosen = words.filter(([t]) => t.startsWith(MARK) === marked).map(([t, i]) => [t.replace(/^▁+/u, ""), i]);
        this.exact[marked] = new WordIndex(chosen.map(([w, i]) => [w, w, i]));
        this.folded[marked] = new WordIndex(chosen.map(([w, i]) => [fold(w), w, i]));
      }
    } else {
      const inWords = new Set(words.map(([, i]) => i));
      this.wordIds = Int32Array.from(words.map(([, i]) => i).sort((a, b) => a - b));
      this.wordChars = Array.from(this.wordIds, (i) => vocab[i]);
      this.ends = vocab.map((_, i) => i).filter((i) => i === EOS || (i > EOS && !inWords.has(i)));
    }
    this.mixer = null;
    if (this.wordLevel && shape.ngram) {
      const ngram = new Ngram(readTensors(files[shape.ngram.file]), shape.ngram.order);
      let lexicon = null;
      if (shape.lexicon) {
        const tensors = readTensors(files[shape.lexicon.file]);
        lexicon = { words: lines(tensors.words), probs: tensors.probs.data };
      }
      const memory = shape.memory ? new Memory(readTensors(files[shape.memory.file]), ngram.vocab.length, shape.memory) : null;
      this.mixer = new Mixer(vocab, ngram, shape.ngram.weights, lexicon, shape.lexicon ? shape.lexicon.weight : 0,
        shape.ngram.oov_weights || shape.ngram.weights, memory, shape.memory ? shape.memory.weights : []);
      const union = this.mixer.words.map((w, i) => [w, w, i]);
      const exact = new WordIndex(union), folded = new WordIndex(this.mixer.words.map((w, i) => [fold(w), w, i]));
      this.exact = { false: exact, true: exact };
      this.folded = { false: folded, true: folded };
    }
  }

  suggest(typed, k = 3) {
    // up to k whole words for the word being typed at the end of `typed`, best first: [{word, prob}]
    typed = typed.normalize("NFC");
    if (!this.stream) typed = typed.slice(typed.lastIndexOf("\n") + 1); // a line model reads each line from <bos>
    const partial = partialWord(typed), context = typed.slice(0, typed.length - partial.length);
    const marked = this.wordLevel && context.endsWith(" "); // the next word's token carries the space mark
    if (!this.wordLevel) return this.beamSearch(this.reader.read(typed), partial, k);
    let probs = this.reader.read(marked ? context.slice(0, -1) : context).dist;
    if (this.mixer) probs = this.mixer.mix(probs, context, marked);
    return this.restrict(probs, partial, marked, k);
  }

  restrict(probs, partial, marked, k) {
    const scores = new Map(); // shown word → its probability, discounted when found only by folding
    for (const [word, p] of this.exact[marked].best(probs, partial, k + 1)) {
      if (word !== partial) scores.set(word, p); // what is already typed is no suggestion
    }
    // ignoring accents and case: k exact words can outrank at most k + 1 of the 2k + 1 best folded ones
    for (const [word, p] of partial ? this.folded[marked].best(probs, fold(partial), 2 * k + 1) : []) {
      if (word.startsWith(partial)) continue;
      const shown = matchCase(word, partial);
      scores.set(shown, (scores.get(shown) || 0) + this.shape.inexact_discount * p);
    }
    const ranked = [...scores].sort((a, b) => b[1] - a[1] || byCodePoints(a[0], b[0])).slice(0, k);
    return ranked.map(([word, prob]) => ({ word, prob }));
  }

  beamSearch(start, partial, k) {
    // extend the partial word character by character until a word boundary; keep the k best words
    const network = this.reader.network, W = this.wordIds.length, done = new Map();
    let beams = [{ text: "", score: 0, logp: start.dist, state: start.state }];
    for (let step = 0; step <= this.shape.char_max_chars; step++) {
      for (const beam of beams) {
        let max = -Infinity, total = 0;
        for (const i of this.ends) max = Math.max(max, beam.logp[i]);
        for (const i of this.ends) total += Math.exp(beam.logp[i] - max);
        if (beam.text) done.set(partial + beam.text, beam.score + max + Math.log(total)); // the word ends here
      }
      const bar = done.size >= k ? [...done.values()].sort((a, b) => b - a)[k - 1] : -Infinity;
      const longer = topK(Math.min(this.shape.char_beam, beams.length * W), 0, beams.length * W,
        (j) => beams[Math.floor(j / W)].score + beams[Math.floor(j / W)].logp[this.wordIds[j % W]]);
      const kept = longer.filter(([, v]) => v > bar); // a longer word can only be less likely than its beam
      if (step === this.shape.char_max_chars || !kept.length) break;
      beams = kept.map(([j, score]) => {
        const beam = beams[Math.floor(j / W)], c = j % W;
        const { state, logits } = network.step(this.wordIds[c], beam.state);
        return { text: beam.text + this.wordChars[c], score, logp: softmax(logits, true), state };
      });
    }
    const ranked = [...done].sort((a, b) => b[1] - a[1] || byCodePoints(a[0], b[0])).slice(0, k);
    return ranked.map(([word, score]) => ({ word, prob: Math.exp(score) }));
  }
}

async function loadPageKeyboard(fetchFile, options = {}) {
  // fetchFile(name) → a Response for one file of the model's export
  const json = async (name) => (await fetchFile(name)).json();
  const buffer = async (name) => (await fetchFile(name)).arrayBuffer();
  const files = { "keyboard.json": await json("keyboard.json") };
  const shape = files["keyboard.json"];
  if (shape.format !== "seqtext-export" || shape.version > 2 || shape.kind !== "lm") {
    throw new Error("keyboard.json is not a seqtext language model's export this page reads");
  }
  const wanted = ["vocab.json", "weights.safetensors", shape.ngram?.file, shape.lexicon?.file, shape.memory?.file].filter(Boolean);
  const loaded = await Promise.all(wanted.map((name) => (name.endsWith(".json") ? json(name) : buffer(name))));
  wanted.forEach((name, i) => { files[name] = loaded[i]; });
  return new PageKeyboard(files, options);
}
