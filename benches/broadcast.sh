#!/usr/bin/env bash
# Broadcast 1 room x N members against corecast on one shard: server pinned to CPU 0, loadgen to
# CPU 1. Prints one line per run: rate, batching, deliveries/s, delivery ratio, latency
# percentiles and the server's CPU seconds (utime+stime) over the run.
#
#   benches/broadcast.sh [members] [duration_s] [repeats] [rates...]
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-1000}
duration=${2:-5}
repeats=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
if [ $# -gt 0 ]; then rates=("$@"); else rates=(2000 4000 8000); fi

cargo build --release -q -p corecast -p loadgen
port=39$(( RANDOM % 90 + 10 ))
ticks=$(getconf CLK_TCK)

cpu_secs() { awk -v t="$ticks" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }

printf "%-6s %-6s %-5s %12s %8s %9s %9s %9s %9s %8s\n" \
  rate batch run deliveries/s ratio p50_ms p99_ms p999_ms max_ms srv_cpu_s
for r in $(seq 1 "$repeats"); do
  for rate in "${rates[@]}"; do
    for batch in 50 0; do
      taskset -c 0 ./target/release/corecast --shards 1 --pin false --rate-limit off --request-rate off --user-request-rate off --ip-request-rate off --addr 127.0.0.1:$port \
        --batch-window-ms $batch --log warn &
      srv=$!
      sleep 0.5
      before=$(cpu_secs $srv)
      json=$(./target/release/loadgen broadcast --url ws://127.0.0.1:$port/ws --conns "$members" \
        --rate "$rate" --duration "$duration" --warmup 1 --drain 2 --cpus 1 --json --quiet \
        --min-delivery 0 || true)
      after=$(cpu_secs $srv)
      kill -INT $srv; wait $srv 2>/dev/null || true
      echo "$json" | python3 -c "
import json,sys
r=json.load(sys.stdin); l=r['latency_us']
print('%-6s %-6s %-5s %12.0f %8.4f %9.2f %9.2f %9.2f %9.2f %8.2f' % ($rate, '$batch', $r,
  r['deliveries_per_sec'], r['delivery_ratio'], l['p50']/1e3, l['p99']/1e3, l['p999']/1e3,
  l['max']/1e3, $after-$before))"
    done
  done
done
