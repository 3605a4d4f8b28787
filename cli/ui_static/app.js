// ds ui: the page over the read-only JSON API (no framework, no build step).
// Everything from the store is inserted as text (textContent), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 30, LANE = 22, RADIUS = 6, PAD = 16;
const EDGE_COLOURS = ["#94a3b8", "#f97316", "#10b981", "#a855f7", "#ef4444", "#0ea5e9", "#eab308", "#ec4899"];

const state = { commits: [], byId: new Map(), datasets: [], rev: null, path: "" };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function human(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function short(id) { return id ? id.slice(0, 10) : ""; }

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(name, params = {}) {
  const url = `/api/${name}?${new URLSearchParams(params)}`;
  const response = await fetch(url);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || `${response.status}`);
  return data;
}

function guard(fn) {
  return async (...args) => {
    try { showError(""); await fn(...args); } catch (e) { showError(e.message); }
  };
}

// -- the lineage graph --------------------------------------------------------------------
// Rows in topological order (newest first); each open line of descent keeps a lane
// until the parent it waits for is drawn, so an edge runs down its own lane.
function layout(commits) {
  const rowOf = new Map(commits.map((c, i) => [c.id, i]));
  const lanes = [];  // lanes[k] = the commit id lane k waits for, or null
  const pos = new Map();
  const edges = [];
  const free = () => { let k = lanes.indexOf(null); if (k < 0) { k = lanes.length; lanes.push(null); } return k; };
  commits.forEach((c, row) => {
    let lane = lanes.indexOf(c.id);
    if (lane < 0) lane = free();
    for (let k = 0; k < lanes.length; k++) if (lanes[k] === c.id) lanes[k] = null;
    pos.set(c.id, { row, lane });
    c.parents.forEach((p, i) => {
      if (!rowOf.has(p)) return;  // beyond the shown history
      let k = i === 0 ? lane : lanes.indexOf(p);
      if (k < 0) k = free();
      lanes[k] = p;
      edges.push({ from: p, to: c.id, lane: k, merge: i > 0 });
    });
    while (lanes.length && lanes[lanes.length - 1] === null) lanes.pop();
  });
  const width = Math.max(1, ...[...pos.values()].map((p) => p.lane + 1), ...edges.map((e) => e.lane + 1));
  return { pos, edges, width };
}

function curve(x1, y1, x2, y2) {
  if (x1 === x2) return ` L${x2},${y2}`;
  const ym = (y1 + y2) / 2;
  return ` C${x1},${ym} ${x2},${ym} ${x2},${y2}`;
}

