// The signed-in account's own event stream (GET /api/me/events, Server-Sent Events;
// live/user_events_handlers.py): notifications such as a brand's proposal or a
// counter-offer, live on every page that follows it.
//
//   const stop = followUserEvents({ onHello, onEvent, onState });
//
// Read with fetch (so the bearer token travels in the Authorization header, never in a
// URL). After a drop it reconnects by itself with Last-Event-ID, and the server sends
// what was missed; `onHello(hello)` says whether it could (`hello.recovered`): when it
// could not, the page reloads what it shows from the API.

import { authHeaders } from './api.js';

const RETRY_MS = 2000;

export function followUserEvents({ onHello = () => {}, onEvent = () => {}, onState = () => {} } = {}) {
  let stopped = false;
  let lastId = '';
  let controller = null;
  let retry = RETRY_MS;

  function dispatch(message) {
    if (message.id) lastId = message.id;
    let data = null;
    try { data = JSON.parse(message.data); } catch { return; }
    if (message.event === 'hello') onHello(data);
    else onEvent(message.event, data.data, data);
  }

  async function readOnce() {
    controller = new AbortController();
    const headers = { ...authHeaders(), Accept: 'text/event-stream' };
    if (lastId) headers['Last-Event-ID'] = lastId;
    const res = await fetch('/api/me/events', { headers, signal: controller.signal, cache: 'no-store' });
    if (res.status === 401 || res.status === 403) { stopped = true; onState('signed-out'); return; }
    if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
    onState('live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let message = { id: '', event: '', data: '' };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, cut).replace(/\r$/, '');
        buffer = buffer.slice(cut + 1);
        if (line === '') {
          if (message.data) dispatch(message);
          message = { id: '', event: '', data: '' };
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const name = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (name === 'data') message.data += (message.data ? '\n' : '') + text;
          else if (name === 'id') message.id = text;
          else if (name === 'event') message.event = text;
          else if (name === 'retry' && /^\d+$/.test(text)) retry = Number(text);
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await readOnce();
      } catch (err) {
        if (stopped) break;
      }
      if (stopped) break;
      onState('reconnecting');
      await new Promise((resolve) => { setTimeout(resolve, retry); });
    }
  })();

  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
