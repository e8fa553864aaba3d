// l4lb dashboard — plain browser JavaScript, no build step, no dependencies.
//
// Data: GET /api/v1/status once, then the SSE stream /api/v1/events (a status + rates
// snapshot every second; the first one carries the last minute of rates). With a token
// the page asks for it once (prompt), keeps it in sessionStorage, sends it as a Bearer
// header, and passes it to the event stream as ?token= (EventSource cannot set headers).
// The DOM is updated in place (rows keyed by pool/backend), so a button is never swapped
// out from under a click.

const TOKEN_KEY = 'l4lb-admin-token';
const HISTORY = 60;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  history: [],
  status: null,
  es: null,
  reconnectTimer: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// --- formatting ---

function fmtNum(n) {
  if (n === undefined || n === null) return '–';
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function fmtBytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function fmtAgo(at, now) {
  if (!at) return 'never';
  return `${fmtDuration(Math.max(0, now - at))} ago`;
}

function fmtTime(at) {
  const d = new Date(at);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

// --- API ---

function askToken(message) {
  const t = window.prompt(message || 'This l4lb admin server needs a token:');
  if (t === null) return false;
  state.token = t.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  return true;
}

async function api(path, options = {}, retried = false) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401 && !retried) {
    const again = askToken(state.token ? 'The token was refused. Token:' : 'This l4lb admin server needs a token:');
    if (again) return api(path, options, true);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const msg = body && body.message ? body.message : `HTTP ${res.status}`;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

let toastTimer = 0;
function toast(text, isError = false) {
  const t = $('toast');
  t.textContent = text;
  t.classList.toggle('error', isError);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), isError ? 6000 : 2500);
}

async function act(pool, backend, verb) {
  const path = `/api/v1/pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(backend)}/${verb}`;
  try {
    const result = await api(path, { method: 'POST', body: '{}' });
    if (result && result.pool) {
      updatePool(result.pool, Date.now());
    }
    toast(`${backend}: ${result && result.backend ? result.backend.state : verb}`);
  } catch (err) {
    toast(`${verb} ${backend} failed: ${err.message}`, true);
  }
}

// --- live stream ---

function setLive(text, ok) {
  const b = $('live');
  b.textContent = text;
  b.className = ok ? 'badge badge-ok' : 'badge badge-muted';
}

function connectEvents() {
  if (state.es) state.es.close();
  clearTimeout(state.reconnectTimer);
  const q = state.token ? `?token=${encodeURIComponent(state.token)}` : '';
  const es = new EventSource(`/api/v1/events${q}`);
  state.es = es;
  es.addEventListener('snapshot', (e) => {
    const d = JSON.parse(e.data);
    if (Array.isArray(d.history)) state.history = d.history.slice(-HISTORY);
    else if (d.rates) {
      const last = state.history[state.history.length - 1];
      if (!last || last.at !== d.rates.at) state.history.push(d.rates);
      if (state.history.length > HISTORY) state.history.shift();
    }
    setLive('live', true);
    render(d.status, d.ready);
  });
  es.onerror = () => {
    setLive('reconnecting', false);
    if (es.readyState === EventSource.CLOSED) {
      // Refused (401) or the server went away: check with a plain request, then retry.
      state.reconnectTimer = setTimeout(async () => {
        try {
          const s = await api('/api/v1/status');
          render(s, s.ready);
        } catch {
          /* try again below */
        }
        connectEvents();
      }, 2000);
    }
  };
}

// --- rendering ---

function drawChart(svg, values, opts = {}) {
  const w = 300;
  const h = opts.height || 80;
  const pad = 2;
  const max = Math.max(1, ...values);
  const n = Math.max(values.length, 2);
  const x = (i) => (i * w) / (HISTORY - 1) + (HISTORY - n) * (w / (HISTORY - 1));
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  svg.replaceChildren();
  if (opts.grid !== false) {
    for (const f of [0.25, 0.5, 0.75]) svg.append(svgEl('line', { class: 'grid', x1: 0, x2: w, y1: h * f, y2: h * f }));
  }
  if (values.length === 0) return max;
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  if (values.length === 1) pts.unshift(`${x(-1).toFixed(1)},${y(values[0]).toFixed(1)}`);
  const first = pts[0].split(',')[0];
  const last = pts[pts.length - 1].split(',')[0];
  svg.append(svgEl('path', { class: 'area', d: `M${first},${h} L${pts.join(' L')} L${last},${h} Z` }));
  svg.append(svgEl('polyline', { class: 'line', points: pts.join(' ') }));
  return max;
}

