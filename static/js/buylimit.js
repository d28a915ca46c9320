// What the signed-in viewer already bought in each flash sale of a show, from their own
// orders (GET /api/me/orders), so Buy can say "you reached the limit" instead of
// inviting a tap the server refuses. Refreshed when the page opens, after signing in,
// and after a refused order.

import { api, session } from './api.js';

const COUNTED = new Set(['placed', 'paid']);

export class FlashAllowance {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.bought = new Map(); // flash sale id -> units
    this.generation = 0;
  }

  /** Reloads the counts; resolves to true when they changed. */
  async refresh() {
    const generation = ++this.generation;
    const next = new Map();
    if (session.user()) {
      let page;
      try { page = await api('GET', '/api/me/orders?limit=200'); } catch { return false; }
      for (const order of page.orders || []) {
        if (order.session_id !== this.sessionId || !order.flash_sale_id) continue;
        if (!COUNTED.has(order.status)) continue;
        next.set(order.flash_sale_id, (next.get(order.flash_sale_id) || 0) + order.quantity);
      }
    }
    if (generation !== this.generation) return false; // a newer refresh wins
    const changed = JSON.stringify([...next]) !== JSON.stringify([...this.bought]);
    this.bought = next;
    return changed;
  }

  /** Counts an order just placed (`order.flash_sale_id` set when it took the flash price). */
  add(order) {
    if (!order || !order.flash_sale_id || !COUNTED.has(order.status)) return;
    this.bought.set(order.flash_sale_id, (this.bought.get(order.flash_sale_id) || 0) + order.quantity);
  }

  /** Units the viewer may still buy in `sale` ({ id, per_buyer_limit }). */
  left(sale) {
    if (!sale || !sale.per_buyer_limit) return Infinity;
    return Math.max(0, sale.per_buyer_limit - (this.bought.get(sale.id) || 0));
  }
}
