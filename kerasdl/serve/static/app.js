"use strict";
// The page at `/`: lists the served models, shows the inputs the chosen model's task takes, sends them to
// the JSON API and draws the answer. Plain DOM and <canvas>, no library, so it works offline under the CSP.

const $ = (id) => document.getElementById(id);

const CHART_WIDTH = 440;
const CHART_ROWS = 20;
const CHART_ROW_HEIGHT = 22;
const CHART_LABEL_WIDTH = 160;
const CHART_VALUE_WIDTH = 56;
const OVERLAY_SIZE = 440;
const BRUSH_WIDTH = 24;
const MNIST_SIZE = 28;
const MNIST_BOX = 20;
const PALETTE = ["#2f6fde", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#f59f00", "#0c8599", "#5c940d",
  "#862e9c", "#d9480f", "#1864ab", "#a61e4d"];
const TEXT_PROMPTS = {
  "classification": ["Text to classify", "a gorgeous, witty and moving film"],
  "language-modelling": ["Prompt to continue", "the "],
  "translation": ["Sentence to translate", ""],
  "masked-language-modelling": ["Text with [MASK] in place of a word", "the movie was [MASK] ."],
  "word-embedding": ["Words (separated by spaces)", "good film"],
};

const state = { versions: new Map(), current: null };

// --- talking to the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The API's JSON answer; an error status becomes an ApiError carrying the server's one-line message. */
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = $("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { ...options, headers });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status}: the server did not answer JSON`, response.status);
  }
  if (!response.ok) throw new ApiError(body.error || `HTTP ${response.status}`, response.status);
  return body;
}

/** Fill the picker from GET /v1/models; a 401 reveals the API key field. */
async function loadModels() {
  try {
    const listing = await api("/v1/models");
    $("api-key-row").hidden = !listing.api_key_required;
    fillPicker(listing.models);
    hideError();
  } catch (err) {
    if (err.status === 401) $("api-key-row").hidden = false;
    showError(err.message);
  }
}

/** POST the body (an object as JSON, or FormData as an upload) to the chosen version and show the answer. */
async function predict(body, picture = null) {
  const model = state.current;
  const options = body instanceof FormData
    ? { method: "POST", body }
    : { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } };
  const url = `/v1/models/${encodeURIComponent(model.name)}/versions/${model.version}:predict`;
  setBusy(true);
  const started = performance.now();
  try {
    const answer = await api(url, options);
    await showAnswer(answer, picture);
    $("status").textContent = `${answer.model} v${answer.version} answered in ${Math.round(performance.now() - started)} ms.`;
  } catch (err) {
    showError(err.message);
  } finally {
    setBusy(false);
  }
}

// --- the model picker ---------------------------------------------------------------------------------------

/** One option per version (latest first), value "NAME/VERSION"; unavailable versions shown but disabled. */
function fillPicker(models) {
  const picker = $("model");
  const previous = picker.value;
  picker.replaceChildren();
  state.versions.clear();
  for (const model of models) {
    for (const version of model.versions) {
      const value = `${model.name}/${version.version}`;
      const option = new Option(optionText(model, version), value);
      option.disabled = version.state !== "AVAILABLE";
      picker.add(option);
      state.versions.set(value, { name: model.name, ...version });
    }
  }
  const available = [...picker.options].filter((option) => !option.disabled);
  if (!available.length) {
    showError("no model could be loaded: see the server's log");
    return;
  }
  picker.value = available.some((option) => option.value === previous) ? previous : available[0].value;
  picker.disabled = false;
  selectModel(picker.value);
}

function optionText(model, version) {
  const latest = version.version === model.latest_version ? ", latest" : "";
  if (version.state !== "AVAILABLE") return `${model.name} v${version.version} (unavailable: ${version.error})`;
  return `${model.name} v${version.version}${latest} · ${version.task} · ${version.format}`;
}

/** Show the chosen model's figures and the input panels its task and input kind take. */
function selectModel(value) {
  const model = state.versions.get(value);
  state.current = model;
  $("model-info").textContent = modelInfo(model);
  const panels = panelsFor(model);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = !panels.includes(panel.id);
  if (panels.includes("text-panel")) setTextPrompt(model.task);
  resetResult("No prediction yet.");
}

function modelInfo(model) {
  const runtime = model.format === model.backend ? model.format : `${model.format} via ${model.backend}`;
  const parts = [`${model.task} on ${model.input.kind} input [${model.input.shape.join(", ")}]`, runtime];
  if (model.bytes) parts.push(`${(model.bytes / 1e6).toFixed(2)} MB`);
  if (model.latency_ms_batch1) parts.push(`${model.latency_ms_batch1.toFixed(2)} ms per input`);
  if (model.classes.length) parts.push(`${model.classes.length} classes`);
  return parts.join(" · ");
}