function drawGraph() {
  const graph = $("#graph");
  graph.replaceChildren();
  const commits = state.commits;
  $("#graph-empty").hidden = commits.length > 0;
  if (!commits.length) { graph.setAttribute("width", 0); graph.setAttribute("height", 0); return; }
  const { pos, edges, width } = layout(commits);
  const x = (lane) => PAD + lane * LANE;
  const y = (row) => PAD + row * ROW;
  const labelX = x(width - 1) + LANE;
  const totalWidth = labelX + 560;
  graph.setAttribute("width", totalWidth);
  graph.setAttribute("height", y(commits.length - 1) + PAD);
  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  graph.append(edgeLayer, nodeLayer);
  for (const e of edges) {
    const c = pos.get(e.to), p = pos.get(e.from);
    const xc = x(c.lane), yc = y(c.row), xp = x(p.lane), yp = y(p.row), xk = x(e.lane);
    let d = `M${xc},${yc}`;
    if (p.row - c.row >= 2) {
      d += curve(xc, yc, xk, yc + ROW) + ` L${xk},${yp - ROW}` + curve(xk, yp - ROW, xp, yp);
    } else {
      d += curve(xc, yc, xp, yp);
    }
    edgeLayer.append(svg("path", {
      class: e.merge ? "edge merge" : "edge", d, "data-from": e.from, "data-to": e.to,
      stroke: EDGE_COLOURS[e.lane % EDGE_COLOURS.length],
    }));
  }
  for (const c of commits) {
    const p = pos.get(c.id);
    const cy = y(p.row);
    const g = svg("g", { class: c.parents.length ? "node" : "node root", "data-id": c.id, tabindex: 0 });
    g.append(svg("rect", { class: "hit", x: 2, y: cy - ROW / 2 + 1, width: totalWidth - 4, height: ROW - 2, rx: 4 }));
    g.append(svg("circle", { cx: x(p.lane), cy, r: RADIUS }));
    const text = svg("text", { x: labelX, y: cy + 4 });
    const sid = svg("tspan", { class: "sid" });
    sid.textContent = short(c.id) + "  ";
    text.append(sid);
    for (const l of c.labels) {
      const t = svg("tspan", { class: `lbl-${l.kind}` });
      t.textContent = l.name + "  ";
      text.append(t);
    }
    const msg = svg("tspan", { class: "msg" });
    let first = (c.message || "").split("\n")[0];
    if (c.labels.some((l) => l.name === first)) first = "";  // a dataset version's message is its name
    msg.textContent = first.length > 60 ? first.slice(0, 59) + "…" : first;
    text.append(msg);
    g.append(text);
    const title = svg("title");
    title.textContent = `${c.id}\n${c.created}  ${c.author}\n${c.parents.length} parent(s)\n\n${c.message}`;
    g.append(title);
    g.addEventListener("click", guard(() => selectVersion(c.id)));
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") guard(() => selectVersion(c.id))(); });
    nodeLayer.append(g);
  }
  $("#graph-count").textContent = `(${commits.length}${state.truncated ? "+, newest shown" : ""})`;
}

// -- datasets -----------------------------------------------------------------------------
function drawDatasets() {
  const body = $("#datasets tbody");
  body.replaceChildren();
  $("#datasets-empty").hidden = state.datasets.length > 0;
  $("#datasets").hidden = state.datasets.length === 0;
  for (const d of state.datasets) {
    const tr = el("tr", { class: "click", "data-id": d.id, title: d.description || d.id },
      el("td", { text: d.project }), el("td", { text: d.name }), el("td", { text: d.version }),
      el("td", {}, el("span", { class: `state ${d.status}`, text: d.status }), extrasBadge(d)),
      el("td", { class: "mono", text: d.id.slice(0, 8) }));
    tr.addEventListener("click", guard(() => selectVersion(d.commit || d.id)));
    body.append(tr);
  }
}

function extrasBadge(d) {
  const parts = [["artifacts", "artifact"], ["reports", "report"], ["properties", "property"], ["metadata", "metadata"]]
    .filter(([k]) => d[k]).map(([k, one]) => `${d[k]} ${d[k] === 1 ? one : k}`);
  return parts.length ? el("span", { class: "extras", text: " ◆", title: parts.join(", ") }) : "";
}

// -- one version's files --------------------------------------------------------------------
function versionLabel(rev) {
  const c = state.byId.get(rev);
  if (c) {
    const names = c.labels.filter((l) => l.kind !== "head").map((l) => l.name);
    return `${short(c.id)}${names.length ? " (" + names.join(", ") + ")" : ""}`;
  }
  const d = state.datasets.find((x) => x.id === rev);
  return d ? `draft ${d.project}/${d.name} ${d.version}` : short(rev);
}

async function selectVersion(rev) {
  state.rev = rev;
  for (const g of document.querySelectorAll("#graph .node")) g.classList.toggle("selected", g.dataset.id === rev);
  for (const tr of document.querySelectorAll("#datasets tbody tr")) {
    const d = state.datasets.find((x) => x.id === tr.dataset.id);
    tr.classList.toggle("selected", !!d && (d.commit || d.id) === rev);
  }
  const node = document.querySelector(`#graph .node[data-id="${CSS.escape(rev)}"]`);
  if (node) node.scrollIntoView({ block: "nearest" });
  const c = state.byId.get(rev);
  $("#ver-title").textContent = "— " + versionLabel(rev);
  $("#ver-meta").textContent = c
    ? `${c.created.replace("T", " ").replace("Z", " UTC")} · ${c.author} · ${c.message.split("\n")[0]}`
    : "draft dataset (not finalized)";
  if (c && c.parents.length) setSelect("#diff-a", c.parents[0]);
  setSelect("#diff-b", rev);
  const d = state.datasets.find((x) => (x.commit || x.id) === rev);
  await Promise.all([openFolder(""), d ? showDataset(d.id) : hideDataset()]);
}

