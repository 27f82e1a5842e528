// Gantry's dashboard: one stream of ticks from /api/stream keeps the services, their graphs
// and the profiles current; a service's detail (revisions, events, logs, usage) is fetched
// when it is opened and every ten seconds while it stays open.
'use strict';

// A point is [at, rps, p50, p99, concurrency, desired, ready]; null is a missing figure.
const state = { services: [], profiles: [], points: {}, window: 15 * 60 * 1000, now: Date.now(), selected: null, detail: null };
const $ = (id) => document.getElementById(id);
const svgNS = 'http://www.w3.org/2000/svg';

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Number(v).toFixed(digits);
}

// timeCell shows a time as the browser's local time of day, the full time in a tooltip.
function timeCell(iso) {
  const at = new Date(iso);
  const cell = el('td', { class: 'nowrap', title: iso });
  cell.append(el('time', { datetime: iso, text: Number.isNaN(at.getTime()) ? iso : at.toLocaleTimeString() }));
  return cell;
}

function latest(key) {
  const pts = state.points[key];
  return pts && pts.length ? pts[pts.length - 1] : null;
}

function connect() {
  const es = new EventSource('/api/stream');
  es.addEventListener('tick', (e) => onTick(JSON.parse(e.data)));
  es.onopen = () => { $('status').textContent = 'Live'; };
  es.onerror = () => { $('status').textContent = 'Reconnecting…'; };
}

function onTick(f) {
  state.now = f.at;
  if (f.window) {
    // The first frame of a stream: every point the server keeps.
    state.window = f.window;
    state.points = f.points || {};
  } else {
    for (const [key, pts] of Object.entries(f.points || {})) {
      const all = (state.points[key] = (state.points[key] || []).concat(pts));
      const from = f.at - state.window;
      while (all.length && all[0][0] < from) all.shift();
    }
  }
  if (f.services) {
    state.services = f.services;
    for (const key of Object.keys(state.points)) {
      if (!state.services.some((s) => s.namespace + '/' + s.name === key)) delete state.points[key];
    }
  }
  if (f.profiles) {
    state.profiles = f.profiles || [];
    renderProfiles();
  }
  renderServices();
  if (state.selected) {
    renderCharts();
    if (f.services) renderSplit();
  }
}

function renderServices() {
  const body = $('services').tBodies[0];
  body.replaceChildren();
  $('no-services').hidden = state.services.length > 0;
  for (const s of state.services) {
    const key = s.namespace + '/' + s.name;
    const p = latest(key);
    const open = el('button', { type: 'button', class: 'link', text: key, 'aria-controls': 'detail' });
    open.addEventListener('click', () => select(key));
    const url = s.url ? el('a', { href: s.link || s.url, text: s.url }) : '';
    const row = el('tr', { 'data-service': key },
      el('td', {}, open), el('td', {}, url),
      el('td', { class: 'ready-' + s.ready, text: s.ready + (s.reason ? ' (' + s.reason + ')' : '') }),
      el('td', { text: s.latestRevision || '' }),
      el('td', { class: 'num rps', text: p ? fmt(p[1], 1) : '0.0' }),
      el('td', { class: 'num pods', text: p && p[6] !== null ? String(p[6]) : '0' }));
    if (key === state.selected) row.classList.add('selected');
    body.append(row);
  }
  if (state.selected && !state.services.some((s) => s.namespace + '/' + s.name === state.selected)) {
    state.selected = null;
    $('detail').hidden = true;
  }
}

function renderProfiles() {
  const body = $('profiles').tBodies[0];
  body.replaceChildren();
  $('no-profiles').hidden = state.profiles.length > 0;
  for (const p of state.profiles) {
    const nodes = el('ul');
    for (const n of p.nodes || []) nodes.append(el('li', { text: n.name + ': ' + n.pod + ', ' + n.capacity }));
    body.append(el('tr', { 'data-profile': p.name },
      el('td', { text: p.name }), el('td', { text: p.phase || '' }), el('td', { text: p.selectors || '' }),
      el('td', {}, (p.nodes || []).length ? nodes : 'none')));
  }
}

