// The replay page: an ended show's recording with one chapter per pin window. The
// product card follows the video's time (the pin window that holds it), and Buy
// places a replay order (attributed to the host, `source: replay`).
//
// Data: GET /api/sessions/{id} (title, status, shelf), GET /api/sessions/{id}/pins
// (windows with media_start_s / media_end_s: seconds into the recording; every page
// of them) and
// GET /api/products/{id} per pinned product (current price and stock).

import { api, apiAll } from './api.js';
import { mountAuth } from './auth.js';
import { placeOrder, toaster } from './messages.js';
import { $, duration, h, money } from './format.js';

const sessionId = Number(location.pathname.split('/').filter(Boolean).pop());
const recordingUrl = `/api/sessions/${sessionId}/recording`;
const video = $('#video');
// A seek lands on the chapter's start or a hair before it: still that chapter.
const START_SLACK_S = 0.1;

const state = {
  chapters: [], // {pinId, productId, start, end (null: to the end)}
  products: new Map(), // product_id -> product (or shelf item)
  current: null, // the chapter on screen
};

function setStage(...content) {
  $('#stage-status').replaceChildren(...content);
}

// ---------------------------------------------------------------- loading

/** Pin windows -> chapters, oldest first. A window without a media start began
 * before the recording did (it starts at 0); one without any media time is not
 * in the recording at all. */
function chaptersFrom(pins) {
  return pins
    .filter((p) => p.media_start_s !== null || p.media_end_s !== null)
    .map((p) => ({
      pinId: p.id,
      productId: p.product_id,
      start: p.media_start_s ?? 0,
      end: p.media_end_s,
    }))
    .filter((c) => c.end === null || c.end > c.start)
    .sort((a, b) => a.start - b.start || a.pinId - b.pinId);
}

async function loadProducts(show, chapters) {
  const shelf = new Map((show.shelf || []).map((item) => [item.product_id, item]));
  const ids = [...new Set(chapters.map((c) => c.productId))];
  await Promise.all(ids.map(async (id) => {
    try {
      state.products.set(id, await api('GET', `/api/products/${id}`));
    } catch {
      if (shelf.has(id)) state.products.set(id, shelf.get(id)); // no stock shown then
    }
  }));
}

async function hasRecording() {
  const res = await fetch(recordingUrl, { method: 'HEAD' });
  return res.ok;
}

async function load() {
  let show;
  let pins;
  try {
    [show, { items: pins }] = await Promise.all([
      api('GET', `/api/sessions/${sessionId}`),
      apiAll(`/api/sessions/${sessionId}/pins?limit=200`, 'pins'),
    ]);
  } catch (err) {
    setStage(err.code === 'session_not_found' ? 'There is no such show.' : `Could not load the show: ${err.message}`);
    return;
  }
  $('#title').textContent = show.title;
  document.title = `${show.title} · replay · liveshelf`;
  $('#host').textContent = show.host?.display_name ? `with ${show.host.display_name}` : '';
  if (show.status !== 'ended') {
    const watch = h('a', { href: `/watch/${sessionId}` }, 'Watch it live');
    setStage(show.status === 'live'
      ? h('span', {}, 'This show is live right now. ', watch, '.')
      : h('span', {}, 'This show has not aired yet; its replay appears here after it ends. ', watch, '.'));
    video.hidden = true;
    return;
  }
  state.chapters = chaptersFrom(pins);
  await loadProducts(show, state.chapters);
  renderChapters();
  if (!(await hasRecording())) {
    setStage('This show ended without a recording, so there is no replay to watch.');
    video.hidden = true;
    return;
  }
  setStage('Loading the replay…');
  video.src = recordingUrl;
}

// ---------------------------------------------------------------- video

video.addEventListener('loadeddata', () => setStage());
video.addEventListener('error', () => {
  setStage('This browser cannot play the recording. Try another browser, or download it ',
    h('a', { href: recordingUrl }, 'here'), '.');
});
video.addEventListener('timeupdate', () => follow());
video.addEventListener('seeked', () => follow());

