// Starts a real corecast for the tests on 127.0.0.1 (a free port, or a port given, to restart
// on the same address), waiting until it listens. The binary is $CORECAST_BIN, else the
// workspace's debug build.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.CORECAST_BIN || path.join(here, '../../../target/debug/corecast');

/** Budgets off: the tests send quickly from one address. */
const FLAGS = ['--shards', '2', '--pin', 'false', '--rate-limit', 'off', '--request-rate', 'off',
  '--user-request-rate', 'off', '--ip-request-rate', 'off', '--log', 'info'];

/** Ports for a server the tests restart on the same address: below the kernel's ephemeral
 * range (32768 and up), so that no client's own port can be the server's (a client
 * reconnecting to a port in that range can connect to itself and hold the port). */
const PORT_LOW = 20000;
const PORT_SPAN = 12000;

/** Starts a server: on `port`, or (0) on a free port below the ephemeral range. */
export async function startServer(port = 0, extra = []) {
  if (port !== 0) return restart(port, extra);
  for (let attempt = 0; ; attempt++) {
    const pick = PORT_LOW + Math.floor(Math.random() * PORT_SPAN);
    try {
      return await start(pick, extra);
    } catch (e) {
      if (attempt >= 20 || !/already in use/.test(e.message)) throw e;
    }
  }
}

/** Starts again on `port`. A server killed with SIGKILL keeps listening for a moment after
 * it exited (the kernel tears its io_uring down, and the listening socket with it, after the
 * exit is reported), so a start that finds the port in use is retried for a second. */
async function restart(port, extra) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await start(port, extra);
    } catch (e) {
      if (attempt >= 20 || !/already in use/.test(e.message)) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** FLAGS with those `extra` sets itself left out, then `extra` (each flag given once). */
function args(extra) {
  const own = new Set(extra.filter((a) => a.startsWith('--')));
  const kept = [];
  for (let i = 0; i < FLAGS.length; i += 2) {
    if (!own.has(FLAGS[i])) kept.push(FLAGS[i], FLAGS[i + 1]);
  }
  return [...kept, ...extra];
}

function start(port, extra) {
  const child = spawn(BIN, ['--addr', `127.0.0.1:${port}`, ...args(extra)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`corecast did not start:\n${log}`)), 10000);
    const look = (chunk) => {
      log += chunk;
      const m = log.match(/listening addr=127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        const p = Number(m[1]);
        resolve({
          port: p,
          url: `ws://127.0.0.1:${p}/ws`,
          http: `http://127.0.0.1:${p}`,
          stop: () => stop(child),
          // A stopped process answers nothing, like a dead network path.
          pause: () => child.kill('SIGSTOP'),
          resume: () => child.kill('SIGCONT'),
        });
      }
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.on('exit', (code) => reject(new Error(`corecast exited (${code}):\n${log}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
}

/** Resolves when `predicate()` holds, polling every 10 ms; rejects after `ms`. */
export async function until(predicate, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The next message of `type` on `client`. */
export function next(client, type, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} in ${ms} ms`));
    }, ms);
    const off = client.on(type, (m) => {
      clearTimeout(timer);
      off();
      resolve(m);
    });
  });
}
