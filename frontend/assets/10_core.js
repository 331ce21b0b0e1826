/* topowatch dashboard — core: HTTP, the in-browser frame cache, navigation, URL state, keyboard.
 *
 * Big data (frame index, full frames) lives here in JS memory, never in Dash stores: Dash only
 * carries small tokens (index-version, frame-tick, cursor) that trigger clientside redraws.
 */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});

  TW.CHUNK = 6;           // full frames per background range request, until a frame's size is known
  TW.RANGE_BYTES = 400000; // then: about this much JSON per range request (2..16 frames)
  TW.MAX_INFLIGHT = 2;    // concurrent range requests per run
  TW.MAX_SINGLE = 2;      // concurrent single-frame requests per run (the frame on screen comes first)
  TW.PREFETCH_CAP = 400;  // frames per run fetched in the background (on-demand fetches are unlimited)
  TW.tick = 0;

  // ------------------------------------------------------------------ HTTP
  function detailText(body) {
    if (body == null) return '';
    if (typeof body === 'string') return body;
    const d = body.detail !== undefined ? body.detail : body;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) return d.map((e) => (e && e.msg) || JSON.stringify(e)).join('; ');
    return JSON.stringify(d);
  }
  TW.detailText = detailText;

  TW.fetchJSON = async function (path, opts) {
    opts = opts || {};
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), opts.timeout || 15000);
    try {
      const init = { method: opts.method || 'GET', headers: { Accept: 'application/json' }, signal: ctrl.signal, cache: 'no-store' };
      if (opts.body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.body);
      }
      const resp = await fetch(path, init);
      const text = await resp.text();
      if (opts.info) opts.info.bytes = text.length;
      let body = null;
      try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
      if (!resp.ok) {
        const err = new Error(detailText(body) || resp.statusText || ('HTTP ' + resp.status));
        err.status = resp.status;
        err.body = body;
        throw err;
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  };

  TW.setProps = function (id, props) {
    try {
      if (window.dash_clientside && window.dash_clientside.set_props) window.dash_clientside.set_props(id, props);
    } catch (e) {
      console.warn('topowatch: set_props failed', id, e);
    }
  };

  // Bump the frame tick (a Store on the run and compare pages) so their figures redraw.
  TW.bumpTick = function () {
    if (TW._tickPending) return;
    TW._tickPending = true;
    requestAnimationFrame(() => {
      TW._tickPending = false;
      const page = document.getElementById('page-run') ? 'run' : document.getElementById('page-compare') ? 'cmp' : null;
      if (page) TW.setProps({ page: page, type: 'tw-tick' }, { data: ++TW.tick });
    });
  };

  // ------------------------------------------------------------------ navigation (SPA, no reload)
  TW.navigate = function (href) {
    window.history.pushState({}, '', href);
    window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
    window.scrollTo(0, 0);
  };

  // Replace the query string (no new history entry) so that the URL reopens the current view.
  // Throttled (playback changes the step many times a second) but never more than ~QUERY_MS behind:
  // the first change after a quiet spell is written at once, later ones at most every QUERY_MS, and
  // the write itself waits for an idle moment so it never delays drawing a frame.
  TW.QUERY_MS = 200;
  TW.writeQuery = function (path, params) {
    TW._pendingQuery = [path, Object.assign({}, params)];
    if (TW._queryTimer) return;
    const wait = Math.max(0, (TW._queryLast || 0) + TW.QUERY_MS - Date.now());
    TW._queryTimer = setTimeout(() => {
      const flush = () => {
        TW._queryTimer = null;
        TW._queryLast = Date.now();
        const pq = TW._pendingQuery;
        TW._pendingQuery = null;
        if (pq) writeQueryNow(pq[0], pq[1]);
      };
      if (window.requestIdleCallback) window.requestIdleCallback(flush, { timeout: 120 });
      else flush();
    }, wait);
  };
  // Write a pending query now (tests and page changes must not lose the last one).
  TW.flushQuery = function () {
    const pq = TW._pendingQuery;
    TW._pendingQuery = null;
    if (pq) writeQueryNow(pq[0], pq[1]);
  };
  function writeQueryNow(path, params) {
    if (window.location.pathname !== path) return;
    const q = new URLSearchParams();
    Object.keys(params).forEach((k) => {
      const v = params[k];
      if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
    });
    const s = q.toString().replace(/%2C/g, ',');
    const url = path + (s ? '?' + s : '') + window.location.hash;
    if (url !== window.location.pathname + window.location.search + window.location.hash) {
      window.history.replaceState(window.history.state, '', url);
    }
  }

  // ------------------------------------------------------------------ run cache
  TW.runs = new Map();
  TW.cache = function (id) {
    let c = TW.runs.get(id);
    if (!c) {
      c = {
        id: id, run: null, notFound: false,
        index: [], steps: [], pos: new Map(), version: 0, lastFull: 0,
        frames: new Map(), pending: new Set(), missing: new Map(), inflight: 0,
        single: new Set(), singleNext: null, chunk: TW.CHUNK,
        wanted: null, cursorI: 0, series: null, bbox: {},
        rate: [], // [time ms, analysed frames] samples: the observed analysis rate
      };
      TW.runs.set(id, c);
    }
    return c;
  };

  function mergeIndex(c, frames) {
    let added = false;
    for (const f of frames || []) {
      if (!f || typeof f.step !== 'number') continue;
      const slim = { step: f.step, epoch: f.epoch, metrics: f.metrics || {} };
      const i = c.pos.get(f.step);
      if (i === undefined) {
        c.index.push(slim);
        c.pos.set(f.step, c.index.length - 1);
        added = true;
      } else if (!c.index[i].metrics || Object.keys(c.index[i].metrics).length === 0) {
        c.index[i] = slim;
      }
    }
    if (added) {
      c.index.sort((a, b) => a.step - b.step);
      c.steps = c.index.map((f) => f.step);
      c.pos = new Map(c.steps.map((s, i) => [s, i]));
      c.version++;
      c.series = null;
    }
    return added;
  }

  const TERMINAL = new Set(['finished', 'diverged', 'failed', 'stopped']);
  TW.isTerminal = (run) => !!run && TERMINAL.has(run.status);

  // Refresh a run (cheap) and, when its frame count moved, the frame index (incrementally).
  TW.refresh = async function (id) {
    const c = TW.cache(id);
    let run;
    try {
      run = await TW.fetchJSON('/api/runs/' + encodeURIComponent(id), { timeout: 8000 });
    } catch (e) {
      if (e.status === 404) { c.notFound = true; c.run = null; }
      throw e;
    }
    c.notFound = false;
    c.run = run;
    noteRate(c, run);
    const want = run.frames || 0;
    let changed = false;
    if (c.index.length < want || !c.indexLoaded) {
      const last = c.steps.length ? c.steps[c.steps.length - 1] : null;
      const base = '/api/runs/' + encodeURIComponent(id) + '/frames';
      // `start` on the index is an optimisation: an API that ignores it still gives a correct (full) answer.
      const res = await TW.fetchJSON(last !== null ? base + '?start=' + (last + 1) : base, { timeout: 30000 });
      changed = mergeIndex(c, res && res.frames);
      c.indexLoaded = true;
      // Frames analysed out of order (the live frame before the back-fill, or by several analysers) are not after
      // `last`: refetch in full now and then (the index is small; a long one less often).
      if (c.index.length < want && last !== null && Date.now() - c.lastFull > Math.min(5000, 1000 + 10 * c.index.length)) {
        c.lastFull = Date.now();
        const full = await TW.fetchJSON(base, { timeout: 30000 });
        changed = mergeIndex(c, full && full.frames) || changed;
      }
    }
    return changed;
  };

  // ------------------------------------------------------------------ presets (GET /api/presets, once)
  // A run that never started (failed before its first step) has no neuron_dim of its own: its preset
  // says what the neurons would have been.
  TW.presets = null; // Map name -> preset, once loaded
  TW.loadPresets = function () {
    if (!TW._presetsReq) {
      TW._presetsReq = TW.fetchJSON('/api/presets', { timeout: 8000 })
        .then((list) => { TW.presets = new Map((list || []).map((p) => [p.name, p])); })
        .catch(() => { TW._presetsReq = null; }); // asked again on the next call
    }
    return TW._presetsReq;
  };
  TW.neuronDim = function (run) {
    if (!run) return null;
    if (run.neuron_dim) return run.neuron_dim;
    const p = TW.presets && TW.presets.get(run.preset || (run.config || {}).preset);
    return (p && p.neuron_dim) || null;
  };

  // ------------------------------------------------------------------ the analysis backlog
  // The newest snapshot is analysed first and the rest back-filled; a slow preset (double-torus: ~1 s a frame)
  // can run far ahead of its analysis. The rate is observed from the run's frame count over time.
  function noteRate(c, run) {
    const now = Date.now();
    const n = run.frames || 0;
    const last = c.rate[c.rate.length - 1];
    if (!last || last[1] !== n) c.rate.push([now, n]);
    while (c.rate.length > 2 && now - c.rate[1][0] > 30000) c.rate.shift();
  }

  // {waiting, rate (frames/s or null), eta (s or null)}; waiting = snapshots received, not analysed yet.
  TW.backlog = function (c) {
    const run = c.run;
    if (!run) return { waiting: 0, rate: null, eta: null };
    const waiting = Math.max(0, (run.snapshots || 0) - (run.frames || 0));
    let rate = null;
    const r = c.rate;
    if (r.length >= 2) {
      const a = r[0], b = r[r.length - 1];
      const dt = (Math.max(b[0], Date.now() - 1) - a[0]) / 1000;
      if (b[1] > a[1] && dt > 0.5) rate = (b[1] - a[1]) / dt;
    }
    return { waiting: waiting, rate: rate, eta: rate && waiting ? waiting / rate : null };
  };

  TW.fmtBacklog = function (b) {
    if (!b.waiting) return '';
    let s = b.waiting + ' snapshot' + (b.waiting === 1 ? '' : 's') + ' waiting';
    if (b.rate) {
      s += ' · ≈' + (b.rate >= 1 ? TW.fmtNum(b.rate, 2) + ' frames/s' : TW.fmtNum(1 / b.rate, 2) + ' s/frame');
      if (b.eta) s += ' · ~' + (b.eta < 90 ? Math.ceil(b.eta) + ' s' : Math.ceil(b.eta / 60) + ' min') + ' left';
    }
    return s;
  };

  // The steps a run sends snapshots at: every snapshot_every steps, and its last step.
  function isSnapshotStep(run, step) {
    const every = (run.config && run.config.snapshot_every) || 1;
    return step === 0 || step % every === 0 || (TW.isTerminal(run) && step === run.steps_done);
  }

  // `step` was received as a snapshot but is not analysed yet (it will be: the backlog is not empty).
  TW.awaitsAnalysis = function (c, step) {
    const run = c.run;
    if (!run || typeof step !== 'number' || !Number.isFinite(step) || c.pos.has(step)) return false;
    if ((run.snapshots || 0) <= (run.frames || 0)) return false;
    return step >= 0 && step <= (run.steps_done || 0) && isSnapshotStep(run, step);
  };

  // How many unanalysed snapshots go before `step`: the backlog is back-filled oldest first, so the
  // earlier ones (the live frame, taken first now and then, is left out of this estimate).
  TW.aheadOf = function (c, step) {
    const run = c.run;
    if (!run) return 0;
    const every = (run.config && run.config.snapshot_every) || 1;
    let n = 0;
    for (let s = 0; s < step; s += every) if (!c.pos.has(s)) n++;
    return Math.min(n, Math.max(0, (run.snapshots || 0) - (run.frames || 0) - 1));
  };

  // ------------------------------------------------------------------ full frames
  // The frame on screen is fetched alone first (GET /frames/{step}: one ~65 kB frame, tens of ms);
  // the cache around it is then filled in the background in ranges of a few hundred kB.
  function have(c, j) {
    const s = c.steps[j];
    if (c.frames.has(s) || c.pending.has(s) || c.single.has(s)) return true;
    const until = c.missing.get(s);
    return until !== undefined && until > Date.now();
  }

  function rangeAround(c, i, dir) {
    const n = c.steps.length;
    if (i < 0 || i >= n || have(c, i)) return null;
    const K = c.chunk || TW.CHUNK;
    const fwd = dir > 0 ? K - 1 : dir < 0 ? 0 : Math.floor(K * 0.75);
    let lo = i, hi = i;
    while (hi + 1 < n && hi - i < fwd && !have(c, hi + 1)) hi++;
    while (lo - 1 >= 0 && hi - lo + 1 < K && !have(c, lo - 1)) lo--;
    while (hi + 1 < n && hi - lo + 1 < K && !have(c, hi + 1)) hi++;
    return [lo, hi];
  }

  function nextPrefetch(c) {
    if (c.frames.size + c.pending.size >= TW.PREFETCH_CAP) return null;
    const n = c.steps.length;
    const from = Math.min(Math.max(c.cursorI || 0, 0), n - 1);
    for (let j = from; j < n; j++) if (!have(c, j)) return rangeAround(c, j, +1);
    for (let j = from; j >= 0; j--) if (!have(c, j)) return rangeAround(c, j, -1);
    return null;
  }

  function fetchRange(c, lo, hi) {
    const steps = c.steps.slice(lo, hi + 1);
    if (!steps.length) return;
    steps.forEach((s) => c.pending.add(s));
    c.inflight++;
    const url = '/api/runs/' + encodeURIComponent(c.id) + '/frames?include=full&start=' + steps[0] +
      '&end=' + steps[steps.length - 1] + '&limit=' + Math.min(500, steps.length * 2 + 4);
    TW.fetchJSON(url, { timeout: 60000 })
      .then((res) => {
        const got = new Set();
        for (const f of (res && res.frames) || []) {
          if (f && typeof f.step === 'number') { c.frames.set(f.step, f); got.add(f.step); }
        }
        steps.forEach((s) => { if (!got.has(s)) c.missing.set(s, Date.now() + 5000); });
        TW.bumpTick();
      })
      .catch(() => {
        steps.forEach((s) => c.missing.set(s, Date.now() + 2000));
        setTimeout(TW.bumpTick, 2100);
      })
      .finally(() => {
        steps.forEach((s) => c.pending.delete(s));
        c.inflight--;
        pump(c);
      });
  }

  // One frame, on its own (the one on screen, or the next one playback needs).
  function fetchOne(c, step) {
    c.single.add(step);
    const info = {};
    TW.fetchJSON('/api/runs/' + encodeURIComponent(c.id) + '/frames/' + step, { timeout: 30000, info: info })
      .then((f) => {
        if (f && typeof f.step === 'number') {
          c.frames.set(f.step, f);
          // size the background ranges from what one frame weighs
          if (info.bytes > 0) c.chunk = Math.max(2, Math.min(16, Math.round(TW.RANGE_BYTES / info.bytes)));
        }
        TW.bumpTick();
      })
      .catch((e) => {
        c.missing.set(step, Date.now() + (e && e.status === 404 ? 5000 : 2000));
        setTimeout(TW.bumpTick, 2100);
      })
      .finally(() => {
        c.single.delete(step);
        const next = c.singleNext;
        c.singleNext = null;
        if (next !== null) requestOne(c, next);
        pump(c);
      });
  }

  function requestOne(c, step) {
    if (c.frames.has(step) || c.single.has(step) || c.pending.has(step)) return;
    const until = c.missing.get(step);
    if (until !== undefined && until > Date.now()) return;
    if (c.single.size >= TW.MAX_SINGLE) { c.singleNext = step; return; } // the latest wish wins
    fetchOne(c, step);
  }

  function pump(c) {
    if (c.single.size && !c.frames.size) return; // the first frame on screen goes alone
    while (c.inflight < TW.MAX_INFLIGHT) {
      let r = null;
      if (c.wanted) {
        r = rangeAround(c, c.wanted.i, c.wanted.dir);
        c.wanted = null;
      } else if (c.inflight === 0) {
        r = nextPrefetch(c); // background: one request at a time
      }
      if (!r) break;
      fetchRange(c, r[0], r[1]);
    }
  }

  // The full frame at `step` if cached; otherwise fetch it (alone, at once) and return undefined; the
  // frames around it follow in the background. `ahead` (playback look-ahead) skips the single fetch.
  TW.want = function (id, step, dir, ahead) {
    const c = TW.cache(id);
    const i = c.pos.get(step);
    if (i !== undefined && !ahead) c.cursorI = i;
    const f = c.frames.get(step);
    if (f) {
      if (c.inflight === 0) pump(c);
      return f;
    }
    if (i === undefined) return undefined;
    if (!ahead) requestOne(c, step);
    c.wanted = { i: i, dir: dir || 0 };
    pump(c);
    return undefined;
  };


  TW.hasFrame = (id, step) => TW.cache(id).frames.has(step);

  // Full frames are big (~65 kB each): keep them only for the runs on screen and those seen in the
  // last minute (going back to a run just left is instant); indexes are small and kept.
  TW.evictExcept = function (ids) {
    const now = Date.now();
    ids.forEach((id) => { TW.cache(id).lastUsed = now; });
    TW.runs.forEach((c) => {
      if (ids.indexOf(c.id) < 0 && c.frames.size && now - (c.lastUsed || 0) > 60000) {
        c.frames.clear();
        c.bbox = {};
      }
    });
  };

  // ------------------------------------------------------------------ small helpers
  TW.bisectRight = function (arr, x) { // number of elements <= x
    let lo = 0, hi = arr.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m] <= x) lo = m + 1; else hi = m; }
    return lo;
  };
  TW.nearestIndex = function (arr, x) {
    if (!arr.length) return -1;
    const k = TW.bisectRight(arr, x);
    if (k === 0) return 0;
    if (k >= arr.length) return arr.length - 1;
    return (x - arr[k - 1] <= arr[k] - x) ? k - 1 : k;
  };
  TW.fmtNum = function (v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (typeof v !== 'number') return String(v);
    if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits === undefined ? 2 : digits).replace('e+', 'e');
    return String(+v.toPrecision(digits === undefined ? 4 : digits));
  };
  TW.fmtStep = function (s) {
    if (s >= 1e6) return (s / 1e6).toFixed(s % 1e6 ? 1 : 0) + 'M';
    if (s >= 1e4) return (s / 1e3).toFixed(s % 1e3 ? 1 : 0) + 'k';
    return String(s);
  };
  TW.fmtTime = function (iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const now = new Date();
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    if (d.toDateString() === now.toDateString()) return hm;
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + hm.slice(0, 5);
  };
  // Dash component JSON for clientside outputs.
  TW.h = function (type, props, children) {
    const p = Object.assign({}, props || {});
    if (children !== undefined) p.children = children;
    return { type: type, namespace: 'dash_html_components', props: p };
  };

  // ------------------------------------------------------------------ theme (follows the OS)
  const dark = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  TW.isDark = () => !!(dark && dark.matches);
  TW.theme = function () {
    if (TW._theme && TW._theme.dark === TW.isDark()) return TW._theme;
    const cs = getComputedStyle(document.documentElement);
    const v = (name, fb) => (cs.getPropertyValue(name) || '').trim() || fb;
    TW._theme = {
      dark: TW.isDark(),
      fg: v('--fg', TW.isDark() ? '#e6e8ee' : '#1d2330'),
      muted: v('--muted', '#8a93a6'),
      grid: v('--grid', TW.isDark() ? 'rgba(255,255,255,0.08)' : 'rgba(0,0,0,0.08)'),
      axis: v('--axis', TW.isDark() ? 'rgba(255,255,255,0.25)' : 'rgba(0,0,0,0.25)'),
      card: v('--card', TW.isDark() ? '#171b24' : '#ffffff'),
      accent: v('--accent', '#5b6cff'),
      danger: v('--danger', '#e5484d'),
      warn: v('--warn', '#f5a524'),
      font: v('--font', 'Inter, system-ui, sans-serif'),
    };
    return TW._theme;
  };
  if (dark && dark.addEventListener) {
    dark.addEventListener('change', () => { TW._theme = null; TW.curveCache = new Map(); TW.bumpTick(); });
  }

  // ------------------------------------------------------------------ keyboard: ← → step, space play, L live
  document.addEventListener('keydown', (ev) => {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (!document.getElementById('timeline-slider')) return;
    const t = ev.target;
    const tag = (t && t.tagName) || '';
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(tag) || (t && t.isContentEditable)) return;
    // A focused slider handle moves itself with the arrow keys.
    if (t && t.closest && t.closest('[role="slider"]')) return;
    if (t && t.closest && t.closest('.Select, .dash-dropdown, [role="listbox"], [role="combobox"]')) return;
    const click = (id) => { const el = document.getElementById(id); if (el && !el.disabled) el.click(); };
    if (ev.key === 'ArrowLeft') { ev.preventDefault(); click('step-prev'); }
    else if (ev.key === 'ArrowRight') { ev.preventDefault(); click('step-next'); }
    else if ((ev.key === ' ' || ev.key === 'k') && tag !== 'BUTTON') { ev.preventDefault(); click('play-button'); }
    else if (ev.key === 'l' || ev.key === 'L') { click('live-toggle'); }
  });

  // In-app links rendered by JS (runs table): navigate without reloading.
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest('a[data-nav]');
    if (a) { ev.preventDefault(); TW.navigate(a.getAttribute('href')); }
  });
})();
