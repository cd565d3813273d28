// #/login: username and password for a token.

import { api, token } from '../api.js';
import { h } from '../dom.js';
import { alertBox, showError } from '../components.js';
import { navigate, takeReturn } from '../router.js';
import { plural } from '../format.js';

export default function login(ctx) {
  ctx.title('Log in');
  const alert = alertBox();
  const user = h('input', {
    id: 'login-username', name: 'username', type: 'text', autocomplete: 'username',
    autocapitalize: 'none', spellcheck: 'false', required: true,
  });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit', class: 'btn' }, 'Log in');
  const status = h('p', { class: 'small muted', role: 'status' });

  async function submit(e) {
    e.preventDefault();
    showError(alert, null);
    button.disabled = true;
    button.textContent = 'Logging in…';
    try {
      const res = await api('/auth/login', { method: 'POST', body: { username: user.value.trim(), password: pass.value } });
      token.set(res.token);
      ctx.setMe(null);
      navigate(takeReturn(), { replace: true });
    } catch (err) {
      if (err.status === 401) showError(alert, { message: 'Wrong username or password.' });
      else if (err.status === 429) showError(alert, { message: `Too many attempts: ${err.message}. Wait a little, then try again.` });
      else showError(alert, err);
      pass.select();
      pass.focus();
    } finally {
      button.disabled = false;
      button.textContent = 'Log in';
    }
  }

  ctx.main.append(h('div', { class: 'login-wrap' },
    h('section', { class: 'panel login-card', 'aria-labelledby': 'login-title' },
      h('div', { class: 'brand' }, h('img', { src: '/assets/favicon.svg', alt: '', width: 30, height: 30 }), h('span', {}, 'quern')),
      h('h1', { id: 'login-title', class: 'visually-hidden', tabindex: '-1' }, 'Log in to quern'),
      h('p', { class: 'sub' }, 'Sign in to the MapReduce cluster console.'),
      alert,
      h('form', { class: 'form', onsubmit: submit },
        h('div', { class: 'field' }, h('label', { for: user.id }, 'Username'), user),
        h('div', { class: 'field' }, h('label', { for: pass.id }, 'Password'), pass),
        button),
      status)));
  user.focus();

  // Public, no token: tells whether the coordinator answers at all.
  api('/health', { signal: ctx.signal })
    .then((hl) => { status.textContent = `Coordinator ${hl.status} · ${plural(hl.workers, 'worker')} alive`; })
    .catch(() => { status.textContent = 'The coordinator does not answer.'; });
}
