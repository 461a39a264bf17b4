//! Documents on the deterministic harness: the protocol's answers across shards, and a
//! simulation of disciplined editors on two shards with random deliveries, reconnects and
//! duplicate resubmits that must all end with the owner's text, each change applied once.

use ropey::Rope;
use serde_json::{json, Value};

use super::operation::{transform_lists, Op};
use super::ot_tests::Rng;
use crate::protocol::handshake::DOC_TOPIC_PREFIX;
use crate::runtime::owner_shard;
use crate::server::harness::Harness;
use crate::server::ConnRef;

/// A document name whose owner is shard `shard` of `shards`.
fn doc_owned_by(shard: usize, shards: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|d| owner_shard(&format!("{DOC_TOPIC_PREFIX}{d}"), shards) == shard)
        .expect("some name hashes there")
}

fn of_type(got: &[Value], kind: &str) -> Vec<Value> {
    got.iter().filter(|v| v["type"] == kind).cloned().collect()
}

fn ops_json(ops: &[Op]) -> Value {
    super::op_json::to_json(ops)
}

fn ops_from(v: &Value) -> Vec<Op> {
    super::op_json::from_json(v).expect("ops")
}

#[test]
fn a_home_document_is_joined_at_open_and_changes_reach_the_other_shard() {
    let mut h = Harness::new(2);
    let doc = doc_owned_by(0, 2, "d");
    let home = format!("{DOC_TOPIC_PREFIX}{doc}");
    let a = h.connect_home(0, Some("alice"), &home);
    let b = h.connect_user(1, "bob");
    h.deliver_all();
    let got = h.received(a);
    assert_eq!(got[0]["type"], "connection:established");
    assert_eq!(got[1]["type"], "doc:state", "{got:?}");
    assert_eq!(got[1]["content"], "");
    h.send(b, &json!({"type": "doc:join", "doc": doc}).to_string());
    h.deliver_all();
    let state = &of_type(&h.received(b), "doc:state")[0];
    assert_eq!(state["users"].as_array().unwrap().len(), 2, "{state}");
    assert_eq!(of_type(&h.received(a), "doc:user_joined").len(), 1);

    // Seed 000's single-op form, without `doc` on the home connection.
    let change = json!({"type": "doc:change", "operation": "insert", "position": 0,
        "content": "héllo", "version": 0, "ref": 7});
    h.send(a, &change.to_string());
    // Bob, on the other shard, based on version 0 too: transformed behind alice's.
    let change = json!({"type": "doc:change", "doc": doc, "version": 0,
        "ops": [{"operation": "insert", "position": 0, "content": "!"}]});
    h.send(b, &change.to_string());
    h.deliver_all();
    let got_a = h.received(a);
    let acks = of_type(&got_a, "doc:ack");
    assert_eq!(
        acks,
        vec![json!({"type": "doc:ack", "doc": doc, "version": 1, "ref": 7})]
    );
    let to_a = of_type(&got_a, "doc:operation");
    assert_eq!(to_a.len(), 1, "{got_a:?}");
    assert_eq!(to_a[0]["version"], 2);
    assert_eq!(
        to_a[0]["ops"][0]["position"], 5,
        "after alice's five code points"
    );
    let to_b = h.received(b);
    assert_eq!(
        of_type(&to_b, "doc:operation")[0]["author"]["userId"],
        "alice"
    );
    assert_eq!(of_type(&to_b, "doc:ack")[0]["version"], 2);
    h.send(
        b,
        &json!({"type": "doc:sync", "doc": doc, "version": 0}).to_string(),
    );
    h.deliver_all();
    let ops = of_type(&h.received(b), "doc:operations");
    assert_eq!(ops[0]["changes"].as_array().unwrap().len(), 2, "{ops:?}");
}

#[test]
fn refusals_keep_the_connection_and_name_their_numbers() {
    let mut h = Harness::new(2);
    let doc = doc_owned_by(1, 2, "e");
    let a = h.connect_user(0, "alice");
    let send = |h: &mut Harness, v: Value| h.send(a, &v.to_string());
    send(&mut h, json!({"type": "doc:change", "doc": doc, "ops": []}));
    send(&mut h, json!({"type": "doc:join", "doc": doc}));
    send(&mut h, json!({"type": "doc:join", "doc": doc}));
    h.deliver_all();
    send(
        &mut h,
        json!({"type": "doc:change", "doc": doc, "version": 3,
        "ops": [{"operation": "insert", "position": 0, "content": "x"}]}),
    );
    send(
        &mut h,
        json!({"type": "doc:change", "doc": doc,
        "ops": [{"operation": "delete", "position": 0, "length": 1}]}),
    );
    send(
        &mut h,
        json!({"type": "doc:change", "doc": doc, "ops": [{"operation": "move"}]}),
    );
    send(
        &mut h,
        json!({"type": "doc:change", "doc": doc,
        "ops": [{"operation": "insert", "position": 0, "content": "ok"}], "ref": "last"}),
    );
    h.deliver_all();
    let codes: Vec<_> = of_type(&h.received(a), "error")
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        codes,
        // The malformed op is refused where it arrives; the others by the owner.
        [
            "not_in_doc",
            "already_in_doc",
            "invalid_op",
            "invalid_version",
            "invalid_op"
        ]
    );
    assert!(h.is_open(a));
    h.send(a, &json!({"type": "doc:leave", "doc": doc}).to_string());
    h.deliver_all();
    let got = h.received(a);
    assert_eq!(of_type(&got, "doc:left").len(), 1, "{got:?}");
}

