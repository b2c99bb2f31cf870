// The model's page: built from the model card (GET card), predicting through the server's own
// /predict. Every value from the server reaches the page as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const NOT_READY_RETRY_MS = 2000;
// What an explanation's numbers are, in words.
const UNITS = { probability: "probability", logit: "log-odds", value: "predicted value" };

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// The server's answer, or an Error carrying its {"error": ...} message and status.
async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const text = await response.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { error: text || response.statusText };
  }
  if (!response.ok) {
    const problem = new Error(parsed.error || `HTTP ${response.status}`);
    problem.status = response.status;
    throw problem;
  }
  return parsed;
}

// A labelled bar filled to `fraction` of its track, with `text` after it.
function bar(label, fraction, text, className = "bar") {
  const row = element("div", undefined, className);
  const track = element("div", undefined, "track");
  const fill = element("div", undefined, "fill");
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  track.append(fill);
  row.append(element("span", label), track, element("span", text, "share"));
  return row;
}

function showCard(card) {
  document.title = `${card.name} ${card.version}`;
  $("title").textContent = `${card.name} `;
  $("title").append(element("small", card.version, "version"));
  const rows = [
    ["Estimator", card.estimator],
    ["Task", card.task],
    ["Version", card.version],
    ["Trained", card.trainedAt ? new Date(card.trainedAt).toLocaleString() : "elsewhere (provided model)"],
    ["Metrics", Object.entries(card.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ") || "none recorded"],
    ["Classes", card.classes ? card.classes.join(", ") : "none (regression)"],
    ["sha256", card.sha256],
    ["Runtime", card.runtime.name + (card.runtime.reason ? ` (${card.runtime.reason})` : "")],
    ["Server", card.runtime.server],
    ["Libraries", Object.entries(card.runtime.libraries).map(([k, v]) => `${k} ${v}`).join(", ") || "unknown"],
  ];
  const list = $("card");
  list.replaceChildren();
  for (const [term, value] of rows) list.append(element("dt", term), element("dd", value));
  $("v2-path").textContent = `v2/models/${card.name}/infer`;
  showImportance(card.importance);
}

// Global importance, computed at training: each feature's mean |SHAP value| on held-out rows.
function showImportance(importance) {
  if (!importance) return;
  const features = Object.entries(importance.features);
  const largest = Math.max(...features.map(([, value]) => value), Number.MIN_VALUE);
  const chart = $("importance-chart");
  chart.replaceChildren();
  for (const [name, value] of features) chart.append(bar(name, value / largest, String(round(value))));
  $("importance-about").textContent = `Mean |SHAP value| (${UNITS[importance.units] || importance.units}) ` +
    `on ${importance.rows} held-out rows, ${importance.method}.`;
  $("importance").hidden = false;
}

function inputFor(feature, index) {
  const id = `feature-${index}`;
  const field = element("div", undefined, "field");
  field.dataset.feature = feature.name;
  const label = element("label", feature.name);
  label.htmlFor = id;
  let input;
  if (feature.type === "categorical" && feature.categories) {
    input = element("select");
    for (const category of feature.categories) input.append(element("option", category));
  } else {
    input = element("input");
    input.inputMode = "decimal";
    if (feature.min !== undefined) {
      input.value = String(round((feature.min + feature.max) / 2));
      field.append(label, input, element("span", `seen in training: ${feature.min} to ${feature.max}`, "range"));
    }
  }
  input.id = id;
  input.name = feature.name;
  if (!field.contains(input)) field.append(label, input);
  field.append(element("div", "", "error"));
  input.addEventListener("input", () => { clearFieldError(field); showCurl(); });
  return field;
}

function round(value) {
  return Math.round(value * 1000) / 1000;
}

// A number where the text is one; anything else is sent as typed, so the server says what is wrong.
function value(feature, text) {
  if (feature.type === "categorical") return text;
  const trimmed = text.trim();
  const number = Number(trimmed);
  return trimmed !== "" && Number.isFinite(number) ? number : text;
}

function formRow(card) {
  return card.features.map((feature, index) => value(feature, $(`feature-${index}`).value));
}

function clearFieldError(field) {
  field.classList.remove("invalid");
  field.querySelector(".error").textContent = "";
}

function clearErrors() {
  for (const field of document.querySelectorAll(".field")) clearFieldError(field);
  $("form-error").textContent = "";
}

// The server names the feature in its message ("row 0, feature 'x': ..."): show it there.
function showError(message) {
  const named = [...document.querySelectorAll(".field")].find((field) =>
    message.includes(`feature '${field.dataset.feature}'`) ||
    message.includes(`feature "${field.dataset.feature}"`));
  if (named) {
    named.classList.add("invalid");
    named.querySelector(".error").textContent = message;
  } else {
    $("form-error").textContent = message;
  }
}

function showAnswer(card, answer) {
  const prediction = answer.predictions[0];
  $("answer-label").textContent = card.task === "classification" ? "Class:" : "Predicted value:";
  $("answer").textContent = typeof prediction === "number" ? String(round(prediction)) : prediction;
  const chart = $("chart");
  chart.replaceChildren();
  if (answer.probabilities) {
    answer.classes.forEach((label, index) => {
      const share = answer.probabilities[0][index];
      const percent = `${(share * 100).toFixed(1)}%`;
      chart.append(bar(label, share, percent, label === prediction ? "bar top" : "bar"));
    });
  }
  $("result").hidden = false;
}

// Why the model answered that: each feature's SHAP value for the answer's column (the predicted
// class, a binary classifier's one score, or the regressor's value), largest first, as bars
// left (against) and right (for) of the base value's line.
function showExplanation(answer, explanation) {
  const column = Math.max(0, explanation.outputs.indexOf(answer.predictions[0]));
  const contributions = explanation.features.map((name, index) =>
    [name, explanation.contributions[0][index][column]]);
  contributions.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const largest = Math.max(...contributions.map(([, value]) => Math.abs(value)), Number.MIN_VALUE);
  const chart = $("why-chart");
  chart.replaceChildren();
  for (const [name, value] of contributions) {
    const bar = element("div", undefined, "contribution");
    const track = element("div", undefined, "track diverging");
    const fill = element("div", undefined, value < 0 ? "fill against" : "fill for");
    const width = (Math.abs(value) / largest) * 50;
    fill.style.width = `${width.toFixed(1)}%`;
    fill.style.marginLeft = `${(value < 0 ? 50 - width : 50).toFixed(1)}%`;
    track.append(fill);
    bar.append(element("span", name), track, element("span", (value > 0 ? "+" : "") + round(value), "share"));
    chart.append(bar);
  }
  const output = explanation.outputs[column];
  $("why-base").textContent = `Contributions to the ${UNITS[explanation.units]}` +
    (explanation.units === "value" ? "" : ` of ${output}`) +
    `, from the base value ${round(explanation.base_values[column])} (the training data's mean).`;
  $("why-note").textContent = "";
  $("why").hidden = false;
}

async function explainForm(answer, row) {
  try {
    showExplanation(answer, await call("explain", { instances: [row] }));
  } catch (problem) {
    // A model without an explainer says why (501); the prediction stands either way.
    $("why-chart").replaceChildren();
    $("why-base").textContent = "";
    $("why-note").textContent = `No explanation: ${problem.message}`;
    $("why").hidden = false;
  }
}

async function predictForm(card, event) {
  event.preventDefault();
  clearErrors();
  $("result").hidden = true;
  $("why").hidden = true;
  $("predict").disabled = true;
  try {
    const row = formRow(card);
    const answer = await call("predict", { instances: [row] });
    showAnswer(card, answer);
    await explainForm(answer, row);
  } catch (problem) {
    showError(problem.message);
  } finally {
    $("predict").disabled = false;
  }
}

function showCurl() {
  const card = window.modelCard;
  const body = JSON.stringify({ instances: [formRow(card)] });
  const url = new URL("predict", window.location.href).href;
  $("curl").textContent =
    `curl -s -X POST '${url}' \\\n  -H 'Content-Type: application/json' \\\n  -d '${body.replaceAll("'", "'\\''")}'`;
}

async function copyCurl() {
  const text = $("curl").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard outside a secure context (a port-forward on another host): select it instead.
    window.getSelection().selectAllChildren($("curl"));
    document.execCommand("copy");
  }
  $("copy").textContent = "Copied";
  setTimeout(() => { $("copy").textContent = "Copy"; }, 1500);
}

// RFC 4180: quoted fields may hold commas, quotes ("") and line breaks.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  return rows.filter((r) => r.some((c) => c.trim() !== ""));
}

