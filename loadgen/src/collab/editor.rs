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

use corecast::features::docs::op_json::{from_json as ops_from, to_json as ops_json};
use corecast::features::docs::operation::{transform_lists, Op};
use std::borrow::Cow;
use std::collections::VecDeque;

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
    /// ShareDB with `ot-text-unicode`: one op per change (its components from one positional
    /// op); a submitted op keeps its insert left of those it is transformed against.
    ShareDb,
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
    pub seq: u64,
    /// Keeps no text: inserts at the start and follows the versions only.
    pub typist: bool,
    rng: u64,
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
        self.pending_at.push_back(at);
        let r = self.random();
        if self.typist {
            let c = ['a', 'b', 'é', ' ', '😀', '\n'][(r >> 8) as usize % 6];
            self.pending.push(Op::insert(0, &c.to_string()));
            return;
        }
        let len = self.text.len_chars();
        let op = if len < 8 || !r.is_multiple_of(4) {
            let c = ['a', 'b', 'é', ' ', '😀', '\n'][(r >> 8) as usize % 6];
            Op::insert((r >> 16) as usize % (len + 1), &c.to_string())
        } else {
            let pos = (r >> 16) as usize % len;
            Op::delete(pos, 1)
        };
        op.apply(&mut self.text).expect("a valid op of our own");
        self.pending.push(op);
    }

    /// The next change to send, when none is in flight: its seq, its text, and when its
    /// oldest op was typed.
    pub fn flush(&mut self, now: u64) -> Option<(u64, String, u64)> {
        if self.inflight.is_some() || self.pending.is_empty() {
            return None;
        }
        self.seq += 1;
        let typed = self.pending_at.pop_front().unwrap_or(now);
        if self.proto == Proto::ShareDb {
            // One op per change, as ShareDB's protocol has it; the rest keep their times.
            let op = self.pending.remove(0);
            if self.pending.is_empty() {
                self.pending_at.clear();
            }
            let msg = json!({"a": "op", "c": "docs", "d": self.doc, "v": self.version,
                "seq": self.seq, "op": components(&op)});
            self.inflight = Some((self.seq, vec![op]));
            return Some((self.seq, msg.to_string(), typed));
        }
        self.pending_at.clear();
        let ops = std::mem::take(&mut self.pending);
        let msg = json!({"type": "doc:change", "doc": self.doc, "version": self.version,
            "ops": ops_json(&ops), "client": self.client, "seq": self.seq});
        self.inflight = Some((self.seq, ops));
        Some((self.seq, msg.to_string(), typed))
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
                if mine && self.inflight.as_ref().is_some_and(|(s, _)| *s == seq) {
                    self.inflight = None;
                    self.version = at + 1;
                    return Ok(Heard::Ack {
                        seq,
                        version: at + 1,
                    });
                }
                if mine || at < self.version {
                    return Ok(Heard::Other);
                }
                let ops = from_components(&v["op"])?;
                self.apply_remote(at + 1, ops)?;
                Ok(Heard::Change { version: at + 1 })
            }
            _ => Ok(Heard::Other),
        }
    }

    fn apply_remote(&mut self, version: u64, ops: Vec<Op>) -> Result<(), String> {
        if version != self.version + 1 {
            return Err(format!(
                "{}: change {version} after {}",
                self.client, self.version
            ));
        }
        if self.typist {
            self.version = version;
            return Ok(());
        }
        // corecast: the change applied first (theirs) keeps its insert left on a tie; ShareDB
        // transforms a submitted op with side "left": ours keeps it.
        let theirs_first = self.proto == Proto::Corecast;
        let mut theirs = ops;
        if let Some((seq, mine)) = self.inflight.take() {
            let (mine, t) = transform_lists(mine, theirs, theirs_first);
            self.inflight = Some((seq, mine));
            theirs = t;
        }
        let pending = std::mem::take(&mut self.pending);
        let (pending, t) = transform_lists(pending, theirs, theirs_first);
        self.pending = pending;
        for op in &t {
            op.apply(&mut self.text)
                .map_err(|e| format!("{}: {e}", self.client))?;
        }
        self.version = version;
        Ok(())
    }

    pub fn settled(&self) -> bool {
        self.inflight.is_none() && self.pending.is_empty()
    }
}

/// An `ot-text-unicode` op of one positional op: skip, then insert or delete.
fn components(op: &Op) -> Value {
    let (pos, last) = match op {
        Op::Insert { pos, text, .. } => (*pos, json!(&**text)),
        Op::Delete { pos, len } => (*pos, json!({"d": len})),
    };
    if pos == 0 {
        json!([last])
    } else {
        json!([pos, last])
    }
}

/// Positional ops of an `ot-text-unicode` op (skips, inserts, deletes by count or text).
fn from_components(v: &Value) -> Result<Vec<Op>, String> {
    let mut pos = 0usize;
    let mut out = Vec::new();
    for c in v.as_array().ok_or("op: not an array")? {
        if let Some(n) = c.as_u64() {
            pos += n as usize;
        } else if let Some(s) = c.as_str() {
            let op = Op::insert(pos, s);
            pos += op.chars();
            out.push(op);
        } else if let Some(d) = c.get("d") {
            let len = d
                .as_u64()
                .map(|n| n as usize)
                .or_else(|| d.as_str().map(|s| s.chars().count()));
            out.push(Op::delete(pos, len.ok_or("delete of unknown length")?));
        } else {
            return Err(format!("unknown component {c}"));
        }
    }
    Ok(out)
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
        let (_, msg, _) = e.flush(0).unwrap();
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
        let (seq, _, typed) = e.flush(9).unwrap();
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
        let gap = json!({"type": "doc:operation", "version": 9, "ops": []});
        assert!(e.on_frame(&gap).is_err(), "a gap is a failure, not ignored");
    }
}
