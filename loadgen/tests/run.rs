//! loadgen against real servers: a corecast on 127.0.0.1:0 and a small echo server that can
//! stall, started inside the tests.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadgen::protocol::Protocol;
use loadgen::scenario::{Echo, Fanout, Scenario};
use loadgen::{Report, RunConfig};

fn corecast(batch_window_ms: u64) -> corecast::ServerHandle {
    corecast::Server::start(corecast::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin: false,
        batch_window_ms,
        rate_limit: "off".into(),
        request_rate: "off".into(),
        user_request_rate: "off".into(),
        ip_request_rate: "off".into(),
        ..Default::default()
    })
    .unwrap()
}

/// An echo server: one thread per connection; after `stall_after` messages in total it sleeps
/// `stall` once (a server that stops answering for a while).
fn echo_server(stall_after: usize, stall: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while let Ok(msg) = ws.read() {
                    if msg.is_text() {
                        if seen.fetch_add(1, Ordering::Relaxed) + 1 == stall_after {
                            std::thread::sleep(stall);
                        }
                        if ws.send(msg).is_err() {
                            return;
                        }
                    } else if msg.is_close() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(url: &str, protocol: Protocol, scenario: &dyn Scenario) -> RunConfig {
    let target = loadgen::runner::Target::parse(url).unwrap();
    let mut cfg = RunConfig::new(target, protocol, scenario.plan().unwrap());
    cfg.size = 48;
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Duration::from_secs(1);
    cfg.drain = Duration::from_millis(800);
    cfg.cores = 2;
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.hold = Duration::from_millis(300);
    cfg
}

fn run(cfg: RunConfig, name: &str) -> Report {
    loadgen::run(cfg, name, serde_json::json!({}), &mut |_, _, _| {}).unwrap()
}

#[test]
fn exact_accounting_against_corecast_counts_messages_inside_batches() {
    let srv = corecast(50);
    let url = format!("ws://{}/ws/room/{{room}}", srv.local_addr());
    let fanout = Fanout {
        name: "fanout",
        conns: 40,
        rooms: 4,
        publishers: 8,
        rate: 200.0,
        room_prefix: "acct".into(),
    };
    let r = run(config(&url, Protocol::Corecast, &fanout), "fanout");
    assert_eq!(r.connects.ok, 40, "{:?}", r.failures);
    assert!(r.sent >= 8 * 200, "sent {}", r.sent);
    // Each publisher's room has 10 members, the publisher included.
    assert_eq!(r.expected, r.sent * 10);
    assert_eq!(r.received, r.expected, "{}", r.table());
    assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0));
    assert_eq!(r.delivery_ratio, 1.0);
    // Batching packed several messages into one frame.
    assert!(
        r.frames_received < r.received,
        "{} frames",
        r.frames_received
    );
    // ... and the summary says the server batches.
    assert!(r.batched_frames > 0, "{}", r.table());
    assert!(r.table().contains("the server batches"), "{}", r.table());
    assert!(r.latency_us.count > 0);
    srv.shutdown().unwrap();
}

#[test]
fn a_stalled_server_shows_in_p99() {
    let addr = echo_server(60, Duration::from_millis(200));
    let echo = Echo {
        conns: 2,
        rate: 100.0,
        room_prefix: "e".into(),
    };
    let mut cfg = config(&format!("ws://{addr}/"), Protocol::Echo, &echo);
    cfg.warmup = Duration::ZERO;
    cfg.duration = Duration::from_secs(2);
    let r = run(cfg, "echo");
    assert_eq!(r.delivery_ratio, 1.0, "{}", r.table());
    // ~20 of ~400 messages were meant to be sent during the stall: measured from their
    // intended send time, they push p99 up to the stall's length.
    assert!(r.latency_us.p99 >= 120_000, "p99 {} µs", r.latency_us.p99);
    assert!(r.latency_us.p50 < 50_000, "p50 {} µs", r.latency_us.p50);
}

#[test]
fn templates_measure_any_json_server() {
    let addr = echo_server(usize::MAX, Duration::ZERO);
    let echo = Echo {
        conns: 3,
        rate: 50.0,
        room_prefix: "t".into(),
    };
    let protocol = Protocol::Template {
        join: Some(r#"{"action":"subscribe","channel":"{room}"}"#.into()),
        publish: r#"{"action":"publish","channel":"{room}","data":{"text":"{content}","n":{seq},"from":{conn}}}"#.into(),
        greeting: None,
        joined: Some("subscribe".into()),
    };
    let r = run(config(&format!("ws://{addr}/"), protocol, &echo), "echo");
    assert_eq!(r.connects.ok, 3);
    assert!(r.sent > 0);
    assert_eq!(r.received, r.expected);
    assert_eq!(r.delivery_ratio, 1.0);
}

#[test]
fn failures_are_reported_by_cause() {
    // Nothing listens on a port we just freed.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let echo = Echo {
        conns: 4,
        rate: 10.0,
        room_prefix: "f".into(),
    };
    let r = run(
        config(&format!("ws://{free}/"), Protocol::Echo, &echo),
        "echo",
    );
    assert_eq!(r.connects.ok, 0);
    assert_eq!(r.failures.get("refused"), Some(&4), "{:?}", r.failures);

    // A refused upgrade is reported with its status line.
    let srv = corecast(0);
    let url = format!("ws://{}/nowhere", srv.local_addr());
    let r = run(config(&url, Protocol::Corecast, &echo), "echo");
    assert_eq!(
        r.failures.get("HTTP/1.1 404 Not Found"),
        Some(&4),
        "{:?}",
        r.failures
    );
    srv.shutdown().unwrap();
}

