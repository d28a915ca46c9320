// The room channel (GET /api/sessions/{id}/ws) from the browser: keeps seq/epoch,
// resumes with since/epoch after any drop, checks the sequence for gaps, and hands
// each event to listeners by type. Signed in, each connection first asks for a
// one-minute ticket (POST /api/auth/ticket) and puts it in the socket's URL: the
// bearer token itself never goes into a URL.
//
//   const room = new RoomClient(sessionId, { token });
//   room.on('hello', (hello) => render(hello.snapshot));   // snapshot null if recovered
//   room.on('card.shown', (data, event) => ...);
//   room.on('*', (data, event) => ...);                     // every event
//   room.on('status', (state) => ...);                      // connecting/open/closed/banned
//   room.connect();

const CLOSE_FORBIDDEN = 4003;
const CLOSE_HISTORY_LOST = 4009;

export class RoomClient {
  constructor(sessionId, { token = null, maxBackoffMs = 5000 } = {}) {
    this.sessionId = sessionId;
    this.token = token;
    this.seq = null;
    this.epoch = null;
    this.listeners = new Map();
    this.socket = null;
    this.backoffMs = 250;
    this.maxBackoffMs = maxBackoffMs;
    this.stopped = false;
    this.refs = 0;
    this.pending = new Map();
    this.retryTimer = null;
    this.lastHello = null;
    this.attempts = 0;
    this.onOnline = () => this.reconnectNow();
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
    return this;
  }

  emit(type, data, event) {
    for (const fn of this.listeners.get(type) || []) fn(data, event);
  }

  url(ticket) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const params = new URLSearchParams();
    if (this.seq !== null && this.epoch) {
      params.set('since', this.seq);
      params.set('epoch', this.epoch);
    }
    if (ticket) params.set('ticket', ticket);
    return `${scheme}://${location.host}/api/sessions/${this.sessionId}/ws?${params}`;
  }

  /** A ticket to open the socket as the signed-in user; null as a guest (also when the
   * token no longer counts: then the socket opens as a guest's). */
  async ticket() {
    if (!this.token) return null;
    const res = await fetch('/api/auth/ticket', {
      method: 'POST', headers: { Authorization: `Bearer ${this.token}` } });
    if (res.status === 401) return null;
    if (!res.ok) throw new Error(`no ticket (${res.status})`);
    return (await res.json()).ticket;
  }

  connect() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline); // the same function: added once
    clearTimeout(this.retryTimer);
    this.emit('status', 'connecting');
    const attempt = ++this.attempts; // a newer connect() makes this one moot
    this.ticket().then(
      (ticket) => { if (attempt === this.attempts && !this.stopped) this.open(ticket); },
      () => { if (attempt === this.attempts && !this.stopped) this.scheduleRetry(); },
    );
  }

  open(ticket) {
    const socket = new WebSocket(this.url(ticket));
    this.socket = socket;
    socket.onmessage = (msg) => this.receive(JSON.parse(msg.data));
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      for (const { reject } of this.pending.values()) reject(new Error('disconnected'));
      this.pending.clear();
      if (ev.code === CLOSE_FORBIDDEN) {
        this.stopped = true;
        this.emit('status', 'banned');
        return;
      }
      if (ev.code === CLOSE_HISTORY_LOST) this.seq = null;
      this.emit('status', 'closed');
      if (!this.stopped) this.scheduleRetry();
    };
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    const wait = this.backoffMs * (0.5 + Math.random());
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  reconnectNow() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    this.backoffMs = 250;
    this.connect();
  }

  /** Drops the socket (e.g. after a token change) and connects again, resuming. */
  restart({ token } = {}) {
    if (token !== undefined) this.token = token;
    const old = this.socket;
    this.socket = null;
    if (old) old.close();
    this.connect();
  }

  close() {
    this.stopped = true;
    this.attempts += 1;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  receive(msg) {
    if (msg.type === 'hello') {
      this.backoffMs = 250;
      this.seq = msg.seq;
      this.epoch = msg.epoch;
      this.lastHello = { seq: msg.seq, epoch: msg.epoch, recovered: msg.recovered };
      this.emit('status', 'open');
      this.emit('hello', msg);
      return;
    }
    if (msg.type === 'error' || msg.type === 'pong') {
      const waiter = this.pending.get(msg.ref);
      if (waiter) {
        this.pending.delete(msg.ref);
        if (msg.type === 'error') waiter.reject(Object.assign(new Error(msg.message), msg));
        else waiter.resolve(msg);
      }
      this.emit(msg.type, msg);
      return;
    }
    if (typeof msg.seq !== 'number') return;
    if (this.seq !== null && msg.seq <= this.seq) return; // already applied
    if (this.seq !== null && msg.seq !== this.seq + 1) {
      // A gap: reconnect from the last seq we applied; the server replays the rest.
      this.restart();
      return;
    }
    this.seq = msg.seq;
    this.emit(msg.type, msg.data, msg);
    this.emit('*', msg.data, msg);
  }

  /** Sends a client message; resolves when no error came back for its ref within 1.5 s. */
  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(Object.assign(new Error('Not connected; retrying…'),
        { code: 'not_connected' }));
    }
    const ref = `c${++this.refs}`;
    this.socket.send(JSON.stringify({ ...message, ref }));
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      setTimeout(() => {
        if (this.pending.delete(ref)) resolve({ ref });
      }, 1500);
    });
  }
}
