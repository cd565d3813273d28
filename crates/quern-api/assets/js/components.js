// Small pieces every page uses: badges, progress bars, alerts, dialogs, headings.

import { h } from './dom.js';
import { number } from './format.js';

/** A state as a coloured badge with its name (never colour alone). */
export function badge(state, { large = false } = {}) {
  return h('span', { class: `badge${large ? ' badge-large' : ''}`, 'data-state': state }, state || 'unknown');
}

/** A role badge: admin / user. */
export function roleBadge(role) {
  return h('span', { class: 'role' }, role);
}

/** One phase's tasks as a bar (succeeded solid, running striped, failed red)
 *  with "n/total", e.g. phaseProgress('map', job.maps). */
export function phaseProgress(label, p, { showLabel = true } = {}) {
  const total = p.total || 0;
  const pct = (n) => (total ? `${(100 * n) / total}%` : '0%');
  const text = total
    ? `${number(p.succeeded)} of ${number(total)} ${label} tasks succeeded, ${number(p.running)} running, ${number(p.failed)} failed`
    : `no ${label} tasks yet`;
  return h('div', { class: 'progress' },
    showLabel ? h('span', { class: 'progress-label', 'aria-hidden': 'true' }, label) : null,
    h('div', {
      class: 'bar', role: 'progressbar', 'aria-label': `${label} tasks`,
      'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': p.succeeded || 0, 'aria-valuetext': text, title: text,
    },
    h('span', { class: 'done', style: { width: pct(p.succeeded) } }),
    h('span', { class: 'running', style: { width: pct(p.running) } }),
    h('span', { class: 'failed', style: { width: pct(p.failed) } })),
    h('span', { class: 'progress-count', 'aria-hidden': 'true' }, total ? `${number(p.succeeded)}/${number(total)}` : '–'));
}

/** The top of a page: breadcrumbs, a focusable h1, a subtitle and actions. */
export function pageHead({ crumbs = [], title, sub, actions = [] }) {
  return h('div', { class: 'page-head' },
    h('div', {},
      crumbs.length ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
        crumbs.map((c, i) => [i ? ' / ' : '', c.href ? h('a', { href: c.href }, c.label) : c.label])) : null,
      h('h1', { tabindex: '-1' }, title),
      sub ? h('p', { class: 'sub' }, sub) : null),
    actions.length ? h('div', { class: 'row' }, actions) : null);
}

/** An alert region: empty (hidden) until showError puts a message in it. */
export function alertBox() {
  return h('div', { class: 'alert', role: 'alert' });
}

/** Shows an error's message (text only) in an alert region; null clears it. */
export function showError(box, err) {
  box.classList.remove('notice');
  box.textContent = err ? (err.message || String(err)) : '';
}

/** Shows a confirmation (not an error) in an alert-style region. */
export function showNotice(box, text) {
  box.textContent = text;
  box.classList.toggle('notice', !!text);
  setTimeout(() => { if (box.textContent === text) showError(box, null); }, 8000);
}

/** A "Loading…" line with a spinner. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

/** A whole page that failed to load, with a retry button. */
export function failure(err, retry) {
  return h('div', { class: 'panel' },
    h('h1', { tabindex: '-1' }, 'Something went wrong'),
    h('p', { class: 'alert', role: 'alert' }, err.message || String(err)),
    retry ? h('button', { type: 'button', class: 'btn btn-quiet', onclick: retry }, 'Try again') : null);
}

/** Says whether the page follows live events, reconnects or polls. */
export function liveIndicator(initial = 'Connecting…') {
  return h('span', { class: 'live-dot', 'data-live': 'off' }, initial);
}

export function setLive(el, status, text) {
  el.dataset.live = status === 'live' || status === 'polling' ? 'on' : 'off';
  el.textContent = text || { live: 'Live', reconnecting: 'Reconnecting…', off: 'Not live', polling: 'Auto-refresh' }[status] || status;
}

/**
 * Asks for confirmation in a modal <dialog>. Resolves true when the user
 * confirms; Escape or Cancel resolve false.
 */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', value: 'ok', class: `btn ${danger ? 'btn-danger' : ''}` }, confirm);
    const cancel = h('button', { type: 'submit', value: 'cancel', class: 'btn btn-quiet', formnovalidate: true }, 'Cancel');
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const dialog = h('dialog', { 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        body ? h('p', { class: 'muted' }, body) : null,
        h('div', { class: 'form-actions' }, cancel, ok)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
