// The HTML of GET /dashboard (http/observability_routes.hpp): one page, no external assets. Its script draws the
// history of GET /api/performance with Chart.js (served by /dashboard/chart.js from the binary), marks the alerts of
// GET /api/alerts on every chart, lists the upstreams' breakers and the largest mailboxes, and refreshes every sample
// interval. It holds no data itself: with no token, or a refused one, it asks for an admin token, kept in this tab's
// sessionStorage (a #token=... fragment is taken and removed from the address bar). Every value from the server is
// inserted as text, never as HTML. Once drawn, <body> gets data-charts-ready (the charts with at least one value)
// and data-points (the samples drawn): the Chromium test waits on those.

#include "http/observability_routes.hpp"

namespace troupe::http {

namespace {

constexpr const char* page_head = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Troupe · performance</title>
<style nonce="@NONCE@">
:root { --bg: #f4f6fa; --card: #fff; --ink: #1b2233; --muted: #667085; --line: #e4e8f0; --ok: #1a7f4b;
        --warn: #b86e00; --crit: #c0262d; --accent: #3559d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .75rem 1.5rem; padding: .9rem 1.5rem;
         background: #141a2b; color: #e8ecf5; }
header h1 { font-size: 1.15rem; margin: 0; font-weight: 650; letter-spacing: .01em; }
header .meta { color: #aab3c7; font-size: .85rem; }
header .spacer { flex: 1; }
.windows button { background: #222a40; color: #cfd6e6; border: 1px solid #323c58; padding: .3rem .7rem;
                  font: inherit; font-size: .85rem; cursor: pointer; }
.windows button:first-child { border-radius: 6px 0 0 6px; } .windows button:last-child { border-radius: 0 6px 6px 0; }
.windows button.on { background: var(--accent); border-color: var(--accent); color: #fff; }
label.pause { font-size: .85rem; color: #cfd6e6; }
main { padding: 1.1rem 1.5rem 2rem; max-width: 1600px; margin: 0 auto; }
#status { color: var(--muted); margin: 0 0 .8rem; min-height: 1.2em; } #status.error { color: var(--crit); }
#auth { display: none; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem;
        margin-bottom: 1rem; }
#auth input { width: 32rem; max-width: 100%; padding: .35rem .5rem; font: inherit; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .7rem; margin-bottom: 1rem; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: .65rem .8rem;
        border-left: 4px solid var(--ok); }
.tile.warn { border-left-color: var(--warn); } .tile.crit { border-left-color: var(--crit); }
.tile.none { border-left-color: var(--line); }
.tile .k { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; }
.tile .v { font-size: 1.45rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .u { color: var(--muted); font-size: .8rem; margin-left: .15rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: .8rem 1rem 1rem; }
.card h2 { font-size: .95rem; margin: 0 0 .5rem; font-weight: 620; }
.card .sub { color: var(--muted); font-weight: 400; font-size: .8rem; margin-left: .4rem; }
.chart { position: relative; height: 220px; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; }
th, td { text-align: left; padding: .3rem .45rem; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; font-size: .78rem; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.chip { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .78rem; font-weight: 600; }
.chip.closed, .chip.resolved { background: #e3f4ea; color: var(--ok); }
.chip.half_open, .chip.warning { background: #fff1dc; color: var(--warn); }
.chip.open, .chip.critical { background: #fde5e6; color: var(--crit); }
.empty { color: var(--muted); font-style: italic; }
.card h2.next { margin-top: 1rem; }
.row2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1rem; margin: 1rem 0; }
</style>
</head>
<body>
<header>
  <h1>Troupe performance</h1>
  <span class="meta" id="meta">—</span>
  <span class="spacer"></span>
  <span class="windows" id="windows"></span>
  <label class="pause"><input id="pause" type="checkbox"> pause</label>
</header>
<main>
<div id="auth">The performance routes want an admin credential (an access token or an API key of an admin):
  <div><input id="token" type="password" placeholder="Bearer token"> <button id="save">Use it</button></div></div>
<p id="status">loading…</p>
<section class="tiles" id="tiles"></section>
<section class="row2">
  <div class="card"><h2>Alerts<span class="sub" id="alert-sub"></span></h2><table id="alerts"><thead><tr><th>rule</th>
    <th>severity</th><th>state</th><th class="num">value</th><th>when</th><th>message</th></tr></thead><tbody></tbody></table></div>
  <div class="card"><h2>Upstreams</h2><table id="upstreams"><thead><tr><th>upstream</th><th>breaker</th>
    <th class="num">calls/s</th><th class="num">errors</th><th class="num">p95 ms</th></tr></thead><tbody></tbody></table>
    <h2 class="next" id="mb-title">Largest mailboxes</h2><table id="mailboxes"><thead><tr><th>actor</th>
    <th class="num">queued</th></tr></thead><tbody></tbody></table></div>
</section>
<section class="grid" id="charts"></section>
</main>
<script src="/dashboard/chart.js" nonce="@NONCE@"></script>
)HTML";

constexpr const char* page_script = R"JS(
"use strict";
const windows = [["15m", 15 * 60e3], ["1h", 3600e3], ["6h", 6 * 3600e3], ["24h", 24 * 3600e3]];
let windowName = "15m";
let refreshMs = 5000;
let timer = null;
const charts = {};
let rules = {};
let statusInfo = null;
let statusAsked = 0;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// A #token=... fragment (for a link an admin opens once): kept for this tab, removed from the address bar.
(function takeFragmentToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("troupe-admin-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function token() { return sessionStorage.getItem("troupe-admin-token") || ""; }

async function getJSON(path) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  const res = await fetch(path, {headers, cache: "no-store"});
  if (res.status === 401 || res.status === 403) {
    document.getElementById("auth").style.display = "block";
    throw new Error(res.status === 401 ? "an admin token is needed" : "this token is not an admin's");
  }
  if (!res.ok) {
    let detail = "";
    try { detail = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(path + ": HTTP " + res.status + (detail ? " (" + detail + ")" : ""));
  }
  return res.json();
}

document.getElementById("save").addEventListener("click", () => {
  sessionStorage.setItem("troupe-admin-token", document.getElementById("token").value.trim());
  document.getElementById("auth").style.display = "none";
  refresh();
});

const winBox = document.getElementById("windows");
for (const [name] of windows) {
  const b = el("button", name);
  b.addEventListener("click", () => { windowName = name; markWindow(); refresh(); });
  winBox.appendChild(b);
}
function markWindow() {
  for (const b of winBox.children) b.className = b.textContent === windowName ? "on" : "";
}
markWindow();
document.getElementById("pause").addEventListener("change", e => { if (!e.target.checked) refresh(); });

// --- formatting ---
function clock(ms) {
  const d = new Date(ms);
  const two = n => String(n).padStart(2, "0");
  return two(d.getHours()) + ":" + two(d.getMinutes()) + (windowName === "15m" ? ":" + two(d.getSeconds()) : "");
}
function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  if (Math.abs(v) >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number(v).toFixed(digits === undefined ? (Math.abs(v) < 10 ? 1 : 0) : digits);
}
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

// --- alert markers: a vertical line per alert event in the window, on every chart ---
let alertEvents = [];
const alertMarkers = {
  id: "alertMarkers",
  afterDatasetsDraw(chart) {
    const x = chart.scales.x;
    if (!x) return;
    const ctx = chart.ctx;
    ctx.save();
    for (const e of alertEvents) {
      if (e.at_ms < x.min || e.at_ms > x.max) continue;
      const px = x.getPixelForValue(e.at_ms);
      ctx.strokeStyle = e.state === "resolved" ? "#1a7f4b" : e.severity === "critical" ? "#c0262d" : "#b86e00";
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(px, chart.chartArea.top);
      ctx.lineTo(px, chart.chartArea.bottom);
      ctx.stroke();
    }
    // Threshold lines (warn, critical) where they fall inside the chart's range: they never stretch the scale.
    const y = chart.scales.y;
    for (const th of chart.$thresholds || []) {
      if (th.y < y.min || th.y > y.max) continue;
      const py = y.getPixelForValue(th.y);
      ctx.strokeStyle = th.color;
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(chart.chartArea.left, py);
      ctx.lineTo(chart.chartArea.right, py);
      ctx.stroke();
    }
    ctx.restore();
  }
};

const palette = ["#3559d6", "#e0662b", "#1a9c77", "#a142c9", "#c0262d", "#7a8499", "#d4a20b", "#1d8fc4"];

// Each chart: its title, unit, and how to get its lines from /api/performance's series.
const chartSpecs = [
  {id: "cpu", title: "CPU and memory", unit: "%", max: 100, lines: s => [
    ["machine CPU", s.cpu_machine_pct], ["process CPU", s.cpu_process_pct], ["memory", s.memory_pct]],
    thresholds: () => [rules.cpu, rules.memory]},
  {id: "rps", title: "Requests per second", unit: "req/s", stacked: true, lines: s =>
    Object.entries(s.families).filter(([name]) => name !== "ops").map(([name, f]) => [name, f.rps])},
  {id: "latency", title: "Response time", unit: "ms", sub: "all routes but health, metrics and ops", lines: s => [
    ["p50", s.http.p50_ms], ["p95", s.http.p95_ms], ["p99", s.http.p99_ms]], thresholds: () => [rules.response_time]},
  {id: "errors", title: "Errors", unit: "% 5xx", lines: s => [["5xx", s.http.error_rate.map(v => v === null ? null : 100 * v)]],
    thresholds: () => [rules.error_rate]},
  {id: "cache", title: "Cache hit rate", unit: "%", max: 100, lines: s => [
    ["hit rate", s.cache_hit_rate.map(v => v === null ? null : 100 * v)]], thresholds: () => [rules.cache_hit_rate]},
  {id: "db", title: "Database commit time", unit: "ms", lines: s => [["mean commit", s.db_commit_ms]],
    thresholds: () => [rules.db_latency]},
  {id: "upstreams", title: "Upstream latency", unit: "p95 ms", lines: s =>
    Object.entries(s.upstreams).map(([name, u]) => [name, u.p95_ms])},
  {id: "network", title: "Network", unit: "bytes/s", lines: s => [["in", s.net_in_bps], ["out", s.net_out_bps]]},
  {id: "load", title: "Connections and streams", unit: "", lines: s => [
    ["connections", s.connections], ["streams", s.streams], ["sessions", s.sessions], ["in flight", s.in_flight]]},
  {id: "mailboxes", title: "Mailbox backlog", unit: "messages", lines: s => [
    ["all named actors", s.mailbox_total], ["largest", s.mailbox_max]]},
];

function thresholds(spec) {
  const out = [];
  if (!spec.thresholds) return out;
  for (const r of spec.thresholds())
    if (r) out.push({y: r.warn, color: "#b86e00"}, {y: r.critical, color: "#c0262d"});
  return out;
}

function ensureChart(spec) {
  if (charts[spec.id]) return charts[spec.id];
  const card = el("div", null, "card");
  const h = el("h2", spec.title);
  h.appendChild(el("span", spec.unit + (spec.sub ? " · " + spec.sub : ""), "sub"));
  card.appendChild(h);
  const box = el("div", null, "chart");
  const canvas = document.createElement("canvas");
  box.appendChild(canvas);
  card.appendChild(box);
  document.getElementById("charts").appendChild(card);
  charts[spec.id] = new Chart(canvas, {
    type: "line",
    data: {datasets: []},
    plugins: [alertMarkers],
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
      interaction: {mode: "nearest", axis: "x", intersect: false},
      scales: {
        x: {type: "linear", ticks: {callback: v => clock(v), maxTicksLimit: 8}, grid: {color: "#eef1f6"}},
        y: {beginAtZero: true, stacked: !!spec.stacked, suggestedMax: spec.max, grid: {color: "#eef1f6"},
            ticks: {callback: v => fmt(v)}}
      },
      plugins: {
        legend: {labels: {boxWidth: 12, usePointStyle: true}},
        tooltip: {callbacks: {title: items => items.length ? new Date(items[0].parsed.x).toLocaleTimeString() : ""}}
      }
    }
  });
  return charts[spec.id];
}

function drawCharts(perf) {
  const s = perf.series;
  const t = s.t;
  let drawn = 0;
  for (const spec of chartSpecs) {
    const chart = ensureChart(spec);
    const lines = spec.lines(s);
    chart.data.datasets = lines.map(([label, values], i) => ({
      label, data: t.map((x, j) => ({x, y: values[j] === undefined ? null : values[j]})),
      borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length] + (spec.stacked ? "55" : "22"),
      fill: spec.stacked ? (i === 0 ? "origin" : "-1") : false, borderWidth: 1.8, pointRadius: t.length < 40 ? 2 : 0,
      spanGaps: false, tension: 0
    }));
    chart.$thresholds = thresholds(spec);
    // The window, or as much of it as the history holds (a young process fills the chart).
    const now = perf.now_ms;
    chart.options.scales.x.min = t.length ? Math.max(now - perf.window_ms, t[0]) : now - perf.window_ms;
    chart.options.scales.x.max = now;
    chart.update("none");
    if (lines.some(([, values]) => values.some(v => v !== null && v !== undefined))) drawn++;
  }
  return drawn;
}

// --- tiles ---
function level(rule, v) {
  if (!rule || v === null || v === undefined) return "";
  if (rule.fires_below) return v < rule.critical ? "crit" : v < rule.warn ? "warn" : "";
  return v > rule.critical ? "crit" : v > rule.warn ? "warn" : "";
}
function drawTiles(c) {
  const box = document.getElementById("tiles");
  box.replaceChildren();
  if (!c) { box.appendChild(el("p", "No sample yet: the first comes one interval after start.", "empty")); return; }
  const pct = v => v === null ? null : 100 * v;
  const tiles = [
    ["machine CPU", c.cpu_machine_pct, "%", rules.cpu],
    ["process CPU", c.cpu_process_pct, "%", null],
    ["memory", c.memory_pct, "%", rules.memory],
    ["RSS", c.rss_bytes, "B", null],
    ["requests", c.http.rps, "/s", null],
    ["p95", c.http.p95_ms, "ms", rules.response_time],
    ["5xx", pct(c.http.error_rate), "%", rules.error_rate],
    ["cache hits", pct(c.cache_hit_rate), "%", rules.cache_hit_rate],
    ["DB commit", c.db_commit_ms, "ms", rules.db_latency],
    ["connections", c.connections, "", null],
    ["streams", c.streams, "", null],
    ["sessions", c.sessions, "", null],
  ];
  for (const [k, v, unit, rule] of tiles) {
    const lv = level(rule, v);
    const tile = el("div", null, "tile " + (v === null ? "none" : lv));
    tile.appendChild(el("div", k, "k"));
    const value = el("div", fmt(v), "v");
    value.appendChild(el("span", unit, "u"));
    tile.appendChild(value);
    box.appendChild(tile);
  }
}

function drawAlerts(a) {
  const body = document.querySelector("#alerts tbody");
  body.replaceChildren();
  const firing = a.active.length;
  document.getElementById("alert-sub").textContent = firing ? firing + " firing" : "none firing";
  const rows = a.active.map(x => ({rule: x.rule, severity: x.severity, state: "firing", value: x.value, unit: x.unit,
                                   at: x.since_ms, message: ""}))
    .concat(a.recent.slice(0, 12).map(e => ({rule: e.rule, severity: e.severity, state: e.state, value: e.value,
                                             unit: e.unit, at: e.at_ms, message: e.message})));
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "No alert has fired since the start.", "empty");
    td.colSpan = 6;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  for (const r of rows) {
    const tr = el("tr");
    tr.appendChild(el("td", r.rule));
    const sev = el("td"); sev.appendChild(el("span", r.severity, "chip " + r.severity)); tr.appendChild(sev);
    const st = el("td"); st.appendChild(el("span", r.state, "chip " + (r.state === "resolved" ? "resolved" : r.severity)));
    tr.appendChild(st);
    tr.appendChild(el("td", fmt(r.value) + " " + r.unit, "num"));
    tr.appendChild(el("td", ago(r.at)));
    tr.appendChild(el("td", r.message));
    body.appendChild(tr);
  }
}

function drawUpstreams(c) {
  const body = document.querySelector("#upstreams tbody");
  body.replaceChildren();
  const list = c ? c.upstreams : [];
  if (list.length === 0) {
    const tr = el("tr"); const td = el("td", "No upstream configured.", "empty"); td.colSpan = 5;
    tr.appendChild(td); body.appendChild(tr);
  }
  for (const u of list) {
    const tr = el("tr");
    tr.appendChild(el("td", u.name));
    const b = el("td"); b.appendChild(el("span", u.breaker.replace("_", "-"), "chip " + u.breaker)); tr.appendChild(b);
    tr.appendChild(el("td", fmt(u.calls_per_s), "num"));
    tr.appendChild(el("td", u.error_rate === null ? "–" : fmt(100 * u.error_rate) + " %", "num"));
    tr.appendChild(el("td", fmt(u.p95_ms), "num"));
    body.appendChild(tr);
  }
}

function drawMailboxes(top) {
  const body = document.querySelector("#mailboxes tbody");
  body.replaceChildren();
  const busy = top.filter(m => m.size > 0);
  if (busy.length === 0) {
    const tr = el("tr"); const td = el("td", "Every named actor's mailbox is empty.", "empty"); td.colSpan = 2;
    tr.appendChild(td); body.appendChild(tr);
  }
  for (const m of busy) {
    const tr = el("tr");
    tr.appendChild(el("td", m.actor));
    tr.appendChild(el("td", m.size, "num"));
    body.appendChild(tr);
  }
}

async function refresh() {
  clearTimeout(timer);
  const status = document.getElementById("status");
  try {
    const win = windows.find(w => w[0] === windowName)[0];
    // The status (version, uptime) changes slowly: asked once a minute.
    const wantStatus = !statusInfo || Date.now() - statusAsked > 60e3;
    const [perf, alerts, info] = await Promise.all([
      getJSON("/api/performance?window=" + win + "&points=360"), getJSON("/api/alerts"),
      wantStatus ? getJSON("/api/status") : Promise.resolve(statusInfo)]);
    if (wantStatus) { statusInfo = info; statusAsked = Date.now(); }
    rules = {};
    for (const r of alerts.rules) rules[r.rule] = r;
    alertEvents = alerts.recent.filter(e => e.at_ms >= perf.now_ms - perf.window_ms);
    refreshMs = Math.max(1000, perf.sample_ms);
    document.getElementById("meta").textContent = (info.node.node_id || "this node") + " · v" + info.version +
      " (" + info.build.commit + ") · up " + fmt(info.uptime_s / 3600, 1) + " h · sample every " + perf.sample_ms / 1000 + " s";
    drawTiles(perf.current);
    drawAlerts(alerts);
    drawUpstreams(perf.current);
    drawMailboxes(perf.top_mailboxes);
    const drawn = drawCharts(perf);
    document.body.dataset.chartsReady = String(drawn);
    document.body.dataset.points = String(perf.series.t.length);
    status.className = "";
    status.textContent = perf.points + " samples in the last " + windowName + " · updated " +
      new Date(perf.now_ms).toLocaleTimeString();
  } catch (e) {
    status.className = "error";
    status.textContent = String(e.message || e);
  }
  if (!document.getElementById("pause").checked) timer = setTimeout(refresh, refreshMs);
}

if (typeof Chart === "undefined") {
  document.getElementById("status").textContent = "Chart.js did not load (/dashboard/chart.js).";
} else {
  Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', sans-serif";
  Chart.defaults.color = "#667085";
  refresh();
}
)JS";

} // namespace

std::string dashboard_page_html(const std::string& nonce) {
  std::string html = page_head;
  for (size_t at = html.find("@NONCE@"); at != std::string::npos; at = html.find("@NONCE@", at + nonce.size()))
    html.replace(at, 7, nonce);
  html += "<script nonce=\"" + nonce + "\">";
  html += page_script;
  html += "</script>\n</body>\n</html>\n";
  return html;
}

} // namespace troupe::http
