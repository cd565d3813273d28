// Building the DOM without HTML strings: every API string becomes text.

/**
 * h('a', {href: '#/jobs', class: 'x', onclick: fn}, 'text', child, [more])
 * - `class`, `for`, `aria-*`, `data-*` and other keys become attributes
 *   (true: present, false/null/undefined: absent);
 * - `on<event>` functions become listeners;
 * - `style` is an object of properties (set through the CSSOM, CSP-safe);
 * - `text` sets textContent; children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Like h, for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style' && value && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key === 'text') {
      el.textContent = value ?? '';
    } else if (key === 'value' && 'value' in el) {
      el.value = value ?? '';
    } else if (key === 'checked' || key === 'selected' || key === 'disabled') {
      el[key] = !!value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(key, String(value));
    }
  }
}

/** Appends children (strings as text) to el. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces el's children, keeping the focused element focused when an
 *  element with the same data-key comes back. */
export function replace(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.getAttribute('data-key') : null;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
  return el;
}

/** A table inside a horizontally scrolling wrapper (a named region that
 *  takes focus, so the keyboard can scroll it on a narrow screen). `cols` are
 *  {label, class?}; `rows` are arrays of cells (nodes or text) or
 *  {cells, key?}. */
export function table(cols, rows, { caption, empty = 'Nothing here yet.' } = {}) {
  const head = h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c.class }, c.label))));
  const body = h('tbody');
  fillRows(body, cols, rows, empty);
  return h('div', { class: 'table-wrap', role: 'region', tabindex: '0', 'aria-label': caption || 'Table' },
    h('table', {}, caption ? h('caption', { class: 'visually-hidden' }, caption) : null, head, body));
}

/** Refills a table's body made by table(). */
export function fillRows(body, cols, rows, empty = 'Nothing here yet.') {
  const trs = rows.map((row) => {
    const cells = Array.isArray(row) ? row : row.cells;
    return h('tr', {}, cells.map((cell, i) => h('td', { class: cols[i] && cols[i].class }, cell)));
  });
  if (!trs.length) trs.push(h('tr', {}, h('td', { colspan: cols.length, class: 'empty' }, empty)));
  replace(body, trs);
}
