#!/usr/bin/env python3
"""Runs corecast and the servers users would pick instead side by side, with the same loadgen,
and writes a markdown table, the raw results (JSON lines) and plots of deliveries/s vs p99.

    benches/compare.py            # everything, 2 repeats (about 35 minutes on 2 cores)
    benches/compare.py --quick    # fewer rates, 1 repeat (about 8 minutes)
    benches/compare.py --scenarios collab --servers corecast,sharedb,hocuspocus   # documents only

Each server is pinned to CPU 0 and loadgen to CPU 1 (on a machine with more CPUs, --server-cpus
and --client-cpus take lists). Within each scenario and rate the servers run in turn
(A B C A B C ...), so a noisy neighbour hits them alike. A server that falls below 99% delivery
or past 1 s p99 is not offered higher rates. Output goes to benches/results/.

The `collab` scenario is shared documents (`loadgen collab`, 100 documents x 2 editors, the rate
per editor) against ShareDB (`benches/peers/sharedb-server.js`), the reference, and Hocuspocus
(`benches/peers/hocuspocus-server.js`, Yjs): it counts edits (ops typed and sent) instead of
deliveries, and also shows the changes (messages) that carried them. corecast's and ShareDB's
editors buffer what is typed while a change is in flight and send it as one change (a corecast
op list, a composed ShareDB op); Hocuspocus's send one Yjs update per keystroke, as its provider
does. "Delivered" means the edits sent kept up with those
typed (within 3%) and every editor converged on the server's text; latency runs from an edit's
keystroke until every other editor has it (the table also shows p99 from the change's send).
The server's CPU is that of the measured window only, and the client polls without sleeping
(`--spin`), so that the server's loopback sends do not also pay for waking it. The other peers
do not speak it, and ShareDB and Hocuspocus speak nothing else.

"""

import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benches" / "peers"
RESULTS = ROOT / "benches" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")

TEMPLATE = [
    "--protocol", "template",
    "--join-template", '{"type":"room:join","room":"{room}"}',
    "--joined", "room:joined",
    "--publish-template", '{"type":"message:send","room":"{room}","content":"{content}"}',
]

SERVERS = {
    "corecast": {
        "cmd": lambda port: [str(ROOT / "target/release/corecast"), "--shards", "1", "--pin", "false", "--rate-limit", "off", "--request-rate", "off", "--user-request-rate", "off", "--ip-request-rate", "off",
                             "--addr", f"127.0.0.1:{port}", "--log", "warn"],
        "url": lambda port: f"ws://127.0.0.1:{port}/ws",
        "proto": ["--protocol", "corecast"],
    },
    "corecast-nobatch": {
        "cmd": lambda port: [str(ROOT / "target/release/corecast"), "--shards", "1", "--pin", "false", "--rate-limit", "off", "--request-rate", "off", "--user-request-rate", "off", "--ip-request-rate", "off",
                             "--addr", f"127.0.0.1:{port}", "--log", "warn", "--batch-window-ms", "0"],
        "url": lambda port: f"ws://127.0.0.1:{port}/ws",
        "proto": ["--protocol", "corecast"],
    },
    "corecast-paced": {
        "cmd": lambda port: [str(ROOT / "target/release/corecast"), "--shards", "1", "--pin", "false", "--rate-limit", "off", "--request-rate", "off", "--user-request-rate", "off", "--ip-request-rate", "off",
                             "--addr", f"127.0.0.1:{port}", "--log", "warn", "--write-interval-ms", "20"],
        "url": lambda port: f"ws://127.0.0.1:{port}/ws",
        "proto": ["--protocol", "corecast"],
    },
    "corecast-nobatch-paced": {
        "cmd": lambda port: [str(ROOT / "target/release/corecast"), "--shards", "1", "--pin", "false", "--rate-limit", "off", "--request-rate", "off", "--user-request-rate", "off", "--ip-request-rate", "off",
                             "--addr", f"127.0.0.1:{port}", "--log", "warn", "--batch-window-ms", "0",
                             "--write-interval-ms", "20"],
        "url": lambda port: f"ws://127.0.0.1:{port}/ws",
        "proto": ["--protocol", "corecast"],
    },
    "bun": {
        "cmd": lambda port: [str(PEERS / "node_modules/.bin/bun"), str(PEERS / "bun-server.js")],
        "url": lambda port: f"ws://127.0.0.1:{port}/ws",
        "proto": TEMPLATE,
    },
    "node-ws": {
        "cmd": lambda port: ["node", str(PEERS / "node-ws-server.js")],
        "url": lambda port: f"ws://127.0.0.1:{port}/ws",
        "proto": TEMPLATE,
    },
    "socketio": {
        "cmd": lambda port: ["node", str(PEERS / "socketio-server.js")],
        "url": lambda port: f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
        "proto": ["--protocol", "socketio"],
    },
}


