// The landing page: the server's state from /healthz, refreshed every 2 s; errors shown.
const badge = document.getElementById('health');
const stats = document.getElementById('stats');
const error = document.getElementById('error');

const SHOWN = [
  ['connections', 'open connections'],
  ['shards', 'shards'],
  ['messages_in', 'messages in'],
  ['frames_out', 'frames out'],
  ['rooms', 'rooms'],
  ['users', 'users'],
];

function showError(text) {
  error.textContent = text;
  error.classList.toggle('shown', Boolean(text));
}

async function refresh() {
  try {
    const r = await fetch('/healthz', { cache: 'no-store' });
    if (!r.ok) throw new Error(`/healthz answered ${r.status}`);
    const h = await r.json();
    const all = { ...h.stats, connections: h.connections, shards: h.shards };
    badge.textContent = h.status === 'ok' ? 'server ok' : h.status;
    badge.className = `status badge ${h.status === 'ok' ? 'connected' : 'reconnecting'}`;
    stats.replaceChildren(...SHOWN.map(([key, label]) => {
      const div = document.createElement('div');
      div.className = 'stat';
      const b = document.createElement('b');
      b.textContent = (all[key] ?? 0).toLocaleString();
      const span = document.createElement('span');
      span.textContent = label;
      div.append(b, span);
      return div;
    }));
    showError('');
  } catch (e) {
    badge.textContent = 'unreachable';
    badge.className = 'status badge disconnected';
    showError(`Cannot read the server's state: ${e.message}`);
  }
}

refresh();
setInterval(refresh, 2000);
