// Hash routes (`#/jobs/12/tasks/m-00003`), so the server only serves `/`.

const routes = [];
const RETURN_KEY = 'quern.return';

/** Adds a route: route('jobs/:id', page). Segments starting with ':' are params. */
export function route(pattern, page, name = pattern.split('/')[0]) {
  routes.push({ parts: pattern.split('/'), page, name });
}

/** The current path, without '#/' ('' for none). */
export function currentPath() {
  return decodeURI(location.hash.replace(/^#\/?/, '')).replace(/\/+$/, '');
}

/** Finds the route of `path`: {page, name, params} or null. */
export function match(path) {
  const parts = path.split('/');
  for (const r of routes) {
    if (r.parts.length !== parts.length) continue;
    const params = {};
    const ok = r.parts.every((p, i) => {
      if (p.startsWith(':')) {
        if (!parts[i]) return false;
        params[p.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      }
      return p === parts[i];
    });
    if (ok) return { page: r.page, name: r.name, params };
  }
  return null;
}

/** Goes to a path ('jobs/12'); `replace` keeps it out of the history. */
export function navigate(path, { replace = false } = {}) {
  const hash = `#/${path}`;
  if (location.hash === hash) {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else if (replace) {
    history.replaceState(null, '', hash);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = hash;
  }
}

/** Calls onChange(path) now and on every change of the hash. */
export function start(onChange) {
  window.addEventListener('hashchange', () => onChange(currentPath()));
  onChange(currentPath());
}

/** Remembers where to come back to after logging in. */
export function rememberReturn(path) {
  if (path && path !== 'login') sessionStorage.setItem(RETURN_KEY, path);
}

/** The remembered path (once), or the default. */
export function takeReturn(fallback = 'jobs') {
  const path = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  return path || fallback;
}
