// The task grid: one focusable cell per task, grouped into map and reduce,
// updated in place (focus and scroll stay put while the job runs).

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
  const parts = [`${task.task} ${task.state}${running ? ` ${percent(last.progress || 0)}` : ''}`];
  parts.push(plural(task.attempts.length, 'attempt'));
  if (task.failures) parts.push(plural(task.failures, 'failure'));
  parts.push(last && last.worker ? `worker ${last.worker}` : 'no worker yet');
  return parts.join(', ');
}

function group(title) {
  const summary = h('span', { class: 'small muted' });
  const list = h('ul', { class: 'task-grid', 'aria-label': title });
  const el = h('section', { class: 'grid-group' }, h('h3', {}, title, summary), list);
  return { el, list, summary, cells: new Map() };
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
      const button = h('button', { type: 'button', class: 'cell', 'data-key': `cell-${task.task}` }, fill, num);
      button.addEventListener('click', () => navigate(`jobs/${jobId}/tasks/${encodeURIComponent(task.task)}`));
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
      if (!names.has(name)) { cell.li.remove(); g.cells.delete(name); }
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
