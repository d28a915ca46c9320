// The creator dashboard: GET /api/sessions/{id}/stats drawn with plotly.js (served by
// the app from the plotly Python package). Refreshes every 5 s while the show is live.

import { api, session } from './api.js';
import { mountAuth } from './auth.js';
import { $, duration, h, money } from './format.js';
import { errorMessage } from './messages.js';

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

// -- why viewers left, in words ------------------------------------------------------

/** Why the publisher stopped (``live.paused``'s reason, media/protocol.py). */
const PAUSED = {
  deleted: 'the host paused the stream',
  ended: 'the host ended the show',
  ice_failed: "the host's connection dropped",
  timeout: "the host's connection dropped",
  failed: "the host's connection dropped",
  closed: "the host's connection dropped",
  shutdown: 'the server restarted',
  moved: 'the stream moved to another server',
};

/** What happened just before a drop-off, in words. */
function momentWords(moment) {
  const title = moment.title ? `“${moment.title}”` : 'a product';
  switch (moment.kind) {
    case 'pin.start': return `${title} was pinned`;
    case 'pin.end': return `${title} was unpinned`;
    case 'flash.start': return 'a flash sale started';
    case 'flash.end': return 'a flash sale ended';
    case 'live.started': return 'the stream started';
    case 'live.paused': return PAUSED[moment.reason] || 'the stream paused';
    default: return 'something changed on the show';
  }
}

function dropOffWords(d) {
  const time = new Date(d.second * 1000).toLocaleTimeString();
  const cause = d.after[0];
  let why = '';
  if (cause) {
    const gap = Math.round(cause.seconds_before);
    why = gap >= 2 ? `, ${gap} s after ${momentWords(cause)}` : `, right after ${momentWords(cause)}`;
  }
  const who = d.leaves === 1 ? '1 viewer' : `${d.leaves} viewers`;
  return `${time}: ${who} of ${d.viewers_before} left${why}.`;
}

/** Why a viewer's video stopped (``audience.leave_reasons``), for "n viewers …". */
const LEFT_BECAUSE = {
  deleted: 'closed the page',
  closed: 'closed the page',
  failed: 'lost their connection',
  lost: 'lost their connection',
  timeout: 'could not connect',
  codec_changed: 'were cut off when the stream changed format',
  ended: 'stayed until the show ended',
  shutdown: 'were cut off by a server restart',
  moved: 'were moved to another server',
  watching: 'are still watching',
};

function reasonsWords(leaveReasons) {
  const counts = new Map();
  for (const [reason, n] of Object.entries(leaveReasons || {})) {
    const words = LEFT_BECAUSE[reason] || 'left for another reason';
    counts.set(words, (counts.get(words) || 0) + n);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([words, n]) => {
    const verb = n === 1 ? words.replace(/^are /, 'is ').replace(/^were /, 'was ') : words;
    return `${n === 1 ? '1 viewer' : `${n} viewers`} ${verb}`;
  });
}

const PIN_COLUMNS = ['#', 'Product', 'Viewers', 'Seen', 'Tapped', 'Orders', 'Units', 'GMV', 'Conversion'];

function tables(stats) {
  // Each cell carries its column's name: on a phone the rows are cards (stats.css).
  const cell = (i, value, num = true) => h('td', { class: num ? 'num' : null,
    'data-label': PIN_COLUMNS[i] }, value);
  $('#pins').replaceChildren(...(stats.funnel.pins.length ? stats.funnel.pins.map((p, i) => h('tr', {},
    cell(0, i + 1, false), cell(1, p.title, false),
    cell(2, `${p.viewers_at_start} → ${p.peak_viewers}`),
    cell(3, p.impressions), cell(4, p.clicks), cell(5, p.orders), cell(6, p.units),
    cell(7, gmvText(p.gmv_minor)), cell(8, percent(p.conversion_rate))))
    : [h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No product was pinned yet.'))]));
  const drops = stats.audience.drop_offs;
  $('#drop-offs').replaceChildren(...(drops.length
    ? drops.map((d) => h('li', {}, dropOffWords(d)))
    : [h('li', { class: 'muted' }, 'No moment where many viewers left at once.')]));
  const reasons = reasonsWords(stats.audience.leave_reasons);
  $('#reasons').replaceChildren(...(reasons.length
    ? [h('span', {}, 'Why viewers left: '), reasons.join(' · '), '.'] : []));
}

/** The show is not there (the server sends its not-found page for an unknown id; this is
 * for one removed while the page was open). */
function showMissing() {
  document.title = "Show not found · liveshelf";
  $('#message').replaceChildren(h('strong', { 'data-testid': 'not-found' }, "This show doesn't exist."),
    ' ', h('a', { href: '/studio' }, 'Back to the studio'));
}

async function load() {
  clearTimeout(timer);
  if (!session.user()) {
    $('#message').textContent = 'Sign in as the show’s host (or as a brand with a product on its shelf) to see the stats.';
    $('#report').hidden = true;
    return;
  }
  let stats;
  try {
    stats = await api('GET', `/api/sessions/${sessionId}/stats`);
  } catch (err) {
    $('#report').hidden = true;
    if (err.status === 404) {
      showMissing();
      return;
    }
    $('#message').textContent = errorMessage(err);
    if (err.status >= 500 || err.status === 0) timer = setTimeout(load, REFRESH_MS);
    return;
  }
  $('#message').textContent = '';
  $('#report').hidden = false;
  document.title = `${stats.session.title} · Show stats · liveshelf`;
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