async function openFolder(path) {
  const data = await api("tree", { rev: state.rev, path });
  state.path = data.path;
  const crumbs = $("#crumbs");
  crumbs.replaceChildren();
  const parts = data.path ? data.path.split("/") : [];
  crumbs.append(el("a", { text: "root", onclick: guard(() => openFolder("")) }));
  parts.forEach((part, i) => {
    const to = parts.slice(0, i + 1).join("/");
    crumbs.append(" / ", el("a", { text: part, onclick: guard(() => openFolder(to)) }));
  });
  const body = $("#files tbody");
  body.replaceChildren();
  for (const d of data.folders) {
    body.append(el("tr", { class: "click dir", "data-path": d.path, onclick: guard(() => openFolder(d.path)) },
      el("td", {}, el("span", { class: "icon", text: "▸" }), d.name + "/"),
      el("td", { class: "num", text: human(d.bytes), title: d.bytes === null ? "" : `${d.bytes} bytes` }),
      el("td", { class: "num", text: d.files === null ? "" : String(d.files) })));
  }
  for (const f of data.files) {
    body.append(el("tr", { class: "click file", "data-path": f.path, onclick: guard(() => preview(state.rev, f.path)) },
      el("td", {}, el("span", { class: "icon", text: f.kind === "link" ? "↪" : f.kind === "external" ? "⇗" : "·" }), f.name),
      el("td", { class: "num", text: human(f.size), title: `${f.size} bytes` }),
      el("td", { class: "num muted", text: f.kind === "file" ? "" : f.kind })));
  }
  if (data.more_files) body.append(el("tr", {}, el("td", { class: "muted", text: `… and ${data.more_files} more files` })));
  if (!data.folders.length && !data.files.length) body.append(el("tr", {}, el("td", { class: "muted", text: "(empty)" })));
}

// -- compare --------------------------------------------------------------------------------
function fillSelects() {
  for (const sel of ["#diff-a", "#diff-b"]) {
    const select = $(sel);
    select.replaceChildren();
    for (const c of state.commits) {
      select.append(el("option", { value: c.id, text: `${versionLabel(c.id)} ${(c.message || "").split("\n")[0].slice(0, 40)}` }));
    }
    for (const d of state.datasets.filter((x) => !x.commit)) {
      select.append(el("option", { value: d.id, text: versionLabel(d.id) }));
    }
  }
  if (state.commits.length > 1) setSelect("#diff-a", state.commits[1].id);
}

function setSelect(sel, value) {
  const select = $(sel);
  if ([...select.options].some((o) => o.value === value)) select.value = value;
}

async function compare() {
  const a = $("#diff-a").value, b = $("#diff-b").value;
  if (!a || !b) return;
  const data = await api("diff", { a, b });
  const s = data.stat;
  const box = $("#diff");
  box.replaceChildren(el("p", { class: "summary", text:
    `${s.added} added (${human(s.bytes_added)}), ${s.removed} removed (${human(s.bytes_removed)}), ` +
    `${s.modified} modified, ${s.renamed} renamed` + (data.truncated ? " — long lists cut" : "") }));
  if (!s.added && !s.removed && !s.modified && !s.renamed) {
    box.append(el("p", { class: "muted", text: "The two versions hold the same files." }));
    return;
  }
  const body = el("tbody");
  const row = (kind, mark, path, size, rev, shown = path) => body.append(el("tr",
    { class: `click ${kind}`, "data-path": path, onclick: guard(() => preview(rev, path)) },
    el("td", { class: "st", text: mark }), el("td", { text: shown }), el("td", { class: "num", text: size })));
  for (const r of data.added) row("added", "A", r.path, human(r.size), b);
  for (const r of data.removed) row("removed", "D", r.path, human(r.size), a);
  for (const r of data.modified) row("modified", "M", r.path, `${human(r.old_size)} → ${human(r.size)}`, b);
  for (const r of data.renamed) row("renamed", "R", r.to, human(r.size), b, `${r.from} → ${r.to}`);
  box.append(el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, el("th", {}), el("th", { text: "Path" }), el("th", { class: "num", text: "Size" }))),
    body));
}

