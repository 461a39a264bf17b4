// The JS client against a real corecast: request/response, reconnection with the server
// killed and restarted (re-login and rejoin exactly once), the send buffer's limit, the
// heartbeat, and every helper.
import test from 'node:test';
import assert from 'node:assert/strict';
import { CorecastClient, CorecastError } from '../corecast.js';
import { startServer, until, next } from '../testing/server.mjs';

const fast = { reconnectDelay: 50, maxReconnectDelay: 200, heartbeatInterval: 0 };

async function connected(url, extra = {}) {
  const c = new CorecastClient({ url, ...fast, ...extra });
  c.connect();
  await until(() => c.status === 'connected', 5000, 'connected');
  return c;
}

test('request resolves on its answer and rejects on error', async () => {
  const srv = await startServer();
  try {
    const c = await connected(srv.url);
    const ok = await c.login('alice');
    assert.equal(ok.type, 'auth:success');
    assert.equal(c.user.username, 'alice');
    const joined = c.room('lobby');
    const ack = await joined.join();
    assert.equal(ack.type, 'ack');
    await assert.rejects(c.request('room:join', { room: 'lobby' }), (e) => {
      assert.ok(e instanceof CorecastError);
      assert.equal(e.code, 'already_in_room');
      return true;
    });
    await assert.rejects(c.request('nope'), (e) => e.code === 'unknown_type');
    c.disconnect();
    assert.equal(c.status, 'disconnected');
  } finally {
    await srv.stop();
  }
});

test('a request without an answer times out', async () => {
  const srv = await startServer();
  try {
    const c = await connected(srv.url, { requestTimeout: 200 });
    srv.pause();
    await assert.rejects(c.request('room:list'), (e) => e.code === 'timeout');
    srv.resume();
    // A server just resumed may take longer than 200 ms on a loaded machine.
    const list = await c.request('room:list', {}, { timeout: 5000 });
    assert.equal(list.type, 'room:list');
    c.disconnect();
  } finally {
    await srv.stop();
  }
});

test('the server restarts: the client reconnects, logs in again and rejoins once', async () => {
  let srv = await startServer();
  const port = srv.port;
  const a = await connected(srv.url);
  const b = await connected(srv.url);
  try {
    await a.login('ann');
    await b.login('ben');
    await a.room('r1').join();
    await a.room('r2').join();
    await b.room('r1').join();
    const joins = [];
    a.on('rejoined', (e) => joins.push(e.room));
    const statuses = [];
    a.on('status', (s) => statuses.push(s));
    await srv.stop();
    await until(() => a.status === 'reconnecting', 5000, 'reconnecting');
    srv = await startServer(port);
    await until(() => joins.length === 2 && b.status === 'connected', 10000, 'rejoined');
    assert.deepEqual(joins.sort(), ['r1', 'r2']);
    assert.equal(a.user.username, 'ann', 'logged in again');
    assert.ok(statuses.includes('reconnecting') && statuses.at(-1) === 'connected', `${statuses}`);
    // One membership each: a second join would be refused as already_in_room.
    await assert.rejects(a.room('r1').join(), (e) => e.code === 'already_in_room');
    // And the rooms work: b hears a's message once.
    await until(() => b._rooms.size === 1, 5000, 'b rejoined');
    const heard = next(b, 'message:new');
    await a.room('r1').send('back');
    assert.equal((await heard).content, 'back');
  } finally {
    a.disconnect();
    b.disconnect();
    await srv.stop();
  }
});