// ----- the simulation on the harness -----------------------------------------------------

/// An editor with the usual discipline over real protocol frames. After a reconnect it
/// asks `doc:sync` for what it missed, holding live changes until that answer.
struct Editor {
    name: String,
    shard: usize,
    conn: ConnRef,
    client: String,
    text: Rope,
    version: u64,
    inflight: Option<(u64, Vec<Op>)>,
    pending: Vec<Op>,
    seq: u64,
    syncing: bool,
    held: Vec<Value>,
}

impl Editor {
    fn edit(&mut self, rng: &mut Rng) {
        let len = self.text.len_chars();
        let op = if len == 0 || rng.below(3) > 0 {
            let c = ['a', 'é', '中', '😀', ' '][rng.below(5)];
            Op::insert(rng.below(len + 1), &c.to_string())
        } else {
            let pos = rng.below(len);
            Op::delete(pos, 1 + rng.below((len - pos).min(3)))
        };
        op.apply(&mut self.text).unwrap();
        self.pending.push(op);
    }

    fn change_json(&self, doc: &str, seq: u64, ops: &[Op]) -> String {
        json!({"type": "doc:change", "doc": doc, "version": self.version, "ops": ops_json(ops),
            "client": self.client, "seq": seq})
        .to_string()
    }

    fn flush(&mut self, h: &mut Harness, doc: &str) {
        if self.inflight.is_some() || self.pending.is_empty() || self.syncing {
            return;
        }
        self.seq += 1;
        let ops = std::mem::take(&mut self.pending);
        h.send(self.conn, &self.change_json(doc, self.seq, &ops));
        self.inflight = Some((self.seq, ops));
    }

    /// A change of another's (or our own, seen in a sync).
    fn apply_change(&mut self, version: u64, ops: Vec<Op>, origin: Option<(&str, u64)>) {
        if version <= self.version {
            return;
        }
        assert_eq!(
            version,
            self.version + 1,
            "{}: changes arrive in order",
            self.name
        );
        let mine = self.inflight.as_ref().map(|(s, _)| *s);
        if origin.is_some_and(|(c, s)| c == self.client && Some(s) == mine) {
            self.inflight = None;
            self.version = version;
            return;
        }
        let mut ops = ops;
        if let Some((seq, inflight)) = self.inflight.take() {
            let (inflight, theirs) = transform_lists(inflight, ops, true);
            self.inflight = Some((seq, inflight));
            ops = theirs;
        }
        let (pending, theirs) = transform_lists(std::mem::take(&mut self.pending), ops, true);
        self.pending = pending;
        for op in &theirs {
            op.apply(&mut self.text).unwrap();
        }
        self.version = version;
    }

    fn receive(&mut self, h: &mut Harness, doc: &str) {
        for v in h.received(self.conn) {
            match v["type"].as_str().unwrap() {
                "doc:ack" => {
                    let mine = self.inflight.as_ref().map(|(s, _)| *s);
                    if v["seq"].as_u64() == mine {
                        self.inflight = None;
                        self.version = self.version.max(v["version"].as_u64().unwrap());
                    }
                }
                "doc:operation" if self.syncing => self.held.push(v),
                "doc:operation" => {
                    self.apply_change(v["version"].as_u64().unwrap(), ops_from(&v["ops"]), None)
                }
                "doc:operations" => self.synced(h, doc, &v),
                "error" => panic!("{}: {v}", self.name),
                _ => {}
            }
        }
    }

    fn synced(&mut self, h: &mut Harness, doc: &str, v: &Value) {
        for c in v["changes"].as_array().unwrap() {
            let origin = c["client"]
                .as_str()
                .map(|id| (id, c["seq"].as_u64().unwrap()));
            self.apply_change(c["version"].as_u64().unwrap(), ops_from(&c["ops"]), origin);
        }
        self.syncing = false;
        for held in std::mem::take(&mut self.held) {
            let version = held["version"].as_u64().unwrap();
            self.apply_change(version, ops_from(&held["ops"]), None);
        }
        if let Some((seq, ops)) = self.inflight.clone() {
            h.send(self.conn, &self.change_json(doc, seq, &ops));
        }
    }