def document_peer(name):
    """A peer that speaks shared documents only: `benches/peers/{name}-server.js` on `/`,
    driven by `loadgen collab --protocol {name}`."""
    return {"cmd": lambda port: ["node", str(PEERS / f"{name}-server.js")],
            "url": lambda port: f"ws://127.0.0.1:{port}/",
            "proto": [], "collab": name, "only": ["collab"]}


SERVERS.update({name: document_peer(name) for name in ("sharedb", "hocuspocus")})
for _name, _spec in SERVERS.items():
    # One corecast variant only: the collab runs are long.
    _spec.setdefault("collab", "corecast" if _name == "corecast" else None)


def speaks(name, scenario):
    """Whether server `name` can be measured in `scenario`."""
    spec = SERVERS[name]
    if scenario == "collab":
        return spec["collab"] is not None
    return scenario in spec.get("only", [scenario])


# The peer each scenario's ratios are to.
REFERENCE = {"collab": "sharedb"}

# scenario -> (loadgen arguments, deliveries per unit of --rate, full rates, quick rates)
SCENARIOS = {
    "broadcast": (["broadcast", "--conns", "1000"], 1000,
                  [1000, 2000, 4000, 8000, 12000], [2000, 8000]),
    "chat": (["fanout", "--conns", "1000", "--rooms", "10", "--publishers", "100"], 10_000,
             [10, 100, 200, 400, 800], [100, 400]),
    "small-rooms": (["fanout", "--conns", "1000", "--rooms", "100", "--publishers", "100"], 1000,
                    [100, 1000, 4000], [1000]),
    # 100 documents x 2 editors: --rate is changes per second per editor, 200 changes per unit.
    "collab": (["collab", "--docs", "100", "--editors", "2", "--cursor-hz", "0"], 200,
               [5, 10, 25, 50, 100, 200, 300, 400, 500, 600], [10, 50]),
}


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


