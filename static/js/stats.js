// The creator dashboard: GET /api/sessions/{id}/stats drawn with plotly.js (served by
// the app from the plotly Python package). Refreshes every 5 s while the show is live.

import { api, session } from './api.js';
import { mountAuth } from './auth.js';
import { $, duration, h, money } from './format.js';

const sessionId = Number(location.pathname.split('/').filter(Boolean)[1]);
const REFRESH_MS = 5000;
const COLORS = { media: '#ff3d68', sockets: '#9aa3b2', pin: 'rgba(62, 207, 142, 0.18)' };
// A fresh object per chart: plotly writes into the layout it is given (axis types).
const layout = (xaxis = {}, yaxis = {}, more = {}) => ({
  paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)',
  font: { color: '#e9ecf1' }, margin: { l: 48, r: 16, t: 8, b: 40 },
  legend: { orientation: 'h', y: -0.2 },
  xaxis: { gridcolor: '#2a2f3a', ...xaxis },
  yaxis: { gridcolor: '#2a2f3a', rangemode: 'tozero', ...yaxis },
  ...more,
});
const CONFIG = { displayModeBar: false, responsive: true };
let timer = null;

function gmvText(gmv) {
  const parts = Object.entries(gmv || {}).map(([currency, minor]) => money(minor, currency));
  return parts.length ? parts.join(' + ') : '–';
}

const percent = (x) => `${(x * 100).toFixed(1)} %`;

/** Text for plotly, which renders a subset of HTML in labels (links, <b>, <br>): a
 * brand's product title must show as typed, not as markup. */
const plain = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function kpis(stats) {
  const a = stats.audience;
  const f = stats.funnel.session;
  const v = stats.fans.viewers;
  const items = [
    ['peak viewers', a.peak_viewers], ['viewers', a.viewers],
    ['average watch', duration(a.average_watch_s)], ['median watch', duration(a.median_watch_s)],
    ['orders', f.orders], ['units', f.units], ['GMV', gmvText(f.gmv_minor)],
    ['new followers', stats.fans.followers_gained ?? '—'], // the host's only
    ['returning / new / guests', `${v.returning} / ${v.new} / ${v.guests}`],
  ];
  $('#kpis').replaceChildren(...items.map(([label, value]) =>
    h('div', { class: 'stat' }, h('b', {}, String(value)), label)));
}

function viewersChart(stats) {
  const curve = stats.audience.curve;
  const x = curve.map((c) => new Date(c.second * 1000));
  const now = Date.now();
  const shapes = stats.funnel.pins.map((p) => ({
    type: 'rect', xref: 'x', yref: 'paper', y0: 0, y1: 1, line: { width: 0 },
    x0: new Date(p.start_ms), x1: new Date(p.end_ms ?? now), fillcolor: COLORS.pin,
  }));
  const annotations = stats.funnel.pins.map((p) => ({
    x: new Date(p.start_ms), y: 1, yref: 'paper', text: plain(p.title), showarrow: false,
    xanchor: 'left', yanchor: 'top', font: { size: 11, color: '#3ecf8e' },
  }));
  const drops = stats.audience.drop_offs;
  Plotly.react('chart-viewers', [
    { x, y: curve.map((c) => c.media_viewers), name: 'watching video', type: 'scatter',
      mode: 'lines', line: { color: COLORS.media, shape: 'hv' } },
    { x, y: curve.map((c) => c.sockets), name: 'in the room', type: 'scatter', mode: 'lines',
      line: { color: COLORS.sockets, shape: 'hv', dash: 'dot' } },
    { x: drops.map((d) => new Date(d.second * 1000)), y: drops.map((d) => d.viewers_before),
      name: 'drop-off', mode: 'markers', marker: { color: '#ffb020', size: 10, symbol: 'x' },
      text: drops.map((d) => `${d.leaves} left`) },
  ], layout({ type: 'date' }, {}, { shapes, annotations }), CONFIG);
}

function retentionChart(stats) {
  const points = stats.audience.retention;
  Plotly.react('chart-retention', [{
    x: points.map((p) => p.t), y: points.map((p) => p.share * 100), type: 'scatter',
    mode: 'lines', fill: 'tozeroy', line: { color: COLORS.media }, name: 'still watching',
  }], layout(
    { type: 'linear', title: { text: 'seconds after joining' } },
    { title: { text: '% still watching' }, range: [0, 100] },
  ), CONFIG);
}

function funnelChart(stats) {
  const pins = stats.funnel.pins;
  const labels = pins.map((p, i) => plain(`${i + 1}. ${p.title}`));
  const bar = (key, name, color) => ({ x: labels, y: pins.map((p) => p[key]), name, type: 'bar',
    marker: { color } });
  Plotly.react('chart-funnel', [
    bar('impressions', 'saw the card', '#9aa3b2'),
    bar('clicks', 'tapped', '#ffb020'),
    bar('orders', 'ordered', COLORS.media),
  ], layout({ type: 'category' }, {}, { barmode: 'group' }), CONFIG);
}

function tables(stats) {
  $('#pins').replaceChildren(...stats.funnel.pins.map((p, i) => h('tr', {},
    h('td', {}, i + 1), h('td', {}, p.title),
    h('td', { class: 'num' }, `${p.viewers_at_start} → ${p.peak_viewers}`),
    h('td', { class: 'num' }, p.impressions), h('td', { class: 'num' }, p.clicks),
    h('td', { class: 'num' }, p.orders), h('td', { class: 'num' }, p.units),
    h('td', { class: 'num' }, gmvText(p.gmv_minor)),
    h('td', { class: 'num' }, percent(p.conversion_rate)))));
  const drops = stats.audience.drop_offs;
  $('#drop-offs').replaceChildren(...(drops.length ? drops.map((d) => {
    const cause = d.after[0];
    const what = cause
      ? ` after ${cause.kind}${cause.title ? ` (${cause.title})` : ''}${cause.reason ? ` (${cause.reason})` : ''}`
      : '';
    return h('li', {}, `${new Date(d.second * 1000).toLocaleTimeString()}: ${d.leaves} of `
      + `${d.viewers_before} viewers left${what}`);
  }) : [h('li', { class: 'muted' }, 'No drop-off spikes.')]));
  const reasons = Object.entries(stats.audience.leave_reasons)
    .map(([reason, n]) => `${reason}: ${n}`).join(' · ');
  $('#reasons').textContent = reasons ? `Why viewers left: ${reasons}` : '';
}

async function load() {
  clearTimeout(timer);
  if (!session.user()) {
    $('#message').textContent = 'Sign in as the host (or a brand on the shelf) to see the stats.';
    $('#report').hidden = true;
    return;
  }
  let stats;
  try {
    stats = await api('GET', `/api/sessions/${sessionId}/stats`);
  } catch (err) {
    $('#message').textContent = err.message;
    $('#report').hidden = true;
    return;
  }
  $('#message').textContent = '';
  $('#report').hidden = false;
  $('#title').textContent = stats.session.title;
  $('#status').textContent = stats.session.status;
  $('#status').className = `badge ${stats.session.status === 'live' ? 'live' : ''}`;
  $('#updated').textContent = `as of ${new Date(stats.session.generated_at).toLocaleTimeString()}`;
  kpis(stats);
  viewersChart(stats);
  retentionChart(stats);
  funnelChart(stats);
  tables(stats);
  if (stats.session.status === 'live') timer = setTimeout(load, REFRESH_MS);
}

mountAuth($('#auth'), { roles: ['host', 'brand'], prompt: 'Sign in' });
window.addEventListener('liveshelf:auth', load);
window.addEventListener('load', load); // after the deferred plotly script
