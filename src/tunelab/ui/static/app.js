// tunelab ui: three views over the JSON API (server.py) — the runs table, a run, a comparison — routed by the URL's
// hash. Plain JavaScript and hand-drawn SVG charts: a line chart is 60 lines here, and a chart library would have to be
// vendored, pinned and licensed for a page that must work offline with no build step.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
let timers = [];

const $ = (html) => { const t = document.createElement("template"); t.innerHTML = html.trim(); return t.content.firstChild; };
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : esc(v ?? ""));
async function api(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.text()).slice(0, 300)}`);
  return r.json();
}
function every(ms, fn) { fn(); timers.push(setInterval(fn, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; }

// ---------------------------------------------------------------- a line chart in SVG

function chart(title, series, opts = {}) {
  const W = 470, H = 250, L = 56, R = 12, T = 10, B = 34;
  const pts = series.flatMap((s) => s.points);
  const box = $(`<div class="chart"><div class="title">${esc(title)}</div></div>`);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.dataset.points = String(pts.length);
  svg.dataset.title = title;
  box.appendChild(svg);
  if (!pts.length) { svg.innerHTML = `<text x="${L}" y="${H / 2}" fill="#888">no points yet</text>`; return box; }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  let inner = `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#ddd"/>`;
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4, xv = x0 + ((x1 - x0) * i) / 4;
    inner += `<text x="${L - 5}" y="${Y(yv) + 4}" font-size="10" text-anchor="end" fill="#666">${+yv.toPrecision(3)}</text>`;
    inner += `<line x1="${L}" x2="${W - R}" y1="${Y(yv)}" y2="${Y(yv)}" stroke="#f0f0f0"/>`;
    inner += `<text x="${X(xv)}" y="${H - B + 14}" font-size="10" text-anchor="middle" fill="#666">${Math.round(xv)}</text>`;
  }
  inner += `<text x="${(L + W - R) / 2}" y="${H - 4}" font-size="11" text-anchor="middle" fill="#444">${esc(opts.x || "step")}</text>`;
  for (const m of opts.marks || []) {
    inner += `<line class="mark" x1="${X(m.x)}" x2="${X(m.x)}" y1="${T}" y2="${H - B}" stroke="${m.color || "#888"}" stroke-dasharray="4 3"><title>${esc(m.label)}</title></line>`;
  }
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const line = s.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    inner += `<polyline class="series" data-n="${s.points.length}" points="${line}" fill="none" stroke="${color}" stroke-width="1.6"/>`;
    if (s.dots) inner += s.points.map((p) => `<circle cx="${X(p[0])}" cy="${Y(p[1])}" r="2.6" fill="${color}"/>`).join("");
  });
  svg.innerHTML = inner;
  const legend = $(`<div class="legend"></div>`);
  series.forEach((s, i) => legend.appendChild($(`<span style="color:${s.color || COLORS[i % COLORS.length]}">━ ${esc(s.label)}</span>`)));
  (opts.marks || []).forEach((m) => legend.appendChild($(`<span style="color:${m.color || "#888"}">┆ ${esc(m.label)}</span>`)));
  box.appendChild(legend);
  return box;
}

const pointsOf = (records, key) => records.filter((r) => typeof r[key] === "number").map((r) => [r.step, r[key]]);

// ---------------------------------------------------------------- the runs table

const COLUMNS = [["name", "name"], ["task", "task"], ["kind", "kind"], ["status", "status"], ["model", "model"],
  ["method", "method"], ["step", "steps"], ["best_value", "best"], ["test", "test"], ["peak_rss_mb", "peak MB"],
  ["created", "created"]];
let sortKey = "created", sortDown = true;

const testScore = (r) => r.headline;  // [metric, value] or null: the server's choice (runs/query.py headline)