// -- preview --------------------------------------------------------------------------------
async function preview(rev, path) {
  const data = await api("preview", { rev, path });
  $("#preview-title").textContent = `— ${path} @ ${versionLabel(rev)} · ${human(data.size)}`;
  renderPreview($("#preview"), data, `/api/raw?${new URLSearchParams({ rev, path })}`, path);
}

function blobUrl(id, hash) { return `/api/blob?${new URLSearchParams({ id, hash })}`; }

async function previewBlob(id, hash, title) {
  const data = await api("attachment", { id, hash });
  $("#preview-title").textContent = `— ${title} · ${human(data.size)}`;
  renderPreview($("#preview"), data, blobUrl(id, hash), title, { id, hash });
  $("#preview-card").scrollIntoView({ block: "nearest" });
}

// A table blob, TABLE_ROWS rows at a time from row ``start`` (the server reads it as a stream).
async function showTablePage(box, source, start) {
  const data = await api("attachment", { id: source.id, hash: source.hash, start });
  renderPreview(box, data, blobUrl(source.id, source.hash), "", source);
}

function pager(box, data, source) {
  const total = data.total_rows ?? source.total ?? null;
  const first = data.start + 1, last = data.start + data.rows.length;
  const step = Math.max(data.rows.length, 50);
  const prev = el("button", { class: "prev", text: "◀ previous", type: "button" });
  const next = el("button", { class: "next", text: "next ▶", type: "button" });
  prev.disabled = data.start === 0;
  next.disabled = !data.more;
  prev.addEventListener("click", guard(() => showTablePage(box, source, Math.max(0, data.start - step))));
  next.addEventListener("click", guard(() => showTablePage(box, source, data.start + data.rows.length)));
  const where = data.rows.length ? `rows ${first}–${last}` : "no rows";
  return el("div", { class: "pager" }, prev,
    el("span", { class: "muted", text: ` ${where}${total === null ? "" : ` of ${total}`}, ${data.columns.length} columns ` }),
    next);
}

function gridTable(columns, rows, cls = "") {
  const head = el("tr", {}, ...columns.map((c) => el("th", { text: c === null ? "" : String(c) })));
  const body = el("tbody", {}, ...rows.map((r) =>
    el("tr", {}, ...r.map((v) => el("td", { text: v === null || v === undefined ? "" : String(v) })))));
  return el("table", { class: `grid ${cls}` }, el("thead", {}, head), body);
}

