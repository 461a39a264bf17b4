// Shared bits of the pages: element lookup and building, and toasts for what the user must
// see (errors stay until dismissed). Text only: nothing a peer sends becomes markup.

export const $ = (id) => document.getElementById(id);

/** Toasts shown at once; the oldest leaves first. */
const TOASTS_MAX = 5;
/** How long a toast stays, in ms (errors stay until dismissed or pushed out). */
const TOAST_MS = 6000;

/** An element with a class and text. */
export function el(tag, className = '', text = '') {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

const ICONS = {
  lock: 'M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h1Zm2 0h6V7a3 3 0 0 0-6 0v3Z',
  mail: 'M3 5h18a1 1 0 0 1 1 1v12a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1Zm1 2.4V17h16V7.4l-8 5.3-8-5.3ZM5.6 7 12 11.2 18.4 7H5.6Z',
};

/** A small inline icon (no font or file needed). */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', `icon ${name}`);
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', ICONS[name]);
  svg.append(p);
  return svg;
}

/** A toast: kind is `error`, `warn` or `info`. Errors are also alerts for screen readers. */
export function toast(kind, text) {
  const box = $('toasts');
  const t = el('div', `toast ${kind}`);
  if (kind === 'error') t.setAttribute('role', 'alert');
  t.append(el('span', '', text));
  const close = el('button', 'small', '×');
  close.setAttribute('aria-label', 'Dismiss');
  close.onclick = () => t.remove();
  t.append(close);
  box.append(t);
  while (box.children.length > TOASTS_MAX) box.firstChild.remove();
  if (kind !== 'error') setTimeout(() => t.remove(), TOAST_MS);
}
