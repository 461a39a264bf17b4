// The chat page: rooms (create, join, leave), messages with history paging on scroll,
// typing, the people in a room with their presence, direct messages, notifications with the
// unread count, and rate-limit warnings. Built on /client.js, which reconnects, signs in again
// and rejoins on its own; this page keeps what it shows consistent across that.
//
// Invariants: a message id is shown at most once per room (until the room's ids restart with
// the server); every failed request and every page error is shown to the user as a toast.
import { CorecastClient } from '/client.js';
import {
  $, el, toast, messageItem, noteItem, roomItem, personItem, dmItem, notificationItem, typingText,
} from '/chat-view.js';

/** Messages a conversation keeps in the page; past it the oldest go (and can be paged back). */
const MESSAGES_KEPT_MAX = 2000;
/** Messages asked for per history page (the server's limit is 100). */
const HISTORY_PAGE = 50;
/** `typing:start` is sent again after this long of typing (the server forgets a typer after 3 s). */
const TYPING_REPEAT_MS = 2000;
/** Typing stops after this long without a key. */
const TYPING_IDLE_MS = 2500;
/** Older messages load when the view is scrolled this close to its top. */
const PAGE_AT_PX = 80;
/** The room list is refreshed this often while connected. */
const ROOM_LIST_EVERY_MS = 20000;
/** Notifications the page keeps (the server keeps 200 per user). */
const NOTIFICATIONS_KEPT_MAX = 200;
/** Read marks wait this long, so a burst of messages sends one. */
const READ_DELAY_MS = 400;

const state = {
  client: null,
  auth: { mode: 'login', guests: true, guestsCreateRooms: false },
  me: null, // {userId, username}; null for a guest
  rooms: new Map(), // room -> record (see roomRecord)
  dms: new Map(), // userId -> {userId, username, items, unread}
  active: null, // {kind: 'room' | 'dm', id}
  notifications: [],
  unread: 0,
  everConnected: false,
  typingSentAt: 0,
  typingTimer: null,
  /** Joins the connection lost before their answer: room -> password, sent again. */
  interrupted: new Map(),
};

const client = () => state.client;
const isActive = (kind, id) => state.active?.kind === kind && state.active.id === id;

function roomRecord(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = {
      room: name, description: '', members: 0, hasPassword: false, maxUsers: null, unread: 0,
      joined: false, items: [], ids: new Map(), oldest: 0, newest: 0, hasMore: false,
      loading: false, users: new Map(), more: 0, typing: [], typingMore: 0, readSent: 0,
      readTimer: null,
    };
    state.rooms.set(name, r);
  }
  return r;
}

// ----- signing in ------------------------------------------------------------------------

async function start() {
  wireUi();
  try {
    const r = await fetch('/healthz', { cache: 'no-store' });
    if (!r.ok) throw new Error(`/healthz answered ${r.status}`);
    const health = await r.json();
    if (health.auth) state.auth = { ...state.auth, ...health.auth };
  } catch (e) {
    toast('error', `Cannot read the server's state: ${e.message}`);
  }
  showSignin('');
}

function showSignin(error) {
  const token = state.auth.mode === 'token';
  $('username-field').hidden = token;
  $('token-field').hidden = !token;
  $('signin-hint').textContent = token
    ? 'This server signs users in with tokens: paste the JWT your backend issued.'
    : 'Pick a username: two tabs with one name are one user on two devices.';
  $('as-guest').hidden = !state.auth.guests;
  $('username').value = localStorage.getItem('corecast.username') || '';
  signinError(error);
  if (!$('signin').open) $('signin').showModal();
  (token ? $('token') : $('username')).focus();
}

function signinError(text) {
  $('signin-error').textContent = text;
  $('signin-error').classList.toggle('shown', Boolean(text));
}

