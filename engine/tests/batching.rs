//! The seed's batching over a real socket: the first message after a quiet period leaves at
//! once, later ones travel in `batch` frames of at most `batch-max`, none held past the window.

mod common;

use std::time::{Duration, Instant};

use common::{server, Client};
use serde_json::{json, Value};

const WINDOW_MS: u64 = 300;

fn frame_sizes(c: &mut Client, messages: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut got = 0;
    while got < messages {
        let f = c.recv_frame();
        let n = match f["type"].as_str().unwrap() {
            "batch" => f["messages"].as_array().unwrap().len(),
            "message:new" => 1,
            _ => continue,
        };
        sizes.push(n);
        got += n;
    }
    sizes
}

fn send(c: &mut Client, room: &str, n: usize) {
    for i in 0..n {
        c.send(json!({"type":"message:send","room":room,"content":i}));
    }
}

#[test]
fn leading_message_is_immediate_and_the_window_collects_the_rest() {
    let srv = server(|c| {
        c.batch_window_ms = WINDOW_MS;
        c.batch_max = 10;
    });
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.join("b");

    let t0 = Instant::now();
    send(&mut c, "b", 1);
    let first = c.recv_frame();
    assert_eq!(first["type"], "message:new", "a quiet room sends at once");
    assert!(
        t0.elapsed() < Duration::from_millis(WINDOW_MS / 2),
        "{:?}",
        t0.elapsed()
    );

    let t1 = Instant::now();
    send(&mut c, "b", 3);
    let batch = c.recv_frame();
    let waited = t1.elapsed();
    assert_eq!(batch["type"], "batch");
    let msgs: &Vec<Value> = batch["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert!(msgs
        .windows(2)
        .all(|w| w[0]["id"].as_u64() < w[1]["id"].as_u64()));
    assert!(
        waited >= Duration::from_millis(WINDOW_MS / 3),
        "held for the window: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(WINDOW_MS + 1000),
        "not past it: {waited:?}"
    );

    // After an empty window the room is quiet again: the next message is immediate.
    std::thread::sleep(Duration::from_millis(3 * WINDOW_MS));
    let t2 = Instant::now();
    send(&mut c, "b", 1);
    assert_eq!(c.recv_frame()["type"], "message:new");
    assert!(t2.elapsed() < Duration::from_millis(WINDOW_MS / 2));
    srv.shutdown().unwrap();
}

#[test]
fn a_burst_leaves_in_batches_of_at_most_max() {
    let srv = server(|c| {
        c.batch_window_ms = WINDOW_MS;
        c.batch_max = 10;
    });
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.join("burst");
    send(&mut c, "burst", 25);
    assert_eq!(frame_sizes(&mut c, 25), vec![1, 10, 10, 4]);
    srv.shutdown().unwrap();
}

#[test]
fn batching_off_sends_every_message_alone() {
    let srv = server(|c| c.batch_window_ms = 0);
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.join("off");
    send(&mut c, "off", 30);
    assert_eq!(frame_sizes(&mut c, 30), vec![1; 30]);
    srv.shutdown().unwrap();
}

#[test]
fn batches_reach_members_on_other_shards_whole() {
    let srv = server(|c| {
        c.batch_window_ms = WINDOW_MS;
        c.batch_max = 10;
    });
    let addr = srv.local_addr();
    let room = common::room_on(0, 2, "xb");
    let home1 = common::room_on(1, 2, "xb-home");
    let mut owner_side = Client::connect(addr, &format!("/ws/room/{room}"));
    let mut far_side = Client::connect(addr, &format!("/ws/room/{home1}"));
    assert_eq!(far_side.shard, 1);
    owner_side.join(&room);
    far_side.join(&room);
    send(&mut far_side, &room, 25);
    assert_eq!(frame_sizes(&mut owner_side, 25), vec![1, 10, 10, 4]);
    assert_eq!(frame_sizes(&mut far_side, 25), vec![1, 10, 10, 4]);
    srv.shutdown().unwrap();
}

/// Batching off, each connection written at most every `interval_ms`.
fn paced_server(interval_ms: u64) -> corecast::ServerHandle {
    server(|c| {
        c.batch_window_ms = 0;
        c.write_interval_ms = interval_ms;
    })
}

/// `c` sends one message to `room` and gets it back well within one write interval.
fn assert_delivered_at_once(c: &mut Client, room: &str, interval_ms: u64) {
    let t0 = Instant::now();
    send(c, room, 1);
    c.recv_type("message:new");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(interval_ms / 2),
        "held {took:?}"
    );
}

#[test]
fn write_interval_spaces_writes_to_one_connection_but_not_the_first() {
    const INTERVAL_MS: u64 = 300;
    let srv = paced_server(INTERVAL_MS);
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.join("paced");
    // Written just now (room:joined): the next write waits for the interval.
    let joined_at = Instant::now();
    send(&mut c, "paced", 3);
    let first = c.recv_type("message:new");
    let waited = joined_at.elapsed();
    assert!(
        waited >= Duration::from_millis(INTERVAL_MS / 2),
        "written {waited:?} after the last write"
    );
    assert_eq!(first["content"], 0);
    for i in 1..3 {
        assert_eq!(c.recv_type("message:new")["content"], i);
    }
    // Quiet for longer than the interval: the next write leaves at once.
    std::thread::sleep(Duration::from_millis(INTERVAL_MS + 100));
    assert_delivered_at_once(&mut c, "paced", INTERVAL_MS);
    srv.shutdown().unwrap();
}

#[test]
fn a_quiet_connection_is_not_held_behind_a_paced_one() {
    const INTERVAL_MS: u64 = 300;
    let srv = paced_server(INTERVAL_MS);
    let addr = srv.local_addr();
    // Both on shard 0, so one flusher serves them.
    let home = common::room_on(0, 2, "pace-home");
    let mut busy = Client::connect(addr, &format!("/ws/room/{home}"));
    let mut quiet = Client::connect(addr, &format!("/ws/room/{home}"));
    assert_eq!((busy.shard, quiet.shard), (0, 0));
    busy.join("pace-busy");
    quiet.join("pace-quiet");
    std::thread::sleep(Duration::from_millis(INTERVAL_MS + 100));

    // `busy` is written now; its next write is due an interval later.
    send(&mut busy, "pace-busy", 1);
    busy.recv_type("message:new");
    send(&mut busy, "pace-busy", 1);
    std::thread::sleep(Duration::from_millis(20));
    // `quiet` becomes dirty behind it, but was not written for longer than the interval.
    assert_delivered_at_once(&mut quiet, "pace-quiet", INTERVAL_MS);
    busy.recv_type("message:new");
    srv.shutdown().unwrap();
}
