//! Property tests of the transform (TP1 for ops and lists, lists step by step, carets follow
//! the text) and a simulation of editors with the usual client discipline against one
//! [`Document`], with random interleavings, reconnects and duplicate resubmits.

use proptest::prelude::*;
use ropey::Rope;

use super::document::{Author, Document, Outcome, Submit};
use super::operation::{transform, transform_against, transform_lists, transform_position, Op};

const ALPHABET: &[char] = &['a', 'b', 'c', ' ', '\n', 'é', '中', '😀', '\u{301}'];

fn text_of(seed: &[u8]) -> String {
    seed.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()])
        .collect()
}

/// Raw randomness for one op: turned into a valid op for a given length by [`op_for`].
type RawOp = (bool, usize, usize, Vec<u8>);

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        any::<bool>(),
        any::<usize>(),
        any::<usize>(),
        proptest::collection::vec(any::<u8>(), 1..4),
    )
}

/// A valid op on a text of `len` code points, chosen by `raw`.
fn op_for(len: usize, raw: &RawOp) -> Op {
    let (insert, a, b, t) = raw;
    if *insert || len == 0 {
        Op::insert(a % (len + 1), &text_of(t))
    } else {
        let pos = a % len;
        Op::delete(pos, 1 + b % (len - pos))
    }
}

/// A list of ops, each valid after the ones before it, on `text`.
fn ops_for(text: &Rope, raws: &[RawOp]) -> Vec<Op> {
    let mut t = text.clone();
    raws.iter()
        .map(|raw| {
            let op = op_for(t.len_chars(), raw);
            op.apply(&mut t).unwrap();
            op
        })
        .collect()
}

fn applied(text: &Rope, ops: &[Op]) -> String {
    let mut t = text.clone();
    for op in ops {
        op.apply(&mut t).expect("a transformed op applies");
    }
    t.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn tp1_holds_for_single_ops(seed in proptest::collection::vec(any::<u8>(), 0..16), ra in raw_op(), rb in raw_op()) {
        let s = Rope::from_str(&text_of(&seed));
        let (a, b) = (op_for(s.len_chars(), &ra), op_for(s.len_chars(), &rb));
        let left = applied(&s, &[vec![a.clone()], transform(&b, &a, true)].concat());
        let right = applied(&s, &[vec![b.clone()], transform(&a, &b, false)].concat());
        prop_assert_eq!(left, right, "a={:?} b={:?}", a, b);
    }

    #[test]
    fn tp1_holds_for_lists(
        seed in proptest::collection::vec(any::<u8>(), 0..16),
        ra in proptest::collection::vec(raw_op(), 0..6),
        rb in proptest::collection::vec(raw_op(), 0..6),
    ) {
        let s = Rope::from_str(&text_of(&seed));
        let (xs, ys) = (ops_for(&s, &ra), ops_for(&s, &rb));
        let (xs2, ys2) = transform_lists(xs.clone(), ys.clone(), true);
        let left = applied(&s, &[ys.clone(), xs2].concat());
        let right = applied(&s, &[xs.clone(), ys2].concat());
        prop_assert_eq!(left, right, "xs={:?} ys={:?}", xs, ys);
    }

    #[test]
    fn transforming_against_a_list_equals_step_by_step(
        seed in proptest::collection::vec(any::<u8>(), 0..16),
        rx in proptest::collection::vec(raw_op(), 1..4),
        ra in proptest::collection::vec(raw_op(), 0..5),
        rb in proptest::collection::vec(raw_op(), 0..5),
    ) {
        let s = Rope::from_str(&text_of(&seed));
        let x = ops_for(&s, &rx);
        let a = ops_for(&s, &ra);
        let after_a = Rope::from_str(&applied(&s, &a));
        let b = ops_for(&after_a, &rb);
        let at_once = transform_against(x.clone(), &[a.clone(), b.clone()].concat());
        let stepwise = transform_against(transform_against(x, &a), &b);
        let ab = [a, b].concat();
        prop_assert_eq!(
            applied(&s, &[ab.clone(), at_once].concat()),
            applied(&s, &[ab, stepwise].concat())
        );
    }

    #[test]
    fn a_caret_stays_on_its_character(seed in proptest::collection::vec(any::<u8>(), 1..16), at in any::<usize>(), r in raw_op()) {
        let s = Rope::from_str(&text_of(&seed));
        let pos = at % s.len_chars();
        let op = op_for(s.len_chars(), &r);
        let deleted = matches!(op, Op::Delete { pos: q, len } if (q..q + len).contains(&pos));
        let after = Rope::from_str(&applied(&s, std::slice::from_ref(&op)));
        let moved = transform_position(pos, &op);
        prop_assert!(moved <= after.len_chars());
        if !deleted {
            prop_assert_eq!(after.char(moved), s.char(pos), "op={:?} pos={}", op, pos);
        }
    }
}

