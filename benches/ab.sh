#!/usr/bin/env bash
# A/B of two corecast builds, alternating run by run: broadcast 1 x 1000 at 2M and 8M
# deliveries/s, chat 10 rooms x 100 (100 publishers) at 1M and 4M/s. One shard pinned to CPU 0,
# loadgen on CPU 1, default batching, budgets off. Prints one line per run (deliveries/s,
# ratio, p50/p99 and the server's CPU seconds per million deliveries), then medians per build.
#
#   benches/ab.sh OLD_BINARY NEW_BINARY [repeats] [duration_s]
#   CASES="broadcast 8000;chat 400" benches/ab.sh ...   (only those cases)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1
new=$2
repeats=${3:-3}
duration=${4:-5}
cargo build --release -q -p loadgen
ticks=$(getconf CLK_TCK)
out=$(mktemp)

cpu_secs() { awk -v t="$ticks" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Flags that turn every budget off, for the builds that have them.
budget_flags() {
  if "$1" --help | grep -q -- --request-rate; then
    echo "--rate-limit off --request-rate off --user-request-rate off --ip-request-rate off"
  else
    echo "--rate-limit off"
  fi
}

one_run() { # build-name binary scenario rate
  local name=$1 bin=$2 scenario=$3 rate=$4 port args
  port=$(free_port)
  case $scenario in
    broadcast) args=(broadcast --conns 1000) ;;
    chat) args=(fanout --conns 1000 --rooms 10 --publishers 100) ;;
  esac
  # shellcheck disable=SC2046
  taskset -c 0 "$bin" --shards 1 --pin false $(budget_flags "$bin") --addr 127.0.0.1:$port \
    --log warn &
  local srv=$!
  sleep 0.5
  local before after json
  before=$(cpu_secs $srv)
  json=$(taskset -c 1 ./target/release/loadgen "${args[@]}" --url ws://127.0.0.1:$port/ws \
    --rate "$rate" --duration "$duration" --warmup 1 --drain 2 --cpus 1 --json --quiet \
    --min-delivery 0 || true)
  after=$(cpu_secs $srv)
  kill -INT $srv
  wait $srv 2>/dev/null || true
  echo "$json" | python3 -c "
import json,sys
r=json.load(sys.stdin); l=r['latency_us']
d=r['deliveries_per_sec']*$duration
print('%s %s %s %.0f %.4f %.2f %.2f %.3f' % ('$name', '$scenario', $rate, r['deliveries_per_sec'],
  r['delivery_ratio'], l['p50']/1e3, l['p99']/1e3, ($after-$before)/max(d,1)*1e6))" | tee -a "$out"
}

echo "build scenario rate deliveries/s ratio p50_ms p99_ms cpu_s_per_M"
for _ in $(seq 1 "$repeats"); do
  IFS=';' read -r -a cases <<<"${CASES:-broadcast 2000;broadcast 8000;chat 100;chat 400}"
  for case in "${cases[@]}"; do
    # shellcheck disable=SC2086
    one_run old "$old" $case
    # shellcheck disable=SC2086
    one_run new "$new" $case
  done
done
echo
echo "medians: build scenario rate p50_ms p99_ms cpu_s_per_M ratio_min"
python3 - "$out" <<'EOF'
import sys, statistics
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    b, s, rate, dps, ratio, p50, p99, cpu = line.split()
    rows[(s, int(rate), b)].append((float(p50), float(p99), float(cpu), float(ratio)))
for (s, rate, b), v in sorted(rows.items()):
    med = lambda i: statistics.median(x[i] for x in v)
    print(f"{b} {s} {rate} {med(0):.2f} {med(1):.2f} {med(2):.3f} {min(x[3] for x in v):.4f}")
EOF
rm -f "$out"