// Everything here is set as text or as an attribute this page builds: data never becomes markup.
// ``source`` ({id, hash, total?}): the blob a table came from, so its pages can be walked.
function renderPreview(box, data, rawUrl, label, source = null) {
  box.replaceChildren();
  const note = (text) => box.append(el("p", { class: "muted", text }));
  switch (data.type) {
    case "text":
      box.append(el("pre", { text: data.text }));
      if (data.truncated) note(`First ${human(data.text.length)} shown.`);
      break;
    case "table": {
      box.append(gridTable(data.columns, data.rows, data.format));
      if (source && typeof data.start === "number" && (data.more || data.start > 0)) {
        box.append(pager(box, data, source));
        break;
      }
      const total = data.total_rows === null ? "" : ` of ${data.total_rows}`;
      note(`${data.format.toUpperCase()}: first ${data.rows.length} rows${total}, ${data.columns.length} columns.`);
      break;
    }
    case "image":
      if (data.too_large) { note("Image too large to show here."); break; }
      box.append(el("img", { src: rawUrl, alt: label }));
      break;
    case "media":
      if (data.too_large) { note("Media too large to play here."); break; }
      box.append(el(data.content_type.startsWith("video/") ? "video" : "audio", { src: rawUrl, controls: "" }));
      break;
    case "json": {
      const text = el("pre", { class: "json", text: JSON.stringify(data.value, null, 2) });
      if (isPlotly(data.value)) {
        box.append(plotlyChart(data.value), el("details", {}, el("summary", { text: "figure JSON" }), text));
      } else box.append(text);
      break;
    }
    case "array":
      note(`Array of shape (${data.shape.join(", ")}), dtype ${data.dtype}:`);
      box.append(el("pre", { text: data.text }));
      break;
    case "archive":
      box.append(gridTable(["File", "Size"], data.files.map((f) => [f.name, human(f.size)])));
      if (data.more) note(`… and ${data.more} more entries`);
      break;
    case "link": note(`Symbolic link to ${data.target}`); break;
    case "external": note(`External file, stored as its URL: ${data.url}`); break;
    case "binary":
      note("Binary file. First bytes:");
      box.append(el("pre", { text: data.head_hex.replace(/(..)/g, "$1 ").trim() }));
      break;
    default: note(data.message || "No preview.");
  }
}

// -- charts (SVG built from numbers only) ---------------------------------------------------
function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }

// series: [{name, points: [[x, y], ...]}]; bars: draw y as bars at x = 0..n-1
function chart(series, { bars = false, xlabels = null, title = "" } = {}) {
  const W = 520, H = 220, L = 48, R = 12, T = 12, B = 28;
  const pts = series.flatMap((s) => s.points).filter((p) => num(p[0]) !== null && num(p[1]) !== null);
  const box = svg("svg", { class: "chart", width: W, height: H, role: "img", "aria-label": title || "chart" });
  if (!pts.length) return el("p", { class: "muted", text: "No numeric points to draw." });
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(0, ...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (bars) { x0 -= 0.5; x1 += 0.5; }
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y1 += 1; }
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const Y = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  box.append(svg("rect", { class: "frame", x: L, y: T, width: W - L - R, height: H - T - B }));
  const label = (x, y, text, anchor) => {
    const t = svg("text", { x, y, "text-anchor": anchor });
    t.textContent = text;
    box.append(t);
  };
  const fmt = (v) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(1) : String(+v.toFixed(3)));
  label(L - 4, T + 8, fmt(y1), "end");
  label(L - 4, H - B, fmt(y0), "end");
  if (!bars) { label(L, H - 8, fmt(x0), "start"); label(W - R, H - 8, fmt(x1), "end"); }
  series.forEach((s, i) => {
    const colour = EDGE_COLOURS[(i + 1) % EDGE_COLOURS.length];
    const ps = s.points.filter((p) => num(p[0]) !== null && num(p[1]) !== null);
    if (bars) {
      const w = Math.max(1, (W - L - R) / (x1 - x0) / (series.length + 0.5));
      for (const [x, y] of ps) {
        box.append(svg("rect", { class: "bar", x: X(x) - w * series.length / 2 + i * w, y: Math.min(Y(y), Y(0)),
          width: w, height: Math.abs(Y(0) - Y(y)), fill: colour }));
      }
    } else {
      box.append(svg("polyline", { class: "line", fill: "none", stroke: colour,
        points: ps.map(([x, y]) => `${X(x)},${Y(y)}`).join(" ") }));
    }
  });
  if (bars && xlabels) {
    xlabels.slice(0, 40).forEach((t, i) => label(X(i), H - 8, String(t).slice(0, 12), "middle"));
  }
  const wrap = el("div", { class: "chart-wrap" }, box);
  if (series.length > 1 || (series[0] && series[0].name)) {
    wrap.append(el("div", { class: "legend" }, ...series.map((s, i) =>
      el("span", { class: `key c${(i + 1) % EDGE_COLOURS.length}`, text: `■ ${s.name || ""}` }))));
  }
  return wrap;
}

function isPlotly(v) { return v && typeof v === "object" && Array.isArray(v.data); }

