// The host's cooperation inbox in the studio (for an agency: the hosts it acts for):
// brands' proposals with Accept, Decline and Counter-offer, live (negotiation.js).
// Mounted by one <script type="module"> line in studio.html; it builds its own panel
// under the page header.

import { session } from './api.js';
import { mountNegotiation } from './negotiation.js';

let unmount = () => {};

function start() {
  unmount();
  unmount = () => {};
  const user = session.user();
  if (user && (user.role === 'host' || user.role === 'agency')) {
    unmount = mountNegotiation(user, {
      party: 'host',
      anchor: document.querySelector('header.top'),
      title: user.role === 'agency' ? 'Cooperation inbox (your hosts)' : 'Cooperation inbox',
    });
  }
}

window.addEventListener('liveshelf:auth', start);
start();
