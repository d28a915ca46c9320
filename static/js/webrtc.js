// WHIP (publish) and WHEP (play) from the browser, RFC 9725 resource semantics:
// POST the offer (with its candidates gathered), apply the answer, DELETE the
// Location when done. The server's answer carries all of its candidates.

import { ApiError, bearer } from './api.js';

const GATHER_TIMEOUT_MS = 2000;

function waitForCandidates(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener('icegatheringstatechange', check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

async function exchange(pc, endpoint, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForCandidates(pc);
  const headers = { 'Content-Type': 'application/sdp', ...bearer(token) };
  const res = await fetch(endpoint, { method: 'POST', headers, body: pc.localDescription.sdp });
  if (res.status !== 201) {
    let error = {};
    try { error = (await res.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(res.status, error.code || `http_${res.status}`,
      error.message || `${endpoint} answered ${res.status}`);
  }
  const location = new URL(res.headers.get('Location'), new URL(endpoint, window.location.href));
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  return location.href;
}

class Resource {
  constructor(pc, location, token) {
    this.pc = pc;
    this.location = location;
    this.token = token;
  }

  async close() {
    this.pc.close();
    if (!this.location) return;
    try { await fetch(this.location, { method: 'DELETE', headers: bearer(this.token) }); } catch { /* gone */ }
    this.location = null;
  }
}

/** Publishes a MediaStream to /whip/{sessionId}; resolves to a Resource. */
export async function publish(sessionId, stream, token) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  }
  try {
    return new Resource(pc, await exchange(pc, `/whip/${sessionId}`, token), token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Plays /whep/{sessionId} into a <video>; resolves to a Resource. */
export async function play(sessionId, video, token) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.addEventListener('track', (ev) => {
    stream.addTrack(ev.track);
    if (video.srcObject !== stream) video.srcObject = stream;
  });
  try {
    return new Resource(pc, await exchange(pc, `/whep/${sessionId}`, token), token);
  } catch (err) {
    pc.close();
    throw err;
  }
}
