// The pages corecast serves, in headless Chromium (Debian's `chromium`, driven by
// playwright-core) against a real server: two users chat, see each other's typing and
// presence, a direct message raises a notification, the server restarts and both pages
// rejoin on their own exactly once; history pages in on scroll; rooms with a password;
// rate-limit warnings; token sign-in; the playground. No page may log a console error, and
// every page is screenshotted under target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CorecastClient } from '../../js/corecast.js';
import { startServer, until } from '../../js/testing/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = process.env.CORECAST_SCREENSHOTS || path.join(here, '../../../target/screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** How long a page has to show what a test waits for. */
const WAIT_MS = 10000;
/** What Chromium itself logs when a WebSocket cannot connect (the server is down, or it
 * refused the handshake): expected while a test stops the server or offers a bad token. */
const SOCKET_FAILED = /WebSocket connection to .* failed/;

let browser;
let srv;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  srv = await startServer();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** A page in a fresh context (its own storage: another user), with its console errors and the
 * frames it sent collected. */
async function openPage(url, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  const sent = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    try {
      sent.push(JSON.parse(f.payload));
    } catch {
      sent.push({ type: '(not json)' });
    }
  }));
  await page.goto(url);
  return { context, page, errors, sent };
}

/** No console error but those `allowed` matches. */
function assertNoErrors(p, allowed = null) {
  const bad = p.errors.filter((e) => !(allowed && allowed.test(e)));
  assert.deepEqual(bad, [], 'the page logged console errors');
}