// renderCharts draws every chart of the selected service over the window.
function renderCharts() {
  const pts = state.points[state.selected] || [];
  const from = state.now - state.window;
  for (const fig of document.querySelectorAll('.chart')) {
    const series = fig.dataset.series.split(',').map(Number);
    let max = 0;
    for (const p of pts) for (const i of series) if (p[i] !== null && p[i] > max) max = p[i];
    const top = max > 0 ? max * 1.1 : 1;
    const svg = fig.querySelector('svg');
    svg.replaceChildren();
    series.forEach((i, n) => {
      const line = document.createElementNS(svgNS, 'polyline');
      line.setAttribute('class', 'line-' + n);
      line.setAttribute('points', pts.filter((p) => p[i] !== null)
        .map((p) => (((p[0] - from) / state.window) * 600).toFixed(1) + ',' + (150 - (p[i] / top) * 145).toFixed(1)).join(' '));
      svg.append(line);
    });
    const last = pts.length ? pts[pts.length - 1] : null;
    const digits = series[0] >= 5 ? 0 : 1;
    const now = series.map((i) => (last ? fmt(last[i], digits) : '–')).join(' / ');
    fig.dataset.max = String(max);
    fig.dataset.latest = last ? series.map((i) => last[i]).join(',') : '';
    fig.querySelector('.latest').textContent = '(now ' + now + ')';
    fig.querySelector('.max').textContent = 'max ' + fmt(max, digits);
    svg.setAttribute('aria-label', fig.querySelector('figcaption').textContent + ', highest ' + fmt(max, digits));
  }
}

function selectedService() {
  return state.services.find((s) => s.namespace + '/' + s.name === state.selected);
}

// renderSplit shows the traffic split and sets the slider to it.
function renderSplit() {
  const s = selectedService();
  if (!s) return;
  const split = $('split');
  split.replaceChildren();
  for (const t of s.traffic || []) {
    if (!t.percent) continue;
    const li = el('li', { text: t.revision + ' ' + t.percent + '%' + (t.tag ? ' (' + t.tag + ')' : '') });
    li.style.width = t.percent + '%';
    split.append(li);
  }
  const revs = (s.revisions || []).slice().reverse();
  for (const id of ['rev-a', 'rev-b']) {
    const sel = $(id);
    const keep = sel.value;
    sel.replaceChildren(...revs.map((r) => el('option', { value: r, text: r })));
    if (revs.includes(keep)) sel.value = keep;
  }
  if (!$('rev-b').dataset.touched) {
    // By default: from the revision with most traffic that is not the newest, to the newest.
    const newest = revs[0];
    const other = (s.traffic || []).filter((t) => t.revision !== newest).sort((a, b) => b.percent - a.percent)[0];
    $('rev-b').value = newest || '';
    $('rev-a').value = other ? other.revision : revs[1] || newest || '';
  }
  if (!sliding) syncSlider();
}

function percentOf(rev) {
  const s = selectedService();
  return (s && s.traffic ? s.traffic : []).filter((t) => t.revision === rev).reduce((n, t) => n + (t.percent || 0), 0);
}

function syncSlider() {
  const v = percentOf($('rev-b').value);
  $('slider').value = String(v);
  $('slider-value').textContent = v + '%';
}

let sliding = false;
let pending = null;

