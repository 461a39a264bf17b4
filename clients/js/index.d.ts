// Types of corecast's JavaScript client (corecast.js).

export declare const SEND_BUFFER_MAX: number;
export declare const REQUEST_TIMEOUT_MS: number;
export declare const PENDING_REQUESTS_MAX: number;
/** Ops one document change carries at most. */
export declare const DOC_CHANGE_OPS_MAX: number;
/** Inserted code points one document change carries at most (a longer paste is split). */
export declare const DOC_CHANGE_CHARS_MAX: number;

export type Status = 'connecting' | 'connected' | 'disconnected' | 'reconnecting';

/** Any server message: `{type, ...fields}` (see docs/PROTOCOL.md). */
export interface Message {
  type: string;
  ref?: string | number;
  room?: string;
  [field: string]: unknown;
}

export interface ClientOptions {
  url: string;
  protocols?: string | string[];
  /** Reconnect after an unexpected close (default true). */
  reconnect?: boolean;
  /** First reconnect delay ceiling in ms (default 1000); doubles per attempt, full jitter. */
  reconnectDelay?: number;
  /** Cap of the reconnect delay in ms (default 30000). */
  maxReconnectDelay?: number;
  /** Reconnect attempts before giving up (default Infinity). */
  reconnectAttempts?: number;
  /** `ping` every this many ms; nothing heard for two intervals closes and reconnects
   * (default 30000; 0 turns it off). */
  heartbeatInterval?: number;
  /** How long `request` waits for its answer, in ms (default 10000). */
  requestTimeout?: number;
  /** Messages kept while disconnected (default 256); past it the oldest is dropped. */
  sendBufferMax?: number;
  /** A WebSocket constructor, where there is no global one. */
  WebSocket?: unknown;
  onOpen?: (established: Message) => void;
  onClose?: (event: { code: number; reason: string }) => void;
  onError?: (error: unknown) => void;
  onMessage?: (message: Message) => void;
}

export declare class CorecastError extends Error {
  code: string;
  frame?: Message;
}

export interface SendOptions {
  /** Never buffered while disconnected (cursor-like data). */
  volatile?: boolean;
}

export declare class CorecastClient {
  constructor(options: ClientOptions);
  readonly status: Status;
  lastMessage: Message | null;
  connectionId: number | null;
  user: { userId: string; username: string } | null;
  /** Newest `message:new` id seen per room: where a resume would start. */
  lastIds: Map<string, number>;
  /** Messages dropped from the full send buffer. */
  droppedSends: number;
  connect(): this;
  disconnect(): void;
  /** `type` is a message type, '*' for all, or a client event: 'status', 'connected',
   * 'reconnected', 'rejoined', 'rejoin:failed', 'buffer:dropped', 'heartbeat:timeout'. */
  on(type: string, callback: (value: any) => void): () => void;
  send(type: string, payload?: object, room?: string, options?: SendOptions): boolean;
  request(type: string, payload?: object, options?: { timeout?: number; room?: string }): Promise<Message>;
  login(username: string): Promise<Message>;
  room(id: string, options?: { password?: string }): Room;
  presence(room: string, options?: { user?: unknown; data?: unknown }): Presence;
  directMessages(): {
    send(to: string, content: unknown): Promise<Message>;
    on(callback: (message: Message) => void): () => void;
  };
  notifications(): Notifications;
  /** The shared state of a room (`{room}`) or a document (`{doc}`). */
  sharedState(where: Where): SharedState;
  /** A broadcast channel of a room or document. */
  broadcast(where: Where, channel: string): Broadcast;
  /** Presence data in a room or document. */
  presenceData(where: Where): PresenceData;
  /** A shared plain-text document (`doc:join`, `doc:change`...), kept in step with the
   * server's: one change in flight, the rest buffered, remote changes transformed. */
  doc(name: string, options?: { clientId?: string }): Doc;
}

/** An op as the server speaks it: positions and lengths in code points. */
export type DocOp =
  | { operation: 'insert'; position: number; content: string; chars: number }
  | { operation: 'delete'; position: number; length: number };

