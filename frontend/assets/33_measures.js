/* topowatch dashboard — measures recomputed by the API on request (run page):
 *   Betti numbers at a chosen scale / in standardised coordinates / persistent counts for a chosen
 *   bar length        GET /api/runs/{id}/betti?scale=&standardised=&min_length=
 *   neighbourhood preservation for another k (frames carry k = 10)
 *                     GET /api/runs/{id}/neighbourhood?k=[&step=]
 * Requests run in the background (never awaited by a callback): a callback returns at once and the
 * answer arrives through a small token Store (set_props), which redraws the curves.
 */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});
  const dc = (window.dash_clientside = window.dash_clientside || {});
  const NU = () => dc.no_update;
  const STOP = () => dc.PreventUpdate;
  const REFRESH_MS = 3000; // while a run grows, refetch a recomputed curve at most this often

  TW.BETTI_DEFAULT = { scale: 0.25, std: false, minLength: 0.1 };
  TW.KNN_DEFAULT = 10;
  const isDefault = (o) => o.scale === 0.25 && !o.std && o.minLength === 0.1;
  const clamp = (v, lo, hi, d) => { const x = Number(v); return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : d; };
  const round = (v) => Math.round(v * 1e4) / 1e4;
  const enc = encodeURIComponent;

  function ruleText(o) { // the API's scale_rule wording, for the frames' own rule
    return 'Betti at ' + o.scale + ' x diameter, persistent bars longer than ' + o.minLength + ' x diameter, ' +
      (o.std ? 'standardised' : 'raw') + ' coordinates';
  }

  // A curve fetched for one setting (`key`), refetched (throttled) while the run's frame count grows.
  function refreshCurve(c, slot, key, url, build, onDone) {
    let e = c[slot];
    if (!e || e.key !== key) {
      if (e && e.timer) clearTimeout(e.timer);
      // until the new setting is in, the panel keeps the last curve (labelled by its own setting)
      const prev = e ? (e.data || e.prev) : null;
      e = c[slot] = { key: key, frames: -1, at: 0, loading: false, data: null, prev: prev, error: null, timer: null };
    }
    const frames = (c.run && c.run.frames) || 0;
    if (e.loading || e.frames === frames) return;
    const wait = e.at + REFRESH_MS - Date.now();
    if (wait > 0) {
      if (!e.timer) e.timer = setTimeout(() => { e.timer = null; if (c[slot] === e) refreshCurve(c, slot, key, url, build, onDone); }, wait);
      return;
    }
    e.loading = true;
    TW.fetchJSON(url, { timeout: 120000 })
      .then((res) => { if (c[slot] === e) { e.data = build(res); e.error = null; } })
      .catch((err) => { if (c[slot] === e) e.error = (err && err.message) || 'request failed'; })
      .finally(() => {
        if (c[slot] !== e) return;
        e.loading = false;
        e.frames = frames;
        e.at = Date.now();
        onDone(e);
        // frames arrived meanwhile: once more (throttled)
        if (c.run && (c.run.frames || 0) !== frames) refreshCurve(c, slot, key, url, build, onDone);
      });
  }

  // Only while this run's page is on screen (a dcc.Store has no DOM node to look for).
  function setOnPage(c, id, props) {
    if (document.getElementById('page-run') && TW.currentMeta && TW.currentMeta.run_id === c.id) TW.setProps(id, props);
  }

  // ------------------------------------------------------------------ Betti at a chosen scale
  TW.bettiCurve = function (c) { // {key, opts, steps, betti, persistent, rule} or null (frames' own rule)
    const e = c.bettiSlot;
    if (!e || isDefault(c.bettiOpts || TW.BETTI_DEFAULT)) return null;
    return e.data && e.data.setting === e.key ? e.data : e.prev;
  };
  // Betti numbers and persistent counts at `step` under the chosen rule (null: the frames' own).
  TW.bettiAt = function (c, step) {
    const d = TW.bettiCurve(c);
    if (!d) return null;
    const i = d.pos.get(step);
    if (i === undefined) return null;
    return { b: d.betti[i] || [], p: d.persistent[i] || [], scale: d.opts.scale, minLength: d.opts.minLength, std: d.opts.std };
  };

  // ------------------------------------------------------------------ neighbourhood preservation for k
  TW.knnCurve = function (c) { // {key, k, steps, mean} or null (the frames' k = 10)
    const e = c.knnSlot;
    const k = c.knnK || TW.KNN_DEFAULT;
    if (k === TW.KNN_DEFAULT || !e) return null;
    return e.key === 'k' + k && e.data && e.data.k === k ? e.data : e.prev;
  };
  TW.knnMeanAt = function (c, step) {
    const d = TW.knnCurve(c);
    if (!d) return null;
    const i = d.pos.get(step);
    return i === undefined ? null : { k: d.k, mean: d.mean[i] };
  };

  // Per-neuron shares at one step for k: the array, undefined while it loads (fetch started), or false
  // when the API has none (the cloud then keeps the frame's k = 10 colours).
  const PER_CAP = 600;
  TW.knnPerNeuron = function (c, k, step) {
    c.knnPer = c.knnPer || new Map();
    c.knnPerPending = c.knnPerPending || new Set();
    const key = k + '|' + step;
    if (c.knnPer.has(key)) return c.knnPer.get(key);
    if (c.knnPerPending.has(key)) return undefined;
    if (c.knnPerPending.size >= 3) { c.knnPerNext = [k, step]; return undefined; }
    c.knnPerPending.add(key);
    TW.fetchJSON('/api/runs/' + enc(c.id) + '/neighbourhood?k=' + k + '&step=' + step, { timeout: 30000 })
      .then((res) => { c.knnPer.set(key, res && Array.isArray(res.per_neuron) ? res.per_neuron : false); })
      .catch(() => { c.knnPer.set(key, false); })
      .finally(() => {
        c.knnPerPending.delete(key);
        while (c.knnPer.size > PER_CAP) c.knnPer.delete(c.knnPer.keys().next().value);
        const nx = c.knnPerNext;
        c.knnPerNext = null;
        if (nx) TW.knnPerNeuron(c, nx[0], nx[1]);
        TW.bumpTick();
      });
    return undefined;
  };

  const pathOf = (meta) => '/runs/' + meta.run_id;

  function bettiRule(c) {
    const e = c.bettiSlot;
    const o = c.bettiOpts || TW.BETTI_DEFAULT;
    if (isDefault(o)) return ruleText(o) + ' — the paper\'s rule, as analysed per frame';
    if (e && e.data && e.data.setting === e.key) return e.data.rule + (e.loading ? ' · updating…' : '');
    if (e && e.error) return 'Could not recompute the Betti numbers: ' + e.error;
    return 'Recomputing: ' + ruleText(o) + '…';
  }

  function knnNote(c) {
    const k = c.knnK || TW.KNN_DEFAULT;
    const e = c.knnSlot;
    if (k === TW.KNN_DEFAULT) return 'k = 10, as analysed per frame';
    if (e && e.data && e.data.k === k) return 'k = ' + k + ', recomputed from the snapshots' + (e.loading ? ' · updating…' : '');
    if (e && e.error) return 'Could not recompute for k = ' + k + ': ' + e.error;
    return 'Recomputing for k = ' + k + '…';
  }

  dc.topowatch = Object.assign(dc.topowatch || {}, {
    // Betti panel controls -> the curve (token store), the rule shown, the scale read-out.
    run_betti: function (scale, stdv, minlen, ver, run, meta) {
      if (!meta || meta.kind !== 'run') throw STOP();
      const c = TW.cache(meta.run_id);
      const canStd = !!(run && run.neuron_dim && run.neuron_dim <= 3);
      const o = {
        scale: round(clamp(scale, 0.05, 0.5, 0.25)),
        std: canStd && (stdv || []).indexOf('std') >= 0,
        minLength: round(clamp(minlen, 0, 1, 0.1)),
      };
      c.bettiOpts = o;
      TW.setQuery(pathOf(meta), { bscale: o.scale === 0.25 ? null : o.scale, bstd: o.std ? 1 : null, bmin: o.minLength === 0.1 ? null : o.minLength });
      const stdOpts = [{ label: 'standardised', value: 'std', disabled: !canStd }];
      const scaleLabel = TW.fmtNum(o.scale) + ' × diam' + (o.scale === 0.25 ? ' (paper)' : '');
      let token = { key: 'default' };
      if (!isDefault(o)) {
        const key = [o.scale, o.std ? 1 : 0, o.minLength].join('|');
        const url = '/api/runs/' + enc(c.id) + '/betti?scale=' + o.scale + '&standardised=' + (o.std ? 'true' : 'false') + '&min_length=' + o.minLength;
        refreshCurve(c, 'bettiSlot', key, url, (res) => ({
          setting: key, key: key + '|' + (res.steps || []).length, opts: o, steps: res.steps || [], betti: res.betti || [],
          persistent: res.persistent || [], rule: res.scale_rule || ruleText(o), pos: new Map((res.steps || []).map((s, i) => [s, i])),
        }), (e) => {
          setOnPage(c, 'betti-store', { data: { key: (e.data ? e.data.key : key) + (e.error ? '|error' : '') } });
          setOnPage(c, 'betti-rule', { children: bettiRule(c) });
          TW.bumpTick();
        });
        const d = TW.bettiCurve(c);
        token = { key: d ? d.key : key + '|loading' };
      }
      return [token, bettiRule(c), scaleLabel, stdOpts];
    },

    // Neighbourhood panel's k -> the curve (token store); the cloud colouring reads TW.view.k.
    run_knn: function (k, ver, run, meta) {
      if (!meta || meta.kind !== 'run') throw STOP();
      const c = TW.cache(meta.run_id);
      k = Number(k) || TW.KNN_DEFAULT;
      c.knnK = k;
      TW.setQuery(pathOf(meta), { k: k === TW.KNN_DEFAULT ? null : k });
      let token = { key: 'k10' };
      if (k !== TW.KNN_DEFAULT) {
        refreshCurve(c, 'knnSlot', 'k' + k, '/api/runs/' + enc(c.id) + '/neighbourhood?k=' + k,
          (res) => ({ key: 'k' + k + '|' + (res.steps || []).length, k: k, steps: res.steps || [], mean: res.mean || [],
            pos: new Map((res.steps || []).map((s, i) => [s, i])) }),
          (e) => {
            setOnPage(c, 'knn-store', { data: { key: (e.data ? e.data.key : 'k' + k) + (e.error ? '|error' : '') } });
            setOnPage(c, 'knn-note', { children: knnNote(c) });
            TW.bumpTick();
          });
        const d = TW.knnCurve(c);
        token = { key: d ? d.key : 'k' + k + '|loading' };
      }
      return [token, knnNote(c)];
    },
  });
})();
