// The ops dashboard: a table of projectors, replays with their progress, charts of the last
// hour (uPlot, vendored: see api/assets.py) and live updates over server-sent events.
// Everything here is served by bloghub; nothing is loaded from outside.
(function () {
  'use strict';
  // Okabe-Ito: told apart by people with any common colour-vision deficiency.
  const COLORS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9',
    '#000000', '#8c6d1f'];
  const series = {};   // group -> [{at, lag, lag_seconds, rate}]
  const charts = {};   // chart key -> {plot, groups}
  const HOUR = 3600;

  const el = (tag, attrs, text) => {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => n.setAttribute(k, v));
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  };
  const fmt = (v, digits) => (v === null || v === undefined ? '–'
    : Number(v).toLocaleString('en', { maximumFractionDigits: digits || 0 }));
  // A group is "<prefix>.<projector>.g<generation>" (a prefix never holds a dot).
  const label = (group) => group.split('.').slice(-2).join(' ');
  // A group keeps the colour it was first given, on every chart, while the page is open.
  const colours = {};
  const colour = (group) => (colours[group] = colours[group]
    || COLORS[Object.keys(colours).length % COLORS.length]);

  const clock = (at) => new Date(at * 1000).toLocaleTimeString('en-GB');

  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    if (s < 90) return Math.max(0, Math.round(s)) + ' s';
    if (s < 90 * 60) return Math.round(s / 60) + ' min';
    return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  }

  function addPoint(group, sample, previous) {
    const list = (series[group] = series[group] || []);
    if (list.length && list[list.length - 1].at >= sample.at) return false;
    let rate = null;
    if (previous && sample.at > previous.at) {
      rate = Math.max(0, sample.applied - previous.applied) / (sample.at - previous.at);
    }
    list.push({ at: sample.at, lag: sample.lag, lag_seconds: sample.lag_seconds, rate });
    const cutoff = sample.at - HOUR;
    while (list.length && list[0].at < cutoff) list.shift();
    return true;
  }

  // uPlot wants one x array and one y array per series, aligned: the sampler observes every
  // group in the same beat, so most instants are shared; a gap is null and is spanned.
  function aligned(groups, field) {
    const xs = [...new Set(groups.flatMap((g) => series[g].map((p) => p.at)))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = groups.map((g) => {
      const column = new Array(xs.length).fill(null);
      series[g].forEach((p) => { column[index.get(p.at)] = p[field]; });
      return column;
    });
    return [xs, ...ys];
  }

  function options(groups, unit, digits, width, fill) {
    return {
      width, height: 200,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [
        { label: 'time', value: (u, v) => (v === null ? '–' : clock(v)) },
        ...groups.map((g) => ({
          label: label(g), stroke: colour(g), width: 2, spanGaps: true,
          fill: fill ? colour(g) + '26' : undefined, points: { show: false },
          value: (u, v) => (v === null ? '–' : fmt(v, digits) + unit),
        })),
      ],
      axes: [
        { space: 70, values: (u, ticks) => ticks.map((t) => clock(t)) },
        { size: 56, values: (u, ticks) => ticks.map((t) => fmt(t, digits)) },
      ],
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
    };
  }

  function draw(key, holder, groups, field, unit, digits, fill) {
    const ready = groups.filter((g) => series[g].some((p) => p[field] !== null));
    const known = charts[key];
    if (known && known.groups === ready.join('|')) {
      known.plot.setData(aligned(ready, field));
      return;
    }
    if (known) known.plot.destroy();
    holder.replaceChildren();
    delete charts[key];
    if (!ready.length) { holder.append(el('div', { class: 'empty' }, 'no samples yet')); return; }
    const width = Math.max(300, (holder.clientWidth || 600) - 4);
    const plot = new uPlot(options(ready, unit, digits, width, fill), aligned(ready, field), holder);
    charts[key] = { plot, groups: ready.join('|') };
  }

  function drawCharts() {
    const groups = Object.keys(series).sort();
    draw('lag', document.querySelector('[data-chart="lag"] .plot'), groups, 'lag', '', 0, false);
    draw('rate', document.querySelector('[data-chart="rate"] .plot'), groups, 'rate', '/s', 1, false);
    const box = document.getElementById('lag-seconds');
    for (const g of groups) {
      let figure = box.querySelector(`figure[data-group="${CSS.escape(g)}"]`);
      if (!figure) {
        figure = el('figure', { 'data-chart': 'lag-seconds', 'data-group': g });
        figure.append(el('figcaption', {}, label(g) + ': lag (seconds)'), el('div', { class: 'plot' }));
        box.append(figure);
      }
      draw('lag-seconds:' + g, figure.querySelector('.plot'), [g], 'lag_seconds', ' s', 2, true);
    }
  }

  // done/total/events_per_s/eta_s come from the replay itself when it publishes them; until
  // then they are estimated from its consumer group, as the projectors table shows it.
  function progress(replay, rows) {
    const row = rows.find((p) => p.projector === replay.projector && p.generation === replay.generation);
    let { done, total, events_per_s: rate, eta_s: eta } = replay;
    const estimated = (done === undefined || done === null || !total) && row && row.partitions.length;
    if (estimated) {
      total = row.partitions.reduce((n, p) => n + Math.max(0, p.end_offset - (p.log_start || 0)), 0);
      done = Math.max(0, total - row.partitions.reduce((n, p) => n + (p.lag || 0), 0));
    }
    if ((rate === undefined || rate === null) && row) rate = row.events_per_s;
    if ((eta === undefined || eta === null) && rate > 0 && total) eta = (total - done) / rate;
    return { done, total, rate, eta, estimated };
  }

  function renderReplays(replays, migrations, rows) {
    const list = document.getElementById('replays');
    list.replaceChildren();
    if (!replays.length && !migrations.length) list.append(el('li', {}, 'none'));
    for (const m of migrations) {
      // bloghub migrate: a read model moving to another database, phase by phase.
      const item = el('li', { class: 'replay migration', 'data-projector': m.projector, 'data-phase': m.phase });
      item.append(el('div', { class: 'what' },
        `${m.projector}: moving to another database, phase ${m.phase} of 4 (${m.phase_name})`));
      const bar = el('progress', { max: 4 });
      bar.value = m.phase;
      item.append(bar, el('div', { class: 'figures' },
        `reads from the ${m.reads_from} · writes ${m.writes.join(' and ')} · target ${m.target}`));
      list.append(item);
    }
    for (const r of replays) {
      const p = progress(r, rows);
      const item = el('li', { class: 'replay', 'data-projector': r.projector, 'data-generation': r.generation });
      item.append(el('div', { class: 'what' }, `${r.projector}: generation ${r.generation} ${r.state}`));
      const bar = el('progress', { max: p.total || 1 });
      if (p.total) bar.value = Math.min(p.done, p.total);  // no value: an indeterminate bar
      const share = p.total ? ' (' + fmt((100 * p.done) / p.total, 1) + ' %)' : '';
      const figures = el('div', { class: 'figures' },
        (p.total ? `${fmt(p.done)} of ${fmt(p.total)} events${share}` : 'progress not known yet') +
        ` · ${fmt(p.rate, 1)} events/s · ETA ${duration(p.eta)}`);
      if (p.estimated) figures.title = 'estimated from the consumer group of this generation';
      item.append(bar, figures);
      list.append(item);
    }
  }

  function renderProjectors(snap) {
    const body = document.querySelector('#projectors tbody');
    body.replaceChildren();
    const parts = document.getElementById('partitions');
    parts.replaceChildren();
    for (const p of snap.projectors) {
      const tr = el('tr', { 'data-projector': p.projector, 'data-generation': p.generation });
      const role = p.serving ? '' : p.state === 'BUILT' ? ' (built)' : ' (building)';
      tr.append(el('td', {}, p.projector + role),
        el('td', { class: 'n' }, p.generation),
        el('td', {}, '')); // state cell filled below
      // Why it waits (the store, or an event newer than the code) shows on hover.
      const why = (p.waiting || []).map((w) => `${w.where}: ${w.detail}`).join('\n');
      tr.lastChild.append(el('span', { class: 'state ' + p.state, title: why }, p.state));
      tr.append(el('td', { class: 'instances' }, String(p.instances.length)),
        el('td', { class: 'n rate' }, fmt(p.events_per_s, 1)),
        el('td', { class: 'n lag' + (p.lag > 0 ? ' lagging' : '') }, fmt(p.lag)),
        el('td', { class: 'n lag-seconds' }, fmt(p.lag_seconds, 2)),
        el('td', { class: 'n' }, fmt(p.dead_letters)));
      body.append(tr);
      const table = el('table', { 'data-group': p.group });
      const head = el('tr');
      ['topic', 'partition', 'end', 'committed', 'lag', 'lag s'].forEach((h, i) =>
        head.append(el('th', i ? { class: 'n' } : {}, h)));
      table.append(head);
      for (const row of p.partitions) {
        const r = el('tr');
        r.append(el('td', {}, row.topic), el('td', { class: 'n' }, row.partition),
          el('td', { class: 'n' }, fmt(row.end_offset)), el('td', { class: 'n' }, fmt(row.committed)),
          el('td', { class: 'n' + (row.lag > 0 ? ' lagging' : '') }, fmt(row.lag)),
          el('td', { class: 'n' }, fmt(row.lag_seconds, 2)));
        table.append(r);
      }
      parts.append(el('h3', {}, p.group), table);
      if (p.sampled_at) {
        const added = addPoint(p.group, { at: p.sampled_at, lag: p.lag, lag_seconds: p.lag_seconds,
          applied: 0 }, null);
        if (added) series[p.group][series[p.group].length - 1].rate = p.events_per_s;
      }
    }
  }

  function renderDeadLetters(snap) {
    document.getElementById('dead-total').textContent = '(' + fmt(snap.dead_letters.total) + ')';
    const dead = document.querySelector('#dead tbody');
    dead.replaceChildren();
    for (const d of snap.dead_letters.latest) {
      const r = el('tr');
      r.append(el('td', {}, new Date(d.timestamp_ms).toLocaleTimeString()), el('td', {}, d.projector),
        el('td', {}, d.origin), el('td', {}, d.type || '?'), el('td', {}, d.error));
      dead.append(r);
    }
  }

  function renderLive(snap) {
    const live = document.querySelector('#live-clients tbody');
    live.replaceChildren();
    for (const p of (snap.live || { processes: [] }).processes) {
      const r = el('tr');
      r.append(el('td', {}, p.process), el('td', { class: 'n' }, fmt(p.clients)),
        el('td', { class: 'n' }, fmt(p.users)));
      live.append(r);
    }
  }

  function render(snap) {
    document.getElementById('window').textContent = snap.window_s;
    document.getElementById('updated').textContent =
      'updated ' + new Date(snap.at * 1000).toLocaleTimeString();
    document.getElementById('database').hidden = snap.database_reachable !== false;
    document.getElementById('redis').hidden = snap.redis_reachable !== false;
    renderProjectors(snap);
    renderDeadLetters(snap);
    renderReplays(snap.replays, snap.migrations || [], snap.projectors);
    renderLive(snap);
    drawCharts();
  }

  async function loadHistory() {
    const answer = await fetch('/ops/api/history?minutes=60', { credentials: 'same-origin' });
    if (!answer.ok) return;
    const { series: all } = await answer.json();
    for (const [group, samples] of Object.entries(all)) {
      samples.forEach((s, i) => addPoint(group, s, i ? samples[i - 1] : null));
    }
  }

  function connect() {
    const live = document.getElementById('live');
    const source = new EventSource('/ops/api/stream');
    source.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
    source.onmessage = (event) => render(JSON.parse(event.data));
    source.onerror = () => { live.textContent = 'reconnecting…'; live.className = 'live off'; };
  }

  window.addEventListener('resize', () => {
    Object.values(charts).forEach(({ plot }) =>
      plot.setSize({ width: Math.max(300, plot.root.parentNode.clientWidth), height: 200 }));
  });
  loadHistory().then(connect);
}());