    /// Drops the connection (what it had not read is lost) and comes back on a new one.
    fn reconnect(&mut self, h: &mut Harness, doc: &str, resubmit_twice: bool) {
        h.close(self.conn);
        self.held.clear();
        self.conn = h.connect_user(self.shard, &self.name);
        h.send(
            self.conn,
            &json!({"type": "doc:join", "doc": doc}).to_string(),
        );
        let sync = json!({"type": "doc:sync", "doc": doc, "version": self.version});
        h.send(self.conn, &sync.to_string());
        self.syncing = true;
        if resubmit_twice {
            if let Some((seq, ops)) = self.inflight.clone() {
                // A duplicate on its way: it must not apply twice.
                h.send(self.conn, &self.change_json(doc, seq, &ops));
            }
        }
    }
}

fn server_text(h: &mut Harness, owner: usize, doc: &str) -> (String, u64) {
    let topic = format!("{DOC_TOPIC_PREFIX}{doc}");
    h.with_features(owner, |f, _| {
        let d = &f.docs.docs[&*topic].doc;
        (d.text().to_string(), d.version())
    })
}

fn editors(h: &mut Harness, rng: &mut Rng, doc: &str) -> Vec<Editor> {
    let n = 2 + rng.below(3);
    let editors = (0..n)
        .map(|i| {
            let name = format!("e{i}");
            let shard = rng.below(2);
            let conn = h.connect_user(shard, &name);
            h.send(conn, &json!({"type": "doc:join", "doc": doc}).to_string());
            let client = format!("client-{i}");
            Editor {
                name,
                shard,
                conn,
                client,
                text: Rope::new(),
                version: 0,
                inflight: None,
                pending: vec![],
                seq: 0,
                syncing: false,
                held: vec![],
            }
        })
        .collect();
    h.deliver_all();
    editors
}

/// Delivers, reads and flushes until nothing moves; returns the changes flushed.
fn quiesce(h: &mut Harness, editors: &mut [Editor], doc: &str) -> u64 {
    let mut made = 0;
    for _ in 0..100 {
        h.deliver_all();
        for e in editors.iter_mut() {
            e.receive(h, doc);
            let before = e.seq;
            e.flush(h, doc);
            made += e.seq - before;
        }
        h.deliver_all();
        let quiet = (0..2).all(|s| h.pending(s) == 0)
            && editors
                .iter()
                .all(|e| e.inflight.is_none() && e.pending.is_empty());
        if quiet {
            break;
        }
    }
    for e in editors.iter_mut() {
        e.receive(h, doc);
    }
    made
}

fn simulate(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut h = Harness::new(2);
    let owner = (seed % 2) as usize;
    let doc = doc_owned_by(owner, 2, "sim");
    let mut editors = editors(&mut h, &mut rng, &doc);
    let n = editors.len();
    let mut made = 0;
    for _ in 0..150 {
        let i = rng.below(n);
        match rng.below(12) {
            0..=4 => editors[i].edit(&mut rng),
            5 | 6 => {
                let before = editors[i].seq;
                editors[i].flush(&mut h, &doc);
                made += editors[i].seq - before;
            }
            7..=9 => {
                h.deliver(rng.below(2));
            }
            10 => editors[i].receive(&mut h, &doc),
            _ => {
                let twice = rng.below(2) == 0;
                editors[i].reconnect(&mut h, &doc, twice);
            }
        }
    }
    made += quiesce(&mut h, &mut editors, &doc);
    let (text, version) = server_text(&mut h, owner, &doc);
    for e in &editors {
        assert_eq!(e.text.to_string(), text, "seed {seed}: {} diverged", e.name);
        assert_eq!(e.version, version, "seed {seed}: {} is behind", e.name);
    }
    assert_eq!(version, made, "seed {seed}: each change applied once");
}

#[test]
fn editors_on_two_shards_converge_through_reconnects_and_duplicate_resubmits() {
    for seed in 0..1000 {
        simulate(seed);
    }
}

