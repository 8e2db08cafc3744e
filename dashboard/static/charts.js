/* Small SVG charts for the orch dashboard: lines, grouped bars, one stacked bar.
   No dependencies. Each chart reads its spec from a <script type="application/json"> next
   to its container, so pages need no inline script (the CSP forbids it). */
(function () {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";
  // Okabe–Ito: distinguishable with the common colour-vision deficiencies.
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                 "#8c6d31", "#555555"];

  function colour(i) { return PALETTE[((i || 0) % PALETTE.length + PALETTE.length) % PALETTE.length]; }

  function svg(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]); }
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, cls, parent, text) {
    var node = document.createElement(name);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function title(node, text) { svg("title", {}, node).textContent = text; }

  function fmt(v, kind, axis) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    if (kind === "pct") return (v * 100).toFixed(axis ? 0 : 2) + (axis ? "%" : " %");
    if (kind === "s") {
      if (!axis && v >= 120) return (v / 60).toFixed(1) + " min";
      return (axis ? +(+v.toPrecision(3)).toFixed(4) : v.toFixed(v >= 10 ? 1 : 2)) + (axis ? "" : " s");
    }
    if (kind === "int") return String(Math.round(v));
    var a = Math.abs(v);
    if (axis) return String(+v.toPrecision(3));
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(3) : v.toPrecision(3);
  }

  // Round tick steps (1, 2, 5 × 10^k) covering [lo, hi] with about n ticks.
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var raw = (hi - lo) / Math.max(1, n);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * mag; })
      .find(function (s) { return s >= raw; }) || 10 * mag;
    var out = [];
    for (var t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
      out.push(+t.toFixed(10));
    }
    return out;
  }

  function empty(host, text) {
    host.textContent = "";
    html("p", "chart-empty", host, text || "No data yet.");
  }

  function frame(host, spec, height) {
    host.textContent = "";
    var width = Math.max(260, Math.round(host.clientWidth || 560));
    var root = svg("svg", {viewBox: "0 0 " + width + " " + height, width: "100%",
                           height: height, role: "img",
                           "aria-label": spec.title || spec.y_label || "chart",
                           "class": "chart-svg"}, host);
    return {root: root, width: width, height: height};
  }

  function legend(host, items) {
    if (!items.length) return;
    var box = html("div", "legend", host);
    items.forEach(function (it) {
      var entry = html("span", "legend-item", box);
      var sw = svg("svg", {width: 22, height: 10, "aria-hidden": "true"}, entry);
      if (it.bar) {
        svg("rect", {x: 5, y: 0, width: 12, height: 10, rx: 2, fill: it.colour}, sw);
      } else {
        svg("line", {x1: 1, y1: 5, x2: 21, y2: 5, stroke: it.colour, "stroke-width": 2.5,
                     "stroke-dasharray": it.dash ? "4 3" : null}, sw);
      }
      html("span", "", entry, it.name);
    });
  }

  function axes(g, box, x, y, yt, xt, spec, xfmt) {
    yt.forEach(function (v) {
      var py = y(v);
      svg("line", {x1: box.l, x2: box.r, y1: py, y2: py, "class": "grid-line"}, g);
      svg("text", {x: box.l - 8, y: py + 4, "text-anchor": "end", "class": "tick"}, g)
        .textContent = fmt(v, spec.y_format, true);
    });
    xt.forEach(function (v) {
      svg("text", {x: x(v), y: box.b + 18, "text-anchor": "middle", "class": "tick"}, g)
        .textContent = xfmt ? xfmt(v) : String(v);
    });
    svg("line", {x1: box.l, x2: box.r, y1: box.b, y2: box.b, "class": "axis-line"}, g);
    if (spec.x_label) {
      svg("text", {x: (box.l + box.r) / 2, y: box.b + 34, "text-anchor": "middle",
                   "class": "axis-label"}, g).textContent = spec.x_label;
    }
    if (spec.y_label) {
      svg("text", {x: 12, y: (box.t + box.b) / 2, "text-anchor": "middle", "class": "axis-label",
                   transform: "rotate(-90 12 " + (box.t + box.b) / 2 + ")"}, g)
        .textContent = spec.y_label;
    }
  }

  function hasBoundary(spec) { return spec.boundary !== null && spec.boundary !== undefined; }

  function phaseMarker(g, box, px, labels) {
    if (px === null || px < box.l || px > box.r) return;
    svg("rect", {x: px, y: box.t, width: box.r - px, height: box.b - box.t, "class": "phase-ft"}, g);
    svg("line", {x1: px, x2: px, y1: box.t, y2: box.b, "class": "phase-line"}, g);
    // Labels sit above the plot area (charts with a boundary reserve room there).
    svg("text", {x: px - 6, y: box.t - 6, "text-anchor": "end", "class": "phase-label"}, g)
      .textContent = "◂ " + labels[0];
    svg("text", {x: px + 6, y: box.t - 6, "text-anchor": "start", "class": "phase-label"}, g)
      .textContent = labels[1] + " ▸";
  }

  function line(host, spec) {
    var series = (spec.series || []).filter(function (s) { return (s.points || []).length; });
    if (!series.length) { empty(host); return; }
    var xs = [], ys = [];
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        xs.push(p[0]);
        if (p[1] !== null && isFinite(p[1])) ys.push(p[1]);
      });
    });
    var small = host.closest(".small") !== null;
    var f = frame(host, spec, small ? 190 : 270);
    var box = {l: 58, r: f.width - 14, t: hasBoundary(spec) ? 24 : 12, b: f.height - 42};
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    if (spec.x_max !== null && spec.x_max !== undefined) x1 = Math.max(x1, spec.x_max);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var y0 = ys.length ? Math.min.apply(null, ys) : 0, y1 = ys.length ? Math.max.apply(null, ys) : 1;
    if (spec.y_min !== null && spec.y_min !== undefined) y0 = Math.min(spec.y_min, y0);
    if (spec.y_max !== null && spec.y_max !== undefined && spec.y_format !== "pct") y1 = Math.max(spec.y_max, y1);
    if (spec.y_format === "pct") {
      // Accuracy: zoom to the data, but never past 0 % or 100 %.
      var pad = Math.max(0.02, (y1 - y0) * 0.08);
      y0 = Math.max(0, y0 - pad); y1 = Math.min(1, y1 + pad);
    } else if (y1 === y0) { y0 -= 1; y1 += 1; } else { y1 += (y1 - y0) * 0.06; }
    var yt = ticks(y0, y1, small ? 4 : 5);
    y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
    var x = function (v) { return box.l + (v - x0) / (x1 - x0) * (box.r - box.l); };
    var y = function (v) { return box.b - (v - y0) / (y1 - y0) * (box.b - box.t); };
    var g = svg("g", {}, f.root);
    var xt = ticks(x0, x1, Math.min(10, Math.round((box.r - box.l) / 60)))
      .filter(function (v) { return Math.abs(v - Math.round(v)) < 1e-9; });
    axes(g, box, x, y, yt, xt, spec);
    if (spec.boundary !== null && spec.boundary !== undefined) {
      phaseMarker(g, box, x(spec.boundary), ["head", "fine-tune"]);
    }
    series.forEach(function (s) {
      var c = colour(s.color), d = "", pen = false;
      s.points.forEach(function (p) {
        if (p[1] === null || !isFinite(p[1])) { pen = false; return; }
        d += (pen ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
        pen = true;
      });
      if (d) {
        svg("path", {d: d, fill: "none", stroke: c, "stroke-width": 2.2,
                     "stroke-linejoin": "round", "stroke-linecap": "round",
                     "stroke-dasharray": s.dash ? "5 4" : null, "class": "series"}, g);
      }
      if (s.points.length <= 40) {
        s.points.forEach(function (p) {
          if (p[1] === null || !isFinite(p[1])) return;
          var dot = svg("circle", {cx: x(p[0]), cy: y(p[1]), r: s.dash ? 2.2 : 3,
                                   fill: s.dash ? "#fff" : c, stroke: c, "stroke-width": 1.5,
                                   "class": "dot"}, g);
          title(dot, s.name + " · " + (spec.x_label || "x") + " " + p[0] + ": " +
                     fmt(p[1], spec.y_format));
        });
      }
      (s.nan || []).forEach(function (step) {
        var mark = svg("text", {x: x(step), y: box.t + 26, "text-anchor": "middle",
                                "class": "nan-mark"}, g);
        mark.textContent = "NaN";
        title(mark, s.name + " was NaN at " + (spec.x_label || "x") + " " + step);
      });
    });
    legend(host, series.map(function (s) {
      return {name: s.name, colour: colour(s.color), dash: s.dash};
    }));
  }

  function bars(host, spec) {
    var cats = spec.categories || [], series = spec.series || [];
    var values = [];
    series.forEach(function (s) {
      (s.values || []).concat(s.hi || []).forEach(function (v) {
        if (v !== null && isFinite(v)) values.push(v);
      });
    });
    if (!cats.length || !values.length) { empty(host); return; }
    var small = host.closest(".small") !== null;
    var f = frame(host, spec, small ? 190 : 270);
    var box = {l: 58, r: f.width - 14, t: hasBoundary(spec) ? 24 : 14, b: f.height - 42};
    var y0 = 0, y1 = Math.max.apply(null, values);
    if (spec.y_format === "pct") y1 = Math.min(1, y1 + 0.05);
    var yt = ticks(y0, y1 * 1.04, small ? 3 : 5);
    y1 = Math.max(y1, yt[yt.length - 1]);
    var y = function (v) { return box.b - (v - y0) / (y1 - y0) * (box.b - box.t); };
    var band = (box.r - box.l) / cats.length;
    var inner = band * 0.78, bw = inner / Math.max(1, series.length);
    var xc = function (i) { return box.l + band * (i + 0.5); };
    var g = svg("g", {}, f.root);
    var every = Math.max(1, Math.ceil(cats.length / Math.max(1, (box.r - box.l) / 56)));
    axes(g, box, xc, y, yt, cats.map(function (_c, i) { return i; })
      .filter(function (i) { return i % every === 0 || cats.length <= 12; }), spec,
         function (i) { return cats[i]; });
    if (spec.boundary !== null && spec.boundary !== undefined) {
      // Categories are epochs 1..n: the boundary sits between two of them.
      phaseMarker(g, box, box.l + band * (spec.boundary - 0.5), ["head", "fine-tune"]);
    }
    series.forEach(function (s, si) {
      var c = colour(s.color !== undefined ? s.color : si);
      (s.values || []).forEach(function (v, i) {
        var left = xc(i) - inner / 2 + si * bw;
        if (v !== null && isFinite(v)) {
          var r = svg("rect", {x: left + 1, y: y(v), width: Math.max(1, bw - 2),
                               height: Math.max(0, box.b - y(v)), rx: 2, fill: c,
                               "class": "bar"}, g);
          title(r, (series.length > 1 ? s.name + " · " : "") + cats[i] + ": " + fmt(v, spec.y_format));
          var top = Math.min(y(v), (s.hi || [])[i] > v ? y(s.hi[i]) : y(v));
          if (!small && bw >= 34) {
            svg("text", {x: left + bw / 2, y: top - 5, "text-anchor": "middle",
                         "class": "bar-label"}, g).textContent = fmt(v, spec.y_format);
          }
        }
        var lo = (s.lo || [])[i], hi = (s.hi || [])[i];
        if (lo !== null && hi !== null && lo !== undefined && hi !== undefined && hi > lo) {
          var cx = left + bw / 2;
          svg("path", {d: "M" + cx + " " + y(lo) + "V" + y(hi) + "M" + (cx - 4) + " " + y(lo) +
                          "h8M" + (cx - 4) + " " + y(hi) + "h8", "class": "whisker"}, g);
        }
      });
    });
    if (spec.legend !== false) {
      legend(host, series.map(function (s, si) {
        return {name: s.name, colour: colour(s.color !== undefined ? s.color : si), bar: true};
      }));
    }
  }

  function stack(host, spec) {
    var parts = (spec.parts || []).filter(function (p) { return p.value > 0; });
    if (!parts.length) { empty(host); return; }
    var total = parts.reduce(function (a, p) { return a + p.value; }, 0);
    var f = frame(host, spec, 46);
    var l = 2, r = f.width - 2, at = l;
    parts.forEach(function (p, i) {
      var w = (r - l) * p.value / total;
      var rect = svg("rect", {x: at, y: 4, width: Math.max(0, w - 1), height: 34, rx: 3,
                              fill: colour(i), "class": "bar"}, f.root);
      title(rect, p.name + ": " + fmt(p.value, "s") + " (" + (100 * p.value / total).toFixed(1) + " %)");
      if (w > 56) {
        svg("text", {x: at + w / 2, y: 26, "text-anchor": "middle", "class": "stack-label"},
            f.root).textContent = (100 * p.value / total).toFixed(0) + " %";
      }
      at += w;
    });
    legend(host, parts.map(function (p, i) {
      return {name: p.name + " " + fmt(p.value, "s"), colour: colour(i), bar: true};
    }));
  }

  var KINDS = {line: line, bars: bars, stack: stack};

  function draw(figure, spec) {
    var body = figure.querySelector("[data-role=chart-body]");
    if (!body || !spec || !KINDS[spec.kind]) return;
    KINDS[spec.kind](body, spec);
    figure.setAttribute("data-drawn", spec.kind);
  }

  function specOf(figure) {
    var node = document.getElementById(figure.getAttribute("data-chart"));
    return node ? JSON.parse(node.textContent) : null;
  }

  function drawAll(root) {
    (root || document).querySelectorAll("figure[data-chart]").forEach(function (fig) {
      draw(fig, specOf(fig));
    });
  }

  // Replace a chart's data (live runs) and redraw it.
  function update(id, spec) {
    var node = document.getElementById(id);
    var fig = document.querySelector("figure[data-chart='" + id + "']");
    if (!node || !fig) return;
    node.textContent = JSON.stringify(spec);
    draw(fig, spec);
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { drawAll(); }, 150);
  });
  document.addEventListener("DOMContentLoaded", function () { drawAll(); });

  window.OrchCharts = {drawAll: drawAll, update: update, format: fmt};
})();
