// Keeping a page current: debounced refreshes, polling, and a clock that
// updates "3 s ago" and running durations every second.

import { ago, span, fullTime } from './format.js';

/**
 * Wraps an async refresh so that triggers coalesce: at most one refresh
 * runs at a time, and refreshes start at least `minGap` ms apart.
 * Returns {trigger, stop}.
 */
export function refresher(fn, { minGap = 400 } = {}) {
  let running = false;
  let again = false;
  let timer = null;
  let last = 0;
  let stopped = false;

  async function run() {
    timer = null;
    if (stopped) return;
    running = true;
    last = Date.now();
    try {
      await fn();
    } catch (e) {
      if (e && e.name !== 'AbortError') console.warn('refresh failed', e);
    } finally {
      running = false;
      if (again) { again = false; trigger(); }
    }
  }

  function trigger() {
    if (stopped) return;
    if (running) { again = true; return; }
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + minGap - Date.now()));
  }

  return { trigger, stop() { stopped = true; clearTimeout(timer); } };
}

/** Calls fn every `ms` while `when()` holds. Returns a function that stops. */
export function every(ms, fn, when = () => true) {
  const t = setInterval(() => { if (when() && !document.hidden) fn(); }, ms);
  return () => clearInterval(t);
}

/** A <time> that says how long ago `ms` was, kept current by the clock. */
export function agoEl(ms) {
  const el = document.createElement('time');
  el.dataset.ago = String(ms || 0);
  if (ms) {
    el.dateTime = new Date(ms).toISOString();
    el.title = fullTime(ms);
  }
  el.textContent = ago(ms);
  return el;
}

/** A <span> with how long start..end took, counting up while end is 0. */
export function spanEl(start, end) {
  const el = document.createElement('span');
  el.className = 'mono-num';
  if (start && !end) el.dataset.since = String(start);
  el.textContent = span(start, end);
  return el;
}

let clock = null;

/** Starts the once-a-second clock (idempotent). */
export function startClock() {
  if (clock) return;
  clock = setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll('[data-ago]')) el.textContent = ago(Number(el.dataset.ago), now);
    for (const el of document.querySelectorAll('[data-since]')) el.textContent = span(Number(el.dataset.since), 0, now);
  }, 1000);
}
