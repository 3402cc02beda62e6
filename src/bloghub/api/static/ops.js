// The ops dashboard: a table of projectors, charts of the last hour and live updates over
// server-sent events. Everything here is served by bloghub; nothing is loaded from outside.
(function () {
  'use strict';
  const SVG = 'http://www.w3.org/2000/svg';
  const COLORS = ['#0969da', '#cf222e', '#1f883d', '#8250df', '#bf8700', '#57606a'];
  const series = {};   // group -> [{at, lag, lag_seconds, rate}]
  const HOUR = 3600;

  const el = (tag, attrs, text) => {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => n.setAttribute(k, v));
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  };
  const fmt = (v, digits) => (v === null || v === undefined ? '–'
    : Number(v).toLocaleString('en', { maximumFractionDigits: digits || 0 }));

  function addPoint(group, sample, previous) {
    const list = (series[group] = series[group] || []);
    if (list.length && list[list.length - 1].at >= sample.at) return;
    let rate = null;
    if (previous && sample.at > previous.at) {
      rate = Math.max(0, sample.applied - previous.applied) / (sample.at - previous.at);
    }
    list.push({ at: sample.at, lag: sample.lag, lag_seconds: sample.lag_seconds, rate });
    const cutoff = sample.at - HOUR;
    while (list.length && list[0].at < cutoff) list.shift();
  }

  function drawChart(id, field) {
    const svg = document.getElementById(id);
    svg.replaceChildren();
    const W = 600, H = 180, L = 48, B = 18;
    const all = Object.values(series).flat().filter((p) => p[field] !== null);
    const now = Date.now() / 1000;
    const max = Math.max(1, ...all.map((p) => p[field]));
    const axis = document.createElementNS(SVG, 'path');
    axis.setAttribute('d', `M${L},5 V${H - B} H${W - 5}`);
    axis.setAttribute('class', 'axis'); axis.setAttribute('fill', 'none');
    svg.append(axis);
    [[max, 10], [0, H - B]].forEach(([v, y]) => {
      const t = document.createElementNS(SVG, 'text');
      t.setAttribute('x', 2); t.setAttribute('y', y + 4); t.textContent = fmt(v, 1);
      svg.append(t);
    });
    const label = document.createElementNS(SVG, 'text');
    label.setAttribute('x', W - 60); label.setAttribute('y', H - 4); label.textContent = 'now';
    svg.append(label);
    Object.keys(series).sort().forEach((group, i) => {
      const pts = series[group].filter((p) => p[field] !== null)
        .map((p) => [L + ((p.at - (now - HOUR)) / HOUR) * (W - L - 5),
          H - B - (p[field] / max) * (H - B - 10)]);
      if (!pts.length) return;
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', pts.map((p) => p.map((x) => x.toFixed(1)).join(',')).join(' '));
      line.setAttribute('fill', 'none'); line.setAttribute('stroke', COLORS[i % COLORS.length]);
      line.setAttribute('stroke-width', '1.5'); line.setAttribute('data-group', group);
      svg.append(line);
      const key = document.createElementNS(SVG, 'text');
      key.setAttribute('x', L + 6); key.setAttribute('y', 14 + i * 12);
      key.setAttribute('fill', COLORS[i % COLORS.length]); key.textContent = group;
      svg.append(key);
    });
  }

  function render(snap) {
    document.getElementById('window').textContent = snap.window_s;
    document.getElementById('updated').textContent =
      'updated ' + new Date(snap.at * 1000).toLocaleTimeString();
    const body = document.querySelector('#projectors tbody');
    body.replaceChildren();
    const parts = document.getElementById('partitions');
    parts.replaceChildren();
    for (const p of snap.projectors) {
      const tr = el('tr', { 'data-projector': p.projector, 'data-generation': p.generation });
      tr.append(el('td', {}, p.projector + (p.serving ? '' : ' (building)')),
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
        const list = (series[p.group] = series[p.group] || []);
        const before = list.length;
        addPoint(p.group, { at: p.sampled_at, lag: p.lag, lag_seconds: p.lag_seconds,
          applied: 0 }, null);
        if (list.length > before) list[list.length - 1].rate = p.events_per_s;
      }
    }
    document.getElementById('dead-total').textContent = '(' + snap.dead_letters.total + ')';
    const dead = document.querySelector('#dead tbody');
    dead.replaceChildren();
    for (const d of snap.dead_letters.latest) {
      const r = el('tr');
      r.append(el('td', {}, new Date(d.timestamp_ms).toLocaleTimeString()), el('td', {}, d.projector),
        el('td', {}, d.origin), el('td', {}, d.type || '?'), el('td', {}, d.error));
      dead.append(r);
    }
    const replays = document.getElementById('replays');
    replays.replaceChildren();
    if (!snap.replays.length) replays.append(el('li', {}, 'none'));
    snap.replays.forEach((r) => replays.append(
      el('li', {}, `${r.projector}: generation ${r.generation} ${r.state}`)));
    const live = document.querySelector('#live tbody');
    live.replaceChildren();
    for (const p of (snap.live || { processes: [] }).processes) {
      const r = el('tr');
      r.append(el('td', {}, p.process), el('td', { class: 'n' }, fmt(p.clients)),
        el('td', { class: 'n' }, fmt(p.users)));
      live.append(r);
    }
    ['lag', 'lag_seconds', 'rate'].forEach((f, i) =>
      drawChart(['chart-lag', 'chart-lag-seconds', 'chart-rate'][i], f));
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

  loadHistory().then(connect);
}());