function submitSignin(event) {
  event.preventDefault();
  if (state.auth.mode === 'token') {
    const token = $('token').value.trim();
    if (!token) return signinError('Paste a token first.');
    return connectAs({ token });
  }
  const username = $('username').value.trim();
  if (!/^[A-Za-z0-9._-]{1,32}$/.test(username)) {
    return signinError("A username is 1 to 32 letters, digits, '-', '_' or '.'.");
  }
  localStorage.setItem('corecast.username', username);
  return connectAs({ username });
}

function connectAs(who) {
  state.client?.disconnect();
  state.everConnected = false;
  state.me = null;
  state.interrupted.clear();
  state.rooms.clear();
  state.dms.clear();
  state.active = null;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = who.token ? `?token=${encodeURIComponent(who.token)}` : '';
  const c = new CorecastClient({
    url: `${scheme}//${location.host}/ws${query}`,
    heartbeatInterval: 15000,
    onError: (e) => e instanceof Error && toast('error', e.message),
    onClose: (e) => e.code === 4001 && expired(),
  });
  state.client = c;
  listen(c, who);
  c.connect();
  signinError('');
  $('signin-go').disabled = true;
}

function listen(c, who) {
  c.on('status', onStatus);
  c.on('connected', () => onConnected(who));
  c.on('reconnected', onReconnected);
  c.on('rejoin:failed', ({ room, error }) => {
    toast('error', `Could not rejoin #${room}: ${error.message}`);
    markLeft(room);
  });
  c.on('room:joined', onJoined);
  c.on('room:left', (m) => markLeft(m.room));
  c.on('room:user_joined', onUserJoined);
  c.on('room:user_left', onUserLeft);
  c.on('message:new', onMessage);
  c.on('typing:update', onTyping);
  c.on('presence:update', onPresence);
  c.on('message:direct', onDirect);
  c.on('notification:new', onNotification);
  c.on('notification:unread', (m) => setUnread(m.count));
  c.on('rate_limit:warning', (m) => {
    const at = new Date(m.resetTime).toLocaleTimeString();
    toast('warn', `Slow down: ${m.remaining} messages left until the budget refills at ${at}.`);
  });
  c.on('buffer:dropped', () => toast('warn', 'Offline too long: the oldest unsent message was dropped.'));
  c.on('error', (m) => m.ref === undefined && toast('error', `${m.code}: ${m.message}`));
}

async function onConnected(who) {
  const c = client();
  try {
    if (who.username) await c.login(who.username);
  } catch (e) {
    c.disconnect();
    $('signin-go').disabled = false;
    return signinError(`Sign-in refused: ${e.message}`);
  }
  state.everConnected = true;
  state.me = c.user;
  $('signin').close();
  $('signin-go').disabled = false;
  renderMe();
  await refreshRooms();
  for (const name of roomsFromHash()) await joinRoom(name);
  if (state.me) loadNotifications();
}

async function onReconnected() {
  toast('info', 'Reconnected.');
  const interrupted = [...state.interrupted];
  state.interrupted.clear();
  for (const [name, password] of interrupted) {
    if (!state.rooms.get(name)?.joined) await joinRoom(name, password);
  }
  refreshRooms();
  if (state.me) loadNotifications();
}

function expired() {
  toast('error', 'Your token expired: sign in with a fresh one.');
  showSignin('The token expired.');
}

/** The first connection never opened: with tokens, the server refused this one (401). */
async function neverOpened() {
  client().disconnect();
  $('signin-go').disabled = false;
  let up = false;
  try {
    up = (await fetch('/healthz', { cache: 'no-store' })).ok;
  } catch {
    up = false;
  }
  showSignin(up && state.auth.mode === 'token'
    ? 'The server refused the token: it is invalid, expired or not valid yet.'
    : 'Cannot reach the server. Is it running?');
}

function onStatus(status) {
  $('status').textContent = status;
  $('status').className = `status badge ${status}`;
  if (status === 'reconnecting' && !state.everConnected) neverOpened();
  renderComposer();
}

function roomsFromHash() {
  const names = decodeURIComponent(location.hash.slice(1)).split(',').filter(Boolean);
  return names.length ? names : ['general'];
}

