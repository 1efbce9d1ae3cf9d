// The Trellis web console: reads the admin API with the session cookie (sent with the console's
// own header, which the server requires) and redraws every REFRESH_MS, so changes show without a
// reload. Data only ever reaches the page as text (textContent), never as HTML.
"use strict";

const REFRESH_MS = 2000;
const CHART_REFRESH_MS = 10000;
const $ = (id) => document.getElementById(id);

let nodes = [];
let lastChart = 0;

async function api(path, options = {}) {
  const response = await fetch("/api/v1/" + path, {
    ...options,
    credentials: "same-origin",
    headers: { "X-Trellis-Console": "1", "Content-Type": "application/json" },
  });
  if (response.status === 401) {
    throw new Unauthorized();
  }
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.error || "HTTP " + response.status);
  }
  return body;
}

class Unauthorized extends Error {}

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function ms(v) {
  return v === null || v === undefined ? "-" : v.toFixed(v < 10 ? 2 : 1) + " ms";
}

function ago(iso) {
  if (!iso) return "never (since the server started)";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function rttClass(rtt) {
  if (rtt === null || rtt === undefined) return "none";
  if (rtt < 5) return "rtt-good";
  if (rtt < 20) return "rtt-ok";
  if (rtt < 100) return "rtt-slow";
  return "rtt-bad";
}

function pathText(p) {
  return p.path === "relay" ? "relay " + (p.relay || "?") : "direct";
}

function showLogin(message) {
  $("views").hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("status").textContent = message || "";
}

function showViews() {
  $("login").hidden = true;
  $("views").hidden = false;
  $("nav").hidden = false;
  $("logout").hidden = false;
}

function renderNodes(pairs) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const rows = nodes.map((n) => {
    const state = el("td", n.online ? "online" : "offline", n.online ? "online" : "offline");
    const paths = pairs
      .filter((p) => p.from === n.id && byId.has(p.to))
      .map((p) => byId.get(p.to).hostname + ": " + pathText(p))
      .join(", ");
    const tr = row([
      el("td", n.hostname),
      state,
      [n.ipv4, n.ipv6].filter(Boolean).join(" "),
      n.user,
      (n.tags || []).join(" ") || "-",
      n.online ? "now" : ago(n.lastSeen),
      paths || "-",
    ]);
    tr.dataset.node = n.hostname;
    tr.dataset.state = n.online ? "online" : "offline";
    return tr;
  });
  replaceRows($("nodes-body"), rows);
}

function renderMatrix(pairs) {
  const byPair = new Map(pairs.map((p) => [p.from + ">" + p.to, p]));
  const table = $("matrix");
  const head = document.createElement("tr");
  head.appendChild(el("td", "from \\ to"));
  for (const n of nodes) {
    const th = el("th", n.hostname);
    th.scope = "col";
    head.appendChild(th);
  }
  const body = nodes.map((from) => {
    const tr = document.createElement("tr");
    const th = el("th", from.hostname);
    th.scope = "row";
    tr.appendChild(th);
    for (const to of nodes) {
      const p = byPair.get(from.id + ">" + to.id);
      if (from.id === to.id || !p) {
        tr.appendChild(el("td", from.id === to.id ? "" : "-", "none"));
        continue;
      }
      const td = el("td", pathText(p) + " " + ms(p.rttMs), rttClass(p.rttMs));
      td.dataset.from = from.hostname;
      td.dataset.to = to.hostname;
      td.dataset.path = p.path;
      td.title = from.hostname + " to " + to.hostname + ": " + pathText(p) + ", jitter " +
        ms(p.jitterMs) + ", loss " + (p.loss === null ? "-" : (100 * p.loss).toFixed(1) + " %") +
        ", traffic " + (p.bitsPerSecond === null ? "-" : (p.bitsPerSecond / 1e6).toFixed(2) + " Mbit/s");
      tr.appendChild(td);
    }
    return tr;
  });
  const thead = document.createElement("thead");
  thead.appendChild(head);
  const tbody = document.createElement("tbody");
  tbody.replaceChildren(...body);
  table.replaceChildren(thead, tbody);
}

function renderRelays(relays) {
  replaceRows($("relays-body"), relays.map((r) => {
    const tr = row([r.region, r.url || "-", r.member || "-", r.connectedNodes,
      Math.round(r.packetsPerSecond), r.dropped]);
    tr.dataset.region = r.region;
    return tr;
  }));
}

function renderCluster(status) {
  replaceRows($("cluster-body"), (status.members || []).map((m) =>
    row([m.address + (m.address === status.self ? " (this server)" : ""),
      (m.roles || []).join(", "), m.status, m.reachable ? "yes" : "no"])));
}

function renderPolicy(p) {
  $("policy-version").textContent = p.version
    ? "Version " + p.version + ", set " + new Date(p.setAt).toLocaleString()
    : "No policy is set: every node may reach every other.";
  $("policy-text").textContent = p.text || "";
}

