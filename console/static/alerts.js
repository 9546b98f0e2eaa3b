// Alerts page: incidents appear and change live; ack forms post without leaving the page.
"use strict";

(function () {
  const list = document.getElementById("incidents");
  const state = document.querySelector(".tabs").dataset.state;
  Earwitness.bindAcks(list);
  const keep = function (el) { return !state || el.dataset.state === state; };
  Earwitness.connect("alerts", {}, function (changes) {
    const ids = new Set(changes.map(function (c) { return c.id; }));
    ids.forEach(function (id) {
      Earwitness.refreshIncident(id, list, keep).then(function () {
        const empty = document.getElementById("no-incidents");
        if (empty && list.children.length) empty.remove();
      });
    });
  });
})();