// ----- rooms -----------------------------------------------------------------------------

async function refreshRooms() {
  try {
    const list = await client().request('room:list');
    for (const listing of list.rooms) {
      const r = roomRecord(listing.room);
      const { unread, ...rest } = listing;
      Object.assign(r, rest);
      if (!isActive('room', r.room)) r.unread = unread ?? r.unread;
    }
    const listed = new Set(list.rooms.map((l) => l.room));
    for (const [name, r] of state.rooms) if (!r.joined && !listed.has(name)) state.rooms.delete(name);
    renderRooms();
  } catch (e) {
    toast('error', `Could not list the rooms: ${e.message}`);
  }
}

async function openRoom(name) {
  const r = roomRecord(name);
  if (r.joined) return show('room', name);
  let password;
  if (r.hasPassword) {
    password = await askPassword(name);
    if (password === null) return undefined;
  }
  return joinRoom(name, password);
}

async function joinRoom(name, password) {
  try {
    await client().room(name, { password }).join();
    show('room', name);
  } catch (e) {
    if (e.code === 'already_in_room') return show('room', name);
    if (e.code === 'wrong_password' && password === undefined) return openRoomWithPassword(name);
    if (e.code === 'disconnected') {
      // The connection went before the answer: joined again once it is back.
      state.interrupted.set(name, password);
      return undefined;
    }
    toast('error', `Could not join #${name}: ${e.message}`);
  }
  return undefined;
}

function openRoomWithPassword(name) {
  roomRecord(name).hasPassword = true;
  return openRoom(name);
}

function askPassword(name) {
  const dialog = $('password-dialog');
  $('password-room').textContent = `#${name}`;
  $('room-password').value = '';
  dialog.showModal();
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.onclose = null;
      dialog.close();
      resolve(value);
    };
    $('password-cancel').onclick = () => done(null);
    dialog.onclose = () => resolve(null);
    $('password-form').onsubmit = (e) => {
      e.preventDefault();
      done($('room-password').value);
    };
  });
}

async function createRoom(event) {
  event.preventDefault();
  const room = $('new-room').value.trim();
  const payload = { description: $('new-description').value.trim() };
  const password = $('new-password').value;
  const capacity = $('new-capacity').value;
  if (password) payload.password = password;
  if (capacity) payload.maxUsers = Number(capacity);
  try {
    const created = await client().request('room:create', payload, { room });
    const { description, hasPassword, maxUsers } = created;
    Object.assign(roomRecord(room), { description, hasPassword, maxUsers });
    $('create-form').reset();
    $('create').open = false;
    await joinRoom(room, password || undefined);
    refreshRooms();
  } catch (e) {
    toast('error', `Could not create #${room}: ${e.message}`);
  }
}

async function leaveActive() {
  const name = state.active?.id;
  try {
    await client().room(name).leave();
  } catch (e) {
    toast('error', `Could not leave #${name}: ${e.message}`);
  }
}

function onJoined(m) {
  const r = roomRecord(m.room);
  r.joined = true;
  r.members = m.members;
  r.users = new Map((m.users || []).map((u) => [u.userId, u]));
  r.more = m.more || 0;
  r.typing = [];
  mergeJoined(r, m.messages || []);
  if (!state.active) show('room', m.room);
  else if (isActive('room', m.room)) renderActive();
  renderRooms();
}

/** The last messages `room:joined` carries, merged with what the page shows: after a plain
 * reconnect only the new ones are added; when the room's ids went back (the server
 * restarted, the room is a new one), what was shown is set apart by a note. */
