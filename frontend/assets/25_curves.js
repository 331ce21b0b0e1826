/* topowatch dashboard — metric curves (run page and compare overlays).
 * The traces of a panel are built once per index version; moving the cursor only swaps one shape.
 */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});
  TW.curveCache = new Map();

  // (same order as CURVES in pages/run.py and CMP_CURVES in pages/compare.py)
  const RUN_CURVES = ['loss', 'kemp', 'eta', 'sharpness', 'betti', 'bottleneck', 'ratio', 'knn', 'merges', 'accuracy'];
  const CMP_CURVES = ['kemp', 'loss', 'eta', 'betti', 'bottleneck', 'knn', 'accuracy'];
  TW.RUN_CURVES = RUN_CURVES;
  TW.CMP_CURVES = CMP_CURVES;

  const C = { train: '#5b6cff', test: '#ef553b', sharp: '#00a37a', ref1: '#e5484d', ref2: '#f5a524', b0: '#4c78ff', b1: '#ff8c3a', b2: '#22b573', topo: '#e5484d' };

  function lrSeries(S, run) {
    const cfgLr = run && run.config ? run.config.lr : null;
    const lr = S.m.lr || [];
    return S.step.map((_, i) => (lr[i] !== null && lr[i] !== undefined ? lr[i] : cfgLr));
  }

  function nonEmpty(S, keys) { return keys.some((k) => S.any(k)); }

  const num = (v) => typeof v === 'number' && Number.isFinite(v);

  // ------------------------------------------------------------------ the phase of a run
  // Everything the phase indicator (run page) and the summary table (compare page) say about a run,
  // from its frame index: lr*K_emp > 1 over a snapshot interval certifies lr > eta* = 1/K (K_emp is a
  // lower bound on K), so the first such interval is where the run left the topology-preserving phase.
  // The live frame is analysed first and the backlog back-filled, so the early steps where a run typically
  // leaves the phase may not be in yet: without an exit, no verdict until every snapshot is in.
  TW.phaseStats = function (c) {
    const S = TW.series(c);
    const run = c.run || null;
    const key = S.version + '|' + (run ? JSON.stringify([run.phase_exit, run.first_topology_change, run.status, run.frames, run.snapshots, run.width]) : '');
    if (c.phase && c.phase.key === key) return c.phase;
    const col = (k) => S.m[k] || [];
    const ek = col('eta_k_emp'), kemp = col('k_emp'), from = col('interval_from');
    let maxEk = null, maxEkStep = null, nEk = 0, exit = null, kmax = null;
    S.step.forEach((step, i) => {
      const v = ek[i];
      if (num(v)) {
        nEk++;
        if (maxEk === null || v > maxEk) { maxEk = v; maxEkStep = step; }
        if (v > 1 && !exit) exit = { step: step, from_step: num(from[i]) ? from[i] : null, eta_k_emp: v };
      }
      if (num(kemp[i]) && (kmax === null || kemp[i] > kmax)) kmax = kemp[i];
    });
    // The API's verdict wins when the index is not complete yet (the same rule, on every stored frame).
    const pe = run && run.phase_exit;
    if (pe && typeof pe.step === 'number' && (!exit || pe.step < exit.step)) exit = Object.assign({}, pe);
    const minOf = (k) => { let m = null; col(k).forEach((v) => { if (num(v) && (m === null || v < m)) m = v; }); return m; };
    const cfgLr = run && run.config ? run.config.lr : null;
    const frames = run ? run.frames || 0 : 0;
    const toAnalyse = run ? Math.max(0, (run.snapshots || 0) - frames) : 0;
    const toLoad = Math.max(0, frames - S.step.length); // analysed, not in this browser's index yet
    const width = run ? run.width || (run.config || {}).width : null;
    const ended = TW.isTerminal(run);
    // exit: certain · single: one neuron, no pairs, no K_emp · topology: no exit certified, yet the Betti
    // numbers left step 0's (seen, so certain too) · none: no interval analysed · pending:
    // no exit so far, snapshots still to come in · kept: every snapshot analysed, no exit (final once ended)
    const ftc = run ? run.first_topology_change : null;
    const state = exit ? 'exit' : width === 1 ? 'single' : num(ftc) ? 'topology'
      : maxEk === null ? 'none' : toAnalyse || toLoad ? 'pending' : 'kept';
    c.phase = {
      key: key, state: state, ended: ended, exit: exit, maxEk: maxEk, maxEkStep: maxEkStep, nEk: nEk, kmax: kmax,
      toAnalyse: toAnalyse, toLoad: toLoad, snapshots: run ? run.snapshots || 0 : 0,
      invLr: num(cfgLr) && cfgLr > 0 ? 1 / cfgLr : null, lr: cfgLr,
      minRatio: minOf('ratio_min'), minKnn: minOf('knn_mean'), finalLoss: S.last('train_loss'),
      ftc: ftc, frames: S.step.length,
    };
    return c.phase;
  };

  const plural = (n, word) => n + ' ' + word + (n === 1 ? '' : 's');

  // The verdict in words: {cls: 'warn'|'ok'|'pending', text (run header), short (summary table), title}.
  TW.phaseVerdict = function (ph) {
    const title = 'η·K_emp = η × K_emp over each snapshot interval. K_emp (largest swap ratio |dxᵢ−dxⱼ|/|xᵢ−xⱼ| per step) ' +
      'is a lower bound on the update\'s Lipschitz constant K, so η·K_emp > 1 certifies η > η* = 1/K: past the ' +
      'topological critical point, neurons may merge or tear apart.';
    const rest = ph.toAnalyse ? plural(ph.toAnalyse, 'snapshot') + ' still to analyse' : ph.toLoad ? 'loading ' + plural(ph.toLoad, 'frame') : '';
    const at = ph.maxEkStep !== null ? ' The largest η·K_emp so far is at step ' + ph.maxEkStep + '.' : '';
    switch (ph.state) {
      case 'exit': {
        const e = ph.exit;
        const over = e.from_step !== null && e.from_step !== undefined ? ' over steps ' + e.from_step + '→' + e.step : '';
        return { cls: 'warn', title: title, short: '',
          text: 'left the topology-preserving phase at step ' + e.step + ' (η·K_emp = ' + TW.fmtNum(e.eta_k_emp, 3) + over + ')' };
      }
      case 'topology':
        // K_emp is a lower bound from snapshot pairs: a slow drift can break the topology below η·K_emp = 1
        return { cls: 'warn', title: title, short: 'no exit certified; topology changed at step ' + ph.ftc,
          text: 'the topology changed at step ' + ph.ftc + ' (its Betti numbers left step 0\'s), though η·K_emp stayed < 1' +
            (ph.maxEk !== null ? ' (max ' + TW.fmtNum(ph.maxEk, 2) + ')' : '') + (rest ? ' · ' + rest : '') };
      case 'single':
        return { cls: 'pending', title: title, short: 'K_emp needs ≥ 2 neurons',
          text: 'topology-preserving phase: K_emp needs at least two neurons (this run has one, so no pairs)' };
      case 'none':
        if (ph.ended && !ph.snapshots) {
          return { cls: 'pending', title: title, short: 'no snapshots', text: 'topology-preserving phase: the run recorded no snapshots' };
        }
        return { cls: 'pending', title: title, short: rest,
          text: 'topology-preserving phase: no snapshot interval analysed yet' + (rest ? ' · ' + rest : '') };
      case 'pending':
        // K_emp is a lower bound on K: below 1 it certifies nothing, and unanalysed intervals may exceed 1
        return { cls: 'pending', title: title + at, short: 'no exit in ' + plural(ph.nEk, 'analysed interval') + ' yet · ' + rest,
          text: 'no exit in the ' + plural(ph.nEk, 'analysed interval') + ' yet (max η·K_emp = ' + TW.fmtNum(ph.maxEk, 2) + ') · ' + rest };
      default: // kept
        return ph.ended
          ? { cls: 'ok', title: title + at, short: 'no exit certified (η·K_emp < 1 throughout)',
            text: 'no exit from the topology-preserving phase certified (η·K_emp < 1 throughout, max ' + TW.fmtNum(ph.maxEk, 2) + ')' }
          : { cls: 'ok', title: title + at, short: 'no exit certified so far',
            text: 'no exit certified so far (max η·K_emp = ' + TW.fmtNum(ph.maxEk, 2) + ' < 1)' };
    }
  };

  // The last step of a run's x axis: an ended run fills the panel up to where it stopped (a stopped or
  // diverged run never reaches its planned total); a running one keeps its planned total, so its
  // curves grow into a steady axis.
  TW.xEnd = function (run, steps) {
    const last = steps.length ? steps[steps.length - 1] : 0;
    const end = run ? (TW.isTerminal(run) ? run.steps_done : run.total_steps) || 0 : 0;
    return Math.max(end, last, 1);
  };

  // Vertical markers of the run's events on its timeline curves.
  function eventMarkers(ftc, pe, t, scale) {
    const out = [];
    if (ftc !== null && ftc !== undefined) out.push({ x: scale(ftc), color: C.topo, label: 'first topology change' });
    if (pe && pe.step !== null && pe.step !== undefined) {
      out.push({ x: scale(pe.step), color: t.warn, label: 'left preserving phase', dash: 'dash', width: 1.6, side: 'right' });
    }
    return out;
  }
  TW.eventMarkers = eventMarkers;

  // One panel of the run page: {data, layout-extras, empty?}.
  function runPanel(name, S, run, o) {
    const t = TW.theme();
    const x = S.step;
    const cfg = (run && run.config) || {};
    const lrs = lrSeries(S, run);
    const kind = S.last('sharpness_kind');
    const pre = kind === 'preconditioned';
    const shapes = [], ann = [];
    let data = [], title = '', sub = '', yaxis = {}, keys = [];
    switch (name) {
      case 'loss':
        keys = ['train_loss', 'test_loss'];
        title = 'Loss';
        sub = o.log ? 'log scale' : '';
        data = [TW.line(x, S.m.train_loss, 'train', C.train), TW.line(x, S.m.test_loss, 'test', C.test, { line: { color: C.test, width: 1.8, dash: 'dot' } })];
        yaxis = { type: o.log ? 'log' : 'linear', title: { text: 'loss' } };
        break;
      case 'accuracy':
        keys = ['accuracy'];
        title = 'Test accuracy';
        data = [TW.line(x, S.m.accuracy, 'accuracy', C.train)];
        yaxis = { range: [0, 1.02], tickformat: '.0%' };
        break;
      case 'sharpness': {
        keys = ['sharpness'];
        title = pre ? 'Preconditioned sharpness λmax' : 'Sharpness λmax';
        sub = pre ? 'of the preconditioned Hessian (Adam)' : 'top Hessian eigenvalue';
        data = [
          TW.line(x, S.m.sharpness, pre ? 'λmax (preconditioned)' : 'λmax', C.sharp, { mode: 'lines+markers', marker: { size: 4 } }),
          TW.line(x, lrs.map((l) => (l ? 2 / l : null)), '2/η (EoS)', C.ref2, { line: { color: C.ref2, width: 1.2, dash: 'dash' } }),
          TW.line(x, lrs.map((l) => (l ? 1 / l : null)), '1/η (η*)', C.ref1, { line: { color: C.ref1, width: 1.2, dash: 'dot' } }),
        ];
        yaxis = { title: { text: 'λmax' }, rangemode: 'tozero' };
        break;
      }
      case 'eta':
        keys = ['eta_sharpness'];
        title = 'η · λmax';
        sub = pre ? 'preconditioned' : '';
        data = [TW.line(x, S.m.eta_sharpness, 'η·λmax', C.sharp, { mode: 'lines+markers', marker: { size: 4 } })];
        shapes.push(TW.hline(1, C.ref1, 'dot'), TW.hline(2, C.ref2, 'dash'));
        ann.push(TW.hlabel(1, 'η* : ηλ = 1', C.ref1), TW.hlabel(2, 'EoS : ηλ = 2', C.ref2));
        yaxis = { rangemode: 'tozero' };
        break;
      case 'ratio': {
        keys = ['ratio_min', 'ratio_max'];
        title = 'Pairwise distance ratio';
        sub = 'min / max of |xᵢ′−xⱼ′| / |xᵢ−xⱼ|' + (S.last('pairs') ? ' · ' + S.last('pairs') + ' pairs' : '');
        if (o.band && S.any('eta_sharpness')) {
          const e = S.m.eta_sharpness;
          data.push(TW.line(x, e.map((v) => (v === null ? null : 1 - v)), '1 − ηλ', 'rgba(0,0,0,0)', { line: { width: 0 }, hoverinfo: 'skip', showlegend: false }));
          data.push(TW.line(x, e.map((v) => (v === null ? null : 1 + v)), '1 ± ηλ', 'rgba(0,0,0,0)', { line: { width: 0 }, fill: 'tonexty', fillcolor: t.dark ? 'rgba(245,165,36,0.14)' : 'rgba(245,165,36,0.18)', hoverinfo: 'skip' }));
        }
        data.push(TW.line(x, S.m.ratio_min, 'min', C.b0), TW.line(x, S.m.ratio_max, 'max', C.b1));
        shapes.push(TW.hline(1, t.muted, 'dot'));
        break;
      }
      case 'kemp': {
        // lr*K_emp against 1: above the line the interval certifies lr > eta* = 1/K.
        keys = ['eta_k_emp'];
        title = 'η · K_emp';
        const i = S.step.length - 1;
        const es = S.at('eta_star_emp', i);
        const lr = lrs[Math.max(0, Math.min(i, lrs.length - 1))];
        const ks = (S.m.k_emp || []).filter(num);
        const kmax = ks.length ? Math.max.apply(null, ks) : null;
        sub = 'η*emp = 1/K_emp = ' + TW.fmtNum(es, 3) + (kmax ? ' (min ' + TW.fmtNum(1 / kmax, 2) + ')' : '') + ' vs η = ' + TW.fmtNum(lr, 3);
        const ek = S.m.eta_k_emp || [];
        const from = S.m.interval_from || [];
        const cd = x.map((_, j) => [num((S.m.k_emp || [])[j]) ? TW.fmtNum(S.m.k_emp[j], 4) : '–', num(from[j]) ? from[j] : '–']);
        data = [TW.line(x, ek.map((v) => (num(v) && v > 0 ? v : null)), 'η·K_emp', C.sharp,
          { mode: 'lines+markers', marker: { size: 4 }, connectgaps: false, customdata: cd,
            hovertemplate: '%{y:.3g} · K_emp %{customdata[0]} · steps %{customdata[1]}→%{x}' })];
        const over = ek.map((v) => (num(v) && v > 1 ? v : null));
        if (over.some((v) => v !== null)) {
          data.push(TW.line(x, over, 'η·K_emp > 1', C.ref1, { mode: 'markers', marker: { size: 8, color: C.ref1, symbol: 'diamond' }, hoverinfo: 'skip' }));
        }
        shapes.push(TW.hline(1, C.ref1, 'dot'));
        ann.push(TW.hlabel(0, 'η* (η·K = 1)', C.ref1)); // annotations on a log axis take log10(y)
        yaxis = { type: 'log', dtick: 1, title: { text: 'η·K_emp' } };
        break;
      }
      case 'betti': {
        const pers = o.betti === 'persistent';
        const bd = o.bettiData; // Betti at a chosen scale (GET /betti), or null: the frames' own (paper's) rule
        const bo = bd ? bd.opts : TW.BETTI_DEFAULT;
        const space = bo.std ? ' · standardised coords' : '';
        title = pers ? 'Persistent features' : 'Betti numbers';
        sub = pers ? 'bars longer than ' + TW.fmtNum(bo.minLength) + ' × diameter' + space
          : 'at scale ' + TW.fmtNum(bo.scale) + ' × diameter' + (bo.scale === 0.25 ? ' (paper)' : '') + space;
        const color = (j) => [C.b0, C.b1, C.b2][j];
        if (bd) {
          const rows = pers ? bd.persistent : bd.betti;
          const nd = rows.reduce((a, r) => Math.max(a, (r || []).length), 0);
          for (let j = 0; j < nd; j++) {
            data.push(TW.line(bd.steps, rows.map((r) => (r && r[j] !== undefined ? r[j] : null)), 'b' + j, color(j),
              { line: { shape: 'hv', width: 2, color: color(j) } }));
          }
          keys = [];
          if (!nd) keys = ['__none__'];
        } else {
          const ks = pers ? ['pb0', 'pb1', 'pb2'] : ['b0', 'b1', 'b2'];
          keys = ks;
          data = ks.filter((k) => S.any(k)).map((k) => TW.line(x, S.m[k], 'b' + k.slice(-1), color(Number(k.slice(-1))), { line: { shape: 'hv', width: 2, color: color(Number(k.slice(-1))) } }));
        }
        yaxis = { rangemode: 'tozero', dtick: 1, tickformat: 'd' };
        break;
      }
      case 'bottleneck':
        keys = ['bottleneck'];
        title = 'Topology change';
        sub = 'bottleneck distance to the previous frame';
        data = [TW.line(x, S.m.bottleneck, 'bottleneck', C.topo, { line: { color: C.topo, width: 1.6 }, fill: 'tozeroy', fillcolor: 'rgba(229,72,77,0.10)' })];
        yaxis = { rangemode: 'tozero' };
        break;
      case 'knn': {
        const kd = o.knnData; // another k (GET /neighbourhood), or null: the frames' k = 10
        const k = kd ? kd.k : 10;
        title = 'Neighbourhood preservation';
        sub = 'mean share of step-0 kNN kept · k = ' + k;
        if (kd) {
          data = [TW.line(kd.steps, kd.mean, 'kNN kept (k=' + k + ')', C.b0)];
          keys = kd.steps.length ? [] : ['__none__'];
        } else {
          keys = ['knn_mean'];
          data = [TW.line(x, S.m.knn_mean, 'kNN kept (k=10)', C.b0)];
        }
        yaxis = { range: [0, 1.03] };
        break;
      }
      case 'merges':
        keys = ['merges', 'merged_clusters', 'duplicates'];
        title = 'Merges';
        sub = 'pairs / clusters closer than tolerance';
        data = [TW.line(x, S.m.merges, 'merged pairs', C.b1, { line: { shape: 'hv', color: C.b1, width: 1.8 } }),
          TW.line(x, S.m.merged_clusters, 'clusters', C.b0, { line: { shape: 'hv', color: C.b0, width: 1.8 } }),
          TW.line(x, S.m.duplicates, 'exact duplicates', C.ref1, { line: { shape: 'hv', color: C.ref1, width: 1.2, dash: 'dot' } })];
        yaxis = { rangemode: 'tozero' };
        break;
      default:
        break;
    }
    return { data: data, title: title, sub: sub, yaxis: yaxis, shapes: shapes, ann: ann, empty: keys.length ? !nonEmpty(S, keys) : false };
  }

  function panelLayout(p, o) {
    const t = TW.theme();
    const layout = TW.baseLayout(o.height, {
      title: TW.titleText(p.title, p.sub),
      margin: { l: 52, r: 14, t: 40, b: 34 },
      hovermode: 'x unified',
      xaxis: TW.axis({ type: 'linear', title: { text: o.xTitle, font: { size: 10.5, color: t.muted } }, range: o.xRange, zeroline: false, tickformat: o.xFormat }),
      yaxis: TW.axis(Object.assign({ type: 'linear', zeroline: false, exponentformat: p.yaxis.type === 'log' ? 'power' : 'e' }, p.yaxis, { title: { text: (p.yaxis.title && p.yaxis.title.text) || '', font: { size: 10.5, color: t.muted } } })),
      shapes: p.shapes.slice(),
      annotations: p.ann.slice(),
      uirevision: o.uirev,
      legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.0, yanchor: 'bottom', bgcolor: 'rgba(0,0,0,0)', font: { size: 10 } },
    });
    (o.topo || []).forEach((m) => {
      const tm = TW.topoMarker(m.x, m.color, m.label, m);
      layout.shapes.push(tm.shape);
      layout.annotations.push(tm.ann);
    });
    if (p.empty) {
      layout.annotations.push({ text: o.emptyText || 'no data yet', x: 0.5, y: 0.5, xref: 'paper', yref: 'paper', showarrow: false, font: { size: 12, color: t.muted } });
    }
    return layout;
  }

  // ------------------------------------------------------------------ the cursor: a DOM overlay
  // Moving the cursor must not re-plot ten graphs: each curve graph gets one absolutely positioned
  // line, placed from the graph's own x axis (and re-placed after every re-plot / zoom).
  TW.cursorX = null;
  // Returns false when the graph is not plotted yet (the caller retries).
  function placeCursor(holder) {
    const gd = holder.querySelector('.js-plotly-plot');
    if (!gd) return false;
    if (!gd.__twCursorHooked && typeof gd.on === 'function') {
      gd.__twCursorHooked = true;
      gd.on('plotly_afterplot', () => placeCursor(holder));
      gd.on('plotly_relayout', () => placeCursor(holder));
    }
    let line = holder.querySelector('.tw-cursor');
    if (!line) {
      line = document.createElement('div');
      line.className = 'tw-cursor';
      holder.appendChild(line);
    }
    const fl = gd._fullLayout;
    const xa = fl && fl.xaxis, ya = fl && fl.yaxis;
    if (!xa || !ya || !xa.range || typeof xa.l2p !== 'function') { line.style.display = 'none'; return false; }
    const x = TW.cursorX;
    line.setAttribute('data-x', x === null || x === undefined ? '' : String(x));
    const lo = Math.min(xa.range[0], xa.range[1]), hi = Math.max(xa.range[0], xa.range[1]);
    if (x === null || x === undefined || !(x >= lo && x <= hi)) { line.style.display = 'none'; return gd.__twCursorHooked; }
    line.style.display = 'block';
    line.style.left = (xa._offset + xa.l2p(x)) + 'px';
    line.style.top = ya._offset + 'px';
    line.style.height = ya._length + 'px';
    return !!gd.__twCursorHooked;
  }

  TW.placeCursors = function (x, graphIds, attempt) {
    TW.cursorX = x;
    let pending = false;
    graphIds.forEach((id) => {
      const holder = document.getElementById(id);
      if (!holder) return;
      if (getComputedStyle(holder).position === 'static') holder.style.position = 'relative';
      if (!placeCursor(holder)) pending = true;
    });
    // graphs not plotted yet: try again shortly (after that their afterplot hook keeps the cursor in place)
    attempt = attempt || 0;
    if (pending && attempt < 40) {
      clearTimeout(TW._cursorRetry);
      TW._cursorRetry = setTimeout(() => TW.placeCursors(TW.cursorX, graphIds, attempt + 1), 250);
    }
  };

  // ------------------------------------------------------------------ run page
  TW.runCurveFigures = function (c, run, o) {
    const t = TW.theme();
    const S = TW.series(c);
    const total = TW.xEnd(run, S.step);
    const ftc = run ? run.first_topology_change : null;
    const pe = TW.phaseStats(c).exit;
    const markers = eventMarkers(ftc, pe, t, (s) => s);
    const sharpOff = run && run.config && run.config.sharpness_every === 0;
    const figs = [], styles = [];
    o = Object.assign({}, o, { bettiData: TW.bettiCurve ? TW.bettiCurve(c) : null, knnData: TW.knnCurve ? TW.knnCurve(c) : null });
    const extraKey = { betti: o.bettiData ? o.bettiData.key : '', knn: o.knnData ? o.knnData.key : '' };
    RUN_CURVES.forEach((name) => {
      const key = [c.id, name, S.version, o.log, o.band, o.betti, total, ftc, pe ? pe.step : '', t.dark, extraKey[name] || ''].join('|');
      const slot = 'run|' + c.id + '|' + name;
      let base = TW.curveCache.get(slot);
      if (!base || base.key !== key) {
        const p = runPanel(name, S, run, o);
        const layout = panelLayout(p, {
          height: TW.H.curve, xTitle: 'step', xRange: [0, total], uirev: c.id + '|' + name + '|' + (name === 'loss' ? o.log : ''),
          topo: markers,
          emptyText: S.step.length ? 'not computed for this run' : 'no frames yet',
        });
        base = { key: key, data: p.data, layout: layout, empty: p.empty };
        TW.curveCache.set(slot, base);
      }
      // re-plot only when this graph does not show this version yet
      figs.push(TW.claim('curve-' + name, key) ? { data: base.data, layout: base.layout } : window.dash_clientside.no_update);
      let show = true;
      if ((name === 'sharpness' || name === 'eta') && sharpOff) show = false;
      if (name === 'accuracy' && base.empty) show = false;
      styles.push(show ? {} : { display: 'none' });
    });
    return { figs: figs, styles: styles };
  };

  // Values at the cursor, as one line of text above the curves.
  TW.readout = function (c, step) {
    const i = c.pos.get(step);
    if (i === undefined) return '';
    const S = TW.series(c);
    const v = (k) => S.at(k, i);
    const parts = ['step ' + step];
    const f = (label, k, d) => { const x = v(k); if (x !== null && x !== undefined) parts.push(label + ' ' + TW.fmtNum(x, d)); };
    const measured = (label, k, d) => {
      const r = S.atStep(k, i);
      if (r) parts.push(label + ' ' + TW.fmtNum(r.v, d) + (r.step === step ? '' : ' (step ' + r.step + ')'));
    };
    f('train', 'train_loss'); measured('test', 'test_loss'); measured('acc', 'accuracy', 3);
    measured('λmax', 'sharpness'); measured('ηλ', 'eta_sharpness', 3);
    const bc = TW.bettiAt ? TW.bettiAt(c, step) : null;
    const b = bc ? bc.b : ['b0', 'b1', 'b2'].filter((k) => v(k) !== null).map((k) => v(k));
    if (b.length) parts.push('Betti' + (bc ? '@' + TW.fmtNum(bc.scale) : '') + ' ' + b.join('/'));
    f('bottleneck', 'bottleneck', 3); f('ratio min', 'ratio_min', 3); f('max', 'ratio_max', 3);
    f('ηK_emp', 'eta_k_emp', 3); f('K_emp', 'k_emp'); f('η*emp', 'eta_star_emp'); f('η', 'lr');
    const kn = TW.knnMeanAt ? TW.knnMeanAt(c, step) : null;
    if (kn) parts.push('kNN(k=' + kn.k + ') ' + TW.fmtNum(kn.mean, 3)); else f('kNN', 'knn_mean', 3);
    f('merges', 'merges');
    return parts.join(' · ');
  };

  // ------------------------------------------------------------------ compare page (overlays)
  const CMP = {
    loss: { title: 'Loss', sub: 'train (solid) · test (dotted) · log scale', series: [['train_loss', 'solid'], ['test_loss', 'dot']], yaxis: { type: 'log' } },
    eta: { title: 'η · λmax', sub: 'lines at 1 (η*) and 2 (EoS)', series: [['eta_sharpness', 'solid']], markers: true,
      ref: [{ y: 1, label: 'η*', color: '#e5484d', dash: 'dot' }, { y: 2, label: 'EoS', color: '#f5a524', dash: 'dash' }] },
    betti: { title: 'Betti numbers', sub: 'b0 (solid) · b1 (dash) · b2 (dot) at 0.25 × diameter', series: [['b0', 'solid'], ['b1', 'dash'], ['b2', 'dot']], shape: 'hv' },
    bottleneck: { title: 'Topology change', sub: 'bottleneck distance to previous frame', series: [['bottleneck', 'solid']] },
    knn: { title: 'Neighbourhood preservation', sub: 'mean share of step-0 kNN kept', series: [['knn_mean', 'solid']], yaxis: { range: [0, 1.03] } },
    kemp: { title: 'η · K_emp', sub: 'log scale · above 1: η > η* = 1/K', series: [['eta_k_emp', 'solid']],
      yaxis: { type: 'log', dtick: 1 }, markers: true, positive: true, ref: [{ y: 1, label: 'η* (η·K = 1)', color: '#e5484d', dash: 'dot' }] },
    accuracy: { title: 'Test accuracy', sub: '', series: [['accuracy', 'solid']], yaxis: { range: [0, 1.02], tickformat: '.0%' } },
  };

  TW.cmpReadout = function (meta, pos) {
    return meta.runs.map((id, k) => {
      const c = TW.cache(id);
      const step = TW.stepAt(c, meta, pos);
      if (step === null || step === undefined) return null;
      const text = TW.readout(c, step);
      return text ? id.slice(0, 8) + ': ' + text : null;
    }).filter(Boolean).join('\n');
  };

  TW.cmpCurveFigures = function (meta) {
    const t = TW.theme();
    const frac = meta.align === 'fraction';
    const figs = [], styles = [];
    const caches = meta.runs.map((id) => TW.cache(id));
    const vkey = caches.map((c) => c.version + ':' + (c.run ? c.run.total_steps + ':' + TW.xEnd(c.run, c.steps) + ':' + c.run.first_topology_change : '') +
      ':' + ((TW.phaseStats(c).exit || {}).step)).join(',');
    const maxX = frac ? 1 : Math.max.apply(null, caches.map((c) => TW.xEnd(c.run, c.steps)).concat([1]));
    CMP_CURVES.forEach((name) => {
      const spec = CMP[name];
      const key = [name, vkey, frac, t.dark].join('|');
      const slot = 'cmp|' + meta.runs.join(',') + '|' + name;
      let base = TW.curveCache.get(slot);
      if (!base || base.key !== key) {
        const data = [], topo = [];
        let anyData = false;
        caches.forEach((c, k) => {
          const S = TW.series(c);
          const color = TW.RUN_COLORS[k % TW.RUN_COLORS.length];
          const T = (c.run && c.run.total_steps) || 0;
          const x = frac ? S.step.map((s) => (T ? s / T : null)) : S.step;
          const lrLabel = c.run && c.run.config ? ' · lr ' + TW.fmtNum(c.run.config.lr) : '';
          spec.series.forEach(([m, dash], j) => {
            if (!S.any(m)) return;
            anyData = true;
            const y = spec.positive ? S.m[m].map((v) => (num(v) && v > 0 ? v : null)) : S.m[m];
            data.push(TW.line(x, y, c.id.slice(0, 8) + lrLabel, color,
              Object.assign({ line: { color: color, width: j ? 1.4 : 1.9, dash: dash, shape: spec.shape || 'linear' }, legendgroup: c.id, showlegend: j === 0 },
                spec.markers ? { mode: 'lines+markers', marker: { size: 4, color: color } } : {})));
          });
          if (spec.invLr && c.run && c.run.config && c.run.config.lr) {
            data.push(TW.line(x.length ? [frac ? 0 : 0, frac ? 1 : maxX] : [], x.length ? [1 / c.run.config.lr, 1 / c.run.config.lr] : [], '1/η' + lrLabel, color,
              { line: { color: color, width: 1, dash: 'dot' }, legendgroup: c.id, showlegend: false, hoverinfo: 'skip' }));
          }
          const ftc = c.run ? c.run.first_topology_change : null;
          if (ftc !== null && ftc !== undefined && (!frac || T)) topo.push({ x: frac ? ftc / T : ftc, color: color, label: 'topology change' });
          const pe = TW.phaseStats(c).exit;
          if (pe && (!frac || T)) topo.push({ x: frac ? pe.step / T : pe.step, color: color, label: 'left phase', dash: 'dash', width: 1.6, side: 'right' });
        });
        const shapes = [], ann = [];
        const logY = spec.yaxis && spec.yaxis.type === 'log';
        (spec.ref || []).forEach((r) => {
          shapes.push(TW.hline(r.y, r.color, r.dash));
          ann.push(TW.hlabel(logY ? Math.log10(r.y) : r.y, r.label, r.color)); // annotations on a log axis take log10(y)
        });
        const p = { data: data, title: spec.title, sub: spec.sub, yaxis: Object.assign({ rangemode: 'tozero' }, spec.yaxis || {}), shapes: shapes, ann: ann, empty: !anyData };
        if (spec.yaxis && spec.yaxis.type === 'log') delete p.yaxis.rangemode;
        const layout = panelLayout(p, {
          height: TW.H.cmpCurve, xTitle: frac ? 'fraction of training' : 'step', xRange: [0, frac ? 1 : maxX],
          xFormat: frac ? '.0%' : undefined, uirev: 'cmp|' + name + '|' + frac, topo: topo, emptyText: 'no data yet',
        });
        base = { key: key, data: data, layout: layout, empty: !anyData };
        TW.curveCache.set(slot, base);
      }
      figs.push(TW.claim('cmp-curve-' + name, key) ? { data: base.data, layout: base.layout } : window.dash_clientside.no_update);
      const sharpOff = caches.every((c) => c.run && c.run.config && c.run.config.sharpness_every === 0);
      styles.push((name === 'accuracy' && base.empty) || (name === 'eta' && sharpOff) ? { display: 'none' } : {});
    });
    return { figs: figs, styles: styles };
  };
})();