function fillSelect(select, keep) {
  const current = select.value || keep;
  select.replaceChildren(...nodes.map((n) => {
    const o = el("option", n.hostname);
    o.value = String(n.id);
    return o;
  }));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function fillSelects() {
  for (const id of ["why-src", "why-dst", "q-from", "q-to"]) fillSelect($(id));
  if ($("q-to").selectedIndex === $("q-from").selectedIndex && nodes.length > 1) {
    $("q-to").selectedIndex = ($("q-from").selectedIndex + 1) % nodes.length;
  }
}

function chart(svg, points, value, unit) {
  const W = 600, H = 160, L = 50, B = 20;
  const data = points.filter((p) => value(p) !== null && value(p) !== undefined);
  const parts = [];
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  if (data.length === 0) {
    svg.replaceChildren(mk("text", { x: L, y: H / 2 }, "no measurements yet"));
    return;
  }
  const t0 = data[0].atMillis, t1 = Math.max(data[data.length - 1].atMillis, t0 + 1);
  const max = Math.max(...data.map(value), 1e-9) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - 10);
  const y = (v) => H - B - (v / max) * (H - B - 10);
  parts.push(mk("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B }));
  parts.push(mk("line", { x1: L, y1: 10, x2: L, y2: H - B }));
  parts.push(mk("text", { x: 2, y: 14 }, max.toFixed(max < 10 ? 2 : 0) + " " + unit));
  parts.push(mk("text", { x: 2, y: H - B }, "0"));
  parts.push(mk("text", { x: L, y: H - 4 }, new Date(t0).toLocaleTimeString()));
  parts.push(mk("text", { x: W - 80, y: H - 4 }, new Date(t1).toLocaleTimeString()));
  parts.push(mk("polyline", {
    points: data.map((p) => x(p.atMillis).toFixed(1) + "," + y(value(p)).toFixed(1)).join(" "),
  }));
  svg.replaceChildren(...parts);
}

async function refreshCharts() {
  const from = $("q-from").value, to = $("q-to").value;
  if (!from || !to || from === to) {
    $("quality-summary").textContent = "Choose two different nodes.";
    return;
  }
  const { points } = await api("quality/" + from + "/" + to + "?since=" + $("q-since").value);
  const name = (id) => (nodes.find((n) => String(n.id) === id) || {}).hostname || id;
  $("quality-summary").textContent = points.length === 0
    ? "No reports yet of " + name(from) + " measuring " + name(to) + "."
    : points.length + " points, " + name(from) + " measuring " + name(to) + "; last path " +
      points[points.length - 1].path + ".";
  chart($("chart-rtt"), points, (p) => p.rttMs, "ms");
  chart($("chart-jitter"), points, (p) => p.jitterMs, "ms");
  chart($("chart-loss"), points, (p) => (p.loss === null ? null : 100 * p.loss), "%");
  chart($("chart-traffic"), points,
    (p) => (p.bitsPerSecond === null ? null : p.bitsPerSecond / 1e6), "Mbit/s");
  lastChart = Date.now();
}

async function refresh() {
  try {
    const [nodeList, quality, relays, cluster, policy] = await Promise.all([
      api("nodes"), api("quality"), api("relays"), api("cluster"), api("policy"),
    ]);
    showViews();
    nodes = nodeList.nodes.slice().sort((a, b) => a.hostname.localeCompare(b.hostname));
    renderNodes(quality.pairs);
    renderMatrix(quality.pairs);
    renderRelays(relays.relays);
    renderCluster(cluster);
    renderPolicy(policy);
    fillSelects();
    if (Date.now() - lastChart > CHART_REFRESH_MS) await refreshCharts();
    $("status").textContent = "Updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "true";
  } catch (e) {
    if (e instanceof Unauthorized) {
      showLogin("Not logged in.");
    } else {
      $("status").textContent = "Cannot reach the server: " + e.message;
    }
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/console/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ apiKey: $("api-key").value }),
  });
  $("api-key").value = "";
  if (response.ok) {
    $("login-error").textContent = "";
    refresh();
  } else {
    $("login-error").textContent = "That API key was refused.";
  }
});

$("logout").addEventListener("click", async () => {
  await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
  showLogin("Logged out.");
});

$("why-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = (id) => nodes.find((n) => String(n.id) === id).hostname;
  try {
    const a = await api("policy/why", {
      method: "POST",
      body: JSON.stringify({
        src: name($("why-src").value),
        dst: name($("why-dst").value) + ":" + $("why-port").value,
        proto: $("why-proto").value,
      }),
    });
    const answer = $("why-answer");
    answer.className = a.allowed ? "allowed" : "denied";
    answer.textContent = (a.allowed ? "Allowed. " : "Denied. ") + (a.explanation || "");
  } catch (e) {
    $("why-answer").textContent = e.message;
  }
});

for (const id of ["q-from", "q-to", "q-since"]) {
  $(id).addEventListener("change", () => refreshCharts().catch(() => {}));
}

refresh();
setInterval(refresh, REFRESH_MS);
