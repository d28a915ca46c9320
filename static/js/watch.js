// The watch page: WHEP video, the room channel (live state, viewers, shelf, card,
// flash sales, stock, chat, likes), and one-tap buying.

import { api, ApiError, session } from './api.js';
import { mountAuth } from './auth.js';
import { placeOrder, toaster } from './messages.js';
import { $, duration, h, money, ServerClock } from './format.js';
import { RoomClient } from './room.js';
import { ShelfState } from './shelfstate.js';
import { play } from './webrtc.js';

const sessionId = Number(location.pathname.split('/').filter(Boolean).pop());
const clock = new ServerClock();
const shelf = new ShelfState();
const chat = new Map();
const room = new RoomClient(sessionId, { token: session.token() });
const video = $('#video');
let live = { status: null, title: '', paused: false };
let player = null;
let playerIsGuest = false; // made before the viewer signed in: claim it after sign-in
let playRetry = null;
let pendingLikes = 0;
let likeTimer = null;

const CHAT_ERRORS = {
  sign_in_required: 'Sign in to chat.',
  muted: 'You are muted for now.',
  blocked_word: 'That message contains a blocked word.',
  slow_mode: 'Slow mode is on: wait a little.',
  chat_rate_limited: 'You are sending too fast.',
  empty_message: 'Nothing to send.',
  message_too_long: 'Messages are at most 300 characters.',
  session_ended: 'The show has ended.',
  not_connected: 'Reconnecting… try again in a moment.',
};

// ---------------------------------------------------------------- live state

function setStage(text) {
  $('#stage-status').textContent = text;
}

function renderLive() {
  const badge = $('#live-badge');
  const paused = live.status === 'live' && live.paused;
  badge.textContent = { live: paused ? 'PAUSED' : 'LIVE', scheduled: 'SOON', ended: 'ENDED' }[live.status] || '…';
  badge.className = `badge ${live.status === 'live' && !paused ? 'live' : ''}`;
  $('#title').textContent = live.title;
  document.title = `${live.title || 'Watch'} · liveshelf`;
  if (live.status === 'scheduled') setStage('The show has not started yet. Stay on this page.');
  else if (live.status === 'ended') setStage('The show has ended. Thanks for watching!');
  else if (paused) setStage('The host paused the stream. Stay tuned…');
  $('#replay-link').hidden = live.status !== 'ended';
  $('#replay-link').href = `/replay/${sessionId}`;
}

// ---------------------------------------------------------------- following the host

let hostId = null;
function renderFollow(body) {
  const button = $('#follow');
  button.hidden = false;
  button.textContent = `${body.following ? 'Following' : 'Follow'} · ${body.followers}`;
  button.dataset.following = body.following ? '1' : '';
}

async function loadFollow() {
  if (hostId === null) return;
  try { renderFollow(await api('GET', `/api/hosts/${hostId}/followers`)); } catch { /* later */ }
}

$('#follow').addEventListener('click', async () => {
  if (!session.user()) {
    toast('Sign in to follow the host.', 'error');
    return;
  }
  const method = $('#follow').dataset.following ? 'DELETE' : 'POST';
  try { renderFollow(await api(method, `/api/hosts/${hostId}/follow`)); }
  catch (err) { toast(err.message, 'error'); }
});

function applySession(data) {
  if (data.host && data.host.id !== hostId) {
    hostId = data.host.id;
    loadFollow();
  }
  live = { ...live, status: data.status, title: data.title ?? live.title };
  renderLive();
  if (live.status === 'live') startPlayback();
  else stopPlayback();
  renderCard();
}

// ---------------------------------------------------------------- video

