// The client's shared documents against a real corecast: the transform agrees with the
// server's on ties and splits, concurrent editors converge (with text outside the BMP, where
// UTF-16 and code points differ), and edits made while the connection is dead arrive once
// after the reconnect's catch-up.
import test from 'node:test';
import assert from 'node:assert/strict';
import { CorecastClient, transformOp, transformLists } from '../corecast.js';
import { startServer, until } from '../testing/server.mjs';

const fast = { reconnectDelay: 50, maxReconnectDelay: 200, heartbeatInterval: 0 };

async function connected(url, extra = {}) {
  const c = new CorecastClient({ url, ...fast, ...extra });
  c.connect();
  await until(() => c.status === 'connected', 5000, 'connected');
  return c;
}

const ins = (position, content) => ({ operation: 'insert', position, content, chars: [...content].length });
const del = (position, length) => ({ operation: 'delete', position, length });

test('the transform keeps the first insert left and splits a delete around an insert', () => {
  assert.deepEqual(transformOp(ins(2, 'b'), ins(2, 'a'), true), [ins(3, 'b')]);
  assert.deepEqual(transformOp(ins(2, 'b'), ins(2, 'a'), false), [ins(2, 'b')]);
  // The emoji is one code point: the delete's second part starts right after it.
  assert.deepEqual(transformOp(del(1, 4), ins(3, '😀'), true), [del(1, 2), del(2, 2)]);
  assert.deepEqual(transformOp(del(1, 4), del(2, 1), true), [del(1, 3)]);
  assert.deepEqual(transformOp(del(2, 1), del(1, 4), true), []);
  const [xs, ys] = transformLists([ins(0, 'ab'), del(0, 1)], [ins(0, 'c')], true);
  assert.deepEqual(xs, [ins(1, 'ab'), del(1, 1)]);
  assert.deepEqual(ys, [ins(0, 'c')]);
});

/** A random edit on `doc`, in UTF-16 indices that never split a surrogate pair. */
function randomEdit(doc, rnd) {
  const chars = [...doc.text];
  const at = Math.floor(rnd() * (chars.length + 1));
  const index = chars.slice(0, at).join('').length;
  if (chars.length === 0 || rnd() < 0.65) {
    doc.insert(index, ['a', 'é', '😀', '中', ' '][Math.floor(rnd() * 5)]);
  } else if (at < chars.length) {
    const n = 1 + Math.floor(rnd() * Math.min(3, chars.length - at));
    doc.delete(index, chars.slice(at, at + n).join('').length);
  }
}

function seeded(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) % 1_000_000) / 1_000_000;
  };
}

test('three editors typing at once converge on the server\'s text', async () => {
  const srv = await startServer();
  try {
    const clients = await Promise.all([0, 1, 2].map(() => connected(srv.url)));
    const docs = clients.map((c) => c.doc('race'));
    for (const d of docs) await d.join();
    const rnd = seeded(7);
    for (let round = 0; round < 40; round++) {
      for (const d of docs) randomEdit(d, rnd);
      await new Promise((r) => setTimeout(r, rnd() * 5));
    }
    await until(() => docs.every((d) => d.settled), 10000, 'every edit acknowledged');
    const version = Math.max(...docs.map((d) => d.version));
    await until(() => docs.every((d) => d.version === version), 10000, 'every change seen');
    const fresh = await connected(srv.url);
    const check = fresh.doc('race');
    const state = await check.join();
    assert.equal(state.version, version);
    for (const d of docs) assert.equal(d.text, state.content);
    assert.ok(state.content.length > 0);
    [...clients, fresh].forEach((c) => c.disconnect());
  } finally {
    await srv.stop();
  }
});

test('edits made while the connection is dead arrive once after the reconnect', async () => {
  const srv = await startServer();
  try {
    const a = await connected(srv.url, { heartbeatInterval: 100 });
    const b = await connected(srv.url);
    const da = a.doc('notes');
    const db = b.doc('notes');
    await da.join();
    await db.join();
    da.insert(0, 'start ');
    await until(() => db.text === 'start ', 5000, 'b sees the first edit');
    // The server stops answering: a's heartbeat gives the connection up; a keeps editing.
    srv.pause();
    da.insert(da.text.length, '[one]');
    da.insert(da.text.length, '[two]');
    await until(() => a.status === 'reconnecting', 5000, 'a notices');
    da.insert(0, '😀');
    srv.resume();
    await until(() => a.status === 'connected', 10000, 'a is back');
    await until(() => da.settled && db.text === da.text, 10000, 'b converges with a');
    assert.equal(da.text, '😀start [one][two]');
    const fresh = await connected(srv.url);
    const state = await fresh.doc('notes').join();
    assert.equal(state.content, '😀start [one][two]', 'each edit applied once');
    [a, b, fresh].forEach((c) => c.disconnect());
  } finally {
    await srv.stop();
  }
});

test('a change refused by the request budget goes again, and nothing is dropped', { timeout: 30000 }, async () => {
  // 8 units, 4 a second: the join takes 5, so the fourth change in a row is refused.
  const srv = await startServer(0, ['--request-rate', '8/2s']);
  try {
    const c = await connected(srv.url);
    const d = c.doc('budget');
    await d.join();
    const resets = [];
    const errors = [];
    d.on('reset', (r) => resets.push(r));
    d.on('error', (e) => errors.push(e.code));
    for (const ch of 'abcdefgh') {
      d.insert(d.text.length, ch);
      await until(() => d.settled, 10000, `the ack of ${ch}`);
    }
    assert.ok(errors.includes('rate_limited'), String(errors));
    assert.deepEqual(resets, [], 'nothing dropped');
    assert.equal(d.text, 'abcdefgh');
    const fresh = await connected(srv.url);
    assert.equal((await fresh.doc('budget').join()).content, 'abcdefgh');
    [c, fresh].forEach((x) => x.disconnect());
  } finally {
    await srv.stop();
  }
});

test('a change the server refuses reloads the document and says what was dropped', async () => {
  // A 64 KiB send queue holds documents of at most 32 KiB as JSON.
  const srv = await startServer(0, ['--send-queue-bytes', '65536']);
  try {
    const c = await connected(srv.url);
    const d = c.doc('big');
    await d.join();
    const resets = [];
    const errors = [];
    d.on('reset', (r) => resets.push(r));
    d.on('error', (e) => errors.push(e.code));
    d.insert(0, 'x'.repeat(40000)); // five changes of 8192 code points at most
    await until(() => resets.length === 1 && d.settled, 10000, 'the reload');
    assert.ok(errors.includes('doc_too_large'), String(errors));
    assert.equal(d.text, 'x'.repeat(32768), 'what the server kept');
    const fresh = await connected(srv.url);
    assert.equal((await fresh.doc('big').join()).content.length, 32768);
    [c, fresh].forEach((x) => x.disconnect());
  } finally {
    await srv.stop();
  }
});