// setTraffic writes the split the slider shows: the second revision gets its value, the
// first the rest.
async function setTraffic() {
  const a = $('rev-a').value, b = $('rev-b').value, v = Number($('slider').value);
  const msg = $('traffic-message');
  if (!a || !b) return;
  if (a === b && v !== 100 && v !== 0) {
    msg.textContent = 'Pick two different revisions to split traffic.';
    return;
  }
  const traffic = a === b ? [{ revisionName: b, percent: 100 }]
    : [{ revisionName: b, percent: v }, { revisionName: a, percent: 100 - v }].filter((t) => t.percent > 0);
  const [ns, name] = state.selected.split('/');
  msg.textContent = 'Updating the route…';
  try {
    const res = await fetch('/api/services/' + ns + '/' + name + '/traffic', {
      method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ traffic }),
    });
    const text = await res.text();
    msg.textContent = res.ok ? 'Traffic set: ' + traffic.map((t) => t.revisionName + ' ' + t.percent + '%').join(', ') : 'Refused: ' + text;
  } catch (err) {
    msg.textContent = 'Failed: ' + err;
  } finally {
    sliding = false;
  }
}

function bindTraffic() {
  $('slider').addEventListener('input', () => {
    sliding = true;
    $('slider-value').textContent = $('slider').value + '%';
  });
  // change fires when a drag ends or a key moves the slider; keys in a row write once.
  $('slider').addEventListener('change', () => {
    sliding = true;
    clearTimeout(pending);
    pending = setTimeout(setTraffic, 400);
  });
  for (const id of ['rev-a', 'rev-b']) {
    $(id).addEventListener('change', () => {
      $('rev-b').dataset.touched = '1';
      syncSlider();
    });
  }
  $('traffic-form').addEventListener('submit', (e) => e.preventDefault());
}

async function select(key) {
  state.selected = key;
  delete $('rev-b').dataset.touched;
  $('traffic-message').textContent = '';
  $('detail').hidden = false;
  $('detail-title').textContent = key;
  renderServices();
  renderCharts();
  renderSplit();
  await loadDetail();
  $('detail-title').scrollIntoView({ block: 'start' });
}

async function loadDetail() {
  const key = state.selected;
  if (!key) return;
  const [ns, name] = key.split('/');
  let d;
  try {
    const res = await fetch('/api/services/' + ns + '/' + name);
    if (!res.ok) return;
    d = await res.json();
  } catch {
    return;
  }
  if (state.selected !== key) return;
  $('detail-url').replaceChildren(d.url ? el('a', { href: d.link || d.url, text: d.url }) : '');
  const revs = $('revisions').tBodies[0];
  revs.replaceChildren(...(d.revisionList || []).map((r) => el('tr', {},
    el('td', { text: r.name }), el('td', { class: 'ready-' + r.ready, text: r.ready }), el('td', { class: 'num', text: r.percent + '%' }),
    el('td', { text: r.tags || '' }), el('td', { class: 'wrap', text: r.image }), timeCell(r.created))));
  const u = d.usage;
  $('usage').textContent = u
    ? u.pods + ' serverless pods (' + u.running + ' running), ' + fmt(u.vcpuSeconds / 3600, 3) + ' vCPU-hours, ' +
      fmt(u.gbSeconds / 3600, 3) + ' GB-hours: $' + fmt(u.cost, 4)
    : 'No serverless usage this month (only pods that a serverless profile selects are metered).';
  const evs = $('events').tBodies[0];
  evs.replaceChildren(...(d.events || []).map((e) => el('tr', {},
    timeCell(e.time), el('td', { text: e.type }), el('td', { text: e.reason }), el('td', { class: 'wrap', text: e.object }), el('td', { class: 'wrap', text: e.message }))));
  const logs = $('logs');
  logs.replaceChildren();
  for (const l of d.logs || []) {
    logs.append(el('h4', { text: l.pod || 'pods' }), el('pre', { text: l.error ? l.error : (l.lines || []).join('\n') || '(no output)' }));
  }
  if (!(d.logs || []).length) logs.append(el('p', { text: 'No running pods.' }));
}

document.addEventListener('DOMContentLoaded', () => {
  bindTraffic();
  connect();
  setInterval(loadDetail, 10000);
});
