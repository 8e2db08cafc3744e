/* Behaviour of the orch dashboard pages: filters that apply themselves, and live runs.
   Live runs are polled (every few seconds, only while something is running). */
(function () {
  "use strict";

  var LIVE = ["queued", "running"];
  var RUN_POLL_MS = 2000, LIST_POLL_MS = 3000;

  function isLive(status) { return LIVE.indexOf(status) >= 0; }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) {
        if (!r.ok) throw new Error(url + " → " + r.status);
        return r.json();
      });
  }

  function pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(2) + " %"; }

  // Status badge of one run's element.
  function paintStatus(root, status) {
    var badge = root.querySelector("[data-role=status]");
    if (badge) { badge.textContent = status; badge.className = "badge st-" + status; }
    root.setAttribute("data-status", status);
  }

  // Progress bar ({label, value, max}, made by the server) of one run's element.
  function paintBar(root, status, bar) {
    var prog = root.querySelector("[data-role=progress]");
    if (!prog) return;
    if (!isLive(status) || !bar) { prog.remove(); return; }
    var el = prog.querySelector("progress");
    if (el && bar.max) { el.max = bar.max; el.value = bar.value || 0; }
    var label = prog.querySelector("[data-role=progress-label]");
    if (label) label.textContent = bar.label;
  }

  function followRunPage(head) {
    var id = head.getAttribute("data-live-run");
    var events = head.getAttribute("data-events");
    function tick() {
      getJSON("/api/runs/" + encodeURIComponent(id) + "/live").then(function (live) {
        if (!isLive(live.status)) { window.location.reload(); return; }
        paintStatus(head, live.status);
        paintBar(head, live.status, live.progress);
        if (String(live.events_seen) !== events) {
          events = String(live.events_seen);
          head.setAttribute("data-events", events);
          document.querySelectorAll("figure[data-chart-key]").forEach(function (fig) {
            var key = fig.getAttribute("data-chart-key");
            if (key && live.charts[key]) window.OrchCharts.update(fig.getAttribute("data-chart"), live.charts[key]);
          });
        }
        setTimeout(tick, RUN_POLL_MS);
      }).catch(function () { setTimeout(tick, RUN_POLL_MS * 3); });
    }
    setTimeout(tick, RUN_POLL_MS);
  }

  function followRows(rows) {
    function tick() {
      var live = rows.filter(function (r) { return isLive(r.getAttribute("data-status")); });
      if (!live.length) return;
      var qs = live.map(function (r) { return "id=" + encodeURIComponent(r.getAttribute("data-live-run")); }).join("&");
      getJSON("/api/progress?" + qs).then(function (items) {
        var ended = false;
        items.forEach(function (it) {
          if (!isLive(it.status)) ended = true;
          rows.filter(function (r) { return r.getAttribute("data-live-run") === String(it.id); })
            .forEach(function (r) {
              paintStatus(r, it.status);
              paintBar(r, it.status, it.bar);
              var acc = r.querySelector("[data-role=accuracy]");
              if (acc) acc.textContent = pct(it.accuracy);
            });
        });
        // Table 1 and its charts are drawn from finished runs: redraw them when one ends.
        if (ended && document.body.getAttribute("data-page") === "experiment") {
          window.location.reload();
          return;
        }
        setTimeout(tick, LIST_POLL_MS);
      }).catch(function () { setTimeout(tick, LIST_POLL_MS * 3); });
    }
    setTimeout(tick, LIST_POLL_MS);
  }

  function autosubmit() {
    document.querySelectorAll("form[data-autosubmit] select, select[data-autosubmit-field]")
      .forEach(function (sel) {
        sel.addEventListener("change", function () { sel.form.submit(); });
      });
  }

  // The compare button only makes sense with at least one run ticked.
  function compareButtons() {
    document.querySelectorAll("form.runs-form").forEach(function (form) {
      var button = form.querySelector("button[type=submit]");
      if (!button) return;
      function sync() {
        var n = form.querySelectorAll("input[name=run]:checked").length;
        button.disabled = n === 0;
        button.textContent = n ? "Compare " + n + " selected run" + (n === 1 ? "" : "s") : "Compare selected runs";
      }
      form.addEventListener("change", sync);
      sync();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    compareButtons();
    var head = document.querySelector("[data-live-page]");
    if (head && isLive(head.getAttribute("data-status"))) followRunPage(head);
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-live-run]"));
    if (rows.some(function (r) { return isLive(r.getAttribute("data-status")); })) followRows(rows);
  });
})();