// Injected faults (docs/faults.md) must never go unnoticed: one banner names every listener
// that is down or carries toxics, and what they do.
function renderFaults(listeners) {
  const parts = [];
  for (const l of listeners) {
    const f = l.faults;
    if (!f || !f.active) continue;
    const what = f.toxics.map((t) => `${t.name} (${t.type} ${t.stream}${t.toxicity < 1 ? `, ${Math.round(t.toxicity * 100)}%` : ''})`);
    if (!f.enabled) what.unshift('DOWN');
    parts.push(`${l.name}: ${what.join(', ')}`);
  }
  const b = $('fault-banner');
  b.hidden = parts.length === 0;
  b.textContent = parts.length === 0 ? '' : `Fault injection active — ${parts.join(' · ')}. POST /reset on the fault API removes every fault.`;
}

function render(s, ready) {
  if (!s) return;
  state.status = s;
  const now = s.at;
  $('version').textContent = `v${s.process.version} · pid ${s.process.pid}`;
  $('uptime').textContent = fmtDuration(s.process.uptimeMs);
  $('total-active').textContent = fmtNum(s.process.activeConnections);
  // The shared store of per-source limits, when listeners use one: up, or away in how many processes.
  const store = s.process.sourceLimitStore;
  $('store').hidden = !store;
  if (store) {
    const v = $('store-state');
    v.textContent = store.away === 0 ? 'up' : `away (${store.away} of ${store.processes})`;
    v.title = `${fmtNum(store.errors)} errors, ${fmtNum(store.fallbacks)} fall-backs to local limits`;
  }
  renderFaults(s.listeners);
  const r = state.history[state.history.length - 1];
  $('total-cps').textContent = r ? fmtNum(r.total.connPerSec) : '–';
  $('total-bps').textContent = r ? `${fmtBytes(r.total.bytesPerSec)}/s` : '–';
  if (ready) {
    const b = $('ready');
    b.textContent = ready.ready ? 'ready' : 'not ready';
    b.className = `badge ${ready.ready ? 'badge-ok' : 'badge-bad'}`;
    b.title = ready.ready ? 'every listener is bound and every pool has a backend up' : ready.reasons.join('\n');
  }

  const cps = state.history.map((x) => x.total.connPerSec);
  const bps = state.history.map((x) => x.total.bytesPerSec);
  const act = state.history.map((x) => x.total.active);
  $('cps-max').textContent = `max ${fmtNum(drawChart($('chart-cps'), cps))}`;
  $('bps-max').textContent = `max ${fmtBytes(drawChart($('chart-bps'), bps))}/s`;
  $('active-max').textContent = `max ${fmtNum(drawChart($('chart-active'), act))}`;

  renderListeners(s.listeners);
  renderPools(s.pools, now);
  renderEvents(s.events);
}

function keyed(container, key, create) {
  let node = container.querySelector(`:scope > [data-key="${CSS.escape(key)}"]`);
  if (!node) {
    node = create();
    node.dataset.key = key;
    container.append(node);
  }
  return node;
}

function prune(container, keys) {
  for (const child of [...container.children]) {
    if (child.dataset.key !== undefined && !keys.has(child.dataset.key)) child.remove();
  }
}