#[test]
fn json_has_the_documented_schema() {
    let srv = corecast(0);
    let url = format!("ws://{}/ws", srv.local_addr());
    let fanout = Fanout {
        name: "broadcast",
        conns: 10,
        rooms: 1,
        publishers: 1,
        rate: 100.0,
        room_prefix: "schema".into(),
    };
    let r = run(config(&url, Protocol::Corecast, &fanout), "broadcast");
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "scenario",
        "params",
        "connects",
        "sent",
        "expected",
        "received",
        "delivery_ratio",
        "deliveries_per_sec",
        "latency_us",
        "schedule_lag_us",
        "client_cpu",
        "percentiles",
        "timeline",
        "failures",
        "duplicates",
        "out_of_order",
        "lost",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for p in ["p50", "p90", "p99", "p999", "p9999", "max"] {
        assert!(v["latency_us"][p].is_u64(), "latency_us.{p}");
    }
    assert!(v["client_cpu"]["busy"].is_array());
    assert_eq!(v["scenario"], "broadcast");
    // Batching off: every message a frame of its own, and nothing said about batching.
    assert_eq!(v["batched_frames"], 0);
    assert!(!r.table().contains("batching"), "{}", r.table());
    assert!(r.hgrm().contains("Percentile"));
    let html = r.html();
    assert!(html.contains("<svg") && html.contains("</html>"));
    srv.shutdown().unwrap();
}

#[test]
fn the_cli_prints_json_and_gates_on_thresholds() {
    let srv = corecast(50);
    let url = format!("ws://{}/ws", srv.local_addr());
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hgrm = dir.join("lat.hgrm");
    let html = dir.join("report.html");
    let base = [
        "fanout",
        "--url",
        &url,
        "--conns",
        "20",
        "--rooms",
        "2",
        "--publishers",
        "4",
        "--rate",
        "50",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--drain",
        "0.5",
    ];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(base)
        .args(["--json", "--hgrm"])
        .arg(&hgrm)
        .arg("--report")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["delivery_ratio"], 1.0);
    assert!(std::fs::read_to_string(&hgrm).unwrap().contains("#[Max"));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    // An impossible p99 bound fails the run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(base)
        .args(["--quiet", "--max-p99-ms", "0.001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("p99"));
    srv.shutdown().unwrap();
}

/// Runs the loadgen binary; returns (exit code, stdout, stderr, seconds taken).
fn cli(args: &[&str]) -> (Option<i32>, String, String, f64) {
    let began = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--quiet")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        began.elapsed().as_secs_f64(),
    )
}

fn short_fanout(url: &str) -> Vec<String> {
    [
        "fanout",
        "--url",
        url,
        "--conns",
        "4",
        "--rooms",
        "1",
        "--publishers",
        "1",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--drain",
        "0.2",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn runs_that_measured_nothing_fail_and_say_why() {
    // Nothing listening.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let args = short_fanout(&format!("ws://{free}/ws"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err, _) = cli(&args);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("4 of 4 connections failed (4 x refused)"),
        "{err}"
    );
    assert!(err.contains("nothing was expected"), "{err}");
    assert!(
        out.contains("nothing expected") && !out.contains("100.0000%"),
        "{out}"
    );

    // Every upgrade refused with 401.
    let srv = corecast::Server::start(corecast::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin: false,
        auth_secret: Some("secret-0123456789abcdef".into()),
        allow_anonymous: false,
        ..Default::default()
    })
    .unwrap();
    let args = short_fanout(&format!("ws://{}/ws", srv.local_addr()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err, _) = cli(&args);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("4 x HTTP/1.1 401 Unauthorized"), "{err}");
    srv.shutdown().unwrap();

    // Every join refused (guests may not join): said at once, with the server's code.
    let srv = corecast::Server::start(corecast::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin: false,
        allow_anonymous: false,
        ..Default::default()
    })
    .unwrap();
    let args = short_fanout(&format!("ws://{}/ws", srv.local_addr()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err, secs) = cli(&args);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("4 x refused by the server: error auth_required"),
        "{err}"
    );
    assert!(out.contains("0 ready / 4 attempted, 4 upgraded"), "{out}");
    assert!(secs < 5.0, "waited {secs} s for a refusal");
    srv.shutdown().unwrap();
}

#[test]
fn connect_runs_report_connections_only_and_conns_0_is_named() {
    let srv = corecast(0);
    let url = format!("ws://{}/ws", srv.local_addr());
    let (code, out, err, _) = cli(&["connect", "--url", &url, "--conns", "5", "--hold", "0.2"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("5 ready / 5 attempted"), "{out}");
    assert!(
        !out.contains("delivered") && !out.contains("latency ms"),
        "{out}"
    );
    srv.shutdown().unwrap();

    for scenario in ["connect", "echo", "fanout", "broadcast"] {
        let (code, _, err, _) = cli(&[scenario, "--url", &url, "--conns", "0"]);
        assert_eq!(code, Some(2), "{scenario}: {err}");
        assert!(
            err.contains("conns: must be at least 1"),
            "{scenario}: {err}"
        );
    }
}
