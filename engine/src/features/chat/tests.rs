//! Chat's cross-shard cases on the deterministic harness: the interleavings are chosen by
//! the test, so the races below happen every run, not when timing allows.

use crate::runtime::owner_shard;
use crate::server::harness::{ms, test_config, Harness};

/// A room name whose owner is shard `shard` of `shards`.
pub fn room_owned_by(shard: usize, shards: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|name| owner_shard(name, shards) == shard)
        .expect("some name hashes there")
}

fn members(h: &Harness, room: &str) -> usize {
    let owner = &h.shards[owner_shard(room, h.shards.len())];
    owner
        .topics
        .key(room)
        .and_then(|tk| owner.topics.get(tk))
        .and_then(|t| t.owner.as_ref())
        .map_or(0, |o| o.members.len())
}

fn join(room: &str) -> String {
    format!(r#"{{"type":"room:join","room":"{room}"}}"#)
}

#[test]
fn join_leave_rejoin_before_the_owner_answers_keeps_counts_exact() {
    let mut h = Harness::new(2);
    let room = room_owned_by(0, 2, "r");
    let c = h.connect_user(1, "carol");
    h.deliver_all();
    h.received(c);
    h.send(c, &join(&room));
    h.send(c, &format!(r#"{{"type":"room:leave","room":"{room}"}}"#));
    h.send(c, &join(&room));
    assert_eq!(h.pending(0), 2, "two joins wait for the owner, no leave");
    h.deliver_all();
    assert_eq!(members(&h, &room), 1);
    let joined = h.types(c).iter().filter(|t| *t == "room:joined").count();
    assert_eq!(joined, 1, "the stale answer is undone, not shown");
    h.send(
        c,
        &format!(r#"{{"type":"message:send","room":"{room}","content":"hi"}}"#),
    );
    h.deliver_all();
    let got: Vec<_> = h.received(c);
    let news = got.iter().filter(|v| v["type"] == "message:new").count();
    assert_eq!(news, 1, "{got:?}");
    h.send(c, &format!(r#"{{"type":"room:leave","room":"{room}"}}"#));
    h.deliver_all();
    assert_eq!(members(&h, &room), 0);
}

#[test]
fn a_joined_answer_after_the_leave_is_undone_and_the_room_forgotten() {
    let mut h = Harness::new(2);
    let room = room_owned_by(0, 2, "r");
    let c = h.connect(1);
    h.send(c, &join(&room));
    assert!(h.deliver(0), "the owner accepts");
    assert_eq!(members(&h, &room), 1);
    h.send(c, &format!(r#"{{"type":"room:leave","room":"{room}"}}"#));
    assert_eq!(
        h.pending(0),
        0,
        "a pending join's leave waits for the answer"
    );
    assert!(h.deliver(1), "the answer finds no pending join");
    assert!(h.deliver(0), "and its undo reaches the owner");
    assert_eq!(members(&h, &room), 0);
    assert!(h.shards[0].topics.key(&room).is_none(), "nothing keeps it");
    assert!(!h.types(c).contains(&"room:joined".to_string()));
}

#[test]
fn a_close_in_the_middle_of_a_fanout_leaves_after_it() {
    let config = crate::config::Config {
        send_queue_bytes: 4096,
        batch_max: 1,
        ..test_config()
    };
    let mut h = Harness::with_config(2, config);
    let room = room_owned_by(0, 2, "r");
    let (slow, fast, far) = (
        h.connect_user(0, "slow"),
        h.connect_user(0, "fast"),
        h.connect_user(1, "far"),
    );
    for c in [slow, fast, far] {
        h.send(c, &join(&room));
    }
    h.deliver_all();
    assert_eq!(members(&h, &room), 3);
    h.received(fast);
    h.received(far);
    let big = "x".repeat(1500);
    let send = format!(r#"{{"type":"message:send","room":"{room}","content":"{big}"}}"#);
    let mut sent = 0;
    while h.is_open(slow) {
        assert!(sent < 10, "a reader that never reads is cut");
        h.send(fast, &send);
        h.deliver_all();
        sent += 1;
        let heard = h.types(far);
        h.received(fast);
        if h.is_open(slow) {
            assert_eq!(heard, ["message:new"], "far hears every message");
            continue;
        }
        // The cut came in the middle of the fan-out: the message reached everyone else
        // first, and the leave it caused reached the owner (and the room) after it.
        assert_eq!(heard[..2], ["message:new", "room:user_left"], "{heard:?}");
    }
    assert_eq!(members(&h, &room), 2);
}

#[test]
fn typing_expires_on_its_timer() {
    let mut h = Harness::new(1);
    let (a, b) = (h.connect_user(0, "ann"), h.connect_user(0, "ben"));
    h.send(a, &join("t"));
    h.send(b, &join("t"));
    h.received(b);
    h.send(a, r#"{"type":"typing:start","room":"t"}"#);
    let shown = h.received(b);
    assert_eq!(shown.last().unwrap()["users"].as_array().unwrap().len(), 1);
    h.advance(ms(2900));
    assert!(h.types(b).iter().all(|t| t != "typing:update"));
    h.advance(ms(100));
    let cleared = h.received(b);
    let update = cleared
        .iter()
        .find(|v| v["type"] == "typing:update")
        .expect("expired");
    assert!(update["users"].as_array().unwrap().is_empty(), "{update}");
    assert!(
        h.shards[0].timers.is_empty(),
        "no timer left once nobody types"
    );
}

#[test]
fn room_list_gathers_every_shard_in_any_order() {
    let mut h = Harness::new(3);
    let c = h.connect_user(2, "lister");
    for shard in 0..3 {
        let room = room_owned_by(shard, 3, "list-");
        h.send(c, &format!(r#"{{"type":"room:create","room":"{room}"}}"#));
    }
    h.deliver_all();
    h.received(c);
    h.send(c, r#"{"type":"room:list","ref":1}"#);
    // Parts come back in the order chosen here: the farthest first.
    assert!(h.deliver(1));
    assert!(h.deliver(0));
    h.deliver_all();
    let list = h.received(c);
    let rooms = list[0]["rooms"].as_array().expect("room:list");
    assert_eq!(rooms.len(), 3, "{list:?}");
    assert_eq!(list[0]["ref"], 1);
}

#[test]
fn a_topic_dropped_and_made_again_keeps_the_new_state() {
    let mut h = Harness::new(1);
    let c = h.connect_user(0, "maker");
    h.send(
        c,
        r#"{"type":"room:create","room":"again","password":"pw"}"#,
    );
    h.send(c, &join("again"));
    assert_eq!(
        h.types(c).iter().filter(|t| *t == "error").count(),
        1,
        "wrong password"
    );
    h.advance(std::time::Duration::from_secs(3601));
    assert!(h.shards[0].topics.key("again").is_none(), "expired");
    h.send(c, &join("again"));
    assert!(
        h.types(c).contains(&"room:joined".to_string()),
        "no password any more"
    );
}

/// A drop event for a room made again since (another serial) leaves the new room's state and
/// its creator's quota alone; the matching one forgets both.
#[test]
fn a_stale_drop_event_leaves_the_new_room_alone() {
    use crate::features::FeatureId;
    use crate::server::Dropped;
    let mut h = Harness::new(1);
    let c = h.connect_user(0, "maker");
    h.send(
        c,
        r#"{"type":"room:create","room":"again","password":"pw"}"#,
    );
    let name: std::sync::Arc<str> = std::sync::Arc::from("again");
    let serial = h.shards[0]
        .topics
        .get(h.shards[0].topics.key("again").unwrap())
        .unwrap()
        .serial;
    let quota =
        |h: &mut Harness| h.with_features(0, |f, _| f.chat.rooms_created.get("maker").copied());
    assert_eq!(quota(&mut h), Some(1));
    h.with_features(0, |f, ctx| {
        let stale = Dropped {
            feature: FeatureId::Chat,
            name: name.clone(),
            serial: serial + 7,
        };
        f.chat.on_topic_dropped(ctx, &stale);
        assert!(
            f.chat.rooms.contains_key("again"),
            "the new room keeps its state"
        );
    });
    assert_eq!(quota(&mut h), Some(1));
    h.send(c, &join("again"));
    assert!(
        h.types(c).contains(&"error".to_string()),
        "its password still holds"
    );
    h.with_features(0, |f, ctx| {
        let current = Dropped {
            feature: FeatureId::Chat,
            name: name.clone(),
            serial,
        };
        f.chat.on_topic_dropped(ctx, &current);
        assert!(!f.chat.rooms.contains_key("again"));
    });
    assert_eq!(quota(&mut h), None, "the creator's quota came back");
}

/// A joiner on the owner's shard is a member before the leaves its own join caused (a slow
/// member cut by the `room:user_joined` fan-out), so it hears that member leave.
#[test]
fn a_local_joiner_hears_the_leave_its_join_caused() {
    let config = crate::config::Config {
        send_queue_bytes: 2048,
        ..test_config()
    };
    let mut h = Harness::with_config(1, config);
    let slow = h.connect_user(0, "slow");
    h.send(slow, &join("j"));
    // The slow member's queue is left a few bytes of room: the next frame cuts it.
    let queue = &mut h.shards[0].conns[slow.key].queue;
    let room = 2048 - queue.queued_bytes() - 8;
    queue
        .push(bytes::Bytes::from(vec![b' '; room]))
        .expect("fits");
    let late = h.connect_user(0, "late");
    h.send(late, &join("j"));
    assert!(!h.is_open(slow), "the join's fan-out cut the slow member");
    let types = h.types(late);
    let joined = types
        .iter()
        .position(|t| t == "room:joined")
        .expect("joined");
    let left = types
        .iter()
        .position(|t| t == "room:user_left")
        .expect("heard the leave");
    assert!(joined < left, "{types:?}");
}
