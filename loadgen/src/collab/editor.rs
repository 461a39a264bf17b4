//! One simulated editor of a shared document, with the usual client discipline: one change in
//! flight, the rest buffered, incoming changes transformed against both (the engine's own
//! transform, so a divergence is the server's or the protocol's, never a second
//! implementation's).
//!
//! Invariant: `text` is the server's text at `version` with the in-flight change and then the
//! buffered ops applied; a typist keeps no text, only the version.
//!
//! A typist is the cheap editor that lets one client core drive a thousand editors on one
//! document: it follows the same discipline (one change in flight, based on the last version
//! it has seen, every version heard in order) but inserts at the start of the document, which
//! is valid at any version, so it never needs the text.
//!
//! A ShareDB editor keeps its buffer as ShareDB's client does, in `ot-text-unicode`'s terms
//! (`text_unicode`): the op in flight, and the ops typed since composed into one.

use super::text_unicode::{self as tu, Component, TextOp};
use super::yjs::{self, Key, Replica};
use corecast::features::docs::limits::OPS_PER_CHANGE_MAX;
use corecast::features::docs::op_json::{from_json as ops_from, to_json as ops_json};
use corecast::features::docs::operation::{transform_lists, Op};
use std::borrow::Cow;
use std::collections::VecDeque;
use tungstenite::Message;

use ropey::Rope;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The protocol an editor speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// corecast's `doc:*`: a change carries every buffered op; the op applied first keeps its
    /// insert left on a tie.
    Corecast,
    /// ShareDB with `ot-text-unicode`: a change is the buffer composed into one op; a
    /// submitted op keeps its insert left of those it is transformed against.
    ShareDb,
    /// Hocuspocus with Yjs (`yjs`): no change waits for another; every keystroke is an update
    /// sent at once, answered with a `SyncStatus`.
    Hocuspocus,
}

pub struct Editor {
    pub proto: Proto,
    /// ShareDB's id for this connection (`src` of its ops).
    pub agent: String,
    pub doc: String,
    pub client: String,
    pub text: Rope,
    pub version: u64,
    pub inflight: Option<(u64, Vec<Op>)>,
    pub pending: Vec<Op>,
    /// When each buffered op was typed (its intended time), oldest first: a change's op
    /// latency counts from its oldest op's keystroke, so ops waiting behind the one in flight
    /// count their wait.
    pending_at: VecDeque<u64>,
    /// ShareDB's buffer instead of `inflight` and `pending`.
    composed: Composed,
    /// A Hocuspocus editor's replica, and its keystrokes' update frames not yet sent (with
    /// their identities and keystroke times).
    pub yjs: Option<Replica>,
    yjs_queued: VecDeque<(Vec<u8>, u64, u64)>,
    pub seq: u64,
    /// Keeps no text: inserts at the start and follows the versions only.
    pub typist: bool,
    rng: u64,
}

/// A ShareDB editor's buffer: the op in flight and the one pending (the edits typed since,
/// composed), each with the number of edits it carries.
#[derive(Default)]
struct Composed {
    inflight: Option<(u64, TextOp)>,
    pending: Option<(TextOp, usize)>,
}

/// The fields of a corecast frame the run reads, borrowed; the ops stay raw until needed.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    version: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    ops: Option<&'a RawValue>,
}

/// One op of a `doc:operation`, borrowed.
#[derive(Deserialize)]
struct WireOp<'a> {
    #[serde(borrow)]
    operation: Cow<'a, str>,
    position: usize,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    length: Option<usize>,
}