function plotlyChart(fig) {
  const traces = fig.data.filter((t) => t && Array.isArray(t.y));
  if (!traces.length) return el("p", { class: "muted", text: "Plotly figure (no x/y traces to draw here):" });
  const bars = traces.every((t) => t.type === "bar" || t.type === "histogram");
  const series = traces.map((t) => ({ name: t.name || "",
    points: t.y.map((y, i) => [bars ? i : (Array.isArray(t.x) ? t.x[i] : i), y]) }));
  const xlabels = bars && Array.isArray(traces[0].x) ? traces[0].x : null;
  return chart(series, { bars, xlabels });
}

// -- a dataset's artifacts, reports, properties and metadata ----------------------------------
function hideDataset() {
  $("#dataset-card").hidden = true;
  $("#ds-body").replaceChildren();
}

function section(title, ...children) {
  return el("div", { class: "ds-section" }, el("h3", { text: title }), ...children);
}

async function showDataset(id) {
  const d = await api("dataset", { id });
  state.dataset = d;
  $("#ds-title").textContent = `— ${d.project}/${d.name} ${d.version} · ${d.status} · ${d.id}`;
  const body = $("#ds-body");
  body.replaceChildren();
  if (d.artifacts.length) body.append(section("Artifacts", artifactsTable(d)));
  if (d.metadata.length) body.append(section("Metadata", ...d.metadata.map((m) => metadataBlock(d, m))));
  if (d.properties.length) {
    body.append(section("User properties", gridTable(["Name", "Value", "Description"],
      d.properties.map((p) => [p.name, p.value, p.description || ""]), "props")));
  }
  if (d.parameters.length) body.append(section("Parameters", gridTable(["Name", "Value"], d.parameters, "params")));
  if (d.reports.length) body.append(section("Reports", ...reportBlocks(d)));
  if (!body.children.length) {
    body.append(el("p", { class: "muted", text: "No artifacts, reports, properties or metadata." }));
  }
  $("#dataset-card").hidden = false;
}

function artifactsTable(d) {
  const body = el("tbody");
  for (const a of d.artifacts) {
    const meta = Object.entries(a.metadata).map(([k, v]) => `${k}=${v}`).join(", ");
    const tr = el("tr", { class: a.blob ? "click artifact" : "artifact", "data-name": a.name, title: a.preview || "" },
      el("td", { text: a.name }), el("td", { text: a.type || "" }),
      el("td", { class: "num", text: human(a.size) }), el("td", { class: "muted", text: a.url || meta }));
    if (a.blob) tr.addEventListener("click", guard(() => previewBlob(d.id, a.blob.hash, `artifact ${a.name}`)));
    body.append(tr);
  }
  return el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, el("th", { text: "Name" }), el("th", { text: "Type" }),
      el("th", { class: "num", text: "Size" }), el("th", { text: "Metadata / URL" }))), body);
}

function metadataBlock(d, m) {
  const block = el("div", { class: "meta-item", "data-name": m.name }, el("h4", { text: m.name }));
  if (m.kind === "json") {
    block.append(el("pre", { class: "json", text: JSON.stringify(m.value, null, 2) }));
  } else if (m.blob) {
    const shape = Array.isArray(m.shape) ? m.shape.join(" x ") : "";
    block.append(el("p", { class: "muted", text: m.kind === "pandas" ? `DataFrame ${shape}` : `array ${shape} ${m.dtype || ""}` }));
    const box = el("div", { class: "meta-preview" });
    block.append(box);
    api("attachment", { id: d.id, hash: m.blob.hash })
      .then((data) => renderPreview(box, data, blobUrl(d.id, m.blob.hash), m.name, { id: d.id, hash: m.blob.hash }))
      .catch((e) => showError(e.message));
  }
  return block;
}

function reportHeader(r) {
  const it = r.iteration === null || r.iteration === undefined ? "" : ` · iteration ${r.iteration}`;
  return el("h4", { text: `${r.title} / ${r.series}${it}` });
}

