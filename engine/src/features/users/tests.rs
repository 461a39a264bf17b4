//! The users feature's cross-shard cases on the deterministic harness.

use crate::runtime::owner_shard;
use crate::server::harness::Harness;

/// A user id whose owner is shard `shard` of `shards`.
fn user_owned_by(shard: usize, shards: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|name| owner_shard(name, shards) == shard)
        .expect("some name hashes there")
}

fn direct(to: &str) -> String {
    format!(r#"{{"type":"message:direct","to":"{to}","content":"psst","ref":"d"}}"#)
}

fn count(types: &[String], t: &str) -> usize {
    types.iter().filter(|x| *x == t).count()
}

/// A second device of the recipient logs in while a direct message is on its way to the
/// recipient's owner: whichever the owner sees first decides, and nothing is lost or doubled.
#[test]
fn a_second_device_logging_in_during_a_direct_message() {
    for attach_first in [true, false] {
        let mut h = Harness::new(3);
        let bob = user_owned_by(0, 3, "bob");
        let alice = h.connect_user(1, "alice");
        let bob1 = h.connect_user(2, &bob);
        h.deliver_all();
        h.received(bob1);
        let bob2 = if attach_first {
            let bob2 = h.connect_user(1, &bob);
            h.send(alice, &direct(&bob));
            bob2
        } else {
            h.send(alice, &direct(&bob));
            h.connect_user(1, &bob)
        };
        assert_eq!(
            h.pending(0),
            2,
            "the DM and the attach wait for bob's owner"
        );
        h.deliver_all();
        // Devices are reached per shard: bob2 is on another shard than bob1, so it gets the
        // DM exactly when the owner counted its shard first.
        let (t1, t2) = (h.types(bob1), h.types(bob2));
        assert_eq!(count(&t1, "message:direct"), 1, "{t1:?}");
        let expected = usize::from(attach_first);
        assert_eq!(
            count(&t2, "message:direct"),
            expected,
            "attach first: {attach_first}, {t2:?}"
        );
        assert_eq!(count(&t1, "notification:new"), 1);
        let acks = h.received(alice);
        assert!(
            acks.iter().any(|v| v["type"] == "ack" && v["ref"] == "d"),
            "{acks:?}"
        );
        // The notification was kept: the new device sees it unread.
        h.send(bob2, r#"{"type":"notification:list","ref":2}"#);
        h.deliver_all();
        let list = h.received(bob2);
        let listed = list
            .iter()
            .find(|v| v["type"] == "notification:list")
            .unwrap();
        assert_eq!(listed["unread"], 1, "{listed}");
    }
}

/// The attach of a second device on another shard reaches the owner before a DM sent after
/// it: both devices get the DM once.
#[test]
fn a_device_attached_before_the_direct_message_gets_it() {
    let mut h = Harness::new(3);
    let bob = user_owned_by(0, 3, "bob");
    let alice = h.connect_user(1, "alice");
    let bob1 = h.connect_user(2, &bob);
    let bob2 = h.connect_user(2, &bob);
    assert!(h.deliver(0) && h.deliver(0), "both attaches first");
    h.send(alice, &direct(&bob));
    h.deliver_all();
    assert_eq!(count(&h.types(bob1), "message:direct"), 1);
    assert_eq!(count(&h.types(bob2), "message:direct"), 1);
}

/// A presence change is told once to each connection sharing rooms with the user, however
/// many rooms they share, on every shard.
#[test]
fn presence_is_told_once_per_connection_across_shards() {
    let mut h = Harness::new(2);
    let (ann, ben) = (h.connect_user(0, "ann"), h.connect_user(1, "ben"));
    for room in ["p1", "p2"] {
        for c in [ann, ben] {
            h.send(c, &format!(r#"{{"type":"room:join","room":"{room}"}}"#));
        }
    }
    h.deliver_all();
    h.received(ben);
    h.send(ann, r#"{"type":"presence:update","status":"dnd"}"#);
    h.deliver_all();
    let got = h.received(ben);
    let updates: Vec<_> = got
        .iter()
        .filter(|v| v["type"] == "presence:update")
        .collect();
    assert_eq!(updates.len(), 1, "{got:?}");
    assert_eq!(updates[0]["status"], "dnd");
    // The same status again is conflated: acknowledged, nobody told.
    h.send(ann, r#"{"type":"presence:update","status":"dnd","ref":9}"#);
    h.deliver_all();
    assert!(h.received(ben).is_empty());
}

/// A connection's close is one event: the owner hears one detach, and the user goes offline
/// for the room once.
#[test]
fn a_close_detaches_once() {
    let mut h = Harness::new(2);
    let ann = h.connect_user(0, "ann");
    let ben = h.connect_user(1, "ben");
    for c in [ann, ben] {
        h.send(c, r#"{"type":"room:join","room":"lobby"}"#);
    }
    h.deliver_all();
    h.received(ben);
    h.close(ann);
    h.deliver_all();
    let got = h.received(ben);
    let left = got.iter().filter(|v| v["type"] == "room:user_left").count();
    let offline = got
        .iter()
        .filter(|v| v["type"] == "presence:update" && v["status"] == "offline")
        .count();
    assert_eq!((left, offline), (1, 1), "{got:?}");
}

/// What a token user sends first reaches their owner after the device is counted, so a
/// status chosen in the first message holds (it is not dropped as the status of a user the
/// owner does not know yet).
#[test]
fn a_first_message_follows_the_attach() {
    let mut h = Harness::new(2);
    let dana = user_owned_by(0, 2, "dana");
    let watcher = h.connect_user(0, "watcher");
    let d = h.connect_user(1, &dana);
    h.send(d, r#"{"type":"presence:update","status":"dnd"}"#);
    h.deliver_all();
    for c in [d, watcher] {
        h.send(c, r#"{"type":"room:join","room":"w"}"#);
    }
    h.deliver_all();
    h.received(watcher);
    h.send(watcher, r#"{"type":"presence:list","room":"w","ref":1}"#);
    h.deliver_all();
    let got = h.received(watcher);
    let list = got
        .iter()
        .find(|v| v["type"] == "presence:list")
        .expect("a list");
    let users = list["users"].as_array().unwrap();
    let shown = users
        .iter()
        .find(|u| u["userId"] == dana.as_str())
        .expect("dana");
    assert_eq!(shown["status"], "dnd", "{list}");
}

/// `away` is never conflated: a user shown away because their device is idle still sets it.
#[test]
fn choosing_away_while_idle_sticks() {
    let mut h = Harness::new(1);
    let (eve, other) = (h.connect_user(0, "eve"), h.connect_user(0, "other"));
    for c in [eve, other] {
        h.send(c, r#"{"type":"room:join","room":"idle"}"#);
    }
    let away = h.shards[0].config.away_after();
    h.send(other, r#"{"type":"typing:stop","room":"idle"}"#);
    h.advance(away + std::time::Duration::from_secs(1));
    h.send(eve, r#"{"type":"presence:update","status":"away"}"#);
    h.received(other);
    h.send(other, r#"{"type":"presence:list","room":"idle","ref":1}"#);
    let got = h.received(other);
    let list = got
        .iter()
        .find(|v| v["type"] == "presence:list")
        .expect("a list");
    let users = list["users"].as_array().unwrap();
    let shown = users.iter().find(|u| u["userId"] == "eve").expect("eve");
    assert_eq!(shown["status"], "away", "chosen, not only idle: {list}");
}