function mergeJoined(r, messages) {
  const newest = messages.length ? messages.at(-1).id : 0;
  const clash = messages.some((m) => r.ids.has(m.id) && r.ids.get(m.id) !== m.ts);
  if (r.newest > 0 && (newest < r.newest || clash)) {
    const before = r.items.filter((i) => i.kind !== 'note').map((i) => ({ kind: 'old', m: i.m }));
    r.items = [...before, { kind: 'note', text: 'The server restarted: the messages above are from before.' }];
    r.ids.clear();
    r.newest = 0;
    r.oldest = 0;
  } else if (r.newest > 0 && messages.length && messages[0].id > r.newest + 1) {
    r.items.push({ kind: 'note', text: 'Some messages were missed while disconnected.' });
  }
  if (r.newest === 0) r.hasMore = messages.length > 0 && messages[0].id > 1;
  messages.forEach((m) => addMessage(r, m));
}

function markLeft(name) {
  const r = state.rooms.get(name);
  if (!r) return;
  Object.assign(r, { joined: false, items: [], ids: new Map(), newest: 0, oldest: 0, users: new Map() });
  if (isActive('room', name)) {
    const next = [...state.rooms.values()].find((x) => x.joined);
    state.active = null;
    if (next) show('room', next.room);
    else renderActive();
  }
  renderRooms();
}

// ----- messages --------------------------------------------------------------------------

/** Adds a newer message to the room; false when the page shows that id already. */
function addMessage(r, m) {
  if (r.ids.has(m.id)) return false;
  r.items.push({ kind: 'msg', m });
  r.ids.set(m.id, m.ts);
  r.newest = Math.max(r.newest, m.id);
  r.oldest = r.oldest ? Math.min(r.oldest, m.id) : m.id;
  if (r.items.length > MESSAGES_KEPT_MAX) trimOldest(r);
  return true;
}

/** Drops the oldest message shown: one from before a restart first, else the room's oldest
 * (which paging can bring back). */
function trimOldest(r) {
  const old = r.items.findIndex((i) => i.kind === 'old');
  if (old >= 0) {
    r.items.splice(old, 1);
    return;
  }
  const first = r.items.findIndex((i) => i.kind === 'msg');
  if (first < 0) return;
  const [gone] = r.items.splice(first, 1);
  r.ids.delete(gone.m.id);
  const next = r.items.find((i) => i.kind === 'msg');
  r.oldest = next ? next.m.id : 0;
  r.hasMore = true;
}

function onMessage(m) {
  const r = state.rooms.get(m.room);
  if (!r || !r.joined || !addMessage(r, m)) return;
  const mine = m.from?.userId === state.me?.userId;
  if (isActive('room', m.room)) {
    appendToView(m, mine);
    if (document.visibilityState === 'visible') scheduleRead(r);
  } else if (!mine) {
    r.unread += 1;
    renderRooms();
  }
}

async function loadOlder(r) {
  if (r.loading || !r.hasMore || !r.oldest) return;
  r.loading = true;
  try {
    const page = await client().request('message:history', { limit: HISTORY_PAGE, before: r.oldest }, { room: r.room });
    const older = page.messages.filter((m) => !r.ids.has(m.id) && m.id < r.oldest);
    const at = r.items.findIndex((i) => i.kind === 'msg');
    r.items.splice(at < 0 ? r.items.length : at, 0, ...older.map((m) => ({ kind: 'msg', m })));
    older.forEach((m) => r.ids.set(m.id, m.ts));
    if (older.length) r.oldest = older[0].id;
    r.hasMore = page.hasMore && older.length > 0;
  } catch (e) {
    toast('error', `Could not load older messages: ${e.message}`);
  } finally {
    r.loading = false;
  }
  if (isActive('room', r.room)) renderMessagesKeepingScroll();
}

function scheduleRead(r) {
  if (!state.me || r.readTimer) return;
  r.readTimer = setTimeout(() => {
    r.readTimer = null;
    if (r.joined && r.newest > r.readSent) {
      client().send('message:read', { upTo: r.newest }, r.room);
      r.readSent = r.newest;
    }
  }, READ_DELAY_MS);
}

