// #/jobs/ID: a job's state, events, progress, task grid, timeline, counters
// and output, kept current by its event stream (and a 2 s poll while it runs,
// since a running attempt's progress is not an event).

import { api, download, followEvents, seg } from '../api.js';
import { h, replace, table } from '../dom.js';
import {
  alertBox, badge, confirmDialog, liveIndicator, pageHead, phaseProgress, setLive, showError, showNotice,
} from '../components.js';
import { refresher, every, spanEl } from '../live.js';
import { bytes, number, time, fullTime } from '../format.js';
import { taskGrid } from '../taskgrid.js';
import { timeline, timelineLegend } from '../timeline.js';

const ACTIVE = new Set(['pending', 'running']);

function fact(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}

function when(ms) {
  return ms ? h('time', { datetime: new Date(ms).toISOString(), title: fullTime(ms) }, time(ms)) : h('span', { class: 'muted' }, 'not yet');
}

function counterTable(title, counters) {
  const names = Object.keys(counters || {}).sort();
  const rows = names.map((name) => {
    const v = counters[name];
    const shown = typeof v === 'number' && /bytes/i.test(name) ? h('span', { title: `${number(v)} bytes` }, bytes(v))
      : typeof v === 'number' ? number(v) : JSON.stringify(v);
    return [h('code', {}, name), shown];
  });
  return h('div', {}, h('h3', {}, title),
    table([{ label: 'Counter' }, { label: 'Value', class: 'num' }], rows, { caption: title, empty: 'None yet.' }));
}