// A spreadsheet runs a cell that starts with = + - @ (or a tab or CR before one) as a formula:
// such a cell from a class name or an uploaded row is kept as text with a leading quote
// (OWASP's CSV injection advice). Numbers stay numbers: -1.5 is not a formula.
function csvCell(text) {
  let s = String(text);
  if (/^[=+\-@\t\r]/.test(s) && !Number.isFinite(Number(s))) s = "'" + s;
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csvText(rows) {
  return rows.map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

// The rows in feature order: by the header's names when it has them all, else as they are.
function rowsFromCsv(card, table) {
  const names = card.features.map((feature) => feature.name);
  const header = table[0].map((cell) => cell.trim());
  if (names.every((name) => header.includes(name))) {
    const order = names.map((name) => header.indexOf(name));
    const body = table.slice(1);
    if (!body.length) throw new Error("the file has a header row and no rows to predict");
    return body.map((cells) => order.map((column, index) => value(card.features[index], cells[column] ?? "")));
  }
  if (header.some((cell) => names.includes(cell))) {
    const missing = names.filter((name) => !header.includes(name));
    throw new Error(`the header row lacks the feature(s) ${missing.map((n) => `'${n}'`).join(", ")}`);
  }
  // No header: the rows go as they are, so the server says what does not fit.
  return table.map((cells) => cells.map((cell, index) => value(card.features[index] ?? {}, cell)));
}

async function predictCsv(card) {
  const file = $("csv").files[0];
  $("batch-error").textContent = "";
  $("batch-result").hidden = true;
  if (!file) return;
  try {
    const rows = rowsFromCsv(card, parseCsv(await file.text()));
    const answer = await call("predict", { instances: rows });
    showTable(card, rows, answer);
  } catch (problem) {
    $("batch-error").textContent = problem.message;
  }
}

// The table's header and rows; `marked(index)` names a row's class, if any.
function fillTable(table, header, lines, marked = () => "") {
  table.replaceChildren();
  const head = element("tr");
  for (const name of header) head.append(element("th", name));
  table.append(element("thead"));
  table.tHead.append(head);
  const body = element("tbody");
  lines.forEach((line, index) => {
    const tr = element("tr", undefined, marked(index));
    for (const cell of line) tr.append(element("td", String(cell)));
    body.append(tr);
  });
  table.append(body);
}

function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "";
}

// The model's versions as the operator keeps them: none where the server keeps no history
// (a server the operator did not start).
async function showHistory() {
  let history;
  try {
    history = await call("history");
  } catch {
    return;
  }
  const header = ["Version", "Trained", "Origin", "Gate score", "Serving"];
  const lines = history.versions.map((entry) => {
    const serving = entry.version === history.serving;
    let served = entry.servedSince ? `served from ${when(entry.servedSince)}` : "";
    if (serving) served = history.servingSince ? `since ${when(history.servingSince)}` : "rolling out";
    return [entry.version, when(entry.trainedAt), entry.origin, entry.score || "", served];
  });
  fillTable($("history"), header, lines, (index) =>
    history.versions[index].version === history.serving ? "serving" : "");
  $("history-section").hidden = false;
}

function showTable(card, rows, answer) {
  const header = [...card.features.map((feature) => feature.name), "prediction"];
  if (answer.probabilities) header.push(...answer.classes.map((label) => `P(${label})`));
  const lines = rows.map((row, index) => {
    const line = [...row, answer.predictions[index]];
    if (answer.probabilities) line.push(...answer.probabilities[index].map((p) => round(p)));
    return line;
  });
  fillTable($("table"), header, lines);
  const download = $("download");
  if (download.href) URL.revokeObjectURL(download.href);
  download.href = URL.createObjectURL(new Blob([csvText([header, ...lines])], { type: "text/csv" }));
  $("batch-result").hidden = false;
}

function showTemplate(card) {
  const header = card.features.map((feature) => feature.name);
  const example = card.features.map((feature) =>
    feature.categories ? feature.categories[0] : feature.min !== undefined ? round((feature.min + feature.max) / 2) : 0);
  $("template").href = URL.createObjectURL(new Blob([csvText([header, example])], { type: "text/csv" }));
}

async function readiness() {
  const badge = $("readiness");
  try {
    await call("v2/health/ready");
    badge.textContent = "ready";
    badge.className = "badge ready";
  } catch (problem) {
    badge.textContent = "not ready";
    badge.className = "badge not-ready";
  }
}

async function start() {
  let card;
  try {
    card = await call("card");
  } catch (problem) {
    $("title").textContent = "The model is not ready";
    $("problem").textContent = problem.message;
    $("problem").hidden = false;
    await readiness();
    if (problem.status === 503) setTimeout(start, NOT_READY_RETRY_MS);
    return;
  }
  window.modelCard = card;
  $("problem").hidden = true;
  showCard(card);
  $("fields").replaceChildren(...card.features.map(inputFor));
  $("form").addEventListener("submit", (event) => predictForm(card, event));
  $("csv").addEventListener("change", () => predictCsv(card));
  $("copy").addEventListener("click", copyCurl);
  showTemplate(card);
  showCurl();
  $("content").hidden = false;
  await Promise.all([showHistory(), readiness()]);
}

start();