function panelsFor(model) {
  const { kind, shape } = model.input;
  if (kind === "image") return isDigitInput(shape) ? ["draw-panel", "upload-panel"] : ["upload-panel"];
  return { text: ["text-panel"], noise: ["noise-panel"], series: ["series-panel"] }[kind] || [];
}

function isDigitInput(shape) {
  return shape.length === 3 && shape[0] === MNIST_SIZE && shape[1] === MNIST_SIZE && shape[2] === 1;
}

function setTextPrompt(task) {
  const [label, placeholder] = TEXT_PROMPTS[task] || ["Text", ""];
  $("text-label").textContent = label;
  $("text").placeholder = placeholder;
}

// --- inputs -------------------------------------------------------------------------------------------------

/** The drawing canvas: white strokes on black, drawn with a mouse, a pen or a finger (pointer events). */
function setupCanvas() {
  const canvas = $("canvas");
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = canvasPoint(canvas, event);
    stroke(canvas, last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const point = canvasPoint(canvas, event);
    stroke(canvas, last, point);
    last = point;
  });
  for (const end of ["pointerup", "pointercancel"]) canvas.addEventListener(end, () => { last = null; });
  clearCanvas();
}

function canvasPoint(canvas, event) {
  const box = canvas.getBoundingClientRect();
  return { x: (event.clientX - box.left) * canvas.width / box.width, y: (event.clientY - box.top) * canvas.height / box.height };
}

function stroke(canvas, from, to) {
  const ctx = canvas.getContext("2d");
  Object.assign(ctx, { strokeStyle: "#fff", lineWidth: BRUSH_WIDTH, lineCap: "round", lineJoin: "round" });
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

function clearCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

async function predictDrawing() {
  const digit = mnistDigit($("canvas"));
  if (!digit) {
    showError("draw a digit on the black square first");
    return;
  }
  const form = new FormData();
  form.append("image", await pngBlob(digit), "digit.png");
  await predict(form);
}

// As MNIST was made: crop to the ink, fit it in 20x20 keeping its aspect, center of mass at the center of 28x28.
function mnistDigit(source) {
  const box = inkBox(source);
  if (!box) return null;
  const scale = MNIST_BOX / Math.max(box.width, box.height);
  const fitted = downscale(source, box, Math.max(1, Math.round(box.width * scale)), Math.max(1, Math.round(box.height * scale)));
  const mass = centerOfMass(fitted);
  const digit = blankCanvas(MNIST_SIZE, MNIST_SIZE, "#000");
  const left = clamp(Math.round(MNIST_SIZE / 2 - mass.x), 0, MNIST_SIZE - fitted.width);
  const top = clamp(Math.round(MNIST_SIZE / 2 - mass.y), 0, MNIST_SIZE - fitted.height);
  digit.getContext("2d").drawImage(fitted, left, top);
  return digit;
}

/** The smallest rectangle holding every inked pixel, or null on a blank canvas. */
function inkBox(canvas) {
  const { data, width, height } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let [left, top, right, bottom] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[(y * width + x) * 4] > 0) {
        left = Math.min(left, x);
        right = Math.max(right, x);
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
      }
    }
  }
  return right < 0 ? null : { x: left, y: top, width: right - left + 1, height: bottom - top + 1 };
}

/** The box of `source` resized to width x height by halving steps, so thin strokes are averaged, not dropped. */
function downscale(source, box, width, height) {
  let current = blankCanvas(box.width, box.height, "#000");
  current.getContext("2d").drawImage(source, box.x, box.y, box.width, box.height, 0, 0, box.width, box.height);
  while (current.width > 2 * width || current.height > 2 * height) {
    const half = blankCanvas(Math.max(width, Math.ceil(current.width / 2)), Math.max(height, Math.ceil(current.height / 2)), "#000");
    smoothDraw(half, current);
    current = half;
  }
  const fitted = blankCanvas(width, height, "#000");
  smoothDraw(fitted, current);
  return fitted;
}

function smoothDraw(target, source) {
  const ctx = target.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, target.width, target.height);
}

/** The intensity-weighted center of a canvas, in pixels (pixel centers at +0.5). */
function centerOfMass(canvas) {
  const { data, width, height } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let [total, sumX, sumY] = [0, 0, 0];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const ink = data[(y * width + x) * 4];
      total += ink;
      sumX += ink * (x + 0.5);
      sumY += ink * (y + 0.5);
    }
  }
  return total ? { x: sumX / total, y: sumY / total } : { x: width / 2, y: height / 2 };
}

