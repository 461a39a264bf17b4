//! `loadgen collab` against a real 2-shard corecast: editors typing at once on several
//! documents (owners on both shards) converge on the server's text, and the figures count
//! what happened.

use loadgen::collab::{run, CollabConfig, Proto};

#[test]
fn editors_typing_at_once_converge_and_are_measured() {
    let srv = corecast::Server::start(corecast::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin: false,
        rate_limit: "off".into(),
        request_rate: "off".into(),
        user_request_rate: "off".into(),
        ip_request_rate: "off".into(),
        ..Default::default()
    })
    .unwrap();
    let cfg = CollabConfig {
        url: format!("ws://{}/ws", srv.local_addr()),
        docs: 4,
        editors: 5,
        rate: 20.0,
        cursor_hz: 10.0,
        warmup: 0.3,
        duration: 1.5,
        drain: 10.0,
        doc_prefix: "t".into(),
        proto: Proto::Corecast,
        // The server runs in this process: the window's CPU is the server's and the client's.
        server_pid: Some(std::process::id()),
        spin: false,
        text_editors: None,
    };
    let r = run(&cfg).unwrap();
    assert!(r.divergences.is_empty(), "{:?}", r.divergences);
    assert!(r.unsettled.is_empty(), "{:?}", r.unsettled);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.changes_sent > 100, "{}", r.changes_sent);
    assert!(!r.op_latency_us.is_empty() && !r.ack_latency_us.is_empty());
    assert!(r.cursor_frames > 0 && r.cursor_moves > 0);
    assert!(r.window_changes > 0 && r.window_changes < r.changes_sent);
    assert!(r.window_ops >= r.window_changes, "{} ops", r.window_ops);
    assert!(
        r.server_cpu_secs.is_some_and(|s| s > 0.0),
        "{:?}",
        r.server_cpu_secs
    );
    srv.shutdown().unwrap();
}
