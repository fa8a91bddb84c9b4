// The seqtext page: keyboard suggestions, sentiment and streamed generation over the /v1/ API; the
// keyboard also runs in the page (keyboard.js) from the model's export. Plain JavaScript, no build
// step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const PARTIAL = /[\p{L}\p{N}_]*$/u; // the word being typed: its trailing run of \w, as the server reads it
let apiKey = sessionStorage.getItem("seqtext-key") || "";

class ApiError extends Error {}

async function api(path, body, signal) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST", headers, signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) $("key-form").hidden = false;
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    throw new ApiError(answer?.error?.message || `${response.status} ${response.statusText}`);
  }
  return response;
}

// Keeps at most one request in flight per panel, always for the latest input: a fast typist
// never queues stale requests, and an answer for old text is never shown.
function latest(run) {
  let busy = false, pending = null;
  return function ask(input) {
    if (busy) { pending = { input }; return; }
    busy = true;
    run(input).finally(() => {
      busy = false;
      if (pending) { const next = pending; pending = null; ask(next.input); }
    });
  };
}

function showPanel(name, models) {
  const panel = $(`${name}-panel`), select = $(`${name}-model`);
  panel.querySelector(".unavailable").hidden = models.length > 0;
  panel.querySelector(".available").hidden = models.length === 0;
  select.replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  select.hidden = models.length < 2;
}

// --- keyboard ---------------------------------------------------------------------------------
const text = $("text");
let shown = [], shownProbs = [], askedFor = null;

let where = "server"; // where suggestions come from: "server" (/v1/complete) or "page" (keyboard.js)
const pageKeyboards = new Map(); // model name → Promise of its PageKeyboard, loaded once
const readyKeyboards = new Map(); // model name → its PageKeyboard, once loaded
const inPageLatencies = []; // ms per keystroke in the page: from the keystroke to its suggestions shown

const suggest = latest(async (typed) => {
  try {
    const answer = await (await api("/v1/complete", { model: $("keyboard-model").value, text: typed, k: 3 })).json();
    if (text.value.slice(0, text.selectionStart) !== typed || where !== "server") return; // moved on meanwhile
    show(answer.suggestions, typed);
  } catch (error) { showError($("suggestions"), error); }
});

function pageKeyboard(model) {
  if (!pageKeyboards.has(model)) {
    const status = $("page-status");
    status.hidden = false;
    status.textContent = `Loading ${model} into the page…`;
    const started = performance.now();
    const fetchFile = (name) => api(`/v1/models/${encodeURIComponent(model)}/export/${name}`);
    const loading = loadPageKeyboard(fetchFile).then((keyboard) => {
      keyboard.loadSeconds = (performance.now() - started) / 1000;
      readyKeyboards.set(model, keyboard);
      return keyboard;
    });
    loading.catch(() => pageKeyboards.delete(model)); // a failed load is tried again on the next keystroke
    pageKeyboards.set(model, loading);
  }
  return pageKeyboards.get(model);
}

async function suggestInPage(typed, started) {
  const model = $("keyboard-model").value;
  let keyboard = readyKeyboards.get(model);
  try {
    if (!keyboard) { // the first keystroke waits for the model, and is not a keystroke's latency
      keyboard = await pageKeyboard(model);
      started = null;
      if (text.value.slice(0, text.selectionStart) !== typed || where !== "page") return;
    }
    show(keyboard.suggest(typed, 3), typed);
    if (started !== null) inPageLatencies.push(performance.now() - started);
    showLatency(model, keyboard);
  } catch (error) { showError($("suggestions"), error); showError($("page-status"), error); }
}

function showLatency(model, keyboard) {
  const sorted = [...inPageLatencies].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const status = $("page-status");
  status.textContent = `In the page: ${model}, loaded in ${keyboard.loadSeconds.toFixed(1)} s; ` +
    (sorted.length ? `${sorted.length} keystrokes, p50 ${at(0.5).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms per keystroke` : "type to see its speed");
}

function show(suggestions, typed) {
  shown = suggestions.map((s) => s.word);
  shownProbs = suggestions.map((s) => s.prob);
  renderSuggestions();
  Object.assign($("suggestions").dataset, { for: typed, from: where }); // what they answer, and who answered
}

function renderSuggestions() {
  const bar = $("suggestions");
  if (!shown.length) {
    bar.replaceChildren(Object.assign(document.createElement("span"), { className: "none", textContent: "(no suggestions)" }));
    return;
  }
  bar.replaceChildren(...shown.map((word, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.word = word;
    button.dataset.prob = shownProbs[i];
    button.title = i === 0 ? "Tab or Alt+1" : `Alt+${i + 1}`;
    button.append(Object.assign(document.createElement("kbd"), { textContent: i + 1 }), word);
    button.addEventListener("mousedown", (event) => event.preventDefault()); // keep the caret in the text
    button.addEventListener("click", () => accept(i));
    return button;
  }));
}

function refresh() {
  const started = performance.now(), typed = text.value.slice(0, text.selectionStart);
  if (typed !== askedFor && !$("keyboard-panel").querySelector(".available").hidden) {
    askedFor = typed;
    if (where === "page") suggestInPage(typed, started); else suggest(typed);
  }
}