def cpu_secs(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    def __init__(self, name, cpus):
        self.name, self.spec = name, SERVERS[name]
        self.port = free_port()
        env = dict(os.environ, PORT=str(self.port))
        cmd = ["taskset", "-c", cpus] + self.spec["cmd"](self.port)
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        time.sleep(0.2)

    def url(self):
        return self.spec["url"](self.port)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def loadgen(args, client_cpus, server, extra):
    cmd = ([str(ROOT / "target/release/loadgen")] + args + ["--url", server.url()]
           + server.spec["proto"] + ["--cpus", client_cpus, "--cores", str(len(client_cpus.split(","))),
                                     "--json", "--quiet", "--min-delivery", "0"] + extra)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"loadgen failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def measure_rate(name, scenario, rate, a):
    args, per_rate, _, _ = SCENARIOS[scenario]
    srv = Server(name, a.server_cpus)
    try:
        cpu0 = cpu_secs(srv.proc.pid)
        r = loadgen(args + ["--rate", str(rate)], a.client_cpus, srv,
                    ["--duration", str(a.duration), "--warmup", "1", "--drain", "2"])
        cpu = cpu_secs(srv.proc.pid) - cpu0
        rss = rss_kb(srv.proc.pid)
    finally:
        srv.stop()
    lat = r["latency_us"]
    return {
        "scenario": scenario, "server": name, "rate": rate, "offered": rate * per_rate,
        "deliveries_per_sec": r["deliveries_per_sec"], "delivery_ratio": r["delivery_ratio"],
        "p50_ms": lat["p50"] / 1e3, "p99_ms": lat["p99"] / 1e3, "p999_ms": lat["p999"] / 1e3,
        "server_cpu_s": cpu, "server_rss_mb": rss / 1024,
        "deliveries_per_cpu_s": (r["received"] / cpu) if cpu > 0 else 0,
        "client_busy": r["client_cpu"]["busy"], "failures": r["failures"],
    }


def measure_collab(name, rate, a):
    """One `loadgen collab` run: changes, op latency, convergence, the window's server CPU."""
    args, per_rate, _, _ = SCENARIOS["collab"]
    srv = Server(name, a.server_cpus)
    try:
        cmd = ([str(ROOT / "target/release/loadgen")] + args
               + ["--rate", str(rate), "--url", srv.url(), "--protocol", SERVERS[name]["collab"],
                  "--duration", str(a.duration), "--warmup", "1", "--drain", "5", "--json",
                  "--spin", "--server-pid", str(srv.proc.pid), "--doc-prefix", f"c{time.time_ns()}"])
        cmd = ["taskset", "-c", a.client_cpus.split(",")[0]] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if out.returncode not in (0, 1):
            raise RuntimeError(f"loadgen collab failed: {out.stderr.strip()}")
        r = json.loads(out.stdout)
        rss = rss_kb(srv.proc.pid)
    finally:
        srv.stop()
    # Latency from the keystroke: both sides' editors buffer behind the change in flight, and
    # that wait counts; from the send (`sent_p99_ms`) is what the server and the socket add.
    op, cpu = r["op_ms"], r["server_cpu_s"] or 0
    converged = not r["divergences"] and not r["unsettled"] and not r["errors"]
    # Kept up: the edits sent in the window within 3% of those typed (an editor's change waits
    # for the one in flight and carries the whole buffer, so edits, not changes, say whether
    # the server kept up).
    kept_up = r["ops_per_sec"] >= 0.97 * rate * per_rate
    per_cpu = r["window_ops"] / cpu if cpu > 0 else 0
    changes_per_cpu = r["window_changes"] / cpu if cpu > 0 else 0
    return {
        "scenario": "collab", "server": name, "rate": rate, "offered": rate * per_rate,
        "deliveries_per_sec": r["ops_per_sec"], "changes_per_sec": r["changes_per_sec"],
        "delivery_ratio": 1.0 if converged and kept_up else 0.0,
        "p50_ms": op["p50"], "p99_ms": op["p99"], "p999_ms": op["p999"],
        "sent_p99_ms": r["op_sent_ms"]["p99"],
        "server_cpu_s": cpu, "server_rss_mb": rss / 1024, "deliveries_per_cpu_s": per_cpu,
        "changes_per_cpu_s": changes_per_cpu,
        "failures": {"divergences": len(r["divergences"]), "unsettled": r["unsettled"],
                     "errors": len(r["errors"])},
    }


def measure_idle(name, a, conns):
    srv = Server(name, a.server_cpus)
    try:
        before = rss_kb(srv.proc.pid)
        spec_proto = [x for x in srv.spec["proto"]]
        cmd = ([str(ROOT / "target/release/loadgen"), "connect", "--conns", str(conns), "--ramp", "5000",
                "--hold", "6", "--url", srv.url(), "--cpus", a.client_cpus.split(",")[0], "--json", "--quiet"]
               + spec_proto)
        lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Sample while every connection is held: ramp (conns/5000 s) plus half the hold.
        time.sleep(conns / 5000 + 3)
        held = rss_kb(srv.proc.pid)
        out, err = lg.communicate(timeout=120)
        r = json.loads(out)
    finally:
        srv.stop()
    ok = r["connects"]["ok"]
    return {"scenario": "idle", "server": name, "conns": ok,
            "bytes_per_conn": (held - before) * 1024 / ok if ok else 0,
            "rss_mb": held / 1024, "failures": r["failures"]}


def measure_storm(name, a, conns):
    srv = Server(name, a.server_cpus)
    try:
        cmd = ([str(ROOT / "target/release/loadgen"), "connect", "--conns", str(conns), "--ramp", "0",
                "--hold", "1", "--url", srv.url(), "--cpus", a.client_cpus.split(",")[0], "--json", "--quiet"]
               + srv.spec["proto"])
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout)
    finally:
        srv.stop()
    return {"scenario": "connect-storm", "server": name, "conns": r["connects"]["ok"],
            "connects_per_sec": r["connects"]["per_sec"],
            "handshake_p99_ms": r["connects"]["handshake_us"]["p99"] / 1e3, "failures": r["failures"]}