function renderListeners(listeners) {
  const box = $('listeners');
  const keys = new Set();
  for (const l of listeners) {
    keys.add(l.name);
    const card = keyed(box, l.name, () => {
      const c = el('div', { class: 'card listener' });
      c.append(
        el('div', { class: 'card-head' }, el('span', { class: 'card-title' }), el('span', { class: 'badge' })),
        el('dl', { class: 'kv' }),
      );
      const spark = svgEl('svg', { class: 'spark', viewBox: '0 0 300 36', preserveAspectRatio: 'none' });
      c.append(spark);
      return c;
    });
    card.dataset.listener = l.name;
    const udp = l.protocol === 'udp';
    card.querySelector('.card-title').textContent = `${l.name} · ${udp ? 'udp ' : ''}${l.address || 'not bound'}`;
    const badge = card.querySelector('.badge');
    badge.textContent = l.listening ? 'listening' : 'closed';
    badge.className = `badge ${l.listening ? 'badge-ok' : 'badge-bad'}`;
    const rate = state.history.length ? state.history[state.history.length - 1].listeners[l.name] : undefined;
    const rejected = Object.values(l.rejected).reduce((a, b) => a + b, 0);
    const kv = card.querySelector('.kv');
    kv.replaceChildren(
      ...pair('Pool', [l.pool, ...l.routePools.filter((p) => p !== l.pool)].filter(Boolean).join(', ') || '–'),
      ...pair(udp ? 'Sessions' : 'Active', fmtNum(l.active), 'active'),
      ...pair(udp ? 'Sessions/s' : 'Connections/s', rate ? fmtNum(rate.connPerSec) : '–'),
      ...pair(udp ? 'Sessions total' : 'Accepted', fmtNum(l.accepted)),
      ...pair(udp ? 'Dropped' : 'Rejected', fmtNum(rejected)),
      ...(udp ? pair('Datagrams in / out', `${fmtNum(l.datagramsUp)} / ${fmtNum(l.datagramsDown)}`) : []),
      ...pair('Bytes in / out', `${fmtBytes(l.bytesUp)} / ${fmtBytes(l.bytesDown)}`),
    );
    const values = state.history.map((x) => (x.listeners[l.name] ? x.listeners[l.name].connPerSec : 0));
    const spark = card.querySelector('svg.spark');
    drawChart(spark, values, { height: 36, grid: false });
  }
  prune(box, keys);
}

function pair(label, value, cls) {
  const dd = el('dd', { text: value });
  if (cls) dd.className = cls;
  return [el('dt', { text: label }), dd];
}

const COLUMNS = [
  ['Backend', 'cell-name'],
  ['State', 'cell-state'],
  ['Weight', 'num'],
  ['Active', 'num cell-active'],
  ['Total', 'num'],
  ['Conn/s', 'num'],
  ['In / out', 'num'],
  ['Connect', 'num'],
  ['Health', 'cell-health'],
  ['', 'cell-actions'],
];

function renderPools(pools, now) {
  const box = $('pools');
  const keys = new Set();
  for (const p of pools) {
    keys.add(p.name);
    updatePool(p, now);
  }
  prune(box, keys);
}

function updatePool(p, now) {
  const box = $('pools');
  const card = keyed(box, p.name, () => {
    const c = el('div', { class: 'pool' });
    const head = el(
      'div', { class: 'pool-head' },
      el('span', { class: 'pool-name' }), el('span', { class: 'muted pool-meta' }), el('span', { class: 'muted pool-mirror' }),
    );
    const table = el('table', { class: 'backends' });
    const thead = el('thead', {}, el('tr', {}, ...COLUMNS.map(([t, cls]) => el('th', { class: cls.includes('num') ? 'num' : '', text: t }))));
    table.append(thead, el('tbody'));
    c.append(head, table);
    return c;
  });
  card.dataset.pool = p.name;
  card.querySelector('.pool-name').textContent = p.name;
  const health = p.healthCheck ? `${p.healthCheck} health check` : 'passive health only';
  card.querySelector('.pool-meta').textContent = `${p.balance} · ${health} · ${p.backendsUp}/${p.backends.length} up`;
  card.querySelector('.pool-mirror').textContent = p.mirror ? mirrorText(p.mirror) : '';
  const tbody = card.querySelector('tbody');
  const keys = new Set();
  const rates = state.history.length ? state.history[state.history.length - 1].backends : {};
  for (const b of p.backends) {
    keys.add(b.name);
    const row = keyed(tbody, b.name, () => createBackendRow(p.name, b.name));
    updateBackendRow(row, b, rates[`${p.name}/${b.name}`], now);
  }
  prune(tbody, keys);
}

/** One line on a pool's mirror: where to, how much, how many mirrored and dropped (and why). */
function mirrorText(m) {
  const entries = Object.entries(m.dropped).filter(([, n]) => n > 0);
  const dropped = entries.reduce((a, [, n]) => a + n, 0);
  const why = entries.map(([r, n]) => `${r} ${fmtNum(n)}`).join(', ');
  return `mirror → ${m.pool} ${m.percent}% · ${fmtNum(m.connections)} mirrored (${fmtNum(m.active)} open) · ${fmtBytes(m.bytes)} copied · ${fmtNum(dropped)} dropped${why ? ` (${why})` : ''}`;
}