function accept(index) {
  if (index >= shown.length) return;
  const caret = text.selectionStart, before = text.value.slice(0, caret);
  const start = caret - before.match(PARTIAL)[0].length;
  text.setRangeText(`${shown[index]} `, start, caret, "end");
  text.focus();
  changed();
}

function changed() { refresh(); sentimentSoon(); }

text.addEventListener("input", changed);
text.addEventListener("keyup", refresh); // arrows and Home/End move the caret
text.addEventListener("click", refresh);
text.addEventListener("keydown", (event) => {
  const alt = event.altKey && /^Digit[1-3]$/.test(event.code);
  if ((event.key === "Tab" && !event.shiftKey && shown.length) || alt) {
    event.preventDefault(); // Tab moves focus only when there is nothing to take
    accept(alt ? Number(event.code.slice(5)) - 1 : 0);
  }
});

// --- sentiment --------------------------------------------------------------------------------
let sentimentTimer = 0;
function sentimentSoon() {
  clearTimeout(sentimentTimer);
  sentimentTimer = setTimeout(() => classifyText(text.value), 120);
}

const classifyText = latest(async (value) => {
  if ($("sentiment-panel").querySelector(".available").hidden) return;
  if (!value.trim()) { $("sentiment-label").textContent = ""; $("sentiment-bars").replaceChildren(); return; }
  try {
    const answer = await (await api("/v1/classify", { model: $("sentiment-model").value, texts: [value] })).json();
    if (value !== text.value) return;
    const best = answer.predictions[0];
    $("sentiment-label").textContent = best.name;
    $("sentiment-bars").replaceChildren(...answer.labels.flatMap((name, i) => {
      const p = best.probs[i];
      const label = Object.assign(document.createElement("span"), { textContent: name, className: i === best.label ? "best" : "" });
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-label", name);
      bar.setAttribute("aria-valuenow", p.toFixed(3));
      const fill = document.createElement("span");
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      bar.append(fill);
      const pct = Object.assign(document.createElement("span"), { className: "pct", textContent: `${(100 * p).toFixed(0)}%` });
      return [label, bar, pct];
    }));
  } catch (error) { showError($("sentiment-label"), error); }
});

// --- generation -------------------------------------------------------------------------------
let running = null;

$("generate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  running?.abort();
  running = new AbortController();
  const out = $("generated"), prompt = $("prompt").value;
  const promptSpan = Object.assign(document.createElement("span"), { className: "prompt", textContent: prompt });
  const sampled = document.createElement("span");
  out.replaceChildren(promptSpan, sampled);
  $("stop").hidden = false;
  try {
    const response = await api("/v1/generate", {
      model: $("generate-model").value, prompt, stream: true,
      temperature: Number($("temperature").value), max_new_tokens: Number($("max-new-tokens").value),
      seed: Number($("seed").value),
    }, running.signal);
    await readEvents(response, (name, data) => {
      if (name === "token") sampled.textContent += data.text;
      if (name === "error") throw new ApiError(data.message);
    });
  } catch (error) {
    if (error.name !== "AbortError") showError(sampled, error, true);
  } finally {
    $("stop").hidden = true;
  }
});
$("stop").addEventListener("click", () => running?.abort());

async function readEvents(response, onEvent) {
  // Server-sent events over a POST: EventSource can only GET, so the stream is read by hand.
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = frame.match(/^event: (.*)$/m)?.[1] || "message";
      const data = frame.match(/^data: (.*)$/m)?.[1];
      if (data !== undefined) onEvent(name, JSON.parse(data));
    }
  }
}

// --- start ------------------------------------------------------------------------------------
function showError(element, error, append = false) {
  const line = Object.assign(document.createElement("span"), { className: "error", textContent: error.message });
  if (append) element.append(" ", line); else element.replaceChildren(line);
}

async function start() {
  try {
    const { models } = await (await api("/v1/models")).json();
    const lms = models.filter((m) => m.kind === "lm");
    showPanel("keyboard", lms.filter((m) => m.can_complete));
    $("keyboard-where").hidden = !lms.some((m) => m.can_complete);
    showPanel("generate", lms);
    showPanel("sentiment", models.filter((m) => m.kind === "classifier"));
    $("status").textContent = `${models.length} model${models.length === 1 ? "" : "s"}: ` +
      models.map((m) => `${m.name} (${m.level} ${m.cell} ${m.kind === "lm" ? "language model" : "classifier"})`).join(", ");
    askedFor = null;
    changed();
  } catch (error) { showError($("status"), error); }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("key").value.trim();
  sessionStorage.setItem("seqtext-key", apiKey);
  $("key-form").hidden = true;
  start();
});
$("keyboard-model").addEventListener("change", () => { askedFor = null; refresh(); });
$("keyboard-where").addEventListener("change", (event) => {
  where = event.target.value;
  $("page-status").hidden = where !== "page";
  askedFor = null;
  refresh();
});
$("sentiment-model").addEventListener("change", sentimentSoon);
start();
