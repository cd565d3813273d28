// #/jobs/ID/tasks/NAME: a task's attempts and each attempt's log.

import { api, followEvents, seg } from '../api.js';
import { h, replace, table } from '../dom.js';
import { alertBox, badge, liveIndicator, pageHead, setLive, showError } from '../components.js';
import { refresher, every, spanEl } from '../live.js';
import { number, percent, time, fullTime } from '../format.js';

const ATTEMPT_COLS = [
  { label: 'Attempt', class: 'num' }, { label: 'Worker' }, { label: 'Started' }, { label: 'Finished' },
  { label: 'Duration', class: 'num' }, { label: 'Outcome' }, { label: 'Progress', class: 'num' },
  { label: 'Records', class: 'num' }, { label: 'Error', class: 'wrap' },
];

function when(ms) {
  return ms ? h('time', { datetime: new Date(ms).toISOString(), title: fullTime(ms) }, time(ms)) : '–';
}

function attemptRow(a) {
  return [
    String(a.attempt),
    a.worker ? h('code', {}, a.worker) : '–',
    when(a.started_ms),
    when(a.finished_ms),
    spanEl(a.started_ms, a.finished_ms),
    badge(a.outcome || 'running'),
    percent(a.progress || 0),
    number(a.records || 0),
    a.error || h('span', { class: 'muted' }, '–'),
  ];
}

export default async function task(ctx) {
  const { id, task: name } = ctx.params;
  ctx.title(`${name} · Job ${id}`);
  const alert = alertBox();
  const live = liveIndicator();
  const stateRegion = h('p', { class: 'row', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const attemptsBox = h('div');
  const logsBox = h('div');
  const logViews = new Map(); // attempt → {section, head, error, pre}
  let state = '';

  ctx.main.append(
    pageHead({
      crumbs: [{ label: 'Jobs', href: '#/jobs' }, { label: `Job #${id}`, href: `#/jobs/${encodeURIComponent(id)}` }, { label: name }],
      title: `Task ${name}`,
      actions: [live],
    }),
    alert,
    h('section', { class: 'panel panel-flush', 'aria-labelledby': 'attempts-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'attempts-title' }, 'Attempts'), stateRegion), attemptsBox),
    h('section', { class: 'panel', 'aria-labelledby': 'logs-title' }, h('h2', { id: 'logs-title' }, 'Logs'), logsBox));

  function logView(entry) {
    let v = logViews.get(entry.attempt);
    if (!v) {
      const head = h('div', { class: 'attempt-head' });
      const error = h('div', { class: 'error-box' });
      const pre = h('pre', { class: 'log', tabindex: '0' });
      const section = h('section', { class: 'attempt', 'aria-label': `Attempt ${entry.attempt} log` }, head, error, pre);
      v = { section, head, error, pre };
      logViews.set(entry.attempt, v);
      logsBox.append(section);
    }
    return v;
  }

  function renderLogs(entries) {
    if (!entries.length) {
      replace(logsBox, h('p', { class: 'muted' }, 'No attempt has run yet.'));
      logViews.clear();
      return;
    }
    if (!logViews.size) logsBox.replaceChildren();
    for (const e of entries) {
      const v = logView(e);
      replace(v.head, h('h3', {}, `Attempt ${e.attempt}`), badge(e.outcome || 'running'),
        h('span', { class: 'small muted' }, e.worker ? `on ${e.worker}` : ''));
      v.error.hidden = !e.error;
      v.error.textContent = e.error ? `Error: ${e.error}` : '';
      const text = e.log || '';
      if (v.pre.textContent !== text) {
        const atEnd = v.pre.scrollTop + v.pre.clientHeight >= v.pre.scrollHeight - 4;
        v.pre.textContent = text;
        v.pre.classList.toggle('muted', !text);
        if (!text) v.pre.textContent = 'This attempt wrote nothing to its log.';
        if (atEnd) v.pre.scrollTop = v.pre.scrollHeight;
      }
    }
  }

  const refresh = refresher(async () => {
    try {
      const [tasks, logs] = await Promise.all([
        api(`/jobs/${seg(id)}/tasks`, { signal: ctx.signal }),
        api(`/jobs/${seg(id)}/tasks/${seg(name)}/log`, { signal: ctx.signal }),
      ]);
      if (!ctx.isCurrent()) return;
      const t = tasks.find((x) => x.task === name);
      if (!t) {
        showError(alert, { message: `Job #${id} has no task ${name}.` });
        return;
      }
      showError(alert, null);
      if (t.state !== state) {
        state = t.state;
        replace(stateRegion, h('span', { class: 'visually-hidden' }, 'State:'), badge(t.state),
          h('span', { class: 'small muted' }, t.failures ? `${number(t.failures)} failed` : ''),
          t.committed != null ? h('span', { class: 'small muted' }, `committed attempt ${t.committed}`) : null);
      }
      replace(attemptsBox, table(ATTEMPT_COLS, t.attempts.map(attemptRow), { caption: 'Attempts', empty: 'No attempt has started yet.' }));
      renderLogs(logs);
      if (state === 'succeeded' || state === 'failed') setLive(live, 'off', 'Finished');
    } catch (e) {
      if (e.name !== 'AbortError' && ctx.isCurrent()) showError(alert, e);
    }
  }, { minGap: 500 });
  ctx.onCleanup(refresh.stop);
  refresh.trigger();

  ctx.onCleanup(followEvents({
    job: id,
    onEvent: (e) => { if (!e.task || e.task === name) refresh.trigger(); },
    onStatus: (st) => { if (state !== 'succeeded' && state !== 'failed') setLive(live, st); },
  }));
  ctx.onCleanup(every(2000, refresh.trigger, () => state === 'running' || state === 'pending'));
}
