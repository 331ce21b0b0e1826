/* topowatch dashboard — Plotly figure builders (pure functions of cached data). */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});

  // Cyclic colour scale (plotly's "mrybm"): step-0 position -> hue; wraps around.
  const CYCLIC = ['#f884f7', '#f968c4', '#ea4388', '#cf244b', '#b51a15', '#bd4304', '#cc6904', '#d58f04',
    '#cfaa27', '#a19f62', '#588a93', '#2269c4', '#3e3ef0', '#6b4ef9', '#956bfa', '#cd7dfe', '#f884f7'];
  TW.CYCLIC_SCALE = CYCLIC.map((c, i) => [i / (CYCLIC.length - 1), c]);
  TW.KNN_SCALE = 'Viridis';
  TW.DIM_COLORS = ['#4c78ff', '#ff8c3a', '#22b573', '#b36bff'];
  TW.RUN_COLORS = ['#5b6cff', '#ef553b', '#00b386', '#ab63fa'];

  let webgl = null;
  TW.hasWebGL = function () {
    if (webgl === null) {
      try {
        const cv = document.createElement('canvas');
        webgl = !!(cv.getContext('webgl') || cv.getContext('experimental-webgl'));
      } catch (e) { webgl = false; }
    }
    return webgl;
  };

  function axis(extra) {
    const t = TW.theme();
    return Object.assign({
      gridcolor: t.grid, zerolinecolor: t.grid, linecolor: t.axis, tickcolor: t.axis,
      automargin: true, title: { font: { size: 11, color: t.muted } }, tickfont: { size: 10.5 },
    }, extra || {});
  }
  TW.axis = axis;

  TW.baseLayout = function (height, extra) {
    const t = TW.theme();
    return Object.assign({
      height: height,
      autosize: true,
      paper_bgcolor: 'rgba(0,0,0,0)',
      plot_bgcolor: 'rgba(0,0,0,0)',
      font: { family: t.font, size: 12, color: t.fg },
      margin: { l: 54, r: 14, t: 34, b: 38 },
      hoverlabel: { font: { family: t.font, size: 12 }, namelength: -1 },
      modebar: { bgcolor: 'rgba(0,0,0,0)', color: t.muted, activecolor: t.accent },
      legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.0, yanchor: 'bottom', bgcolor: 'rgba(0,0,0,0)', font: { size: 10.5 } },
      xaxis: axis(),
      yaxis: axis(),
    }, extra || {});
  };

  TW.titleText = function (text, sub) {
    return { text: sub ? text + ' <span style="font-size:10.5px;opacity:.65">' + sub + '</span>' : text,
      x: 0.01, xanchor: 'left', y: 0.985, yanchor: 'top', font: { size: 13 } };
  };

  TW.emptyFigure = function (height, msg, sub, meta) {
    const t = TW.theme();
    const ann = [{ text: msg, showarrow: false, x: 0.5, y: sub ? 0.55 : 0.5, xref: 'paper', yref: 'paper',
      font: { size: 15, color: t.fg } }];
    if (sub) ann.push({ text: sub, showarrow: false, x: 0.5, y: 0.43, xref: 'paper', yref: 'paper', font: { size: 12, color: t.muted } });
    return {
      data: [],
      layout: TW.baseLayout(height, {
        xaxis: { visible: false }, yaxis: { visible: false }, annotations: ann, meta: meta || { empty: true },
        margin: { l: 10, r: 10, t: 10, b: 10 },
      }),
    };
  };

  // ------------------------------------------------------------------ neuron cloud
  const AX = {
    raw2: ['w (input weight)', 'a (output weight)'],
    raw3: ['w₁', 'w₂', 'a'],
    pca: ['PC 1', 'PC 2', 'PC 3'],
    umap: ['UMAP 1', 'UMAP 2'],
  };

  TW.pickProjection = function (coords, want) {
    coords = coords || {};
    if (want && coords[want] && coords[want].length) return want;
    for (const k of ['raw', 'pca', 'umap']) if (coords[k] && coords[k].length) return k;
    return null;
  };

  function growBox(box, P, d) {
    for (let k = 0; k < d; k++) {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < P.length; i++) {
        const v = P[i][k];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (!Number.isFinite(lo)) continue;
      if (!box[k]) box[k] = [lo, hi];
      else box[k] = [Math.min(box[k][0], lo), Math.max(box[k][1], hi)];
    }
    return box;
  }
  function padded(r) {
    const span = r[1] - r[0] || Math.abs(r[0]) * 0.1 || 1;
    return [r[0] - 0.06 * span, r[1] + 0.06 * span];
  }

  /* o: {proj, color, dim3, height, uirev, bbox (object kept per run+projection), compact, title} */
  TW.cloudFigure = function (frame, o) {
    const t = TW.theme();
    const proj = TW.pickProjection(frame.coords, o.proj);
    if (!proj) return TW.emptyFigure(o.height, 'No coordinates in this frame', '', { step: frame.step, n: 0 });
    const P = frame.coords[proj];
    const d = (P[0] || []).length;
    const use3 = !!o.dim3 && d >= 3;
    const n = P.length;
    const x = new Array(n), y = new Array(n), z = use3 ? new Array(n) : null;
    for (let i = 0; i < n; i++) { x[i] = P[i][0]; y[i] = P[i][1]; if (use3) z[i] = P[i][2]; }
    const hue = frame.neuron_hue || [];
    const knn = o.knn || frame.knn_preservation || []; // o.knn: shares for another k (frames carry k = 10)
    const kk = o.knn ? (o.knnK || 10) : 10;
    const byKnn = o.color === 'knn' && knn.length === n;
    const custom = new Array(n);
    for (let i = 0; i < n; i++) custom[i] = [i, hue[i] === undefined ? null : hue[i], knn[i] === undefined ? null : knn[i]];
    const names = proj === 'raw' ? (d >= 3 ? AX.raw3 : AX.raw2) : AX[proj] || ['x', 'y', 'z'];
    const hover = 'neuron %{customdata[0]}<br>' + names[0] + ' = %{x:.4f}<br>' + names[1] + ' = %{y:.4f}' +
      (use3 ? '<br>' + names[2] + ' = %{z:.4f}' : '') +
      '<br>step-0 hue = %{customdata[1]:.3f}<br>kNN preserved (k=' + kk + ') = %{customdata[2]:.2f}<extra>step ' + frame.step + '</extra>';
    const size = o.compact ? (n > 2000 ? 2.6 : 3.6) : (n > 2000 ? 3.2 : n > 600 ? 4.6 : 6);
    const marker = {
      size: use3 ? Math.max(1.8, size * 0.6) : size,
      color: byKnn ? knn : hue,
      colorscale: byKnn ? TW.KNN_SCALE : TW.CYCLIC_SCALE,
      cmin: 0, cmax: 1,
      opacity: 0.92,
      line: { width: 0 },
      showscale: byKnn,
    };
    if (byKnn) marker.colorbar = { title: { text: 'kNN kept (k=' + kk + ')', side: 'right', font: { size: 10.5 } }, thickness: 10, len: 0.8, tickfont: { size: 10 }, outlinewidth: 0 };
    // WebGL draws a thousand points per frame far faster than SVG; fall back to SVG without it.
    const type = use3 ? 'scatter3d' : (n > 300 && TW.hasWebGL() ? 'scattergl' : 'scatter');
    const trace = { type: type, mode: 'markers', x: x, y: y, customdata: custom, hovertemplate: hover, marker: marker, name: 'neurons', showlegend: false };
    if (use3) trace.z = z;

    // Ranges: the union of every frame shown so far, so the cloud moves inside fixed axes.
    const box = growBox(o.bbox || {}, P, use3 ? 3 : 2);
    const layout = TW.baseLayout(o.height, {
      uirevision: o.uirev,
      meta: { step: frame.step, n: n, proj: proj, color: byKnn ? 'knn' : 'hue', k: byKnn ? kk : null },
      margin: o.compact ? { l: 44, r: 10, t: 30, b: 34 } : { l: 58, r: byKnn ? 8 : 18, t: 34, b: 44 },
      title: TW.titleText(o.title || ('step ' + frame.step), o.subtitle || (n + ' neurons · ' + proj.toUpperCase())),
      dragmode: use3 ? 'orbit' : 'zoom',
      hovermode: 'closest',
    });
    if (use3) {
      const sa = (k) => axis({ title: { text: names[k], font: { size: 11, color: t.muted } }, range: padded(box[k]), backgroundcolor: 'rgba(0,0,0,0)', showbackground: false });
      layout.scene = { xaxis: sa(0), yaxis: sa(1), zaxis: sa(2), aspectmode: 'cube', camera: { eye: { x: 1.5, y: 1.4, z: 1.0 } } };
      layout.margin = { l: 0, r: 0, t: 34, b: 0 };
    } else {
      layout.xaxis = axis({ type: 'linear', title: { text: names[0], font: { size: 11, color: t.muted } }, range: padded(box[0]), zeroline: false });
      layout.yaxis = axis({ type: 'linear', title: { text: names[1], font: { size: 11, color: t.muted } }, range: padded(box[1]), zeroline: false });
    }
    return { data: [trace], layout: layout };
  };

  // ------------------------------------------------------------------ persistence
  function diagramsOf(frame, source) {
    if (source === 'std' && frame.diagrams_standardised) return frame.diagrams_standardised;
    return frame.diagrams || {};
  }
  TW.diagramsOf = diagramsOf;

  function infEdge(dg, diameter) {
    let m = 0;
    Object.keys(dg).forEach((k) => (dg[k] || []).forEach((p) => {
      if (p && p[1] !== null && p[1] !== undefined && Number.isFinite(p[1])) m = Math.max(m, p[1]);
      if (p && Number.isFinite(p[0])) m = Math.max(m, p[0]);
    }));
    if (!(m > 0)) m = diameter > 0 ? diameter : 1;
    return m * 1.12;
  }

  function isInf(p) { return p[1] === null || p[1] === undefined || !Number.isFinite(p[1]); }

  const BAR_CAP = { 0: 120, 1: 80, 2: 60 };
  const DIAG_CAP = 300;

  /* o: {source, height, uirev, compact} */
  TW.barcodeFigure = function (frame, o) {
    const t = TW.theme();
    const dg = diagramsOf(frame, o.source);
    const dims = Object.keys(dg).filter((k) => Array.isArray(dg[k])).sort();
    const pers = frame.persistence || {};
    const diam = o.source === 'std' ? pers.diameter_standardised : pers.diameter;
    // the Betti scale (the paper's 0.25 x diameter unless chosen otherwise) stays in view even when every
    // finite bar dies before it
    const bs = o.bettiScale > 0 ? o.bettiScale : 0.25;
    const xinf = Math.max(infEdge(dg, diam), diam > 0 ? bs * diam * 1.1 : 0);
    const data = [];
    let row = 0;
    const groupLabels = [];
    const total = dims.reduce((a, k) => a + dg[k].length, 0);
    dims.forEach((k, di) => {
      const bars = dg[k].filter((p) => Array.isArray(p) && Number.isFinite(p[0]));
      const inf = bars.filter(isInf);
      const fin = bars.filter((p) => !isInf(p)).sort((a, b) => (b[1] - b[0]) - (a[1] - a[0]));
      const cap = BAR_CAP[k] !== undefined ? BAR_CAP[k] : 60;
      const shown = fin.slice(0, Math.max(0, cap - inf.length));
      const color = TW.DIM_COLORS[di % TW.DIM_COLORS.length];
      const start = row;
      const xs = [], ys = [], cd = [];
      inf.forEach((p) => { xs.push(p[0], xinf, null); ys.push(row, row, null); cd.push([p[0], '∞'], [p[0], '∞'], null); row++; });
      const infRows = row - start;
      shown.forEach((p) => { xs.push(p[0], p[1], null); ys.push(row, row, null); cd.push([p[0], p[1]], [p[0], p[1]], null); row++; });
      const label = 'H' + k + ' · ' + bars.length + (fin.length > shown.length ? ' (' + shown.length + ' longest)' : '');
      data.push({
        type: 'scatter', mode: 'lines', x: xs, y: ys, customdata: cd, name: label, legendgroup: 'H' + k,
        line: { color: color, width: total > 160 ? 1.6 : 3 },
        hovertemplate: 'H' + k + ' bar<br>birth %{customdata[0]:.4g}<br>death %{customdata[1]}<extra></extra>',
        connectgaps: false,
      });
      if (infRows) {
        data.push({ type: 'scatter', mode: 'markers', x: inf.map(() => xinf), y: inf.map((_, j) => start + j),
          marker: { symbol: 'triangle-right', size: 8, color: color }, showlegend: false, hoverinfo: 'skip', legendgroup: 'H' + k });
      }
      groupLabels.push({ k: k, mid: (start + row - 1) / 2, color: color });
      row += Math.max(2, Math.round(row * 0.03)); // gap between dimensions
    });
    const shapes = [{ type: 'line', x0: xinf, x1: xinf, y0: 0, y1: 1, yref: 'paper', line: { color: t.muted, width: 1, dash: 'dot' } }];
    const ann = [{ x: xinf, y: 0, yref: 'paper', text: '∞', showarrow: false, yanchor: 'bottom', xanchor: 'left', xshift: 2, font: { size: 15, color: t.muted } }];
    if (diam > 0 && bs * diam < xinf) {
      shapes.push({ type: 'line', x0: bs * diam, x1: bs * diam, y0: 0, y1: 1, yref: 'paper', line: { color: t.warn, width: 1, dash: 'dash' } });
      ann.push({ x: bs * diam, y: 0.5, yref: 'paper', text: 'Betti scale ' + TW.fmtNum(bs) + '·diam', textangle: -90, showarrow: false, xanchor: 'right', xshift: -1, font: { size: 9.5, color: t.warn } });
    }
    groupLabels.forEach((g) => ann.push({ x: 0, xref: 'paper', xanchor: 'right', xshift: -4, y: g.mid, text: 'H' + g.k, showarrow: false, font: { size: 11, color: g.color } }));
    const method = frame.persistence && frame.persistence.method;
    const layout = TW.baseLayout(o.height, {
      uirevision: o.uirev,
      meta: { step: frame.step, bars: total },
      title: TW.titleText(o.title || 'Barcode', (method ? method + ' · ' : '') + (o.source === 'std' ? 'std' : 'raw') + ' · step ' + frame.step),
      margin: o.compact ? { l: 30, r: 22, t: 32, b: 30 } : { l: 34, r: 24, t: 34, b: 34 },
      xaxis: axis({ type: 'linear', title: { text: 'filtration scale', font: { size: 11, color: t.muted } }, range: [0, xinf * 1.03], zeroline: false }),
      yaxis: axis({ type: 'linear', visible: true, showticklabels: false, showgrid: false, zeroline: false, autorange: false, range: [Math.max(row, 4), -1] }),
      shapes: shapes, annotations: ann, hovermode: 'closest',
      legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.0, yanchor: 'bottom', bgcolor: 'rgba(0,0,0,0)', font: { size: 10.5 } },
    });
    if (!total) layout.annotations.push({ text: 'empty diagram', x: 0.5, y: 0.5, xref: 'paper', yref: 'paper', showarrow: false, font: { color: t.muted } });
    return { data: data, layout: layout };
  };

  TW.diagramFigure = function (frame, o) {
    const t = TW.theme();
    const dg = diagramsOf(frame, o.source);
    const dims = Object.keys(dg).filter((k) => Array.isArray(dg[k])).sort();
    const diam = frame.persistence && frame.persistence.diameter;
    const xinf = infEdge(dg, diam);
    const data = [];
    // hundreds of SVG markers per frame are the slowest part of a playback frame: WebGL above that
    const nPts = dims.reduce((a, k) => a + Math.min(DIAG_CAP, dg[k].length), 0);
    const mtype = nPts > 250 && TW.hasWebGL() ? 'scattergl' : 'scatter';
    dims.forEach((k, di) => {
      const pts = dg[k].filter((p) => Array.isArray(p) && Number.isFinite(p[0]));
      const color = TW.DIM_COLORS[di % TW.DIM_COLORS.length];
      let fin = pts.filter((p) => !isInf(p));
      const inf = pts.filter(isInf);
      // Points hugging the diagonal are noise and pile up: draw the most persistent DIAG_CAP of them.
      const all = fin.length;
      if (fin.length > DIAG_CAP) fin = fin.slice().sort((a, b) => (b[1] - b[0]) - (a[1] - a[0])).slice(0, DIAG_CAP);
      data.push({ type: mtype, mode: 'markers', name: 'H' + k + (all > fin.length ? ' (' + fin.length + ' of ' + all + ')' : ''), legendgroup: 'H' + k,
        x: fin.map((p) => p[0]), y: fin.map((p) => p[1]),
        marker: { color: color, size: fin.length > 400 ? 4.5 : 6.5, opacity: 0.8, line: { width: 0 } },
        hovertemplate: 'H' + k + '<br>birth %{x:.4g}<br>death %{y:.4g}<extra></extra>' });
      if (inf.length) {
        data.push({ type: 'scatter', mode: 'markers', name: 'H' + k + ' ∞', legendgroup: 'H' + k, showlegend: false,
          x: inf.map((p) => p[0]), y: inf.map(() => xinf),
          marker: { color: color, size: 10, symbol: 'triangle-up', line: { width: 0 } },
          hovertemplate: 'H' + k + ' (infinite)<br>birth %{x:.4g}<br>death ∞<extra></extra>' });
      }
    });
    const top = xinf * 1.05;
    const layout = TW.baseLayout(o.height, {
      uirevision: o.uirev,
      meta: { step: frame.step },
      title: TW.titleText('Persistence diagram', 'birth vs death'),
      margin: { l: 54, r: 16, t: 34, b: 40 },
      xaxis: axis({ type: 'linear', title: { text: 'birth', font: { size: 11, color: t.muted } }, range: [0, top], zeroline: false }),
      yaxis: axis({ type: 'linear', title: { text: 'death', font: { size: 11, color: t.muted } }, range: [0, top], zeroline: false }),
      shapes: [
        { type: 'line', x0: 0, y0: 0, x1: top, y1: top, line: { color: t.axis, width: 1 } },
        { type: 'line', x0: 0, x1: top, y0: xinf, y1: xinf, line: { color: t.muted, width: 1, dash: 'dot' } },
      ],
      annotations: [{ x: 0, xanchor: 'left', y: xinf, text: '∞', showarrow: false, yanchor: 'bottom', font: { size: 14, color: t.muted } }],
      hovermode: 'closest',
    });
    return { data: data, layout: layout };
  };

  // ------------------------------------------------------------------ metric curves
  // Column arrays of every metric, cached per index version.
  TW.series = function (c) {
    if (c.series && c.series.version === c.version) return c.series;
    const S = { version: c.version, step: c.steps.slice(), epoch: c.index.map((f) => f.epoch), m: {} };
    const keys = new Set();
    c.index.forEach((f) => Object.keys(f.metrics || {}).forEach((k) => keys.add(k)));
    keys.forEach((k) => {
      S.m[k] = c.index.map((f) => {
        const v = f.metrics ? f.metrics[k] : null;
        return v === undefined ? null : v;
      });
    });
    S.any = (k) => !!S.m[k] && S.m[k].some((v) => v !== null && v !== undefined);
    S.last = (k) => { const a = S.m[k] || []; for (let i = a.length - 1; i >= 0; i--) if (a[i] !== null && a[i] !== undefined) return a[i]; return null; };
    // The latest value at or before frame i, and the step it was measured at (sharpness and test metrics are
    // measured on their own schedules, so a readout must say when a carried-forward value is from).
    S.atStep = (k, i) => { const a = S.m[k] || []; for (let j = Math.min(i, a.length - 1); j >= 0; j--) if (a[j] !== null && a[j] !== undefined) return { v: a[j], step: S.step[j] }; return null; };
    S.at = (k, i) => { const r = S.atStep(k, i); return r ? r.v : null; };
    c.series = S;
    return S;
  };

  TW.vline = function (x, color, dash, width) {
    return { type: 'line', x0: x, x1: x, y0: 0, y1: 1, yref: 'paper', line: { color: color, width: width || 1.5, dash: dash || 'solid' }, layer: 'above' };
  };
  TW.hline = function (y, color, dash) {
    return { type: 'line', x0: 0, x1: 1, xref: 'paper', y0: y, y1: y, line: { color: color, width: 1, dash: dash || 'dash' }, layer: 'below' };
  };
  TW.hlabel = function (y, text, color) {
    return { x: 0.01, xref: 'paper', xanchor: 'left', y: y, yanchor: 'bottom', text: text, showarrow: false, font: { size: 10, color: color }, bgcolor: 'rgba(0,0,0,0)' };
  };
  // A vertical marker at step x with a rotated label. opts.side 'right' puts the label right of the line
  // (two markers at the same step stay readable); opts.dash, opts.width style the line.
  TW.topoMarker = function (x, color, label, opts) {
    opts = opts || {};
    const right = opts.side === 'right';
    return {
      shape: { type: 'line', x0: x, x1: x, y0: 0, y1: 1, yref: 'paper', line: { color: color, width: opts.width || 1.3, dash: opts.dash || 'dashdot' }, layer: 'below' },
      ann: { x: x, y: 0.98, yref: 'paper', yanchor: 'top', xanchor: right ? 'left' : 'right', textangle: -90, text: label || 'topology change', showarrow: false, font: { size: 9.5, color: color }, xshift: right ? 1 : -1 },
    };
  };

  TW.line = function (x, y, name, color, extra) {
    return Object.assign({ type: 'scatter', mode: 'lines', x: x, y: y, name: name, connectgaps: true,
      line: { color: color, width: 1.8 }, hovertemplate: '%{y:.4g}' }, extra || {});
  };
})();
