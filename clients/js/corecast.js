// corecast's JavaScript client: one WebSocket with reconnection, re-authentication, rejoin,
// a bounded send buffer, request/response by `ref`, a heartbeat, and helpers for rooms,
// presence, direct messages and notifications. An ES module with no dependencies; it runs in
// browsers and in Node (20+: `node --experimental-websocket`, or pass `WebSocket`).
//
// Invariants: at most one socket is open at a time; after a reconnect the login and every
// joined room are restored exactly once, before buffered messages are sent; the send buffer
// never holds more than `sendBufferMax` messages; a request whose promise rejected is never
// sent afterwards.

/** Messages kept while disconnected; past it the oldest is dropped (a `buffer:dropped` event). */
export const SEND_BUFFER_MAX = 256;
/** How long `request` waits for the answer carrying its `ref`. */
export const REQUEST_TIMEOUT_MS = 10000;
/** Requests waiting for an answer; past it `request` rejects at once. */
export const PENDING_REQUESTS_MAX = 1024;

const DEFAULTS = {
  reconnect: true,
  reconnectDelay: 1000,
  maxReconnectDelay: 30000,
  reconnectAttempts: Infinity,
  heartbeatInterval: 30000,
  requestTimeout: REQUEST_TIMEOUT_MS,
  sendBufferMax: SEND_BUFFER_MAX,
  protocols: undefined,
};

/** The error a refused request rejects with: the server's `error {code, message}`. */
export class CorecastError extends Error {
  constructor(code, message, frame) {
    super(message);
    this.name = 'CorecastError';
    this.code = code;
    this.frame = frame;
  }
}

export class CorecastClient {
  constructor(options = {}) {
    if (!options.url) throw new TypeError('CorecastClient: `url` is required');
    this.options = { ...DEFAULTS, ...options };
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError('CorecastClient: no WebSocket (pass `WebSocket`)');
    this._status = 'disconnected';
    this._listeners = new Map();
    this._pending = new Map();
    this._nextRef = 1;
    this._buffer = [];
    this._rooms = new Map(); // room -> {password}: joined (the server said so), to rejoin
    this._joining = new Map(); // room -> {password}: joins sent, not answered yet
    this._login = null; // the auth:login the application sent, replayed on reconnect
    this._attempt = 0;
    this._ws = null;
    this._wanted = false; // connect() called and not disconnect()
    this._timers = { reconnect: null, heartbeat: null };
    this._lastRx = 0;
    this.lastMessage = null;
    this.connectionId = null;
    this.user = null;
    /** Newest `message:new` id seen per room: where a resume would start. */
    this.lastIds = new Map();
    this.droppedSends = 0;
    this._watchPage();
  }

  /** 'connecting' | 'connected' | 'disconnected' | 'reconnecting' */
  get status() {
    return this._status;
  }

  connect() {
    this._wanted = true;
    this._attempt = 0;
    if (!this._ws) this._open();
    return this;
  }

