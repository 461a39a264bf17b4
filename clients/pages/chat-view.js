// The chat page's DOM: builders for each piece (a message, a room row, a person, a toast),
// all through textContent (never innerHTML), so nothing a peer sends is markup.

import { $, el, toast, icon } from '/ui.js';

export { $, el, toast };

export function time(ts) {
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function contentText(content) {
  return typeof content === 'string' ? content : JSON.stringify(content);
}

/** One message: who, when, what; `@me` mentions are marked; `old`: from before the server
 * restarted (its id is no longer the room's). */
export function messageItem(m, me, old = false) {
  const item = el('div', old ? 'msg old' : 'msg');
  if (m.id !== undefined && !old) item.dataset.id = m.id;
  const mine = me && m.from?.userId === me.userId;
  if (mine) item.classList.add('mine');
  const head = el('div', 'msg-head');
  head.append(el('b', '', m.from?.username ?? '?'), el('span', 'muted', time(m.ts ?? Date.now())));
  const body = el('div', 'msg-body', contentText(m.content));
  if (me && !mine && body.textContent.includes(`@${me.username}`)) item.classList.add('mention');
  item.append(head, body);
  return item;
}

export function noteItem(text) {
  return el('div', 'note', text);
}

/** A row of the room list. */
export function roomItem(r, { active, onOpen }) {
  const li = el('li', r.joined ? 'joined' : '');
  if (active) li.classList.add('active');
  const b = el('button', 'row-button');
  b.dataset.room = r.room;
  const name = el('span', 'name', `# ${r.room}`);
  if (r.hasPassword) name.append(icon('lock'));
  b.append(name);
  const meta = el('span', 'meta');
  if (r.unread > 0) meta.append(el('span', 'count', String(r.unread)));
  meta.append(el('span', 'muted', r.maxUsers ? `${r.members}/${r.maxUsers}` : String(r.members ?? 0)));
  b.append(meta);
  if (r.description) b.title = r.description;
  b.onclick = () => onOpen(r.room);
  li.append(b);
  return li;
}

/** A person in the room: a presence dot, the name, and a button to message them. */
export function personItem(u, { isMe, onMessage }) {
  const li = el('li', 'person');
  li.dataset.user = u.userId;
  li.append(el('span', `dot ${u.status ?? 'online'}`), el('span', 'name', u.username));
  li.append(el('span', 'muted', isMe ? 'you' : u.status ?? 'online'));
  if (!isMe && onMessage) {
    const b = el('button', 'small');
    b.append(icon('mail'));
    b.title = `Message ${u.username}`;
    b.setAttribute('aria-label', `Message ${u.username}`);
    b.onclick = () => onMessage(u);
    li.append(b);
  }
  return li;
}

/** A direct-message conversation in the sidebar. */
export function dmItem(d, { active, onOpen }) {
  const li = el('li', active ? 'active' : '');
  const b = el('button', 'row-button');
  b.dataset.user = d.userId;
  b.append(el('span', 'name', `@ ${d.username}`));
  if (d.unread > 0) b.append(el('span', 'count', String(d.unread)));
  b.onclick = () => onOpen(d.userId);
  li.append(b);
  return li;
}

export function notificationItem(n) {
  const li = el('li', n.read ? 'read' : 'unread');
  li.append(el('b', '', n.title), el('div', 'muted', `${time(n.ts)} · ${n.kind}`));
  if (n.body) li.append(el('div', 'body', n.body));
  return li;
}

/** "bob is typing…", "bob and carol are typing…", "bob, carol and 3 more are typing…" */
export function typingText(users, more) {
  const names = users.map((u) => u.username);
  if (names.length === 0) return '';
  const extra = more > 0 ? ` and ${more} more` : '';
  if (names.length === 1 && !extra) return `${names[0]} is typing…`;
  if (extra) return `${names.join(', ')}${extra} are typing…`;
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}
