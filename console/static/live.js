// Live updates (Server-Sent Events) and acknowledgements, shared by every page.
// No build step, no dependency: plain ES2020 that Chromium and Firefox run as is.
"use strict";

window.Earwitness = (function () {
  let lastId = document.body.dataset.since || "";

  function setStatus(text, state) {
    const el = document.getElementById("live-status");
    if (el) {
      el.textContent = text;
      el.dataset.state = state;
    }
  }

  // Follow /events for `view`; `onChanges` gets each batch (an array of changes).
  // EventSource resends Last-Event-ID when it reconnects after a blip; if the browser gives
  // up (an HTTP error while the server restarts), a new one starts after the last id seen.
  function connect(view, extra, onChanges) {
    let source = null;
    function open() {
      const params = new URLSearchParams(Object.assign({ view: view, since: lastId }, extra));
      source = new EventSource("/events?" + params.toString());
      source.addEventListener("ready", function (e) {
        if (e.lastEventId) lastId = e.lastEventId;
        setStatus("live", "ok");
      });
      source.addEventListener("changes", function (e) {
        lastId = e.lastEventId || lastId;
        setStatus("live", "ok");
        onChanges(JSON.parse(e.data));
      });
      source.addEventListener("reset", function () {
        source.close();
        window.location.reload();
      });
      source.onerror = function () {
        setStatus("reconnecting…", "warn");
        if (source.readyState === EventSource.CLOSED) window.setTimeout(open, 2000);
      };
    }
    open();
    return { close: function () { source.close(); } };
  }

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Replace (or insert first into `list`) the incident `id`, rendered by the server.
  async function refreshIncident(id, list, keep) {
    const reply = await fetch("/fragments/incident/" + encodeURIComponent(id));
    if (!reply.ok) return null;
    const holder = document.createElement("div");
    holder.innerHTML = (await reply.text()).trim();
    const fresh = holder.firstElementChild;
    const old = document.getElementById("i-" + id);
    if (keep && !keep(fresh)) {
      if (old) old.remove();
      return fresh;
    }
    if (old) old.replaceWith(fresh);
    else if (list) list.prepend(fresh);
    return fresh;
  }

  // Ack forms post with fetch (the page stays put); the ack shows once it is read back.
  function bindAcks(root) {
    root.addEventListener("submit", async function (e) {
      const form = e.target;
      if (!form.matches("form.ack")) return;
      e.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      button.textContent = "Acknowledging…";
      const reply = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-CSRF-Token": csrf(), Accept: "application/json" },
      });
      if (!reply.ok) {
        button.disabled = false;
        button.textContent = "Acknowledge (failed, retry)";
        return;
      }
      const id = form.closest(".incident").dataset.id;
      window.setTimeout(function () { refreshIncident(id, null); }, 3000);
    });
  }

  return { connect: connect, csrf: csrf, refreshIncident: refreshIncident, bindAcks: bindAcks };
})();
