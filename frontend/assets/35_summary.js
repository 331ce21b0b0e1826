/* topowatch dashboard — the compare page's summary table: one row per run, computed from the frame
 * index already in the browser (TW.phaseStats in 25_curves.js). Returned as Dash component JSON. */
(function () {
  'use strict';
  const TW = (window.topowatch = window.topowatch || {});
  const h = (type, props, children) => TW.h(type, props, children);
  const num = (v) => typeof v === 'number' && Number.isFinite(v);

  const COLUMNS = [
    ['run', 'Run', ''],
    ['lr', 'lr', 'num'],
    ['optimizer', 'Optimizer', ''],
    ['status', 'Status', ''],
    ['exit', 'Phase exit', '', 'first snapshot interval with η·K_emp > 1 (η past η* = 1/K)'],
    ['maxek', 'max η·K_emp', 'num', 'largest η·K_emp over all snapshot intervals; > 1 certifies η > η*'],
    ['kemp', 'K_emp max\u00a0vs\u00a01/\u2060η', 'num', 'largest empirical Lipschitz bound K_emp against 1/η (K_emp > 1/η ⇔ η·K_emp > 1)'],
    ['ratio', 'min distance ratio', 'num', 'min over frames of the smallest pairwise distance ratio |xᵢ′−xⱼ′| / |xᵢ−xⱼ| between snapshots'],
    ['knn', 'min kNN kept', 'num', 'min over frames of the mean share of each neuron\'s 10 step-0 nearest neighbours still among its nearest'],
    ['ftc', 'first topology change', 'num', 'first step whose topology signature differs from step 0'],
    ['loss', 'final train loss', 'num', 'train loss at the last analysed frame'],
  ];

  // The same verdict as the run header (TW.phaseVerdict): green only once every snapshot is analysed.
  function exitCell(ph, v) {
    if (ph.exit) {
      const e = ph.exit;
      const over = e.from_step !== null && e.from_step !== undefined ? 'steps ' + e.from_step + '→' + e.step + ', ' : '';
      return [h('B', { className: 'exit-step' }, 'step ' + e.step), ' ',
        h('Span', { className: 'muted small' }, '(' + over + 'η·K_emp ' + TW.fmtNum(e.eta_k_emp, 3) + ')')];
    }
    return h('Span', { className: v.cls === 'ok' ? 'stayed' : 'muted' }, v.short || '–');
  }

  function row(id, k, c) {
    const run = c.run;
    const ph = TW.phaseStats(c);
    const v = TW.phaseVerdict(ph);
    const cfg = (run && run.config) || {};
    const color = TW.RUN_COLORS[k % TW.RUN_COLORS.length];
    const st = run ? run.status : c.notFound ? 'not-found' : 'unknown';
    const cells = {
      run: [h('Span', { className: 'swatch', style: { background: color } }), ' ',
        h('A', { href: '/runs/' + encodeURIComponent(id), 'data-nav': '1', className: 'run-link' }, id)],
      lr: TW.fmtNum(cfg.lr),
      optimizer: String(cfg.optimizer || '–') + (cfg.optimizer === 'momentum' && cfg.momentum ? ' ' + cfg.momentum : ''),
      status: h('Span', { className: 'badge badge-' + st }, st),
      exit: exitCell(ph, v),
      maxek: ph.maxEk === null ? '–' : h('Span', { className: ph.maxEk > 1 ? 'over' : 'under' }, TW.fmtNum(ph.maxEk, 3)),
      kemp: ph.kmax === null ? '–' : h('Span', { className: ph.invLr !== null && ph.kmax > ph.invLr ? 'over' : 'under' },
        TW.fmtNum(ph.kmax, 4) + (ph.invLr !== null ? ' vs ' + TW.fmtNum(ph.invLr, 4) : '')),
      ratio: TW.fmtNum(ph.minRatio, 3),
      knn: TW.fmtNum(ph.minKnn, 3),
      ftc: num(ph.ftc) ? 'step ' + ph.ftc : h('Span', { className: 'muted' }, run ? 'none' : '–'),
      loss: TW.fmtNum(ph.finalLoss, 4),
    };
    return h('Tr', { 'data-run-id': id, 'data-phase-exit': ph.exit ? String(ph.exit.step) : '', className: 'summary-row phase-' + { warn: 'left', ok: 'kept', pending: 'pending' }[v.cls] },
      COLUMNS.map(([key, , cls]) => h('Td', { className: 'col-' + key + (cls ? ' ' + cls : '') }, cells[key])));
  }

  TW.summaryTable = function (ids) {
    const head = h('Thead', {}, h('Tr', {}, COLUMNS.map(([key, label, cls, title]) =>
      h('Th', { className: 'col-' + key + (cls ? ' ' + cls : ''), title: title || undefined }, label))));
    const body = h('Tbody', {}, ids.map((id, k) => row(id, k, TW.cache(id))));
    return h('Table', { className: 'table summary' }, [head, body]);
  };
})();