// ----- the simulation --------------------------------------------------------------------

/// A small deterministic generator (xorshift64*), so every seed replays (the harness
/// simulation in `tests.rs` uses it too).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the server sends an editor: its own change's ack, or another's change.
#[derive(Clone)]
enum Down {
    Ack { seq: u64, version: u64 },
    Change { version: u64, ops: Vec<Op> },
}

/// A change on its way to the server.
#[derive(Clone)]
struct Up {
    client: usize,
    base: u64,
    seq: u64,
    ops: Vec<Op>,
}

/// An editor with the usual discipline: one change in flight, the rest pending, incoming
/// changes transformed against both.
struct Editor {
    text: Rope,
    version: u64,
    inflight: Option<(u64, Vec<Op>)>,
    pending: Vec<Op>,
    seq: u64,
    inbox: Vec<Down>,
}

impl Editor {
    fn edit(&mut self, rng: &mut Rng) {
        let raw = (
            rng.below(3) > 0,
            rng.next() as usize,
            rng.next() as usize,
            vec![rng.next() as u8],
        );
        let op = op_for(self.text.len_chars(), &raw);
        op.apply(&mut self.text).unwrap();
        self.pending.push(op);
    }

    /// The next change to send, when none is in flight.
    fn flush(&mut self, id: usize) -> Option<Up> {
        if self.inflight.is_some() || self.pending.is_empty() {
            return None;
        }
        self.seq += 1;
        let ops = std::mem::take(&mut self.pending);
        self.inflight = Some((self.seq, ops.clone()));
        Some(Up {
            client: id,
            base: self.version,
            seq: self.seq,
            ops,
        })
    }

    /// The change in flight again (after a reconnect), from the same base and seq.
    fn resubmit(&self, id: usize, base: u64) -> Option<Up> {
        let (seq, ops) = self.inflight.clone()?;
        Some(Up {
            client: id,
            base,
            seq,
            ops,
        })
    }

    fn receive(&mut self, down: Down) {
        match down {
            Down::Ack { seq, version } => {
                if self.inflight.as_ref().is_some_and(|(s, _)| *s == seq) {
                    self.inflight = None;
                    self.version = version;
                }
            }
            Down::Change { version, ops } => {
                assert_eq!(version, self.version + 1, "changes arrive in order");
                let mut ops = ops;
                if let Some((seq, mine)) = self.inflight.take() {
                    let (mine, theirs) = transform_lists(mine, ops, true);
                    self.inflight = Some((seq, mine));
                    ops = theirs;
                }
                let (pending, theirs) =
                    transform_lists(std::mem::take(&mut self.pending), ops, true);
                self.pending = pending;
                for op in &theirs {
                    op.apply(&mut self.text).unwrap();
                }
                self.version = version;
            }
        }
    }
}

fn author() -> Author {
    crate::identity::User::new("u", "u")
}

/// The server: applies a change and fans it out (its ack to the author, the ops to the rest).
fn serve(doc: &mut Document, up: &Up, editors: &mut [Editor]) {
    let client = format!("c{}", up.client);
    let outcome = doc
        .submit(Submit {
            base: Some(up.base),
            ops: up.ops.clone(),
            client: Some((&client, up.seq)),
            author: author(),
        })
        .expect("a disciplined editor's change applies");
    match outcome {
        Outcome::Applied { version, ops, .. } => {
            for (i, e) in editors.iter_mut().enumerate() {
                let down = if i == up.client {
                    Down::Ack {
                        seq: up.seq,
                        version,
                    }
                } else {
                    Down::Change {
                        version,
                        ops: ops.to_vec(),
                    }
                };
                e.inbox.push(down);
            }
        }
        Outcome::Duplicate { version } => editors[up.client].inbox.push(Down::Ack {
            seq: up.seq,
            version,
        }),
    }
}