async function startPlayback() {
  if (player || live.status !== 'live') return;
  clearTimeout(playRetry);
  if (!video.videoWidth) setStage('Connecting to the stream…');
  let resource;
  const token = session.token();
  try {
    resource = await play(sessionId, video, token);
  } catch (err) {
    if (err instanceof ApiError && (err.code === 'session_ended')) return;
    setStage(err.code === 'session_not_live' ? 'Waiting for the host…' : 'Reconnecting to the stream…');
    playRetry = setTimeout(startPlayback, 2000);
    return;
  }
  if (live.status !== 'live') {
    resource.close();
    return;
  }
  player = resource;
  playerIsGuest = !token;
  claimPlayer();
  if (!video.videoWidth && !live.paused) setStage('Waiting for the host’s video…');
  let silent = null;
  const stalled = watchForStall(resource, () => lost());
  const lost = () => {
    // A network drop, or the server process serving this viewer died: a new WHEP
    // resource (placed on a live worker); the room channel resumes by itself.
    clearTimeout(silent);
    clearInterval(stalled);
    if (player !== resource) return;
    player = null;
    resource.close();
    setStage('Reconnecting to the stream…');
    playRetry = setTimeout(startPlayback, 100);
  };
  resource.pc.addEventListener('connectionstatechange', () => {
    const state = resource.pc.connectionState;
    clearTimeout(silent);
    if (state === 'failed' || state === 'closed') lost();
    // 'disconnected': no answer to ICE checks for a few seconds; 'failed' comes only
    // after much longer, so a peer silent 1.5 s more is taken as gone
    else if (state === 'disconnected') silent = setTimeout(lost, 1500);
  });
}

// Media that flowed and stopped for this long, while the host is not paused, means the
// server process serving this viewer is gone: ICE would say so only after several
// seconds ('disconnected'), audio alone arrives 50 times a second.
const STALL_MS = 800;

/** Calls ``lost`` once the resource's media stops arriving; an interval to clear. */
function watchForStall(resource, lost) {
  let bytes = 0;
  let changedAt = performance.now();
  const timer = setInterval(async () => {
    if (player !== resource) { clearInterval(timer); return; }
    let now = 0;
    (await resource.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp') now += r.bytesReceived || 0;
    });
    if (now !== bytes) {
      bytes = now;
      changedAt = performance.now();
    } else if (bytes > 0 && !live.paused && performance.now() - changedAt > STALL_MS) {
      clearInterval(timer);
      lost();
    }
  }, 250);
  return timer;
}

function stopPlayback() {
  clearTimeout(playRetry);
  if (player) player.close();
  player = null;
}

video.addEventListener('playing', () => {
  if (!live.paused) setStage('');
  $('#unmute').hidden = !video.muted;
});

$('#unmute').addEventListener('click', () => {
  video.muted = false;
  video.play().catch(() => {});
  $('#unmute').hidden = true;
});

// ---------------------------------------------------------------- shelf and card

function priceLine(productId, regularMinor, currency) {
  const flash = shelf.runningFlash(productId, clock.now());
  if (!flash) return { price: money(regularMinor, currency), was: '', flash: null };
  return { price: money(flash.price_minor, currency), was: money(regularMinor, currency), flash };
}

function stockText(productId) {
  const left = shelf.available(productId, clock.now());
  if (left === null || left === undefined) return '';
  return left > 0 ? `${left} left` : 'Sold out';
}

// The creator's funnel: each pin's card counts once as seen and once as tapped per viewer.
const reported = new Set();
function reportCard(kind, pinId) {
  const key = `${kind}:${pinId}`;
  if (reported.has(key)) return;
  reported.add(key);
  room.send({ type: `card.${kind}`, pin_id: pinId })
    .catch(() => reported.delete(key)); // not connected: the next render reports it again
}

function renderCard() {
  const card = shelf.pinned;
  const el = $('#card');
  el.hidden = !card || live.status === 'ended';
  if (!card) return;
  if (!document.hidden) reportCard('impression', card.pin_id);
  const item = shelf.item(card.product_id) || card;
  $('#card-image').src = item.image_url || '';
  $('#card-image').hidden = !item.image_url;
  $('#card-title').textContent = item.title;
  const line = priceLine(card.product_id, item.price_minor, item.currency);
  $('#card-price').textContent = line.price;
  $('#card-was').textContent = line.was;
  const badge = $('#card-flash');
  badge.hidden = !line.flash;
  if (line.flash) badge.textContent = `FLASH · ends in ${duration((line.flash.ends_ms - clock.now()) / 1000)}`;
  $('#card-stock').textContent = stockText(card.product_id);
  $('#card-buy').disabled = shelf.available(card.product_id, clock.now()) === 0;
}