async function predictUpload() {
  const file = $("image").files[0];
  if (!file) {
    showError("choose an image file first");
    return;
  }
  const form = new FormData();
  form.append("image", file, file.name);
  const picture = await createImageBitmap(file).catch(() => null);
  await predict(form, picture);
}

function predictText() {
  const text = $("text").value.trim();
  if (!text) {
    showError("type some text first");
    return;
  }
  const words = text.split(/\s+/);
  predict(state.current.task === "word-embedding" ? { words } : { text });
}

function predictNoise() {
  predict({ samples: Number($("samples").value), seed: Number($("seed").value) });
}

function predictSeries() {
  const values = $("series").value.split(/[\s,;]+/).filter(Boolean).map(Number);
  if (!values.length || values.some((value) => !Number.isFinite(value))) {
    showError("give the series as numbers separated by commas or spaces");
    return;
  }
  predict({ inputs: values });
}

// --- showing an answer ----------------------------------------------------------------------------------------

const RENDERERS = {
  "classification": showClassification,
  "segmentation": showSegmentation,
  "detection": showDetection,
  "generation": (answer) => showImage(answer.image_png, `${answer.samples} samples, seed ${answer.seed}`),
  "reconstruction": (answer) => showImage(answer.image_png, `mean squared error ${answer.mse.map((v) => v.toFixed(4)).join(", ")}`),
  "language-modelling": (answer) => showText(answer.generated_text),
  "translation": (answer) => showText(answer.translations.join("\n")),
  "masked-language-modelling": (answer) => showText(answer.results.map(filledText).join("\n\n")),
  "word-embedding": (answer) => showText(Object.entries(answer.neighbours).map(neighbourText).join("\n")),
  "forecasting": (answer) => showText(`next values${answer.unit ? ` (${answer.unit})` : ""}: ${answer.forecast.map((v) => v.toFixed(3)).join(", ")}`),
};

async function showAnswer(answer, picture) {
  const render = RENDERERS[answer.task];
  if (!render) throw new ApiError(`this page cannot show ${answer.task} answers; see the JSON API`, 0);
  await render(answer, picture);
}

function showClassification(answer) {
  const best = answer.predictions[0];
  showLabel(best.label, `${(100 * best.score).toFixed(1)}%`);
  drawBars(answer.classes, best.scores, answer.classes.indexOf(best.label));
}

async function showSegmentation(answer, picture) {
  const mask = await loadImage(`data:image/png;base64,${answer.mask_png}`);
  const ctx = overlay(answer.width, answer.height, picture);
  ctx.globalAlpha = 0.5;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(coloredMask(mask, answer.classes.length), 0, 0, ctx.canvas.width, ctx.canvas.height);
  const shares = answer.classes.map((name) => answer.class_fractions[name]);
  drawBars(answer.classes, shares, -1, answer.classes.map((_, k) => PALETTE[k % PALETTE.length]));
}

