// The job's timeline: each task a row, each attempt a bar over time (SVG),
// map and reduce in two colours, failed attempts red, lost or killed ones
// grey, running ones faded.

import { h, s } from './dom.js';
import { duration, plural } from './format.js';

const ROW = 12;
const GAP = 3;
const LABEL = 70;
const AXIS = 22;
const GONE = new Set(['lost', 'killed']);

/** Draws `tasks` into a new element, `width` px wide. */
export function timeline(tasks, width, now = Date.now()) {
  const rows = tasks.filter((t) => t.attempts.length).sort((a, b) => a.task.localeCompare(b.task));
  if (!rows.length) return h('p', { class: 'muted' }, 'No attempt has started yet.');
  const starts = rows.flatMap((t) => t.attempts.map((a) => a.started_ms)).filter(Boolean);
  const t0 = Math.min(...starts);
  const t1 = Math.max(t0 + 1, ...rows.flatMap((t) => t.attempts.map((a) => a.finished_ms || now)));
  const plotW = Math.max(120, width - LABEL - 8);
  const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * plotW;
  const height = AXIS + rows.length * (ROW + GAP) + 4;
  const attempts = rows.reduce((n, t) => n + t.attempts.length, 0);

  const svg = s('svg', {
    class: 'timeline', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `Timeline: ${plural(attempts, 'attempt')} of ${plural(rows.length, 'task')} over ${duration(t1 - t0)}`,
  });
  // The time axis: five ticks, three when narrow.
  const n = plotW < 360 ? 2 : 4;
  for (let i = 0; i <= n; i += 1) {
    const tx = LABEL + (plotW * i) / n;
    svg.append(
      s('line', { class: 'axis', x1: tx, x2: tx, y1: AXIS - 6, y2: height, 'stroke-dasharray': i ? '2 4' : null }),
      s('text', { class: 'tick', x: tx, y: 12, 'text-anchor': i === 0 ? 'start' : i === n ? 'end' : 'middle' },
        duration(((t1 - t0) * i) / n)));
  }
  rows.forEach((task, i) => {
    const y = AXIS + i * (ROW + GAP);
    const kind = task.task.startsWith('m-') ? 'att-map' : 'att-reduce';
    svg.append(s('text', { class: 'row-label', x: 0, y: y + ROW - 2 }, task.task));
    for (const a of task.attempts) {
      if (!a.started_ms) continue;
      const end = a.finished_ms || now;
      const look = !a.outcome || a.outcome === 'succeeded' ? kind : GONE.has(a.outcome) ? 'att-gone' : 'att-bad';
      const cls = `${look}${a.outcome ? '' : ' att-open'}`;
      const w = Math.max(2, x(end) - x(a.started_ms));
      svg.append(s('rect', { class: cls, x: x(a.started_ms), y, width: w, height: ROW, rx: 2 },
        s('title', {}, `${task.task} attempt ${a.attempt} on ${a.worker || '?'}: ${a.outcome || 'running'}, ${duration(end - a.started_ms)}`)));
    }
  });
  return h('div', { class: 'timeline-scroll' }, svg);
}

/** The timeline's legend (text and colour). */
export function timelineLegend() {
  return h('div', { class: 'legend-row', 'aria-hidden': 'true' },
    h('span', {}, h('i', { class: 'swatch map' }), 'map attempt'),
    h('span', {}, h('i', { class: 'swatch reduce' }), 'reduce attempt'),
    h('span', {}, h('i', { class: 'swatch failed' }), 'failed'),
    h('span', {}, h('i', { class: 'swatch gone' }), 'lost or killed'),
    h('span', {}, 'faded: still running'));
}