function chapterAt(t) {
  let found = null;
  for (const chapter of state.chapters) {
    if (chapter.start <= t + START_SLACK_S && (chapter.end === null || t < chapter.end)) found = chapter;
  }
  return found;
}

/** Shows the card of the chapter that holds the video's time. */
function follow() {
  const chapter = chapterAt(video.currentTime);
  if (chapter === state.current) return;
  state.current = chapter;
  renderCard();
  for (const li of $('#chapters').children) {
    li.classList.toggle('current', Number(li.dataset.pinId) === chapter?.pinId);
  }
}

function jumpTo(chapter) {
  video.currentTime = chapter.start;
  video.play().catch(() => {});
  follow();
}

// ---------------------------------------------------------------- chapters and card

function stockText(product) {
  if (typeof product.stock !== 'number') return '';
  return product.stock > 0 ? `${product.stock} left` : 'Sold out';
}

function renderChapters() {
  $('#chapter-count').textContent = state.chapters.length ? `· ${state.chapters.length}` : '';
  $('#chapters-empty').hidden = state.chapters.length > 0;
  $('#chapters').replaceChildren(...state.chapters.map((chapter) => {
    const product = state.products.get(chapter.productId);
    const title = product?.title ?? `Product ${chapter.productId}`;
    return h('li', {
      dataset: {
        pinId: chapter.pinId,
        productId: chapter.productId,
        start: chapter.start,
        end: chapter.end ?? '',
      },
      'data-testid': 'chapter',
    },
    h('button', { type: 'button', onclick: () => jumpTo(chapter) },
      product?.image_url ? h('img', { src: product.image_url, alt: '' }) : h('span', { class: 'no-image' }),
      h('div', { class: 'grow' },
        h('div', { class: 'chapter-title' }, title),
        h('div', { class: 'row' },
          h('span', { class: 'at' }, duration(chapter.start)),
          product ? h('span', { class: 'muted' }, money(product.price_minor, product.currency)) : null))));
  }));
}

function renderCard() {
  const chapter = state.current;
  const product = chapter && state.products.get(chapter.productId);
  $('#card').hidden = !product;
  if (!product) return;
  $('#card').dataset.productId = chapter.productId;
  $('#card-image').src = product.image_url || '';
  $('#card-image').hidden = !product.image_url;
  $('#card-title').textContent = product.title;
  $('#card-price').textContent = money(product.price_minor, product.currency);
  $('#card-stock').textContent = stockText(product);
  $('#card-buy').disabled = product.stock === 0 || Boolean(product.archived);
  $('#card-buy').textContent = product.stock === 0 ? 'Sold out' : 'Buy';
}

$('#card-buy').addEventListener('click', () => {
  const chapter = state.current;
  if (chapter) buy(chapter.productId, Number($('#card-qty').value), $('#card-buy'));
});

// ---------------------------------------------------------------- buying

const toast = toaster($('#toast'));

async function refreshProduct(productId) {
  try {
    state.products.set(productId, await api('GET', `/api/products/${productId}`));
  } catch {
    // keep what we have; the next purchase answers with the truth
  }
}

async function buy(productId, quantity, button) {
  const title = state.products.get(productId)?.title ?? 'this product';
  button.disabled = true;
  try {
    const path = `/api/sessions/${sessionId}/replay-orders`;
    const product = state.products.get(productId);
    const seen = product && { unit_price_minor: product.price_minor, currency: product.currency };
    await placeOrder(path, productId, title, quantity, toast, seen);
  } finally {
    button.disabled = false;
    await refreshProduct(productId);
    renderCard();
  }
}

// ---------------------------------------------------------------- start

mountAuth($('#auth'), { roles: ['viewer'], prompt: 'Sign in to buy' });
load();

// Read by tests and handy in the console: what this page shows right now.
window.liveshelfReplay = { state, chapterAt };
