// The watch page: WHEP video, the room channel (live state, viewers, shelf, card,
// flash sales, stock, chat, likes), and one-tap buying. Phone first: the video on top,
// a compact product card under it (over its lower edge on a wide screen), the shelf as
// a bottom drawer; a guest who taps Buy, Chat, Follow or Like gets the sign-in sheet
// and what they asked for carries on once they are signed in.

import { api, ApiError, session } from './api.js';
import { mountAuth } from './auth.js';
import { errorMessage, placeOrder, toaster } from './messages.js';
import { $, duration, h, maskedName, money, ServerClock } from './format.js';
import { FlashAllowance } from './buylimit.js';
import { RoomClient } from './room.js';
import { figuresData, ShelfState } from './shelfstate.js';
import { SignInSheet } from './signin-sheet.js';
import { play } from './webrtc.js';

const sessionId = Number(location.pathname.split('/').filter(Boolean).pop());
const clock = new ServerClock();
const shelf = new ShelfState();
const chat = new Map();
const room = new RoomClient(sessionId, { token: session.token() });
const sheet = new SignInSheet();
const allowance = new FlashAllowance(sessionId);
const video = $('#video');
let live = { status: null, title: '', paused: false };
let player = null;
let playerIsGuest = false; // made before the viewer signed in: claim it after sign-in
let playRetry = null;
let pendingLikes = 0;
let likeTimer = null;

/** Where chat differs from the general sentences (messages.js). */
const CHAT_ERRORS = {
  sign_in_required: 'Sign in to chat.',
  not_connected: 'You are offline for a moment; we are reconnecting. Send it again shortly.',
  disconnected: 'You are offline for a moment; we are reconnecting. Send it again shortly.',
};

const chatError = (err) => CHAT_ERRORS[err.code] || errorMessage(err);

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
  $('#title').title = live.title;
  const state = { live: paused ? 'paused' : 'live', scheduled: 'starting soon', ended: 'ended' }[live.status];
  document.title = live.title ? `${live.title}${state ? ` (${state})` : ''} · liveshelf` : 'Watch a show · liveshelf';
  if (live.status === 'scheduled') setStage('The show has not started yet. Stay on this page.');
  else if (live.status === 'ended') setStage('The show has ended. Thanks for watching!');
  else if (paused) setStage('The host paused the stream. Stay tuned…');
  $('#replay-link').hidden = live.status !== 'ended';
  $('#replay-link').href = `/replay/${sessionId}`;
}

// ---------------------------------------------------------------- following the host

let hostId = null;
let followAsked = 0; // the newest follow request's number: older answers are stale
function renderFollow(body) {
  const button = $('#follow');
  button.hidden = false;
  button.textContent = `${body.following ? 'Following' : 'Follow'} · ${body.followers}`;
  button.setAttribute('aria-label', `${body.following ? 'Following the host' : 'Follow the host'}, `
    + `${body.followers} ${body.followers === 1 ? 'follower' : 'followers'}`);
  button.setAttribute('aria-pressed', body.following ? 'true' : 'false');
  button.dataset.following = body.following ? '1' : '';
}

async function loadFollow() {
  if (hostId === null) return;
  const asked = ++followAsked;
  try {
    const body = await api('GET', `/api/hosts/${hostId}/followers`);
    if (asked === followAsked) renderFollow(body);
  } catch { /* later */ }
}

async function follow(method) {
  const asked = ++followAsked;
  try {
    const body = await api(method, `/api/hosts/${hostId}/follow`);
    if (asked === followAsked) renderFollow(body);
  } catch (err) { toast(`We couldn’t update following: ${errorMessage(err)}`, 'error'); }
}

$('#follow').addEventListener('click', () => {
  if (!session.user()) {
    sheet.require('to follow the host', () => follow('POST')); // after sign-in: follow
    return;
  }
  follow($('#follow').dataset.following ? 'DELETE' : 'POST');
});

