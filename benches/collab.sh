#!/usr/bin/env bash
# Shared documents against corecast on one shard: server pinned to CPU 0, `loadgen collab` to
# CPU 1. Each shape is docs x editors x edits/s (+ cursor Hz); prints one line per run with
# the changes applied per second, op latency percentiles (from the keystroke; sent_p99 from the
# change's send), ack and cursor latency, whether every editor
# converged on the server's text, and the server's CPU seconds (utime+stime) over the run.
#
#   benches/collab.sh [duration_s] [repeats] [shape...]      shape: DOCSxEDITORSxRATE[xHZ]
#
# SERVERS="corecast sharedb hocuspocus" runs each shape against each, alternating, on the same
# core (sharedb: benches/peers/sharedb-server.js, ShareDB with ot-text-unicode in memory;
# hocuspocus: benches/peers/hocuspocus-server.js, Hocuspocus with Yjs in memory; both need
# `npm ci --prefix benches/peers`; no cursors there, so their runs use 0 Hz). CORECAST_FLAGS adds
# server flags (e.g. "--write-interval-ms 5"), CORECAST_BIN another build (for an A/B), NO_BUILD=1
# skips the build (to edit sources while it runs). SPIN=1 makes the client poll without sleeping
# (`loadgen collab --spin`), so that the server's sends do not also pay for waking it.
# TEXT_EDITORS=N keeps the text in N editors per document and makes the rest typists
# (`--text-editors`), which one client core can drive by the thousand.
# `win_cpu_s` is the server's CPU over the measured window only and `per_cpu_s` the changes
# submitted in that window per server CPU-second; `srv_cpu_s` is the whole run (connects,
# warm-up and drain included).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
repeats=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
if [ $# -gt 0 ]; then shapes=("$@"); else shapes=(10x10x2x5 1x100x5x0 1x300x1x0 100x2x20x0); fi

[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p corecast -p loadgen
port=38$(( RANDOM % 90 + 10 ))
ticks=$(getconf CLK_TCK)
cpu_secs() { awk -v t="$ticks" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }

servers=(${SERVERS:-corecast})
start_server() {
  if [ "$1" = sharedb ] || [ "$1" = hocuspocus ]; then
    PORT=$port taskset -c 0 node "benches/peers/$1-server.js" > /dev/null &
    url=ws://127.0.0.1:$port/
  else
    taskset -c 0 "${CORECAST_BIN:-./target/release/corecast}" --shards 1 --pin false --rate-limit off \
      --request-rate off --user-request-rate off --ip-request-rate off \
      --addr 127.0.0.1:$port --log warn ${CORECAST_FLAGS:-} &
    url=ws://127.0.0.1:$port/ws
  fi
  srv=$!
  sleep 0.7
}

printf "%-9s %-12s %-3s %9s %8s %8s %8s %8s %8s %8s %8s %9s %6s %8s %8s %9s\n" server shape run changes/s op_p50 op_p99 \
  op_p999 sent_p99 ack_p99 cur_p50 cur_p99 converged errs srv_cpu_s win_cpu_s per_cpu_s
for r in $(seq 1 "$repeats"); do
  for shape in "${shapes[@]}"; do
  for server in "${servers[@]}"; do
    IFS=x read -r docs editors rate hz <<< "$shape"
    [ "$server" != corecast ] && hz=0
    start_server "$server"
    before=$(cpu_secs $srv)
    json=$(taskset -c 1 ./target/release/loadgen collab --url "$url" --protocol "$server" \
      --docs "$docs" --editors "$editors" --rate "$rate" --cursor-hz "${hz:-0}" \
      --duration "$duration" --warmup 1 --drain 5 --json --doc-prefix "b$r" \
      --server-pid "$srv" ${SPIN:+--spin} ${TEXT_EDITORS:+--text-editors $TEXT_EDITORS} || true)
    after=$(cpu_secs $srv)
    kill -INT $srv; wait $srv 2>/dev/null || true
    echo "$json" | python3 -c "
import json,sys
r=json.load(sys.stdin); o=r['op_ms']; c=r['cursor_ms']
cps=r['changes_per_sec']
win=r['server_cpu_s'] or 0
print('%-9s %-12s %-3s %9.0f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %9s %6d %8.2f %8.2f %9.0f' % ('$server', '$shape', $r, cps,
  o['p50'], o['p99'], o['p999'], r['op_sent_ms']['p99'], r['ack_ms']['p99'], c['p50'], c['p99'],
  'NO (%d)' % len(r['divergences']) if r['divergences'] else ('behind (%d)' % r['unsettled'] if r['unsettled'] else 'yes'), len(r['errors']),
  $after-$before, win, r['window_changes']/max(win,1e-9)))
" || echo "$server $shape $r: no result"
    sleep 0.3
  done
  done
done
