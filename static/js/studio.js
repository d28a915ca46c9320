// The host studio: the host's shows (live, scheduled, ended: studio-shows.js), create
// or reschedule one, camera preview and device choice, go live over WHIP, manage the
// shelf and pins, start flash sales, moderate chat, and watch the live numbers. After
// the end the camera and microphone are released, what no longer applies is disabled
// with the reason, and the show's summary appears.

import { api, apiAll, session } from './api.js';
import { errorMessage } from './messages.js';
import { mountAuth } from './auth.js';
import { $, duration, h, money, parseMoney, ServerClock } from './format.js';
import { RoomClient } from './room.js';
import { figuresData, figuresText, ShelfState } from './shelfstate.js';
import { fromLocalInput, localWhen, toLocalInput } from './showtime.js';
import { moneyText, salesOf, viewersOf } from './studio-figures.js';
import { renderShows } from './studio-shows.js';
import { publish } from './webrtc.js';

const clock = new ServerClock();
let current = null;          // the session being worked on
let room = null;
let shelf = new ShelfState();
let catalogue = new Map();   // product_id -> product, from accepted cooperations
let awaiting = new Map();    // flash sale id -> sale waiting for the brand's approval
let stream = null;           // camera + microphone
let publisher = null;        // WHIP resource

function show(el, visible) { el.hidden = !visible; }

/** Shows `err` as a sentence in the user's terms (`context`: see messages.js). */
function fail(target, err, context = {}) {
  $(target).textContent = err ? errorMessage(err, context) : '';
}

// ---------------------------------------------------------------- sessions

async function loadSessions() {
  await renderShows($('#shows'), session.user().id, { current: current?.id, onOpen: openSession });
}

$('#new-session').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  fail('#sessions-error');
  try {
    const body = { title: $('#new-title').value };
    const when = fromLocalInput($('#new-when').value);
    if (when) body.scheduled_at = when;
    const created = await api('POST', '/api/sessions', body);
    $('#new-title').value = '';
    $('#new-when').value = '';
    await openSession(created.id);
  } catch (err) { $('#sessions-error').textContent = errorMessage(err); }
});

/** The edit form shows the show's title and start (in the viewer's zone). */
function fillEditForm() {
  $('#edit-title').value = current.title;
  $('#edit-when').value = toLocalInput(current.scheduled_at);
  $('#edit-state').textContent = '';
  $('#edit-error').textContent = '';
}

$('#edit-session').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#edit-error').textContent = '';
  $('#edit-state').textContent = '';
  const id = current.id;
  try {
    const body = { title: $('#edit-title').value, scheduled_at: fromLocalInput($('#edit-when').value) };
    current = { ...current, ...(await api('PATCH', `/api/sessions/${id}`, body)) };
    fillEditForm();
    $('#edit-state').textContent = 'Saved.';
  } catch (err) {
    $('#edit-error').textContent = errorMessage(err);
    if (err.code === 'session_started') current = { ...current, ...(await api('GET', `/api/sessions/${id}`)) };
  }
  renderStatus();
  await loadSessions();
});

async function openSession(id) {
  if (room) room.close();
  current = await api('GET', `/api/sessions/${id}`);
  shelf = new ShelfState();
  $('#chat-list').replaceChildren();
  show($('#workspace'), true);
  $('#watch-link').href = `/watch/${id}`;
  $('#stats-link').href = `/studio/${id}/stats`;
  fillEditForm();
  renderStatus();
  if (current.status === 'ended') showSummary();
  await loadSessions();
  room = new RoomClient(id, { token: session.token() });
  wireRoom(room);
  room.connect();
  awaiting = new Map();
  await loadCatalogue();
  loadAwaiting().catch((err) => fail('#flash-error', err));
  refreshNumbers();
}

function renderStatus() {
  $('#ws-title').textContent = current.title;
  const badge = $('#ws-status');
  badge.textContent = current.status;
  badge.className = `badge ${current.status === 'live' ? 'live' : ''}`;
  const ended = current.status === 'ended';
  $('#go-live').hidden = Boolean(publisher);
  show($('#stop-stream'), Boolean(publisher));
  show($('#end-show'), current.status === 'live');
  show($('#edit-session'), current.status === 'scheduled');
  $('#ws-when').textContent = {
    scheduled: current.scheduled_at ? `Starts ${localWhen(current.scheduled_at)}` : 'Start not set yet',
    live: `Live since ${localWhen(current.started_at)}`,
    ended: `Ended ${localWhen(current.ended_at)}`,
  }[current.status] ?? '';
  $('#publish-state').textContent = publisher
    ? 'Streaming' : (ended ? 'This show has ended.' : 'Not streaming');
  renderClosed(ended);
}

