// The HTML of GET /debug/ (http/debug_routes.hpp): one self-contained page, no external assets. Its script reads
// /debug/actors every refresh interval and /debug/actors/{id} on a click, of the node chosen from /debug/nodes in a
// cluster (?node=); every value is inserted as text (never as HTML). When the routes answer 401/403 it asks for an admin token, kept in sessionStorage for this tab only.

#include "http/debug_routes.hpp"

namespace troupe::http {

namespace {

constexpr const char* page_head = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Troupe debug: actors</title>
<style nonce="@NONCE@">
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 2rem; color: #1d2330; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .15rem .5rem; border-bottom: 1px solid #e3e6ee; vertical-align: top; }
th { background: #f3f5f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.hot td { background: #fff1e6; } tr.stopped td { color: #9aa0ad; }
button.link { background: none; border: 0; padding: 0; color: #1f5fd1; cursor: pointer; font: inherit; }
#status { color: #5b6272; } .error { color: #b3261e; } code, pre { font: 12px ui-monospace, monospace; }
pre { white-space: pre-wrap; word-break: break-all; margin: 0; }
#mailbox { border: 1px solid #cfd5e2; padding: .5rem 1rem; margin-top: 1rem; display: none; }
#auth { display: none; margin: .5rem 0; }
</style>
</head>
<body>
<h1>Troupe actors</h1>
<p id="nodes" hidden><label>node <select id="node"></select></label> <span id="node-note"></span></p>
<div id="status">loading…</div>
<div id="auth">This server wants an admin token for its debug routes:
  <input id="token" type="password" size="50" placeholder="Bearer token"> <button id="save">Use it</button></div>
<h2>Top actors by mailbox size</h2>
<table id="top"><thead><tr><th>actor</th><th class="num">mailbox</th><th class="num">busy ms</th><th>type</th></tr></thead><tbody></tbody></table>
<div id="mailbox"></div>
<h2>Supervision tree</h2>
<table id="tree"><thead><tr><th>actor</th><th>type</th><th>state</th><th class="num">mailbox</th>
<th class="num">processed</th><th class="num">restarts</th><th>last error</th><th class="num">uptime</th></tr></thead><tbody></tbody></table>
<p><label><input id="pause" type="checkbox"> pause refreshing</label> (every <span id="interval"></span> ms)</p>
)HTML";

constexpr const char* page_script = R"JS(
"use strict";
const interval = 1000;
const hotThreshold = 100;
let selected = null;
let node = "";   // "" = the node serving this page; else a cluster member's id (?node=)
document.getElementById("interval").textContent = interval;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function headers() {
  const token = sessionStorage.getItem("troupe-debug-token");
  return token ? { "Authorization": "Bearer " + token } : {};
}
async function getJson(url) {
  const res = await fetch(url, { headers: headers(), cache: "no-store" });
  if (res.status === 401 || res.status === 403) {
    document.getElementById("auth").style.display = "block";
    throw new Error("the debug routes answered " + res.status + ": an admin token is needed");
  }
  if (!res.ok) throw new Error(url + " answered " + res.status);
  return res.json();
}
function onNode(url) {
  return node ? url + (url.includes("?") ? "&" : "?") + "node=" + encodeURIComponent(node) : url;
}
async function loadNodes() {
  const data = await getJson("/debug/nodes");
  if (!data.nodes.length) return;
  const select = document.getElementById("node");
  select.replaceChildren();
  for (const m of data.nodes) {
    const option = el("option", m.node_id + (m.node_id === data.node ? " (this node)" : "") +
      (m.state !== "up" ? " — " + m.state : "") + (m.node_id !== data.node && !m.connected ? ", not connected" : ""));
    option.value = m.node_id === data.node ? "" : m.node_id;
    option.selected = option.value === node;
    select.appendChild(option);
  }
  document.getElementById("nodes").hidden = false;
}
document.getElementById("node").addEventListener("change", (e) => {
  node = e.target.value;
  selected = null;
  document.getElementById("mailbox").style.display = "none";
});
function uptime(ms) {
  if (ms === null) return "";
  const s = Math.floor(ms / 1000);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.floor(s / 60) + " min";
  return Math.floor(s / 3600) + " h";
}
function nameCell(a, depth) {
  const td = el("td");
  td.style.paddingLeft = (0.5 + depth * 1.2) + "rem";
  const b = el("button", a.name, "link");
  b.addEventListener("click", () => { selected = a.name; showMailbox(); });
  td.appendChild(b);
  return td;
}
function renderTree(actors) {
  const depth = {};
  const body = document.querySelector("#tree tbody");
  body.replaceChildren();
  for (const a of actors) {
    depth[a.name] = a.supervisor === null ? 0 : (depth[a.supervisor] || 0) + 1;
    const tr = el("tr");
    tr.className = a.state !== "running" ? "stopped" : (a.mailbox_size > hotThreshold ? "hot" : "");
    tr.dataset.actor = a.name;
    tr.appendChild(nameCell(a, depth[a.name]));
    tr.appendChild(el("td", a.type || a.kind));
    tr.appendChild(el("td", a.state + (a.busy_ms > 1000 ? " (busy " + a.busy_ms + " ms)" : "")));
    tr.appendChild(el("td", a.mailbox_size, "num"));
    tr.appendChild(el("td", a.processed, "num"));
    tr.appendChild(el("td", a.restarts, "num"));
    tr.appendChild(el("td", a.last_error ? a.last_error + " (" + a.last_error_at + ")" : ""));
    tr.appendChild(el("td", uptime(a.uptime_ms), "num"));
    body.appendChild(tr);
  }
}
function renderTop(actors) {
  const top = actors.filter(a => a.state === "running")
    .sort((x, y) => (y.mailbox_size || 0) - (x.mailbox_size || 0) || (y.busy_ms - x.busy_ms)).slice(0, 10);
  const body = document.querySelector("#top tbody");
  body.replaceChildren();
  for (const a of top) {
    const tr = el("tr");
    if (a.mailbox_size > hotThreshold) tr.className = "hot";
    tr.appendChild(nameCell(a, 0));
    tr.appendChild(el("td", a.mailbox_size, "num"));
    tr.appendChild(el("td", a.busy_ms, "num"));
    tr.appendChild(el("td", a.type || a.kind));
    body.appendChild(tr);
  }
}
async function showMailbox() {
  if (!selected) return;
  const box = document.getElementById("mailbox");
  box.style.display = "block";
  try {
    const a = await getJson(onNode("/debug/actors/" + encodeURIComponent(selected) + "?limit=50"));
    box.replaceChildren(el("h2", "Mailbox of " + a.name + " (" + (a.type || a.kind) + ")" +
      (a.node ? " on " + a.node : "")));
    const close = el("button", "close", "link");
    close.addEventListener("click", () => { selected = null; box.style.display = "none"; });
    box.appendChild(close);
    if (!a.mailbox) { box.appendChild(el("p", a.mailbox_error, "error")); return; }
    box.appendChild(el("p", a.mailbox.size + " messages queued" + (a.mailbox.messages.length < a.mailbox.size
      ? "; the first " + a.mailbox.messages.length + " are shown" : "")));
    if (a.mailbox.by_type.length) {
      box.appendChild(el("p", "by type: " + a.mailbox.by_type.map(t => t.type + " × " + t.count).join(", ")));
    }
    const table = el("table");
    const head = el("tr");
    for (const h of ["#", "type", "from", "priority", "message"]) head.appendChild(el("th", h));
    table.appendChild(head);
    a.mailbox.messages.forEach((m, i) => {
      const tr = el("tr");
      tr.appendChild(el("td", i + 1, "num"));
      tr.appendChild(el("td", m.type));
      tr.appendChild(el("td", m.sender));
      tr.appendChild(el("td", m.priority));
      const td = el("td");
      td.appendChild(el("pre", m.text));
      tr.appendChild(td);
      table.appendChild(tr);
    });
    box.appendChild(table);
  } catch (e) {
    box.replaceChildren(el("p", e.message, "error"));
  }
}
async function refresh() {
  if (!document.getElementById("pause").checked) {
    try {
      const data = await getJson(onNode("/debug/actors"));
      renderTop(data.actors);
      renderTree(data.actors);
      const queued = data.actors.reduce((n, a) => n + (a.mailbox_size || 0), 0);
      document.getElementById("status").textContent = (data.node ? "node " + data.node + ": " : "") +
        data.actors.length + " actors, " + queued + " messages queued, at " + data.collected_at;
      document.getElementById("status").className = "";
      if (selected) await showMailbox();
    } catch (e) {
      document.getElementById("status").textContent = e.message;
      document.getElementById("status").className = "error";
    }
  }
  setTimeout(refresh, interval);
}
document.getElementById("save").addEventListener("click", () => {
  sessionStorage.setItem("troupe-debug-token", document.getElementById("token").value.trim());
  document.getElementById("auth").style.display = "none";
  loadNodes().catch(() => {});
});
loadNodes().catch(() => {});
setInterval(() => loadNodes().catch(() => {}), 10 * interval);
refresh();
)JS";

} // namespace

std::string debug_page_html(const std::string& nonce) {
  std::string head = page_head;
  const std::string marker = "@NONCE@";
  head.replace(head.find(marker), marker.size(), nonce);
  return head + "<script nonce=\"" + nonce + "\">" + page_script + "</script>\n</body>\n</html>\n";
}

} // namespace troupe::http