async function sendText(event) {
  event.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text || !state.active) return;
  input.value = '';
  stopTyping(false);
  const { kind, id } = state.active;
  try {
    if (kind === 'room') {
      await client().request('message:send', { content: text }, { room: id });
    } else {
      const ack = await client().directMessages().send(id, text);
      addDirect(id, id, { id: ack.id, from: state.me, content: text, ts: Date.now() });
    }
  } catch (e) {
    toast('error', `Not sent: ${e.message}`);
    if (!input.value) input.value = text;
  }
}

// ----- typing and presence ---------------------------------------------------------------

function typed() {
  if (!state.me || state.active?.kind !== 'room') return;
  const now = Date.now();
  if (now - state.typingSentAt > TYPING_REPEAT_MS) {
    client().room(state.active.id).typing(true);
    state.typingSentAt = now;
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => stopTyping(true), TYPING_IDLE_MS);
}

/** Ends this page's typing; `tell`: send `typing:stop` (sending a message ends it anyway). */
function stopTyping(tell) {
  clearTimeout(state.typingTimer);
  state.typingTimer = null;
  if (state.typingSentAt && tell && state.active?.kind === 'room') client().room(state.active.id).typing(false);
  state.typingSentAt = 0;
}

function onTyping(m) {
  const r = state.rooms.get(m.room);
  if (!r) return;
  r.typing = m.users.filter((u) => u.userId !== state.me?.userId);
  r.typingMore = m.more || 0;
  if (isActive('room', m.room)) renderTyping();
}

function onUserJoined(m) {
  const r = state.rooms.get(m.room);
  if (!r) return;
  r.users.set(m.userId, { userId: m.userId, username: m.username, status: 'online', lastSeen: Date.now() });
  if (isActive('room', m.room)) renderPeople();
}

function onUserLeft(m) {
  const r = state.rooms.get(m.room);
  if (!r) return;
  r.users.delete(m.userId);
  r.typing = r.typing.filter((u) => u.userId !== m.userId);
  if (isActive('room', m.room)) renderActive();
}

function onPresence(m) {
  for (const r of state.rooms.values()) {
    const u = r.users.get(m.userId);
    if (u) r.users.set(m.userId, { ...u, status: m.status, lastSeen: m.lastSeen });
  }
  if (m.userId === state.me?.userId && m.status !== 'offline') {
    $('my-status').value = m.status;
    $('me-dot').className = `dot ${m.status}`;
  }
  renderPeople();
}

async function setMyStatus() {
  const status = $('my-status').value;
  try {
    await client().request('presence:update', { status });
    $('me-dot').className = `dot ${status}`;
  } catch (e) {
    toast('error', `Could not set the status: ${e.message}`);
  }
}

// ----- direct messages and notifications -------------------------------------------------

function dmRecord(userId, username) {
  let d = state.dms.get(userId);
  if (!d) {
    d = { userId, username: username || userId, items: [], unread: 0 };
    state.dms.set(userId, d);
  }
  return d;
}

function addDirect(peerId, peerName, m) {
  const d = dmRecord(peerId, peerName);
  d.items.push({ kind: 'msg', m });
  if (d.items.length > MESSAGES_KEPT_MAX) d.items.shift();
  if (isActive('dm', peerId)) appendToView(m, m.from?.userId === state.me?.userId);
  else if (m.from?.userId !== state.me?.userId) d.unread += 1;
  renderDms();
}

function onDirect(m) {
  addDirect(m.from.userId, m.from.username, m);
}

function openDm(userId, username) {
  if (!userId || userId === state.me?.userId) return;
  dmRecord(userId, username);
  show('dm', userId);
}

function onNotification(n) {
  state.notifications.unshift(n);
  state.notifications.length = Math.min(state.notifications.length, NOTIFICATIONS_KEPT_MAX);
  toast('info', n.title);
  if (!$('notifications').hidden) renderNotifications();
}

function setUnread(count) {
  state.unread = count;
  $('unread').textContent = String(count);
  $('unread').hidden = count === 0;
}