/// A simulated world: the server's document, the editors and the changes on the wire.
struct World {
    doc: Document,
    editors: Vec<Editor>,
    wire: Vec<Up>,
    /// Changes the editors made (each flush is a new one).
    made: u64,
}

impl World {
    fn step(&mut self, rng: &mut Rng) {
        let i = rng.below(self.editors.len());
        match rng.below(10) {
            0..=3 => self.editors[i].edit(rng),
            4 | 5 => {
                let up = self.editors[i].flush(i);
                self.made += up.is_some() as u64;
                self.wire.extend(up);
            }
            6 | 7 if !self.wire.is_empty() => {
                // The server takes the oldest change of some editor (per-editor order kept).
                let who = self.wire[rng.below(self.wire.len())].client;
                let at = self.wire.iter().position(|u| u.client == who).unwrap();
                let up = self.wire.remove(at);
                serve(&mut self.doc, &up, &mut self.editors);
            }
            8 if !self.editors[i].inbox.is_empty() => {
                let down = self.editors[i].inbox.remove(0);
                self.editors[i].receive(down);
            }
            9 => self.reconnect(i, rng),
            _ => {}
        }
    }

    /// A reconnect: what was on the wire may be lost or duplicated; the editor catches up
    /// and resubmits its change in flight (sometimes twice).
    fn reconnect(&mut self, i: usize, rng: &mut Rng) {
        if rng.below(2) == 0 {
            self.wire.retain(|u| u.client != i);
        }
        let e = &mut self.editors[i];
        let inbox = std::mem::take(&mut e.inbox);
        inbox.into_iter().for_each(|d| e.receive(d));
        let base = e.version;
        for _ in 0..1 + rng.below(2) {
            self.wire.extend(e.resubmit(i, base));
        }
    }

    /// Delivers everything and flushes everything until nothing moves.
    fn drain(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.editors.len() {
                busy |= self.settle_editor(i);
            }
            while !self.wire.is_empty() {
                let up = self.wire.remove(0);
                serve(&mut self.doc, &up, &mut self.editors);
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    fn settle_editor(&mut self, i: usize) -> bool {
        let mut busy = false;
        let e = &mut self.editors[i];
        while !e.inbox.is_empty() {
            let down = e.inbox.remove(0);
            e.receive(down);
            busy = true;
        }
        if e.inflight.is_some() && !self.wire.iter().any(|u| u.client == i) {
            // Its change was lost with a connection: the reconnect resubmits it.
            let base = e.version;
            self.wire.extend(e.resubmit(i, base));
            busy = true;
        }
        if let Some(up) = e.flush(i) {
            self.made += 1;
            self.wire.push(up);
            busy = true;
        }
        busy
    }
}

/// One run: `n` editors, random steps. Returns the server's text, each editor's once all is
/// delivered, the changes the server applied and the changes the editors made.
fn simulate(seed: u64, n: usize, steps: usize) -> (String, Vec<String>, u64, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let editors = (0..n)
        .map(|_| Editor {
            text: Rope::new(),
            version: 0,
            inflight: None,
            pending: vec![],
            seq: 0,
            inbox: vec![],
        })
        .collect();
    let mut w = World {
        doc: Document::new(),
        editors,
        wire: Vec::new(),
        made: 0,
    };
    for _ in 0..steps {
        w.step(&mut rng);
    }
    w.drain();
    let server = w.doc.text().to_string();
    let texts = w.editors.iter().map(|e| e.text.to_string()).collect();
    (server, texts, w.doc.version(), w.made)
}

#[test]
fn editors_converge_on_the_servers_text_and_no_change_applies_twice() {
    for seed in 0..3000 {
        let (server, texts, applied, made) = simulate(seed, 2 + (seed % 4) as usize, 120);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(t, &server, "seed {seed}: editor {i} diverged");
        }
        assert_eq!(applied, made, "seed {seed}: each change applied once");
    }
}
