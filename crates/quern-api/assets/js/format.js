// Formatting numbers, sizes, times and durations for people.

const nf = new Intl.NumberFormat();

/** 1234567 → "1,234,567" (the reader's locale). */
export function number(n) {
  return Number.isFinite(n) ? nf.format(n) : '–';
}

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = -1;
  do { v /= 1024; u += 1; } while (v >= 1024 && u < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** Milliseconds → "850 ms", "12.3 s", "4 m 05 s", "2 h 03 m", "3 d 4 h". */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

/** How long something ran: start..end, or start..now while it runs (0: not started). */
export function span(startMs, endMs, now = Date.now()) {
  if (!startMs) return '–';
  return duration((endMs || now) - startMs);
}

const sameDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const otherDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** ms since the epoch → "14:03:22" today, "Mar 4, 14:03" otherwise (0: "–"). */
export function time(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return (new Date().toDateString() === d.toDateString() ? sameDay : otherDay).format(d);
}

/** ms since the epoch → full date and time, for title/datetime attributes. */
export function fullTime(ms) {
  return ms ? full.format(new Date(ms)) : '';
}

/** ms since the epoch → "3 s ago", "5 m ago", "2 h ago". */
export function ago(ms, now = Date.now()) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ago`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ago`;
  return `${Math.floor(hr / 24)} d ago`;
}

/** 0.4567 → "46%". */
export function percent(f) {
  return Number.isFinite(f) ? `${Math.round(f * 100)}%` : '–';
}

/** "1 attempt", "3 attempts". */
export function plural(n, one, many = `${one}s`) {
  return `${number(n)} ${n === 1 ? one : many}`;
}

/** A local timestamp for names: "20240304-140322". */
export function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