function renderShelf() {
  $('#shelf-count').textContent = shelf.items.length;
  const pinnedId = shelf.pinned?.product_id;
  $('#shelf-list').replaceChildren(...shelf.items.map((item) => {
    const line = priceLine(item.product_id, item.price_minor, item.currency);
    const qty = h('input', { type: 'number', min: 1, max: 99, value: 1, 'aria-label': 'quantity' });
    const soldOut = shelf.available(item.product_id, clock.now()) === 0;
    const button = h('button', { type: 'button', disabled: soldOut,
      onclick: () => buy(item, Number(qty.value), button) }, soldOut ? 'Sold out' : 'Buy');
    return h('li', { class: item.product_id === pinnedId ? 'pinned' : '', dataset: { productId: item.product_id } },
      item.image_url ? h('img', { src: item.image_url, alt: '' }) : null,
      h('div', { class: 'grow' },
        h('div', {}, item.title),
        h('div', { class: 'row' }, h('strong', {}, line.price), line.was ? h('s', { class: 'muted' }, line.was) : null),
        h('div', { class: 'muted' }, stockText(item.product_id))),
      h('div', { class: 'buy-box' }, qty, button));
  }));
}

$('#card').addEventListener('click', (ev) => {
  if (shelf.pinned && !ev.target.closest('input')) reportCard('click', shelf.pinned.pin_id);
});
$('#open-shelf').addEventListener('click', () => { $('#shelf').hidden = !$('#shelf').hidden; });
$('#card-buy').addEventListener('click', () => {
  const card = shelf.pinned;
  if (card) reportCard('click', card.pin_id);
  if (card) buy(shelf.item(card.product_id) || card, Number($('#card-qty').value), $('#card-buy'));
});

// ---------------------------------------------------------------- buying

const toast = toaster($('#toast'));

async function buy(item, quantity, button) {
  button.disabled = true;
  try {
    const flash = shelf.runningFlash(item.product_id, clock.now());
    const seen = { unit_price_minor: flash ? flash.price_minor : item.price_minor, currency: item.currency };
    await placeOrder(`/api/sessions/${sessionId}/orders`, item.product_id, item.title, quantity, toast, seen);
  } finally {
    button.disabled = false;
    renderCard();
  }
}

// ---------------------------------------------------------------- chat and likes

function chatLine(message) {
  return h('li', { dataset: { id: message.id } },
    h('span', { class: `who ${message.user.role}` }, message.user.display_name),
    h('span', {}, message.text));
}

