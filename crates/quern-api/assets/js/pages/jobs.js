// #/jobs: every job the caller may see, newest first, filtered and paged, live.

import { api, followEvents } from '../api.js';
import { h, table, fillRows } from '../dom.js';
import { alertBox, badge, liveIndicator, pageHead, phaseProgress, setLive, showError } from '../components.js';
import { refresher, every, spanEl } from '../live.js';
import { number, time, fullTime } from '../format.js';

const PAGE = 20;
const STATES = ['pending', 'running', 'succeeded', 'failed', 'killed'];
// Kept while the app is open, so coming back shows the same view.
const view = { state: '', mine: false, offset: 0 };

const COLS = [
  { label: 'Job' }, { label: 'App' }, { label: 'Owner' }, { label: 'State' },
  { label: 'Progress' }, { label: 'Submitted' }, { label: 'Duration', class: 'num' },
];

function row(job) {
  return [
    h('a', { href: `#/jobs/${job.id}`, class: 'id-link', 'data-key': `job-${job.id}` }, `#${job.id}`),
    job.app,
    job.owner || h('span', { class: 'muted' }, 'cluster'),
    badge(job.state),
    h('div', { class: 'phase-bars' }, phaseProgress('map', job.maps), phaseProgress('reduce', job.reduces)),
    h('time', { datetime: new Date(job.submitted_ms).toISOString(), title: fullTime(job.submitted_ms) }, time(job.submitted_ms)),
    spanEl(job.started_ms, job.finished_ms),
  ];
}

export default async function jobs(ctx) {
  ctx.title('Jobs');
  const isAdmin = ctx.me.role === 'admin';
  const alert = alertBox();
  const live = liveIndicator();
  const count = h('span', { class: 'muted small', role: 'status' });

  const stateSelect = h('select', { id: 'jobs-state' },
    h('option', { value: '' }, 'All states'),
    STATES.map((s) => h('option', { value: s, selected: view.state === s }, s[0].toUpperCase() + s.slice(1))));
  stateSelect.value = view.state;
  stateSelect.addEventListener('change', () => { view.state = stateSelect.value; view.offset = 0; refresh.trigger(); });

  const mine = h('input', { type: 'checkbox', id: 'jobs-mine', checked: view.mine });
  mine.addEventListener('change', () => { view.mine = mine.checked; view.offset = 0; refresh.trigger(); });

  const prev = h('button', { type: 'button', class: 'btn btn-quiet btn-small' }, '← Newer');
  const next = h('button', { type: 'button', class: 'btn btn-quiet btn-small' }, 'Older →');
  prev.addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE); refresh.trigger(); });
  next.addEventListener('click', () => { view.offset += PAGE; refresh.trigger(); });

  const tbl = table(COLS, [], { caption: 'Jobs, newest first' });
  const body = tbl.querySelector('tbody');
  let loaded = false;

  ctx.main.append(
    pageHead({ title: 'Jobs', sub: isAdmin ? 'Every job on the cluster, newest first.' : 'Your jobs, newest first.', actions: [live, h('a', { href: '#/submit', class: 'btn' }, 'Submit a job')] }),
    alert,
    h('section', { class: 'panel panel-flush', 'aria-label': 'Job list' },
      h('div', { class: 'panel-head' },
        h('div', { class: 'row filters' },
          h('label', { for: stateSelect.id, class: 'label' }, 'State'), stateSelect,
          isAdmin && ctx.me.username ? h('label', { class: 'check' }, mine, 'Only my jobs') : null),
        count),
      tbl,
      h('div', { class: 'table-foot' }, h('span', { class: 'small muted' }, ''), h('div', { class: 'row' }, prev, next))));
  const range = ctx.main.querySelector('.table-foot > span');

  const refresh = refresher(async () => {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(view.offset) });
    if (view.state) q.set('state', view.state);
    if (view.mine && ctx.me.username) q.set('owner', ctx.me.username);
    let page;
    try {
      page = await api(`/jobs?${q}`, { signal: ctx.signal });
    } catch (e) {
      if (e.name !== 'AbortError') showError(alert, e);
      return;
    }
    if (!ctx.isCurrent()) return;
    showError(alert, null);
    if (!page.jobs.length && view.offset > 0 && page.total > 0) {
      view.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
      refresh.trigger();
      return;
    }
    const empty = view.state ? `No ${view.state} jobs.` : 'No jobs yet. Submit one to get started.';
    fillRows(body, COLS, page.jobs.map(row), empty);
    count.textContent = `${number(page.total)} ${page.total === 1 ? 'job' : 'jobs'}`;
    range.textContent = page.total
      ? `Showing ${number(view.offset + 1)}–${number(view.offset + page.jobs.length)} of ${number(page.total)}`
      : '';
    prev.disabled = view.offset === 0;
    next.disabled = view.offset + page.jobs.length >= page.total;
    loaded = true;
  }, { minGap: 800 });
  ctx.onCleanup(refresh.stop);
  refresh.trigger();

  if (isAdmin) {
    // Admins follow every job's events; a job or task change refreshes the list.
    ctx.onCleanup(followEvents({
      onEvent: (e) => { if (e.type !== 'worker') refresh.trigger(); },
      onStatus: (s) => setLive(live, s),
    }));
    ctx.onCleanup(every(15_000, refresh.trigger)); // durations, and a safety net
  } else {
    // Users cannot follow every job: poll.
    setLive(live, 'polling', 'Auto-refresh every 3 s');
    ctx.onCleanup(every(3000, refresh.trigger, () => loaded));
  }
}