// ---------------------------------------------------------------- after the end

const CLOSED = {
  '#live-closed': 'The show has ended: it cannot go live again, and the camera and microphone are off.',
  '#shelf-closed': 'The show has ended: products can no longer be pinned.',
  '#flash-closed': 'The show has ended: no more flash sales.',
  '#chat-closed': 'The show has ended: the chat is closed.',
};

/** Disables what no longer applies to an ended show, with the reason beside it. */
function renderClosed(ended) {
  for (const [selector, reason] of Object.entries(CLOSED)) {
    $(selector).textContent = ended ? reason : '';
    show($(selector), ended);
  }
  for (const form of ['#flash-form', '#chat-form']) {
    for (const el of $(form).elements) el.disabled = ended;
  }
  for (const selector of ['#go-live', '#camera-on', '#camera', '#microphone', '#slow-select']) {
    $(selector).disabled = ended;
  }
  $('#go-live').title = ended ? CLOSED['#live-closed'] : '';
  show($('#summary'), ended);
  if (!ended) return;
  renderShelf();
  releaseMedia();
}

/** Stops every camera and microphone track and the stream to the server. */
async function releaseMedia() {
  const sending = publisher;
  publisher = null;
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $('#preview').srcObject = null;
  $('#preview-status').textContent = 'Camera off';
  if (sending) await sending.close();
}

/** The ended show's figures (the same reports as the stats page) and its links. */
async function showSummary() {
  const id = current.id;
  $('#sum-title').textContent = current.title;
  $('#sum-stats').href = `/studio/${id}/stats`;
  $('#sum-replay').href = `/replay/${id}`;
  fail('#summary-error');
  try {
    const [viewers, sales] = await Promise.all([viewersOf(id), salesOf(session.user().id, id)]);
    if (current?.id !== id) return;
    $('#sum-viewers').textContent = viewers;
    $('#sum-orders').textContent = sales.orders;
    $('#sum-gmv').textContent = moneyText(sales.gmv);
    $('#sum-commission').textContent = moneyText(sales.commission);
  } catch (err) { fail('#summary-error', err); }
}

// ---------------------------------------------------------------- camera and WHIP

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind) => {
    const chosen = select.value;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) =>
      h('option', { value: d.deviceId }, d.label || `${kind} ${i + 1}`)));
    if (chosen) select.value = chosen;
  };
  fill($('#camera'), 'videoinput');
  fill($('#microphone'), 'audioinput');
}

async function cameraOn() {
  const constraints = {
    video: $('#camera').value ? { deviceId: { exact: $('#camera').value } } : { width: 1280, height: 720 },
    audio: $('#microphone').value ? { deviceId: { exact: $('#microphone').value } } : true,
  };
  const next = await navigator.mediaDevices.getUserMedia(constraints);
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = next;
  $('#preview').srcObject = stream;
  $('#preview-status').textContent = '';
  await listDevices();
  if (publisher) {
    // Switch devices without renegotiating: replace the tracks being sent.
    for (const sender of publisher.pc.getSenders()) {
      const track = stream.getTracks().find((t) => t.kind === sender.track?.kind);
      if (track) await sender.replaceTrack(track);
    }
  }
}

$('#camera-on').addEventListener('click', () => cameraOn().catch((err) => fail('#live-error', err)));
$('#camera').addEventListener('change', () => stream && cameraOn().catch((err) => fail('#live-error', err)));
$('#microphone').addEventListener('change', () => stream && cameraOn().catch((err) => fail('#live-error', err)));

$('#go-live').addEventListener('click', async () => {
  fail('#live-error');
  $('#go-live').disabled = true;
  try {
    if (current.status === 'ended') return;
    if (!stream) await cameraOn();
    $('#publish-state').textContent = 'Connecting…';
    publisher = await publish(current.id, stream, session.token());
    publisher.pc.addEventListener('connectionstatechange', () => {
      const state = publisher?.pc.connectionState;
      if (state === 'connected') {
        $('#publish-state').textContent = publisher.notRecording
          ? `Streaming, not recorded (${publisher.notRecording})` : 'Streaming';
      }
      if (state === 'failed') {
        publisher.close();
        publisher = null;
        fail('#live-error', new Error('The connection to the server failed. Go live again.'));
        renderStatus();
      }
    });
    if (current.status === 'scheduled') {
      current = await api('POST', `/api/sessions/${current.id}/start`);
      loadSessions().catch((err) => fail('#sessions-error', err));
    }
  } catch (err) {
    fail('#live-error', err);
  } finally {
    $('#go-live').disabled = false;
    renderStatus();
  }
});