async function runsPage() {
  const view = document.getElementById("view");
  view.innerHTML = `<h1>Runs</h1>
    <div class="filters"><input id="q" placeholder="filter: any column" size="28">
    <select id="task"><option value="">every task</option></select>
    <select id="status"><option value="">every status</option></select>
    <label><input type="checkbox" id="all"> trials and folds</label>
    <button id="cmp" disabled>compare selected</button></div>
    <table id="runs"><thead></thead><tbody></tbody></table>`;
  const chosen = new Set();
  const head = view.querySelector("thead");
  head.appendChild($(`<tr><th></th>${COLUMNS.map(([k, t]) => `<th data-k="${k}">${t}</th>`).join("")}</tr>`));
  head.querySelectorAll("th[data-k]").forEach((th) => th.addEventListener("click", () => {
    sortDown = sortKey === th.dataset.k ? !sortDown : false; sortKey = th.dataset.k; draw();
  }));
  let runs = [];
  const draw = () => {
    const q = view.querySelector("#q").value.toLowerCase(), task = view.querySelector("#task").value,
      status = view.querySelector("#status").value;
    const shown = runs.filter((r) => (!task || r.task === task) && (!status || r.status === status) &&
      (!q || COLUMNS.some(([k]) => String(k === "test" ? JSON.stringify(r.test) : r[k] ?? "").toLowerCase().includes(q))));
    const val = (r) => (sortKey === "test" ? (testScore(r) || [0, -Infinity])[1] : r[sortKey] ?? "");
    shown.sort((a, b) => (val(a) > val(b) ? 1 : val(a) < val(b) ? -1 : 0) * (sortDown ? -1 : 1));
    view.querySelector("tbody").innerHTML = shown.map((r) => {
      const t = testScore(r);
      return `<tr data-id="${r.id}"><td><input type="checkbox" data-id="${r.id}" ${chosen.has(r.id) ? "checked" : ""}></td>
        <td><a href="#/run/${r.id}">${esc(r.name)}</a></td><td>${esc(r.task)}</td><td>${esc(r.kind)}</td>
        <td class="status ${esc(r.status)}">${esc(r.status)}</td><td>${esc(r.model)}</td><td>${esc(r.method)}</td>
        <td class="num">${fmt(r.step)}</td><td class="num">${r.best_metric ? esc(r.best_metric) + " " + fmt(r.best_value) : ""}</td>
        <td class="num">${t ? esc(t[0]) + " " + fmt(t[1]) : ""}</td><td class="num">${fmt(r.peak_rss_mb)}</td><td>${esc((r.created || "").slice(0, 19))}</td></tr>`;
    }).join("");
    view.querySelectorAll("tbody input[type=checkbox]").forEach((c) => c.addEventListener("change", () => {
      c.checked ? chosen.add(c.dataset.id) : chosen.delete(c.dataset.id);
      view.querySelector("#cmp").disabled = chosen.size < 2;
    }));
  };
  const fill = (id, values) => {
    const s = view.querySelector(id), have = new Set([...s.options].map((o) => o.value));
    values.filter((v) => v && !have.has(v)).forEach((v) => s.appendChild($(`<option>${esc(v)}</option>`)));
  };
  ["#q", "#task", "#status"].forEach((id) => view.querySelector(id).addEventListener("input", draw));
  view.querySelector("#all").addEventListener("change", () => load());
  view.querySelector("#cmp").addEventListener("click", () => { location.hash = `#/compare/${[...chosen].join(",")}`; });
  const load = async () => {
    const data = await api(`/api/runs${view.querySelector("#all").checked ? "?all=true" : ""}`);
    document.getElementById("root").textContent = data.root;
    runs = data.runs;
    fill("#task", [...new Set(runs.map((r) => r.task))]);
    fill("#status", [...new Set(runs.map((r) => r.status))]);
    draw();
  };
  every(3000, () => load().catch(showError));  // runs appear and finish without a reload
}

// ---------------------------------------------------------------- one run