function createBackendRow(pool, name) {
  const tr = el('tr', { class: 'backend' });
  tr.dataset.pool = pool;
  tr.dataset.backend = name;
  for (const [label, cls] of COLUMNS) {
    const td = el('td', { class: cls });
    if (label && cls !== 'cell-name' && cls !== 'cell-state') td.dataset.label = label;
    tr.append(td);
  }
  const cells = tr.children;
  cells[0].append(el('div', { class: 'backend-name' }), el('div', { class: 'backend-addr' }));
  cells[1].append(el('span', { class: 'badge state' }));
  cells[8].append(el('div', { class: 'health' }));
  const actions = el('div', { class: 'actions' });
  for (const [verb, text] of [['drain', 'Drain'], ['enable', 'Enable'], ['disable', 'Disable']]) {
    const btn = el('button', { type: 'button', class: verb, text });
    btn.dataset.action = verb;
    btn.addEventListener('click', () => {
      btn.disabled = true;
      act(pool, name, verb);
    });
    actions.append(btn);
  }
  cells[9].append(actions);
  return tr;
}

function updateBackendRow(tr, b, rate, now) {
  const c = tr.children;
  c[0].querySelector('.backend-name').textContent = b.name;
  c[0].querySelector('.backend-addr').textContent = b.name === b.address ? (b.backup ? 'backup' : '') : `${b.address}${b.backup ? ' · backup' : ''}`;
  const badge = c[1].querySelector('.state');
  badge.textContent = b.state;
  badge.className = `badge state state-${b.state}`;
  c[2].textContent = b.weight === b.effectiveWeight ? fmtNum(b.weight) : `${fmtNum(b.effectiveWeight)} / ${fmtNum(b.weight)}`;
  c[3].textContent = fmtNum(b.active);
  c[4].textContent = fmtNum(b.total);
  c[5].textContent = rate ? fmtNum(rate.connPerSec) : '–';
  c[6].textContent = `${fmtBytes(b.bytesIn)} / ${fmtBytes(b.bytesOut)}`;
  c[7].textContent = b.connectMsAvg ? `${b.connectMsAvg.toFixed(1)} ms` : '–';
  const h = c[8].querySelector('.health');
  const parts = [];
  if (b.lastCheckAt) parts.push(el('span', { text: `checked ${fmtAgo(b.lastCheckAt, now)}${b.lastCheckOk === false ? ' (failed)' : ''}` }));
  else parts.push(el('span', { class: 'muted', text: 'no active check' }));
  if (b.failures) parts.push(el('span', { text: ` · ${fmtNum(b.failures)} connect failures` }));
  if (b.lastError) parts.push(el('div', { class: 'err', text: b.lastError }));
  h.replaceChildren(...parts);
  for (const btn of c[9].querySelectorAll('button')) {
    const verb = btn.dataset.action;
    btn.disabled = (verb === 'drain' && b.admin === 'draining') || (verb === 'enable' && b.admin === 'enabled') || (verb === 'disable' && b.admin === 'disabled');
  }
}

function renderEvents(events) {
  const box = $('events');
  if (!events || events.length === 0) return;
  const items = events.slice().reverse().map((e) => {
    const li = el('li', { class: `event event-${e.level}` });
    li.dataset.id = String(e.id);
    const where = [e.pool, e.backend].filter(Boolean).join('/');
    li.append(
      el('time', { datetime: new Date(e.at).toISOString(), text: fmtTime(e.at) }),
      el('span', {}, el('span', { class: `badge level-${e.level}`, text: e.level })),
      el('span', { class: 'msg' }, ...(where ? [el('span', { class: 'where', text: where })] : []), e.message),
    );
    return li;
  });
  const topId = box.firstElementChild && box.firstElementChild.dataset.id;
  if (topId === String(events[events.length - 1].id) && box.children.length === events.length) return;
  box.replaceChildren(...items);
}

// --- start ---

async function start() {
  try {
    const s = await api('/api/v1/status');
    if (s.rates) state.history = [s.rates];
    render(s, s.ready);
  } catch (err) {
    toast(`cannot load status: ${err.message}`, true);
  }
  connectEvents();
}

start();