def svg_plot(rows, scenario, servers):
    w, h, pad = 720, 420, 70
    pts = [r for r in rows if r["scenario"] == scenario and r["delivery_ratio"] > 0]
    if not pts:
        return ""
    xmax = max(r["deliveries_per_sec"] for r in pts) * 1.1 or 1
    import math
    ymin, ymax = 0.0, math.log10(max(max(r["p99_ms"] for r in pts), 1.0) * 2)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    x = lambda v: pad + v / xmax * (w - pad - 20)
    y = lambda ms: h - pad - (math.log10(max(ms, 1.0)) - ymin) / (ymax - ymin or 1) * (h - pad - 30)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w/2}" y="18" text-anchor="middle" font-size="14">{scenario}: deliveries/s vs p99 (one server core)</text>',
         f'<line x1="{pad}" y1="{h-pad}" x2="{w-20}" y2="{h-pad}" stroke="#333"/>',
         f'<line x1="{pad}" y1="30" x2="{pad}" y2="{h-pad}" stroke="#333"/>',
         f'<text x="{w/2}" y="{h-25}" text-anchor="middle">deliveries per second (millions)</text>',
         f'<text x="16" y="{h/2}" transform="rotate(-90 16 {h/2})" text-anchor="middle">p99 latency (ms, log)</text>']
    for ms in [1, 10, 100, 1000, 10000]:
        if math.log10(ms) <= ymax:
            o.append(f'<text x="{pad-6}" y="{y(ms)+4:.1f}" text-anchor="end">{ms}</text>')
            o.append(f'<line x1="{pad}" y1="{y(ms):.1f}" x2="{w-20}" y2="{y(ms):.1f}" stroke="#eee"/>')
    if math.log10(P99_BOUND_MS) <= ymax:
        o.append(f'<line x1="{pad}" y1="{y(P99_BOUND_MS):.1f}" x2="{w-20}" y2="{y(P99_BOUND_MS):.1f}" '
                 'stroke="#c00" stroke-dasharray="6 4"/>')
        o.append(f'<text x="{pad+6}" y="{y(P99_BOUND_MS)-5:.1f}" fill="#c00">p99 bound {P99_BOUND_MS:g} ms</text>')
    for i in range(0, 6):
        v = xmax * i / 5
        o.append(f'<text x="{x(v):.1f}" y="{h-pad+16}" text-anchor="middle">{v/1e6:.1f}</text>')
    for si, name in enumerate(servers):
        # One point per offered rate: the medians of its repeats.
        by_rate = {}
        for r in pts:
            if r["server"] == name:
                by_rate.setdefault(r["offered"], []).append(r)
        mine = [{"offered": o, "deliveries_per_sec": median([r["deliveries_per_sec"] for r in rs]),
                 "p99_ms": median([r["p99_ms"] for r in rs])} for o, rs in sorted(by_rate.items())]
        if not mine:
            continue
        c = colors[si % len(colors)]
        o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
            c, " ".join(f"{x(r['deliveries_per_sec']):.1f},{y(r['p99_ms']):.1f}" for r in mine)))
        for r in mine:
            o.append(f'<circle cx="{x(r["deliveries_per_sec"]):.1f}" cy="{y(r["p99_ms"]):.1f}" r="3" fill="{c}"/>')
        o.append(f'<text x="{w-150}" y="{h-pad-10-16*(len(servers)-1-si)}" fill="{c}">{name}</text>')
    o.append("</svg>")
    return "\n".join(o)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0


# The figure of merit: the highest offered rate a server sustains with every message delivered
# and p99 at most this (medians over repeats).
P99_BOUND_MS = 50.0


