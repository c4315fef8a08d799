// The status page: reads /health, /history and /events, follows /events/stream.
// Read-only. Every piece of text is set with textContent, never parsed as markup.
"use strict";

(function () {
  const POLL_MS = 5000; // fallback polling while the stream is down
  const LIVE_REFRESH_MS = 10000; // figures that change without events (last probe, own CPU)
  const TIMELINE_MAX = 100;
  const state = { health: null, history: null, events: [], lastOk: null, live: false };
  let pollTimer = null;
  let refreshSoon = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 1 ? "just now" : duration(s) + " ago";
  }

  function duration(seconds) {
    const s = Math.floor(Math.max(0, seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) {
      return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    }
    return Math.floor(s / 86400) + "d " + String(Math.floor((s % 86400) / 3600)).padStart(2, "0") + "h";
  }

  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false });
  }

  function hourMinute(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit" });
  }

  function percent(value) {
    return value === null || value === undefined ? "no data" : value.toFixed(2) + " %";
  }

  async function getJSON(path) {
    const resp = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!resp.ok && resp.status !== 503) throw new Error(path + ": HTTP " + resp.status);
    return resp.json();
  }

  // -- rendering ------------------------------------------------------------------------

  function field(label, value) {
    const row = el("div", "field");
    row.appendChild(el("span", "label", label));
    row.appendChild(el("span", "value", value));
    return row;
  }

  function uptimeBar(hist) {
    const wrap = el("div", "uptime");
    const bar = el("div", "bar");
    for (const hour of (hist && hist.hours) || []) {
      const cell = el("span", "hour " + hour.colour);
      cell.title = clock(hour.start) + ": " + percent(hour.percent);
      bar.appendChild(cell);
    }
    wrap.appendChild(bar);
    wrap.appendChild(el("span", "uptime-value", "24 h: " + percent(hist ? hist.uptime24h : null)));
    return wrap;
  }

  // What the people who run the box did, or should know: a hold, a stop on request, a start
  // still in its grace, flapping. One line each, [class, text].
  function people(check) {
    const lines = [];
    const h = check.hold;
    if (h) {
      const why = h.reason ? " (" + h.reason + ")" : "";
      lines.push(["hold", "held until " + hourMinute(h.until) + why + " by " + h.by]);
    }
    if (check.stoppedOnRequest) {
      lines.push(["stopped", "stopped on request at " + clock(check.stoppedOnRequest)]);
    }
    const s = check.starting;
    if (s) {
      const took = Math.floor(s.elapsedSeconds) + " s of " + s.graceSeconds + " s grace";
      lines.push(["starting", "starting (" + took + ")"]);
    }
    const f = check.flapping;
    if (f) {
      lines.push(["flapping", "flapping: " + f.failures + " failures in " + duration(f.withinSeconds)]);
    }
    return lines;
  }

  // The dependants a root holds down, under the root: each with its own status and words.
  function blockedUnder(name, blocked) {
    const box = el("div", "held-down");
    box.appendChild(el("p", "held-down-head", "blocked until " + name + " is back:"));
    const list = el("ul", "dependants");
    for (const [dep, check] of blocked) {
      const item = el("li", "dependant");
      item.dataset.target = dep;
      item.dataset.status = check.status;
      item.appendChild(el("span", "who", dep));
      item.appendChild(el("span", "dependant-status", check.status));
      item.appendChild(el("span", "why", check.output));
      list.appendChild(item);
    }
    box.appendChild(list);
    return box;
  }

  function card(name, check, hist, blocked) {
    const node = el("article", "target");
    node.dataset.target = name;
    node.dataset.status = check.state === "unknown" ? "unknown" : check.status;
    const head = el("div", "target-head");
    head.appendChild(el("h3", "name", name));
    head.appendChild(el("span", "unit-name", check.unit || ""));
    if (check.critical) head.appendChild(el("span", "tag", "critical"));
    head.appendChild(el("span", "status", check.state === "unknown" ? "unknown" : check.status));
    node.appendChild(head);
    node.appendChild(el("p", "output", check.output));
    if (check.blocked_by) node.appendChild(el("p", "blocked", "blocked by " + check.blocked_by));
    for (const [kind, text] of people(check)) node.appendChild(el("p", "people " + kind, text));
    if (blocked.length) node.appendChild(blockedUnder(name, blocked));
    const fields = el("div", "fields");
    const unitState = check.activeState ? check.activeState + "/" + check.subState : "unknown";
    fields.appendChild(field("state", unitState));
    fields.appendChild(field("PID", check.mainPid || "none"));
    fields.appendChild(field("restarts", check.nRestarts === undefined ? "?" : check.nRestarts));
    fields.appendChild(field("recovery", check.recovery));
    if (check.dependants) fields.appendChild(field("needed by", check.dependants.join(", ")));
    const probe = field("last probe", ago(hist && hist.lastProbe));
    probe.querySelector(".value").dataset.since = (hist && hist.lastProbe) || "";
    fields.appendChild(probe);
    node.appendChild(fields);
    node.appendChild(uptimeBar(hist));
    return node;
  }

  function renderOverall(health) {
    const box = byId("overall");
    box.dataset.status = health.status;
    byId("overall-status").textContent = health.status.toUpperCase();
    const checks = Object.values(health.checks || {}).map((c) => c[0]);
    const bad = checks.filter((c) => c.status !== "pass").length;
    byId("overall-output").textContent =
      checks.length + " targets, " + (bad ? bad + " not passing" : "all passing");
    document.title = health.status + " · sidecar-supervisor";
  }

  function renderNotes(health, history) {
    const notes = (health.notes || []).slice();
    if (history && history.unavailable && notes.indexOf(history.unavailable) < 0) {
      notes.push("history: " + history.unavailable);
    }
    const list = byId("notes");
    clear(list);
    for (const text of notes) list.appendChild(el("li", null, text));
    byId("notes-section").hidden = notes.length === 0;
  }

  function renderTargets(health, history) {
    const box = byId("targets");
    clear(box);
    const hist = (history && history.targets) || {};
    const checks = Object.entries(health.checks || {}).map(([name, entries]) => [name, entries[0]]);
    for (const [name, check] of checks) {
      const blocked = checks.filter(([, other]) => other.blocked_by === name);
      box.appendChild(card(name, check, hist[name], blocked));
    }
  }

  function renderIncidents(history) {
    const list = byId("incidents");
    clear(list);
    const all = [];
    for (const t of Object.values((history && history.targets) || {})) all.push(...t.incidents);
    all.sort((a, b) => (b.open - a.open) || Date.parse(b.start) - Date.parse(a.start));
    if (!all.length) list.appendChild(el("li", "empty", "none recorded"));
    for (const inc of all.slice(0, 10)) {
      const item = el("li", inc.open ? "incident open" : "incident");
      item.appendChild(el("span", "who", inc.target));
      const took = inc.open ? "open for " + duration(inc.durationS) : "lasted " + duration(inc.durationS);
      item.appendChild(el("span", "when", clock(inc.start) + " · " + took));
      item.appendChild(el("span", "why", inc.reason));
      if (inc.cause) item.appendChild(causeOf(inc));
      list.appendChild(item);
    }
  }

  // An incident a death opened: its cause, and the run's last lines when opened (text only).
  function causeOf(inc) {
    const box = el("details", "cause");
    box.appendChild(el("summary", null, inc.cause));
    box.appendChild(el("pre", "log", (inc.log || []).join("\n") || "(no lines)"));
    return box;
  }

  function renderSelf(history) {
    const box = byId("self");
    clear(box);
    const me = history && history.supervisor;
    if (!me) return;
    const mb = (me.rssBytes / 1048576).toFixed(1);
    const parts = [
      "sidecar-supervisor " + me.version,
      "up " + duration(me.uptimeS),
      "CPU " + me.cpuPercent.toFixed(2) + " % of " + me.budget.cpuPercent + " %",
      "memory " + mb + " MB of " + me.budget.memoryMb + " MB",
    ];
    for (const text of parts) box.appendChild(el("span", null, text));
  }

  function eventItem(ev) {
    const item = el("li", "event");
    item.dataset.kind = ev.kind;
    item.appendChild(el("time", "when", clock(ev.time)));
    item.appendChild(el("span", "kind", ev.kind));
    item.appendChild(el("span", "what", ev.summary));
    return item;
  }

  function renderTimeline() {
    const list = byId("timeline");
    clear(list);
    if (!state.events.length) list.appendChild(el("li", "empty", "no events yet"));
    for (const ev of state.events) list.appendChild(eventItem(ev));
  }

  function render() {
    if (!state.health) return;
    renderOverall(state.health);
    renderNotes(state.health, state.history);
    renderTargets(state.health, state.history);
    renderIncidents(state.history);
    renderSelf(state.history);
  }

  function connection(text, kind) {
    const node = byId("connection");
    node.textContent = text;
    node.dataset.state = kind;
  }

  // -- data -----------------------------------------------------------------------------

  async function refresh() {
    try {
      const [health, history] = await Promise.all([getJSON("/health"), getJSON("/history")]);
      state.health = health;
      state.history = history;
      state.lastOk = new Date();
      render();
      if (state.live) connection("live", "live");
      else connection("stream unavailable: polling every 5 s", "polling");
    } catch (err) {
      const since = state.lastOk ? " since " + state.lastOk.toLocaleTimeString([], { hour12: false }) : "";
      connection("the supervisor is not answering" + since + "; retrying every 5 s", "down");
      document.getElementById("overall").dataset.stale = "true";
      return;
    }
    document.getElementById("overall").dataset.stale = "false";
  }

  async function loadTimeline() {
    try {
      const page = await getJSON("/events?limit=" + TIMELINE_MAX);
      state.events = page.events;
      renderTimeline();
    } catch (err) {
      // the connection line already says the supervisor is not answering
    }
  }

  function soon() {
    if (refreshSoon) return;
    refreshSoon = setTimeout(() => {
      refreshSoon = null;
      refresh();
    }, 150);
  }

  function poll(ms) {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = setInterval(() => {
      refresh();
      if (!state.live) loadTimeline();
    }, ms);
  }

  function follow() {
    if (!window.EventSource) {
      poll(POLL_MS);
      return;
    }
    const stream = new EventSource("/events/stream");
    stream.onopen = () => {
      state.live = true;
      poll(LIVE_REFRESH_MS);
      loadTimeline();
      refresh();
    };
    stream.addEventListener("event", (msg) => {
      const ev = JSON.parse(msg.data);
      state.events.unshift(ev);
      state.events.length = Math.min(state.events.length, TIMELINE_MAX);
      renderTimeline();
      soon();
    });
    stream.onerror = () => {
      if (state.live) {
        state.live = false;
        poll(POLL_MS);
        refresh();
      }
    };
  }

  function tick() {
    for (const node of document.querySelectorAll("[data-since]")) {
      if (node.dataset.since) node.textContent = ago(node.dataset.since);
    }
  }

  refresh();
  loadTimeline();
  poll(POLL_MS);
  follow();
  setInterval(tick, 1000);
})();
