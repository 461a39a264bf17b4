//! Fan-out through the rooms' shared chunks: frames small and large, several queued per member
//! at once, members on the room's shard and on the other one, all arrive whole and in order.

mod common;

use common::{room_on, server, Client};
use serde_json::json;

#[test]
fn every_member_gets_every_frame_whole_and_in_order() {
    let srv = server(|c| {
        c.batch_window_ms = 0;
        c.max_content_bytes = 40_000;
    });
    let addr = srv.local_addr();
    let room = room_on(0, 2, "fan");
    let elsewhere = room_on(1, 2, "home");
    let mut members = vec![
        Client::connect(addr, &format!("/ws/room/{room}")),
        Client::connect(addr, &format!("/ws/room/{room}")),
        // Lands on the other shard and joins across: its frames come through that shard's
        // own chunk for the room.
        Client::connect(addr, &format!("/ws/room/{elsewhere}")),
    ];
    for m in &mut members {
        m.join(&room);
    }
    // Sizes around the chunk's limits: 4 KiB first chunk, doubling to 64 KiB, frames over
    // 16 KiB queued by themselves.
    const SIZES: [usize; 7] = [10, 20_000, 300, 1_000, 17_000, 5, 4_000];
    const BURST: usize = 10;
    const BURSTS: usize = 20;
    let content = |n: usize| format!("{n}:{}", "x".repeat(SIZES[n % SIZES.len()]));
    for burst in 0..BURSTS {
        let first = burst * BURST;
        // A burst queues several frames on every member before any is written.
        for n in first..first + BURST {
            members[0].send(json!({"type":"message:send","room":room,"content":content(n)}));
        }
        for (i, m) in members.iter_mut().enumerate() {
            for n in first..first + BURST {
                let v = m.recv_type("message:new");
                assert_eq!(
                    v["content"].as_str(),
                    Some(content(n).as_str()),
                    "member {i}, message {n}"
                );
            }
        }
    }
    srv.shutdown().unwrap();
}

#[test]
fn a_rooms_first_frame_may_be_larger_than_a_first_chunk() {
    let srv = server(|c| {
        c.batch_window_ms = 0;
        c.max_content_bytes = 40_000;
    });
    let addr = srv.local_addr();
    let mut a = Client::connect(addr, "/ws");
    let mut b = Client::connect(addr, "/ws");
    a.join("big-first");
    b.join("big-first");
    // Over the 4 KiB first chunk, under the 16 KiB frames queued by themselves.
    let content = "y".repeat(10_000);
    a.send(json!({"type":"message:send","room":"big-first","content":content}));
    for m in [&mut a, &mut b] {
        assert_eq!(
            m.recv_type("message:new")["content"].as_str(),
            Some(content.as_str())
        );
    }
    srv.shutdown().unwrap();
}