$('#stop-stream').addEventListener('click', async () => {
  if (publisher) await publisher.close();
  publisher = null;
  renderStatus();
});

$('#end-show').addEventListener('click', async () => {
  if (!confirm('End the show for everyone?')) return;
  try {
    current = await api('POST', `/api/sessions/${current.id}/end`);
  } catch (err) {
    fail('#live-error', err);
    current = { ...current, ...(await api('GET', `/api/sessions/${current.id}`).catch(() => ({}))) };
  }
  if (current.status === 'ended') ended();
  else renderStatus();
});

/** The show ended (here, or in another tab: the room's ``session.ended``). */
function ended() {
  renderStatus(); // releases the camera and microphone, disables what no longer applies
  showSummary();
  loadSessions().catch((err) => fail('#sessions-error', err));
}

// ---------------------------------------------------------------- shelf and pins

async function loadCatalogue() {
  const { items: cooperations } = await apiAll('/api/cooperations?status=accepted&limit=100', 'cooperations');
  const ids = [...new Set(cooperations.flatMap((c) => c.product_ids))];
  const products = await Promise.all(ids.map((id) => api('GET', `/api/products/${id}`).catch(() => null)));
  catalogue = new Map(products.filter((p) => p && !p.archived).map((p) => [p.id, p]));
  renderShelf();
}

async function shelfCall(method, path, body) {
  fail('#shelf-error');
  try {
    return await api(method, `/api/sessions/${current.id}${path}`, body);
  } catch (err) {
    fail('#shelf-error', err);
    return null;
  }
}

function move(productId, step) {
  const ids = shelf.items.map((i) => i.product_id);
  const at = ids.indexOf(productId);
  const to = at + step;
  if (to < 0 || to >= ids.length) return;
  [ids[at], ids[to]] = [ids[to], ids[at]];
  shelfCall('PUT', '/shelf/order', { product_ids: ids });
}

function renderShelf() {
  const pinned = shelf.pinned?.product_id;
  const closed = current?.status === 'ended';
  const closedWhy = closed ? CLOSED['#shelf-closed'] : undefined;
  $('#shelf-list').replaceChildren(...shelf.items.map((item) => {
    const isPinned = item.product_id === pinned;
    // Flash units at the flash price, reserved and regular units told apart.
    const fig = shelf.figures(item.product_id);
    return h('li', { class: isPinned ? 'pinned' : '', dataset: { productId: item.product_id } },
      h('span', { class: 'grow' }, item.title,
        h('span', { class: 'muted' }, ` · ${money(item.price_minor, item.currency)}`),
        fig ? h('span', { class: 'muted stock', dataset: figuresData(fig) },
          ` · ${figuresText(fig, (minor) => money(minor, item.currency))}`) : null),
      h('button', { type: 'button', class: 'secondary', title: 'up', onclick: () => move(item.product_id, -1) }, '↑'),
      h('button', { type: 'button', class: 'secondary', title: 'down', onclick: () => move(item.product_id, 1) }, '↓'),
      isPinned
        ? h('button', { type: 'button', disabled: closed, title: closedWhy,
          onclick: () => shelfCall('DELETE', '/pin') }, 'Unpin')
        : h('button', { type: 'button', dataset: { action: 'pin' }, disabled: closed, title: closedWhy,
          onclick: () => shelfCall('POST', '/pin', { product_id: item.product_id }) }, 'Pin'),
      h('button', { type: 'button', class: 'secondary', title: 'remove from shelf',
        onclick: () => shelfCall('DELETE', `/shelf/${item.product_id}`) }, '✕'));
  }));
  const onShelf = new Set(shelf.items.map((i) => i.product_id));
  $('#catalogue').replaceChildren(...[...catalogue.values()].filter((p) => !onShelf.has(p.id)).map((p) =>
    h('li', { dataset: { productId: p.id } },
      h('span', { class: 'grow' }, p.title, h('span', { class: 'muted' }, ` · ${money(p.price_minor, p.currency)} · ${p.stock} in stock`)),
      h('button', { type: 'button', class: 'secondary',
        onclick: () => shelfCall('POST', '/shelf', { product_id: p.id }) }, 'Add'))));
  const select = $('#flash-product');
  const chosen = select.value;
  select.replaceChildren(...shelf.items.map((i) => h('option', { value: i.product_id }, i.title)));
  if (chosen) select.value = chosen;
  renderFlash();
}

// ---------------------------------------------------------------- flash sales