export default async function job(ctx) {
  const id = ctx.params.id;
  ctx.title(`Job ${id}`);
  let current = await api(`/jobs/${seg(id)}`, { signal: ctx.signal });
  if (!ctx.isCurrent()) return;

  const alert = alertBox();
  const live = liveIndicator();
  const stateRegion = h('p', { class: 'row', id: 'job-state', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const kill = h('button', { type: 'button', class: 'btn btn-danger', 'data-key': 'kill' }, 'Kill job');
  const sub = h('p', { class: 'sub' });
  const facts = h('dl', { class: 'facts' });
  const errorBox = h('div', { class: 'error-box', role: 'note' });
  const progress = h('div', { class: 'big-progress' });
  const grid = taskGrid(id);
  const timelineBox = h('div');
  const countersBox = h('div', { class: 'counters' });
  const eventsBody = h('div');
  const eventsPanel = h('section', { class: 'panel', 'aria-labelledby': 'events-title', hidden: true },
    h('h2', { id: 'events-title' }, 'Events'), eventsBody);
  let eventCount = -1;
  const outputBody = h('div');
  const outputPanel = h('section', { class: 'panel', 'aria-labelledby': 'output-title', hidden: true },
    h('h2', { id: 'output-title' }, 'Output'), outputBody);
  let output = null;
  let lastState = '';
  let tasks = [];

  const head = pageHead({ crumbs: [{ label: 'Jobs', href: '#/jobs' }, { label: `Job #${id}` }], title: `Job #${id}`, actions: [live, kill] });
  head.querySelector('h1').after(sub);
  ctx.main.append(
    head, alert,
    h('section', { class: 'panel', 'aria-label': 'Summary' }, stateRegion, facts, errorBox),
    eventsPanel,
    h('section', { class: 'panel', 'aria-labelledby': 'progress-title' }, h('h2', { id: 'progress-title' }, 'Progress'), progress),
    h('section', { class: 'panel', 'aria-labelledby': 'tasks-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'tasks-title' }, 'Tasks'), h('span', { class: 'small muted' }, 'Select a task for its attempts and logs; arrow keys move between tasks.')),
      grid.el),
    outputPanel,
    h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Timeline'), timelineBox, timelineLegend()),
    h('section', { class: 'panel', 'aria-labelledby': 'counters-title' }, h('h2', { id: 'counters-title' }, 'Counters'), countersBox));

  function renderJob(j) {
    sub.textContent = `${j.app} · ${j.owner ? `submitted by ${j.owner}` : 'submitted with the cluster token'}`;
    const stateText = `${j.state}|${j.phase}`;
    if (stateText !== lastState) {
      lastState = stateText;
      replace(stateRegion, h('span', { class: 'visually-hidden' }, 'State:'), badge(j.state, { large: true }),
        h('span', { class: 'muted' }, `Phase: ${j.phase}`));
    }
    kill.hidden = !ACTIVE.has(j.state);
    replace(facts,
      fact('App', j.app),
      fact('Owner', j.owner || 'cluster token'),
      fact('Output', h('code', {}, j.output)),
      fact('Input', bytes(j.input_bytes)),
      fact('Priority', String(j.priority)),
      fact('Submitted', when(j.submitted_ms)),
      fact('Started', when(j.started_ms)),
      fact('Finished', when(j.finished_ms)),
      fact('Duration', spanEl(j.started_ms, j.finished_ms)));
    errorBox.hidden = !j.error;
    errorBox.textContent = j.error ? `Error: ${j.error}` : '';
    replace(progress,
      h('div', {}, h('h3', {}, 'Map'), phaseProgress('map', j.maps, { showLabel: false }), legendOf(j.maps)),
      h('div', {}, h('h3', {}, 'Reduce'), phaseProgress('reduce', j.reduces, { showLabel: false }), legendOf(j.reduces)));
  }

  function legendOf(p) {
    return h('p', { class: 'legend' },
      `${number(p.succeeded)} of ${number(p.total)} succeeded · ${number(p.running)} running · ${number(p.pending)} pending · ${number(p.failed)} failed`);
  }

  // Workers lost with their attempts, and why (the platform's own reason,
  // such as Kubernetes' OOMKilled): shown once there is one.
  function renderEvents(events) {
    if (events.length === eventCount) return;
    eventCount = events.length;
    const rows = events.map((e) => [when(e.at_ms), h('code', {}, e.reason), e.message]);
    replace(eventsBody,
      table([{ label: 'When' }, { label: 'Reason' }, { label: 'What happened' }], rows, { caption: 'Job events', empty: 'None.' }));
    eventsPanel.hidden = events.length === 0;
  }

  function renderOutput(out) {
    const rows = out.files.map((f) => {
      const button = h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': `Download ${f.name}`, 'data-key': `dl-${f.name}` }, 'Download');
      button.addEventListener('click', async () => {
        button.disabled = true;
        button.textContent = 'Downloading…';
        try {
          await download(`/jobs/${seg(id)}/output/${seg(f.name)}`, f.name);
        } catch (e) {
          showError(alert, e);
        } finally {
          button.disabled = false;
          button.textContent = 'Download';
        }
      });
      return [h('code', {}, f.name), h('span', { title: `${number(f.bytes)} bytes` }, bytes(f.bytes)), button];
    });
    replace(outputBody,
      h('p', { class: 'small muted' }, 'Written to ', h('code', {}, out.location)),
      table([{ label: 'File' }, { label: 'Size', class: 'num' }, { label: 'Download' }], rows, { caption: 'Output files', empty: 'The job wrote no files.' }));
    outputPanel.hidden = false;
  }

  function drawTimeline() {
    replace(timelineBox, timeline(tasks, Math.max(320, timelineBox.clientWidth || 800)));
  }

  const refresh = refresher(async () => {
    try {
      const [j, t, c, ev] = await Promise.all([
        api(`/jobs/${seg(id)}`, { signal: ctx.signal }),
        api(`/jobs/${seg(id)}/tasks`, { signal: ctx.signal }),
        api(`/jobs/${seg(id)}/counters`, { signal: ctx.signal }),
        api(`/jobs/${seg(id)}/events`, { signal: ctx.signal }),
      ]);
      if (!ctx.isCurrent()) return;
      current = j;
      tasks = t;
      renderJob(j);
      grid.update(t);
      drawTimeline();
      replace(countersBox, counterTable('Engine', c.engine), counterTable('App', c.app));
      renderEvents(ev);
      if (j.state === 'succeeded' && !output) {
        output = await api(`/jobs/${seg(id)}/output`, { signal: ctx.signal });
        if (ctx.isCurrent()) renderOutput(output);
      }
      if (!alert.classList.contains('notice')) showError(alert, null);
      if (!ACTIVE.has(j.state)) finished();
    } catch (e) {
      if (e.name !== 'AbortError' && ctx.isCurrent()) showError(alert, e);
    }
  }, { minGap: 300 });
  ctx.onCleanup(refresh.stop);

  kill.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Kill job #${id}?`,
      body: 'Its running attempts stop and its output is not committed. This cannot be undone.',
      confirm: 'Kill job',
      danger: true,
    });
    if (!ok || !ctx.isCurrent()) return;
    kill.disabled = true;
    try {
      const res = await api(`/jobs/${seg(id)}/kill`, { method: 'POST', signal: ctx.signal });
      if (!res.killed) showNotice(alert, 'The job was not killed: it had already ended, or was committing its output.');
    } catch (e) {
      if (e.name !== 'AbortError') showError(alert, e);
    } finally {
      kill.disabled = false;
      refresh.trigger();
    }
  });

  renderJob(current);
  refresh.trigger();

  let stopEvents = null;
  function finished() {
    if (stopEvents) { stopEvents(); stopEvents = null; }
    setLive(live, 'off', 'Finished');
  }
  if (ACTIVE.has(current.state)) {
    stopEvents = followEvents({
      job: id,
      onEvent: () => refresh.trigger(),
      onStatus: (st) => { if (stopEvents) setLive(live, st); },
    });
    ctx.onCleanup(() => stopEvents && stopEvents());
  } else {
    finished();
  }
  // Progress is not an event: poll while it runs (and until the output of a
  // succeeded job has been listed).
  ctx.onCleanup(every(2000, refresh.trigger, () => ACTIVE.has(current.state) || (current.state === 'succeeded' && !output)));
  const onResize = () => drawTimeline();
  window.addEventListener('resize', onResize);
  ctx.onCleanup(() => window.removeEventListener('resize', onResize));
}
