//! `ot-text-unicode`, the text type loadgen's ShareDB editors speak: an op is a list of
//! components walking the document (skip n, insert a string, delete n, all in code points),
//! with the type's own transform and compose. An editor buffers as ShareDB's client does: the
//! ops typed while one is in flight are composed into one pending op.
//!
//! Invariant: every op built here is normal, as the type's `checkOp` wants it: no empty
//! component, no two adjacent components of one kind, no trailing skip.

use ropey::Rope;
use serde_json::{json, Value};

/// One component of an op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    Skip(usize),
    Insert(String),
    Delete(usize),
}

/// An op: its components, in document order.
pub type TextOp = Vec<Component>;

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn len(c: &Component) -> usize {
    match c {
        Component::Skip(n) | Component::Delete(n) => *n,
        Component::Insert(s) => chars(s),
    }
}

/// Appends `c`, merging it into the last component of its kind; empty ones are dropped.
fn append(op: &mut TextOp, c: Component) {
    if len(&c) == 0 {
        return;
    }
    match (op.last_mut(), c) {
        (Some(Component::Skip(a)), Component::Skip(b)) => *a += b,
        (Some(Component::Delete(a)), Component::Delete(b)) => *a += b,
        (Some(Component::Insert(a)), Component::Insert(b)) => a.push_str(&b),
        (_, c) => op.push(c),
    }
}

fn trim(mut op: TextOp) -> TextOp {
    if matches!(op.last(), Some(Component::Skip(_))) {
        op.pop();
    }
    op
}

/// Which components a `take` hands out whole rather than cut at `n`.
#[derive(Clone, Copy, PartialEq)]
enum Whole {
    Inserts,
    Deletes,
}

/// Reads an op's components front to back, cutting them to the lengths asked for; past its
/// end an op skips forever.
struct Take<'a> {
    op: &'a [Component],
    idx: usize,
    /// Code points of `op[idx]` already taken.
    offset: usize,
}

