// The brand's side of negotiating in the brand console: hosts' counter-offers with
// Accept, Decline and Counter-offer, the proposals waiting for a host, and each
// agreement's rounds, live (negotiation.js). Mounted by one <script type="module"> line
// in brand.html; it builds its own panel above the console.

import { session } from './api.js';
import { mountNegotiation } from './negotiation.js';

let unmount = () => {};

function start() {
  unmount();
  unmount = () => {};
  const user = session.user();
  if (user && user.role === 'brand') {
    unmount = mountNegotiation(user, {
      party: 'brand',
      anchor: document.querySelector('#intro'),
      title: 'Negotiations',
    });
  }
}

window.addEventListener('liveshelf:auth', start);
start();
