// Stream page: a timeline of windows (by kind) with incidents drawn over it, the window list,
// and live updates: new windows and incident changes are fetched as server-rendered HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const head = document.querySelector(".stream-head");
  const streamId = head.dataset.stream;
  const live = head.dataset.live === "1";
  const spanNs = Number(head.dataset.spanS) * 1e9;
  const svg = document.getElementById("timeline");
  const data = JSON.parse(document.getElementById("timeline-data").textContent);
  const windowsList = document.getElementById("windows");
  const incidentsList = document.getElementById("incidents");
  const W = 1000, LANE = 14, AXIS = 16;

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function lanes(windows) {
    const ends = [];
    return windows.map(function (w) {
      let lane = ends.findIndex(function (end) { return end <= w.start; });
      if (lane < 0) { lane = ends.length; ends.push(0); }
      ends[lane] = w.end;
      return lane;
    });
  }

  function clock(ns) {
    return new Date(ns / 1e6).toISOString().slice(11, 16);
  }

  function draw() {
    const from = data.from, to = data.to, span = to - from;
    const x = function (ns) { return Math.max(0, Math.min(W, ((ns - from) / span) * W)); };
    const windows = data.windows.slice().sort(function (a, b) { return a.start - b.start; });
    const lane = lanes(windows);
    const rows = Math.max(1, Math.max.apply(null, lane.concat([0])) + 1);
    const height = rows * LANE + AXIS + 4;
    svg.setAttribute("viewBox", "0 0 " + W + " " + height);
    svg.replaceChildren();
    data.incidents.forEach(function (i) {
      const x0 = x(i.start), x1 = x(i.end || to);
      const rect = el("rect", { x: x0, y: 0, width: Math.max(2, x1 - x0), height: rows * LANE,
        class: "incident sev-" + i.severity + (i.acked ? " acked" : "") + " state-" + i.state });
      rect.appendChild(el("title", {}, i.rule + " (" + i.state + (i.acked ? ", acknowledged" : "") + ")"));
      svg.appendChild(rect);
    });
    windows.forEach(function (w, k) {
      const x0 = x(w.start), x1 = x(w.end);
      const rect = el("rect", { x: x0, y: lane[k] * LANE + 2, width: Math.max(1, x1 - x0 - 1),
        height: LANE - 4, class: "win kind-" + w.kind, "data-id": w.id });
      rect.appendChild(el("title", {}, w.kind + " " + clock(w.start) + "–" + clock(w.end)));
      svg.appendChild(rect);
    });
    const step = niceStep(span);
    for (let t = Math.ceil(from / step) * step; t < to; t += step) {
      svg.appendChild(el("line", { x1: x(t), x2: x(t), y1: 0, y2: rows * LANE + 4, class: "tick" }));
      svg.appendChild(el("text", { x: x(t) + 3, y: height - 3, class: "tick-label" }, clock(t)));
    }
  }

  function niceStep(span) {
    const minutes = [1, 2, 5, 10, 15, 30, 60, 120, 240, 480];
    const m = minutes.find(function (m) { return span / (m * 60e9) <= 10; }) || 1440;
    return m * 60e9;
  }

  svg.addEventListener("click", function (e) {
    const id = e.target.dataset && e.target.dataset.id;
    if (id) window.location.hash = "w-" + id;
  });

  async function addWindow(c) {
    if (document.getElementById("w-" + c.id)) return;
    const reply = await fetch("/fragments/window/" + encodeURIComponent(c.id));
    if (!reply.ok) return;
    const holder = document.createElement("ol");
    holder.innerHTML = (await reply.text()).trim();
    windowsList.prepend(holder.firstElementChild);
    data.windows.push({ id: c.id, kind: c.kind, start: Number(c.start), end: Number(c.end) });
    if (Number(c.end) > data.to) {
      data.to = Number(c.end);
      data.from = data.to - spanNs;
    }
    draw();
  }

  async function updateIncident(id) {
    const fresh = await Earwitness.refreshIncident(id, incidentsList);
    if (!fresh) return;
    const span = { id: id, rule: fresh.dataset.rule, severity: fresh.dataset.severity,
      state: fresh.dataset.state, acked: fresh.dataset.acked === "1",
      start: Number(fresh.dataset.start), end: Number(fresh.dataset.end) };
    data.incidents = data.incidents.filter(function (i) { return i.id !== id; }).concat([span]);
    draw();
  }

  draw();
  window.addEventListener("resize", draw);
  Earwitness.bindAcks(incidentsList);
  Earwitness.connect("stream", { stream: streamId }, function (changes) {
    changes.forEach(function (c) {
      if (c.t === "window" && live) addWindow(c);
      else if (c.t !== "window") updateIncident(c.id);
    });
  });
})();
