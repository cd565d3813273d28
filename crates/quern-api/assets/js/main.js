// The app shell: routes, the signed-in user, the top bar, and each page's
// lifetime (a page's timers and streams stop when another page shows).

import { api, token, onUnauthorized } from './api.js';
import { route, start, navigate, match, rememberReturn, currentPath } from './router.js';
import { startClock } from './live.js';
import { failure, pageHead } from './components.js';
import { h } from './dom.js';
import loginPage from './pages/login.js';
import jobsPage from './pages/jobs.js';
import jobPage from './pages/job.js';
import taskPage from './pages/task.js';
import workersPage from './pages/workers.js';
import submitPage from './pages/submit.js';
import usersPage from './pages/users.js';

route('login', loginPage);
route('', jobsPage, 'jobs');
route('jobs', jobsPage);
route('jobs/:id', jobPage);
route('jobs/:id/tasks/:task', taskPage);
route('workers', workersPage);
route('submit', submitPage);
route('users', usersPage);

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
let me = null; // {username, role, expires_at}
let current = null; // the page showing: {ctrl, cleanups}
let generation = 0;
let shown = 0;

onUnauthorized(() => {
  me = null;
  const path = currentPath();
  if (path === 'login') return;
  rememberReturn(path);
  navigate('login', { replace: true });
});

document.getElementById('logout').addEventListener('click', () => {
  token.clear();
  sessionStorage.clear(); // the uploads list and return route too
  me = null;
  navigate('login');
});

function dispose() {
  if (!current) return;
  current.ctrl.abort();
  for (const fn of current.cleanups) {
    try { fn(); } catch (e) { console.warn(e); }
  }
  current = null;
}

function updateShell(name) {
  topbar.hidden = name === 'login';
  if (!me) return;
  document.getElementById('whoami-name').textContent = me.username || 'cluster token';
  document.getElementById('whoami-role').textContent = me.role;
  for (const el of document.querySelectorAll('[data-admin-only]')) el.hidden = me.role !== 'admin';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function notFound(text) {
  return h('div', { class: 'panel' },
    pageHead({ title: 'Not found', sub: text }),
    h('a', { href: '#/jobs', class: 'btn btn-quiet' }, 'Back to jobs'));
}

async function show(path) {
  const gen = ++generation;
  dispose();
  const found = match(path);
  if (!found) {
    updateShell('');
    main.replaceChildren(notFound('There is no page at this address.'));
    return;
  }
  if (found.name !== 'login') {
    if (!token.get()) {
      rememberReturn(path);
      navigate('login', { replace: true });
      return;
    }
    if (!me) {
      try {
        me = await api('/auth/validate');
      } catch (e) {
        if (gen !== generation || e.status === 401) return; // the 401 handler went to the login page
        main.replaceChildren(failure(e, () => show(path)));
        return;
      }
      if (gen !== generation) return;
    }
  }
  updateShell(found.name);
  if (found.name === 'users' && me.role !== 'admin') {
    main.replaceChildren(notFound('Only an admin manages users.'));
    return;
  }

  const page = { ctrl: new AbortController(), cleanups: [] };
  current = page;
  const ctx = {
    main,
    params: found.params,
    me,
    signal: page.ctrl.signal,
    isCurrent: () => current === page,
    onCleanup: (fn) => page.cleanups.push(fn),
    title: (t) => { document.title = t ? `${t} · quern` : 'quern'; },
    setMe: (m) => { me = m; },
  };
  main.replaceChildren();
  try {
    await found.page(ctx);
  } catch (e) {
    if (!ctx.isCurrent() || e.name === 'AbortError' || e.status === 401) return;
    main.replaceChildren(failure(e, () => show(path)));
  }
  // Move focus to the new page's heading (not on the first load), so a
  // screen reader announces it and Tab starts from the content.
  if (shown++ && ctx.isCurrent()) {
    const h1 = main.querySelector('h1');
    (h1 || main).focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

startClock();
start(show);
