//! One shared plain-text document on its owner shard: the text, its version, the changes
//! kept for transform, and the last change of each editing client (for idempotent resubmits).
//!
//! Invariants: `version` counts the changes applied; `kept` holds the changes of versions
//! `version - kept.len() + 1 ..= version`, oldest first, within [`OPS_KEPT_MAX`] and
//! [`OPS_KEPT_BYTES_MAX`]; a change applies whole or not at all; a `(client, seq)` applies at
//! most once while the client is remembered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ropey::Rope;

use crate::identity::User;

use super::limits::{
    CHANGE_OVERHEAD_BYTES, DOC_BYTES_MAX, DOC_CLIENTS_MAX, INSERT_BYTES_MAX, OPS_KEPT_BYTES_MAX,
    OPS_KEPT_MAX, OPS_PER_CHANGE_MAX, TRANSFORMED_OPS_MAX, TRANSFORM_PAIRS_MAX,
};
use super::operation::{transform_against, Op, OpError};

/// Why a change was refused (nothing of it applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("op {index}: {source}")]
    InvalidOp { index: usize, source: OpError },
    #[error("op {index} changes nothing (an empty insert or a delete of 0 characters)")]
    EmptyOp { index: usize },
    #[error("a change holds at most {max} ops, this one {count}")]
    TooManyOps { count: usize, max: usize },
    #[error("an insert holds at most {max} bytes, op {index} {size}")]
    InsertTooLarge {
        index: usize,
        size: usize,
        max: usize,
    },
    #[error("the document would be {size} bytes as JSON, over its limit of {max}")]
    DocTooLarge { size: usize, max: usize },
    #[error("version {version} is older than the oldest change kept (based on {oldest}); resync with doc:sync")]
    VersionTooOld { version: u64, oldest: u64 },
    #[error("version {version} is ahead of the document's ({current})")]
    InvalidVersion { version: u64, current: u64 },
    #[error("version {version} is too far behind to transform ({work} op pairs, at most {max}); resync with doc:sync")]
    TooFarBehind {
        version: u64,
        work: usize,
        max: usize,
    },
}

/// Who made a change (shown to the others).
pub type Author = Arc<User>;

/// An applied change: the version it made and its ops as applied.
#[derive(Debug, Clone)]
pub struct Change {
    pub version: u64,
    pub ops: Arc<[Op]>,
    pub author: Author,
    /// The `(client, seq)` it came with, if any.
    pub origin: Option<(Arc<str>, u64)>,
    bytes: usize,
}

/// What a submitted change did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Applied as version `version`, with `ops` as transformed; `pairs`: the op pairs its
    /// transform took (the work its author is charged for).
    Applied {
        version: u64,
        ops: Arc<[Op]>,
        pairs: usize,
    },
    /// Already applied (a resubmit): its version, when it is still known.
    Duplicate { version: u64 },
}

/// A change as submitted.
pub struct Submit<'a> {
    /// The version the ops are based on; `None`: the current one (no transform).
    pub base: Option<u64>,
    pub ops: Vec<Op>,
    pub client: Option<(&'a str, u64)>,
    pub author: Author,
}

pub struct Document {
    text: Rope,
    /// The text's length as a JSON string's content (escapes counted): what `doc:state`
    /// carries, held within `max_bytes`.
    json_bytes: usize,
    max_bytes: usize,
    version: u64,
    kept: VecDeque<Change>,
    kept_bytes: usize,
    /// client id -> (last seq applied, its version).
    clients: HashMap<Arc<str>, (u64, u64)>,
}

impl Default for Document {
    fn default() -> Self {
        Document::with_max(DOC_BYTES_MAX)
    }
}

/// Bytes `c` takes inside a JSON string (as `protocol::json::push_str` writes it).
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf8(),
    }
}

impl Document {
    pub fn new() -> Document {
        Document::default()
    }

    /// An empty document whose text may take `max_bytes` as JSON.
    pub fn with_max(max_bytes: usize) -> Document {
        Document {
            text: Rope::new(),
            json_bytes: 0,
            max_bytes,
            version: 0,
            kept: VecDeque::new(),
            kept_bytes: 0,
            clients: HashMap::new(),
        }
    }

