// Show times: stored and sent in UTC (ISO 8601), shown and typed in the viewer's own
// time zone (a datetime-local input holds local wall-clock time without a zone).

/** '2099-05-01T11:00:00.000Z' -> 'Fri, 1 May 2099, 20:00' in the viewer's zone. */
export function localWhen(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit',
  });
}

const pad = (n) => String(n).padStart(2, '0');

/** An ISO time -> the value of a datetime-local input in the viewer's zone ('' for none). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
    + `T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value (local time) -> ISO in UTC; null for ''; throws when malformed. */
export function fromLocalInput(value) {
  if (!value) return null;
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(value);
  const d = match ? new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]),
    Number(match[4]), Number(match[5])) : null;
  if (!d || Number.isNaN(d.getTime()) || toLocalInput(d.toISOString()) !== value) {
    throw new Error('Enter the date and time like 2026-12-24 18:30.');
  }
  return d.toISOString();
}