/// A typist's fast path: the version of a `doc:operation` as the engine writes it (`type`
/// first, `version` before the ops), found without parsing; `None` for any other frame. The
/// first unescaped `"version":` is the field: inside a JSON string every quote is escaped.
fn operation_version(text: &str) -> Option<u64> {
    static FIELD: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#""version":"#));
    let rest = text.strip_prefix(r#"{"type":"doc:operation","#)?;
    let at = FIELD.find(rest.as_bytes())? + FIELD.needle().len();
    let digits = rest[at..].bytes().take_while(u8::is_ascii_digit).count();
    rest[at..at + digits].parse().ok()
}

fn wire_ops(raw: Option<&RawValue>) -> Result<Vec<Op>, String> {
    let raw = raw.ok_or("doc:operation without ops")?;
    let ops: Vec<WireOp> = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    ops.into_iter()
        .map(|o| match (&*o.operation, o.content, o.length) {
            ("insert", Some(c), _) => Ok(Op::insert(o.position, &c)),
            ("delete", _, Some(n)) => Ok(Op::delete(o.position, n)),
            _ => Err(format!("unknown op {}", o.operation)),
        })
        .collect()
}

/// What a frame meant to the run's figures.
#[derive(Debug, PartialEq)]
pub enum Heard {
    /// Our change `seq` is version `version`.
    Ack {
        seq: u64,
        version: u64,
    },
    /// Another's change `version` arrived.
    Change {
        version: u64,
    },
    /// A `cursor:update` with this many cursors.
    Cursors(usize),
    Other,
}

impl Editor {
    pub fn new(doc: &str, client: String, seed: u64) -> Editor {
        Editor {
            proto: Proto::Corecast,
            agent: String::new(),
            doc: doc.into(),
            client,
            text: Rope::new(),
            version: 0,
            inflight: None,
            pending: Vec::new(),
            pending_at: VecDeque::new(),
            composed: Composed::default(),
            yjs: None,
            yjs_queued: VecDeque::new(),
            seq: 0,
            typist: false,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A random keystroke typed at `at` (ns): mostly inserts of one character, some deletes.
    pub fn edit(&mut self, at: u64) {
        let r = self.random();
        if let Some(y) = self.yjs.as_mut() {
            // Characters of one UTF-16 unit, so that any offset is a valid one.
            let c = ["a", "b", "é", " ", "漢", "\n"][(r >> 8) as usize % 6];
            let len = y.len();
            let key = if len < 8 || !r.is_multiple_of(4) {
                Key::Insert((r >> 16) as u32 % (len + 1), c)
            } else {
                Key::Delete((r >> 16) as u32 % len)
            };
            let (frame, id) = y.edit(key);
            self.yjs_queued.push_back((frame, id, at));
            return;
        }
        self.pending_at.push_back(at);
        let len = self.text.len_chars();
        let c = ['a', 'b', 'é', ' ', '😀', '\n'][(r >> 8) as usize % 6].to_string();
        let op = if self.typist {
            Op::insert(0, &c)
        } else if len < 8 || !r.is_multiple_of(4) {
            Op::insert((r >> 16) as usize % (len + 1), &c)
        } else {
            Op::delete((r >> 16) as usize % len, 1)
        };
        if !self.typist {
            op.apply(&mut self.text).expect("a valid op of our own");
        }
        if self.proto == Proto::ShareDb {
            let op = match op {
                Op::Insert { pos, text, .. } => tu::at(pos, Component::Insert(text.to_string())),
                Op::Delete { pos, len } => tu::at(pos, Component::Delete(len)),
            };
            let (before, n) = self.composed.pending.take().unwrap_or_default();
            self.composed.pending = Some((tu::compose(&before, &op), n + 1));
            return;
        }
        self.pending.push(op);
    }

    /// The next change to send, when none is in flight: its seq, its text, when its oldest
    /// edit was typed, and how many edits it carries.
    pub fn flush(&mut self, now: u64) -> Option<(u64, Message, u64, usize)> {
        if let Some(y) = self.yjs.as_mut() {
            let (frame, id, typed) = self.yjs_queued.pop_front()?;
            self.seq += 1;
            y.sent.push_back((self.seq, id));
            return Some((self.seq, Message::binary(frame), typed, 1));
        }
        if !self.settled_inflight() || self.buffered() == 0 {
            return None;
        }
        self.seq += 1;
        let typed = self.pending_at.front().copied().unwrap_or(now);
        if self.proto == Proto::ShareDb {
            self.pending_at.clear();
            let (op, n) = self.composed.pending.take().expect("edits are buffered");
            let msg = json!({"a": "op", "c": "docs", "d": self.doc, "v": self.version,
                "seq": self.seq, "op": tu::to_json(&op)});
            self.composed.inflight = Some((self.seq, op));
            return Some((self.seq, Message::text(msg.to_string()), typed, n));
        }
        // At most the server's ops per change, as the JS client sends; the rest go next, each
        // keeping its keystroke's time.
        let n = self.pending.len().min(OPS_PER_CHANGE_MAX);
        let ops: Vec<Op> = self.pending.drain(..n).collect();
        if self.pending.is_empty() {
            self.pending_at.clear();
        } else {
            self.pending_at.drain(..n.min(self.pending_at.len()));
        }
        let msg = json!({"type": "doc:change", "doc": self.doc, "version": self.version,
            "ops": ops_json(&ops), "client": self.client, "seq": self.seq});
        let n = ops.len();
        self.inflight = Some((self.seq, ops));
        Some((self.seq, Message::text(msg.to_string()), typed, n))
    }

    /// Edits typed and not yet sent.
    fn buffered(&self) -> usize {
        match self.proto {
            Proto::Corecast => self.pending.len(),
            Proto::ShareDb => self.composed.pending.as_ref().map_or(0, |p| p.1),
            Proto::Hocuspocus => self.yjs_queued.len(),
        }
    }

    /// No change in flight (for Hocuspocus: none unanswered).
    fn settled_inflight(&self) -> bool {
        self.inflight.is_none()
            && self.composed.inflight.is_none()
            && self.yjs.as_ref().is_none_or(|y| y.sent.is_empty())
    }

    /// A binary frame: Hocuspocus's. Another's update is applied (our own, echoed before its
    /// `SyncStatus`, is not counted), and a `SyncStatus` answers the oldest of ours awaiting
    /// one.
    pub fn on_binary(&mut self, frame: &[u8]) -> Result<Heard, String> {
        let y = self
            .yjs
            .as_mut()
            .ok_or("a binary frame from a JSON protocol")?;
        match yjs::parse(frame)? {
            // Hocuspocus sends an update to every connection, its author's too.
            yjs::Frame::Update(u) => match y.apply(&u)? {
                id if y.sent.iter().any(|s| s.1 == id) => Ok(Heard::Other),
                id => Ok(Heard::Change { version: id }),
            },
            yjs::Frame::Step2(u) => y.apply(&u).map(|_| Heard::Other),
            yjs::Frame::Saved(true) => match y.sent.pop_front() {
                Some((0, _)) => Ok(Heard::Other),
                Some((seq, version)) => Ok(Heard::Ack { seq, version }),
                None => Err(format!("{}: a SyncStatus for nothing sent", self.client)),
            },
            yjs::Frame::Saved(false) => Err(format!("{}: an update not saved", self.client)),
            yjs::Frame::Denied(why) => Err(format!("{}: permission denied: {why}", self.client)),
            _ => Ok(Heard::Other),
        }
    }

    /// The text as this editor has it.
    pub fn text(&self) -> String {
        self.yjs
            .as_ref()
            .map_or_else(|| self.text.to_string(), Replica::text)
    }

    /// A frame's text from the server, with its parsed value when the run's figures need it
    /// (a `doc:ack` or `doc:operation` is read without building one).
    pub fn on_text(&mut self, text: &str) -> Result<(Heard, Option<Value>), String> {
        if self.proto == Proto::Corecast {
            if let Some(version) = self.typist.then(|| operation_version(text)).flatten() {
                self.apply_remote(version, Vec::new())?;
                return Ok((Heard::Change { version }, None));
            }
            if let Ok(w) = serde_json::from_str::<Wire>(text) {
                let version = w.version.unwrap_or(0);
                match &*w.kind {
                    "doc:ack" => return Ok((self.on_ack(w.seq.unwrap_or(0), version), None)),
                    "doc:operation" => {
                        let ops = if self.typist {
                            Vec::new()
                        } else {
                            wire_ops(w.ops)?
                        };
                        self.apply_remote(version, ops)?;
                        return Ok((Heard::Change { version }, None));
                    }
                    "cursor:update" | "doc:state" | "error" => {}
                    _ => return Ok((Heard::Other, None)),
                }
            }
        }
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok((self.on_frame(&v)?, Some(v)))
    }

    fn on_ack(&mut self, seq: u64, version: u64) -> Heard {
        if self.inflight.as_ref().is_some_and(|(s, _)| *s == seq) {
            self.inflight = None;
            self.version = self.version.max(version);
        }
        Heard::Ack { seq, version }
    }

    /// A frame from the server.
    pub fn on_frame(&mut self, v: &Value) -> Result<Heard, String> {
        if self.proto == Proto::ShareDb {
            return self.on_sharedb(v);
        }
        match v["type"].as_str() {
            Some("doc:state") => {
                self.text = Rope::from_str(v["content"].as_str().unwrap_or(""));
                self.version = v["version"].as_u64().unwrap_or(0);
                Ok(Heard::Other)
            }
            Some("doc:ack") => {
                let seq = v["seq"].as_u64().unwrap_or(0);
                Ok(self.on_ack(seq, v["version"].as_u64().unwrap_or(0)))
            }
            Some("doc:operation") => {
                let version = v["version"].as_u64().unwrap_or(0);
                self.apply_remote(version, ops_from(&v["ops"])?)?;
                Ok(Heard::Change { version })
            }
            Some("cursor:update") => {
                Ok(Heard::Cursors(v["cursors"].as_array().map_or(0, Vec::len)))
            }
            Some("error") => Err(format!("server error: {v}")),
            _ => Ok(Heard::Other),
        }
    }

    /// A ShareDB message: the subscription's snapshot, our op's ack (our `src` and `seq`, no
    /// `op`), another's op at version `v` (duplicates from the stream are skipped).
    fn on_sharedb(&mut self, v: &Value) -> Result<Heard, String> {
        if v.get("error").is_some() {
            return Err(format!("sharedb error: {v}"));
        }
        match v["a"].as_str() {
            Some("s") | Some("f") => {
                let data = &v["data"];
                self.text = Rope::from_str(data["data"].as_str().unwrap_or(""));
                self.version = data["v"].as_u64().unwrap_or(0);
                Ok(Heard::Other)
            }
            Some("op") => {
                let at = v["v"].as_u64().ok_or("op without v")?;
                let mine = v["src"].as_str() == Some(&self.agent);
                let seq = v["seq"].as_u64().unwrap_or(0);
                if mine
                    && self
                        .composed
                        .inflight
                        .as_ref()
                        .is_some_and(|(s, _)| *s == seq)
                {
                    // The server sends every op before ours first: ours is the next version.
                    self.next_version(at + 1)?;
                    self.composed.inflight = None;
                    self.version = at + 1;
                    return Ok(Heard::Ack {
                        seq,
                        version: at + 1,
                    });
                }
                if mine || at < self.version {
                    return Ok(Heard::Other);
                }
                self.apply_composed(at + 1, tu::from_json(&v["op"])?)?;
                Ok(Heard::Change { version: at + 1 })
            }
            _ => Ok(Heard::Other),
        }
    }

    /// Fails unless `version` is the next one.
    fn next_version(&self, version: u64) -> Result<(), String> {
        if version != self.version + 1 {
            return Err(format!(
                "{}: change {version} after {}",
                self.client, self.version
            ));
        }
        Ok(())
    }

    /// Another's ShareDB op, rebased as ShareDB's client does (`transformX`): ours past it
    /// with side left, it past ours with side right.
    fn apply_composed(&mut self, version: u64, mut theirs: TextOp) -> Result<(), String> {
        self.next_version(version)?;
        self.version = version;
        if self.typist {
            return Ok(());
        }
        if let Some((seq, mine)) = self.composed.inflight.take() {
            self.composed.inflight = Some((seq, tu::transform(&mine, &theirs, true)));
            theirs = tu::transform(&theirs, &mine, false);
        }
        if let Some((mine, n)) = self.composed.pending.take() {
            self.composed.pending = Some((tu::transform(&mine, &theirs, true), n));
            theirs = tu::transform(&theirs, &mine, false);
        }
        tu::apply(&mut self.text, &theirs).map_err(|e| format!("{}: {e}", self.client))
    }

    fn apply_remote(&mut self, version: u64, ops: Vec<Op>) -> Result<(), String> {
        self.next_version(version)?;
        if self.typist {
            self.version = version;
            return Ok(());
        }
        // The change applied first (theirs) keeps its insert left on a tie.
        let mut theirs = ops;
        if let Some((seq, mine)) = self.inflight.take() {
            let (mine, t) = transform_lists(mine, theirs, true);
            self.inflight = Some((seq, mine));
            theirs = t;
        }
        let pending = std::mem::take(&mut self.pending);
        let (pending, t) = transform_lists(pending, theirs, true);
        self.pending = pending;
        // A pending delete of what they deleted is gone: keep the oldest keystroke times, so
        // a change's time is never later than its oldest op's.
        self.pending_at.truncate(self.pending.len());
        for op in &t {
            op.apply(&mut self.text)
                .map_err(|e| format!("{}: {e}", self.client))?;
        }
        self.version = version;
        Ok(())
    }

    pub fn settled(&self) -> bool {
        self.settled_inflight() && self.buffered() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typist_reads_the_version_without_parsing_and_follows_in_order() {
        let frame = r#"{"type":"doc:operation","doc":"a\"version\":7","version":12,"ops":[]}"#;
        assert_eq!(operation_version(frame), Some(12));
        assert_eq!(operation_version(r#"{"type":"doc:ack","version":3}"#), None);
        let mut e = Editor::new("d", "c1".into(), 7);
        e.typist = true;
        e.version = 11;
        assert_eq!(e.on_text(frame).unwrap().0, Heard::Change { version: 12 });
        assert_eq!(e.version, 12);
        assert!(e.on_text(frame).is_err(), "a repeated version is a failure");
        e.edit(0);
        let (_, msg, _, _) = e.flush(0).unwrap();
        let msg = msg.into_text().unwrap();
        assert!(
            msg.contains(r#""position":0"#) && msg.contains(r#""version":12"#),
            "{msg}"
        );
    }

    #[test]
    fn an_editor_rebases_its_buffer_on_a_remote_change() {
        let mut e = Editor::new("d", "c1".into(), 7);
        e.on_frame(&json!({"type": "doc:state", "content": "abc", "version": 3}))
            .unwrap();
        for t in 0..3 {
            e.edit(t);
        }
        let (seq, _, typed, _) = e.flush(9).unwrap();
        assert_eq!(typed, 0, "a change's time is its oldest keystroke's");
        e.edit(10);
        let remote = json!({"type": "doc:operation", "version": 4,
            "ops": [{"operation": "insert", "position": 0, "content": "Z"}]});
        assert_eq!(e.on_frame(&remote).unwrap(), Heard::Change { version: 4 });
        assert!(e.text.to_string().starts_with('Z') || e.text.to_string().contains('Z'));
        let ack = json!({"type": "doc:ack", "version": 5, "seq": seq});
        assert_eq!(e.on_frame(&ack).unwrap(), Heard::Ack { seq, version: 5 });
        assert_eq!(e.version, 5);
        assert_eq!(e.flush(20).map(|f| f.2), Some(10), "the buffer goes next");
        for t in 0..(OPS_PER_CHANGE_MAX as u64 + 2) {
            e.edit(100 + t);
        }
        e.inflight = None;
        let (_, _, typed, n) = e.flush(500).unwrap();
        assert_eq!(
            (typed, n),
            (100, OPS_PER_CHANGE_MAX),
            "a change within the server's limit"
        );
        e.inflight = None;
        let (_, _, typed, n) = e.flush(500).unwrap();
        assert_eq!(n, 2, "the rest go next");
        assert_eq!(
            typed,
            100 + OPS_PER_CHANGE_MAX as u64,
            "with their own times"
        );
        let gap = json!({"type": "doc:operation", "version": 9, "ops": []});
        assert!(e.on_frame(&gap).is_err(), "a gap is a failure, not ignored");
    }

    /// ShareDB's server in a few lines: an op is transformed past those applied since its
    /// version, with side left, then applied.
    struct Server {
        text: Rope,
        log: Vec<(String, TextOp)>,
    }

    impl Server {
        /// The frames a submitted `{a: "op"}` gives, to every editor in server order.
        fn submit(&mut self, msg: &str) -> Value {
            let m: Value = serde_json::from_str(msg).unwrap();
            let mut op = tu::from_json(&m["op"]).unwrap();
            let from = m["v"].as_u64().unwrap() as usize;
            for (_, applied) in &self.log[from..] {
                op = tu::transform(&op, applied, true);
            }
            tu::apply(&mut self.text, &op).unwrap();
            let src = m["src"].as_str().unwrap().to_string();
            self.log.push((src.clone(), op.clone()));
            json!({"a": "op", "v": self.log.len() - 1, "src": src, "seq": m["seq"],
                "op": tu::to_json(&op)})
        }
    }

    /// Editor `i` reads up to `reads` frames, then sends its change, if any.
    fn step(e: &mut Editor, inbox: &mut [VecDeque<Value>], i: usize, reads: usize, s: &mut Server) {
        for _ in 0..reads {
            let Some(f) = inbox[i].pop_front() else { break };
            e.on_frame(&f).unwrap();
        }
        if let Some((_, msg, _, n)) = e.flush(0) {
            assert!(n >= 1);
            let mut m: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            m["src"] = json!(e.agent);
            let out = s.submit(&m.to_string());
            inbox.iter_mut().for_each(|q| q.push_back(out.clone()));
        }
    }

    #[test]
    fn sharedb_editors_compose_their_buffer_and_converge_with_the_server() {
        let mut eds: Vec<Editor> = (0..3)
            .map(|i| {
                let mut e = Editor::new("d", format!("c{i}"), 11 + i as u64);
                e.proto = Proto::ShareDb;
                e.agent = format!("a{i}");
                e.on_frame(&json!({"a": "s", "data": {"data": "héllo wörld", "v": 0}}))
                    .unwrap();
                e
            })
            .collect();
        let mut server = Server {
            text: Rope::from_str("héllo wörld"),
            log: Vec::new(),
        };
        let mut inbox: Vec<VecDeque<Value>> = vec![VecDeque::new(); 3];
        for round in 0..400u64 {
            for (i, e) in eds.iter_mut().enumerate() {
                for _ in 0..(round + i as u64) % 4 {
                    e.edit(round);
                }
            }
            // Each editor's change reaches the server at a different point of its inbox.
            for (i, e) in eds.iter_mut().enumerate() {
                let reads = (round as usize + i) % 3;
                step(e, &mut inbox, i, reads, &mut server);
            }
        }
        while inbox.iter().any(|q| !q.is_empty()) || eds.iter().any(|e| !e.settled()) {
            for (i, e) in eds.iter_mut().enumerate() {
                step(e, &mut inbox, i, usize::MAX, &mut server);
            }
        }
        assert!(server.log.len() > 100, "{} changes", server.log.len());
        for e in &eds {
            assert_eq!(e.text.to_string(), server.text.to_string(), "{}", e.client);
            assert_eq!(e.version, server.log.len() as u64);
        }
    }
}