test('the send buffer is bounded while disconnected, oldest dropped, volatile never kept', async () => {
  let srv = await startServer();
  const port = srv.port;
  const a = await connected(srv.url, { sendBufferMax: 3 });
  const b = await connected(srv.url);
  try {
    await a.login('ann');
    await b.login('ben');
    await a.room('buf').join();
    await b.room('buf').join();
    await srv.stop();
    await until(() => a.status === 'reconnecting', 5000, 'reconnecting');
    const dropped = [];
    a.on('buffer:dropped', (e) => dropped.push(e.message.content));
    const first = a.request('message:send', { content: 'm0' }, { room: 'buf' });
    for (let i = 1; i <= 5; i++) a.send('message:send', { content: `m${i}` }, 'buf');
    await assert.rejects(first, (e) => e.code === 'dropped', 'a dropped request rejects at once');
    assert.equal(a.send('typing:start', {}, 'buf', { volatile: true }), false);
    assert.deepEqual(dropped, ['m0', 'm1', 'm2']);
    assert.equal(a.droppedSends, 3);
    let flushed = false;
    a.on('reconnected', () => {
      flushed = true;
    });
    srv = await startServer(port);
    await until(() => flushed && b.status === 'connected', 10000, 'a flushed its buffer');
    await until(() => b._rooms.size === 1, 5000, 'b rejoined');
    // What a sent after its rejoin is the room's history: the newest 3, in order, and no
    // typing (volatile).
    // The publishes may still be on their way to the room's owner: ask until they are in.
    let contents = [];
    for (let i = 0; i < 100 && contents.length < 3; i++) {
      const page = await b.room('buf').messages({ limit: 10 });
      contents = page.messages.map((m) => m.content);
      if (contents.length < 3) await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(contents, ['m3', 'm4', 'm5']);
  } finally {
    a.disconnect();
    b.disconnect();
    await srv.stop();
  }
});

test('a request that timed out while disconnected is never sent', async () => {
  let srv = await startServer();
  const port = srv.port;
  const a = await connected(srv.url);
  try {
    await a.login('ann');
    await a.room('late').join();
    await srv.stop();
    await until(() => a.status === 'reconnecting', 5000, 'reconnecting');
    const late = a.request('message:send', { content: 'late' }, { room: 'late', timeout: 50 });
    await assert.rejects(late, (e) => e.code === 'timeout');
    a.send('message:send', { content: 'kept' }, 'late');
    srv = await startServer(port);
    let contents = [];
    for (let i = 0; i < 100 && contents.length < 1; i++) {
      await until(() => a.status === 'connected', 10000, 'reconnected');
      const page = await a.room('late').messages({ limit: 10 });
      contents = page.messages.map((m) => m.content);
      if (contents.length < 1) await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(contents, ['kept']);
  } finally {
    a.disconnect();
    await srv.stop();
  }
});

test('the heartbeat pings a quiet connection and the server answers', async () => {
  const srv = await startServer();
  try {
    const c = await connected(srv.url, { heartbeatInterval: 100 });
    const pong = await next(c, 'pong', 2000);
    assert.ok(pong.ts > 0);
    await new Promise((r) => setTimeout(r, 350));
    assert.equal(c.status, 'connected', 'pongs keep it alive');
    c.disconnect();
  } finally {
    await srv.stop();
  }
});

test('a connection that hears nothing is closed and reconnected by the heartbeat', async () => {
  const srv = await startServer();
  try {
    const c = await connected(srv.url, { heartbeatInterval: 100 });
    const timeouts = [];
    c.on('heartbeat:timeout', () => timeouts.push(1));
    // Silence the socket from the client's side: it drops what arrives.
    c._ws.onmessage = () => {};
    await until(() => timeouts.length === 1, 3000, 'heartbeat timeout');
    await until(() => c.status === 'connected', 5000, 'reconnected');
    c.disconnect();
  } finally {
    await srv.stop();
  }
});

test('helpers: rooms, history, typing, presence, direct messages, notifications', async () => {
  const srv = await startServer();
  const a = await connected(srv.url);
  const b = await connected(srv.url);
  try {
    await a.login('ann');
    await b.login('ben');
    const ra = a.room('help');
    const rb = b.room('help');
    const pa = a.presence('help');
    await ra.join();
    await rb.join();
    await until(() => pa.count() === 2, 5000, 'both present');
    assert.deepEqual(pa.others().map((u) => u.username), ['ben']);
    const got = [];
    rb.on((m) => got.push(m.content));
    const sent = await ra.send({ text: 'hi' });
    assert.equal(sent.type, 'ack');
    assert.ok(sent.id >= 1);
    await until(() => got.length === 1, 5000, 'message');
    assert.deepEqual(got[0], { text: 'hi' });
    const page = await rb.messages({ limit: 10 });
    assert.equal(page.type, 'message:history');
    assert.equal(page.messages.at(-1).content.text, 'hi');
    const typing = next(b, 'typing:update');
    ra.typing(true);
    assert.equal((await typing).users[0].username, 'ann');
    const users = await rb.users();
    assert.deepEqual(users.map((u) => u.username).sort(), ['ann', 'ben']);
    const away = next(b, 'presence:update');
    await pa.setStatus('dnd');
    assert.equal((await away).status, 'dnd');
    const nb = b.notifications();
    const dm = next(b, 'message:direct');
    const note = new Promise((r) => nb.on(r));
    await a.directMessages().send('ben', 'psst');
    assert.equal((await dm).content, 'psst');
    assert.equal((await note).kind, 'direct');
    await until(() => nb.unread === 1, 5000, 'unread count');
    const list = await nb.list();
    assert.equal(list.length, 1);
    await nb.markRead([list[0].id]);
    await until(() => nb.unread === 0, 5000, 'read');
    const left = next(b, 'room:user_left');
    await ra.leave();
    assert.equal((await left).username, 'ann');
  } finally {
    a.disconnect();
    b.disconnect();
    await srv.stop();
  }
});

test('the engine serves the client at /client.js with its security headers', async () => {
  const srv = await startServer();
  try {
    const r = await fetch(`${srv.http}/client.js`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /javascript/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
    assert.match(await r.text(), /export class CorecastClient/);
    const t = await fetch(`${srv.http}/client.d.ts`);
    assert.match(await t.text(), /declare class CorecastClient/);
  } finally {
    await srv.stop();
  }
});

test('the engine serves its pages, and every file they load, with their headers', async () => {
  const srv = await startServer();
  try {
    for (const page of ['/', '/playground']) {
      const r = await fetch(`${srv.http}${page}`);
      assert.equal(r.status, 200, page);
      assert.match(r.headers.get('content-type'), /text\/html/);
      assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      const html = await r.text();
      const refs = [...html.matchAll(/(?:href|src)="(\/[^"]*)"/g)].map((m) => m[1]);
      assert.ok(refs.length >= 3, `${page} loads its files`);
      for (const ref of refs) {
        const f = await fetch(`${srv.http}${ref}`);
        assert.equal(f.status, 200, `${page} loads ${ref}`);
      }
    }
    assert.equal((await fetch(`${srv.http}/nowhere`)).status, 404);
  } finally {
    await srv.stop();
  }
});
