//! The `loadgen` binary: the CLI, live progress and output.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use loadgen::protocol::Protocol;
use loadgen::scenario::{Connect, Echo, Fanout, Scenario};
use loadgen::{RunConfig, Shared};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures a WebSocket deployment: throughput, latency percentiles (coordinated omission
/// corrected) and exact delivery accounting.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open N connections at a ramp rate and hold them.
    Connect {
        #[command(flatten)]
        common: Common,
    },
    /// Every connection sends at --rate and measures its own messages coming back.
    Echo {
        #[command(flatten)]
        common: Common,
    },
    /// R rooms, N connections spread over them, P publishers at --rate each.
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Rooms.
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        /// Publishers (the first P connections, spread over the rooms).
        #[arg(long, default_value_t = 10)]
        publishers: usize,
    },
    /// D documents x E editors typing with the client discipline, plus cursors; checks that
    /// every editor ends with the server's text (a divergence fails the run).
    Collab(CollabArgs),
    /// One room, few publishers, many subscribers.
    Broadcast {
        #[command(flatten)]
        common: Common,
        /// Publishers.
        #[arg(long, default_value_t = 1)]
        publishers: usize,
    },
}

#[derive(Debug, Args)]
struct CollabArgs {
    /// Server URL (plain ws://).
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    url: String,
    /// Documents.
    #[arg(long, default_value_t = 10)]
    docs: usize,
    /// Editors per document.
    #[arg(long, default_value_t = 10)]
    editors: usize,
    /// Changes per second per editor.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Cursor moves per second per editor (0: none).
    #[arg(long, default_value_t = 5.0)]
    cursor_hz: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for every change to settle after editing stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    #[arg(long, default_value = "lgdoc")]
    doc_prefix: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Fail (exit 1) when p99 op latency exceeds this many ms.
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// The server's protocol: corecast's doc:*, ShareDB's (ot-text-unicode, collection
    /// `docs`), or Hocuspocus's (Yjs, one update per keystroke); the last two have no cursors.
    #[arg(long, value_enum, default_value_t = CollabProtocol::Corecast)]
    protocol: CollabProtocol,
    /// The server's process id: report its CPU seconds over the measured window, and the
    /// changes applied per server CPU-second.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Poll sockets without sleeping (one busy client core), so that the server's sends on
    /// loopback do not also pay for waking the client.
    #[arg(long)]
    spin: bool,
    /// Editors per document that keep the text and are checked against the server's; the
    /// others are typists, which insert at the start and follow the versions only, so that one
    /// client core can drive a thousand editors on one document (default: all keep the text).
    #[arg(long)]
    text_editors: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CollabProtocol {
    Corecast,
    #[value(name = "sharedb")]
    ShareDb,
    Hocuspocus,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtocolKind {
    Corecast,
    Template,
    Echo,
    #[value(name = "socketio")]
    SocketIo,
}

#[derive(Debug, Args)]
struct Common {
    /// Accept any TLS certificate (self-signed test servers); wss:// only.
    #[arg(long)]
    insecure: bool,
    /// Server URL (ws:// or wss://); `{room}` in the path is replaced by each connection's room
    /// (e.g. ws://127.0.0.1:3000/ws/room/{room} places corecast connections on their room's shard).
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    url: String,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Messages per second per publisher.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of sending before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds to wait for deliveries after sending stops.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Content bytes per message (marker and padding).
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Client cores (one executor each).
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// CPUs to pin the client cores to, e.g. 1,2 (default: unpinned).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// New connections per second; 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Seconds a connection may take to connect, upgrade and join.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Protocol spoken to the server.
    #[arg(long, value_enum, default_value_t = ProtocolKind::Corecast)]
    protocol: ProtocolKind,
    /// template: join message ({room}, {conn}).
    #[arg(long)]
    join_template: Option<String>,
    /// template: publish message ({room}, {content}, {conn}, {seq}).
    #[arg(long)]
    publish_template: Option<String>,
    /// template: wait for a text frame containing this after connecting.
    #[arg(long)]
    greeting: Option<String>,
    /// template: wait for a text frame containing this after joining.
    #[arg(long)]
    joined: Option<String>,
    /// The server does not send a publisher its own messages.
    #[arg(long)]
    exclude_self: bool,
    /// Extra request header, e.g. "Authorization: Bearer T" (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Subprotocol to offer (repeatable).
    #[arg(long = "subprotocol")]
    subprotocols: Vec<String>,
    /// Local source addresses to spread connections over (past ~28k ports per address).
    #[arg(long, value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Room name prefix.
    #[arg(long, default_value = "lg")]
    room_prefix: String,
    /// connect: seconds to hold the connections.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the latency distribution as an HdrHistogram .hgrm file.
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Write a self-contained HTML report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Fail (exit 1) when p99 latency exceeds this many ms.
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// Fail (exit 1) when the delivery ratio is below this.
    #[arg(long, default_value_t = 1.0)]
    min_delivery: f64,
    /// No live progress.
    #[arg(long)]
    quiet: bool,
}

fn protocol(c: &Common) -> anyhow::Result<Protocol> {
    Ok(match c.protocol {
        ProtocolKind::Corecast => Protocol::Corecast,
        ProtocolKind::Echo => Protocol::Echo,
        ProtocolKind::SocketIo => Protocol::SocketIo,
        ProtocolKind::Template => Protocol::Template {
            join: c.join_template.clone(),
            publish: c
                .publish_template
                .clone()
                .context("--protocol template needs --publish-template")?,
            greeting: c.greeting.clone(),
            joined: c.joined.clone(),
        },
    })
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    if let Command::Collab(a) = &cli.scenario {
        return collab(a);
    }
    let (common, scenario) = scenario_of(&cli.scenario);
    let cfg = run_config(common, scenario.plan()?)?;
    let params = params(common, &cfg);
    let bar = progress_bar(common);
    let mut last = (0u64, 0u64, std::time::Instant::now());
    let mut progress = |phase: &str, s: &Shared, _elapsed: Duration| {
        let (sent, recv) = (s.sent.load(Relaxed), s.received.load(Relaxed));
        let dt = last.2.elapsed().as_secs_f64().max(1e-3);
        let max_us = s.recent_max_us.swap(0, Relaxed);
        bar.set_message(format!(
            "{phase}: {} connected, {} ready, {} failed | sent {:.0}/s | received {:.0}/s | \
             p99 {:.1} ms (last second) | max {:.1} ms",
            s.connected.load(Relaxed),
            s.ready.load(Relaxed),
            s.failed.load(Relaxed),
            (sent - last.0) as f64 / dt,
            (recv - last.1) as f64 / dt,
            s.current_p99_us() as f64 / 1000.0,
            max_us as f64 / 1000.0
        ));
        bar.tick();
        last = (sent, recv, std::time::Instant::now());
    };
    let report = loadgen::run(cfg, scenario.name(), params, &mut progress)?;
    bar.finish_and_clear();
    write_outputs(common, &report)?;
    let failed = report.verdict(loadgen::report::Thresholds {
        min_delivery: common.min_delivery,
        max_p99_ms: common.max_p99_ms,
    });
    for why in &failed {
        eprintln!("loadgen: FAILED: {why}");
    }
    Ok(failed.is_empty())
}

/// A socket scenario's flags and the scenario they describe.
fn scenario_of(command: &Command) -> (&Common, Box<dyn Scenario>) {
    match command {
        Command::Collab(_) => unreachable!("collab runs on its own"),
        Command::Connect { common } => (
            common,
            Box::new(Connect {
                conns: common.conns,
            }),
        ),
        Command::Echo { common } => (
            common,
            Box::new(Echo {
                conns: common.conns,
                rate: common.rate,
                room_prefix: common.room_prefix.clone(),
            }),
        ),
        Command::Fanout {
            common,
            rooms,
            publishers,
        } => (common, fanout("fanout", common, *rooms, *publishers)),
        Command::Broadcast { common, publishers } => {
            (common, fanout("broadcast", common, 1, *publishers))
        }
    }
}

fn fanout(name: &'static str, common: &Common, rooms: usize, publishers: usize) -> Box<Fanout> {
    Box::new(Fanout {
        name,
        conns: common.conns,
        rooms,
        publishers,
        rate: common.rate,
        room_prefix: common.room_prefix.clone(),
    })
}

fn run_config(common: &Common, plan: loadgen::scenario::Plan) -> anyhow::Result<RunConfig> {
    let target = loadgen::runner::Target::parse(&common.url)?;
    anyhow::ensure!(common.cores >= 1, "--cores must be at least 1");
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let mut cfg = RunConfig::new(target, protocol(common)?, plan);
    if cfg.target.secure {
        cfg.tls = Some(loadgen::tls::client_config(common.insecure));
    }
    cfg.size = common.size;
    cfg.warmup = secs(common.warmup);
    cfg.duration = secs(common.duration);
    cfg.drain = secs(common.drain);
    cfg.cores = common.cores;
    cfg.cpus = common.cpus.clone();
    cfg.connect_timeout = secs(common.connect_timeout);
    cfg.ramp = common.ramp;
    cfg.headers = common.headers.clone();
    cfg.subprotocols = common.subprotocols.clone();
    cfg.source_ips = common.source_ips.clone();
    cfg.exclude_self = common.exclude_self;
    cfg.hold = secs(common.hold);
    Ok(cfg)
}

/// The run's parameters, as the report repeats them.
fn params(common: &Common, cfg: &RunConfig) -> serde_json::Value {
    serde_json::json!({
        "url": common.url,
        "protocol": cfg.protocol,
        "conns": common.conns,
        "rooms": cfg.plan.rooms.len(),
        "publishers": cfg.plan.publishers(),
        "rate": common.rate,
        "size": common.size,
        "warmup_s": common.warmup,
        "duration_s": common.duration,
        "drain_s": common.drain,
        "cores": common.cores,
        "exclude_self": common.exclude_self,
    })
}

fn progress_bar(common: &Common) -> indicatif::ProgressBar {
    if common.quiet || common.json {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("template"));
    b
}

/// The report on stdout (a table, or JSON), and the histogram and HTML files asked for.
fn write_outputs(common: &Common, report: &loadgen::report::Report) -> anyhow::Result<()> {
    if common.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(p) = &common.hgrm {
        std::fs::write(p, report.hgrm()).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &common.report {
        std::fs::write(p, report.html()).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn collab(a: &CollabArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        a.docs >= 1 && a.editors >= 1,
        "--docs and --editors must be at least 1"
    );
    loadgen::check_fd_limit(a.docs * (a.editors + 1))?;
    let proto = match a.protocol {
        CollabProtocol::Corecast => loadgen::collab::Proto::Corecast,
        CollabProtocol::ShareDb => loadgen::collab::Proto::ShareDb,
        CollabProtocol::Hocuspocus => loadgen::collab::Proto::Hocuspocus,
    };
    anyhow::ensure!(
        proto == loadgen::collab::Proto::Corecast || a.cursor_hz == 0.0,
        "only --protocol corecast has cursors: pass --cursor-hz 0"
    );
    anyhow::ensure!(
        proto != loadgen::collab::Proto::Hocuspocus || a.text_editors.is_none(),
        "--protocol hocuspocus has no typists: every Yjs editor keeps the document"
    );
    let cfg = loadgen::collab::CollabConfig {
        url: a.url.clone(),
        docs: a.docs,
        editors: a.editors,
        rate: a.rate,
        cursor_hz: a.cursor_hz,
        warmup: a.warmup,
        duration: a.duration,
        drain: a.drain,
        doc_prefix: a.doc_prefix.clone(),
        proto,
        server_pid: a.server_pid,
        spin: a.spin,
        text_editors: a.text_editors,
    };
    let r = loadgen::collab::run(&cfg).map_err(|e| anyhow::anyhow!(e))?;
    let summary = collab_summary(a, &r);
    if a.json {
        println!("{summary}");
    } else {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    let p99 = r.op_latency_us.value_at_quantile(0.99) as f64 / 1000.0;
    let fast = a.max_p99_ms.is_none_or(|max| p99 <= max);
    if !r.divergences.is_empty() {
        eprintln!(
            "loadgen: {} editors diverged from the server",
            r.divergences.len()
        );
    }
    if !r.unsettled.is_empty() {
        eprintln!(
            "loadgen: {} editors still waited for an ack after the drain (the server fell behind)",
            r.unsettled.len()
        );
    }
    Ok(r.divergences.is_empty() && r.unsettled.is_empty() && r.errors.is_empty() && fast)
}

/// The collab run's report as one JSON object.
fn collab_summary(a: &CollabArgs, r: &loadgen::collab::CollabReport) -> serde_json::Value {
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({
        "scenario": "collab", "protocol": format!("{:?}", a.protocol).to_lowercase(), "docs": a.docs, "editors": a.editors, "rate": a.rate,
        "cursor_hz": a.cursor_hz, "measured_secs": r.measured_secs,
        "changes_sent": r.changes_sent, "changes_heard": r.changes_heard,
        "changes_per_sec": r.window_changes as f64 / r.measured_secs.max(1e-9),
        "op_ms": {"p50": ms(&r.op_latency_us, 0.5), "p99": ms(&r.op_latency_us, 0.99),
            "p999": ms(&r.op_latency_us, 0.999), "max": r.op_latency_us.max() as f64 / 1000.0,
            "count": r.op_latency_us.len()},
        "op_sent_ms": {"p50": ms(&r.op_sent_latency_us, 0.5), "p99": ms(&r.op_sent_latency_us, 0.99),
            "p999": ms(&r.op_sent_latency_us, 0.999)},
        "ack_ms": {"p50": ms(&r.ack_latency_us, 0.5), "p99": ms(&r.ack_latency_us, 0.99),
            "p999": ms(&r.ack_latency_us, 0.999)},
        "cursor_ms": {"p50": ms(&r.cursor_latency_us, 0.5), "p99": ms(&r.cursor_latency_us, 0.99),
            "p999": ms(&r.cursor_latency_us, 0.999)},
        "cursor_moves": r.cursor_moves, "cursor_frames": r.cursor_frames,
        "cursor_entries": r.cursor_entries,
        "window_changes": r.window_changes, "window_ops": r.window_ops,
        "ops_per_sec": r.window_ops as f64 / r.measured_secs.max(1e-9),
        "server_cpu_s": r.server_cpu_secs,
        "changes_per_server_cpu_s": r.server_cpu_secs.map(|s| r.window_changes as f64 / s.max(1e-9)),
        "spin": a.spin, "text_editors": a.text_editors,
        "divergences": r.divergences, "unsettled": r.unsettled.len(), "unmatched": r.unmatched,
        "errors": r.errors,
    })
}
