// Talking to the coordinator: the token, JSON requests and their errors,
// uploads, downloads and the event stream.

const BASE = '/api/v1';
const TOKEN_KEY = 'quern.token';

/** An error the API answered (or a network failure: status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

let unauthorizedHandler = () => {};

/** What to do when a request answers 401 (the token expired or is wrong). */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

function unauthorized() {
  token.clear();
  unauthorizedHandler();
}

function authHeaders(extra = {}) {
  const t = token.get();
  return t ? { Authorization: `Bearer ${t}`, ...extra } : extra;
}

/** Encodes one path segment (user names, task names, file names). */
export const seg = (v) => encodeURIComponent(String(v));

async function errorOf(res) {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText || 'error'}`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch { /* not JSON: keep the status line */ }
  if (res.status === 413 && code === `http_${res.status}`) message = 'The upload is too large for the coordinator.';
  return new ApiError(res.status, code, message);
}

async function send(path, init, { login = false } = {}) {
  let res;
  try {
    res = await fetch(BASE + path, { cache: 'no-store', ...init });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Cannot reach the coordinator. Check that it is running, then try again.');
  }
  if (res.status === 401 && !login) {
    unauthorized();
    throw new ApiError(401, 'unauthorized', 'Your session has ended. Please log in again.');
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

/** A JSON request: api('/jobs'), api('/jobs', {method: 'POST', body: {...}}).
 *  Resolves to the parsed body (null for 204); rejects with ApiError. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = authHeaders({ Accept: 'application/json' });
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await send(path, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  }, { login: path === '/auth/login' });
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Uploads files as multipart parts named `file`; onProgress(fraction).
 *  Resolves to [{name, location, bytes}]. (XHR: fetch reports no upload progress.) */
export function upload(files, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const f of files) form.append('file', f, f.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${BASE}/uploads`);
    const t = token.get();
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'The upload failed: cannot reach the coordinator.')));
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* keep null */ }
      if (xhr.status === 401) {
        unauthorized();
        reject(new ApiError(401, 'unauthorized', 'Your session has ended. Please log in again.'));
      } else if (xhr.status < 200 || xhr.status > 299) {
        const err = body && body.error;
        const fallback = xhr.status === 413 ? 'The files are too large for the coordinator.' : `Upload failed (${xhr.status}).`;
        reject(new ApiError(xhr.status, (err && err.code) || `http_${xhr.status}`, (err && err.message) || fallback));
      } else {
        resolve((body && body.files) || []);
      }
    });
    xhr.send(form);
  });
}

/** Downloads a file the API streams, with the token: fetch → Blob → object
 *  URL → a temporary <a download> click (a plain link cannot send headers). */
export async function download(path, filename) {
  const res = await send(path, { headers: authHeaders() });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * Follows the event stream (`job`: one job's events; none: all, admins only).
 * Reads it with fetch (EventSource cannot send the token), parses the SSE
 * lines itself, and reconnects with backoff (1 s doubling to 30 s). After a
 * reconnect it sends onEvent({type: 'lagged'}): events may have been missed.
 * onStatus('live' | 'reconnecting' | 'off'). Returns a function that stops.
 */
export function followEvents({ job, onEvent, onStatus = () => {} }) {
  const ctrl = new AbortController();
  const { signal } = ctrl;
  const url = `${BASE}/events${job !== undefined && job !== null ? `?job=${seg(job)}` : ''}`;
  (async () => {
    let delay = 1000;
    let connectedBefore = false;
    while (!signal.aborted) {
      try {
        const res = await fetch(url, { headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store', signal });
        if (res.status === 401) { unauthorized(); return; }
        if (res.status === 403 || res.status === 404) { onStatus('off'); return; } // retrying will not help
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onStatus('live');
        if (connectedBefore) onEvent({ type: 'lagged', missed: null });
        connectedBefore = true;
        delay = 1000;
        await readStream(res.body, signal, onEvent);
      } catch (e) {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      onStatus('reconnecting');
      await sleep(delay + Math.random() * 300, signal);
      delay = Math.min(delay * 2, 30_000);
    }
  })();
  return () => ctrl.abort();
}

/** Reads `text/event-stream` from a body until it ends; calls onEvent with
 *  each event's JSON data, its `type` taken from the `event:` field. */
async function readStream(body, signal, onEvent) {
  const reader = body.getReader();
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
  const decoder = new TextDecoder();
  let buffer = '';
  let type = '';
  let data = [];
  const line = (l) => {
    if (l === '') {
      if (data.length) dispatch(type || 'message', data.join('\n'), onEvent);
      type = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return; // a comment: the keep-alive
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    // Lines end with \n, \r\n or \r; a \r that ends the chunk may be half
    // of a \r\n, so it stays in the buffer until the next chunk.
    const parts = buffer.split(/\r\n|\n|\r(?!$)/);
    buffer = parts.pop();
    parts.forEach(line);
  }
}

function dispatch(type, raw, onEvent) {
  let data;
  try { data = JSON.parse(raw); } catch { return; }
  if (!data || typeof data !== 'object') return;
  onEvent({ ...data, type });
}