def merit(rows, scenario, servers):
    """Markdown lines: per server, the highest rate within the bound, and the best deliveries per
    CPU-second within the bound and at any rate, as ratios to the scenario's reference peer when
    it ran (Bun; ShareDB for `collab`, which also gets the changes, the messages that carried
    the edits, per CPU-second). A best within the bound is set against the peer's best at any
    rate, the strictest reading, except in `collab`: there, past saturation, both sides'
    editors compose their buffer and any server does as many edits per CPU-second as it is
    offered, so it is set against the peer's best within the bound."""
    strict = scenario != "collab"
    keys = ["deliveries_per_cpu_s"] + (["changes_per_cpu_s"] if scenario == "collab" else [])
    best = {}
    for name in servers:
        mine = [r for r in rows if r["scenario"] == scenario and r["server"] == name]
        by_rate = {}
        for r in mine:
            by_rate.setdefault(r["rate"], []).append(r)
        within, eff_within, eff_any = None, [0.0] * len(keys), [0.0] * len(keys)
        for rate in sorted(by_rate):
            rs = by_rate[rate]
            effs = [median([r.get(k, 0) for r in rs]) for k in keys]
            eff_any = [max(x, y) for x, y in zip(eff_any, effs)]
            if median([r["delivery_ratio"] for r in rs]) >= 1.0 and median([r["p99_ms"] for r in rs]) <= P99_BOUND_MS:
                within = rs[0]["offered"]
                eff_within = [max(x, y) for x, y in zip(eff_within, effs)]
        if mine:
            best[name] = [within] + [v for pair in zip(eff_within, eff_any) for v in pair]
    if not best:
        return []
    ref = REFERENCE.get(scenario, "bun")
    label = {"bun": "Bun", "sharedb": "ShareDB"}.get(ref, ref)

    def cell(x, i, fmt):
        if not x:
            return "none" if i == 0 else "—"
        j = i + 1 if strict and i % 2 == 1 else i
        y = best.get(ref, [None] * len(best[next(iter(best))]))[j]
        return fmt.format(x) + (f" ({x / y:.1f}x {label})" if y else "")

    unit = "edits" if scenario == "collab" else "deliveries"
    heads = ["highest rate within the bound"]
    for k in keys:
        u = "changes" if k == "changes_per_cpu_s" else unit
        heads += [f"best {u} per CPU-s within the bound", f"best {u} per CPU-s at any rate"]
    against = "same figure" if not strict else "best at any rate"
    lines = [f"Figure of merit (every message delivered, p99 ≤ {P99_BOUND_MS:.0f} ms; medians; ratios "
             f"to {label}'s {against}):", "",
             "| server | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for name, figs in best.items():
        cells = [cell(figs[0], 0, "{:,}")]
        cells += [cell(x, i + 1, "{:,.0f}") for i, x in enumerate(figs[1:])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--scenarios", default="broadcast,chat,small-rooms,collab,idle,connect-storm")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--replot", metavar="JSONL",
                   help="redraw the plots of an earlier run, print its figures of merit, and exit")
    a = p.parse_args()
    if a.replot:
        src = Path(a.replot)
        rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
        names = list(dict.fromkeys(r["server"] for r in rows))
        for scenario in SCENARIOS:
            svg = svg_plot(rows, scenario, names)
            if svg:
                out = src.with_name(src.stem + f"-{scenario}.svg")
                out.write_text(svg)
                print(f"written: {out}")
                print("\n".join([f"## {scenario}", ""] + merit(rows, scenario, names)))
        return
    a.repeats = a.repeats or (1 if a.quick else 2)
    a.duration = a.duration or (3 if a.quick else 5)
    servers = a.servers.split(",")
    scenarios = a.scenarios.split(",")

    run(["cargo", "build", "--release", "-q", "-p", "corecast", "-p", "loadgen"], cwd=ROOT)
    if any(not s.startswith("corecast") for s in servers):
        run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=PEERS)
    versions = {
        "corecast": subprocess.run([str(ROOT / "target/release/corecast"), "--version"],
                                   capture_output=True, text=True).stdout.strip(),
        "bun": subprocess.run([str(PEERS / "node_modules/.bin/bun"), "--version"],
                              capture_output=True, text=True).stdout.strip() if (PEERS / "node_modules").exists() else "",
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    for pkg in ("ws", "socket.io"):
        pj = PEERS / "node_modules" / pkg / "package.json"
        if pj.exists():
            versions[pkg] = json.loads(pj.read_text())["version"]

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / f"compare-{stamp}.jsonl"
    rows = []

    def keep(row):
        rows.append(row)
        with raw.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), file=sys.stderr)

    for scenario in [s for s in scenarios if s in SCENARIOS]:
        _, _, full, quick = SCENARIOS[scenario]
        saturated = set()
        for rate in (quick if a.quick else full):
            for rep in range(a.repeats):
                for name in servers:
                    if name in saturated or not speaks(name, scenario):
                        continue
                    if scenario == "collab":
                        row = measure_collab(name, rate, a)
                    else:
                        row = measure_rate(name, scenario, rate, a)
                    row["repeat"] = rep
                    keep(row)
            for name in servers:
                mine = [r for r in rows if r["scenario"] == scenario and r["server"] == name and r["rate"] == rate]
                if mine and (median([r["delivery_ratio"] for r in mine]) < 0.99
                             or median([r["p99_ms"] for r in mine]) > 1000):
                    saturated.add(name)
    if "idle" in scenarios:
        for rep in range(a.repeats):
            for name in [n for n in servers if speaks(n, "idle")]:
                keep(measure_idle(name, a, 15000 if not a.quick else 5000))
    if "connect-storm" in scenarios:
        for rep in range(a.repeats):
            for name in [n for n in servers if speaks(n, "connect-storm")]:
                keep(measure_storm(name, a, 5000))

    md = [f"# corecast vs peers ({stamp})", "",
          f"Versions: {json.dumps(versions)}. Server on CPU {a.server_cpus}, loadgen on CPU {a.client_cpus}; "
          f"{a.repeats} repeat(s), {a.duration} s measured per run; medians over repeats.", ""]
    for scenario in [s for s in scenarios if s in SCENARIOS]:
        unit = "edits" if scenario == "collab" else "deliveries"
        ok = "kept up, converged" if scenario == "collab" else "delivered"
        typed = scenario == "collab"
        md += [f"## {scenario}", "",
               f"| offered/s | server | {unit}/s | {ok} | p50 ms | p99 ms | p99.9 ms | "
               + ("changes/s | p99 ms from the send | " if typed else "")
               + f"server CPU s | {unit} per CPU-s | RSS MB |",
               "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if typed else "")]
        for rate in sorted({r["rate"] for r in rows if r["scenario"] == scenario}):
            for name in servers:
                mine = [r for r in rows if r["scenario"] == scenario and r["server"] == name and r["rate"] == rate]
                if not mine:
                    continue
                m = lambda k: median([r[k] for r in mine])
                md.append(f"| {mine[0]['offered']:,} | {name} | {m('deliveries_per_sec'):,.0f} | "
                          f"{m('delivery_ratio')*100:.2f}% | {m('p50_ms'):.1f} | {m('p99_ms'):.1f} | "
                          f"{m('p999_ms'):.1f} | "
                          + (f"{m('changes_per_sec'):,.0f} | {m('sent_p99_ms'):.1f} | " if typed else "")
                          + f"{m('server_cpu_s'):.2f} | {m('deliveries_per_cpu_s'):,.0f} | "
                          f"{m('server_rss_mb'):.0f} |")
        md.append("")
        md += merit(rows, scenario, servers)
        svg = svg_plot(rows, scenario, servers)
        if svg:
            (RESULTS / f"compare-{stamp}-{scenario}.svg").write_text(svg)
            md += [f"![{scenario}](compare-{stamp}-{scenario}.svg)", ""]
    # Per-server tables: (scenario, title, header, columns as (key, format)).
    tables = [
        ("idle", "idle connections", ["connections", "user-space bytes per connection", "RSS MB"],
         [("conns", "{}"), ("bytes_per_conn", "{:,.0f}"), ("rss_mb", "{:.0f}")]),
        ("connect-storm", "connect storm (5,000 at once)", ["connected", "connects/s", "handshake p99 ms"],
         [("conns", "{}"), ("connects_per_sec", "{:,.0f}"), ("handshake_p99_ms", "{:.1f}")]),
    ]
    for scenario, title, header, columns in tables:
        if scenario not in scenarios:
            continue
        md += [f"## {title}", "", "| server | " + " | ".join(header) + " |",
               "|---|" + "---|" * len(header)]
        for name in servers:
            mine = [r for r in rows if r["scenario"] == scenario and r["server"] == name]
            if mine:
                cells = [fmt.format(median([r[k] for r in mine])) for k, fmt in columns]
                md.append(f"| {name} | " + " | ".join(cells) + " |")
        md.append("")
    out = RESULTS / f"compare-{stamp}.md"
    out.write_text("\n".join(md))
    print("\n".join(md))
    print(f"\nwritten: {out}, {raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
