// #/users (admins): list, add and remove users, change passwords.

import { api, seg } from '../api.js';
import { h, table, fillRows } from '../dom.js';
import { alertBox, confirmDialog, pageHead, roleBadge, showError, showNotice } from '../components.js';

/**
 * Asks for a new password in a modal dialog; resolves to it, or null. A
 * change ends the user's sessions (tokens issued before it are refused):
 * the dialog says so.
 */
function passwordDialog(name, isMe) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'password', id: 'new-password', autocomplete: 'new-password', required: true, minlength: 1 });
    const dialog = h('dialog', { 'aria-labelledby': 'pw-title' },
      h('form', { method: 'dialog', class: 'form' },
        h('h2', { id: 'pw-title' }, `New password for ${name}`),
        h('p', { class: 'small muted' }, isMe
          ? 'Changing your password ends your sessions, this one too: you log in again with the new one.'
          : `Changing it ends ${name}'s sessions: they log in again with the new one.`),
        h('div', { class: 'field' }, h('label', { for: input.id }, 'New password'), input),
        h('div', { class: 'form-actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'btn btn-quiet', formnovalidate: true }, 'Cancel'),
          h('button', { type: 'submit', value: 'ok', class: 'btn' }, 'Change password'))));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok' ? input.value : null);
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

export default async function users(ctx) {
  ctx.title('Users');
  const alert = alertBox();
  const cols = [{ label: 'Name' }, { label: 'Role' }, { label: 'Actions' }];
  const tbl = table(cols, [], { caption: 'Users' });
  const body = tbl.querySelector('tbody');
  const count = h('span', { class: 'small muted' });

  const name = h('input', { type: 'text', id: 'user-name', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { type: 'password', id: 'user-password', required: true, autocomplete: 'new-password' });
  const role = h('select', { id: 'user-role' }, h('option', { value: 'user' }, 'user'), h('option', { value: 'admin' }, 'admin'));
  const addBtn = h('button', { type: 'submit', class: 'btn' }, 'Add user');

  async function run(fn, done) {
    try {
      await fn();
      showNotice(alert, done);
    } catch (e) {
      if (e.name !== 'AbortError') showError(alert, e);
    }
    await load();
  }

  function row(u) {
    const isMe = u.name === ctx.me.username;
    const change = h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': `Change password of ${u.name}`, 'data-key': `pw-${u.name}` }, 'Change password');
    change.addEventListener('click', async () => {
      const pw = await passwordDialog(u.name, isMe);
      if (pw) await run(() => api(`/users/${seg(u.name)}/password`, { method: 'POST', body: { password: pw }, signal: ctx.signal }), `The password of ${u.name} was changed.`);
    });
    const remove = h('button', { type: 'button', class: 'btn btn-danger btn-small', 'aria-label': `Remove ${u.name}`, 'data-key': `rm-${u.name}`, disabled: isMe, title: isMe ? 'You cannot remove yourself' : null }, 'Remove');
    remove.addEventListener('click', async () => {
      const ok = await confirmDialog({ title: `Remove ${u.name}?`, body: 'They can no longer log in. Their jobs stay.', confirm: 'Remove user', danger: true });
      if (ok) await run(() => api(`/users/${seg(u.name)}`, { method: 'DELETE', signal: ctx.signal }), `${u.name} was removed.`);
    });
    return [h('span', {}, u.name, isMe ? h('span', { class: 'muted' }, ' (you)') : null), roleBadge(u.role), h('div', { class: 'row' }, change, remove)];
  }

  async function load() {
    try {
      const list = await api('/users', { signal: ctx.signal });
      if (!ctx.isCurrent()) return;
      list.sort((a, b) => a.name.localeCompare(b.name));
      fillRows(body, cols, list.map(row), 'No users yet.');
      count.textContent = `${list.length} ${list.length === 1 ? 'user' : 'users'}`;
    } catch (e) {
      if (e.name !== 'AbortError' && ctx.isCurrent()) showError(alert, e);
    }
  }

  async function add(e) {
    e.preventDefault();
    addBtn.disabled = true;
    const who = name.value.trim();
    await run(async () => {
      await api('/users', { method: 'POST', body: { name: who, password: password.value, role: role.value }, signal: ctx.signal });
      e.target.reset();
    }, `${who} was added.`);
    addBtn.disabled = false;
  }

  ctx.main.append(
    pageHead({ title: 'Users', sub: 'Who may log in. Users see and kill only their own jobs; admins manage everything.' }),
    alert,
    h('section', { class: 'panel panel-flush', 'aria-labelledby': 'users-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'users-title' }, 'Users'), count), tbl),
    h('section', { class: 'panel', 'aria-labelledby': 'add-title' },
      h('h2', { id: 'add-title' }, 'Add a user'),
      h('form', { class: 'form', onsubmit: add },
        h('div', { class: 'form-grid' },
          h('div', { class: 'field' }, h('label', { for: name.id }, 'Name'), name),
          h('div', { class: 'field' }, h('label', { for: password.id }, 'Password'), password),
          h('div', { class: 'field' }, h('label', { for: role.id }, 'Role'), role)),
        h('div', { class: 'form-actions' }, addBtn))));
  await load();
}