function renderFlash() {
  const now = clock.now();
  const title = (sale) => shelf.item(sale.product_id)?.title ?? sale.product_id;
  const held = [...shelf.flashSales.values()].map((sale) => {
    const running = now >= sale.starts_ms && now < sale.ends_ms;
    const remaining = shelf.runningFlash(sale.product_id, now)?.remaining ?? sale.remaining;
    return h('li', {},
      h('span', { class: 'grow' }, `${title(sale)}: ${money(sale.price_minor, sale.currency)}, `
        + `${remaining}/${sale.quantity} left, `
        + (running ? `ends in ${duration((sale.ends_ms - now) / 1000)}` : `starts in ${duration((sale.starts_ms - now) / 1000)}`)
        + (!running && shelf.figures(sale.product_id)?.reserved ? ', units reserved' : '')));
  });
  const waiting = [...awaiting.values()].map((sale) => h('li', { dataset: { testid: 'flash-awaiting' } },
    h('span', { class: 'grow' }, `${title(sale)}: ${money(sale.price_minor, sale.currency)} × ${sale.quantity}, `
      + "outside the brand's terms: waiting for the brand's approval"),
    h('button', { type: 'button', class: 'secondary', onclick: () => withdrawFlash(sale.id) }, 'withdraw')));
  $('#flash-list').replaceChildren(...held, ...waiting);
}

async function withdrawFlash(id) {
  fail('#flash-error');
  try {
    await api('DELETE', `/api/sessions/${current.id}/flash-sales/${id}`);
    awaiting.delete(id);
    renderFlash();
  } catch (err) { fail('#flash-error', err); }
}

/** The sales of this show still waiting for the brand (only the host sees them). */
async function loadAwaiting() {
  const { items } = await apiAll(`/api/sessions/${current.id}/flash-sales?limit=200`, 'flash_sales');
  awaiting = new Map(items.filter((f) => f.status === 'pending_approval').map((f) => [f.id, f]));
  renderFlash();
}

/** The brand answered a sale that waited (room events ``flash.scheduled`` / ``flash.declined``). */
function brandAnswered(type, sale) {
  if (!awaiting.delete(sale.id)) return;
  if (type === 'flash.declined') {
    fail('#flash-error', new Error(`The brand declined the flash sale of ${shelf.item(sale.product_id)?.title ?? sale.product_id}.`));
  }
  renderFlash();
}

$('#flash-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  fail('#flash-error');
  const item = shelf.item(Number($('#flash-product').value));
  if (!item) return;
  const price = parseMoney($('#flash-price').value, item.currency);
  if (price === null) {
    fail('#flash-error', new Error(`Enter a price like 9.99 in ${item.currency}.`));
    return;
  }
  const start = new Date(clock.now());
  const end = new Date(start.getTime() + Number($('#flash-minutes').value) * 60000);
  try {
    const sale = await api('POST', `/api/sessions/${current.id}/flash-sales`, {
      product_id: item.product_id, price_minor: price, quantity: Number($('#flash-qty').value),
      per_buyer_limit: Number($('#flash-limit').value),
      starts_at: start.toISOString(), ends_at: end.toISOString(),
    });
    if (sale.status === 'pending_approval') {
      awaiting.set(sale.id, sale);
      renderFlash();
    }
  } catch (err) { fail('#flash-error', err, { product: item, currency: item.currency }); }
});

// ---------------------------------------------------------------- chat and moderation

async function moderate(method, path, body) {
  fail('#chat-error');
  try { await api(method, `/api/sessions/${current.id}${path}`, body); }
  catch (err) { fail('#chat-error', err); }
}

function chatLine(message) {
  const user = message.user;
  const staff = user.role !== 'viewer';
  return h('li', { dataset: { id: message.id } },
    h('span', { class: `who ${user.role}` }, user.display_name),
    h('span', {}, message.text),
    h('span', { class: 'mod' },
      h('button', { type: 'button', class: 'secondary', title: 'delete',
        onclick: () => moderate('DELETE', `/chat/messages/${message.id}`) }, 'delete'),
      staff ? null : h('button', { type: 'button', class: 'secondary', title: 'mute 5 minutes',
        onclick: () => moderate('POST', '/chat/mutes', { user_id: user.id, seconds: 300 }) }, 'mute 5m'),
      staff ? null : h('button', { type: 'button', class: 'secondary', title: 'ban from this show',
        onclick: () => confirm(`Ban ${user.display_name} from this show?`)
          && moderate('POST', '/chat/bans', { user_id: user.id }) }, 'ban')));
}

