// WHIP (publish) and WHEP (play) from the browser, RFC 9725 resource semantics:
// POST the offer (with its candidates gathered), apply the answer, DELETE the
// Location when done. The server's answer carries all of its candidates.
// A viewer plays from the URL the media endpoint names (maybe another node, with a
// token standing for the viewer); the POST follows a 307 to a node with room, and the
// resource's Location is relative to the URL that answered (RFC 9725 s4.5).

import { ApiError, bearer } from './api.js';

const GATHER_TIMEOUT_MS = 2000;

/** The STUN/TURN servers to use for the session (GET /api/sessions/{id}/ice-servers:
 * time-limited TURN credentials when the server has a TURN service); none if it
 * cannot be read, so a page on the same network still connects. */
async function iceServers(sessionId, token) {
  try {
    const res = await fetch(`/api/sessions/${sessionId}/ice-servers`, { headers: bearer(token) });
    if (!res.ok) return [];
    return (await res.json()).ice_servers || [];
  } catch {
    return [];
  }
}

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
  const location = new URL(res.headers.get('Location'), res.url || new URL(endpoint, window.location.href));
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  return { href: location.href, recording: res.headers.get('Liveshelf-Recording') };
}

class Resource {
  constructor(pc, { href, recording }, token) {
    this.pc = pc;
    this.location = href;
    this.token = token;
    /** Why the show is not recorded (a publisher's "Liveshelf-Recording: off; reason=..."), or null. */
    this.notRecording = recording && recording.startsWith('off')
      ? (recording.split('reason=')[1] || 'unknown reason') : null;
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
  const pc = new RTCPeerConnection({ iceServers: await iceServers(sessionId, token) });
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

/** The WHEP URL to play the session from (GET /api/sessions/{id}/media-endpoint). */
export async function mediaEndpoint(sessionId, token) {
  const res = await fetch(`/api/sessions/${sessionId}/media-endpoint`, { headers: bearer(token) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const error = body.error || {};
    throw new ApiError(res.status, error.code || `http_${res.status}`,
      error.message || `media endpoint answered ${res.status}`);
  }
  return body.url;
}

/** Plays the session into a <video> from the URL the media endpoint names; resolves to
 * a Resource. That URL's token stands for the viewer: no Authorization is sent. */
export async function play(sessionId, video, token) {
  const [endpoint, servers] = await Promise.all(
    [mediaEndpoint(sessionId, token), iceServers(sessionId, token)]);
  const pc = new RTCPeerConnection({ iceServers: servers });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.addEventListener('track', (ev) => {
    stream.addTrack(ev.track);
    if (video.srcObject !== stream) video.srcObject = stream;
  });
  try {
    return new Resource(pc, await exchange(pc, endpoint, null), null);
  } catch (err) {
    pc.close();
    throw err;
  }
}