    /// The text's length as JSON string content.
    pub fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn text(&self) -> &Rope {
        &self.text
    }

    /// Bytes of text, kept changes and remembered clients (for the shard's budget).
    pub fn bytes(&self) -> usize {
        let clients: usize = self.clients.keys().map(|c| c.len() + 32).sum();
        self.json_bytes + self.kept_bytes + clients
    }

    /// Whether `(client, seq)` was applied already (its resubmit changes nothing).
    pub fn is_duplicate(&self, client: Option<(&str, u64)>) -> bool {
        client.is_some_and(|(c, seq)| self.applied(c, seq).is_some())
    }

    /// The oldest version a change may be based on (and a sync may start from).
    pub fn oldest_base(&self) -> u64 {
        self.version - self.kept.len() as u64
    }

    /// The changes after `version`, oldest first; `None` when they are no longer kept.
    pub fn changes_since(&self, version: u64) -> Option<impl Iterator<Item = &Change> + Clone> {
        if version < self.oldest_base() || version > self.version {
            return None;
        }
        let skip = (version - self.oldest_base()) as usize;
        Some(self.kept.iter().skip(skip))
    }

    /// Transforms `s.ops` against every change since `s.base` and applies them, whole or
    /// not at all.
    pub fn submit(&mut self, s: Submit<'_>) -> Result<Outcome, ChangeError> {
        if let Some(version) = s.client.and_then(|(c, seq)| self.applied(c, seq)) {
            return Ok(Outcome::Duplicate { version });
        }
        check_shape(&s.ops)?;
        let base = s.base.unwrap_or(self.version);
        let (ops, pairs) = self.transformed(base, s.ops)?;
        check_ranges(&ops, self.text.len_chars())?;
        let inserted: usize = ops.iter().map(inserted_json).sum();
        if self.json_bytes + inserted <= self.max_bytes {
            // It fits even if nothing is deleted, and every op is in range: apply in place,
            // without the copy a rollback would need.
            self.json_bytes = apply_all(&mut self.text, &ops, self.json_bytes);
        } else {
            let mut text = self.text.clone();
            let json = apply_all(&mut text, &ops, self.json_bytes);
            if json > self.max_bytes {
                let max = self.max_bytes;
                return Err(ChangeError::DocTooLarge { size: json, max });
            }
            self.text = text;
            self.json_bytes = json;
        }
        self.version += 1;
        let ops: Arc<[Op]> = ops.into();
        let origin = s.client.map(|(c, seq)| (Arc::<str>::from(c), seq));
        if let Some((client, seq)) = &origin {
            self.remember(client.clone(), *seq);
        }
        self.keep(Change {
            version: self.version,
            ops: ops.clone(),
            author: s.author,
            origin,
            bytes: CHANGE_OVERHEAD_BYTES
                + ops.iter().map(Op::bytes).sum::<usize>()
                + s.client.map_or(0, |(c, _)| c.len()),
        });
        Ok(Outcome::Applied {
            version: self.version,
            ops,
            pairs,
        })
    }

    /// The version `(client, seq)` made, if that change (or a later one of the client's) was
    /// applied: a later one means this one was too (a client's seqs only grow).
    fn applied(&self, client: &str, seq: u64) -> Option<u64> {
        let &(last, version) = self.clients.get(client)?;
        if seq > last {
            return None;
        }
        if seq == last {
            return Some(version);
        }
        let found = self.kept.iter().rev().find(|c| {
            c.origin
                .as_ref()
                .is_some_and(|(id, s)| &**id == client && *s == seq)
        });
        Some(found.map_or(version, |c| c.version))
    }

