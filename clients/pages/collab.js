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

/** A title edit is written to the shared state after this pause in typing. */
const TITLE_DELAY_MS = 300;
/** Points kept per stroke (a long scribble is thinned to this). */
const STROKE_POINTS_MAX = 200;
/** The pointer over the whiteboard is shared at most this often (presence data). */
const POINTER_EVERY_MS = 60;

const state = {
  client: null, doc: null, auth: { mode: 'login' }, caretTimer: null, caretSent: '',
  shared: null, strokes: null, titleTimer: null, drawn: [], drawing: null,
  presence: null, pointerAt: 0, pointerTimer: null,
};
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
  // Listening before the join: the join replays the others' presence data at once.
  state.presence = client.presenceData({ doc: docName() });
  state.presence.on('change', renderPointers);
  await doc.join();
  await openBoard(client);
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

// ----- the shared title and the whiteboard ---------------------------------------------------

/** The title is shared state key `title`; the board is channel `strokes` (each finished
 * stroke, drawn by everyone else at once) plus shared state key `boardClearedAt` (strokes up
 * to that id are gone), so a late joiner draws the kept strokes after the last clear. */
async function openBoard(client) {
  const where = { doc: docName() };
  const shared = client.sharedState(where);
  const strokes = client.broadcast(where, 'strokes');
  state.shared = shared;
  state.strokes = strokes;
  shared.on('change', ({ state: s, changes }) => {
    if (document.activeElement !== $('title')) $('title').value = s.title ?? '';
    if ('boardClearedAt' in changes) redrawBoard();
  });
  strokes.on('message', (m) => {
    state.drawn.push(m);
    drawStroke(m.payload);
    $('board').dataset.strokes = String(state.drawn.length);
  });
  await shared.get();
  $('title').value = shared.state.title ?? '';
  state.drawn = await strokes.history();
  redrawBoard();
  const title = $('title');
  title.disabled = false;
  title.oninput = () => {
    clearTimeout(state.titleTimer);
    state.titleTimer = setTimeout(() => {
      shared.set('title', title.value).catch((e) => toast('error', `Title not saved: ${e.message}`));
    }, TITLE_DELAY_MS);
  };
  $('board-clear').disabled = false;
  $('board-clear').onclick = clearBoard;
  wireCanvas($('board'));
}

/** Shares this pointer's place on the board (null: off the board), at most every
 * POINTER_EVERY_MS; the latest place wins. */
function sharePointer(point) {
  clearTimeout(state.pointerTimer);
  const wait = Math.max(0, state.pointerAt + POINTER_EVERY_MS - Date.now());
  state.pointerTimer = setTimeout(() => {
    state.pointerAt = Date.now();
    const name = state.client.user?.username ?? 'guest';
    state.presence.set({ pointer: point, colour: myColour(), name })
      .catch((e) => toast('error', `Pointer not shared: ${e.message}`));
  }, wait);
}

/** The others' pointers over the board, in their colour and name. */
function renderPointers(others) {
  const dots = [];
  for (const [id, { user, data }] of others) {
    const p = data?.pointer;
    if (!Array.isArray(p)) continue;
    const dot = el('span', `pointer ${typeof data.colour === 'string' && /^c[0-7]$/.test(data.colour) ? data.colour : colour(user.userId)}`);
    dot.dataset.user = user.userId;
    dot.dataset.connection = String(id);
    dot.style.left = `${Math.min(100, Math.max(0, p[0] * 100))}%`;
    dot.style.top = `${Math.min(100, Math.max(0, p[1] * 100))}%`;
    dot.append(el('span', 'caret-name', user.username));
    dots.push(dot);
  }
  $('board-pointers').replaceChildren(...dots);
}

function visibleStrokes() {
  const after = state.shared?.state.boardClearedAt ?? 0;
  return state.drawn.filter((m) => m.id === undefined || m.id > after);
}

function redrawBoard() {
  const canvas = $('board');
  canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  const shown = visibleStrokes();
  shown.forEach((m) => drawStroke(m.payload));
  canvas.dataset.strokes = String(shown.length);
}

function drawStroke(stroke) {
  const canvas = $('board');
  const g = canvas.getContext('2d');
  const pts = Array.isArray(stroke?.points) ? stroke.points : [];
  if (pts.length === 0) return;
  g.strokeStyle = typeof stroke.colour === 'string' ? stroke.colour : '#4cc2ff';
  g.lineWidth = 3;
  g.lineCap = 'round';
  g.lineJoin = 'round';
  g.beginPath();
  pts.forEach(([x, y], i) => {
    const [px, py] = [x * canvas.width, y * canvas.height];
    if (i === 0) g.moveTo(px, py);
    else g.lineTo(px, py);
  });
  if (pts.length === 1) g.lineTo(pts[0][0] * canvas.width + 0.1, pts[0][1] * canvas.height);
  g.stroke();
}

function wireCanvas(canvas) {
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)),
      Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))];
  };
  canvas.onpointerdown = (e) => {
    canvas.setPointerCapture(e.pointerId);
    const colour = getComputedStyle(document.documentElement).getPropertyValue(`--${myColour()}`).trim();
    state.drawing = { points: [point(e)], colour: colour || '#4cc2ff' };
  };
  canvas.onpointerleave = () => sharePointer(null);
  canvas.onpointermove = (e) => {
    sharePointer(point(e));
    if (!state.drawing) return;
    state.drawing.points.push(point(e));
    drawStroke({ ...state.drawing, points: state.drawing.points.slice(-2) });
  };
  canvas.onpointerup = async () => {
    const stroke = state.drawing;
    state.drawing = null;
    if (!stroke) return;
    stroke.points = thin(stroke.points).map(([x, y]) => [round(x), round(y)]);
    try {
      const id = await state.strokes.send(stroke);
      state.drawn.push({ id, payload: stroke });
      canvas.dataset.strokes = String(visibleStrokes().length);
    } catch (e) {
      toast('error', `Stroke not shared: ${e.message}`);
    }
  };
}

const round = (v) => Math.round(v * 10000) / 10000;

function thin(points) {
  if (points.length <= STROKE_POINTS_MAX) return points;
  const step = points.length / STROKE_POINTS_MAX;
  return Array.from({ length: STROKE_POINTS_MAX }, (_, i) => points[Math.floor(i * step)]);
}

function myColour() {
  return colour(state.client?.user?.userId ?? state.client?.connectionId ?? '');
}

async function clearBoard() {
  const last = state.drawn.reduce((max, m) => Math.max(max, m.id ?? 0), 0);
  try {
    await state.shared.set('boardClearedAt', last);
    redrawBoard();
  } catch (e) {
    toast('error', `Could not clear the board: ${e.message}`);
  }
}

addEventListener('error', (e) => toast('error', `Page error: ${e.message}`));
addEventListener('unhandledrejection', (e) => toast('error', `Page error: ${e.reason?.message ?? e.reason}`));
start();
