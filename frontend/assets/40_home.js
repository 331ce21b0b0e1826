/* topowatch dashboard — the runs table on the home page (live, no server round trip). */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});
  const selected = new Set(); // run ids, in the order they were ticked
  TW.homeSelected = selected;

  function esc(s) {
    return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch]));
  }

  function updateCompareButton() {
    const n = selected.size;
    TW.setProps('compare-button', { disabled: n < 2, children: n >= 2 ? 'Compare ' + n + ' runs' : 'Compare' });
  }

  function progress(run) {
    const total = run.total_steps || 0;
    const done = Math.min(run.steps_done || 0, total || Infinity);
    const pct = total ? Math.round((100 * done) / total) : 0;
    return '<div class="steps-cell"><div class="progress" title="' + pct + '%"><div class="progress-bar status-' + esc(run.status) + '" style="width:' + pct + '%"></div></div>' +
      '<span class="num">' + done + ' / ' + (total || '–') + '</span></div>';
  }

  // Analysed frames; "11 / 16" while snapshots wait for analysis (the newest first, then back-filled).
  function framesCell(r) {
    const f = r.frames || 0, s = r.snapshots || 0;
    if (s > f) {
      return '<td class="num frames backlog" title="' + (s - f) + ' snapshot' + (s - f === 1 ? '' : 's') + ' waiting for analysis">' +
        '<span class="analysing-dot" aria-hidden="true"></span>' + f + ' / ' + s + '</td>';
    }
    return '<td class="num frames">' + f + '</td>';
  }

  TW.renderRuns = function (runs) {
    const el = document.getElementById('runs-table');
    if (!el) return;
    if (!el.__twInit) { // `/?select=a,b` preselects runs (the run page's "Compare with…")
      el.__twInit = true;
      selected.clear();
      const pre = new URLSearchParams(window.location.search).get('select');
      if (pre) pre.split(',').forEach((id) => id && selected.add(id));
    }
    const ids = new Set(runs.map((r) => r.id));
    Array.from(selected).forEach((id) => { if (!ids.has(id)) selected.delete(id); });
    let html;
    if (!runs.length) {
      html = '<div class="empty-state"><p><strong>No runs yet.</strong></p><p class="muted">Start one with <a href="/new" data-nav>New run</a>, ' +
        'or launch a paper pair (small vs large learning rate) from the same page.</p></div>';
    } else {
      const rows = runs.map((r) => {
        const cfg = r.config || {};
        const href = '/runs/' + encodeURIComponent(r.id);
        const checked = selected.has(r.id) ? ' checked' : '';
        const opt = esc(cfg.optimizer || '–') + (cfg.optimizer === 'momentum' && cfg.momentum ? ' <span class="muted">' + esc(cfg.momentum) + '</span>' : '');
        // a stopped run's note (why it stopped) is not an error
        const cls = r.status === 'stopped' ? 'row-note' : 'row-error';
        const err = r.error ? '<div class="' + cls + '" title="' + esc(r.error) + '">' + esc(r.error) + '</div>' : '';
        return '<tr data-run-id="' + esc(r.id) + '" class="run-row' + (checked ? ' selected' : '') + '">' +
          '<td class="sel"><input type="checkbox" class="run-select" aria-label="select run ' + esc(r.id) + '" value="' + esc(r.id) + '"' + checked + '></td>' +
          '<td class="run"><a href="' + href + '" data-nav class="run-link">' + esc(r.id) + '</a>' + err + '</td>' +
          '<td><span class="badge badge-' + esc(r.status) + '">' + esc(r.status) + '</span></td>' +
          '<td>' + esc(r.preset || cfg.preset || '–') + '</td>' +
          '<td>' + opt + '</td>' +
          '<td class="num">' + esc(TW.fmtNum(cfg.lr)) + '</td>' +
          '<td class="num">' + esc(r.width || cfg.width || '–') + '</td>' +
          '<td class="steps">' + progress(r) + '</td>' +
          framesCell(r) +
          (r.started_at ? '<td class="time" title="started ' + esc(r.started_at) + '">' + esc(TW.fmtTime(r.started_at)) + '</td>'
            : '<td class="time" title="' + esc(r.status === 'queued' ? 'not started yet' : 'never started') + (r.created_at ? ' (created ' + esc(r.created_at) + ')' : '') + '">—</td>') +
          '</tr>';
      }).join('');
      html = '<table class="table"><thead><tr><th class="sel"></th><th>Run</th><th>Status</th><th>Preset</th><th>Optimizer</th>' +
        '<th class="num">lr</th><th class="num">Width</th><th>Steps</th><th class="num">Frames</th><th>Started</th></tr></thead><tbody>' +
        rows + '</tbody></table>';
    }
    if (el.__twHtml !== html) {
      el.innerHTML = html;
      el.__twHtml = html;
    }
    el.classList.remove('stale');
    updateCompareButton();
  };

  TW.renderRunsError = function (e) {
    const el = document.getElementById('runs-table');
    if (!el) return;
    if (!el.__twHtml) {
      el.innerHTML = '<div class="empty-state"><p><strong>Runs are not available.</strong></p><p class="muted">' + esc(e && e.message) + ' — retrying.</p></div>';
      el.__twHtml = null;
    } else {
      el.classList.add('stale');
    }
  };

  document.addEventListener('change', (ev) => {
    const cb = ev.target;
    if (!cb.classList || !cb.classList.contains('run-select')) return;
    if (cb.checked) selected.add(cb.value); else selected.delete(cb.value);
    const tr = cb.closest('tr');
    if (tr) tr.classList.toggle('selected', cb.checked);
    // keep the cached HTML in sync so the next poll does not undo the tick
    const el = document.getElementById('runs-table');
    if (el) el.__twHtml = null;
    updateCompareButton();
  });

  document.addEventListener('click', (ev) => {
    const btn = ev.target.closest && ev.target.closest('#compare-button');
    if (btn) {
      if (selected.size >= 2) TW.navigate('/compare?runs=' + Array.from(selected).map(encodeURIComponent).join(','));
      return;
    }
    // a click anywhere on a row (not on its checkbox or link) opens the run
    const tr = ev.target.closest && ev.target.closest('#runs-table tr.run-row');
    if (tr && !ev.target.closest('input, a, label') && !(window.getSelection && String(window.getSelection()))) {
      TW.navigate('/runs/' + encodeURIComponent(tr.getAttribute('data-run-id')));
    }
  });
})();
