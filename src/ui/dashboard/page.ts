/**
 * The dashboard page, shipped as text so nothing has to be built or copied:
 * plain browser script on top of uPlot (served from its package). It reads
 * the history, then each pushed snapshot, from /events; draws one chart per
 * group (`group/series` names), counters as rates per second and gauges as
 * they are; and lists every current figure in a table whose cells carry the
 * exact value in data-value, so scripts and tests can read them.
 */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<link rel="stylesheet" href="/uPlot.min.css">
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header><h1>%TITLE%</h1><span id="status">connecting</span></header>
<section id="progress"></section>
<section id="charts"></section>
<section>
<h2>Now</h2>
<table id="values"><thead><tr><th>name</th><th>value</th><th>per second</th></tr></thead><tbody></tbody></table>
</section>
<script src="/uPlot.iife.min.js"></script>
<script src="/app.js"></script>
</body>
</html>
`;

export const PAGE_STYLE = `
body { font: 14px system-ui, sans-serif; margin: 1em 2em; color: #222; }
header { display: flex; align-items: baseline; gap: 1em; }
h1 { font-size: 1.4em; margin: 0.2em 0; }
#status { color: #888; }
#status.live { color: #2a7; }
#charts { display: flex; flex-wrap: wrap; gap: 1em; }
.chart { border: 1px solid #ddd; padding: 4px; }
.bar { width: 420px; height: 14px; background: #eee; display: inline-block; vertical-align: middle; }
.bar > div { height: 100%; background: #4a8; }
.progress { margin: 4px 0; }
table { border-collapse: collapse; }
td, th { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
td:first-child, th:first-child { text-align: left; }
`;

export const PAGE_SCRIPT = `'use strict';
(function () {
  var LIMIT = 600;
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
  var snapshots = [];
  var charts = {};

  function groupOf(name) {
    var slash = name.indexOf('/');
    return slash < 0 ? { chart: name, series: name } : { chart: name.slice(0, slash), series: name.slice(slash + 1) };
  }

  function show(value) {
    if (value === null || value === undefined || !isFinite(value)) return '-';
    return Number.isInteger(value) ? String(value) : value.toFixed(3);
  }

  // Chart definitions from every name seen in the history: kind + chart -> series names.
  function layout() {
    var defs = {};
    snapshots.forEach(function (s) {
      [['counters', 'rate'], ['gauges', 'value']].forEach(function (pair) {
        Object.keys(s[pair[0]] || {}).forEach(function (name) {
          var g = groupOf(name);
          var id = pair[1] + ':' + g.chart;
          var def = defs[id] || (defs[id] = { id: id, kind: pair[0], title: g.chart + (pair[1] === 'rate' ? ' /s' : ''), names: [] });
          if (def.names.indexOf(name) < 0) def.names.push(name);
        });
      });
    });
    return defs;
  }

  function columns(def) {
    var xs = [];
    var ys = def.names.map(function () { return []; });
    for (var i = 0; i < snapshots.length; i++) {
      var s = snapshots[i];
      xs.push(s.time / 1000);
      def.names.forEach(function (name, j) {
        var v = (s[def.kind] || {})[name];
        if (def.kind === 'gauges') { ys[j].push(v === undefined ? null : v); return; }
        var p = i > 0 ? snapshots[i - 1] : undefined;
        var before = p ? (p.counters || {})[name] : undefined;
        var dt = p ? (s.time - p.time) / 1000 : 0;
        var rate = v === undefined || before === undefined || dt <= 0 ? null : (v - before) / dt;
        // A counter that went back (a restarted source) has no rate for that step.
        ys[j].push(rate === null || rate < 0 ? null : rate);
      });
    }
    return [xs].concat(ys);
  }

  function draw() {
    var defs = layout();
    var holder = document.getElementById('charts');
    var width = Math.max(320, Math.min(560, window.innerWidth - 80));
    Object.keys(defs).forEach(function (id) {
      var def = defs[id];
      var key = def.names.join('\\u0000');
      var chart = charts[id];
      if (chart && chart.key !== key) {
        chart.plot.destroy();
        chart.el.remove();
        chart = undefined;
      }
      if (!chart) {
        var el = document.createElement('div');
        el.className = 'chart';
        el.setAttribute('data-chart', id);
        holder.appendChild(el);
        var series = [{}].concat(def.names.map(function (name, j) {
          return { label: groupOf(name).series, stroke: COLORS[j % COLORS.length], width: 1.5, spanGaps: false };
        }));
        var plot = new uPlot({ title: def.title, width: width, height: 220, series: series, scales: { x: { time: true } } }, columns(def), el);
        charts[id] = { plot: plot, el: el, key: key };
      } else {
        chart.plot.setData(columns(def));
      }
    });
  }

  function table() {
    var last = snapshots[snapshots.length - 1];
    if (!last) return;
    var prev = snapshots[snapshots.length - 2];
    var body = document.querySelector('#values tbody');
    var rows = [];
    Object.keys(last.counters || {}).sort().forEach(function (name) {
      var v = last.counters[name];
      var rate = prev && prev.counters && prev.counters[name] !== undefined && last.time > prev.time
        ? (v - prev.counters[name]) / ((last.time - prev.time) / 1000) : null;
      rows.push([name, 'counter', v, rate]);
    });
    Object.keys(last.gauges || {}).sort().forEach(function (name) {
      rows.push([name, 'gauge', last.gauges[name], null]);
    });
    body.textContent = '';
    rows.forEach(function (r) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-name', r[0]);
      tr.setAttribute('data-kind', r[1]);
      var cells = [r[0], show(r[2]), r[3] === null ? '' : show(r[3])];
      cells.forEach(function (text, i) {
        var td = document.createElement('td');
        td.textContent = text;
        if (i === 1) { td.className = 'value'; td.setAttribute('data-value', String(r[2])); }
        if (i === 2) td.className = 'rate';
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    document.body.setAttribute('data-time', String(last.time));
  }

  function progress() {
    var last = snapshots[snapshots.length - 1];
    var holder = document.getElementById('progress');
    holder.textContent = '';
    var bars = (last && last.progress) || {};
    Object.keys(bars).forEach(function (label) {
      var p = bars[label];
      var div = document.createElement('div');
      div.className = 'progress';
      div.setAttribute('data-progress', label);
      var bar = document.createElement('span');
      bar.className = 'bar';
      var fill = document.createElement('div');
      var share = p.total ? Math.min(1, p.done / p.total) : 0;
      fill.style.width = (share * 100).toFixed(1) + '%';
      bar.appendChild(fill);
      var text = document.createElement('span');
      text.textContent = ' ' + label + ': ' + p.done + (p.total ? ' of ' + p.total + ' (' + (share * 100).toFixed(1) + '%)' : '');
      div.appendChild(bar);
      div.appendChild(text);
      holder.appendChild(div);
    });
  }

  function render() {
    draw();
    table();
    progress();
  }

  function add(s) {
    snapshots.push(s);
    if (snapshots.length > LIMIT) snapshots.splice(0, snapshots.length - LIMIT);
  }

  var status = document.getElementById('status');
  var events = new EventSource('/events');
  events.addEventListener('history', function (e) {
    snapshots = [];
    JSON.parse(e.data).forEach(add);
    status.textContent = 'live';
    status.className = 'live';
    render();
  });
  events.onmessage = function (e) {
    add(JSON.parse(e.data));
    render();
  };
  events.onerror = function () {
    status.textContent = 'disconnected, retrying';
    status.className = '';
  };
})();
`;
