// A host's figures per show, from the existing reports: orders, units, GMV and
// commission from the commission report (GET /api/hosts/{id}/commission), viewers
// from the show's stats (GET /api/sessions/{id}/stats). Money stays per currency.

import { api } from './api.js';
import { money } from './format.js';

const empty = () => ({ orders: 0, units: 0, gmv: new Map(), commission: new Map() });

function add(amounts, currency, minor) {
  amounts.set(currency, (amounts.get(currency) ?? 0) + minor);
}

/** Sales per show: Map session id -> { orders, units, gmv, commission } (Maps by
 * currency); `sessionId` narrows the report to one show. */
export async function salesByShow(hostId, sessionId = null) {
  const query = sessionId ? `?session_id=${sessionId}` : '';
  const report = await api('GET', `/api/hosts/${hostId}/commission${query}`);
  const shows = new Map();
  for (const row of report.rows) {
    if (!shows.has(row.session_id)) shows.set(row.session_id, empty());
    const show = shows.get(row.session_id);
    show.orders += row.orders;
    show.units += row.units;
    add(show.gmv, row.currency, row.gmv_minor);
    add(show.commission, row.currency, row.commission_total_minor);
  }
  return shows;
}

/** The sales of one show (zeros when it sold nothing). */
export async function salesOf(hostId, sessionId) {
  return (await salesByShow(hostId, sessionId)).get(sessionId) ?? empty();
}

/** How many people watched the show (its stats' `audience.viewers`). */
export async function viewersOf(sessionId) {
  const stats = await api('GET', `/api/sessions/${sessionId}/stats`);
  return stats.audience.viewers;
}

/** Money by currency as one line: '€12.50 + $3.00'; '–' for none. */
export function moneyText(amounts) {
  if (!amounts || !amounts.size) return '–';
  return [...amounts].map(([currency, minor]) => money(minor, currency)).join(' + ');
}
