// wavecrest run report: graph zoom and selection, the timeline canvas, the node table.
// Everything that came from the run is put into the page with textContent, never as markup.
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var OUTCOMES = ["succeeded", "retried", "fell back", "failed", "cancelled", "interrupted"];
  var COLORS = {
    queued: "#ced4da", ok: "#40c057", retried: "#fab005", wait: "#f08c00",
    fallback: "#228be6", failed: "#fa5252", timeout: "#a61e4d", cancelled: "#9775fa",
    interrupted: "#868e96", fault: "#d6336c", control: "#495057", checkpoint: "#ffd43b",
    critical: "#e8590c", grid: "#f1f3f5", text: "#212529", muted: "#868e96"
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function took(seconds) {
    if (seconds === null || seconds === undefined) { return "-"; }
    if (seconds < 0.001) { return Math.round(seconds * 1e6) + "µs"; }
    if (seconds < 0.1) { return (seconds * 1000).toFixed(1) + "ms"; }
    if (seconds < 1) { return Math.round(seconds * 1000) + "ms"; }
    if (seconds < 60) { return seconds.toFixed(1) + "s"; }
    if (seconds < 3600) {
      var m = Math.floor(seconds / 60);
      var s = Math.floor(seconds % 60);
      return m + "m" + (s < 10 ? "0" : "") + s + "s";
    }
    var h = Math.floor(seconds / 3600);
    var mm = Math.floor((seconds % 3600) / 60);
    return h + "h" + (mm < 10 ? "0" : "") + mm + "m";
  }

  // --- the graph ------------------------------------------------------------------------

  var graphBox = $("graph");
  var graphSvg = graphBox ? graphBox.querySelector("svg") : null;
  var graphZoom = 1;
  var natural = null;

  function graphNatural() {
    if (!graphSvg) { return null; }
    var box = graphSvg.viewBox && graphSvg.viewBox.baseVal;
    var w = box && box.width ? box.width : graphSvg.getBoundingClientRect().width;
    var h = box && box.height ? box.height : graphSvg.getBoundingClientRect().height;
    // Graphviz sizes its drawing in points.
    var unit = graphSvg.classList.contains("layout-dot") ? 96 / 72 : 1;
    return { w: w * unit, h: h * unit };
  }

  function setGraphZoom(zoom) {
    if (!graphSvg || !natural) { return; }
    graphZoom = Math.max(0.1, Math.min(4, zoom));
    graphSvg.setAttribute("width", String(Math.round(natural.w * graphZoom)));
    graphSvg.setAttribute("height", String(Math.round(natural.h * graphZoom)));
  }

  function fitGraph() {
    if (!graphSvg || !natural) { return; }
    var room = graphBox.clientWidth - 14;
    setGraphZoom(natural.w > room ? Math.max(0.35, room / natural.w) : 1);
  }

  if (graphSvg) {
    natural = graphNatural();
    fitGraph();
    document.querySelectorAll("[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () {
        var how = button.getAttribute("data-zoom");
        if (how === "fit") { fitGraph(); }
        else if (how === "1") { setGraphZoom(1); }
        else if (how === "in") { setGraphZoom(graphZoom * 1.25); }
        else { setGraphZoom(graphZoom / 1.25); }
      });
    });
    graphSvg.addEventListener("click", function (event) {
      var target = event.target;
      var group = target && target.closest ? target.closest("g.node") : null;
      if (!group || !DATA) { return; }
      var key = group.id.slice(2);
      if (key.indexOf("~") >= 0) { return; }
      selectNode(key);
    });
  }

  function highlightGraph(nodeId) {
    if (!graphSvg) { return; }
    graphSvg.querySelectorAll("g.node.selected").forEach(function (g) { g.classList.remove("selected"); });
    if (nodeId === null) { return; }
    var group = document.getElementById("n-" + nodeId);
    if (group) { group.classList.add("selected"); }
  }

  if (!DATA) {  // a plan: nothing more to draw
    document.body.setAttribute("data-ready", "1");
    return;
  }

  // --- the run's data -------------------------------------------------------------------

  // rows: [path, kind, status, start, end, attempts, duration, queued, critical]
  // attempts: [row, n, ready, start, end, outcome, fallback, faults, error, message,
  //            timedOut, retryDelay, segment]
  // marks: [row, at, kind, text]; segments: [start, end, status, resumed, finished]
  var rows = DATA.rows;
  var details = DATA.details;
  var segments = DATA.segments.slice();
  var perRow = rows.map(function () { return { attempts: [], marks: [] }; });
  DATA.attempts.forEach(function (a) { perRow[a[0]].attempts.push(a); });
  DATA.marks.forEach(function (m) { perRow[m[0]].marks.push(m); });
  var critical = {};
  DATA.critical.forEach(function (i) { critical[i] = true; });

  function nodeOf(path) {
    var slash = path.lastIndexOf("/");
    return slash < 0 ? path : path.slice(slash + 1);
  }

  // How much a node's story matters: 4 failed, 3 retried or fell back, 2 cancelled,
  // 1 had a fault injected, 0 nothing happened to it.
  function trouble(i) {
    var row = rows[i];
    var info = perRow[i];
    if (row[2] === "failed") { return 4; }
    if (info.attempts.some(function (a) { return a[5] === 1 || a[5] === 2 || a[6] !== null; })) { return 3; }
    if (row[2] === "cancelled") { return 2; }
    if (info.marks.some(function (m) { return m[2] === "fault"; })) { return 1; }
    return 0;
  }

  function hasTrouble(i) { return trouble(i) > 0; }

  // --- the timeline ---------------------------------------------------------------------

  // A few rows are drawn taller than many.
  var ROW_H = DATA.rows.length <= 40 ? 24 : 18, HEAD_H = 30, LABEL_W = 240, PAD = 12, GAP = 34;
  var BAR = ROW_H >= 24 ? 7 : 5;  // half the height of a running bar
  var canvas = $("tl-canvas");
  var scroller = $("tl-scroller");
  var spacer = $("tl-spacer");
  var box = $("timeline");
  var tip = $("tl-tip");
  var ctx = canvas.getContext("2d");
  var lines = [];           // row indices shown, in order
  var scale = 100;          // pixels per second
  var offsets = [];         // x offset of each segment, before LABEL_W + PAD
  var selected = null;

  var timed = [];
  rows.forEach(function (row, i) {
    if (perRow[i].attempts.length || perRow[i].marks.length || (row[3] !== null && row[4] !== null)) {
      timed.push(i);
    }
  });
  if (!segments.length) {
    var lo = Infinity, hi = -Infinity;
    timed.forEach(function (i) {
      if (rows[i][3] !== null) { lo = Math.min(lo, rows[i][3]); }
      if (rows[i][4] !== null) { hi = Math.max(hi, rows[i][4]); }
    });
    segments = [[isFinite(lo) ? lo : 0, isFinite(hi) ? hi : 0, null, false, true]];
  }
  segments.sort(function (a, b) { return a[0] - b[0]; });
  var total = segments.reduce(function (sum, s) { return sum + Math.max(0, s[1] - s[0]); }, 0);

  function layoutSegments() {
    offsets = [];
    var x = 0;
    segments.forEach(function (s) {
      offsets.push(x);
      x += Math.max(0, s[1] - s[0]) * scale + GAP;
    });
    return x - GAP;
  }

  function segmentAt(t) {
    var found = 0;
    for (var i = 0; i < segments.length; i++) {
      if (segments[i][0] <= t) { found = i; }
    }
    return found;
  }

  function xOf(t, segment) {
    var i = segment === undefined || segment === null ? segmentAt(t) : segment;
    var s = segments[i];
    var within = Math.min(Math.max(t, s[0]), Math.max(s[0], s[1]));
    return LABEL_W + PAD + offsets[i] + (within - s[0]) * scale;
  }

  function chooseLines() {
    var how = $("tl-filter").value;
    lines = timed.filter(function (i) {
      if (how === "critical") { return critical[i]; }
      if (how === "trouble") { return hasTrouble(i); }
      return true;
    });
  }

  function resize() {
    var width = box.clientWidth;
    var wanted = HEAD_H + lines.length * ROW_H + 16;
    var height = Math.max(120, Math.min(540, wanted));
    box.style.height = height + "px";
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    var span = layoutSegments();
    spacer.style.width = Math.ceil(LABEL_W + 2 * PAD + span) + "px";
    spacer.style.height = Math.ceil(HEAD_H + lines.length * ROW_H + 8) + "px";
    draw();
  }

  function fitTimeline() {
    var room = box.clientWidth - LABEL_W - 2 * PAD - GAP * (segments.length - 1) - 18;
    scale = total > 0 ? Math.max(room, 50) / total : 100;
    resize();
    scroller.scrollLeft = 0;
  }

  function zoomTimeline(factor, anchorX) {
    var left = scroller.scrollLeft;
    var at = anchorX === undefined ? box.clientWidth / 2 : anchorX;
    var before = left + at - LABEL_W - PAD;
    scale = Math.max(1e-3, Math.min(1e9, scale * factor));
    resize();
    scroller.scrollLeft = Math.max(0, before * factor - at + LABEL_W + PAD);
    draw();
  }

  function niceStep(pixels) {
    var seconds = pixels / scale;
    var power = Math.pow(10, Math.floor(Math.log10(seconds)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= seconds) { return steps[i] * power; }
    }
    return 10 * power;
  }

  function tickLabel(seconds) {
    if (seconds === 0) { return "0"; }
    return took(seconds);
  }

  function attemptColor(a) {
    var outcome = OUTCOMES[a[5]];
    if (a[10]) { return COLORS.timeout; }
    if (a[6] !== null && outcome === "succeeded") { return COLORS.fallback; }
    if (outcome === "succeeded") { return COLORS.ok; }
    if (outcome === "retried" || outcome === "fell back") { return COLORS.retried; }
    if (outcome === "failed") { return COLORS.failed; }
    if (outcome === "cancelled") { return COLORS.cancelled; }
    return COLORS.interrupted;
  }

  function segmentEnd(a) {
    var s = segments[Math.min(a[12], segments.length - 1)];
    return s ? s[1] : a[3];
  }

  function drawRow(i, y) {
    var row = rows[i];
    var info = perRow[i];
    var mid = y + ROW_H / 2;
    if (critical[i]) {
      ctx.fillStyle = "rgba(232, 89, 12, 0.07)";
      ctx.fillRect(LABEL_W, y, 1e7, ROW_H);
    }
    if (i === selected) {
      ctx.fillStyle = "rgba(28, 126, 214, 0.12)";
      ctx.fillRect(LABEL_W, y, 1e7, ROW_H);
    }
    if (!info.attempts.length && row[3] !== null && row[4] !== null) {
      // A control node (or a delay, a checkpoint): the span it was open.
      var x0 = xOf(row[3]), x1 = Math.max(xOf(row[4], segmentAt(row[3])), x0 + 1);
      ctx.fillStyle = row[2] === "failed" ? COLORS.failed
        : row[2] === "cancelled" ? COLORS.cancelled : COLORS.control;
      ctx.fillRect(x0, mid - 2, x1 - x0, 4);
      ctx.fillRect(x0, mid - BAR, 1.5, 2 * BAR);
      ctx.fillRect(x1 - 1.5, mid - BAR, 1.5, 2 * BAR);
    }
    info.attempts.forEach(function (a) {
      var seg = a[12];
      var ready = xOf(a[2], seg), start = xOf(a[3], seg);
      var end = xOf(a[4] === null ? segmentEnd(a) : a[4], seg);
      if (start - ready >= 0.5) {
        ctx.fillStyle = COLORS.queued;
        ctx.fillRect(ready, mid - BAR / 2, start - ready, BAR);
      }
      ctx.fillStyle = attemptColor(a);
      ctx.fillRect(start, mid - BAR, Math.max(4, end - start), 2 * BAR);
      if (critical[i]) {
        ctx.strokeStyle = COLORS.critical;
        ctx.lineWidth = 1.5;
        ctx.strokeRect(start - 0.5, mid - BAR - 0.5, Math.max(4, end - start) + 1, 2 * BAR + 1);
      }
      if (a[10]) {
        ctx.fillStyle = "#fff";
        ctx.fillRect(Math.max(start, end - 3), mid - 3, 1.5, 6);
      }
      if (a[11] !== null && a[4] !== null) {
        var until = xOf(a[4] + a[11], seg);
        ctx.strokeStyle = COLORS.wait;
        ctx.lineWidth = 1.5;
        ctx.setLineDash([2, 3]);
        ctx.beginPath();
        ctx.moveTo(end + 1, mid);
        ctx.lineTo(Math.max(end + 2, until), mid);
        ctx.stroke();
        ctx.setLineDash([]);
      }
    });
    info.marks.forEach(function (m) {
      var x = xOf(m[1]);
      if (m[2] === "fault") {
        // A diamond standing on the bar's top edge, where the attempt began.
        ctx.fillStyle = COLORS.fault;
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 1;
        ctx.beginPath();
        var peak = mid - BAR;
        ctx.moveTo(x, peak - 4.5); ctx.lineTo(x + 4, peak); ctx.lineTo(x, peak + 4.5); ctx.lineTo(x - 4, peak);
        ctx.closePath();
        ctx.fill();
        ctx.stroke();
      } else if (m[2] === "checkpoint") {
        var seg = segmentAt(m[1]);
        var stop = row[4] !== null && row[4] >= m[1] ? row[4] : segments[seg][1];
        ctx.fillStyle = COLORS.checkpoint;
        ctx.fillRect(x, mid - BAR, Math.max(2, xOf(stop, seg) - x), 2 * BAR);
      } else {
        ctx.strokeStyle = m[2] === "failed" ? COLORS.failed : COLORS.muted;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(x - 3, mid - 3); ctx.lineTo(x + 3, mid + 3);
        ctx.moveTo(x + 3, mid - 3); ctx.lineTo(x - 3, mid + 3);
        ctx.stroke();
      }
    });
  }

  function draw() {
    var width = box.clientWidth, height = box.clientHeight;
    var left = scroller.scrollLeft, top = scroller.scrollTop;
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif";
    ctx.textBaseline = "middle";

    // The bars, under the header and right of the labels.
    ctx.save();
    ctx.beginPath();
    ctx.rect(LABEL_W, HEAD_H, width - LABEL_W, height - HEAD_H);
    ctx.clip();
    ctx.translate(-left, HEAD_H - top);
    segments.forEach(function (s, k) {
      var x0 = xOf(s[0], k), x1 = xOf(s[1], k);
      ctx.fillStyle = k % 2 ? "#fcfcfd" : "#ffffff";
      ctx.fillRect(x0, top - HEAD_H, Math.max(1, x1 - x0), height + HEAD_H);
      if (k > 0) {
        ctx.fillStyle = "#f1f3f5";
        ctx.fillRect(x0 - GAP + 4, top - HEAD_H, GAP - 8, height + HEAD_H);
      }
    });
    var first = Math.max(0, Math.floor(top / ROW_H));
    var last = Math.min(lines.length, Math.ceil((top + height - HEAD_H) / ROW_H) + 1);
    for (var r = first; r < last; r++) {
      drawRow(lines[r], r * ROW_H);
    }
    ctx.restore();

    // The labels, fixed on the left.
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, HEAD_H, LABEL_W, height - HEAD_H);
    ctx.clip();
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, HEAD_H, LABEL_W, height - HEAD_H);
    for (var q = first; q < last; q++) {
      var i = lines[q];
      var y = HEAD_H + q * ROW_H - top + ROW_H / 2;
      var label = rows[i][0];
      ctx.fillStyle = critical[i] ? COLORS.critical : COLORS.text;
      ctx.font = (critical[i] ? "600 " : "") + "11.5px system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif";
      var room = LABEL_W - 16;
      if (ctx.measureText(label).width > room) {
        while (label.length > 1 && ctx.measureText("…" + label).width > room) { label = label.slice(1); }
        label = "…" + label;
      }
      ctx.fillText(label, 8, y);
    }
    ctx.strokeStyle = "#dee2e6";
    ctx.beginPath();
    ctx.moveTo(LABEL_W - 0.5, HEAD_H);
    ctx.lineTo(LABEL_W - 0.5, height);
    ctx.stroke();
    ctx.restore();

    // The time axis, fixed on top: ticks per segment, from that segment's start.
    ctx.save();
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, HEAD_H);
    ctx.beginPath();
    ctx.rect(LABEL_W, 0, width - LABEL_W, HEAD_H);
    ctx.clip();
    ctx.translate(-left, 0);
    ctx.font = "10.5px system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif";
    var step = niceStep(90);
    segments.forEach(function (s, k) {
      var x0 = xOf(s[0], k);
      ctx.fillStyle = COLORS.muted;
      var name = k === 0 ? (s[3] ? "resume" : "run") : "resume " + k;
      if (k > 0) { name += " · +" + took(s[0] - segments[0][0]); }
      if (s[2] === null) { name += " · no end in the log: killed, or still running"; } else { name += " · " + s[2]; }
      ctx.fillText(name, x0 + 2, 8);
      for (var t = 0; t <= s[1] - s[0] + 1e-9; t += step) {
        var x = xOf(s[0] + t, k);
        ctx.fillStyle = "#ced4da";
        ctx.fillRect(x, 16, 1, HEAD_H - 16);
        ctx.fillStyle = COLORS.muted;
        ctx.fillText(tickLabel(t), x + 3, 22);
        if (t > 1e6) { break; }
      }
    });
    ctx.restore();
    ctx.strokeStyle = "#dee2e6";
    ctx.beginPath();
    ctx.moveTo(0, HEAD_H - 0.5);
    ctx.lineTo(width, HEAD_H - 0.5);
    ctx.stroke();
    ctx.fillStyle = COLORS.muted;
    ctx.font = "10.5px system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif";
    ctx.fillText(lines.length.toLocaleString() + " of " + timed.length.toLocaleString() + " rows", 8, HEAD_H / 2);
  }

  function hit(event) {
    var rect = box.getBoundingClientRect();
    var x = event.clientX - rect.left, y = event.clientY - rect.top;
    if (y < HEAD_H) { return null; }
    var r = Math.floor((y - HEAD_H + scroller.scrollTop) / ROW_H);
    if (r < 0 || r >= lines.length) { return null; }
    var i = lines[r];
    var found = { row: i, attempt: null, mark: null, x: x, y: y };
    if (x < LABEL_W) { return found; }
    var px = x + scroller.scrollLeft;
    perRow[i].marks.forEach(function (m) {
      if (m[2] === "fault" && Math.abs(xOf(m[1]) - px) <= 5) { found.mark = m; }
    });
    perRow[i].attempts.forEach(function (a) {
      var seg = a[12];
      var from = xOf(a[2], seg) - 2;
      var to = xOf(a[4] === null ? segmentEnd(a) : a[4], seg) + 2;
      if (a[11] !== null && a[4] !== null) { to = Math.max(to, xOf(a[4] + a[11], seg)); }
      if (px >= from && px <= to) { found.attempt = a; }
    });
    return found;
  }

  function describeAttempt(a) {
    var parts = [];
    var head = "attempt " + a[1];
    if (a[6] !== null) { head = "fallback " + a[6]; }
    parts.push(head + ": " + OUTCOMES[a[5]] + (a[10] ? " (timed out)" : ""));
    parts.push("queued " + took(a[3] - a[2]) + ", ran " + (a[4] === null ? "until the log ended" : took(a[4] - a[3])));
    if (a[8] !== null) { parts.push(a[8] + ": " + (a[9] || "")); }
    if (a[7] !== null) { parts.push("fault injected: " + a[7]); }
    if (a[11] !== null) { parts.push("retried after " + took(a[11])); }
    return parts.join("\n");
  }

  scroller.addEventListener("scroll", draw);
  scroller.addEventListener("mousemove", function (event) {
    var found = hit(event);
    if (!found) { tip.hidden = true; return; }
    var row = rows[found.row];
    var text = row[0] + " · " + (row[1] || "node") + " · " + row[2];
    if (found.attempt) { text += "\n" + describeAttempt(found.attempt); }
    else if (found.mark) { text += "\nfault injected: " + found.mark[3]; }
    else if (perRow[found.row].attempts.length) {
      var count = perRow[found.row].attempts.length;
      text += "\n" + count + (count === 1 ? " attempt" : " attempts") + ", ran " + took(row[6]);
    } else if (row[3] !== null && row[4] !== null) { text += "\nopen for " + took(row[4] - row[3]); }
    tip.textContent = text;
    tip.hidden = false;
    var left = Math.min(found.x + 14, box.clientWidth - tip.offsetWidth - 4);
    var top = found.y + 16;
    if (top + tip.offsetHeight > box.clientHeight) { top = found.y - tip.offsetHeight - 8; }
    tip.style.left = Math.max(4, left) + "px";
    tip.style.top = Math.max(4, top) + "px";
  });
  scroller.addEventListener("mouseleave", function () { tip.hidden = true; });
  scroller.addEventListener("click", function (event) {
    var found = hit(event);
    if (found) { selectRow(found.row, true); }
  });
  scroller.addEventListener("wheel", function (event) {
    if (!event.ctrlKey) { return; }
    event.preventDefault();
    var rect = box.getBoundingClientRect();
    zoomTimeline(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - rect.left);
  }, { passive: false });
  document.querySelectorAll("[data-tl]").forEach(function (button) {
    button.addEventListener("click", function () {
      var how = button.getAttribute("data-tl");
      if (how === "fit") { fitTimeline(); }
      else { zoomTimeline(how === "in" ? 1.5 : 1 / 1.5); }
    });
  });
  $("tl-filter").addEventListener("change", function () {
    chooseLines();
    scroller.scrollTop = 0;
    resize();
  });
  window.addEventListener("resize", function () { resize(); fitGraph(); });

  // --- the node table and the details ---------------------------------------------------

  var PAGE = 50;
  var page = 0;
  var shown = [];
  var tbody = document.querySelector("#nodes-table tbody");
  var search = $("node-search");
  var statusFilter = $("node-status");

  function filterRows() {
    var text = search.value.trim().toLowerCase();
    var status = statusFilter.value;
    shown = [];
    for (var i = 0; i < rows.length; i++) {
      if (status && rows[i][2] !== status) { continue; }
      if (text && rows[i][0].toLowerCase().indexOf(text) < 0) { continue; }
      shown.push(i);
    }
  }

  function firstProblem(i) {
    var info = details[String(i)];
    if (info && info.errors && info.errors.length) {
      var e = info.errors[info.errors.length - 1];
      return e[0] + ": " + e[1];
    }
    if (info && info.reason) { return info.reason; }
    if (info && info.output !== undefined) { return info.output; }
    return "";
  }

  function renderTable() {
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.max(0, Math.min(page, pages - 1));
    tbody.textContent = "";
    var end = Math.min(shown.length, (page + 1) * PAGE);
    for (var k = page * PAGE; k < end; k++) {
      var i = shown[k];
      var row = rows[i];
      var tr = document.createElement("tr");
      tr.setAttribute("data-row", String(i));
      if (critical[i]) { tr.classList.add("critical"); }
      if (i === selected) { tr.classList.add("selected"); }
      tr.appendChild(el("td", row[0])).title = row[0];
      tr.appendChild(el("td", row[1]));
      var cell = document.createElement("td");
      cell.appendChild(el("span", row[2], "badge st-" + row[2]));
      tr.appendChild(cell);
      tr.appendChild(el("td", row[5] || ""));
      tr.appendChild(el("td", row[7] ? took(row[7]) : ""));
      tr.appendChild(el("td", row[6] === null ? "" : took(row[6])));
      var problem = firstProblem(i);
      tr.appendChild(el("td", problem)).title = problem;
      tbody.appendChild(tr);
    }
    $("page-info").textContent = shown.length
      ? (page * PAGE + 1).toLocaleString() + "–" + end.toLocaleString() + " of " + shown.length.toLocaleString()
      : "no nodes";
  }

  tbody.addEventListener("click", function (event) {
    var tr = event.target.closest("tr");
    if (tr) { selectRow(Number(tr.getAttribute("data-row")), false); }
  });
  search.addEventListener("input", function () { filterRows(); page = 0; renderTable(); });
  statusFilter.addEventListener("change", function () { filterRows(); page = 0; renderTable(); });
  $("page-prev").addEventListener("click", function () { page -= 1; renderTable(); });
  $("page-next").addEventListener("click", function () { page += 1; renderTable(); });
  document.querySelectorAll(".chip[data-status]").forEach(function (chip) {
    chip.addEventListener("click", function () {
      statusFilter.value = chip.getAttribute("data-status");
      filterRows();
      page = 0;
      renderTable();
      $("nodes-section").scrollIntoView();
    });
  });

  function fact(list, name, value) {
    list.appendChild(el("dt", name));
    list.appendChild(el("dd", value));
  }

  function showDetail(i) {
    var aside = $("detail");
    var row = rows[i];
    var info = details[String(i)] || {};
    aside.textContent = "";
    aside.appendChild(el("h3", row[0]));
    var list = el("dl", null, "facts");
    fact(list, "type", row[1] || "-");
    fact(list, "status", row[2]);
    fact(list, "attempts", row[5]);
    fact(list, "ran", took(row[6]));
    fact(list, "queued", took(row[7]));
    if (critical[i]) { fact(list, "critical path", "yes"); }
    if (info.fallback) { fact(list, "fallback", info.fallback); }
    if (info.reason) { fact(list, "reason", info.reason); }
    if (info.abandoned) { fact(list, "abandoned", "it ignored its cancellation"); }
    aside.appendChild(list);
    var attempts = perRow[i].attempts;
    if (attempts.length) {
      aside.appendChild(el("h4", "Attempts"));
      var table = el("table", null, "plain");
      var head = document.createElement("tr");
      ["#", "queued", "ran", "outcome", "error"].forEach(function (h) { head.appendChild(el("th", h)); });
      table.appendChild(head);
      attempts.forEach(function (a) {
        var tr = document.createElement("tr");
        tr.appendChild(el("td", a[6] !== null ? "fallback " + a[6] : a[1]));
        tr.appendChild(el("td", took(a[3] - a[2])));
        tr.appendChild(el("td", a[4] === null ? "-" : took(a[4] - a[3])));
        var outcome = OUTCOMES[a[5]] + (a[10] ? ", timed out" : "") + (a[7] !== null ? ", fault: " + a[7] : "");
        tr.appendChild(el("td", outcome));
        tr.appendChild(el("td", a[8] === null ? "" : a[8] + ": " + (a[9] || "")));
        table.appendChild(tr);
      });
      aside.appendChild(table);
    }
    (info.errors || []).forEach(function (e, k) {
      var label = info.errors.length > 1 && k === 0 ? "Error (the primary's)" : "Error";
      aside.appendChild(el("h4", label));
      var message = el("p");
      message.appendChild(el("b", e[0]));
      message.appendChild(document.createTextNode(": " + e[1]));
      message.className = "error-message";
      aside.appendChild(message);
      if (e[2]) { aside.appendChild(el("pre", e[2], "traceback")); }
    });
    if (info.output !== undefined) {
      aside.appendChild(el("h4", "Output"));
      aside.appendChild(el("pre", info.output, "output"));
    }
    if (info.logs) {
      aside.appendChild(el("h4", "Log"));
      aside.appendChild(el("pre", info.logs.join("\n"), "log"));
    }
  }

  // fromTimeline: the timeline already shows the row (or should stay where it is).
  function selectRow(i, fromTimeline) {
    selected = i;
    showDetail(i);
    highlightGraph(nodeOf(rows[i][0]));
    var position = shown.indexOf(i);
    if (position < 0) {
      search.value = "";
      statusFilter.value = "";
      filterRows();
      position = shown.indexOf(i);
    }
    page = Math.floor(position / PAGE);
    renderTable();
    if (!fromTimeline) {
      var line = lines.indexOf(i);
      if (line >= 0) {
        var y = line * ROW_H;
        var view = box.clientHeight - HEAD_H;
        if (y < scroller.scrollTop || y > scroller.scrollTop + view - ROW_H) {
          scroller.scrollTop = Math.max(0, y - view / 2);
        }
      }
    }
    draw();
  }

  function selectNode(nodeId) {
    // A fallback has no row of its own: show the first node it stood in for.
    for (var f = 0; f < rows.length; f++) {
      var info = details[String(f)];
      if (info && info.fallback === nodeId) { nodeId = nodeOf(rows[f][0]); break; }
    }
    for (var i = 0; i < rows.length; i++) {
      if (nodeOf(rows[i][0]) === nodeId) {
        search.value = rows[i][0] === nodeId ? nodeId : "/" + nodeId;
        filterRows();
        if (shown.indexOf(i) < 0) { search.value = ""; filterRows(); }
        selectRow(i, false);
        $("nodes-section").scrollIntoView({ block: "nearest" });
        return;
      }
    }
  }

  chooseLines();
  filterRows();
  renderTable();
  fitTimeline();
  // Open on the first node with the most to tell (see trouble).
  var first = -1, worst = 0;
  for (var k = 0; k < rows.length; k++) {
    var score = trouble(k);
    if (score > worst) { worst = score; first = k; }
  }
  if (first >= 0) { selectRow(first, true); }
  $("tl-caption").textContent = timed.length.toLocaleString() + " nodes ran, in " +
    DATA.attempts.length.toLocaleString() + " attempts over " + segments.length + " segment" +
    (segments.length === 1 ? "" : "s") + ". Hover a bar for its attempt; click to see its node; " +
    "ctrl + wheel zooms; scroll moves.";
  document.body.setAttribute("data-ready", "1");
})();
