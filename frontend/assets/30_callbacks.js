/* topowatch dashboard — clientside callbacks (namespace "topowatch").
 * None of these call the Dash server; they read the JS cache (10_core.js) and draw (20_figures.js).
 */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});
  const dc = (window.dash_clientside = window.dash_clientside || {});
  const NU = () => dc.no_update;
  const STOP = () => dc.PreventUpdate;

  function triggered() {
    const ctx = dc.callback_context;
    // dict ids ({"page":..,"type":..}) are reported as JSON: use their type
    return new Set(((ctx && ctx.triggered) || []).map((t) => {
      const pid = String(t.prop_id);
      const id = pid.slice(0, pid.lastIndexOf('.'));
      if (id.charAt(0) === '{') { try { return JSON.parse(id).type; } catch (e) { return id; } }
      return id;
    }));
  }

  const H = { cloud: 560, bar: 300, diag: 290, curve: 250, cmpCloud: 400, cmpBar: 250, cmpCurve: 260 };
  TW.H = H;
  const STATUS_TEXT = { queued: 'queued', running: 'running', finished: 'finished', diverged: 'diverged', failed: 'failed', stopped: 'stopped', 'not-found': 'not found' };

  // ------------------------------------------------------------------ URL state of the page
  TW.setQuery = function (path, patch) {
    if (!TW.q || TW.q.path !== path) {
      const params = {};
      if (window.location.pathname === path) new URLSearchParams(window.location.search).forEach((v, k) => { params[k] = v; });
      TW.q = { path: path, params: params };
    }
    Object.assign(TW.q.params, patch);
    TW.writeQuery(path, TW.q.params);
  };
  function pagePath(meta) {
    return meta.kind === 'run' ? '/runs/' + meta.run_id : '/compare';
  }

  // ------------------------------------------------------------------ positions of the timeline
  TW.positions = function (meta) {
    if (meta.kind === 'run') return TW.cache(meta.run_id).steps;
    const align = meta.align === 'fraction' ? 'fraction' : 'step';
    const key = align + '|' + meta.runs.map((id) => {
      const c = TW.cache(id);
      return id + ':' + c.version + ':' + (c.run ? c.run.total_steps : '');
    }).join(',');
    if (TW._posKey === key) return TW._pos;
    const vals = [];
    meta.runs.forEach((id) => {
      const c = TW.cache(id);
      if (align === 'fraction') {
        const T = c.run && c.run.total_steps;
        if (T > 0) c.steps.forEach((s) => vals.push(Math.round((s / T) * 1e6) / 1e6));
      } else {
        c.steps.forEach((s) => vals.push(s));
      }
    });
    vals.sort((a, b) => a - b);
    const out = vals.filter((v, i) => i === 0 || v !== vals[i - 1]);
    TW._posKey = key;
    TW._pos = out;
    return out;
  };

  // The step of run `c` that is shown at timeline position `pos` (latest frame at or before it).
  TW.stepAt = function (c, meta, pos) {
    if (!c.steps.length || pos === null || pos === undefined) return null;
    let x = pos;
    if (meta.kind === 'compare' && meta.align === 'fraction') {
      const T = c.run && c.run.total_steps;
      if (!(T > 0)) return null;
      x = pos * T;
    }
    const k = TW.bisectRight(c.steps, x + 1e-6);
    return c.steps[Math.max(0, k - 1)];
  };

  // Skip redrawing a graph that already shows `key` (the marker lives on the graph's DOM node, so a
  // re-mounted page always draws afresh).
  TW.claim = function (id, key) {
    const domId = typeof id === 'string' ? id : JSON.stringify(Object.keys(id).sort().reduce((o, k) => { o[k] = id[k]; return o; }, {}));
    const el = document.getElementById(domId);
    if (!el) return true;
    if (el.__twKey === key) return false;
    el.__twKey = key;
    return true;
  };

  function runIds(meta) { return meta.kind === 'run' ? [meta.run_id] : meta.runs; }

  function positionReady(meta, pos, dir, ahead) {
    let ok = true;
    runIds(meta).forEach((id) => {
      const c = TW.cache(id);
      const s = meta.kind === 'run' ? pos : TW.stepAt(c, meta, pos);
      if (s === null) return;
      if (!TW.want(id, s, dir, ahead)) ok = false;
      // the cloud's kNN colouring for another k is a per-step request too
      if (meta.kind === 'run' && TW.knnPerNeuron && TW.view && TW.view.color === 'knn' && TW.view.k !== 10 &&
          !TW.knnPerNeuron(c, TW.view.k, s)) ok = false;
    });
    return ok;
  }

  function anyActive(meta) {
    return runIds(meta).some((id) => { const c = TW.cache(id); return !c.notFound && (!c.run || !TW.isTerminal(c.run)); });
  }

  // Slider marks. The slider moves through the analysed frames, one notch each: evenly spaced marks name
  // evenly spaced steps only when the frames are (a partly analysed run has gaps, and "168, 2788, 2882"
  // spread evenly would read as a linear axis), so otherwise only the two ends are labelled.
  TW.timelineMarks = function (pos, frac) {
    const n = pos.length;
    const marks = {};
    if (!n) return marks;
    const span = pos[n - 1] - pos[0];
    const linear = pos.every((v, i) => n < 3 || Math.abs(v - pos[0] - (span * i) / (n - 1)) <= 0.05 * span);
    const k = Math.min(n, linear ? 6 : 2);
    for (let j = 0; j < k; j++) {
      const i = k === 1 ? 0 : Math.round((j * (n - 1)) / (k - 1));
      marks[i] = frac ? Math.round(pos[i] * 100) + '%' : TW.fmtStep(pos[i]);
    }
    return marks;
  };
  const marksFor = (pos, meta) => TW.timelineMarks(pos, meta.kind === 'compare' && meta.align === 'fraction');

  function fmtPos(meta, p) {
    if (meta.kind === 'compare' && meta.align === 'fraction') return (Math.round(p * 1000) / 10).toFixed(1) + '%';
    return String(p);
  }

  // ------------------------------------------------------------------ namespace
  dc.topowatch = Object.assign(dc.topowatch || {}, {

    // API banner (2 s health poll through the same-origin proxy).
    health: async function () {
      try {
        await TW.fetchJSON('/api/health', { timeout: 2500 });
        TW.apiDown = false;
        return ['api-banner hidden', 'api-dot ok'];
      } catch (e) {
        TW.apiDown = true;
        return ['api-banner', 'api-dot down'];
      }
    },

    // Home: the runs table (rendered by 40_home.js).
    home_poll: async function () {
      try {
        const runs = await TW.fetchJSON('/api/runs', { timeout: 8000 });
        TW.renderRuns(runs || []);
      } catch (e) {
        TW.renderRunsError(e);
      }
      return NU();
    },

    // Run + compare: refresh the run(s) and the frame index; the index itself stays in JS memory.
    poll: async function (n, metas, versions, runDatas) {
      const meta = (metas || [])[0];
      const version = (versions || [])[0];
      const runData = (runDatas || [])[0];
      if (!meta || !meta.kind) throw STOP();
      const ids = runIds(meta);
      TW.evictExcept(ids);
      await Promise.all(ids.map((id) => TW.refresh(id).catch(() => false)));
      const runs = ids.map((id) => {
        const c = TW.cache(id);
        if (c.run) return c.run;
        if (c.notFound) return { id: id, status: 'not-found', error: 'No run with id ' + id, frames: 0 };
        return null;
      });
      const ver = ids.reduce((a, id) => a + TW.cache(id).version, 0) + (meta.align === 'fraction' ? 0.5 : 0);
      const out = meta.kind === 'run' ? runs[0] : runs;
      const settled = runs.every((r) => r && (TW.isTerminal(r) || r.status === 'not-found') && TW.cache(r.id).index.length >= (r.frames || 0));
      const same = JSON.stringify(out) === JSON.stringify(runData);
      return [[ver === version ? NU() : ver], [same || out === null ? NU() : out], settled ? 5000 : 1000];
    },

    // The one timeline: slider over analysed positions, play/pause, ±1, Live. (The run store is an input
    // so that a run ending, with no new frame, turns Live off.)
    timeline: function (vers, metas, sliderVal, prevN, nextN, playTick, liveN, playN, speed, runs, cursors, live, playing, sliderMax) {
      const meta = (metas || [])[0];
      const cursor = (cursors || [])[0];
      if (!meta || !meta.kind) throw STOP();
      const trig = triggered();
      const pos = TW.positions(meta);
      const n = pos.length;
      const align = meta.kind === 'compare' ? (meta.align || 'step') : 'step';
      live = !!live;
      playing = !!playing;
      let i = null;
      const fresh = !cursor || cursor.pos === undefined || cursor.pos === null;
      const active = anyActive(meta);
      let atEnd = !fresh && !!cursor.atEnd; // held at the end of an ended run's timeline (Live's stand-in)
      // A step asked for (URL) that is received but not analysed yet: the cursor waits on it.
      const rc = meta.kind === 'run' ? TW.cache(meta.run_id) : null;
      let waiting = null;
      if (n && !fresh) {
        if ((cursor.align || 'step') === align) i = TW.nearestIndex(pos, cursor.pos);
        else i = Math.round((cursor.frac || 0) * (n - 1));
      }
      if (fresh) {
        const ip = meta.init_pos;
        if (ip !== null && ip !== undefined && !meta.live) {
          live = false;
          if (rc && TW.awaitsAnalysis(rc, ip)) waiting = ip;
          if (n) i = TW.nearestIndex(pos, ip);
        } else if (n) { i = n - 1; live = meta.live !== false; }
      }
      const moved = ['live-toggle', 'play-button', 'step-prev', 'step-next', 'play-interval'].some((t) => trig.has(t)) ||
        (trig.has('timeline-slider') && typeof sliderVal === 'number' && Math.round(sliderVal) !== i);
      if (!fresh && rc && cursor.waiting !== null && cursor.waiting !== undefined && !moved && TW.awaitsAnalysis(rc, cursor.waiting)) {
        waiting = cursor.waiting;
      }
      if (waiting !== null) {
        const cur = { pos: waiting, i: n ? i : -1, align: 'step', frac: 0, live: false, waiting: waiting };
        const same = !fresh && cursor.waiting === waiting;
        TW.setQuery(pagePath(meta), { step: waiting });
        return [n ? i : NU(), Math.max(0, n - 1), n ? marksFor(pos, meta) : {}, [same ? NU() : cur], false,
          'btn live off' + (active ? '' : ' idle'), false, true, Math.round(1000 / (speed || 5)), '▶'];
      }
      if (n && !fresh) {
        if (trig.has('live-toggle') && liveN) {
          if (active) live = !live; else atEnd = true; // an ended run has nothing to follow: Live goes to its end
          if (live || atEnd) { i = n - 1; playing = false; }
        }
        if (trig.has('play-button') && playN) {
          playing = !playing;
          if (playing) { live = false; atEnd = false; if (i >= n - 1) i = 0; TW._play = { t0: Date.now(), i0: i }; }
        }
        if (trig.has('speed-select') && playing) TW._play = { t0: Date.now(), i0: i };
        if (trig.has('step-prev') && prevN) { i = Math.max(0, i - 1); live = false; atEnd = false; playing = false; }
        if (trig.has('step-next') && nextN) { i = Math.min(n - 1, i + 1); live = false; atEnd = false; playing = false; }
        if (trig.has('timeline-slider') && typeof sliderVal === 'number' && Math.round(sliderVal) !== i) {
          i = Math.max(0, Math.min(n - 1, Math.round(sliderVal)));
          live = false;
          atEnd = false;
          playing = false;
        }
        if (trig.has('play-interval') && playing) {
          // Playback keeps time: at "5 fps" the cursor is where 5 frames a second put it. When drawing
          // falls behind (a slow machine, a large cloud) it skips at most 2 frames per tick to catch up;
          // a frame that is not loaded yet holds it (and the clock) instead.
          const now = Date.now();
          if (!TW._play) TW._play = { t0: now, i0: i };
          const due = TW._play.i0 + Math.floor(((now - TW._play.t0) * (speed || 5)) / 1000);
          if (i < n - 1) {
            const target = Math.min(n - 1, i + 3, Math.max(i + 1, due));
            let next = null;
            for (let j = target; j > i && next === null; j--) if (positionReady(meta, pos[j], +1, j !== i + 1)) next = j;
            if (next === null || due - next > 3) TW._play = { t0: now, i0: next === null ? i : next };
            if (next !== null) i = next;
            // prefetch a little ahead so playback does not stall
            for (let j = i + 1; j <= Math.min(n - 1, i + 4); j++) positionReady(meta, pos[j], +1, true);
          } else if (!active) {
            playing = false;
          }
        }
      }
      // Live follows the newest frame while a run trains; once every run has ended it is off, and a view
      // that followed stays at the end of the timeline (frames analysed late still come in).
      if (live && !active) { live = false; atEnd = true; }
      if ((live || atEnd) && n) i = n - 1;
      const liveClass = 'btn live ' + (live ? 'on' : 'off') + (active ? '' : ' idle');
      const playLabel = playing ? '❚❚' : '▶';
      const interval = Math.round(1000 / (speed || 5));
      if (!n) {
        return [NU(), 0, {}, [NU()], live, liveClass, playing, !playing, interval, playLabel];
      }
      const p = pos[i];
      // i and n too: the position counter ("position 4/43") must follow frames that arrive around the cursor
      const cur = { pos: p, i: i, n: n, align: align, frac: n > 1 ? i / (n - 1) : 0, live: live, atEnd: atEnd, waiting: null };
      const same = !fresh && cursor.pos === p && cursor.i === i && cursor.n === n && cursor.live === live &&
        !!cursor.atEnd === atEnd && (cursor.align || 'step') === align && !cursor.waiting;
      const marksChanged = sliderMax !== n - 1 || trig.has('tw-meta') || fresh;
      const path = pagePath(meta);
      // (the run page records the step it draws, in run_render; here only Live clears it)
      const follow = live || atEnd; // the URL without a step reopens the view at the newest frame
      if (meta.kind === 'run') { if (follow) TW.setQuery(path, { step: null }); }
      else TW.setQuery(path, { runs: meta.runs.join(','), align: align === 'step' ? null : align,
        step: follow || align !== 'step' ? null : p, frac: follow || align !== 'fraction' ? null : p });
      return [i, n - 1, marksChanged ? marksFor(pos, meta) : NU(), [same ? NU() : cur], live, liveClass, playing, !playing,
        interval, playLabel];
    },

    // ---------------------------------------------------------------- run page
    run_status: async function (run, projVal) {
      if (!run) throw STOP();
      if (!run.neuron_dim) await TW.loadPresets(); // a run that never started: its preset's neuron_dim
      const st = run.status || 'unknown';
      const badge = STATUS_TEXT[st] || st;
      let err = '';
      if (run.error) {
        const prefix = st === 'failed' ? 'Run failed: ' : st === 'diverged' ? 'Diverged: ' : st === 'stopped' ? 'Stopped ' : st === 'not-found' ? '' : 'Error: ';
        err = prefix + run.error;
      }
      const cfg = run.config || {};
      const d = TW.neuronDim(run);
      const title = (run.preset || cfg.preset || 'run') + ' · ' + run.id;
      const chip = (label, value, cls) => TW.h('Span', { className: 'chip ' + (cls || '') }, [TW.h('Span', { className: 'chip-k' }, label), ' ', TW.h('B', {}, value)]);
      const facts = [];
      if (st !== 'not-found') {
        facts.push(chip('optimizer', String(cfg.optimizer || '–') + (cfg.optimizer === 'momentum' && cfg.momentum ? ' ' + cfg.momentum : '')));
        facts.push(chip('lr', TW.fmtNum(cfg.lr)));
        facts.push(chip('width', String(run.width || cfg.width || '–')));
        facts.push(chip('batch', String(cfg.batch_size || '–')));
        facts.push(chip('steps', (run.steps_done || 0) + ' / ' + (run.total_steps || '–')));
        facts.push(chip('frames', String(run.frames || 0) + (run.snapshots > run.frames ? ' / ' + run.snapshots : '')));
        const bl = TW.backlog(TW.cache(run.id));
        if (bl.waiting) facts.push(TW.h('Span', { className: 'chip chip-busy', id: 'backlog-chip', title: 'The newest snapshot is analysed first (the live view), the others back-filled oldest first' },
          [TW.h('Span', { className: 'chip-k' }, 'analysing:'), ' ', TW.h('B', {}, TW.fmtBacklog(bl))]));
        if (d) facts.push(chip('neurons in', 'ℝ' + String(d).replace(/\d/g, (ch) => '⁰¹²³⁴⁵⁶⁷⁸⁹'[ch])));
        if (run.device) facts.push(chip('device', run.device));
        if (run.first_topology_change !== null && run.first_topology_change !== undefined) facts.push(chip('first topology change', 'step ' + run.first_topology_change, 'chip-warn'));
        facts.push(chip('started', run.started_at ? TW.fmtTime(run.started_at) : '—'));
        if (run.finished_at) facts.push(chip('ended', TW.fmtTime(run.finished_at)));
      }
      // the frames carry raw coordinates for D <= 3, PCA and UMAP above (unknown D: none offered yet)
      const projOpts = !d ? [] : d > 3 ? [{ label: 'PCA', value: 'pca' }, { label: 'UMAP', value: 'umap' }] : [{ label: 'raw', value: 'raw' }];
      const values = projOpts.map((o) => o.value);
      const meta = TW.currentMeta || {};
      const pv = values.includes(projVal) ? projVal : values.includes(meta.proj) ? meta.proj : values[0];
      // an ended run that recorded nothing: the page is its empty state, without the frame controls
      const empty = TW.isTerminal(run) && !run.snapshots && !run.frames;
      document.title = run.id + ' · ' + badge + ' · topowatch';
      return [badge, 'badge badge-' + st, err, !(st === 'queued' || st === 'running'), title, facts, projOpts,
        pv === undefined || pv === projVal ? NU() : pv, 'page page-run' + (empty ? ' no-frames' : '')];
    },

    run_render: function (cursor, tick, proj, color, dimv, diag, knnK, bscale, run, meta) {
      if (!meta || meta.kind !== 'run') throw STOP();
      TW.currentMeta = meta;
      const c = TW.cache(meta.run_id);
      const dim3 = (dimv || []).indexOf('3d') >= 0;
      const path = pagePath(meta);
      const defProj = TW.neuronDim(run) > 3 ? 'pca' : 'raw';
      const k = Number(knnK) || 10;
      TW.view = { color: color, k: k };
      TW.setQuery(path, { proj: proj && proj !== defProj ? proj : null, color: color === 'knn' ? 'knn' : null,
        dim: dim3 ? 3 : null, diag: diag === 'std' ? 'std' : null });
      const diagOpts = (f) => [{ label: 'raw coords', value: 'raw' },
        { label: 'standardised', value: 'std', disabled: !(f && f.diagrams_standardised) }];
      const dimOpts = (can3) => [{ label: '3-D', value: '3d', disabled: !can3 }];
      const n = c.steps.length;
      const bl = TW.backlog(c);
      const rateText = bl.rate ? ' · analysing ≈' + (bl.rate >= 1 ? TW.fmtNum(bl.rate, 2) + ' frames/s' : TW.fmtNum(1 / bl.rate, 2) + ' s/frame') : '';
      if (run && cursor && cursor.waiting !== null && cursor.waiting !== undefined) {
        // a step that is received but not analysed yet: say so, and draw it when it is in
        const ahead = TW.aheadOf(c, cursor.waiting);
        const msg = 'step ' + cursor.waiting + ' is waiting for analysis';
        const sub = (ahead ? '(' + ahead + ' snapshot' + (ahead === 1 ? '' : 's') + ' ahead of it)' : '(next in line)') + rateText;
        const key = 'waiting|' + msg + '|' + sub + '|' + TW.isDark();
        if (!TW.claim('cloud-graph', key)) throw STOP();
        c.shown = undefined;
        return [TW.emptyFigure(H.cloud, msg, sub, { empty: true, waiting: cursor.waiting }), TW.emptyFigure(H.bar, ''), TW.emptyFigure(H.diag, ''), '', '', diagOpts(null),
          String(cursor.waiting), 'waiting for analysis', dimOpts(false), NU()];
      }
      if (!run || !n || !cursor) {
        let msg = 'Loading…', sub = '';
        const st = run && run.status;
        const want = meta.init_pos;
        if (c.notFound || st === 'not-found') { msg = 'No run with id ' + meta.run_id; sub = 'It may have been deleted, or the link is wrong.'; }
        else if (st === 'queued') { msg = 'Queued — waiting for a worker'; sub = 'The run starts as soon as a worker picks it up.'; }
        else if (!n && bl.waiting) {
          msg = typeof want === 'number' && !meta.live && TW.awaitsAnalysis(c, want) ? 'step ' + want + ' is waiting for analysis' : 'Waiting for analysis';
          sub = bl.waiting + ' snapshot' + (bl.waiting === 1 ? '' : 's') + ' received, the newest analysed first, the rest oldest first' + rateText;
        }
        else if (st === 'running' && !n) { msg = 'No frames yet'; sub = 'Waiting for the first snapshot from the worker.'; }
        else if (st === 'failed') { msg = 'Run failed: ' + (run.error || 'unknown error'); sub = run.snapshots ? '' : 'No frames were recorded.'; }
        else if (st === 'diverged' && !n) { msg = 'Run diverged before its first frame'; sub = run.error || ''; }
        else if (st === 'stopped' && !n) { msg = 'Run stopped before its first frame'; }
        else if (st === 'finished' && !n) { msg = 'No frames'; sub = 'The run finished without analysed frames.'; }
        const key = 'empty|' + msg + '|' + sub + '|' + TW.isDark();
        if (!TW.claim('cloud-graph', key)) throw STOP();
        c.shown = undefined;
        return [TW.emptyFigure(H.cloud, msg, sub), TW.emptyFigure(H.bar, ''), TW.emptyFigure(H.diag, ''), '', '', diagOpts(null), '–', '',
          dimOpts(false), NU()];
      }
      const step = cursor.pos;
      const dir = c.shown === undefined ? 0 : Math.sign(step - c.shown);
      let f = TW.want(c.id, step, dir);
      // kNN colouring for k != 10 (frames carry k = 10): the per-neuron shares of this step come first
      let knnVals = null;
      if (f && color === 'knn' && k !== 10) {
        knnVals = TW.knnPerNeuron(c, k, f.step);
        if (!knnVals) f = undefined;
      }
      if (!f) {
        if (c.shown === undefined) {
          const key = 'loading|' + TW.isDark();
          if (!TW.claim('cloud-graph', key)) throw STOP();
          return [TW.emptyFigure(H.cloud, 'Loading frame…', 'step ' + step), TW.emptyFigure(H.bar, ''), TW.emptyFigure(H.diag, ''), '', '', NU(), NU(), 'loading…', NU(), NU()];
        }
        return [NU(), NU(), NU(), NU(), NU(), NU(), NU(), 'loading step ' + step + '…', NU(), NU()];
      }
      const source = diag === 'std' && f.diagrams_standardised ? 'std' : 'raw';
      const pj = TW.pickProjection(f.coords, proj);
      // 3-D only where the frame has a third coordinate: raw for D = 3, PCA (3 components) above D = 3;
      // UMAP is 2-D, so a dim=3 in the URL is dropped rather than drawn flat under a "3-D" caption
      const P = pj ? f.coords[pj] : null;
      const can3 = !!(P && P[0] && P[0].length >= 3);
      const use3 = dim3 && can3;
      if (dim3 && !can3) TW.setQuery(path, { dim: null }); // (the toggle is unticked below)
      const bs = Number(bscale) || 0.25;
      const bcur = TW.bettiCurve(c);
      const key = [f.step, pj, color, color === 'knn' ? k : '', use3, source, bs, bcur ? bcur.key : '', TW.isDark()].join('|');
      const i = c.pos.get(f.step);
      const extra = 'epoch ' + (f.epoch === null || f.epoch === undefined ? '–' : f.epoch) + ' · frame ' + (i + 1) + '/' + n;
      // the URL records the step on screen (written when the browser is idle)
      TW.setQuery(path, { step: cursor.live || cursor.atEnd ? null : f.step });
      if (!TW.claim('cloud-graph', key)) {
        return [NU(), NU(), NU(), NU(), NU(), NU(), String(f.step), extra, NU(), NU()];
      }
      if (c.shown === undefined) setTimeout(TW.bumpTick, 30); // the curves held back for the first paint
      c.shown = f.step;
      const bkey = pj + (use3 ? '3' : '2');
      c.bbox[bkey] = c.bbox[bkey] || {};
      const cloud = TW.cloudFigure(f, { proj: pj, color: color, dim3: use3, height: H.cloud, bbox: c.bbox[bkey],
        uirev: c.id + '|' + pj + '|' + (use3 ? 3 : 2), knn: knnVals, knnK: k });
      const bar = TW.barcodeFigure(f, { source: source, height: H.bar, uirev: c.id + '|bar|' + source, bettiScale: bs });
      const dgm = TW.diagramFigure(f, { source: source, height: H.diag, uirev: c.id + '|dgm|' + source });
      const m = f.metrics || {};
      const nPts = (f.coords && f.coords[pj] && f.coords[pj].length) || 0;
      const capParts = [nPts + ' neurons', (pj || '').toUpperCase() + (use3 ? ' 3-D' : ' 2-D'),
        color === 'knn' ? 'colour: share of each neuron\'s ' + k + ' step-0 nearest neighbours still among its ' + k + ' nearest' : 'colour: fixed by each neuron\'s step-0 position (cyclic)'];
      const knnMean = knnVals ? knnVals.reduce((a, v) => a + v, 0) / (knnVals.length || 1) : m.knn_mean;
      if (knnMean !== null && knnMean !== undefined) capParts.push('mean kNN kept (k=' + (knnVals ? k : 10) + ') ' + TW.fmtNum(knnMean, 3));
      if (m.merges) capParts.push(m.merges + ' merges');
      const p = f.persistence || {};
      const pcap = [];
      if (p.method) pcap.push(p.method + (p.n_points_used ? ' on ' + p.n_points_used + ' points' : ''));
      if (p.cover_radius) pcap.push('cover radius ' + TW.fmtNum(p.cover_radius));
      if (p.diameter) pcap.push('diameter ' + TW.fmtNum(p.diameter));
      const bc = TW.bettiAt(c, f.step);
      if (bc) {
        pcap.push('Betti @' + TW.fmtNum(bc.scale) + '·diam' + (bc.std ? ' (std)' : '') + ': ' + bc.b.map((v, j) => 'b' + j + '=' + v).join(' '));
        pcap.push('bars > ' + TW.fmtNum(bc.minLength) + '·diam: ' + bc.p.map((v, j) => 'b' + j + '=' + v).join(' '));
      } else {
        const betti = ['b0', 'b1', 'b2'].filter((q) => m[q] !== null && m[q] !== undefined).map((q) => q + '=' + m[q]);
        if (betti.length) pcap.push('Betti @0.25·diam: ' + betti.join(' '));
        const pb = ['pb0', 'pb1', 'pb2'].filter((q) => m[q] !== null && m[q] !== undefined).map((q) => q.slice(1) + '=' + m[q]);
        if (pb.length) pcap.push('bars > 0.1·diam: ' + pb.join(' '));
      }
      return [cloud, bar, dgm, capParts.join(' · '), pcap.join(' · '), diagOpts(f), String(f.step), extra,
        dimOpts(can3), dim3 && !can3 ? [] : NU()];
    },

    run_curves: function (ver, tick, run, logv, bandv, betti, bettiTok, knnTok, meta) {
      if (!meta || meta.kind !== 'run') throw STOP();
      const c = TW.cache(meta.run_id);
      // First paint: the cloud goes first (ten curve plots hold the main thread for a while); the curves
      // follow on the tick that draws it, or after a second at most.
      if (c.shown === undefined && c.steps.length) {
        if (!c.curvesHeldSince) c.curvesHeldSince = Date.now();
        if (Date.now() - c.curvesHeldSince < 1000) {
          clearTimeout(c.curvesTimer);
          c.curvesTimer = setTimeout(TW.bumpTick, 1050);
          throw STOP();
        }
      }
      const opts = { log: (logv || []).indexOf('log') >= 0, band: (bandv || []).indexOf('band') >= 0, betti: betti || 'scale',
        bettiKey: (bettiTok && bettiTok.key) || '', knnKey: (knnTok && knnTok.key) || '' };
      TW.setQuery(pagePath(meta), { log: opts.log ? null : 0, band: opts.band ? 1 : null, betti: opts.betti === 'scale' ? null : opts.betti });
      const out = TW.runCurveFigures(c, run, opts);
      return out.figs.concat(out.styles);
    },

    // The cursor on every curve (a DOM overlay, no re-plot) and the values at the cursor.
    run_cursor: function (cursor, ver, bettiTok, knnTok, meta) {
      if (!meta || meta.kind !== 'run') throw STOP();
      const x = cursor ? cursor.pos : null;
      TW.placeCursors(x, TW.RUN_CURVES.map((n) => 'curve-' + n));
      return x === null ? '' : TW.readout(TW.cache(meta.run_id), x);
    },

    // The phase indicator in the run header: still in the topology-preserving phase, or when it left it.
    run_phase: function (ver, run, meta) {
      if (!meta || meta.kind !== 'run') throw STOP();
      const c = TW.cache(meta.run_id);
      if (!run || run.status === 'not-found') return ['', 'phase-indicator hidden', ''];
      const v = TW.phaseVerdict(TW.phaseStats(c));
      const icon = v.cls === 'warn' ? '▲' : v.cls === 'ok' ? '●' : '○';
      return [[TW.h('Span', { className: 'phase-icon', 'aria-hidden': 'true' }, icon), TW.h('Span', { className: 'phase-text' }, v.text)],
        'phase-indicator phase-' + v.cls, v.title];
    },

    run_stop: async function (n, meta) {
      if (!n || !meta || meta.kind !== 'run') throw STOP();
      try {
        const run = await TW.fetchJSON('/api/runs/' + encodeURIComponent(meta.run_id) + '/stop', { method: 'POST', body: {} });
        const c = TW.cache(meta.run_id);
        if (run && run.id) { c.run = run; return run; }
      } catch (e) {
        console.warn('topowatch: stop failed', e);
      }
      return NU();
    },

    // ---------------------------------------------------------------- new-run form
    form_relevance: function (optimizer, presetName, data) {
      data = data || {};
      const preset = (data.presets || []).find((p) => p.name === presetName) || {};
      const used = {
        momentum: optimizer === 'momentum',
        optimizer_state_in_neuron: optimizer === 'adam',
        data_path: !!preset.requires_data_path,
      };
      (data.fields || []).forEach((f) => {
        if (!(f.name in used) || !document.getElementById('fieldbox-' + f.name)) return;
        TW.setProps('fieldbox-' + f.name, { className: 'field field-type-' + (f.type || 'str') + (used[f.name] ? '' : ' unused') });
      });
      return 'fields-grid';
    },

    // page titles
    page_title: function (pathname) {
      const p = pathname || '/';
      if (p === '/') document.title = 'Runs · topowatch';
      else if (p === '/new') document.title = 'New run · topowatch';
      else if (p === '/compare') document.title = 'Compare · topowatch';
      else if (p.indexOf('/runs/') === 0) document.title = p.slice(6) + ' · topowatch';
      return NU();
    },

    // ---------------------------------------------------------------- compare page
    cmp_align: function (align, meta) {
      if (!meta || meta.kind !== 'compare' || meta.align === align) throw STOP();
      return Object.assign({}, meta, { align: align, init_pos: null });
    },

    cmp_status: function (runs, meta) {
      if (!meta || meta.kind !== 'compare') throw STOP();
      runs = runs || [];
      const titles = [], badges = [], classes = [], infos = [];
      meta.runs.forEach((id, k) => {
        const r = runs[k];
        const st = (r && r.status) || 'unknown';
        titles.push(r && r.preset ? r.preset + ' · ' + id : id);
        badges.push(STATUS_TEXT[st] || st);
        classes.push('badge badge-' + st);
        if (!r || st === 'not-found') { infos.push(r ? r.error : 'loading…'); return; }
        const cfg = r.config || {};
        const parts = [String(cfg.optimizer || ''), 'lr ' + TW.fmtNum(cfg.lr), 'width ' + (r.width || cfg.width),
          (r.steps_done || 0) + '/' + (r.total_steps || '–') + ' steps', (r.frames || 0) + ' frames'];
        if (r.first_topology_change !== null && r.first_topology_change !== undefined) parts.push('topology change @ ' + r.first_topology_change);
        const pe = TW.phaseStats(TW.cache(id)).exit;
        if (pe) parts.push('left preserving phase @ ' + pe.step);
        if (r.error) parts.push(r.error);
        infos.push(parts.join(' · '));
      });
      return [titles, badges, classes, infos];
    },

    // Every column draws its own latest frame at or before the shared cursor (by step, or by fraction
    // of training) and says which step that is; the header shows the cursor itself.
    cmp_render: function (cursor, tick, runs, meta) {
      if (!meta || meta.kind !== 'compare') throw STOP();
      const ids = meta.runs;
      const clouds = [], bars = [], labels = [], classes = [];
      const label = meta.align === 'fraction' ? 'of training' : 'step';
      const frac = meta.align === 'fraction';
      const pct = (s, T) => (T ? Math.round((1000 * s) / T) / 10 + '%' : '');
      const stepText = (s, T) => 'step ' + s + (T ? ' · ' + pct(s, T) + ' of training' : '');
      const emptyMsg = (c, r) => (c.notFound ? 'No run with id ' + c.id : r && r.status === 'queued' ? 'Queued — waiting for a worker'
        : r && r.status === 'failed' ? 'Run failed: ' + (r.error || '') : r && !c.steps.length ? 'No frames yet' : 'Loading…');
      let loading = 0;
      ids.forEach((id, k) => {
        const c = TW.cache(id);
        const r = c.run;
        const T = r && r.total_steps;
        const step = cursor ? TW.stepAt(c, meta, cursor.pos) : null;
        const graphKey = { index: k, type: 'cmp-cloud' };
        if (step === null) {
          const msg = emptyMsg(c, r);
          labels.push(msg === 'Loading…' ? '–' : msg);
          classes.push('cmp-step muted');
          c.cmpShown = undefined;
          if (!TW.claim(graphKey, 'empty|' + msg + TW.isDark())) { clouds.push(NU()); bars.push(NU()); return; }
          clouds.push(TW.emptyFigure(H.cmpCloud, msg));
          bars.push(TW.emptyFigure(H.cmpBar, ''));
          return;
        }
        const dir = c.cmpShown === undefined ? 0 : Math.sign(step - c.cmpShown);
        const f = TW.want(id, step, dir);
        // how this run's step relates to the cursor
        let rel = '';
        if (!frac && step !== cursor.pos) rel = step < cursor.pos && step === c.steps[c.steps.length - 1] ? ' (its last frame)' : ' (latest at or before step ' + cursor.pos + ')';
        if (frac && T) rel = Math.abs(step / T - cursor.pos) > 0.0005 ? ' (latest at or before ' + fmtPos(meta, cursor.pos) + ')' : '';
        if (!f) {
          loading++;
          if (c.cmpShown !== undefined && c.cmpShown !== step) {
            labels.push('loading ' + stepText(step, T) + '… · showing step ' + c.cmpShown);
          } else {
            labels.push('loading ' + stepText(step, T) + '…');
            if (c.cmpShown === undefined && TW.claim(graphKey, 'loading|' + TW.isDark())) {
              clouds.push(TW.emptyFigure(H.cmpCloud, 'Loading frame…', 'step ' + step));
              bars.push(TW.emptyFigure(H.cmpBar, ''));
              classes.push('cmp-step loading');
              return;
            }
          }
          classes.push('cmp-step loading');
          clouds.push(NU()); bars.push(NU());
          return;
        }
        labels.push(stepText(f.step, T) + rel);
        classes.push('cmp-step' + (rel ? ' offset' : ''));
        const sub = 'step ' + f.step + (T ? ' · ' + pct(f.step, T) : '');
        const key = [f.step, TW.isDark(), sub].join('|');
        if (!TW.claim(graphKey, key)) { clouds.push(NU()); bars.push(NU()); return; }
        c.cmpShown = f.step;
        const pj = TW.pickProjection(f.coords, r && r.neuron_dim > 3 ? 'pca' : 'raw');
        c.bbox['cmp' + pj] = c.bbox['cmp' + pj] || {};
        clouds.push(TW.cloudFigure(f, { proj: pj, color: 'hue', dim3: false, height: H.cmpCloud, bbox: c.bbox['cmp' + pj],
          uirev: 'cmp|' + id + '|' + pj, compact: true, title: sub, subtitle: ' ' }));
        bars.push(TW.barcodeFigure(f, { source: 'raw', height: H.cmpBar, uirev: 'cmp|' + id + '|bar', compact: true }));
      });
      if (!cursor) return [clouds, bars, labels, classes, '–', '', label];
      const n = TW.positions(meta).length;
      const extra = 'position ' + (cursor.i + 1) + '/' + n + (loading ? ' · loading ' + loading + ' of ' + ids.length + ' runs…' : '');
      return [clouds, bars, labels, classes, fmtPos(meta, cursor.pos), extra, label];
    },

    // The summary table: one row per run, the row of a run that left the preserving phase highlighted.
    cmp_summary: function (ver, runs, meta) {
      if (!meta || meta.kind !== 'compare') throw STOP();
      return TW.summaryTable(meta.runs);
    },

    cmp_curves: function (ver, runs, meta) {
      if (!meta || meta.kind !== 'compare') throw STOP();
      const out = TW.cmpCurveFigures(meta);
      return out.figs.concat(out.styles);
    },

    cmp_cursor: function (cursor, ver, meta) {
      if (!meta || meta.kind !== 'compare') throw STOP();
      const x = cursor ? cursor.pos : null;
      TW.placeCursors(x, TW.CMP_CURVES.map((n) => 'cmp-curve-' + n));
      return x === null ? '' : TW.cmpReadout(meta, x);
    },
  });
})();