impl<'a> Take<'a> {
    fn new(op: &'a [Component]) -> Take<'a> {
        Take {
            op,
            idx: 0,
            offset: 0,
        }
    }

    fn peek_is_insert(&self) -> bool {
        matches!(self.op.get(self.idx), Some(Component::Insert(_)))
    }

    /// Up to `n` code points of the next component (all of it with `None`), or `None` at the
    /// end when no length was asked for.
    fn take(&mut self, n: Option<usize>, whole: Whole) -> Option<Component> {
        let Some(c) = self.op.get(self.idx) else {
            return n.map(Component::Skip);
        };
        let rest = len(c) - self.offset;
        let keep_whole = matches!(
            (c, whole),
            (Component::Insert(_), Whole::Inserts) | (Component::Delete(_), Whole::Deletes)
        );
        let cut = match n {
            Some(n) if n < rest && !keep_whole => n,
            _ => rest,
        };
        let part = match c {
            Component::Skip(_) => Component::Skip(cut),
            Component::Delete(_) => Component::Delete(cut),
            Component::Insert(s) => {
                Component::Insert(s.chars().skip(self.offset).take(cut).collect())
            }
        };
        if cut == rest {
            self.idx += 1;
            self.offset = 0;
        } else {
            self.offset += cut;
        }
        Some(part)
    }
}

/// Copies `t`'s components over the next `n` code points that the other op skips. Those that
/// take none of them come along whole and free: in a transform the first op's inserts (the
/// other op never saw them), in a compose the first op's deletes (the second never saw the
/// text).
fn pass(out: &mut TextOp, t: &mut Take<'_>, mut n: usize, whole: Whole) {
    while n > 0 {
        let c = t.take(Some(n), whole).expect("a length was asked");
        let free = matches!(
            (&c, whole),
            (Component::Insert(_), Whole::Inserts) | (Component::Delete(_), Whole::Deletes)
        );
        if !free {
            n -= len(&c);
        }
        append(out, c);
    }
}

/// `op1` transformed past `op2`, which was applied first. `left`: on a tie `op1`'s insert goes
/// first (ShareDB gives a submitted op side `left` against those it is transformed past).
pub fn transform(op1: &[Component], op2: &[Component], left: bool) -> TextOp {
    let mut out = TextOp::new();
    let mut t = Take::new(op1);
    for c2 in op2 {
        match c2 {
            Component::Skip(n) => pass(&mut out, &mut t, *n, Whole::Inserts),
            Component::Insert(s) => {
                if left && t.peek_is_insert() {
                    append(&mut out, t.take(None, Whole::Inserts).expect("an insert"));
                }
                append(&mut out, Component::Skip(chars(s)));
            }
            Component::Delete(n) => {
                let mut n = *n;
                while n > 0 {
                    match t.take(Some(n), Whole::Inserts).expect("a length was asked") {
                        c1 @ Component::Insert(_) => append(&mut out, c1),
                        // Deleted by op2 already, or op2 deletes what op1 skips.
                        Component::Skip(k) | Component::Delete(k) => n -= k,
                    }
                }
            }
        }
    }
    while let Some(c) = t.take(None, Whole::Inserts) {
        append(&mut out, c);
    }
    trim(out)
}

/// One op doing what `op1` and then `op2` do.
pub fn compose(op1: &[Component], op2: &[Component]) -> TextOp {
    let mut out = TextOp::new();
    let mut t = Take::new(op1);
    for c2 in op2 {
        match c2 {
            Component::Skip(n) => pass(&mut out, &mut t, *n, Whole::Deletes),
            Component::Insert(s) => append(&mut out, Component::Insert(s.clone())),
            Component::Delete(n) => {
                let mut n = *n;
                while n > 0 {
                    match t.take(Some(n), Whole::Deletes).expect("a length was asked") {
                        Component::Skip(k) => {
                            append(&mut out, Component::Delete(k));
                            n -= k;
                        }
                        // op2 deletes what op1 inserted: neither remains.
                        Component::Insert(s) => n -= chars(&s),
                        c1 @ Component::Delete(_) => append(&mut out, c1),
                    }
                }
            }
        }
    }
    while let Some(c) = t.take(None, Whole::Deletes) {
        append(&mut out, c);
    }
    trim(out)
}

/// Applies `op` to `text`; an op that walks past the end is refused and leaves a prefix
/// applied, which the caller treats as a failure of the run.
pub fn apply(text: &mut Rope, op: &[Component]) -> Result<(), String> {
    let mut pos = 0;
    for c in op {
        let n = len(c);
        match c {
            Component::Skip(_) if pos + n <= text.len_chars() => pos += n,
            Component::Insert(s) => {
                text.insert(pos, s);
                pos += n;
            }
            Component::Delete(_) if pos + n <= text.len_chars() => text.remove(pos..pos + n),
            _ => return Err(format!("op {op:?} past the end ({})", text.len_chars())),
        }
    }
    Ok(())
}

/// The op of one positional insert or delete.
pub fn at(pos: usize, c: Component) -> TextOp {
    let mut op = TextOp::new();
    append(&mut op, Component::Skip(pos));
    append(&mut op, c);
    trim(op)
}

pub fn to_json(op: &[Component]) -> Value {
    Value::Array(
        op.iter()
            .map(|c| match c {
                Component::Skip(n) => json!(n),
                Component::Insert(s) => json!(s),
                Component::Delete(n) => json!({ "d": n }),
            })
            .collect(),
    )
}

/// An op as ShareDB sends it: numbers, strings, and deletes by count or by text.
pub fn from_json(v: &Value) -> Result<TextOp, String> {
    let mut op = TextOp::new();
    for c in v.as_array().ok_or("op: not an array")? {
        let c = if let Some(n) = c.as_u64() {
            Component::Skip(n as usize)
        } else if let Some(s) = c.as_str() {
            Component::Insert(s.to_string())
        } else if let Some(d) = c.get("d") {
            let n = d.as_u64().map(|n| n as usize);
            Component::Delete(n.or_else(|| d.as_str().map(chars)).ok_or("bad delete")?)
        } else {
            return Err(format!("unknown component {c}"));
        };
        append(&mut op, c);
    }
    Ok(trim(op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Component::{Delete as D, Insert as I, Skip as S};

    fn s(x: &str) -> Component {
        I(x.to_string())
    }

    #[test]
    fn ties_and_overlaps_go_as_the_type_has_them() {
        // From ot-text-unicode's own cases: left's insert goes first on a tie.
        assert_eq!(transform(&[s("a")], &[s("b")], true), vec![s("a")]);
        assert_eq!(transform(&[s("a")], &[s("b")], false), vec![S(1), s("a")]);
        // A delete overlapping a delete keeps only what is left to delete.
        assert_eq!(
            transform(&[S(1), D(3)], &[S(2), D(3)], true),
            vec![S(1), D(1)]
        );
        // An insert inside a range the other deleted lands where the range was.
        assert_eq!(transform(&[S(2), s("x")], &[D(4)], true), vec![s("x")]);
        assert_eq!(compose(&[s("abc")], &[S(1), D(1)]), vec![s("ac")]);
        assert_eq!(
            compose(&[S(1), D(2)], &[s("😀")]),
            vec![s("😀"), S(1), D(2)]
        );
    }

    /// A deterministic stream of random ops over random Unicode text.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }

        fn op(&mut self, doc_len: usize) -> TextOp {
            let mut op = TextOp::new();
            let mut left = doc_len;
            while left > 0 && self.next(4) != 0 {
                let k = 1 + self.next(left.min(4));
                let c =
                    [S(k), D(k), s(["é", "ab", "😀x", "\n"][self.next(4)])][self.next(3)].clone();
                left -= if matches!(c, I(_)) { 0 } else { k };
                append(&mut op, c);
            }
            trim(op)
        }
    }

    fn applied(text: &str, ops: &[&[Component]]) -> String {
        let mut r = Rope::from_str(text);
        for op in ops {
            apply(&mut r, op).unwrap();
        }
        r.to_string()
    }

    #[test]
    fn random_ops_converge_and_compose_as_applied_in_turn() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let text: String = (0..g.next(12))
                .map(|i| ['a', 'é', '😀', ' '][i % 4])
                .collect();
            let n = chars(&text);
            let (a, b) = (g.op(n), g.op(n));
            let (a2, b2) = (transform(&a, &b, true), transform(&b, &a, false));
            assert_eq!(
                applied(&text, &[&b, &a2]),
                applied(&text, &[&a, &b2]),
                "{a:?} {b:?}"
            );
            let c = g.op(chars(&applied(&text, &[&a])));
            assert_eq!(
                applied(&text, &[&compose(&a, &c)]),
                applied(&text, &[&a, &c])
            );
            // Transforming past a composed op equals transforming past each in turn.
            let past_both = transform(&b, &compose(&a, &c), false);
            let step = transform(&transform(&b, &a, false), &c, false);
            assert_eq!(
                applied(&text, &[&a, &c, &past_both]),
                applied(&text, &[&a, &c, &step])
            );
        }
    }
}
