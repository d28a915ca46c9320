// Home (/): live and upcoming sessions as cards linking to /watch/{id}, and ended
// shows with a recording as cards linking to /replay/{id}; refreshed every few
// seconds. Cards that did not change are kept, so covers do not flicker.

import { api } from '/static/js/api.js';
import { errorMessage } from '/static/js/messages.js';
import { $, h } from '/static/js/format.js';

const REFRESH_MS = 10_000;
const COVER_RETRY_MS = 30_000; // a live session gets a cover once its first frames arrive
const LIMIT = 50;
const REPLAYS = 12; // the newest ended shows looked at for a replay
/** Ended show -> whether it has a replay (its recording's state; settled ones only). */
const replayable = new Map();

/** Per session: the card shown, what it shows, and when its cover last failed. */
const cards = new Map();

function when(iso) {
  if (!iso) return 'Date to be announced';
  return new Date(iso).toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
  });
}

function fallbackCover(s) {
  const hue = (s.id * 47) % 360;
  return h('div', { class: 'cover cover-fallback', style: `--hue: ${hue}`, 'aria-hidden': 'true' },
    (s.title.trim()[0] || '•').toUpperCase());
}

function cover(s, entry) {
  if (s.status !== 'live') return fallbackCover(s); // only live sessions have covers
  if (entry.coverFailedAt && Date.now() - entry.coverFailedAt < COVER_RETRY_MS) return fallbackCover(s);
  const img = h('img', { class: 'cover', src: `/api/sessions/${s.id}/cover.jpg`, alt: '', loading: 'lazy' });
  img.addEventListener('error', () => {
    entry.coverFailedAt = Date.now();
    img.replaceWith(fallbackCover(s));
  }, { once: true });
  return img;
}

function signature(s) {
  return JSON.stringify([s.status, s.title, s.host && s.host.display_name, s.scheduled_at]);
}

function buildCard(s, entry) {
  const live = s.status === 'live';
  const ended = s.status === 'ended';
  const host = s.host && s.host.display_name;
  const href = ended ? `/replay/${s.id}` : `/watch/${s.id}`;
  return h('a', { class: 'card session-card', href, dataset: { sessionId: s.id } },
    h('div', { class: 'media' },
      cover(s, entry),
      live ? h('span', { class: 'badge live' }, 'LIVE') : null),
    h('div', { class: 'body' },
      h('strong', { class: 'title' }, s.title),
      h('div', { class: 'muted' }, host ? `with ${host}` : ''),
      live || ended ? null : h('div', { class: 'when' }, when(s.scheduled_at)),
      ended ? h('div', { class: 'when' }, `Replay · aired ${when(s.started_at)}`) : null));
}

function cardFor(s) {
  let entry = cards.get(s.id);
  if (!entry) {
    entry = { sig: null, el: null, coverFailedAt: 0 };
    cards.set(s.id, entry);
  }
  const sig = signature(s);
  const retryCover = entry.coverFailedAt && Date.now() - entry.coverFailedAt >= COVER_RETRY_MS;
  if (entry.sig !== sig || retryCover) {
    entry.coverFailedAt = 0; // only a new failure of this card's cover counts
    entry.el = buildCard(s, entry);
    entry.sig = sig;
  }
  return entry.el;
}

function fill(root, sessions, empty) {
  root.replaceChildren(...(sessions.length ? sessions.map(cardFor)
    : [h('p', { class: 'muted empty' }, empty)]));
}

const byStart = (a, b) => {
  // Soonest first; sessions without a date after those with one.
  const ta = a.scheduled_at ? Date.parse(a.scheduled_at) : Infinity;
  const tb = b.scheduled_at ? Date.parse(b.scheduled_at) : Infinity;
  return ta - tb || a.id - b.id;
};

/** Whether an ended show has a replay: its recording is complete (or cut short but
 * playable). Remembered once settled; a recording still being finished is asked again. */
async function hasReplay(s) {
  if (replayable.has(s.id)) return replayable.get(s.id);
  const detail = await api('GET', `/api/sessions/${s.id}`);
  const state = detail.recording?.state;
  const yes = state === 'complete' || state === 'incomplete';
  if (state !== 'recording') replayable.set(s.id, yes);
  return yes;
}

async function replays() {
  const ended = await api('GET', `/api/sessions?status=ended&limit=${REPLAYS}`);
  const flags = await Promise.all(ended.sessions.map((s) => hasReplay(s).catch(() => false)));
  return ended.sessions.filter((_, i) => flags[i]);
}

async function refresh() {
  const error = $('#home-error');
  try {
    const [live, upcoming, recorded] = await Promise.all([
      api('GET', `/api/sessions?status=live&limit=${LIMIT}`),
      api('GET', `/api/sessions?status=scheduled&limit=${LIMIT}`),
      replays(),
    ]);
    fill($('#live-sessions'), live.sessions, 'Nobody is live right now. Check the upcoming shows below.');
    fill($('#upcoming-sessions'), [...upcoming.sessions].sort(byStart), 'No shows scheduled yet.');
    fill($('#replay-sessions'), recorded, 'No replays yet.');
    const shown = new Set([...live.sessions, ...upcoming.sessions, ...recorded].map((s) => s.id));
    for (const id of cards.keys()) if (!shown.has(id)) cards.delete(id);
    error.textContent = '';
  } catch (err) {
    error.textContent = errorMessage(err);
  }
}

refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
