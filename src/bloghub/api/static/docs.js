// Renders /openapi.json as a list of operations, grouped by tag. No outside code.
(async function () {
  const doc = await (await fetch('/openapi.json')).json();
  const schemas = (doc.components && doc.components.schemas) || {};
  const el = (tag, attrs, ...kids) => {
    const n = document.createElement(tag);
    Object.assign(n, attrs || {});
    kids.forEach((k) => n.append(k));
    return n;
  };
  const resolve = (s) => (s && s.$ref ? schemas[s.$ref.split('/').pop()] : s);
  document.getElementById('meta').textContent =
    doc.info.description + ' Version ' + doc.info.version + '.';
  const byTag = {};
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([method.toUpperCase(), path, op]);
    }
  }
  const root = document.getElementById('ops');
  for (const [tag, ops] of Object.entries(byTag)) {
    root.append(el('h2', { className: 'tag', textContent: tag }));
    for (const [method, path, op] of ops) {
      const d = el('details');
      d.append(el('summary', {}, el('span', { className: 'm ' + method, textContent: method }),
        el('code', { textContent: path }), ' ' + op.summary + (op.security ? ' 🔒' : '')));
      const body = op.requestBody && resolve(op.requestBody.content['application/json'].schema);
      if (body) d.append(el('p', { textContent: 'Body:' }), el('pre', { textContent: JSON.stringify(body, null, 2) }));
      const codes = Object.keys(op.responses).join(', ');
      d.append(el('p', { textContent: 'Responses: ' + codes }));
      root.append(d);
    }
  }
})();
