// The collab page: a shared plain-text editor on the JS client's `doc()`, with everyone's
// carets and selections in their colour and name, who is editing, and the version.
//
// Invariant: the textarea shows `doc.text`; a local edit goes to the document as the
// smallest insert and delete that turn the old text into the new, never splitting a
// surrogate pair; a remote change keeps the local selection on the same characters.
import { CorecastClient } from '/client.js';
import { $, el, toast } from '/ui.js';

/** Caret moves are sent at most this often (the server sends them on every 50 ms). */
const CARET_EVERY_MS = 50;
/** Colours for editors (classes c0..c7), by a hash of the user id. */
const COLOURS = 8;

const state = { client: null, doc: null, auth: { mode: 'login' }, caretTimer: null, caretSent: '' };
const docName = () => decodeURIComponent(location.hash.slice(1)) || 'welcome';

function colour(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `c${h % COLOURS}`;
}

async function start() {
  $('doc-name').textContent = `# ${docName()}`;
  try {
    const r = await fetch('/healthz', { cache: 'no-store' });
    if (!r.ok) throw new Error(`/healthz answered ${r.status}`);
    const h = await r.json();
    if (h.auth) state.auth = h.auth;
  } catch (e) {
    toast('error', `Cannot read the server's state: ${e.message}`);
  }
  const token = state.auth.mode === 'token';
  $('username-field').hidden = token;
  $('token-field').hidden = !token;
  $('username').value = localStorage.getItem('corecast.username') || '';
  $('signin-form').onsubmit = submit;
  $('signin').showModal();
}

function signinError(text) {
  $('signin-error').textContent = text;
  $('signin-error').classList.toggle('shown', Boolean(text));
}

function submit(event) {
  event.preventDefault();
  if (state.auth.mode === 'token') {
    const token = $('token').value.trim();
    if (!token) return signinError('Paste a token first.');
    return connect({ token });
  }
  const username = $('username').value.trim();
  if (!/^[A-Za-z0-9._-]{1,32}$/.test(username)) {
    return signinError("A name is 1 to 32 letters, digits, '-', '_' or '.'.");
  }
  localStorage.setItem('corecast.username', username);
  return connect({ username });
}

function connect(who) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = who.token ? `?token=${encodeURIComponent(who.token)}` : '';
  const client = new CorecastClient({
    url: `${scheme}//${location.host}/ws${query}`,
    heartbeatInterval: 15000,
    onError: (e) => e instanceof Error && toast('error', e.message),
  });
  state.client = client;
  client.on('status', (s) => {
    $('status').textContent = s;
    $('status').className = `status badge ${s}`;
  });
  client.on('error', (m) => toast('error', `${m.code}: ${m.message}`));
  client.on('rate_limit:warning', () => toast('warn', 'Slow down: close to the message budget.'));
  const off = client.on('connected', async () => {
    off();
    try {
      if (who.username) await client.login(who.username);
      $('signin').close();
      await openDoc(client);
    } catch (e) {
      client.disconnect();
      signinError(`Could not start: ${e.message}`);
    }
  });
  client.connect();
}

async function openDoc(client) {
  const doc = client.doc(docName());
  state.doc = doc;
  doc.on('change', onRemoteChange);
  doc.on('state', () => showText(doc.text, null));
  doc.on('reset', ({ dropped }) => toast('warn', `The server restarted: ${dropped.length} unsaved edits were dropped.`));
  doc.on('users', renderPeople);
  doc.on('cursors', renderMirror);
  doc.on('ack', renderVersion);
  doc.on('error', (e) => toast('error', `Sync failed: ${e.message}`));
  await doc.join();
  const editor = $('editor');
  editor.disabled = false;
  editor.placeholder = 'Start typing: everyone here sees it as you type.';
  showText(doc.text, null);
  editor.oninput = onInput;
  for (const type of ['select', 'keyup', 'mouseup', 'focus']) editor.addEventListener(type, caretMoved);
  editor.onscroll = () => { $('mirror').scrollTop = editor.scrollTop; };
  editor.focus();
}

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** The local edit: the smallest delete and insert from the document's text to the box's. */
function onInput() {
  const doc = state.doc;
  const old = doc.text;
  const now = $('editor').value;
  let start = 0;
  while (start < old.length && start < now.length && old[start] === now[start]) start++;
  if (start > 0 && isHigh(old.charCodeAt(start - 1))) start--;
  let endOld = old.length;
  let endNow = now.length;
  while (endOld > start && endNow > start && old[endOld - 1] === now[endNow - 1]) {
    endOld--;
    endNow--;
  }
  if (endOld < old.length && isLow(old.charCodeAt(endOld))) {
    endOld++;
    endNow++;
  }
  if (endOld > start) doc.delete(start, endOld - start);
  if (endNow > start) doc.insert(start, now.slice(start, endNow));
  renderMirror();
  renderVersion();
  caretMoved();
}