function addMessages(messages) {
  const list = $('#chat-list');
  for (const message of messages) {
    if (list.querySelector(`[data-id="${CSS.escape(String(message.id))}"]`)) continue;
    list.append(chatLine(message));
  }
  while (list.children.length > 300) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

$('#chat-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  fail('#chat-error');
  const text = $('#chat-text').value.trim();
  if (!text) return;
  $('#chat-text').value = '';
  try {
    await room.send({ type: 'chat.send', text });
  } catch (err) {
    if (!$('#chat-text').value) $('#chat-text').value = text;
    fail('#chat-error', err);
  }
});

$('#slow-select').addEventListener('change', () =>
  moderate('PUT', '/chat/slow-mode', { seconds: Number($('#slow-select').value) }));

// ---------------------------------------------------------------- numbers

let refreshPending = null;
async function refreshNumbers() {
  if (!current) return;
  const user = session.user();
  try {
    const report = await api('GET', `/api/hosts/${user.id}/commission?session_id=${current.id}`);
    const totals = report.totals;
    const sum = (key) => totals.reduce((n, t) => n + t[key], 0);
    $('#n-orders').textContent = sum('orders');
    $('#n-units').textContent = sum('units');
    const show = (key) => (totals.length ? totals.map((t) => money(t[key], t.currency)).join(' + ') : '–');
    $('#n-gmv').textContent = show('gmv_minor');
    $('#n-commission').textContent = show('commission_total_minor');
  } catch { /* numbers refresh again with the next order */ }
}

function refreshSoon() {
  // Orders arrive in bursts: one report query per half second at most.
  if (refreshPending) return;
  refreshPending = setTimeout(() => { refreshPending = null; refreshNumbers(); }, 500);
}

// ---------------------------------------------------------------- the room channel

function wireRoom(channel) {
  channel.on('hello', (hello) => {
    clock.sync(hello.server_time);
    const snap = hello.snapshot;
    if (!snap) return;
    shelf.load(snap);
    current = { ...current, ...snap.session };
    $('#n-viewers').textContent = snap.viewers ?? 0;
    $('#n-likes').textContent = snap.likes?.total ?? 0;
    $('#slow-select').value = String(snap.chat?.slow_mode_s ?? 0);
    $('#chat-list').replaceChildren();
    addMessages(snap.chat?.messages || []);
    renderStatus();
    renderShelf();
  });
  channel.on('*', (data, event) => {
    if (event.type === 'flash.scheduled' || event.type === 'flash.declined') brandAnswered(event.type, data);
    if (shelf.apply(event.type, data)) renderShelf();
  });
  channel.on('session.started', () => {
    current.status = 'live';
    renderStatus();
    loadSessions().catch((err) => fail('#sessions-error', err));
  });
  channel.on('session.ended', () => {
    if (current.status === 'ended') return; // ended here: already done
    current.status = 'ended';
    ended();
  });
  channel.on('viewers.updated', (data) => { $('#n-viewers').textContent = data.count; });
  channel.on('likes.updated', (data) => { $('#n-likes').textContent = data.total; });
  channel.on('chat.message', (data) => addMessages([data]));
  channel.on('chat.batch', (data) => addMessages(data.messages));
  channel.on('chat.deleted', (data) => $(`#chat-list [data-id="${CSS.escape(String(data.id))}"]`)?.remove());
  channel.on('chat.slow_mode', (data) => { $('#slow-select').value = String(data.seconds); });
  channel.on('order.placed', refreshSoon);
  channel.on('order.refunded', refreshSoon);
}

setInterval(() => { if (shelf.flashSales.size) renderFlash(); }, 1000);

// ---------------------------------------------------------------- start

async function start() {
  const user = session.user();
  const isHost = user && user.role === 'host';
  show($('#studio'), isHost);
  show($('#signed-out'), !isHost);
  if (user && !isHost) $('#signed-out').textContent = 'The studio is for host accounts; sign in as a host.';
  if (!isHost) {
    if (room) room.close();
    return;
  }
  const wanted = Number(new URLSearchParams(location.search).get('session'));
  if (!wanted) await loadSessions(); // openSession loads the list itself
  await listDevices().catch(() => {});
  if (wanted) {
    await openSession(wanted).catch(async (err) => {
      fail('#sessions-error', err);
      await loadSessions();
    });
  }
}

mountAuth($('#auth'), { roles: ['host'], prompt: 'Host sign in' });
window.addEventListener('liveshelf:auth', () => start());
// an agreement accepted in the inbox (coop-inbox.js): its products can go on the shelf
window.addEventListener('liveshelf:agreements', () => { if (current) loadCatalogue().catch(() => {}); });
start();

window.liveshelfStudio = { room: () => room, publisher: () => publisher, shelf: () => shelf };
