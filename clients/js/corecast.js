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
