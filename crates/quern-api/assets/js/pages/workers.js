// #/workers: the cluster's workers; admins drain, enable and deregister them.

import { api, followEvents, seg } from '../api.js';
import { h, table, fillRows } from '../dom.js';
import { alertBox, badge, confirmDialog, liveIndicator, pageHead, setLive, showError, showNotice } from '../components.js';
import { refresher, every, agoEl } from '../live.js';
import { number } from '../format.js';

export default async function workers(ctx) {
  ctx.title('Workers');
  const isAdmin = ctx.me.role === 'admin';
  const alert = alertBox();
  const live = liveIndicator();
  const summary = h('span', { class: 'small muted', role: 'status' });
  const cols = [
    { label: 'Worker' }, { label: 'Host' }, { label: 'State' }, { label: 'Slots', class: 'num' },
    { label: 'Running', class: 'num' }, { label: 'Apps', class: 'wrap' }, { label: 'Version' }, { label: 'Last heartbeat' },
    ...(isAdmin ? [{ label: 'Actions' }] : []),
  ];
  const tbl = table(cols, [], { caption: 'Workers' });
  const body = tbl.querySelector('tbody');

  ctx.main.append(
    pageHead({ title: 'Workers', sub: 'The machines that run map and reduce attempts.', actions: [live] }),
    alert,
    h('section', { class: 'panel panel-flush', 'aria-label': 'Worker list' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Registered workers'), summary), tbl));

  async function act(w, action) {
    const verbs = {
      drain: { title: `Drain ${w.id}?`, body: 'It finishes the attempts it runs and takes no new ones.', confirm: 'Drain', done: 'is draining' },
      enable: { title: `Enable ${w.id}?`, body: 'It takes new attempts again.', confirm: 'Enable', done: 'is enabled' },
      deregister: {
        title: `Deregister ${w.id}?`, body: 'The coordinator forgets it; its running attempts are lost and rerun elsewhere. It may register again when it restarts.',
        confirm: 'Deregister', danger: true, done: 'was deregistered',
      },
    }[action];
    if (!await confirmDialog(verbs) || !ctx.isCurrent()) return;
    try {
      await api(`/workers/${seg(w.id)}/${action}`, { method: 'POST', signal: ctx.signal });
      showNotice(alert, `Worker ${w.id} ${verbs.done}.`);
    } catch (e) {
      if (e.name !== 'AbortError') showError(alert, e);
    }
    refresh.trigger();
  }

  function actions(w) {
    const btn = (label, action, cls = 'btn-quiet') => h('button', {
      type: 'button', class: `btn btn-small ${cls}`, 'aria-label': `${label} ${w.id}`, 'data-key': `${action}-${w.id}`,
      onclick: () => act(w, action),
    }, label);
    return h('div', { class: 'row' },
      w.state === 'alive' ? btn('Drain', 'drain') : null,
      w.state === 'draining' || w.state === 'blacklisted' ? btn('Enable', 'enable') : null,
      btn('Deregister', 'deregister', 'btn-danger'));
  }

  function row(w) {
    return [
      h('code', {}, w.id),
      w.host,
      badge(w.state),
      number(w.slots),
      number(w.running),
      w.apps.length ? w.apps.join(', ') : h('span', { class: 'muted' }, 'none'),
      w.version,
      agoEl(w.last_heartbeat_ms),
      ...(isAdmin ? [actions(w)] : []),
    ];
  }

  const refresh = refresher(async () => {
    try {
      const list = await api('/workers', { signal: ctx.signal });
      if (!ctx.isCurrent()) return;
      if (!alert.classList.contains('notice')) showError(alert, null);
      list.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
      fillRows(body, cols, list.map(row), 'No worker has registered. Start one with `quern worker`.');
      const alive = list.filter((w) => w.state === 'alive').length;
      const slots = list.reduce((n, w) => n + (w.state === 'alive' ? w.slots : 0), 0);
      const running = list.reduce((n, w) => n + w.running, 0);
      summary.textContent = `${number(list.length)} ${list.length === 1 ? 'worker' : 'workers'} · ${number(alive)} alive · ${number(running)} of ${number(slots)} slots busy`;
    } catch (e) {
      if (e.name !== 'AbortError' && ctx.isCurrent()) showError(alert, e);
    }
  }, { minGap: 500 });
  ctx.onCleanup(refresh.stop);
  refresh.trigger();

  if (isAdmin) {
    ctx.onCleanup(followEvents({
      onEvent: (e) => { if (e.type === 'worker' || e.type === 'lagged' || e.type.startsWith('attempt')) refresh.trigger(); },
      onStatus: (st) => setLive(live, st),
    }));
  } else {
    setLive(live, 'polling', 'Auto-refresh every 5 s');
  }
  // Running counts and heartbeats change without events.
  ctx.onCleanup(every(5000, refresh.trigger));
}