function applySession(data) {
  if (data.host && data.host.id !== hostId) {
    hostId = data.host.id;
    loadFollow();
  }
  live = { ...live, status: data.status, title: data.title ?? live.title };
  renderLive();
  renderChatForm();
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

/** Flash, reserved and regular units told apart (shelfstate.js `stockFigures`). */
function stockText(productId, currency) {
  const fig = shelf.figures(productId);
  if (!fig) return '';
  const after = fig.regular > 0 ? ` · ${fig.regular} at the regular price after the sale` : '';
  if (fig.running) {
    return (fig.flash > 0 ? `${fig.flash} left at the flash price` : 'Flash sale sold out') + after;
  }
  const reserved = fig.reserved > 0
    ? ` · ${fig.reserved} reserved for a flash sale`
      + (fig.flash_price !== null && currency ? ` at ${money(fig.flash_price, currency)}` : '')
    : '';
  return (fig.regular > 0 ? `${fig.regular} left` : 'Sold out') + reserved;
}

/** Sets `el`'s text to the product's stock, with the figures as data attributes. */
function showStock(el, productId, currency) {
  el.textContent = stockText(productId, currency);
  for (const key of ['regular', 'flash', 'reserved', 'flashPrice', 'running']) delete el.dataset[key];
  Object.assign(el.dataset, figuresData(shelf.figures(productId)));
  return el;
}

/** Why Buy is off for a product right now ({ label, reason }), or null when it is on. */
function buyBlock(productId, currency) {
  if (live.status === 'ended') return { label: 'Ended', reason: 'The show has ended, so live orders are closed.' };
  if (shelf.available(productId, clock.now()) === 0) {
    return { label: 'Sold out', reason: 'Sold out: every unit has been bought.' };
  }
  const flash = shelf.runningFlash(productId, clock.now());
  if (flash && allowance.left(flash) === 0) {
    const limit = flash.per_buyer_limit;
    return { label: 'Limit reached', reason: `You have reached the limit of ${limit} `
      + `per person at the flash price of ${money(flash.price_minor, currency)}.` };
  }
  return null;
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
  showStock($('#card-stock'), card.product_id, item.currency);
  $('#card-image').alt = '';
  const block = buyBlock(card.product_id, item.currency);
  const buyButton = $('#card-buy');
  if (!buying.has(buyButton)) {
    buyButton.disabled = Boolean(block);
    buyButton.textContent = block ? block.label : 'Buy';
  }
  buyButton.setAttribute('aria-label', block ? `${block.label}: ${item.title}` : `Buy ${item.title}`);
  $('#card-reason').hidden = !block;
  $('#card-reason').textContent = block ? block.reason : '';
  $('#card-qty').disabled = Boolean(block);
  $('#card-qty').setAttribute('aria-label', `quantity of ${item.title}`);
}

function renderShelf() {
  $('#shelf-count').textContent = shelf.items.length;
  const pinnedId = shelf.pinned?.product_id;
  $('#shelf-list').replaceChildren(...shelf.items.map((item) => {
    const line = priceLine(item.product_id, item.price_minor, item.currency);
    const block = buyBlock(item.product_id, item.currency);
    const qty = h('input', { type: 'number', min: 1, max: 99, value: 1, inputmode: 'numeric',
      disabled: Boolean(block), 'aria-label': `quantity of ${item.title}` });
    const button = h('button', { type: 'button', disabled: Boolean(block),
      'aria-label': block ? `${block.label}: ${item.title}` : `Buy ${item.title}`,
      onclick: () => tapBuy(item, Number(qty.value), button) }, block ? block.label : 'Buy');
    return h('li', { class: item.product_id === pinnedId ? 'pinned' : '', dataset: { productId: item.product_id } },
      item.image_url ? h('img', { src: item.image_url, alt: '' }) : null,
      h('div', { class: 'grow' },
        h('div', {}, item.title),
        h('div', { class: 'row' }, h('strong', {}, line.price), line.was ? h('s', { class: 'muted' }, line.was) : null),
        block ? h('div', { class: 'muted' }, block.reason)
          : showStock(h('div', { class: 'muted stock' }), item.product_id, item.currency)),
      h('div', { class: 'buy-box' }, qty, button));
  }));
}

$('#card').addEventListener('click', (ev) => {
  if (shelf.pinned && !ev.target.closest('input')) reportCard('click', shelf.pinned.pin_id);
});
$('#card-buy').addEventListener('click', () => {
  const card = shelf.pinned;
  if (card) reportCard('click', card.pin_id);
  if (card) tapBuy(shelf.item(card.product_id) || card, Number($('#card-qty').value), $('#card-buy'));
});

// The shelf: a panel beside the video on a wide screen, a bottom drawer on a phone.
function setShelfOpen(open) {
  $('#shelf').hidden = !open;
  $('#shelf-backdrop').hidden = !open;
  $('#open-shelf').setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('drawer-open', open);
  if (open) $('#close-shelf').focus();
}
$('#open-shelf').addEventListener('click', () => setShelfOpen($('#shelf').hidden));
$('#close-shelf').addEventListener('click', () => {
  setShelfOpen(false);
  $('#open-shelf').focus();
});
$('#shelf-backdrop').addEventListener('click', () => setShelfOpen(false));
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && !$('#shelf').hidden && !sheet.isOpen) {
    setShelfOpen(false);
    $('#open-shelf').focus();
  }
});

// ---------------------------------------------------------------- buying

const toast = toaster($('#toast'));
const buying = new Set(); // buttons with an order on the way