async function loadNotifications() {
  try {
    const list = await client().request('notification:list');
    state.notifications = list.notifications;
    setUnread(list.unread);
    renderNotifications();
  } catch (e) {
    toast('error', `Could not load notifications: ${e.message}`);
  }
}

async function markAllRead() {
  const ids = state.notifications.filter((n) => !n.read).map((n) => n.id);
  if (!ids.length) return;
  try {
    await client().request('notification:read', { ids });
    state.notifications.forEach((n) => { n.read = true; });
    renderNotifications();
  } catch (e) {
    toast('error', `Could not mark notifications read: ${e.message}`);
  }
}

function toggleNotifications() {
  const panel = $('notifications');
  panel.hidden = !panel.hidden;
  if (!panel.hidden) loadNotifications();
}

// ----- rendering -------------------------------------------------------------------------

function show(kind, id) {
  if (!isActive(kind, id)) stopTyping(true);
  state.active = { kind, id };
  if (kind === 'room') {
    const r = roomRecord(id);
    r.unread = 0;
    scheduleRead(r);
    history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  } else {
    dmRecord(id).unread = 0;
  }
  document.body.classList.remove('sidebar-open', 'people-open');
  renderActive();
  renderRooms();
  renderDms();
  $('text').focus();
}

function renderActive() {
  const a = state.active;
  const room = a?.kind === 'room' ? state.rooms.get(a.id) : null;
  $('conv-name').textContent = !a ? 'No room open' : room ? `# ${a.id}` : `@ ${state.dms.get(a.id)?.username ?? a.id}`;
  $('conv-sub').textContent = room ? room.description : a ? 'direct messages' : '';
  $('leave').hidden = !room;
  renderMessages();
  renderTyping();
  renderPeople();
  renderComposer();
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
  if (room) fillView(room);
}

/** Loads older pages until the view can scroll (or the history ends). */
function fillView(r) {
  const box = $('messages');
  if (r.hasMore && box.scrollHeight <= box.clientHeight + PAGE_AT_PX) loadOlder(r);
}

function renderMessages() {
  const a = state.active;
  const box = $('messages');
  if (!a) return box.replaceChildren(el('div', 'empty', 'Join a room from the list, or create one.'));
  const items = a.kind === 'room' ? state.rooms.get(a.id)?.items ?? [] : state.dms.get(a.id)?.items ?? [];
  const nodes = [];
  if (a.kind === 'room') {
    const r = state.rooms.get(a.id);
    nodes.push(r?.hasMore ? noteItem('Scroll up for older messages.') : noteItem(`This is the beginning of #${a.id}.`));
  }
  for (const i of items) {
    if (i.kind === 'note') nodes.push(noteItem(i.text));
    else nodes.push(messageItem(i.m, state.me, i.kind === 'old'));
  }
  box.replaceChildren(...nodes);
  return undefined;
}

function renderMessagesKeepingScroll() {
  const box = $('messages');
  const fromBottom = box.scrollHeight - box.scrollTop;
  renderMessages();
  box.scrollTop = box.scrollHeight - fromBottom;
}

function appendToView(m, mine) {
  const box = $('messages');
  const stick = mine || box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  box.append(messageItem(m, state.me));
  while (box.childElementCount > MESSAGES_KEPT_MAX + 1) box.querySelector('.msg')?.remove();
  if (stick) box.scrollTop = box.scrollHeight;
}

function renderTyping() {
  const r = state.active?.kind === 'room' ? state.rooms.get(state.active.id) : null;
  $('typing').textContent = r ? typingText(r.typing, r.typingMore) : '';
}

