// The status page: polls /api/runs and /api/status once a second and
// redraws. No framework, no build step: the file is embedded into
// sandfleet-coordinator at build time (coordinator/serve/web/embed.cmake).
"use strict";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function when(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-"; }

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
  document.getElementById(`${id}-empty`).hidden = rows.length > 0;
}

function drawStatus(s) {
  document.getElementById("queue-name").textContent = `${s.queue} on ${s.broker}`;
  const cards = [["depth", s.depth], ["waiting", s.waiting], ["in flight", s.in_flight],
                 ["delayed retries", s.delayed], ["dead letters", s.dead.count],
                 ["live workers", s.workers.filter(w => w.live).length]];
  document.getElementById("queue").replaceChildren(
    ...cards.map(([k, v]) => el("div", { class: "card", "data-key": k }, el("b", {}, v), k)));
  fill("workers", s.workers.map(w => el("tr", { class: "worker", "data-worker-id": w.id },
    el("td", {}, el("code", {}, w.id)), el("td", {}, w.host || "-"), el("td", {}, w.concurrency ?? "-"),
    el("td", {}, w.busy ?? "-"), el("td", {}, `${(w.heartbeat_age_ms / 1000).toFixed(1)}s ago${w.live ? "" : " (not live)"}`),
    el("td", {}, w.done ?? 0), el("td", {}, w.failed ?? 0))));
  fill("dead", s.dead.recent.map(d => el("tr", {},
    el("td", {}, el("code", {}, d.id)), el("td", {}, when(d.time_ms)), el("td", {}, d.task_id || "(not a task)"),
    el("td", {}, d.reason))));
}

function drawSteps(run) {
  return el("div", { class: "steps" }, ...run.steps.map(st => {
    const pct = st.total ? Math.round(100 * st.done / st.total) : 0;
    const fillBar = el("i", {});
    fillBar.style.width = `${pct}%`;   /* CSSOM: the page's CSP forbids style attributes */
    const bar = el("div", { class: "bar" }, fillBar);
    return el("div", { class: `step ${st.state}`, "data-step": st.id, "data-state": st.state },
      el("span", {}, st.id + (st.map ? " (map)" : "")), bar, el("span", {}, `${st.done}/${st.total || "?"} ${st.state}`));
  }));
}

function drawRuns(runs) {
  fill("runs", runs.map(r => el("tr", { class: "run", "data-run-id": r.run_id, "data-state": r.state },
    el("td", {}, el("code", {}, r.run_id)), el("td", {}, r.workflow),
    el("td", { class: `state state-${r.state}` }, r.state + (r.error ? `: ${r.error}` : "")),
    el("td", {}, drawSteps(r)), el("td", {}, `${r.tasks_done ?? 0}/${r.tasks_known ?? 0}`),
    el("td", {}, when(r.started_ms || r.created_ms)))));
}

// The API token (docs/security.md): asked once, kept in this tab's
// sessionStorage (gone when the tab closes), sent as a bearer header. A link
// may carry it once in its fragment (#token=...), which never reaches the
// server; it is moved to sessionStorage and removed from the address bar.
const TOKEN_KEY = "sandfleet-api-token";
if (location.hash.startsWith("#token=")) {
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname + location.search);
}

class NeedToken extends Error {}

async function api(u) {
  const t = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(u, { cache: "no-store", headers: t ? { Authorization: `Bearer ${t}` } : {} });
  if (res.status === 401) throw new NeedToken(t ? "That token was refused." : "This server needs an API token.");
  return res;
}

function showLogin(why) {
  const form = document.getElementById("login");
  document.getElementById("login-why").textContent = why;
  form.hidden = false;
  document.querySelector("main").hidden = true;
  document.getElementById("logout").hidden = true;
  const conn = document.getElementById("conn");
  conn.textContent = "signed out";
  conn.className = "pill bad";
  document.getElementById("token").focus();
}

document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  document.getElementById("login").hidden = true;
  poll();
});

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

async function poll() {
  const conn = document.getElementById("conn");
  try {
    const runs = await api("/api/runs");
    if (!runs.ok) throw new Error(`/api/runs: HTTP ${runs.status}`);
    const status = await api("/api/status");
    /* A client token sees its own runs, not the fleet: 403 hides it. */
    const fleet = status.status !== 403;
    if (fleet && !status.ok) throw new Error(`/api/status: HTTP ${status.status}`);
    for (const id of ["queue-section", "workers-section", "dead-section"])
      document.getElementById(id).hidden = !fleet;
    if (fleet) drawStatus(await status.json());
    drawRuns(await runs.json());
    document.querySelector("main").hidden = false;
    document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
    conn.textContent = "live";
    conn.className = "pill ok";
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof NeedToken) {
      showLogin(e.message);
      return;                        /* polling resumes after sign-in */
    }
    conn.textContent = `error: ${e.message}`;
    conn.className = "pill bad";
  }
  setTimeout(poll, 1000);
}

poll();