    /// `ops` (based on `base`) transformed against every op applied since, and the op pairs
    /// that took.
    fn transformed(&self, base: u64, ops: Vec<Op>) -> Result<(Vec<Op>, usize), ChangeError> {
        if base > self.version {
            let current = self.version;
            return Err(ChangeError::InvalidVersion {
                version: base,
                current,
            });
        }
        let Some(since) = self.changes_since(base) else {
            let oldest = self.oldest_base();
            return Err(ChangeError::VersionTooOld {
                version: base,
                oldest,
            });
        };
        let applied: usize = since.clone().map(|c| c.ops.len()).sum();
        let work = ops.len().saturating_mul(applied);
        if work > TRANSFORM_PAIRS_MAX {
            let max = TRANSFORM_PAIRS_MAX;
            return Err(ChangeError::TooFarBehind {
                version: base,
                work,
                max,
            });
        }
        // Change by change, without a copy of their ops: the same as against them all at once
        // (`ot_tests`: transforming against a composed list equals step by step).
        let ops = since.fold(ops, |ops, c| transform_against(ops, &c.ops));
        if ops.len() > TRANSFORMED_OPS_MAX {
            let (work, max) = (ops.len(), TRANSFORMED_OPS_MAX);
            return Err(ChangeError::TooFarBehind {
                version: base,
                work,
                max,
            });
        }
        Ok((ops, work))
    }

    fn remember(&mut self, client: Arc<str>, seq: u64) {
        if !self.clients.contains_key(&client) && self.clients.len() >= DOC_CLIENTS_MAX {
            // The client whose last change is the oldest is forgotten.
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, (_, v))| *v)
                .map(|(c, _)| c.clone());
            if let Some(c) = oldest {
                self.clients.remove(&c);
            }
        }
        self.clients.insert(client, (seq, self.version));
    }

    fn keep(&mut self, change: Change) {
        self.kept_bytes += change.bytes;
        self.kept.push_back(change);
        while self.kept.len() > OPS_KEPT_MAX || self.kept_bytes > OPS_KEPT_BYTES_MAX {
            let Some(gone) = self.kept.pop_front() else {
                break;
            };
            self.kept_bytes -= gone.bytes;
        }
    }
}

/// Every op of `ops` in range of the text it applies to (`len` code points at first).
fn check_ranges(ops: &[Op], mut len: usize) -> Result<(), ChangeError> {
    for (index, op) in ops.iter().enumerate() {
        match op {
            Op::Insert { pos, chars, .. } if *pos <= len => len += chars,
            Op::Delete { pos, len: count } if pos + count <= len => len -= count,
            _ => {
                let source = match op {
                    Op::Insert { pos, .. } => OpError::InsertOutOfRange { pos: *pos, len },
                    Op::Delete { pos, len: count } => OpError::DeleteOutOfRange {
                        pos: *pos,
                        count: *count,
                        len,
                    },
                };
                return Err(ChangeError::InvalidOp { index, source });
            }
        }
    }
    Ok(())
}

/// Bytes an op's inserted text takes as JSON string content.
fn inserted_json(op: &Op) -> usize {
    match op {
        Op::Insert { text, .. } => text.chars().map(json_len).sum(),
        Op::Delete { .. } => 0,
    }
}

/// Applies `ops` (checked in range) to `text`; returns the text's new JSON size.
fn apply_all(text: &mut Rope, ops: &[Op], mut json: usize) -> usize {
    for op in ops {
        if let Op::Delete { pos, len } = op {
            json -= text
                .slice(*pos..pos + len)
                .chars()
                .map(json_len)
                .sum::<usize>();
        }
        op.apply(text).expect("checked in range");
        json += inserted_json(op);
    }
    json
}

