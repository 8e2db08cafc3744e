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

  function progressLabel(status, p) {
    p = p || {};
    var label = String(p.stage || status);
    if (p.epoch !== undefined && p.epoch !== null && p.epochs) label += " · epoch " + p.epoch + "/" + p.epochs;
    if (p.done !== undefined && p.done !== null && p.total && !(p.done === p.epoch && p.total === p.epochs)) {
      label += " · " + p.done + "/" + p.total;
    }
    return label;
  }

  // Status badge, progress bar and accuracy of one run's element, from fresh data.
  function paint(root, status, progress, accuracy) {
    var badge = root.querySelector("[data-role=status]");
    if (badge) { badge.textContent = status; badge.className = "badge st-" + status; }
    root.setAttribute("data-status", status);
    var prog = root.querySelector("[data-role=progress]");
    if (prog && !isLive(status)) prog.remove();
    if (prog && isLive(status)) {
      var bar = prog.querySelector("progress"), p = progress || {};
      if (bar && p.total) { bar.max = p.total; bar.value = p.done || 0; }
      var label = prog.querySelector("[data-role=progress-label]");
      if (label) label.textContent = progressLabel(status, p);
    }
    var acc = root.querySelector("[data-role=accuracy]");
    if (acc && accuracy !== undefined) acc.textContent = pct(accuracy);
  }

  function followRunPage(head) {
    var id = head.getAttribute("data-live-run");
    var events = head.getAttribute("data-events");
    function tick() {
      getJSON("/api/runs/" + encodeURIComponent(id) + "/live").then(function (live) {
        if (!isLive(live.status)) { window.location.reload(); return; }
        var badge = head.querySelector("[data-role=status]");
        if (badge) { badge.textContent = live.status; badge.className = "badge st-" + live.status; }
        var prog = head.querySelector("[data-role=progress]");
        if (prog && live.progress) {
          var bar = prog.querySelector("progress");
          if (bar && live.progress.max) { bar.max = live.progress.max; bar.value = live.progress.value || 0; }
          var label = prog.querySelector("[data-role=progress-label]");
          if (label) label.textContent = live.progress.label;
        }
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
            .forEach(function (r) { paint(r, it.status, it.progress, it.accuracy); });
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