function shot(page, name) {
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function signIn(page, username) {
  await page.locator('#signin').waitFor();
  await page.fill('#username', username);
  await page.click('#signin-go');
  await page.locator('#status.connected').waitFor({ timeout: WAIT_MS });
  await page.locator('#me-name', { hasText: username }).waitFor({ timeout: WAIT_MS });
  // The room the URL names is joined and shown.
  await page.locator('#conv-name', { hasText: '#' }).waitFor({ timeout: WAIT_MS });
}

const text = (page, selector) => page.locator(selector).allTextContents();

/** Waits until `page` shows `selector` with `hasText`. */
function shows(page, selector, hasText) {
  return page.locator(selector, hasText === undefined ? {} : { hasText }).first().waitFor({ timeout: WAIT_MS });
}

async function send(page, message) {
  await page.fill('#text', message);
  await page.press('#text', 'Enter');
}

test('the landing page shows the server state and links every page', async () => {
  const p = await openPage(`${srv.http}/`);
  await shows(p.page, '#health.connected', 'server ok');
  await shows(p.page, '.stat span', 'open connections');
  const links = await p.page.locator('.card h2 a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.ok(links.includes('/chat') && links.includes('/playground'), String(links));
  await shot(p.page, 'index');
  assertNoErrors(p);
  await p.context.close();
});

test('the playground sends a message and shows the answer frame', async () => {
  const p = await openPage(`${srv.http}/playground`);
  await p.page.click('#connect');
  await shows(p.page, '#status.connected');
  await p.page.selectOption('#template', 'ping');
  await p.page.click('#send');
  await shows(p.page, '.frame.out', '"ping"');
  await shows(p.page, '.frame.in', '"pong"');
  await p.page.selectOption('#template', 'room:list');
  await p.page.click('#send');
  await shows(p.page, '.frame.in', '"rooms"');
  await shot(p.page, 'playground');
  await p.page.click('#disconnect');
  await shows(p.page, '#status.disconnected');
  assertNoErrors(p);
  await p.context.close();
});

test('two users chat, see typing, presence and a direct message, and survive a restart', async () => {
  const alice = await openPage(`${srv.http}/chat#general`);
  const bob = await openPage(`${srv.http}/chat#general`);
  await shot(alice.page, 'chat-signin');
  await signIn(alice.page, 'alice');
  await signIn(bob.page, 'bob');
  await shows(alice.page, '#conv-name', '# general');
  await shows(alice.page, '#people li[data-user="bob"] .dot.online');
  await shows(bob.page, '#people li[data-user="alice"] .dot.online');

  // Typing, then the message.
  await alice.page.fill('#text', 'hello b');
  await shows(bob.page, '#typing', 'alice is typing');
  await alice.page.press('#text', 'Enter');
  await shows(bob.page, '#messages .msg-body', 'hello b');
  await send(bob.page, 'hi @alice');
  await shows(alice.page, '#messages .msg.mention .msg-body', 'hi @alice');

  // Presence.
  await alice.page.selectOption('#my-status', 'away');
  await shows(bob.page, '#people li[data-user="alice"] .dot.away');
  await alice.page.selectOption('#my-status', 'online');
  await shows(bob.page, '#people li[data-user="alice"] .dot.online');

  // A direct message: a conversation on bob's side and a notification.
  await alice.page.click('#people li[data-user="bob"] button');
  await shows(alice.page, '#conv-name', '@ bob');
  await send(alice.page, 'psst, bob');
  await shows(bob.page, '#dms button[data-user="alice"] .count', '1');
  await shows(bob.page, '#unread:not([hidden])');
  assert.deepEqual(await text(bob.page, '#unread'), ['1'], 'the direct message notification');
  assert.deepEqual(await text(alice.page, '#unread'), ['1'], 'the mention notification');
  await bob.page.click('#bell');
  await shows(bob.page, '#notification-list li.unread', 'alice');
  await shot(bob.page, 'chat-notifications');
  await bob.page.click('#mark-read');
  await bob.page.locator('#unread').waitFor({ state: 'hidden', timeout: WAIT_MS });
  await bob.page.click('#bell');
  await bob.page.click('#dms button[data-user="alice"]');
  await shows(bob.page, '#messages .msg-body', 'psst, bob');
  await alice.page.click('#rooms button[data-room="general"]');
  await bob.page.click('#rooms button[data-room="general"]');
  await shot(alice.page, 'chat');

  // The server restarts: both pages come back and rejoin on their own, once each.
  const mark = [alice.sent.length, bob.sent.length];
  await srv.stop();
  srv = await startServer(srv.port);
  for (const p of [alice, bob]) {
    await shows(p.page, '#status.reconnecting, #status.connected');
    await shows(p.page, '#status.connected');
  }
  await shows(alice.page, '#people li[data-user="bob"]');
  await shows(bob.page, '#people li[data-user="alice"]');
  const joins = (p, i) => p.sent.slice(mark[i]).filter((m) => m.type === 'room:join');
  assert.deepEqual(joins(alice, 0).map((m) => m.room), ['general']);
  assert.deepEqual(joins(bob, 1).map((m) => m.room), ['general']);
  const logins = (p, i) => p.sent.slice(mark[i]).filter((m) => m.type === 'auth:login');
  assert.equal(logins(alice, 0).length, 1);
  await shows(alice.page, '#messages .note', 'server restarted');
  await send(alice.page, 'back again');
  await shows(bob.page, '#messages .msg-body', 'back again');
  await new Promise((r) => setTimeout(r, 300));
  const seen = await text(bob.page, '#messages .msg-body');
  assert.equal(seen.filter((t) => t === 'back again').length, 1, String(seen));
  const health = await (await fetch(`${srv.http}/healthz`)).json();
  assert.equal(health.connections, 2, 'one connection per page');
  await shot(bob.page, 'chat-after-restart');
  assertNoErrors(alice, SOCKET_FAILED);
  assertNoErrors(bob, SOCKET_FAILED);
  await alice.context.close();
  await bob.context.close();
});

test('offline, the page does not retry; online again, it reconnects at once and sends what waited', async () => {
  const p = await openPage(`${srv.http}/chat#general`);
  await signIn(p.page, 'ivan');
  let sockets = 0;
  p.page.on('websocket', () => { sockets += 1; });
  await p.context.setOffline(true);
  await srv.stop();
  await shows(p.page, '#status.reconnecting');
  srv = await startServer(srv.port);
  await send(p.page, 'written while offline');
  // The client's first retry would come within a second; offline, none comes.
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(sockets, 0, 'no reconnect attempt while offline');
  assert.equal((await text(p.page, '#status'))[0], 'reconnecting');
  const back = Date.now();
  await p.context.setOffline(false);
  await shows(p.page, '#status.connected');
  assert.ok(Date.now() - back < 2000, `reconnected ${Date.now() - back} ms after coming online`);
  assert.equal(sockets, 1, 'one attempt, at once');
  await shows(p.page, '#messages .msg-body', 'written while offline');
  await new Promise((r) => setTimeout(r, 200));
  const seen = await text(p.page, '#messages .msg-body');
  assert.equal(seen.filter((t) => t === 'written while offline').length, 1, String(seen));
  assertNoErrors(p, SOCKET_FAILED);
  await p.context.close();
});

test('history pages in on scroll, oldest first, each message once', async () => {
  const seeder = new CorecastClient({ url: srv.url, heartbeatInterval: 0 }).connect();
  await until(() => seeder.status === 'connected', WAIT_MS, 'the seeder');
  await seeder.login('seeder');
  const room = seeder.room('history');
  await room.join();
  for (let i = 1; i <= 130; i++) await room.send(`line ${i}`);
  seeder.disconnect();

  const carol = await openPage(`${srv.http}/chat#history`);
  await signIn(carol.page, 'carol');
  await shows(carol.page, '#messages .msg-body', 'line 130');
  for (let i = 0; i < 10; i++) {
    if ((await carol.page.locator('#messages .note', { hasText: 'beginning of #history' }).count()) > 0) break;
    await carol.page.evaluate(() => { document.getElementById('messages').scrollTop = 0; });
    await new Promise((r) => setTimeout(r, 200));
  }
  await shows(carol.page, '#messages .note', 'beginning of #history');
  const bodies = await text(carol.page, '#messages .msg-body');
  assert.deepEqual(bodies, Array.from({ length: 130 }, (_, i) => `line ${i + 1}`));
  await shot(carol.page, 'chat-history');
  assertNoErrors(carol);
  await carol.context.close();
});

test('a room with a password and a capacity: created from the form, joined with the password', async () => {
  const dave = await openPage(`${srv.http}/chat#general`);
  const erin = await openPage(`${srv.http}/chat#general`);
  await signIn(dave.page, 'dave');
  await signIn(erin.page, 'erin');
  await dave.page.click('#create summary');
  await dave.page.fill('#new-room', 'secret-room');
  await dave.page.fill('#new-description', 'Only with the password');
  await dave.page.fill('#new-password', 'open-sesame');
  await dave.page.fill('#new-capacity', '5');
  await dave.page.click('#create-form button');
  await shows(dave.page, '#conv-name', '# secret-room');
  await shows(dave.page, '#conv-sub', 'Only with the password');

  await erin.page.click('#refresh-rooms');
  await shows(erin.page, '#rooms button[data-room="secret-room"] .lock');
  await erin.page.click('#rooms button[data-room="secret-room"]');
  await erin.page.fill('#room-password', 'wrong');
  await erin.page.press('#room-password', 'Enter');
  await shows(erin.page, '.toast.error', 'password');
  await erin.page.click('#rooms button[data-room="secret-room"]');
  await erin.page.fill('#room-password', 'open-sesame');
  await erin.page.press('#room-password', 'Enter');
  await shows(erin.page, '#conv-name', '# secret-room');
  await shows(dave.page, '#people li[data-user="erin"]');
  await erin.page.click('#leave');
  await shows(erin.page, '#conv-name', '# general');
  await dave.page.locator('#people li[data-user="erin"]').waitFor({ state: 'detached', timeout: WAIT_MS });
  assertNoErrors(dave);
  assertNoErrors(erin);
  await dave.context.close();
  await erin.context.close();
});

/** Signs in on the collab page. */
async function joinCollab(page, username) {
  await page.locator('#signin').waitFor();
  await page.fill('#username', username);
  await page.click('#signin-go');
  await page.locator('#editor:not([disabled])').waitFor({ timeout: WAIT_MS });
}

test('two people type into one document at once, converge and see each other\'s caret', async () => {
  const ann = await openPage(`${srv.http}/collab#spec`);
  const bo = await openPage(`${srv.http}/collab#spec`);
  await joinCollab(ann.page, 'ann');
  await joinCollab(bo.page, 'bo');
  await shows(ann.page, '#people li[data-user="bo"]');
  await ann.page.click('#editor');
  await ann.page.keyboard.type('Hello from ann. ');
  await shows(bo.page, '#version', 'v');
  // Both type at the same time, at opposite ends: every keystroke is a change. (At one place
  // their keystrokes would interleave, which is right but not what this checks.)
  await ann.page.keyboard.press('Control+Home');
  await bo.page.click('#editor');
  await bo.page.keyboard.press('Control+End');
  await Promise.all([
    ann.page.keyboard.type('ann was here 😀 ', { delay: 15 }),
    bo.page.keyboard.type('bo typed this 中文 ', { delay: 15 }),
  ]);
  const value = (p) => p.page.locator('#editor').inputValue();
  const settled = async () => {
    const [a, b] = [await value(ann), await value(bo)];
    const saved = (await text(ann.page, '#version'))[0].includes('saved')
      && (await text(bo.page, '#version'))[0].includes('saved');
    return saved && a === b ? a : null;
  };
  let final = null;
  for (let i = 0; i < 100 && final === null; i++) {
    final = await settled();
    if (final === null) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(final !== null, `the two pages converge: ${await value(ann)} / ${await value(bo)}`);
  for (const piece of ['Hello from ann. ', 'ann was here 😀 ', 'bo typed this 中文 ']) {
    assert.ok(final.includes(piece), `${JSON.stringify(piece)} in ${JSON.stringify(final)}`);
  }
  // Each sees the other's caret, named.
  await shows(ann.page, '#mirror .caret[data-user="bo"] .caret-name', 'bo');
  await shows(bo.page, '#mirror .caret[data-user="ann"] .caret-name', 'ann');
  // The shared title, and a stroke on the whiteboard.
  await ann.page.fill('#title', 'Launch plan');
  await bo.page.waitForFunction(() => document.getElementById('title').value === 'Launch plan', null, { timeout: WAIT_MS });
  const box = await ann.page.locator('#board').boundingBox();
  await ann.page.mouse.move(box.x + 20, box.y + 20);
  await ann.page.mouse.down();
  for (let i = 1; i <= 10; i++) await ann.page.mouse.move(box.x + 20 + i * 15, box.y + 20 + i * 8);
  await ann.page.mouse.up();
  await bo.page.locator('#board[data-strokes="1"]').waitFor({ timeout: WAIT_MS });
  // Ann's pointer over the board shows on bo's, with her name.
  await ann.page.mouse.move(box.x + 300, box.y + 60);
  await shows(bo.page, '#board-pointers .pointer[data-user="ann"] .caret-name', 'ann');
  // A third page opened now gets the same text, title and board.
  const cy = await openPage(`${srv.http}/collab#spec`);
  await joinCollab(cy.page, 'cy');
  assert.equal(await value(cy), final);
  await cy.page.waitForFunction(() => document.getElementById('title').value === 'Launch plan', null, { timeout: WAIT_MS });
  await cy.page.locator('#board[data-strokes="1"]').waitFor({ timeout: WAIT_MS });
  await shows(cy.page, '#board-pointers .pointer[data-user="ann"]');
  await shot(ann.page, 'collab');
  await shot(cy.page, 'collab-late-joiner');
  await bo.page.click('#board-clear');
  await cy.page.locator('#board[data-strokes="0"]').waitFor({ timeout: WAIT_MS });
  for (const p of [ann, bo, cy]) {
    assertNoErrors(p);
    await p.context.close();
  }
});

test('the chat page fits a phone-sized window', async () => {
  const p = await openPage(`${srv.http}/chat#general`, { viewport: { width: 390, height: 844 } });
  await signIn(p.page, 'frank');
  await send(p.page, 'from a phone');
  await shows(p.page, '#messages .msg-body', 'from a phone');
  const overflow = await p.page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
  await shot(p.page, 'chat-phone');
  await p.page.click('#show-sidebar');
  await shows(p.page, '#rooms button[data-room="general"]');
  await shot(p.page, 'chat-phone-rooms');
  await p.page.click('#sidebar .back');
  await p.page.click('#show-people');
  await shows(p.page, '#people li[data-user="frank"]');
  await p.page.click('#people-pane .back');
  await shows(p.page, '#messages .msg-body', 'from a phone');
  assertNoErrors(p);
  await p.context.close();
});

test('rate-limit warnings and refusals are shown', async () => {
  const limited = await startServer(0, ['--rate-limit', '10/60s']);
  try {
    const p = await openPage(`${limited.http}/chat#general`);
    await signIn(p.page, 'grace');
    for (let i = 0; i < 12; i++) await send(p.page, `fast ${i}`);
    await shows(p.page, '.toast.warn', 'Slow down');
    await shows(p.page, '.toast.error', 'Not sent');
    await shot(p.page, 'chat-rate-limited');
    assertNoErrors(p);
    await p.context.close();
  } finally {
    await limited.stop();
  }
});

/** An HS256 JWT for `sub`, valid for an hour. */
function token(secret, sub, name) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name, exp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('with token auth the chat page asks for a token and says when it is refused', async () => {
  const secret = 'browser-test-secret-0123456789';
  const tokens = await startServer(0, ['--auth-secret', secret, '--allow-anonymous', 'false']);
  try {
    const p = await openPage(`${tokens.http}/chat#general`);
    await p.page.locator('#token-field').waitFor();
    assert.equal(await p.page.locator('#as-guest').isVisible(), false, 'no guests on this server');
    await p.page.fill('#token', 'not-a-token');
    await p.page.click('#signin-go');
    await shows(p.page, '#signin-error', 'refused the token');
    await shot(p.page, 'chat-token-refused');
    await p.page.fill('#token', token(secret, 'u-42', 'heidi'));
    await p.page.click('#signin-go');
    await shows(p.page, '#status.connected');
    await shows(p.page, '#me-name', 'heidi');
    await send(p.page, 'signed in with a token');
    await shows(p.page, '#messages .msg-body', 'signed in with a token');
    assertNoErrors(p, SOCKET_FAILED);
    await p.context.close();
  } finally {
    await tokens.stop();
  }
});