#[test]
fn cursors_go_out_once_per_interval_follow_the_text_and_are_removed() {
    let mut h = Harness::new(2);
    let doc = doc_owned_by(0, 2, "cur");
    let a = h.connect_user(1, "alice");
    let b = h.connect_user(0, "bob");
    for c in [a, b] {
        h.send(c, &json!({"type": "doc:join", "doc": doc}).to_string());
    }
    h.deliver_all();
    let change = json!({"type": "doc:change", "doc": doc, "version": 0,
        "ops": [{"operation": "insert", "position": 0, "content": "hello world"}]});
    h.send(b, &change.to_string());
    h.deliver_all();
    h.received(a);
    h.received(b);
    for position in [1, 3, 6] {
        let mv = json!({"type": "cursor:move", "doc": doc, "position": position});
        h.send(a, &mv.to_string());
    }
    h.deliver_all();
    assert!(
        of_type(&h.received(b), "cursor:update").is_empty(),
        "held for the interval"
    );
    h.advance(crate::server::harness::ms(50));
    h.deliver_all();
    let updates = of_type(&h.received(b), "cursor:update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    let cursor = &updates[0]["cursors"][0];
    assert_eq!(cursor["userId"], "alice");
    assert_eq!(
        (cursor["position"].clone(), cursor["anchor"].clone()),
        (json!(6), json!(6))
    );
    // Bob types before alice's caret: the owner's copy moves with the text.
    let change = json!({"type": "doc:change", "doc": doc, "version": 1,
        "ops": [{"operation": "insert", "position": 0, "content": "¡"}]});
    h.send(b, &change.to_string());
    let c = h.connect_user(1, "carol");
    h.send(c, &json!({"type": "doc:join", "doc": doc}).to_string());
    h.deliver_all();
    let got = h.received(c);
    assert_eq!(got[1]["type"], "doc:state", "{got:?}");
    let all = of_type(&got, "cursor:update");
    assert_eq!(all[0]["cursors"][0]["position"], 7, "{all:?}");
    // A canvas cursor, and a bad one.
    h.send(
        b,
        &json!({"type": "cursor:move", "doc": doc, "x": 10.5, "y": -3}).to_string(),
    );
    h.send(
        b,
        &json!({"type": "cursor:move", "doc": doc, "x": "left", "y": 1}).to_string(),
    );
    h.advance(crate::server::harness::ms(50));
    h.deliver_all();
    let errors = of_type(&h.received(b), "error");
    assert_eq!(errors[0]["code"], "invalid_field");
    let to_c = of_type(&h.received(c), "cursor:update");
    assert_eq!(to_c[0]["cursors"][0]["x"], 10.5, "{to_c:?}");
    h.close(a);
    h.deliver_all();
    let removed = of_type(&h.received(b), "cursor:remove");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["connectionId"], a.id);
}

#[test]
fn a_reader_behind_on_cursors_holds_only_the_newest_frame() {
    let mut h = Harness::new(2);
    let doc = doc_owned_by(1, 2, "slow");
    let a = h.connect_user(1, "alice");
    let reader = h.connect_user(0, "rita");
    for c in [a, reader] {
        h.send(c, &json!({"type": "doc:join", "doc": doc}).to_string());
    }
    h.deliver_all();
    h.received(reader);
    // Ten intervals of alice's moves while the reader reads nothing.
    for position in 0..10 {
        let mv = json!({"type": "cursor:move", "doc": doc, "x": position, "y": 0});
        h.send(a, &mv.to_string());
        h.deliver_all();
        h.advance(crate::server::harness::ms(50));
        h.deliver_all();
    }
    let updates = of_type(&h.received(reader), "cursor:update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["cursors"][0]["x"], 9);
    let conflated: u64 = h
        .shards
        .iter()
        .map(|s| {
            s.stats
                .latest_conflated
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    // Nine replaced in the reader's queue, and nine in alice's: she reads nothing either,
    // and members get every cursor, their own included.
    assert_eq!(conflated, 18);
}

#[test]
fn a_client_without_seq_and_an_old_caret_are_handled() {
    let mut h = Harness::new(1);
    let a = h.connect_user(0, "alice");
    let b = h.connect_user(0, "bob");
    for c in [a, b] {
        h.send(c, &json!({"type": "doc:join", "doc": "v"}).to_string());
    }
    h.deliver_all();
    h.received(a);
    h.received(b);
    let no_seq = json!({"type": "doc:change", "doc": "v", "client": "tab",
        "ops": [{"operation": "insert", "position": 0, "content": "hello"}]});
    h.send(a, &no_seq.to_string());
    assert_eq!(of_type(&h.received(a), "error")[0]["code"], "missing_field");
    let change = json!({"type": "doc:change", "doc": "v", "version": 0,
        "ops": [{"operation": "insert", "position": 0, "content": "hello"}]});
    h.send(a, &change.to_string());
    // Bob's caret at 0 in version 0 (before "hello"): it follows the text to 5.
    let mv = json!({"type": "cursor:move", "doc": "v", "position": 0, "version": 0});
    h.send(b, &mv.to_string());
    h.advance(crate::server::harness::ms(50));
    h.deliver_all();
    let update = &of_type(&h.received(a), "cursor:update")[0];
    assert_eq!(update["version"], 1);
    assert_eq!(update["cursors"][0]["position"], 5, "{update}");
}