function table(headers, rows) {
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td class="${typeof c === "number" ? "num" : ""}">${fmt(c)}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

function confusion(test) {
  const m = test.confusion_matrix, labels = test.labels;
  if (!m) return "";
  return `<h2>Confusion matrix (test; rows true, columns predicted)</h2><table class="cm"><tr><th></th>${labels
    .map((l) => `<th>${esc(l)}</th>`).join("")}</tr>${m.map((row, i) => {
    const n = row.reduce((a, b) => a + b, 0) || 1;
    return `<tr><th>${esc(labels[i])}</th>${row.map((v) => `<td style="background:rgba(31,119,180,${(v / n).toFixed(2)})">${v}</td>`).join("")}</tr>`;
  }).join("")}</table>`;
}

function perClass(test) {
  const per = test.per_class || test.per_type;
  if (!per) return "";
  const keys = Object.keys(Object.values(per)[0] || {});
  return `<h2>Per ${test.per_type ? "entity type" : "class"} (test)</h2>` +
    table(["", ...keys], Object.entries(per).map(([name, m]) => [name, ...keys.map((k) => m[k])]));
}

function samples(metrics) {
  const tuned = (metrics.generation || {}).samples || [], base = ((metrics.base || {}).generation || {}).samples || [];
  if (!tuned.length) return "";
  const before = Object.fromEntries(base.map((s) => [s.prompt, s.prediction]));
  return `<h2>Sample answers (held-out prompts, greedy)</h2>` +
    table(["prompt", "reference", "base", "fine-tuned"], tuned.slice(0, 12).map((s) => [s.prompt, s.reference, before[s.prompt] ?? "", s.prediction]));
}

function curves(records, run) {
  const metric = run.best_metric || "loss", find = (run.metrics.diagnosis || {}).findings || [];
  const marks = find.map((f, i) => ({ x: f.step, label: `${f.kind} from step ${f.step}`, color: ["#c5221f", "#9467bd"][i % 2] }));
  const best = run.metrics.best_step ?? (run.info.best || {}).step;
  const box = $(`<div class="charts" id="curves" data-records="${records.length}"></div>`);
  box.appendChild(chart("loss", [{ label: "train", points: pointsOf(records, "loss") },
    { label: "validation", points: pointsOf(records, "val_loss"), dots: true }], { marks }));
  box.appendChild(chart("learning rate", [{ label: "lr", points: pointsOf(records, "lr") }]));
  if (metric !== "loss") {
    box.appendChild(chart(`validation ${metric}`, [{ label: metric, points: pointsOf(records, `val_${metric}`), dots: true }],
      { marks: best != null ? [{ x: best, label: `best step ${best}`, color: "#2ca02c" }] : [] }));
  }
  return box;
}

async function runPage(id) {
  const view = document.getElementById("view");
  let records = [], next = 0, run = null;
  const draw = () => {
    const m = run.metrics || {}, test = m.test || {}, d = m.diagnosis;
    view.innerHTML = `<h1>${esc(run.name)} <span class="status ${esc(run.status)}">${esc(run.status)}</span></h1>
      <p>${esc(run.task)} · ${esc(run.model)} · ${esc(run.method)} · ${fmt(run.step)} steps${run.peak_rss_mb ? ` · peak memory ${fmt(run.peak_rss_mb)} MB` : ""} · <span class="dim">${esc(run.path)}</span></p>
      <div id="curves-here"></div>
      ${d ? `<h2>Fit: ${esc(d.verdict)}</h2>${d.findings.map((f) => `<p><b>${esc(f.kind)}</b> from step ${f.step}: ${esc(f.why)}. <span class="dim">${esc(f.act)}</span></p>`).join("")}` : ""}
      ${Object.keys(test).length ? `<h2>Test</h2>` + table(["metric", "value"], Object.entries(test).filter(([, v]) => typeof v === "number")) : ""}
      <div class="grid"><div>${confusion(test)}</div><div>${perClass(test)}</div></div>
      ${samples(m)}
      ${run.children.length ? `<h2>${run.kind === "study" ? "Trials" : "Folds"}</h2><div id="children"></div>` : ""}
      ${run.recipe ? `<h2>Recipe</h2><pre>${esc(run.recipe)}</pre>` : ""}
      <h2>Files</h2><ul>${run.files.map((f) => `<li><a href="/api/runs/${id}/files/${encodeURI(f)}">${esc(f)}</a></li>`).join("")}</ul>`;
    view.querySelector("#curves-here").replaceWith(curves(records, run));
    const kids = view.querySelector("#children");
    if (kids) {
      kids.innerHTML = table(["run", "status", "steps", "best"], run.children.map((c) => [c.name, c.status, c.step, c.best_value]));
      kids.querySelectorAll("tbody tr").forEach((tr, i) => { tr.firstChild.innerHTML = `<a href="#/run/${run.children[i].id}">${esc(run.children[i].name)}</a>`; });
      const values = run.children.filter((c) => typeof c.best_value === "number").map((c, i) => [i + 1, c.best_value]);
      if (run.kind === "study" && values.length) kids.appendChild(chart("optimisation history", [{ label: run.children[0].best_metric || "value", points: values, dots: true }], { x: "trial" }));
    }
  };
  const poll = async () => {
    const h = await api(`/api/runs/${id}/history?after=${next}`);
    records = records.concat(h.records); next = h.next;
    if (!run || h.status !== run.status || h.records.length) { run = await api(`/api/runs/${id}`); draw(); }
    document.getElementById("live").textContent = run.status === "running" ? "live: updating every 2 s" : "";
  };
  every(2000, () => poll().catch(showError));  // curves grow while the run trains, no reload
}

// ---------------------------------------------------------------- comparing runs

async function comparePage(ids) {
  const view = document.getElementById("view");
  const c = await api(`/api/compare?ids=${ids}`);
  view.innerHTML = `<h1>Compare ${c.runs.length} runs</h1><div class="charts" id="overlay"></div>
    <h2>Metrics</h2>${table(["", ...c.runs], Object.entries(c.metrics).map(([k, v]) => [k, ...v]))}
    <h2>Recipe fields that differ</h2>${Object.keys(c.recipe).length ? table(["field", ...c.runs], Object.entries(c.recipe).map(([k, v]) => [k, ...v.map((x) => JSON.stringify(x))])) : "<p>none: the same recipe</p>"}`;
  const overlay = view.querySelector("#overlay");
  const per = (key) => c.histories.map((h, i) => ({ label: c.runs[i], points: pointsOf(h, key), dots: key.startsWith("val_") }));
  overlay.appendChild(chart("train loss", per("loss")));
  overlay.appendChild(chart("validation loss", per("val_loss")));
  const metric = Object.keys(c.metrics).find((k) => k.startsWith("validation.") && k !== "validation.loss");
  if (metric) overlay.appendChild(chart(`validation ${metric.slice(11)}`, per(`val_${metric.slice(11)}`)));
}

// ---------------------------------------------------------------- routing

function showError(e) {
  const view = document.getElementById("view");
  view.querySelector(".error")?.remove();
  view.prepend($(`<p class="error">${esc(e.message)}</p>`));
}

function route() {
  stopTimers();
  document.getElementById("live").textContent = "";
  const [, page, arg] = location.hash.split("/");
  const go = page === "run" ? runPage(arg) : page === "compare" ? comparePage(arg) : runsPage();
  Promise.resolve(go).catch(showError);
}
window.addEventListener("hashchange", route);
route();