function reportBlocks(d) {
  const out = [];
  const scalars = d.reports.filter((r) => r.kind === "scalar");
  const singles = d.reports.filter((r) => r.kind === "single_value");
  const texts = d.reports.filter((r) => r.kind === "text");
  if (singles.length) {
    out.push(el("div", { class: "report single_value" }, el("h4", { text: "Single values" }),
      gridTable(["Name", "Value"], singles.map((r) => [r.series, r.value]))));
  }
  if (scalars.length) {
    out.push(el("div", { class: "report scalar" }, el("h4", { text: "Scalars" }),
      gridTable(["Title", "Series", "Iteration", "Value"], scalars.map((r) => [r.title, r.series, r.iteration, r.value]))));
  }
  for (const r of d.reports) {
    if (["scalar", "single_value", "text"].includes(r.kind)) continue;
    const block = el("div", { class: `report ${r.kind}`, "data-index": String(r.index) }, reportHeader(r));
    reportBody(d, r, block);
    out.push(block);
  }
  if (texts.length) {
    const log = el("div", { class: "report text" }, el("h4", { text: "Log" }),
      el("pre", { text: texts.map((r) => String(r.msg) + (r.truncated ? " …" : "")).join("\n") }));
    for (const r of texts.filter((t) => t.truncated && t.blob)) {  // a long line: its start is kept inline
      log.append(el("p", {}, el("a", { class: "open long-text", text: `a long line in full (${human(r.blob.size)}) — preview`,
        onclick: guard(() => previewBlob(d.id, r.blob.hash, "log line")) })));
    }
    out.push(log);
  }
  return out;
}

const DRAWN = ["histogram", "scatter2d", "line_plot", "confusion_matrix"];

// A report whose large fields are kept in a JSON blob (``in_blob``): drawn once they are read.
function spilledBody(d, r, block) {
  const open = () => el("a", { class: "open", text: `data (${human(r.blob.size)}) — preview`,
    onclick: guard(() => previewBlob(d.id, r.blob.hash, `${r.title} / ${r.series}`)) });
  if (!DRAWN.includes(r.kind)) { block.append(open()); return; }
  const box = el("div", { class: "spilled" });
  block.append(box);
  api("attachment", { id: d.id, hash: r.blob.hash }).then((data) => {
    const value = data.type === "json" ? data.value : null;
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      box.append(el("p", { class: "muted", text: "Too much data to draw here." }), open());
      return;
    }
    const whole = { ...r };
    delete whole.in_blob; delete whole.blob; delete whole.comment;  // the comment is shown already
    for (const k of r.in_blob) {
      if (typeof k === "string" && k !== "__proto__" && Object.prototype.hasOwnProperty.call(value, k)) whole[k] = value[k];
    }
    reportBody(d, whole, box);
  }).catch((e) => showError(e.message));
}

function numbers(values) {
  return Array.isArray(values) ? values : [];
}