/** A UTF-16 index through one remote change (the server's caret rule). */
function through(pos, c) {
  if (c.insert !== undefined) return c.index < pos ? pos + c.insert.length : pos;
  if (pos <= c.index) return pos;
  return pos >= c.index + c.delete ? pos - c.delete : c.index;
}

/** A remote change: the box shows the new text, the selection stays on its characters. */
function onRemoteChange({ changes }) {
  const editor = $('editor');
  let [a, b] = [editor.selectionStart, editor.selectionEnd];
  for (const c of changes) [a, b] = [through(a, c), through(b, c)];
  showText(state.doc.text, [a, b]);
}

function showText(text, selection) {
  const editor = $('editor');
  const focused = document.activeElement === editor;
  const keep = selection ?? [editor.selectionStart, editor.selectionEnd];
  editor.value = text;
  if (focused) editor.setSelectionRange(Math.min(keep[0], text.length), Math.min(keep[1], text.length));
  renderMirror();
  renderVersion();
}

function caretMoved() {
  if (state.caretTimer) return;
  state.caretTimer = setTimeout(() => {
    state.caretTimer = null;
    const editor = $('editor');
    const key = `${editor.selectionStart}:${editor.selectionEnd}:${state.doc.version}`;
    if (key === state.caretSent) return;
    state.caretSent = key;
    const backward = editor.selectionDirection === 'backward';
    const [index, anchor] = backward
      ? [editor.selectionStart, editor.selectionEnd]
      : [editor.selectionEnd, editor.selectionStart];
    state.doc.moveCursor(index, anchor);
  }, CARET_EVERY_MS);
}

/** The text again behind the box, transparent, with the others' carets and selections. */
function renderMirror() {
  const doc = state.doc;
  const text = doc.text;
  const carets = doc.cursors().filter((c) => c.index !== undefined);
  const cuts = new Set([0, text.length]);
  for (const c of carets) {
    cuts.add(Math.min(c.index, text.length));
    cuts.add(Math.min(c.anchor, text.length));
  }
  const points = [...cuts].sort((x, y) => x - y);
  const nodes = [];
  for (let i = 0; i < points.length; i++) {
    const at = points[i];
    for (const c of carets.filter((k) => Math.min(k.index, text.length) === at)) {
      const caret = el('span', `caret ${colour(c.userId)}`);
      caret.dataset.user = c.userId;
      caret.append(el('span', 'caret-name', c.username));
      nodes.push(caret);
    }
    const next = points[i + 1];
    if (next === undefined) break;
    const piece = text.slice(at, next);
    const over = carets.find((c) => Math.min(c.index, c.anchor) <= at && next <= Math.max(c.index, c.anchor));
    nodes.push(over ? el('span', `sel ${colour(over.userId)}`, piece) : document.createTextNode(piece));
  }
  nodes.push(document.createTextNode('\u200b'));
  $('mirror').replaceChildren(...nodes);
  $('mirror').scrollTop = $('editor').scrollTop;
}

function renderPeople(users) {
  const me = state.client.connectionId;
  $('people-count').textContent = String(users.length);
  $('people').replaceChildren(...users.map((u) => {
    const li = el('li', 'person');
    li.dataset.user = u.userId;
    li.append(el('span', `dot ${colour(u.userId)}`), el('span', 'name', u.username));
    if (u.connectionId === me) li.append(el('span', 'muted', 'you'));
    return li;
  }));
}

function renderVersion() {
  const doc = state.doc;
  $('version').textContent = `v${doc.version} · ${doc.settled ? 'saved' : 'sending…'}`;
  $('version').className = `badge ${doc.settled ? 'connected' : 'connecting'}`;
}

addEventListener('error', (e) => toast('error', `Page error: ${e.message}`));
addEventListener('unhandledrejection', (e) => toast('error', `Page error: ${e.reason?.message ?? e.reason}`));
start();
