// Display helpers: money in minor units, times on the server clock, safe DOM building.

const digitsCache = new Map();

/** Minor digits of an ISO currency (2 for EUR, 0 for JPY, 3 for KWD). */
export function fractionDigits(currency) {
  if (!digitsCache.has(currency)) {
    const fmt = new Intl.NumberFormat('en', { style: 'currency', currency });
    digitsCache.set(currency, fmt.resolvedOptions().maximumFractionDigits);
  }
  return digitsCache.get(currency);
}

/** 12345, 'EUR' -> '€123.45' (the currency's own number of minor digits). */
export function money(minor, currency) {
  const digits = fractionDigits(currency);
  return new Intl.NumberFormat(undefined, { style: 'currency', currency })
    .format(minor / 10 ** digits);
}

/** '1:05' for 65 seconds; '1:02:03' past an hour. */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** Tracks the offset between the server clock and ours (from server_time fields). */
export class ServerClock {
  constructor() { this.offset = 0; }
  sync(serverTimeMs) { this.offset = serverTimeMs - Date.now(); }
  now() { return Date.now() + this.offset; }
}

/**
 * h('li', {class: 'x', dataset: {id: 1}, onclick}, 'text', child) -> element.
 * Strings become text nodes, never HTML: user text (chat, titles) is safe here.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** '19.99', 'EUR' -> 1999; null when the text is not an amount in that currency. */
export function parseMoney(text, currency) {
  const digits = fractionDigits(currency);
  const match = /^\s*(\d{1,12})(?:[.,](\d*))?\s*$/.exec(String(text));
  if (!match || (match[2] || '').length > digits) return null;
  const fraction = (match[2] || '').padEnd(digits, '0');
  return Number(match[1]) * 10 ** digits + Number(fraction || 0);
}

/** A buyer's masked name from the ticker ('a***e') as people read it: 'A…e'. */
export function maskedName(masked) {
  const text = String(masked || '').trim();
  if (!text) return 'Someone';
  const [first, ...rest] = text.replace(/\*+/g, '…');
  return first.toUpperCase() + rest.join('');
}
