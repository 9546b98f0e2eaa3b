// Streams page: one tile per stream, updated live; filter and sort in the page.
// Updates are applied once per animation frame, so 1,000 streams stay smooth.
"use strict";

(function () {
  const grid = document.getElementById("tiles");
  const template = document.getElementById("tile-template");
  const staleAfterMs = Number(grid.dataset.staleAfterS) * 1000;
  const tiles = new Map();
  const incidents = new Map(); // alert id → {stream, acked}
  const filter = document.getElementById("filter");
  const stateFilter = document.getElementById("state-filter");
  const sort = document.getElementById("sort");
  const counts = document.getElementById("counts");
  const ORDER = { error: 0, stale: 1, shed: 2, captioning: 3, silence: 4 };
  let pending = [];
  let resortDue = false;

  grid.querySelectorAll(".tile").forEach(function (el) { tiles.set(el.dataset.stream, el); });
  grid.dataset.order = Array.from(tiles.keys()).join("\n"); // as rendered: no re-append at load
  JSON.parse(document.getElementById("firing-data").textContent).forEach(function (i) {
    incidents.set(i.id, { stream: i.stream, acked: i.acked });
  });

  const KIND_STATE = { caption: "captioning", silence: "silence", shed: "shed", error: "error" };

  function stateOf(el, nowMs) {
    const seenMs = Number(el.dataset.seen) / 1e6;
    if (nowMs - seenMs > staleAfterMs) return "stale";
    return KIND_STATE[el.dataset.kind] || "stale";
  }

  function setState(el, state) {
    if (el.dataset.state === state) return;
    el.dataset.state = state;
    el.className = el.className.replace(/\bstate-\S+/, "state-" + state);
    el.querySelector(".state").textContent = state;
  }

  function newTile(streamId) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.stream = streamId;
    el.href = "/streams/" + encodeURIComponent(streamId);
    el.querySelector(".name").textContent = streamId;
    tiles.set(streamId, el);
    grid.appendChild(el);
    const empty = document.getElementById("no-streams");
    if (empty) empty.remove();
    resortDue = true;
    return el;
  }

  function onWindow(c) {
    const el = tiles.get(c.stream) || newTile(c.stream);
    if (Number(c.end) < Number(el.dataset.end)) return; // an older window, replayed
    el.dataset.kind = c.kind;
    el.dataset.end = c.end;
    el.dataset.seen = Math.max(Number(el.dataset.seen), Number(c.seen));
    el.dataset.rms = c.rms;
    el.querySelector("meter").value = c.rms;
    el.querySelector(".db").textContent = Math.round(c.rms) + " dBFS";
    if (c.kind === "caption") el.querySelector(".sentence").textContent = c.first;
    setState(el, stateOf(el, Date.now()));
  }

  function onIncident(c) {
    const known = incidents.get(c.id);
    if (c.t === "alert" && c.state === "firing") {
      incidents.set(c.id, { stream: c.stream, acked: known ? known.acked : false });
    } else if (c.t === "alert") {
      incidents.delete(c.id);
    } else if (known) {
      known.acked = true; // an ack
    }
    badges(c.stream || (known && known.stream));
  }

  function badges(streamId) {
    const el = tiles.get(streamId);
    if (!el) return;
    let open = 0, acked = 0;
    incidents.forEach(function (i) { if (i.stream === streamId) { if (i.acked) acked++; else open++; } });
    el.dataset.open = open;
    el.dataset.acked = acked;
    el.querySelector(".badge.open").textContent = open || "";
    el.querySelector(".badge.acked").textContent = acked || "";
    el.classList.toggle("has-open", open > 0);
    resortDue = true;
  }

  function flush() {
    const batch = pending;
    pending = [];
    batch.forEach(function (c) { if (c.t === "window") onWindow(c); else onIncident(c); });
    if (resortDue || sort.value === "level" || sort.value === "recent") arrange();
  }

  function matches(el, text, state) {
    if (state === "incident" && Number(el.dataset.open) === 0) return false;
    if (state && state !== "incident" && el.dataset.state !== state) return false;
    if (!text) return true;
    return (el.dataset.stream + " " + el.querySelector(".sentence").textContent)
      .toLowerCase().includes(text);
  }

  const byName = function (a, b) {
    return a.dataset.stream.localeCompare(b.dataset.stream, undefined, { numeric: true });
  };
  const KEYS = {
    name: byName,
    incidents: function (a, b) { return b.dataset.open - a.dataset.open || byName(a, b); },
    state: function (a, b) { return ORDER[a.dataset.state] - ORDER[b.dataset.state] || byName(a, b); },
    level: function (a, b) { return b.dataset.rms - a.dataset.rms || byName(a, b); },
    recent: function (a, b) { return Number(b.dataset.seen) - Number(a.dataset.seen) || byName(a, b); },
  };

  function arrange() {
    resortDue = false;
    const text = filter.value.trim().toLowerCase();
    const state = stateFilter.value;
    const all = Array.from(tiles.values());
    let shown = 0;
    all.forEach(function (el) {
      el.hidden = !matches(el, text, state);
      if (!el.hidden) shown++;
    });
    all.sort(KEYS[sort.value] || byName);
    const order = all.map(function (el) { return el.dataset.stream; }).join("\n");
    if (order !== grid.dataset.order) {
      const fragment = document.createDocumentFragment();
      all.forEach(function (el) { fragment.appendChild(el); });
      grid.appendChild(fragment);
      grid.dataset.order = order;
    }
    counts.textContent = shown === all.length ? all.length + " streams" : shown + " of " + all.length + " streams";
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function tick() {
    const now = Date.now();
    tiles.forEach(function (el) {
      setState(el, stateOf(el, now));
      const seen = Number(el.dataset.seen);
      el.querySelector(".ago").textContent = seen ? ago(now - seen / 1e6) : "";
    });
    if (stateFilter.value) arrange();
  }

  tiles.forEach(function (el) { el.dataset.state = stateOf(el, Date.now()); });
  [filter, stateFilter, sort].forEach(function (input) { input.addEventListener("input", arrange); });
  arrange();
  tick();
  window.setInterval(tick, 2000);
  Earwitness.connect("streams", {}, function (changes) {
    if (!pending.length) window.requestAnimationFrame(flush);
    pending = pending.concat(changes);
  });
})();