function renderPeople() {
  const a = state.active;
  const list = $('people');
  if (a?.kind === 'dm') {
    const d = state.dms.get(a.id);
    $('people-count').textContent = '';
    return list.replaceChildren(personItem({ userId: a.id, username: d?.username ?? a.id, status: peerStatus(a.id) }, { isMe: false }));
  }
  const r = a ? state.rooms.get(a.id) : null;
  const order = { online: 0, dnd: 1, away: 2, offline: 3 };
  const users = r ? [...r.users.values()].sort((x, y) => (order[x.status] ?? 0) - (order[y.status] ?? 0) || x.username.localeCompare(y.username)) : [];
  $('people-count').textContent = r ? String(users.length + r.more) : '';
  const onMessage = state.me ? (u) => openDm(u.userId, u.username) : null;
  list.replaceChildren(...users.map((u) => personItem(u, { isMe: u.userId === state.me?.userId, onMessage })));
  return undefined;
}

function peerStatus(userId) {
  for (const r of state.rooms.values()) if (r.users.has(userId)) return r.users.get(userId).status;
  return 'unknown';
}

function renderRooms() {
  const rooms = [...state.rooms.values()].sort((x, y) => x.room.localeCompare(y.room));
  $('rooms').replaceChildren(...rooms.map((r) => roomItem(r, { active: isActive('room', r.room), onOpen: openRoom })));
  if (!rooms.length) $('rooms').append(el('li', 'muted empty', 'No rooms yet.'));
}

function renderDms() {
  const dms = [...state.dms.values()];
  $('dms').replaceChildren(...dms.map((d) => dmItem(d, { active: isActive('dm', d.userId), onOpen: (id) => show('dm', id) })));
}

function renderNotifications() {
  const list = state.notifications;
  $('notification-list').replaceChildren(...list.map(notificationItem));
  if (!list.length) $('notification-list').append(el('li', 'muted empty', 'Nothing yet.'));
}

function renderComposer() {
  const can = Boolean(state.active) && client()?.status !== 'disconnected';
  $('text').disabled = !can;
  $('send').disabled = !can;
  $('text').placeholder = client()?.status === 'connected' ? 'Write a message…' : 'Offline: messages are sent when the connection is back';
}

function renderMe() {
  const me = state.me;
  $('me').hidden = false;
  $('me-name').textContent = me ? me.username : 'guest';
  $('my-status').hidden = !me;
  $('me-dot').hidden = !me;
  $('bell').hidden = !me;
  $('dm-section').hidden = !me;
  $('create').hidden = !me && !state.auth.guestsCreateRooms;
}

// ----- wiring ----------------------------------------------------------------------------

function wireUi() {
  $('signin-form').onsubmit = submitSignin;
  $('as-guest').onclick = () => connectAs({});
  $('create-form').onsubmit = createRoom;
  $('composer').onsubmit = sendText;
  $('text').oninput = typed;
  $('leave').onclick = leaveActive;
  $('refresh-rooms').onclick = refreshRooms;
  $('my-status').onchange = setMyStatus;
  $('bell').onclick = toggleNotifications;
  $('mark-read').onclick = markAllRead;
  $('show-sidebar').onclick = () => document.body.classList.add('sidebar-open');
  $('show-people').onclick = () => document.body.classList.add('people-open');
  document.querySelectorAll('.back').forEach((b) => {
    b.onclick = () => document.body.classList.remove('sidebar-open', 'people-open');
  });
  $('dm-form').onsubmit = (e) => {
    e.preventDefault();
    openDm($('dm-to').value.trim());
    $('dm-to').value = '';
  };
  $('messages').onscroll = () => {
    const r = state.active?.kind === 'room' ? state.rooms.get(state.active.id) : null;
    if (r && $('messages').scrollTop < PAGE_AT_PX) loadOlder(r);
  };
  document.addEventListener('visibilitychange', () => {
    const a = state.active;
    if (document.visibilityState === 'visible' && a?.kind === 'room') scheduleRead(roomRecord(a.id));
  });
  setInterval(() => client()?.status === 'connected' && state.everConnected && refreshRooms(), ROOM_LIST_EVERY_MS);
  addEventListener('error', (e) => toast('error', `Page error: ${e.message}`));
  addEventListener('unhandledrejection', (e) => toast('error', `Page error: ${e.reason?.message ?? e.reason}`));
}

start();
