// The task grid: one focusable cell per task, grouped into map and reduce,
// updated in place (focus and scroll stay put while the job runs). Each group
// is one Tab stop; arrow keys, Home and End move between its cells.

import { h } from './dom.js';
import { number, percent, plural } from './format.js';
import { navigate } from './router.js';

function latest(task) {
  return task.attempts.length ? task.attempts[task.attempts.length - 1] : null;
}

/** What the cell says to assistive technology (and in its tooltip). */
export function describe(task) {
  const last = latest(task);
  const running = task.state === 'running' && last && !last.outcome;
  // The cell shows the task's number: its name starts with it (WCAG's
  // label in name), then the task's id.
  const kind = task.task.startsWith('m-') ? 'Map' : 'Reduce';
  const number = Number(task.task.split('-')[1]);
  const parts = [`${kind} task ${number} (${task.task}): ${task.state}${running ? ` ${percent(last.progress || 0)}` : ''}`];
  parts.push(plural(task.attempts.length, 'attempt'));
  if (task.failures) parts.push(plural(task.failures, 'failure'));
  parts.push(last && last.worker ? `worker ${last.worker}` : 'no worker yet');
  return parts.join(', ');
}

function group(title) {
  const summary = h('span', { class: 'small muted' });
  const list = h('ul', { class: 'task-grid', 'aria-label': title });
  const el = h('section', { class: 'grid-group' }, h('h3', {}, title, summary), list);
  const g = { el, list, summary, cells: new Map(), current: null };
  list.addEventListener('keydown', (e) => moveFocus(e, g));
  return g;
}

/** Makes `button` the group's one Tab stop, and focuses it if asked. */
function makeCurrent(g, button, focus = false) {
  if (g.current && g.current !== button) g.current.tabIndex = -1;
  g.current = button;
  button.tabIndex = 0;
  if (focus) button.focus();
}

function moveFocus(e, g) {
  const buttons = [...g.list.querySelectorAll('button')];
  const i = buttons.indexOf(document.activeElement);
  if (i < 0) return;
  let j;
  if (e.key === 'ArrowRight') j = Math.min(i + 1, buttons.length - 1);
  else if (e.key === 'ArrowLeft') j = Math.max(i - 1, 0);
  else if (e.key === 'Home') j = 0;
  else if (e.key === 'End') j = buttons.length - 1;
  else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    // The nearest cell in the next row up or down (the grid wraps).
    const dir = e.key === 'ArrowDown' ? 1 : -1;
    const from = buttons[i].getBoundingClientRect();
    let best = Infinity;
    j = i;
    buttons.forEach((b, k) => {
      const r = b.getBoundingClientRect();
      const dy = (r.top - from.top) * dir;
      if (dy < 4) return;
      const score = dy * 1000 + Math.abs(r.left - from.left);
      if (score < best) { best = score; j = k; }
    });
  } else {
    return;
  }
  e.preventDefault();
  makeCurrent(g, buttons[j], true);
}

function summarize(tasks) {
  const by = { pending: 0, running: 0, succeeded: 0, failed: 0 };
  for (const t of tasks) by[t.state] = (by[t.state] || 0) + 1;
  return `${number(tasks.length)} · ${number(by.succeeded)} succeeded, ${number(by.running)} running, ${number(by.pending)} pending, ${number(by.failed)} failed`;
}

/** A grid for job `jobId`: {el, update(tasks)}. */
export function taskGrid(jobId) {
  const maps = group('Map tasks');
  const reduces = group('Reduce tasks');
  const empty = h('p', { class: 'muted' }, 'The job has not been planned yet: its tasks appear once a worker splits the input.');
  const legend = h('div', { class: 'legend-row', 'aria-hidden': 'true' },
    ['pending', 'running', 'succeeded', 'failed'].map((s) => h('span', {}, h('i', { class: `swatch ${s}` }), s)),
    h('span', {}, 'Underlined number: retried'));
  const el = h('div', {}, empty, maps.el, reduces.el, legend);

  function cellFor(g, task) {
    let cell = g.cells.get(task.task);
    if (!cell) {
      const fill = h('span', { class: 'fill' });
      const num = h('span', { class: 'num', 'aria-hidden': 'true' }, String(Number(task.task.split('-')[1])));
      const button = h('button', { type: 'button', class: 'cell', tabindex: -1, 'data-key': `cell-${task.task}` }, fill, num);
      button.addEventListener('click', () => navigate(`jobs/${jobId}/tasks/${encodeURIComponent(task.task)}`));
      button.addEventListener('focus', () => makeCurrent(g, button));
      cell = { button, fill, li: h('li', {}, button) };
      g.cells.set(task.task, cell);
      g.list.append(cell.li);
    }
    return cell;
  }

  function fillGroup(g, tasks) {
    g.el.hidden = tasks.length === 0;
    g.summary.textContent = summarize(tasks);
    const names = new Set(tasks.map((t) => t.task));
    for (const [name, cell] of g.cells) {
      if (!names.has(name)) {
        if (g.current === cell.button) g.current = null;
        cell.li.remove();
        g.cells.delete(name);
      }
    }
    for (const task of tasks) {
      const { button, fill } = cellFor(g, task);
      const label = describe(task);
      if (button.getAttribute('aria-label') !== label) {
        button.setAttribute('aria-label', label);
        button.title = label;
      }
      button.dataset.state = task.state;
      button.dataset.retried = String(task.failures > 0);
      const last = latest(task);
      fill.style.width = task.state === 'running' && last ? percent(Math.min(1, last.progress || 0)) : '0%';
    }
    if (!g.current && tasks.length) makeCurrent(g, g.cells.get(tasks[0].task).button);
  }

  function update(tasks) {
    const sorted = [...tasks].sort((a, b) => a.task.localeCompare(b.task));
    empty.hidden = sorted.length > 0;
    legend.hidden = sorted.length === 0;
    fillGroup(maps, sorted.filter((t) => t.task.startsWith('m-')));
    fillGroup(reduces, sorted.filter((t) => !t.task.startsWith('m-')));
  }

  update([]);
  return { el, update };
}
