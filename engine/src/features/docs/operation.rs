//! Plain-text operations (insert, delete at code-point positions), how they apply to a rope,
//! and their transform.
//!
//! Invariant (TP1, tested by property): for ops `a` and `b` on the same text, applying `a`
//! then `b` transformed against `a` gives the text that `b` then `a` transformed against `b`
//! gives, when exactly one side is "first" (its insert stays left where both insert at one
//! position). Lists transform op by op, never composed first.

use ropey::Rope;

/// One edit. Positions and lengths count Unicode scalar values (code points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `text` (of `chars` code points) inserted before the code point at `pos`.
    Insert {
        pos: usize,
        /// Shared: a transform moves an insert without copying its text.
        text: std::sync::Arc<str>,
        chars: usize,
    },
    /// `len` code points removed from `pos` on.
    Delete { pos: usize, len: usize },
}

/// Why an op does not apply to a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("position {pos} is past the end of the text ({len} characters)")]
    InsertOutOfRange { pos: usize, len: usize },
    #[error(
        "delete of {count} characters at {pos} runs past the end of the text ({len} characters)"
    )]
    DeleteOutOfRange {
        pos: usize,
        count: usize,
        len: usize,
    },
}

impl Op {
    pub fn insert(pos: usize, text: &str) -> Op {
        Op::Insert {
            pos,
            text: text.into(),
            chars: text.chars().count(),
        }
    }

    pub fn delete(pos: usize, len: usize) -> Op {
        Op::Delete { pos, len }
    }

    /// Code points the op adds (insert) or removes (delete).
    pub fn chars(&self) -> usize {
        match self {
            Op::Insert { chars, .. } => *chars,
            Op::Delete { len, .. } => *len,
        }
    }

    /// Bytes the op holds in memory (for budgets), about.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Op>()
            + match self {
                Op::Insert { text, .. } => text.len(),
                Op::Delete { .. } => 0,
            }
    }

    /// Whether the op changes nothing (an empty insert or delete).
    pub fn is_noop(&self) -> bool {
        self.chars() == 0
    }

    /// Applies the op to `text`, or changes nothing and says why not.
    pub fn apply(&self, text: &mut Rope) -> Result<(), OpError> {
        let len = text.len_chars();
        match self {
            Op::Insert { pos, text: t, .. } => {
                if *pos > len {
                    return Err(OpError::InsertOutOfRange { pos: *pos, len });
                }
                text.insert(*pos, t);
            }
            Op::Delete { pos, len: count } => {
                if pos.checked_add(*count).is_none_or(|end| end > len) {
                    let (pos, count) = (*pos, *count);
                    return Err(OpError::DeleteOutOfRange { pos, count, len });
                }
                text.remove(*pos..*pos + *count);
            }
        }
        Ok(())
    }
}

/// `op` made to apply after `applied`, both written against the same text. `applied_first`:
/// where both insert at one position, `applied`'s text stays left (the server's order).
/// A delete split by an insert inside its range becomes two deletes; a delete wholly inside
/// another becomes nothing.
pub fn transform(op: &Op, applied: &Op, applied_first: bool) -> Vec<Op> {
    match (op, applied) {
        (
            Op::Insert { pos, text, chars },
            Op::Insert {
                pos: q, chars: m, ..
            },
        ) => {
            let shift = *q < *pos || (*q == *pos && applied_first);
            let pos = if shift { pos + m } else { *pos };
            vec![Op::Insert {
                pos,
                text: text.clone(),
                chars: *chars,
            }]
        }
        (Op::Insert { pos, text, chars }, Op::Delete { pos: q, len: l }) => {
            let pos = if *pos <= *q {
                *pos
            } else if *pos >= q + l {
                pos - l
            } else {
                *q
            };
            vec![Op::Insert {
                pos,
                text: text.clone(),
                chars: *chars,
            }]
        }
        (
            Op::Delete { pos, len },
            Op::Insert {
                pos: q, chars: m, ..
            },
        ) => {
            let (p, l, q, m) = (*pos, *len, *q, *m);
            if q <= p {
                vec![Op::delete(p + m, l)]
            } else if q >= p + l {
                vec![Op::delete(p, l)]
            } else {
                vec![Op::delete(p, q - p), Op::delete(p + m, l - (q - p))]
            }
        }
        (Op::Delete { pos, len }, Op::Delete { pos: q, len: k }) => {
            let (p, l, q, k) = (*pos, *len, *q, *k);
            if p + l <= q {
                vec![Op::delete(p, l)]
            } else if q + k <= p {
                vec![Op::delete(p - k, l)]
            } else {
                let overlap = (p + l).min(q + k) - p.max(q);
                let left = l - overlap;
                if left == 0 {
                    vec![]
                } else {
                    vec![Op::delete(p.min(q), left)]
                }
            }
        }
    }
}

/// Transforms the lists `xs` and `ys` (each applied in order, both written against the same
/// text) against each other: `(xs', ys')`, where `xs'` applies after `ys` and `ys'` after
/// `xs`. `ys_first`: `ys` wins insert ties. Loops over the lists; it recurses only where a
/// delete splits, so its depth stays a few calls whatever the lengths.
pub fn transform_lists(xs: Vec<Op>, ys: Vec<Op>, ys_first: bool) -> (Vec<Op>, Vec<Op>) {
    if xs.is_empty() || ys.is_empty() {
        return (xs, ys);
    }
    if xs.len() == 1 && ys.len() == 1 {
        let (x, y) = (&xs[0], &ys[0]);
        return (transform(x, y, ys_first), transform(y, x, !ys_first));
    }
    if xs.len() > 1 {
        let mut ys = ys;
        let mut out = Vec::with_capacity(xs.len());
        for x in xs {
            let (x, rest) = transform_lists(vec![x], ys, ys_first);
            out.extend(x);
            ys = rest;
        }
        return (out, ys);
    }
    let mut xs = xs;
    let mut out = Vec::with_capacity(ys.len());
    for y in ys {
        let (rest, y) = transform_lists(xs, vec![y], ys_first);
        xs = rest;
        out.extend(y);
    }
    (xs, out)
}

/// `ops` made to apply after `applied` (the server's order: `applied` was first). One op
/// needs only its own side of each pair; a list (or an op a delete split) also moves the rest
/// of `applied` past its ops, with `transform_lists`.
pub fn transform_against(ops: Vec<Op>, applied: &[Op]) -> Vec<Op> {
    let mut xs = ops;
    for (i, y) in applied.iter().enumerate() {
        match xs.len() {
            0 => break,
            1 => xs = transform(&xs[0], y, true),
            _ => return transform_lists(xs, applied[i..].to_vec(), true).0,
        }
    }
    xs
}

/// A caret at `pos` moved through `op`: it stays before the same character (an insert at the
/// caret pushes it right; a delete around it moves it to the delete's start).
pub fn transform_position(pos: usize, op: &Op) -> usize {
    match op {
        Op::Insert { pos: q, chars, .. } => {
            if *q <= pos {
                pos + chars
            } else {
                pos
            }
        }
        Op::Delete { pos: q, len } => {
            if pos <= *q {
                pos
            } else if pos >= q + len {
                pos - len
            } else {
                *q
            }
        }
    }
}
