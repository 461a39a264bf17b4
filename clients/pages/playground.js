// The playground: connect to any /ws URL, send any JSON (templates for every client message
// of docs/PROTOCOL.md), and see every frame in and out with its time. Built on /client.js.
import { CorecastClient } from '/client.js';

const $ = (id) => document.getElementById(id);
const TEMPLATES = {
  'auth:login': { type: 'auth:login', username: 'alice' },
  'room:create': { type: 'room:create', room: 'general', description: 'Everyone', maxUsers: 50 },
  'room:list': { type: 'room:list' },
  'room:join': { type: 'room:join', room: 'general' },
  'room:leave': { type: 'room:leave', room: 'general' },
  'message:send': { type: 'message:send', room: 'general', content: 'Hello everyone!' },
  'message:history': { type: 'message:history', room: 'general', limit: 20 },
  'message:read': { type: 'message:read', room: 'general', upTo: 1 },
  'typing:start': { type: 'typing:start', room: 'general' },
  'typing:stop': { type: 'typing:stop', room: 'general' },
  'presence:update': { type: 'presence:update', status: 'away' },
  'presence:list': { type: 'presence:list', room: 'general' },
  'message:direct': { type: 'message:direct', to: 'bob', content: 'psst' },
  'notification:list': { type: 'notification:list' },
  'notification:read': { type: 'notification:read', ids: [1] },
  'doc:join': { type: 'doc:join', doc: 'notes' },
  'doc:change': { type: 'doc:change', doc: 'notes', version: 0, ops: [{ operation: 'insert', position: 0, content: 'Hello' }], client: 'playground', seq: 1 },
  'doc:sync': { type: 'doc:sync', doc: 'notes', version: 0 },
  'doc:leave': { type: 'doc:leave', doc: 'notes' },
  'cursor:move': { type: 'cursor:move', doc: 'notes', position: 5 },
  'state:get': { type: 'state:get', room: 'general' },
  'state:set': { type: 'state:set', room: 'general', key: 'title', value: 'Sprint plan' },
  'state:merge': { type: 'state:merge', room: 'general', patch: { colour: '#4cc2ff', old: null } },
  'broadcast:send': { type: 'broadcast:send', room: 'general', channel: 'strokes', payload: { points: [[10, 12], [14, 20]] } },
  'broadcast:history': { type: 'broadcast:history', room: 'general', channel: 'strokes', limit: 20 },
  'presence:set': { type: 'presence:set', room: 'general', data: { tool: 'pen', colour: '#f778ba' } },
  ping: { type: 'ping' },
};
/** Frames kept in the log; older ones are dropped. */
const LOG_FRAMES_MAX = 500;

let client = null;
let nextRef = 1;

function showError(text) {
  $('error').textContent = text;
  $('error').classList.toggle('shown', Boolean(text));
}

function log(dir, value) {
  const div = document.createElement('div');
  div.className = `frame ${dir}`;
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = new Date().toISOString().slice(11, 23);
  const arrow = document.createElement('span');
  arrow.className = 'dir';
  arrow.textContent = { in: '← ', out: '→ ', note: '• ' }[dir];
  const body = document.createElement('span');
  body.textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 1);
  div.append(meta, arrow, body);
  const box = $('log');
  box.append(div);
  while (box.childElementCount > LOG_FRAMES_MAX) box.firstElementChild.remove();
  box.scrollTop = box.scrollHeight;
}

function setStatus(status) {
  $('status').textContent = status;
  $('status').className = `status badge ${status}`;
  const open = status === 'connected';
  $('send').disabled = !open;
  $('disconnect').disabled = status === 'disconnected';
  $('connect').disabled = status !== 'disconnected';
}

function connect() {
  showError('');
  let url;
  try {
    url = new URL($('url').value);
    if (!/^wss?:$/.test(url.protocol)) throw new Error('the URL must start with ws:// or wss://');
  } catch (e) {
    return showError(`Not a WebSocket URL: ${e.message}`);
  }
  client = new CorecastClient({
    url: url.href,
    reconnect: false,
    heartbeatInterval: 0,
    onMessage: (m) => log('in', m),
    onError: () => showError(`Connection error on ${url.href}`),
    onClose: (e) => log('note', `closed ${e.code}${e.reason ? ` (${e.reason})` : ''}`),
  });
  client.on('status', setStatus);
  client.on('error', (m) => showError(`${m.code}: ${m.message}`));
  client.on('rate_limit:warning', (m) => showError(`Rate limit: ${m.remaining} messages left`));
  client.connect();
}

function send() {
  showError('');
  let message;
  try {
    message = JSON.parse($('message').value);
  } catch (e) {
    return showError(`Not valid JSON: ${e.message}`);
  }
  if (!message || typeof message.type !== 'string') {
    return showError('A message is a JSON object with a string "type".');
  }
  if (message.ref === undefined) message.ref = `p${nextRef++}`;
  const { type, ...rest } = message;
  client.send(type, rest);
  log('out', message);
}

function pick() {
  $('message').value = JSON.stringify(TEMPLATES[$('template').value], null, 2);
}

const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
$('url').value = `${scheme}://${location.host}/ws`;
$('template').append(...Object.keys(TEMPLATES).map((t) => new Option(t, t)));
pick();
$('template').addEventListener('change', pick);
$('connect').addEventListener('click', connect);
$('disconnect').addEventListener('click', () => client?.disconnect());
$('send').addEventListener('click', send);
$('clear').addEventListener('click', () => $('log').replaceChildren());
addEventListener('error', (e) => showError(`Page error: ${e.message}`));
addEventListener('unhandledrejection', (e) => showError(`Page error: ${e.reason}`));