fn check_shape(ops: &[Op]) -> Result<(), ChangeError> {
    // An empty change is accepted: a change in flight can transform to nothing, and its
    // resubmit must still be answered.
    if ops.len() > OPS_PER_CHANGE_MAX {
        let count = ops.len();
        return Err(ChangeError::TooManyOps {
            count,
            max: OPS_PER_CHANGE_MAX,
        });
    }
    for (index, op) in ops.iter().enumerate() {
        // No text holds more code points than DOC_BYTES_MAX: refusing larger numbers here
        // keeps every sum in the transform far from overflow.
        let (pos, count) = match op {
            Op::Insert { pos, .. } => (*pos, 0),
            Op::Delete { pos, len } => (*pos, *len),
        };
        if pos > DOC_BYTES_MAX || count > DOC_BYTES_MAX {
            let len = DOC_BYTES_MAX;
            let source = OpError::DeleteOutOfRange { pos, count, len };
            return Err(ChangeError::InvalidOp { index, source });
        }
        if op.is_noop() {
            return Err(ChangeError::EmptyOp { index });
        }
        if let Op::Insert { text, .. } = op {
            if text.len() > INSERT_BYTES_MAX {
                let size = text.len();
                return Err(ChangeError::InsertTooLarge {
                    index,
                    size,
                    max: INSERT_BYTES_MAX,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Author {
        User::new("alice", "alice")
    }

    fn submit(
        d: &mut Document,
        base: Option<u64>,
        ops: Vec<Op>,
        client: Option<(&str, u64)>,
    ) -> Result<Outcome, ChangeError> {
        d.submit(Submit {
            base,
            ops,
            client,
            author: author(),
        })
    }

    #[test]
    fn concurrent_changes_are_transformed_and_the_first_insert_stays_left() {
        let mut d = Document::new();
        submit(&mut d, Some(0), vec![Op::insert(0, "héllo")], None).unwrap();
        // Two editors at version 1 insert at the same place: the first applied stays left.
        submit(&mut d, Some(1), vec![Op::insert(5, " A")], None).unwrap();
        let Outcome::Applied { version, ops, .. } =
            submit(&mut d, Some(1), vec![Op::insert(5, " B")], None).unwrap()
        else {
            panic!("applied")
        };
        assert_eq!(version, 3);
        assert_eq!(&*ops, &[Op::insert(7, " B")]);
        assert_eq!(d.text().to_string(), "héllo A B");
        // A delete based on version 1 still removes what it meant: "é".
        submit(&mut d, Some(1), vec![Op::delete(1, 1)], None).unwrap();
        assert_eq!(d.text().to_string(), "hllo A B");
    }

    #[test]
    fn a_change_applies_whole_or_not_at_all() {
        let mut d = Document::new();
        submit(&mut d, None, vec![Op::insert(0, "abc")], None).unwrap();
        let e = submit(
            &mut d,
            None,
            vec![Op::insert(3, "d"), Op::delete(2, 5)],
            None,
        );
        assert!(
            matches!(e, Err(ChangeError::InvalidOp { index: 1, .. })),
            "{e:?}"
        );
        assert_eq!(d.text().to_string(), "abc");
        assert_eq!(d.version(), 1);
        let e = submit(&mut d, None, vec![Op::insert(4, "x")], None);
        assert!(
            matches!(e, Err(ChangeError::InvalidOp { index: 0, .. })),
            "{e:?}"
        );
        let e = submit(&mut d, None, vec![Op::delete(0, 0)], None);
        assert_eq!(e.unwrap_err(), ChangeError::EmptyOp { index: 0 });
    }

    #[test]
    fn versions_ahead_or_no_longer_kept_are_refused() {
        let mut d = Document::new();
        let e = submit(&mut d, Some(1), vec![Op::insert(0, "a")], None);
        assert_eq!(
            e.unwrap_err(),
            ChangeError::InvalidVersion {
                version: 1,
                current: 0
            }
        );
        for i in 0..OPS_KEPT_MAX + 5 {
            submit(&mut d, None, vec![Op::insert(i, "a")], None).unwrap();
        }
        assert_eq!(d.oldest_base(), 5);
        let e = submit(&mut d, Some(4), vec![Op::insert(0, "a")], None);
        assert_eq!(
            e.unwrap_err(),
            ChangeError::VersionTooOld {
                version: 4,
                oldest: 5
            }
        );
        assert!(d.changes_since(4).is_none());
        assert_eq!(d.changes_since(5).unwrap().count(), OPS_KEPT_MAX);
    }

    #[test]
    fn a_resubmit_is_answered_with_its_first_version_and_not_applied_again() {
        let mut d = Document::new();
        let first = submit(&mut d, Some(0), vec![Op::insert(0, "a")], Some(("c1", 1))).unwrap();
        assert!(matches!(first, Outcome::Applied { version: 1, .. }));
        submit(&mut d, None, vec![Op::insert(0, "b")], Some(("c2", 1))).unwrap();
        submit(&mut d, Some(1), vec![Op::insert(1, "c")], Some(("c1", 2))).unwrap();
        let again = submit(&mut d, Some(0), vec![Op::insert(0, "a")], Some(("c1", 1))).unwrap();
        assert!(
            matches!(again, Outcome::Duplicate { version: 1 }),
            "{again:?}"
        );
        let again = submit(&mut d, Some(1), vec![Op::insert(1, "c")], Some(("c1", 2))).unwrap();
        assert!(
            matches!(again, Outcome::Duplicate { version: 3 }),
            "{again:?}"
        );
        assert_eq!(d.text().to_string(), "bac");
        assert_eq!(d.version(), 3);
    }

    #[test]
    fn limits_are_refused_with_their_numbers() {
        let mut d = Document::new();
        let many = vec![Op::insert(0, "a"); OPS_PER_CHANGE_MAX + 1];
        assert_eq!(
            submit(&mut d, None, many, None).unwrap_err(),
            ChangeError::TooManyOps {
                count: OPS_PER_CHANGE_MAX + 1,
                max: OPS_PER_CHANGE_MAX
            }
        );
        let big = "x".repeat(INSERT_BYTES_MAX + 1);
        let e = submit(&mut d, None, vec![Op::insert(0, &big)], None).unwrap_err();
        assert!(matches!(e, ChangeError::InsertTooLarge { .. }), "{e:?}");
        let chunk = "y".repeat(INSERT_BYTES_MAX);
        for _ in 0..DOC_BYTES_MAX / INSERT_BYTES_MAX {
            submit(&mut d, None, vec![Op::insert(0, &chunk)], None).unwrap();
        }
        let e = submit(&mut d, None, vec![Op::insert(0, "z")], None).unwrap_err();
        assert_eq!(
            e,
            ChangeError::DocTooLarge {
                size: DOC_BYTES_MAX + 1,
                max: DOC_BYTES_MAX
            }
        );
        assert!(d.kept_bytes <= OPS_KEPT_BYTES_MAX);
    }

    #[test]
    fn the_size_limit_counts_json_escapes() {
        let mut d = Document::with_max(11);
        submit(&mut d, None, vec![Op::insert(0, "a\"\n\u{1}")], None).unwrap();
        assert_eq!(d.json_bytes(), 1 + 2 + 2 + 6);
        let e = submit(&mut d, None, vec![Op::insert(0, "x")], None).unwrap_err();
        assert_eq!(e, ChangeError::DocTooLarge { size: 12, max: 11 });
        submit(&mut d, None, vec![Op::delete(1, 3)], None).unwrap();
        assert_eq!(d.json_bytes(), 1);
        assert_eq!(d.text().to_string(), "a");
    }
}

#[cfg(test)]
mod work_tests {
    use super::*;

    #[test]
    fn a_change_too_far_behind_to_transform_cheaply_is_sent_to_resync() {
        let mut d = Document::new();
        let author = User::new("a", "a");
        for i in 0..5_000 {
            let ops = vec![Op::insert(i, "x")];
            let s = Submit {
                base: None,
                ops,
                client: None,
                author: author.clone(),
            };
            d.submit(s).unwrap();
        }
        let many = vec![Op::insert(0, "y"); 256];
        let s = Submit {
            base: Some(0),
            ops: many,
            client: None,
            author: author.clone(),
        };
        let e = d.submit(s).unwrap_err();
        assert!(
            matches!(
                e,
                ChangeError::TooFarBehind {
                    work: 1_280_000,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(d.version(), 5_000, "nothing applied");
        // From a recent base the same change transforms and applies.
        let many = vec![Op::insert(0, "y"); 256];
        let s = Submit {
            base: Some(4_990),
            ops: many,
            client: None,
            author,
        };
        assert!(d.submit(s).is_ok());
    }
}