/** `op` made to apply after `applied` (the server's rule: on a tie the first stays left). */
export declare function transformOp(op: DocOp, applied: DocOp, appliedFirst: boolean): DocOp[];
export declare function transformLists(xs: DocOp[], ys: DocOp[], ysFirst: boolean): [DocOp[], DocOp[]];

/** A remote change as the page applies it: UTF-16 indices into the text before it. */
export type TextChange = { insert: string; index: number } | { delete: number; index: number };

export declare class Doc {
  readonly name: string;
  /** Stable across reconnects: makes resubmits idempotent. */
  readonly clientId: string;
  text: string;
  version: number;
  users: Array<{ connectionId: number; userId: string; username: string }>;
  /** Every local edit acknowledged. */
  readonly settled: boolean;
  join(): Promise<Message>;
  leave(): Promise<Message>;
  /** Inserts at a UTF-16 index of `text`. */
  insert(index: number, content: string): void;
  /** Deletes `length` UTF-16 units from `index`. */
  delete(index: number, length: number): void;
  /** Moves this connection's caret (UTF-16 indices into `text`); volatile. */
  moveCursor(index: number, anchor?: number): void;
  /** Moves this connection's canvas pointer; volatile. */
  movePointer(x: number, y: number): void;
  /** Other members' cursors, carets in UTF-16 indices into `text`. */
  cursors(): Array<{ connectionId: number; userId: string; username: string; index?: number; anchor?: number; x?: number; y?: number }>;
  /** 'change' ({changes, author, version, before}), 'state', 'ack', 'users', 'cursors', 'reset'
   * ({dropped}: local edits lost because the server no longer had their base), 'error'. */
  on(type: string, callback: (value: any) => void): () => void;
  close(): void;
}

export declare class Room {
  readonly id: string;
  join(): Promise<Message>;
  leave(): Promise<Message>;
  send(content: unknown): Promise<Message>;
  messages(options?: { limit?: number; before?: number }): Promise<Message>;
  users(): Promise<Array<{ userId: string; username: string; status: string; lastSeen: number }>>;
  typing(on?: boolean): void;
  read(upTo: number): void;
  on(callback: (message: Message) => void): () => void;
  on(type: string, callback: (message: Message) => void): () => void;
}

export declare class Presence {
  readonly room: string;
  users: Map<string, Message>;
  count(): number;
  others(): Message[];
  setStatus(status: 'online' | 'away' | 'dnd'): Promise<Message>;
  close(): void;
}

export declare class Notifications {
  unread: number;
  list(): Promise<Message[]>;
  markRead(ids: number[]): Promise<Message>;
  on(callback: (notification: Message) => void): () => void;
  close(): void;
}

/** A room or a document. */
export type Where = { room: string } | { doc: string };

export declare class SharedState {
  state: Record<string, unknown>;
  version: number;
  get(): Promise<Record<string, unknown>>;
  /** Resolves with the write's version; rejects with `version_conflict` when `ifVersion` is stale. */
  set(key: string, value: unknown, options?: { ifVersion?: number }): Promise<number>;
  merge(patch: Record<string, unknown>, options?: { ifVersion?: number }): Promise<number>;
  /** 'change' ({state, version, changes, by}), 'error'. */
  on(type: string, callback: (value: any) => void): () => void;
  close(): void;
}

export declare class Broadcast {
  readonly channel: string;
  send(payload: unknown): Promise<number>;
  history(limit?: number): Promise<Message[]>;
  /** 'message' (a `broadcast:message`). */
  on(type: string, callback: (value: any) => void): () => void;
  close(): void;
}

export declare class PresenceData {
  others: Map<number, { user: { userId: string; username: string }; data: unknown; lastSeen: number }>;
  set(data: unknown): Promise<Message>;
  /** 'change' (the `others` map). */
  on(type: string, callback: (value: any) => void): () => void;
  close(): void;
}