/** Buy tapped: a guest signs in first, then the order goes through by itself. */
function tapBuy(item, quantity, button) {
  if (!session.user()) {
    toast('Sign in to buy: your order goes through as soon as you are signed in.');
    sheet.require('to buy', () => buy(item, quantity, button));
    return;
  }
  buy(item, quantity, button);
}

async function buy(item, quantity, button) {
  button.disabled = true;
  buying.add(button);
  let order = null;
  try {
    const flash = shelf.runningFlash(item.product_id, clock.now());
    const seen = { unit_price_minor: flash ? flash.price_minor : item.price_minor, currency: item.currency };
    order = await placeOrder(`/api/sessions/${sessionId}/orders`, item.product_id, item.title, quantity, toast, seen);
  } finally {
    buying.delete(button);
    button.disabled = false;
    allowance.add(order); // at the per-person limit now: Buy says so at once
    renderCard();
    renderShelf();
  }
  // Refused: perhaps the per-person limit (bought in another tab or earlier): Buy then
  // says so instead of inviting another refused tap.
  if (!order && await allowance.refresh()) {
    renderCard();
    renderShelf();
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
  const ended = live.status === 'ended';
  const input = $('#chat-text');
  input.disabled = !signedIn || ended;
  input.placeholder = ended ? 'The show has ended' : signedIn ? 'Say something…' : 'Sign in to chat';
  $('#chat-send').hidden = !signedIn;
  $('#chat-send').disabled = ended;
  $('#chat-join').hidden = signedIn || ended;
}

$('#chat-join').addEventListener('click', () => {
  sheet.require('to chat', () => {
    renderChatForm();
    $('#chat-text').focus();
  });
});

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
    $('#chat-error').textContent = chatError(err)
      + (wait && !/ in \d/.test(chatError(err)) ? ` (${Math.ceil(wait / 1000)} s)` : '');
  }
});

$('#like').addEventListener('click', () => sheet.require('to like the show', like));

function like() {
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
}

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
  ticker(`${maskedName(data.buyer)} just bought ${data.quantity} × ${item ? item.title : 'an item'}`);
});
room.on('announcement', (data) => ticker(data.text));
room.on('error', (err) => {
  if (err.code === 'banned') toast('You were removed from this show by its host or a moderator.', 'error');
});
room.on('status', (state) => {
  if (state === 'closed' && !missing) ticker('Reconnecting…');
  if (state === 'closed' && room.lastHello === null && !missing) checkSession();
  if (state === 'banned') {
    setStage('You were removed from this show by its host or a moderator.');
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
  if (missing) return;
  room.restart({ token: session.token() });
  loadFollow();
  renderChatForm();
  refreshAllowance();
});

async function refreshAllowance() {
  if (await allowance.refresh()) {
    renderCard();
    renderShelf();
  }
}

// ---------------------------------------------------------------- an unknown show

let missing = false;

/** A session that does not exist: say so (instead of "Connecting…" forever) and stop. */
function showNotFound() {
  missing = true;
  room.close();
  stopPlayback();
  setStage('');
  $('#main').hidden = true;
  $('#not-found').hidden = false;
  $('#live-badge').hidden = true;
  $('#title').textContent = '';
  $('.show-meta .viewers').hidden = true;
  document.title = 'Show not found · liveshelf';
}

/** Reads the session once over HTTP: its title at once, or "doesn't exist". */
async function checkSession() {
  try {
    const data = await api('GET', `/api/sessions/${sessionId}`);
    if (live.status === null && data.title) {
      live.title = data.title;
      renderLive();
    }
  } catch (err) {
    if (err.status === 404) showNotFound();
    else if (err.code === 'network_error' && room.lastHello === null) {
      setStage('We can’t reach liveshelf right now. Retrying…');
    }
  }
}

// The flash countdown and "ends in" follow the server clock; a card's impression not
// yet reported (page hidden, or the room not connected) is retried on the same tick.
setInterval(() => {
  const card = shelf.pinned;
  if (card && (shelf.flashSales.size || !reported.has(`impression:${card.pin_id}`))) renderCard();
}, 500);

mountAuth($('#auth'), { roles: ['viewer'], prompt: 'Sign in to chat and buy' });
// A phone's header has a button for the sheet instead of the form (watch.css).
const signInButton = $('#signin-open');
signInButton.addEventListener('click', () => sheet.open());
const showSignInButton = () => { signInButton.hidden = Boolean(session.user()); };
window.addEventListener('liveshelf:auth', showSignInButton);
showSignInButton();
renderChatForm();
checkSession();
room.connect();
refreshAllowance();

// Read by tests and handy in the console: what this page is doing right now.
window.liveshelfWatch = { room, shelf, player: () => player, clock };