/** The gray mask (class k drawn as k * floor(255 / (classes - 1))) with a palette color per class. */
function coloredMask(mask, classes) {
  const canvas = blankCanvas(mask.naturalWidth, mask.naturalHeight);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(mask, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const step = Math.floor(255 / Math.max(1, classes - 1));
  for (let i = 0; i < pixels.data.length; i += 4) {
    const rgb = hexColor(PALETTE[Math.round(pixels.data[i] / step) % PALETTE.length]);
    pixels.data.set([...rgb, 255], i);
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

function showDetection(answer, picture) {
  const ctx = overlay(answer.width, answer.height, picture);
  const scale = ctx.canvas.width / answer.width;
  ctx.lineWidth = 2;
  ctx.font = "13px system-ui, sans-serif";
  for (const box of answer.boxes) {
    const color = PALETTE[answer.classes.indexOf(box.class) % PALETTE.length];
    const [x, y] = [box.x_min * scale, box.y_min * scale];
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.strokeRect(x, y, (box.x_max - box.x_min) * scale, (box.y_max - box.y_min) * scale);
    const caption = `${box.class} ${(100 * box.score).toFixed(0)}%`;
    ctx.fillRect(x, Math.max(0, y - 18), ctx.measureText(caption).width + 8, 18);
    ctx.fillStyle = "#fff";
    ctx.fillText(caption, x + 4, Math.max(13, y - 5));
  }
  showLabel(`${answer.boxes.length} ${answer.boxes.length === 1 ? "object" : "objects"}`,
    `score ≥ ${answer.score_threshold}`);
}

/** The overlay canvas sized to show a width x height image, with the uploaded picture drawn on it. */
function overlay(width, height, picture) {
  const canvas = $("overlay");
  const scale = Math.min(OVERLAY_SIZE / width, OVERLAY_SIZE / height);
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (picture) ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
  canvas.hidden = false;
  return ctx;
}

function showImage(base64, caption) {
  const image = $("output-image");
  image.src = `data:image/png;base64,${base64}`;
  image.hidden = false;
  showText(caption);
}

function showText(text) {
  $("output-text").textContent = text;
  $("output-text").hidden = false;
}

function showLabel(label, score) {
  $("label").textContent = label;
  $("score").textContent = score;
  $("answer").hidden = false;
}

function filledText(result) {
  const guesses = result.masks.map((candidates, k) =>
    `  [MASK] ${k + 1}: ${candidates.map((c) => `${c.token} (${(100 * c.probability).toFixed(1)}%)`).join(", ")}`);
  return [result.filled, ...guesses].join("\n");
}

function neighbourText([word, neighbours]) {
  return `${word}: ${neighbours.map((n) => `${n.word} (${n.cosine.toFixed(2)})`).join(", ")}`;
}

/** A horizontal bar per class (in class order; the top CHART_ROWS when there are more), values in [0, 1]. */
function drawBars(names, values, best, colors = null) {
  let rows = names.map((name, index) => ({ name, index, value: values[index] }));
  if (rows.length > CHART_ROWS) rows = rows.sort((a, b) => b.value - a.value).slice(0, CHART_ROWS);
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = CHART_WIDTH * ratio;
  canvas.height = (rows.length * CHART_ROW_HEIGHT + 4) * ratio;
  canvas.style.width = `${CHART_WIDTH}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.font = "13px system-ui, sans-serif";
  const labelWidth = Math.min(CHART_LABEL_WIDTH, Math.max(...rows.map((row) => ctx.measureText(row.name).width)) + 16);
  ctx.textBaseline = "middle";
  const barSpace = CHART_WIDTH - labelWidth - CHART_VALUE_WIDTH;
  rows.forEach((row, k) => {
    const middle = (k + 0.5) * CHART_ROW_HEIGHT + 2;
    ctx.fillStyle = "#1d2430";
    ctx.textAlign = "right";
    ctx.fillText(truncate(ctx, row.name, labelWidth - 10), labelWidth - 8, middle);
    ctx.fillStyle = "#e9edf3";
    ctx.fillRect(labelWidth, middle - 7, barSpace, 14);
    ctx.fillStyle = colors ? colors[row.index] : row.index === best ? "#2f6fde" : "#9fb4d8";
    ctx.fillRect(labelWidth, middle - 7, Math.max(1, barSpace * row.value), 14);
    ctx.fillStyle = "#5d6778";
    ctx.textAlign = "left";
    ctx.fillText(`${(100 * row.value).toFixed(1)}%`, labelWidth + barSpace + 6, middle);
  });
  canvas.hidden = false;
}

function truncate(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(`${cut}…`).width > width) cut = cut.slice(0, -1);
  return `${cut}…`;
}

// --- page state -----------------------------------------------------------------------------------------

/** Hide the last answer and any error, and say `status` in their place. */
function resetResult(status) {
  for (const id of ["answer", "chart", "overlay", "output-image", "output-text"]) $(id).hidden = true;
  $("label").textContent = "";
  $("score").textContent = "";
  $("status").textContent = status;
  hideError();
}

function setBusy(busy) {
  for (const button of document.querySelectorAll(".panel button:not(.secondary)")) button.disabled = busy;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "The request failed.";
}

function hideError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// --- small helpers ------------------------------------------------------------------------------------------

function blankCanvas(width, height, fill = null) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  if (fill) {
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = fill;
    ctx.fillRect(0, 0, width, height);
  }
  return canvas;
}

function pngBlob(canvas) {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new ApiError("the server's image could not be decoded", 0));
    image.src = src;
  });
}

function hexColor(hex) {
  return [1, 3, 5].map((start) => parseInt(hex.slice(start, start + 2), 16));
}

function clamp(value, low, high) {
  return Math.min(Math.max(value, low), Math.max(low, high));
}

/** A button's handler that first clears the last answer, at once, so no stale answer shows while the new one comes. */
function submit(handler) {
  return () => {
    resetResult("Waiting for the model…");
    handler();
  };
}

function start() {
  setupCanvas();
  $("model").addEventListener("change", (event) => selectModel(event.target.value));
  $("api-key").addEventListener("change", loadModels);
  $("clear").addEventListener("click", clearCanvas);
  $("predict").addEventListener("click", submit(predictDrawing));
  $("submit-image").addEventListener("click", submit(predictUpload));
  $("submit-text").addEventListener("click", submit(predictText));
  $("generate").addEventListener("click", submit(predictNoise));
  $("submit-series").addEventListener("click", submit(predictSeries));
  loadModels();
}

start();
