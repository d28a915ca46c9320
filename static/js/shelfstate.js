// The shelf as a viewer sees it: snapshot + room events -> shelf, stock, pinned card
// and flash sales, with the rules of shelf/API.md (newest version wins).

export class ShelfState {
  constructor() {
    this.items = [];
    this.version = -1;
    this.stock = {};
    this.pinned = null;
    this.flashSales = new Map();
  }

  /** Replaces everything from a hello snapshot. */
  load(snapshot) {
    this.items = snapshot.shelf || [];
    this.version = snapshot.shelf_version ?? -1;
    this.stock = {};
    this.mergeStock(snapshot.stock || {});
    this.pinned = snapshot.pinned || null;
    this.flashSales = new Map((snapshot.flash_sales || []).map((f) => [f.id, f]));
  }

  /** Applies one room event; returns true when it concerned the shelf. */
  apply(type, data) {
    switch (type) {
      case 'shelf.updated':
        if (data.version <= this.version) return true;
        this.version = data.version;
        this.items = data.shelf;
        this.mergeStock(data.stock || {});
        return true;
      case 'card.shown':
        this.pinned = data;
        return true;
      case 'card.hidden':
        if (this.pinned && this.pinned.pin_id === data.pin_id) this.pinned = null;
        return true;
      case 'stock.changed':
        this.mergeStock({ [data.product_id]: data });
        return true;
      case 'flash.scheduled':
      case 'flash.started':
        this.flashSales.set(data.id, data);
        return true;
      case 'flash.ended':
      case 'flash.cancelled':
      case 'flash.declined':
        this.flashSales.delete(data.id);
        return true;
      default:
        return false;
    }
  }

  mergeStock(entries) {
    for (const [pid, entry] of Object.entries(entries)) {
      const known = this.stock[pid];
      if (!known || entry.version > known.version) this.stock[pid] = entry;
    }
  }

  item(productId) {
    return this.items.find((i) => i.product_id === productId) || null;
  }

  /** The sale running for a product at server time `now`, with live remaining units. */
  runningFlash(productId, now) {
    for (const sale of this.flashSales.values()) {
      if (sale.product_id !== productId) continue;
      if (sale.status === 'cancelled' || now < sale.starts_ms || now >= sale.ends_ms) continue;
      const live = this.stock[productId]?.flash;
      const remaining = live && live.id === sale.id ? live.remaining : sale.remaining;
      return { ...sale, remaining };
    }
    return null;
  }

  /** What a buyer can get now: flash units while a sale runs, else regular stock. */
  available(productId, now) {
    const flash = this.runningFlash(productId, now);
    if (flash) return flash.remaining;
    return this.stock[productId]?.stock ?? null;
  }
}