function reportBody(d, r, block) {
  const add = (...nodes) => block.append(...nodes);
  if (r.comment) add(el("p", { class: "muted", text: String(r.comment) }));
  if (r.kind !== "table" && r.blob && Array.isArray(r.in_blob)) { spilledBody(d, r, block); return; }
  switch (r.kind) {
    case "table": {
      const rows = numbers(r.rows);
      const box = el("div", { class: "table-box" });
      add(box);
      if (rows.length) box.append(gridTable(rows[0], rows.slice(1), "report-table"));
      if (r.total_rows) {
        const cols = r.total_columns > (rows[0] || []).length ? `, ${rows[0].length} of ${r.total_columns} columns` : "";
        add(el("p", { class: "muted", text: `first ${Math.max(0, rows.length - 1)} of ${r.total_rows} rows kept${cols}` }));
      }
      if (r.blob) {
        const source = { id: d.id, hash: r.blob.hash, total: r.total_rows ?? null };
        add(el("a", { class: "open full-table", text: `all ${r.total_rows ?? ""} rows (${human(r.blob.size)}) — show`,
          onclick: guard(() => showTablePage(box, source, 0)) }));
      }
      if (r.url) add(el("p", { class: "muted", text: `CSV at ${r.url} (not fetched)` }));
      break;
    }
    case "histogram": {
      const vals = numbers(r.values);
      const multi = vals.length && Array.isArray(vals[0]);
      const cols = multi ? vals[0].map((_, j) => vals.map((row) => row[j])) : [vals];
      const labels = numbers(r.labels);
      add(chart(cols.map((c, j) => ({ name: labels[j] || "", points: c.map((y, i) => [i, y]) })),
        { bars: true, xlabels: numbers(r.xlabels), title: r.title }));
      break;
    }
    case "scatter2d":
      add(chart([{ name: r.series, points: numbers(r.points) }], { title: r.title }));
      break;
    case "line_plot":
      add(chart(numbers(r.lines).map((l) => ({ name: l.name, points: numbers(l.points) })), { title: r.title }));
      break;
    case "confusion_matrix": {
      const m = numbers(r.matrix);
      const xl = numbers(r.xlabels), yl = numbers(r.ylabels);
      add(gridTable(["", ...(m[0] || []).map((_, j) => xl[j] ?? j)], m.map((row, i) => [yl[i] ?? i, ...numbers(row)]), "matrix"));
      break;
    }
    case "image": case "matplotlib": case "media":
      if (r.blob) {
        const url = blobUrl(d.id, r.blob.hash);
        const ctype = r.content_type || "";
        if (ctype.startsWith("image/")) add(el("img", { src: url, alt: `${r.title} / ${r.series}` }));
        else if (ctype.startsWith("audio/")) add(el("audio", { src: url, controls: "" }));
        else if (ctype.startsWith("video/")) add(el("video", { src: url, controls: "" }));
        else {
          add(el("a", { class: "open", text: `${r.file || "file"} (${human(r.blob.size)}) — preview`,
            onclick: guard(() => previewBlob(d.id, r.blob.hash, `${r.title} / ${r.series}`)) }));
        }
      } else if (r.url) add(el("p", { class: "muted", text: `At ${r.url} (not fetched)` }));
      break;
    case "plotly": {
      if (!r.blob) break;
      const box = el("div", { class: "plotly" });
      add(box);
      api("attachment", { id: d.id, hash: r.blob.hash })
        .then((data) => renderPreview(box, data, blobUrl(d.id, r.blob.hash), r.title))
        .catch((e) => showError(e.message));
      break;
    }
    default: {
      const { index, kind, title, series, blob, ...rest } = r;
      add(el("pre", { class: "json", text: JSON.stringify(rest, null, 2) }));
    }
  }
}

// ``#dataset=ID`` (the page ``dataset._task.get_output_log_web_page()`` names) opens that dataset
async function openFromHash() {
  const m = /(?:^#|&)dataset=([0-9a-f]{4,32})/.exec(location.hash);
  if (!m) return false;
  const d = state.datasets.find((x) => x.id.startsWith(m[1]));
  if (!d) { showError(`no dataset ${m[1]} in this store`); return true; }
  await selectVersion(d.commit || d.id);
  $("#dataset-card").scrollIntoView({ block: "start" });
  return true;
}

// -- start ----------------------------------------------------------------------------------
async function start() {
  const [summary, graph, datasets] = await Promise.all([api("summary"), api("graph"), api("datasets")]);
  $("#store-path").textContent = summary.worktree;
  const head = $("#head-info");
  head.replaceChildren(summary.head
    ? el("span", {}, "HEAD ", el("code", { text: short(summary.head) }), summary.branch ? ` on ${summary.branch}` : " (detached)")
    : "no version yet");
  state.commits = graph.commits;
  state.truncated = graph.truncated;
  state.byId = new Map(graph.commits.map((c) => [c.id, c]));
  state.datasets = datasets;
  drawDatasets();
  drawGraph();
  fillSelects();
  $("#diff-go").addEventListener("click", guard(compare));
  window.addEventListener("hashchange", guard(openFromHash));
  const first = summary.head || (graph.commits[0] && graph.commits[0].id);
  if (!(await openFromHash()) && first) await selectVersion(first);
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", guard(start));
