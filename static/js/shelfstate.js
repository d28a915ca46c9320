// The shelf as a viewer sees it: snapshot + room events -> shelf, stock, pinned card
// and flash sales, with the rules of shelf/API.md (newest version wins).

/**
 * A product's units told apart, from the server's `stock_figures` (shelf/API.md,
 * "figures"): in a stock entry (`stock.changed`, the snapshot: one show) or a product
 * (`GET /api/products/{id}`: every show). The one reckoning the studio, the watch page
 * and the brand console show: `{ regular, flash, reserved, flash_price, running }`,
 * `flash_price` in minor units (null: no sale holds units), `running`: a flash sale
 * runs (in its show only its units sell). Null when `source` says nothing of stock.
 */
export function stockFigures(source) {
  if (!source) return null;
  const f = source.stock_figures;
  if (!f) {
    if (typeof source.stock !== 'number') return null;
    return { regular: source.stock, flash: 0, reserved: 0, flash_price: null, running: false };
  }
  return {
    regular: f.regular,
    flash: f.flash,
    reserved: f.reserved,
    flash_price: f.flash_price_minor ?? null,
    running: Boolean(f.flash_running),
  };
}

/** The figures in a few words (`money(minor)` formats a price), e.g.
 * "3 at flash price €5.00 · 7 regular · 2 reserved for a flash sale". */
export function figuresText(fig, money) {
  if (!fig) return '';
  const parts = [];
  if (fig.running) {
    parts.push(fig.flash > 0 ? `${fig.flash} at flash price ${money(fig.flash_price)}` : 'flash sale sold out');
  }
  parts.push(`${fig.regular} regular`);
  if (fig.reserved > 0) {
    parts.push(`${fig.reserved} reserved for a flash sale`
      + (fig.running || fig.flash_price === null ? '' : ` at ${money(fig.flash_price)}`));
  }
  return parts.join(' · ');
}

/** The figures as data attributes (`data-regular` ...), for tests and styles. */
export function figuresData(fig) {
  if (!fig) return {};
  return { regular: fig.regular, flash: fig.flash, reserved: fig.reserved,
    flashPrice: fig.flash_price ?? '', running: fig.running ? '1' : '0' };
}

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

  /** The product's figures in this show (`stockFigures`), or null before any. */
  figures(productId) {
    return stockFigures(this.stock[productId]);
  }

  /** The sale running for a product, with live remaining units: the one the latest
   * stock entry says runs (the server's word), else by server time `now`. */
  runningFlash(productId, now) {
    const entry = this.stock[productId];
    if (entry?.flash) {
      const sale = this.flashSales.get(entry.flash.id);
      if (sale) return { ...sale, remaining: entry.flash.remaining };
    }
    if (entry?.stock_figures) {
      // The server said what runs: nothing, or a sale whose end was heard already.
      if (!entry.stock_figures.flash_running) return null;
    }
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
    const fig = this.figures(productId);
    if (fig && this.stock[productId].stock_figures) return fig.running ? fig.flash : fig.regular;
    const flash = this.runningFlash(productId, now);
    if (flash) return flash.remaining;
    return this.stock[productId]?.stock ?? null;
  }
}