  /** Closes and stops reconnecting; requests in flight reject. */
  disconnect() {
    this._wanted = false;
    this._clearTimers();
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, 'client disconnect');
    this._failPending(new CorecastError('disconnected', 'the client disconnected'));
    this._setStatus('disconnected');
  }

  /** Listens to messages of `type` ('*' for all, or a client event such as 'status');
   * returns the function that stops listening. */
  on(type, callback) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(callback);
    return () => this._listeners.get(type)?.delete(callback);
  }

  /** Sends `{type, room?, ...payload}`. While disconnected it is buffered (bounded), unless
   * `options.volatile` (cursor-like data that is stale by the time it could be sent). */
  send(type, payload = {}, room = undefined, options = {}) {
    const message = { type, ...payload };
    if (room !== undefined) message.room = room;
    this._remember(message);
    if (this._status === 'connected' && this._ws) {
      this._write(message);
      return true;
    }
    if (options.volatile) return false;
    this._buffer.push(message);
    while (this._buffer.length > this.options.sendBufferMax) {
      const dropped = this._buffer.shift();
      this.droppedSends += 1;
      this._emit('buffer:dropped', { message: dropped, dropped: this.droppedSends });
      this._reject(dropped.ref, new CorecastError('dropped', 'the send buffer was full'));
    }
    return false;
  }

  /** Sends a message with a fresh `ref` and resolves with the answer that carries it
   * (rejects with a CorecastError on `error`, or on timeout). */
  request(type, payload = {}, options = {}) {
    if (this._pending.size >= PENDING_REQUESTS_MAX) {
      return Promise.reject(new CorecastError('busy', 'too many requests in flight'));
    }
    const timeout = options.timeout ?? this.options.requestTimeout;
    return this._ask(type, timeout, (ref) => this.send(type, { ...payload, ref }, options.room));
  }

  /** A promise for the answer to a fresh `ref`, which `deliver(ref)` sends (or buffers). On
   * timeout it rejects, and the request leaves the buffer if it is still there. */
  _ask(type, timeout, deliver) {
    const ref = `c${this._nextRef++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        this._unbuffer(new Set([ref]));
        reject(new CorecastError('timeout', `no answer to ${type} in ${timeout} ms`));
      }, timeout);
      this._pending.set(ref, { resolve, reject, timer, sent: false });
      deliver(ref);
    });
  }

  /** Rejects the request `ref`, if one waits. */
  _reject(ref, error) {
    const pending = ref === undefined ? undefined : this._pending.get(ref);
    if (!pending) return;
    this._pending.delete(ref);
    clearTimeout(pending.timer);
    pending.reject(error);
  }

  /** Writes `message` to the socket; a request's entry notes that it left. */
  _write(message) {
    this._ws.send(JSON.stringify(message));
    const pending = message.ref === undefined ? undefined : this._pending.get(message.ref);
    if (pending) pending.sent = true;
  }

  /** Drops buffered requests whose promise was rejected: a rejected request is never sent. */
  _unbuffer(refs) {
    this._buffer = this._buffer.filter((m) => m.ref === undefined || !refs.has(m.ref));
  }

  // ----- helpers -------------------------------------------------------------------------

  room(id, options = {}) {
    return new Room(this, id, options);
  }

  presence(room, options = {}) {
    return new Presence(this, room, options);
  }

  directMessages() {
    return {
      send: (to, content) => this.request('message:direct', { to, content }),
      on: (callback) => this.on('message:direct', callback),
    };
  }

  notifications() {
    return new Notifications(this);
  }

  /** The shared state of a room (`{room}`) or document (`{doc}`). */
  sharedState(where) {
    return new SharedState(this, where);
  }

  /** A broadcast channel of a room or document. */
  broadcast(where, channel) {
    return new Broadcast(this, where, channel);
  }

  /** Presence data in a room or document: this connection's and the others'. */
  presenceData(where) {
    return new PresenceData(this, where);
  }

  /** A shared plain-text document (`doc:*`), kept in step with the server's. */
  doc(name, options = {}) {
    return new Doc(this, name, options);
  }

  /** Logs in with a username (development mode); replayed after every reconnect. */
  login(username) {
    return this.request('auth:login', { username });
  }

  // ----- the socket ------------------------------------------------------------------------

  _open() {
    this._setStatus(this._attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new this.WebSocket(this.options.url, this.options.protocols);
    this._ws = ws;
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._lastRx = Date.now();
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._onText(event.data);
    };
    ws.onerror = (event) => {
      if (this._ws !== ws) return;
      this._callback('onError', event);
      // Some platforms (Node's undici) report a refused connection with `error` and no
      // `close`, leaving the socket in CONNECTING: a socket not open after an error is
      // given up and counted as closed.
      setTimeout(() => {
        if (this._ws !== ws || ws.readyState === 1) return;
        try {
          ws.close();
        } catch {
          // Already closed.
        }
        this._closed(ws, { code: 1006, reason: 'connection failed' });
      }, 0);
    };
    ws.onclose = (event) => this._closed(ws, event);
  }

  /** Socket `ws` closed (reported once, whichever of its events says so first). */
  _closed(ws, event) {
    if (this._ws !== ws) return;
    this._ws = null;
    this._onClose(event);
  }

  _onText(data) {
    this._lastRx = Date.now();
    let message;
    try {
      message = JSON.parse(data);
    } catch (e) {
      this._callback('onError', new CorecastError('bad_frame', `not JSON: ${e.message}`));
      return;
    }
    if (message.type === 'batch' && Array.isArray(message.messages)) {
      message.messages.forEach((m) => this._dispatch(m));
    } else {
      this._dispatch(message);
    }
  }

  _dispatch(message) {
    this.lastMessage = message;
    if (message.type === 'connection:established') return this._established(message);
    if (message.type === 'message:new' && message.room !== undefined) {
      this.lastIds.set(message.room, message.id);
    }
    if (message.type === 'auth:success') this.user = { userId: message.userId, username: message.username };
    this._track(message);
    if (message.ref !== undefined && this._pending.has(String(message.ref))) {
      const { resolve, reject, timer } = this._pending.get(String(message.ref));
      this._pending.delete(String(message.ref));
      clearTimeout(timer);
      if (message.type === 'error' || message.type === 'auth:error') {
        reject(new CorecastError(message.code, message.message, message));
      } else {
        resolve(message);
      }
    }
    this._callback('onMessage', message);
    this._emit(message.type, message);
    this._emit('*', message);
  }

  /** The server greeted the socket: restore the session, then send what waited. The status
   * turns `connected` only then, so nothing the application sends overtakes the restore. */
  async _established(message) {
    const ws = this._ws;
    this.connectionId = message.connectionId;
    if (message.user) this.user = message.user;
    const reconnected = this._attempt > 0;
    this._startHeartbeat();
    this._callback('onOpen', message);
    try {
      await this._restore(reconnected);
    } catch (e) {
      this._callback('onError', e);
    }
    if (this._ws !== ws) return;
    this._attempt = 0;
    this._setStatus('connected');
    const waiting = this._buffer;
    this._buffer = [];
    waiting.forEach((m) => this._write(m));
    this._emit(reconnected ? 'reconnected' : 'connected', message);
  }

  /** After a reconnect: the login again, then every room once, each awaited. */
  async _restore(reconnected) {
    if (!reconnected) return;
    if (this._login && !this.user) {
      await this._restoreRequest('auth:login', this._login);
    }
    for (const [room, { password }] of this._rooms) {
      const payload = password === undefined ? { room } : { room, password };
      await this._restoreRequest('room:join', payload).catch((e) => {
        if (e.code !== 'already_in_room') {
          this._rooms.delete(room);
          this._emit('rejoin:failed', { room, error: e });
        }
      });
      this._emit('rejoined', { room, lastId: this.lastIds.get(room) });
    }
  }

  /** A request sent now, ahead of the buffer (not remembered again). */
  _restoreRequest(type, payload) {
    return this._ask(type, this.options.requestTimeout, (ref) => {
      this._write({ type, ...payload, ref });
    });
  }

  /** What a reconnect must restore: the login, and the rooms (once `room:joined` says so). */
  _remember(message) {
    if (message.type === 'auth:login') this._login = { username: message.username };
    if (message.type === 'room:join') this._joining.set(message.room, { password: message.password });
    if (message.type === 'room:leave') {
      this._rooms.delete(message.room);
      this._joining.delete(message.room);
    }
  }

  /** The server's word on membership: `room:joined` and `room:left`. */
  _track(message) {
    if (message.type === 'room:joined') {
      const how = this._joining.get(message.room) ?? this._rooms.get(message.room) ?? {};
      this._joining.delete(message.room);
      this._rooms.set(message.room, how);
    } else if (message.type === 'room:left') {
      this._rooms.delete(message.room);
    }
  }

  _onClose(event) {
    this._clearTimers();
    this.user = this._login ? null : this.user;
    this._callback('onClose', event);
    if (!this._wanted) return this._setStatus('disconnected');
    // Requests sent on this socket will never be answered; those still buffered wait for
    // the next one (or their timeout).
    this._failPending(new CorecastError('disconnected', 'the connection closed'), true);
    const { reconnect, reconnectAttempts } = this.options;
    if (!reconnect || this._attempt >= reconnectAttempts || event.code === 4001) {
      this._wanted = false;
      return this._setStatus('disconnected');
    }
    this._attempt += 1;
    this._setStatus('reconnecting');
    this._scheduleReconnect();
  }

  /** Exponential backoff with full jitter, capped; none while the page is hidden or offline
   * (the page watcher reconnects at once when it comes back). */
  _scheduleReconnect() {
    if (this._pageAway()) return;
    const { reconnectDelay, maxReconnectDelay } = this.options;
    const ceiling = Math.min(maxReconnectDelay, reconnectDelay * 2 ** (this._attempt - 1));
    const delay = Math.random() * ceiling;
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      if (this._wanted && !this._ws) this._open();
    }, delay);
  }

  /** A dead connection the platform does not report: nothing heard for two intervals. The
   * server answers `ping` with `pong`, so a quiet but live connection still hears something. */
  _startHeartbeat() {
    const interval = this.options.heartbeatInterval;
    if (!interval) return;
    this._timers.heartbeat = setInterval(() => {
      const ws = this._ws;
      if (!ws) return;
      if (Date.now() - this._lastRx > 2 * interval) {
        this._emit('heartbeat:timeout', {});
        ws.close(4000, 'heartbeat timeout');
        this._ws = null;
        this._onClose({ code: 4000, reason: 'heartbeat timeout' });
        return;
      }
      ws.send(JSON.stringify({ type: 'ping' }));
    }, interval);
  }

  _pageAway() {
    const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
    const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
    return hidden || offline;
  }

  /** In a browser: reconnect at once when the page is visible and online again. */
  _watchPage() {
    if (typeof addEventListener !== 'function') return;
    const back = () => {
      if (this._wanted && !this._ws && !this._pageAway()) {
        clearTimeout(this._timers.reconnect);
        this._timers.reconnect = null;
        this._open();
      }
    };
    addEventListener('online', back);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', back);
  }

  _clearTimers() {
    clearTimeout(this._timers.reconnect);
    clearInterval(this._timers.heartbeat);
    this._timers = { reconnect: null, heartbeat: null };
  }

  /** Rejects the requests waiting (only those already sent, with `sentOnly`). */
  _failPending(error, sentOnly = false) {
    const failed = new Set();
    for (const [ref, { reject, timer, sent }] of this._pending) {
      if (sentOnly && !sent) continue;
      clearTimeout(timer);
      reject(error);
      failed.add(ref);
    }
    failed.forEach((ref) => this._pending.delete(ref));
    this._unbuffer(failed);
  }

  _setStatus(status) {
    if (this._status === status) return;
    this._status = status;
    this._emit('status', status);
  }

  _callback(name, arg) {
    const f = this.options[name];
    if (typeof f === 'function') f(arg);
  }

  _emit(type, value) {
    for (const callback of this._listeners.get(type) || []) callback(value);
  }
}

/** A room: join, leave, send, history, typing and the users present. */
export class Room {
  constructor(client, id, { password } = {}) {
    this.client = client;
    this.id = id;
    this.password = password;
  }

  join() {
    const payload = this.password === undefined ? {} : { password: this.password };
    return this.client.request('room:join', payload, { room: this.id });
  }

  leave() {
    return this.client.request('room:leave', {}, { room: this.id });
  }

  send(content) {
    return this.client.request('message:send', { content }, { room: this.id });
  }

  /** A page of history, newest last; `before` an id to page back from. */
  messages({ limit, before } = {}) {
    return this.client.request('message:history', { limit, before }, { room: this.id });
  }

  users() {
    return this.client
      .request('presence:list', {}, { room: this.id })
      .then((list) => list.users);
  }

  typing(on = true) {
    this.client.send(on ? 'typing:start' : 'typing:stop', {}, this.id, { volatile: true });
  }

  read(upTo) {
    this.client.send('message:read', { upTo }, this.id);
  }

  /** Listens to this room's messages of `type` (default: `message:new`). */
  on(type, callback) {
    if (typeof type === 'function') [type, callback] = ['message:new', type];
    return this.client.on(type, (m) => {
      if (m.room === this.id) callback(m);
    });
  }
}

/** Who is present in a room, kept current from `room:joined`, arrivals, departures and
 * presence updates. */
export class Presence {
  constructor(client, room, { user, data } = {}) {
    this.client = client;
    this.room = room;
    this.user = user;
    this.data = data;
    this.users = new Map();
    this._off = [
      client.on('room:joined', (m) => {
        if (m.room !== room) return;
        this.users = new Map((m.users || []).map((u) => [u.userId, u]));
      }),
      client.on('room:user_joined', (m) => m.room === room && this.users.set(m.userId, m)),
      client.on('room:user_left', (m) => m.room === room && this.users.delete(m.userId)),
      client.on('presence:update', (m) => {
        const known = this.users.get(m.userId);
        if (known) this.users.set(m.userId, { ...known, status: m.status, lastSeen: m.lastSeen });
      }),
    ];
  }

  count() {
    return this.users.size;
  }

  others() {
    const me = this.client.user?.userId;
    return [...this.users.values()].filter((u) => u.userId !== me);
  }

  /** Sets the user's status: online, away or dnd. */
  setStatus(status) {
    return this.client.request('presence:update', { status });
  }

  close() {
    this._off.forEach((off) => off());
  }
}

/** The user's notifications and their unread count. */
export class Notifications {
  constructor(client) {
    this.client = client;
    this.unread = 0;
    this._off = client.on('notification:unread', (m) => {
      this.unread = m.count;
    });
  }

  list() {
    return this.client.request('notification:list').then((m) => {
      this.unread = m.unread;
      return m.notifications;
    });
  }

  markRead(ids) {
    return this.client.request('notification:read', { ids });
  }

  on(callback) {
    return this.client.on('notification:new', callback);
  }

  close() {
    this._off();
  }
}

// ----- documents ---------------------------------------------------------------------------
//
// Ops on the wire count code points; a JS string counts UTF-16 units. `Doc` speaks UTF-16 to
// the application and code points to the server, converting at the edge.

/** Ops one change carries at most (the server's limit is 256). */
export const DOC_CHANGE_OPS_MAX = 256;
/** Code points of inserted text one change carries at most: a change stays well within the
 * server's message limit (64 KiB by default) even in four-byte characters. */
export const DOC_CHANGE_CHARS_MAX = 8192;
/** How long a failed catch-up waits before it is tried again (doubling, capped). */
const DOC_RESYNC_DELAY_MS = 250;
const DOC_RESYNC_DELAY_MAX_MS = 10000;

/** Code points in `s`. */
function cpLength(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) n += 1;
    else {
      n += 1;
      i += 1;
    }
  }
  return n;
}

/** The UTF-16 index of code point `cp` in `s` (its length past the end). */
function cpToUtf16(s, cp) {
  let i = 0;
  for (let n = 0; n < cp && i < s.length; n++) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1;
  }
  return i;
}

/** The code point index of UTF-16 index `i` in `s`. */
function utf16ToCp(s, i) {
  return cpLength(s.slice(0, i));
}

const ins = (position, content) => ({ operation: 'insert', position, content, chars: cpLength(content) });
const del = (position, length) => ({ operation: 'delete', position, length });
const opLen = (op) => (op.operation === 'insert' ? op.chars : op.length);

/** `op` made to apply after `applied` (both on the same text); `appliedFirst`: its insert
 * stays left on a tie. The server's rule, op for op. */
export function transformOp(op, applied, appliedFirst) {
  const p = op.position;
  const q = applied.position;
  if (op.operation === 'insert') {
    if (applied.operation === 'insert') {
      const shift = q < p || (q === p && appliedFirst);
      return [{ ...op, position: shift ? p + applied.chars : p }];
    }
    const l = applied.length;
    return [{ ...op, position: p <= q ? p : p >= q + l ? p - l : q }];
  }
  const l = op.length;
  if (applied.operation === 'insert') {
    const m = applied.chars;
    if (q <= p) return [del(p + m, l)];
    if (q >= p + l) return [del(p, l)];
    return [del(p, q - p), del(p + m, l - (q - p))];
  }
  const k = applied.length;
  if (p + l <= q) return [del(p, l)];
  if (q + k <= p) return [del(p - k, l)];
  const left = l - (Math.min(p + l, q + k) - Math.max(p, q));
  return left === 0 ? [] : [del(Math.min(p, q), left)];
}

/** Transforms lists `xs` and `ys` (on the same text) against each other: `[xs', ys']`. */
export function transformLists(xs, ys, ysFirst) {
  if (xs.length === 0 || ys.length === 0) return [xs, ys];
  if (xs.length === 1 && ys.length === 1) {
    return [transformOp(xs[0], ys[0], ysFirst), transformOp(ys[0], xs[0], !ysFirst)];
  }
  if (xs.length > 1) {
    const out = [];
    for (const x of xs) {
      const [x2, ys2] = transformLists([x], ys, ysFirst);
      out.push(...x2);
      ys = ys2;
    }
    return [out, ys];
  }
  const out = [];
  for (const y of ys) {
    const [xs2, y2] = transformLists(xs, [y], ysFirst);
    xs = xs2;
    out.push(...y2);
  }
  return [xs, out];
}

/** A caret at `pos` through `op`: an insert at or before it pushes it right; a delete
 * around it moves it to the delete's start (the server's `transform_position`). */
function cursorThrough(pos, op) {
  if (op.operation === 'insert') return op.position <= pos ? pos + op.chars : pos;
  if (pos <= op.position) return pos;
  if (pos >= op.position + op.length) return pos - op.length;
  return op.position;
}

/** Applies `op` (code points) to `text`. */
function applyOp(text, op) {
  const at = cpToUtf16(text, op.position);
  if (op.operation === 'insert') return text.slice(0, at) + op.content + text.slice(at);
  const end = cpToUtf16(text, op.position + op.length);
  return text.slice(0, at) + text.slice(end);
}

const wireOp = (o) => (o.operation === 'insert'
  ? { operation: 'insert', position: o.position, content: o.content }
  : { operation: 'delete', position: o.position, length: o.length });
const fromWire = (o) => (o.operation === 'insert' ? ins(o.position, o.content) : del(o.position, o.length));

/** A shared document: the text, its version, local edits sent one change at a time (the
 * rest wait), remote changes transformed against both. After a reconnect it rejoins, asks
 * `doc:sync` for what it missed (its own change in it counts as the ack), then resends its
 * change in flight with the same `seq`: the server applies it at most once. */
export class Doc {
  constructor(client, name, { clientId } = {}) {
    this.client = client;
    this.name = name;
    this.clientId = clientId || randomId();
    this.text = '';
    this.version = 0;
    this.users = [];
    this.joined = false;
    this._inflight = null; // {seq, ops}
    this._pending = [];
    // Seqs only grow for a client id, across page loads too when `clientId` is kept.
    this._seq = Date.now();
    this._syncing = false;
    this._resyncDelay = DOC_RESYNC_DELAY_MS;
    this._caretWanted = null; // [index, anchor] in this.text, sent once settled
    this._held = [];
    this._listeners = new Map();
    /** connectionId -> {userId, username, position, anchor} (code points) or {x, y}. */
    this._cursors = new Map();
    const mine = (m) => m.doc === name;
    this._off = [
      // The text of a doc:state, and doc:operations, are taken from the answers to this
      // Doc's own requests (join, sync); a greeting's only news is who is there.
      client.on('doc:state', (m) => mine(m) && this._users(m.users || [])),
      client.on('doc:ack', (m) => mine(m) && this._ack(m)),
      client.on('doc:operation', (m) => mine(m) && this._operation(m)),
      client.on('doc:user_joined', (m) => mine(m) && this._usersChanged(m, true)),
      client.on('doc:user_left', (m) => mine(m) && this._usersChanged(m, false)),
      client.on('cursor:update', (m) => mine(m) && this._cursorsUpdated(m)),
      client.on('cursor:remove', (m) => mine(m) && this._cursorRemoved(m)),
      client.on('reconnected', () => this.joined && this._rejoin()),
    ];
  }

  /** Joins; resolves with the `doc:state` (the text is then in `this.text`). */
  async join() {
    this.joined = true;
    const state = await this.client.request('doc:join', { doc: this.name });
    this._load(state);
    return state;
  }

  leave() {
    this.joined = false;
    return this.client.request('doc:leave', { doc: this.name });
  }

  /** Listens to 'change' ({ops, index-based in UTF-16, author, version}), 'state', 'ack',
   * 'reset' (local edits dropped: the server no longer had what they were based on),
   * 'users'. */
  on(type, callback) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(callback);
    return () => this._listeners.get(type)?.delete(callback);
  }

  /** Inserts `content` at UTF-16 index `index` of `this.text`. */
  insert(index, content) {
    if (!content) return;
    let at = utf16ToCp(this.text, index);
    const chars = [...content];
    for (let i = 0; i < chars.length; i += DOC_CHANGE_CHARS_MAX) {
      const piece = chars.slice(i, i + DOC_CHANGE_CHARS_MAX).join('');
      this._local(ins(at, piece));
      at += cpLength(piece);
    }
  }

  /** Deletes `length` UTF-16 units from `index` of `this.text`. */
  delete(index, length) {
    if (length <= 0) return;
    const from = utf16ToCp(this.text, index);
    const to = utf16ToCp(this.text, index + length);
    if (to > from) this._local(del(from, to - from));
  }

  /** Moves this connection's caret to UTF-16 index `index` (and selects from `anchor`).
   * Volatile: never buffered while offline. */
  moveCursor(index, anchor = index) {
    this._caretWanted = [index, anchor];
    this._sendCaret();
  }

  /** The caret goes out only while every local edit is acknowledged: its position is then
   * one in the server's version `this.version`, which it says. */
  _sendCaret() {
    if (!this._caretWanted || !this.settled || this._syncing) return;
    const [index, anchor] = this._caretWanted;
    this._caretWanted = null;
    const position = utf16ToCp(this.text, index);
    const from = utf16ToCp(this.text, anchor);
    const move = { doc: this.name, position, anchor: from, version: this.version };
    this.client.send('cursor:move', move, undefined, { volatile: true });
  }

  /** Moves this connection's canvas pointer. */
  movePointer(x, y) {
    this.client.send('cursor:move', { doc: this.name, x, y }, undefined, { volatile: true });
  }

  /** Other members' cursors: text carets as UTF-16 `index` and `anchor` into `this.text`, or
   * canvas `x`, `y`. */
  cursors() {
    const local = [...(this._inflight?.ops || []), ...this._pending];
    const out = [];
    for (const [connectionId, c] of this._cursors) {
      if (connectionId === this.client.connectionId) continue;
      if (c.position === undefined) {
        out.push({ connectionId, userId: c.userId, username: c.username, x: c.x, y: c.y });
        continue;
      }
      // Held in the server's text; our unacknowledged edits move it for display.
      let [p, a] = [c.position, c.anchor ?? c.position];
      for (const op of local) [p, a] = [cursorThrough(p, op), cursorThrough(a, op)];
      const index = cpToUtf16(this.text, p);
      const anchor = cpToUtf16(this.text, a);
      out.push({ connectionId, userId: c.userId, username: c.username, index, anchor });
    }
    return out;
  }

  _cursorsUpdated(m) {
    for (const c of m.cursors) {
      const { connectionId, ...rest } = c;
      this._cursors.set(connectionId, { ...rest, version: m.version ?? this.version });
    }
    this._emit('cursors', this.cursors());
  }

  _cursorRemoved(m) {
    this._cursors.delete(m.connectionId);
    this._emit('cursors', this.cursors());
  }

  /** Remote carets move through change `version` (its ops as the server applied them),
   * unless their positions already include it. */
  _moveCursors(ops, version) {
    for (const c of this._cursors.values()) {
      if (c.position === undefined || c.version >= version) continue;
      for (const op of ops) {
        c.position = cursorThrough(c.position, op);
        if (c.anchor !== undefined) c.anchor = cursorThrough(c.anchor, op);
      }
      c.version = version;
    }
  }

  /** Whether every local edit has been acknowledged. */
  get settled() {
    return !this._inflight && this._pending.length === 0;
  }

  close() {
    this._off.forEach((off) => off());
  }

  _local(op) {
    this.text = applyOp(this.text, op);
    this._pending.push(op);
    this._flush();
  }

  _flush() {
    if (this._inflight || this._syncing || this._pending.length === 0) return;
    if (this.client.status !== 'connected') return;
    this._seq += 1;
    // A change within the server's limits: at most DOC_CHANGE_OPS_MAX ops and
    // DOC_CHANGE_CHARS_MAX inserted code points; the rest waits for the next.
    let n = 0;
    let chars = 0;
    while (n < this._pending.length && n < DOC_CHANGE_OPS_MAX) {
      const add = this._pending[n].operation === 'insert' ? this._pending[n].chars : 0;
      if (n > 0 && chars + add > DOC_CHANGE_CHARS_MAX) break;
      chars += add;
      n += 1;
    }
    this._inflight = { seq: this._seq, ops: this._pending.slice(0, n) };
    this._pending = this._pending.slice(n);
    this._sendInflight();
  }

  /** Sends the change in flight. Its ack comes as `doc:ack`. `rate_limited` means it was
   * not acted on: it goes again (as then transformed) after the resync delay. Any other
   * refusal (the server's `error`) means the server will never have it: the document is
   * loaded again. */
  _sendInflight() {
    const { seq, ops } = this._inflight;
    const change = { doc: this.name, version: this.version, ops: ops.map(wireOp), client: this.clientId, seq };
    this.client.request('doc:change', change).catch((e) => {
      if (['disconnected', 'timeout', 'dropped', 'busy'].includes(e.code)) return; // resent after the reconnect
      if (this._inflight?.seq !== seq) return;
      this._emit('error', e);
      if (e.code === 'rate_limited') {
        this._retry(() => this._inflight?.seq === seq && !this._syncing && this._sendInflight());
        return;
      }
      this._reload();
    });
  }

  /** Loads the document again from the server (leave and join): what is not acknowledged
   * is dropped, and `reset` says so. */
  async _reload() {
    this._syncing = true;
    try {
      await this.client.request('doc:leave', { doc: this.name }).catch(() => {});
      const state = await this.client.request('doc:join', { doc: this.name });
      this._load(state);
    } catch (e) {
      this._emit('error', e);
      this._retry(() => this._reload());
    }
  }

  /** Runs `again` after the resync delay (doubling up to its cap). */
  _retry(again) {
    const delay = this._resyncDelay;
    this._resyncDelay = Math.min(DOC_RESYNC_DELAY_MAX_MS, delay * 2);
    setTimeout(() => {
      if (this.joined && this.client.status === 'connected') again();
    }, delay);
  }

  /** After a reconnect: rejoin, then catch up from `this.version` before sending more. */
  async _rejoin() {
    this._syncing = true;
    this._held = [];
    this._cursors.clear(); // the join's cursor:update brings the current ones
    this.client.send('doc:join', { doc: this.name }, undefined, { volatile: true });
    await this._sync();
  }

  /** Catches up from `this.version`; on failure tries again later, still holding live
   * changes, so nothing applies over a gap. */
  async _sync() {
    try {
      const answer = await this.client.request('doc:sync', { doc: this.name, version: this.version });
      this._resyncDelay = DOC_RESYNC_DELAY_MS;
      if (answer.type === 'doc:operations') this._caughtUp(answer);
      else this._load(answer);
    } catch (e) {
      this._emit('error', e);
      if (e.code === 'not_in_doc') return this._retry(() => this._rejoin());
      this._retry(() => this._sync());
    }
    return undefined;
  }

  /** A whole state: the server's text replaces ours. Local edits not acknowledged are
   * dropped (a `reset` event lists them): the server no longer has what they were based on. */
  _load(state) {
    if (!this.settled) {
      this._emit('reset', { dropped: [...(this._inflight?.ops || []), ...this._pending] });
    }
    this._inflight = null;
    this._pending = [];
    this._syncing = false;
    this._held = [];
    this.text = state.content;
    this.version = state.version;
    this._users(state.users || []);
    this._emit('state', state);
    this._sendCaret();
  }

  _users(users) {
    this.users = users;
    this._emit('users', users);
  }

  _ack(m) {
    if (!this._inflight || m.seq !== this._inflight.seq) return;
    // Our change, as the server applied it, moves the carets held in its text.
    this._moveCursors(this._inflight.ops, m.version);
    this._inflight = null;
    this.version = Math.max(this.version, m.version);
    this._resyncDelay = DOC_RESYNC_DELAY_MS;
    this._emit('ack', m);
    this._flush();
    this._sendCaret();
  }

  _operation(m) {
    if (this._syncing) return this._held.push(m);
    return this._apply(m.version, m.ops.map(fromWire), m.author, null);
  }

  _caughtUp(m) {
    for (const c of m.changes) this._apply(c.version, c.ops.map(fromWire), c.author, c);
    this._syncing = false;
    const held = this._held;
    this._held = [];
    held.forEach((h) => this._apply(h.version, h.ops.map(fromWire), h.author, null));
    if (this._inflight) this._sendInflight();
    else this._flush();
    this._sendCaret();
  }

  /** A change of version `version`: ours (seen in a sync) acknowledges our change in
   * flight; another's is transformed against ours and applied. */
  _apply(version, ops, author, origin) {
    if (version <= this.version) return;
    if (version > this.version + 1) {
      // A change is missing: catch up before applying anything more.
      if (!this._syncing) {
        this._syncing = true;
        this._held = [];
        this._sync();
      }
      return;
    }
    this._moveCursors(ops, version);
    if (origin && this._inflight && origin.client === this.clientId && origin.seq === this._inflight.seq) {
      this._inflight = null;
      this.version = version;
      return;
    }
    let theirs = ops;
    if (this._inflight) {
      const [mine, t] = transformLists(this._inflight.ops, theirs, true);
      this._inflight.ops = mine;
      theirs = t;
    }
    const [pending, t2] = transformLists(this._pending, theirs, true);
    this._pending = pending;
    theirs = t2;
    const before = this.text;
    const changes = [];
    for (const op of theirs) {
      const index = cpToUtf16(this.text, op.position);
      const length = op.operation === 'delete'
        ? cpToUtf16(this.text, op.position + op.length) - index : 0;
      this.text = applyOp(this.text, op);
      changes.push(op.operation === 'insert' ? { insert: op.content, index } : { delete: length, index });
    }
    this.version = version;
    this._emit('change', { changes, author, version, before });
  }

  _usersChanged(m, joined) {
    const { doc, type, ...user } = m;
    const others = this.users.filter((u) => u.connectionId !== m.connectionId);
    this._users(joined ? [...others, user] : others);
  }

  _emit(type, value) {
    for (const callback of this._listeners.get(type) || []) callback(value);
  }
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// ----- shared state, channels, presence data -----------------------------------------------

/** Whether message `m` is about `where` ({room} or {doc}). */
const about = (where, m) => (where.room !== undefined ? m.room === where.room : m.doc === where.doc);

/** Listeners of one helper. */
class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  on(type, callback) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(callback);
    return () => this._listeners.get(type)?.delete(callback);
  }

  _emit(type, value) {
    for (const callback of this._listeners.get(type) || []) callback(value);
  }
}

/** A topic's shared state: `state` (an object) and `version`, kept current from
 * `state:sync` and `state:update`; read again after a reconnect. */
export class SharedState extends Emitter {
  constructor(client, where) {
    super();
    this.client = client;
    this.where = where;
    this.state = {};
    this.version = 0;
    this._off = [
      client.on('state:sync', (m) => about(where, m) && this._sync(m)),
      client.on('state:update', (m) => about(where, m) && this._update(m)),
      client.on('reconnected', () => this.get().catch((e) => this._emit('error', e))),
    ];
  }

  /** Reads the whole state. */
  async get() {
    await this.client.request('state:get', { ...this.where });
    return this.state;
  }

  /** Writes one key (`undefined` or `null` deletes it); `ifVersion` makes it a
   * compare-and-set. Resolves with the write's version. */
  async set(key, value, { ifVersion } = {}) {
    const ack = await this.client.request('state:set', { ...this.where, key, value: value ?? null, ifVersion });
    return ack.version;
  }

  /** Writes several keys at once (null deletes). */
  async merge(patch, { ifVersion } = {}) {
    const ack = await this.client.request('state:merge', { ...this.where, patch, ifVersion });
    return ack.version;
  }

  _sync(m) {
    this.state = { ...m.state };
    this.version = m.version;
    this._emit('change', { state: this.state, version: this.version, changes: m.state, by: null });
  }

  _update(m) {
    if (m.version <= this.version) return;
    for (const [k, v] of Object.entries(m.changes)) {
      if (v === null) delete this.state[k];
      else this.state[k] = v;
    }
    this.version = m.version;
    this._emit('change', { state: this.state, version: this.version, changes: m.changes, by: m.by });
  }

  close() {
    this._off.forEach((off) => off());
  }
}

/** A broadcast channel: `send(payload)` to the others, `on('message', cb)`, `history()`. */
export class Broadcast extends Emitter {
  constructor(client, where, channel) {
    super();
    this.client = client;
    this.where = where;
    this.channel = channel;
    this._off = client.on('broadcast:message', (m) => {
      if (about(where, m) && m.channel === channel) this._emit('message', m);
    });
  }

  /** Sends `payload` to the other members; resolves with its id. */
  async send(payload) {
    const ack = await this.client.request('broadcast:send', { ...this.where, channel: this.channel, payload });
    return ack.id;
  }

  /** The channel's kept messages, oldest first. */
  async history(limit) {
    const m = await this.client.request('broadcast:history', { ...this.where, channel: this.channel, limit });
    return m.messages;
  }

  close() {
    this._off();
  }
}

/** Presence data: `set(data)` for this connection, `others` (connectionId -> {user, data}). */
export class PresenceData extends Emitter {
  constructor(client, where) {
    super();
    this.client = client;
    this.where = where;
    this.others = new Map();
    this._off = client.on('presence:data', (m) => {
      if (!about(where, m) || m.connectionId === client.connectionId) return;
      if (m.data === null) this.others.delete(m.connectionId);
      else this.others.set(m.connectionId, { user: m.user, data: m.data, lastSeen: m.lastSeen });
      this._emit('change', this.others);
    });
  }

  set(data) {
    return this.client.request('presence:set', { ...this.where, data });
  }

  close() {
    this._off();
  }
}