function addMessages(messages) {
  const list = $('#chat-list');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  for (const message of messages) {
    if (chat.has(message.id)) continue;
    const line = chatLine(message);
    chat.set(message.id, line);
    list.append(line);
  }
  while (chat.size > 200) {
    const [id, line] = chat.entries().next().value;
    line.remove();
    chat.delete(id);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderChatForm() {
  const signedIn = Boolean(session.user());
  const input = $('#chat-text');
  input.disabled = !signedIn || live.status === 'ended';
  input.placeholder = signedIn ? 'Say something…' : 'Sign in to chat';
}

$('#chat-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('#chat-text');
  const text = input.value.trim();
  if (!text) return;
  $('#chat-error').textContent = '';
  input.value = '';
  try {
    await room.send({ type: 'chat.send', text });
  } catch (err) {
    if (!input.value) input.value = text; // refused: give the text back to edit
    const wait = err.details?.retry_after_ms;
    $('#chat-error').textContent = (CHAT_ERRORS[err.code] || err.message)
      + (wait ? ` (${Math.ceil(wait / 1000)} s)` : '');
  }
});

$('#like').addEventListener('click', () => {
  if (!session.user()) {
    toast('Sign in to like.', 'error');
    return;
  }
  pendingLikes += 1;
  $('#likes').textContent = Number($('#likes').textContent) + 1;
  // Taps add up and leave at most ~3 times a second (the server allows bursts of 50).
  if (!likeTimer) {
    likeTimer = setTimeout(() => {
      const count = Math.min(pendingLikes, 50);
      pendingLikes = 0;
      likeTimer = null;
      room.send({ type: 'like', count }).catch(() => {});
    }, 300);
  }
});

function ticker(text) {
  const line = h('div', {}, text);
  $('#ticker').prepend(line);
  setTimeout(() => line.remove(), 4000);
  while ($('#ticker').children.length > 3) $('#ticker').lastChild.remove();
}

// ---------------------------------------------------------------- the room channel

room.on('hello', (hello) => {
  clock.sync(hello.server_time);
  const snap = hello.snapshot;
  if (!snap) return; // recovered: the missed events follow
  shelf.load(snap);
  live.paused = false;
  $('#viewers').textContent = snap.viewers ?? 0;
  $('#likes').textContent = snap.likes?.total ?? 0;
  chat.clear();
  $('#chat-list').replaceChildren();
  addMessages(snap.chat?.messages || []);
  $('#slow-mode').textContent = snap.chat?.slow_mode_s ? `· slow mode ${snap.chat.slow_mode_s} s` : '';
  applySession(snap.session);
  renderShelf();
});

room.on('*', (data, event) => {
  if (shelf.apply(event.type, data)) {
    if (event.type.startsWith('flash.') && data.server_time) clock.sync(data.server_time);
    renderCard();
    renderShelf();
  }
});

room.on('session.started', () => applySession({ status: 'live' }));
room.on('session.ended', () => applySession({ status: 'ended' }));
room.on('live.started', () => {
  live.paused = false;
  renderLive();
  if (video.videoWidth) setStage('');
  startPlayback();
});
room.on('live.paused', (data) => {
  live.paused = data.reason !== 'ended';
  renderLive();
});
room.on('viewers.updated', (data) => { $('#viewers').textContent = data.count; });
room.on('likes.updated', (data) => { $('#likes').textContent = data.total + pendingLikes; });
room.on('chat.message', (data) => addMessages([data]));
room.on('chat.batch', (data) => addMessages(data.messages));
room.on('chat.deleted', (data) => {
  chat.get(data.id)?.remove();
  chat.delete(data.id);
});
room.on('chat.slow_mode', (data) => {
  $('#slow-mode').textContent = data.seconds ? `· slow mode ${data.seconds} s` : '';
});
room.on('order.placed', (data) => {
  const item = shelf.item(data.product_id);
  ticker(`${data.buyer} bought ${data.quantity} × ${item ? item.title : 'an item'}`);
});
room.on('announcement', (data) => ticker(data.text));
room.on('error', (err) => {
  if (err.code === 'banned') toast('You were removed from this room.', 'error');
});
room.on('status', (state) => {
  if (state === 'closed') ticker('Reconnecting…');
  if (state === 'banned') {
    setStage('You were removed from this room.');
    stopPlayback();
  }
});

// A guest who signs in while watching keeps the video; the room socket (signed in
// now) tells the server this WHEP resource is theirs, for the creator's analytics.
function claimPlayer() {
  if (!player || !playerIsGuest || !player.location) return;
  if (!session.token() || room.lastHello === null || !room.token) return;
  const claimed = player;
  room.send({ type: 'watch.identify', resource_id: claimed.location.split('/').pop() })
    .then(() => { if (player === claimed) playerIsGuest = false; })
    .catch(() => {}); // not connected yet: the next hello tries again
}
room.on('hello', claimPlayer);

window.addEventListener('liveshelf:auth', () => {
  room.restart({ token: session.token() });
  loadFollow();
  renderChatForm();
});

// The flash countdown and "ends in" follow the server clock; a card's impression not
// yet reported (page hidden, or the room not connected) is retried on the same tick.
setInterval(() => {
  const card = shelf.pinned;
  if (card && (shelf.flashSales.size || !reported.has(`impression:${card.pin_id}`))) renderCard();
}, 500);

mountAuth($('#auth'), { roles: ['viewer'], prompt: 'Sign in to chat and buy' });
renderChatForm();
room.connect();

// Read by tests and handy in the console: what this page is doing right now.
window.liveshelfWatch = { room, shelf, player: () => player, clock };
