// The studio's list of the host's shows: live, scheduled (soonest first) and ended,
// each with its time in the viewer's zone, its numbers (viewers, orders, GMV) and
// links to its stats and replay; a button opens it in the workspace.

import { apiAll } from './api.js';
import { h } from './format.js';
import { localWhen } from './showtime.js';
import { moneyText, salesByShow, viewersOf } from './studio-figures.js';

const GROUPS = ['live', 'scheduled', 'ended'];
/** Viewers of ended shows: they no longer change. */
const endedViewers = new Map();

function when(s) {
  if (s.status === 'live') return `live since ${localWhen(s.started_at)}`;
  if (s.status === 'ended') return `ended ${localWhen(s.ended_at)}`;
  return s.scheduled_at ? `starts ${localWhen(s.scheduled_at)}` : 'date to be announced';
}

async function viewers(s) {
  if (s.status === 'scheduled') return 0;
  if (endedViewers.has(s.id)) return endedViewers.get(s.id);
  const count = await viewersOf(s.id).catch(() => null);
  if (s.status === 'ended' && count !== null) endedViewers.set(s.id, count);
  return count;
}

function numbers(s, sales, count) {
  if (s.status === 'scheduled') return null;
  const seen = count === null ? '?' : count;
  return h('span', { class: 'show-numbers muted', dataset: { testid: 'show-numbers' } },
    `${seen} viewers · ${sales?.orders ?? 0} orders · ${moneyText(sales?.gmv)} GMV`);
}

function item(s, { current, onOpen, sales, count }) {
  return h('li', { class: `show ${s.id === current ? 'current' : ''}`, dataset: { showId: s.id } },
    h('button', { type: 'button', class: 'secondary', dataset: { sessionId: s.id },
      onclick: () => onOpen(s.id) }, s.title),
    h('span', { class: 'muted when' }, when(s)),
    numbers(s, sales, count),
    h('span', { class: 'show-links' },
      s.status === 'ended' ? null : h('a', { href: `/watch/${s.id}`, target: '_blank' }, 'viewer page'),
      s.status === 'scheduled' ? null : h('a', { href: `/studio/${s.id}/stats`, dataset: { link: 'stats' } }, 'stats'),
      s.status === 'ended' ? h('a', { href: `/replay/${s.id}`, dataset: { link: 'replay' } }, 'replay') : null));
}

const soonest = (a, b) => (a.scheduled_at ? Date.parse(a.scheduled_at) : Infinity)
  - (b.scheduled_at ? Date.parse(b.scheduled_at) : Infinity) || a.id - b.id;

/** Fills the three lists (`#shows-live`, `#shows-scheduled`, `#shows-ended`) with the
 * host's shows; resolves to them. */
export async function renderShows(root, hostId, { current, onOpen }) {
  const { items } = await apiAll(`/api/sessions?host_id=${hostId}&limit=100`, 'sessions', { maxPages: 1 });
  const sales = await salesByShow(hostId).catch(() => new Map());
  const counts = new Map();
  const queue = [...items];
  const worker = async () => {
    // four stats requests at a time (ended shows' viewers are remembered)
    for (let s = queue.shift(); s; s = queue.shift()) counts.set(s.id, await viewers(s));
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  for (const status of GROUPS) {
    const shows = items.filter((s) => s.status === status);
    if (status === 'scheduled') shows.sort(soonest);
    const list = root.querySelector(`#shows-${status}`);
    list.replaceChildren(...(shows.length
      ? shows.map((s) => item(s, { current, onOpen, sales: sales.get(s.id), count: counts.get(s.id) }))
      : [h('li', { class: 'muted empty' }, `No ${status} shows.`)]));
  }
  return items;
}
