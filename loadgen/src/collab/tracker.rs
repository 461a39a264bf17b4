//! The collab run's figures: when each change's oldest op was typed and when it was sent, when
//! every other editor had it, acks, and cursor latencies.
//!
//! Invariant: a change's op latency (from its oldest op's keystroke) is recorded once, when
//! its last other editor has it and its typing time is known (from the author's ack, which
//! may come before or after).

use std::collections::HashMap;

use foldhash::fast::FixedState;

use hdrhistogram::Histogram;
use serde_json::Value;

use super::editor::Heard;
use super::CollabReport;

#[derive(Default)]
struct Track {
    /// (typed, sent): when the change's oldest op was typed, and when the change was sent.
    submitted: Option<(u64, u64)>,
    heard: u32,
    last: u64,
}

pub struct Tracker {
    editors: usize,
    measure_from: u64,
    /// (editor, seq) -> (when its oldest op was typed, when it was sent).
    sent: HashMap<(usize, u64), (u64, u64), FixedState>,
    /// (doc, version) -> arrivals so far (a million lookups a second at 1,000 editors: a
    /// cheap hash, as the keys are the run's own).
    tracks: HashMap<(usize, u64), Track, FixedState>,
    op: Histogram<u64>,
    op_sent: Histogram<u64>,
    ack: Histogram<u64>,
    cursor: Histogram<u64>,
    /// Acks of a change another editor's ack already claimed (two Yjs deletes of one
    /// character look alike): neither is timed.
    collided: u64,
    pub changes_sent: u64,
    /// Ops in the changes sent.
    pub ops_sent: u64,
    changes_heard: u64,
    pub cursor_moves: u64,
    cursor_entries: u64,
    cursor_frames: u64,
    pub errors: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

impl Tracker {
    pub fn new(_docs: usize, editors: usize, measure_from: u64) -> Tracker {
        Tracker {
            editors,
            measure_from,
            sent: HashMap::default(),
            tracks: HashMap::default(),
            op: histogram(),
            op_sent: histogram(),
            ack: histogram(),
            cursor: histogram(),
            collided: 0,
            changes_sent: 0,
            ops_sent: 0,
            changes_heard: 0,
            cursor_moves: 0,
            cursor_entries: 0,
            cursor_frames: 0,
            errors: Vec::new(),
        }
    }

    /// Editor `editor` sent change `seq` of `ops` ops at `now`; its oldest op was typed at
    /// `typed`.
    pub fn submitted(&mut self, editor: usize, seq: u64, typed: u64, now: u64, ops: u64) {
        self.sent.insert((editor, seq), (typed, now));
        self.changes_sent += 1;
        self.ops_sent += ops;
    }

    pub fn heard(&mut self, doc: usize, editor: usize, heard: &Heard, v: Option<&Value>, now: u64) {
        match *heard {
            Heard::Ack { seq, version } => {
                let Some((typed, sent)) = self.sent.remove(&(editor, seq)) else {
                    return;
                };
                if sent >= self.measure_from {
                    self.ack.saturating_record((now - sent) / 1000);
                }
                let t = self.tracks.entry((doc, version)).or_default();
                if t.submitted.replace((typed, sent)).is_some() {
                    self.collided += 1;
                    self.tracks.remove(&(doc, version));
                    return;
                }
                self.complete(doc, version);
            }
            Heard::Change { version } => {
                self.changes_heard += 1;
                let t = self.tracks.entry((doc, version)).or_default();
                t.heard += 1;
                t.last = now;
                self.complete(doc, version);
            }
            Heard::Cursors(n) => {
                self.cursor_frames += 1;
                self.cursor_entries += n as u64;
                let now_ms = now as f64 / 1e6;
                let cursors = v.and_then(|v| v["cursors"].as_array());
                for c in cursors.into_iter().flatten() {
                    if c["y"].as_u64() == Some(editor as u64) {
                        continue; // our own
                    }
                    if let Some(x) = c["x"].as_f64() {
                        if (x * 1e6) as u64 >= self.measure_from {
                            self.cursor
                                .saturating_record(((now_ms - x) * 1000.0).max(1.0) as u64);
                        }
                    }
                }
            }
            Heard::Other => {}
        }
    }

    fn complete(&mut self, doc: usize, version: u64) {
        let others = self.editors.saturating_sub(1) as u32;
        let Some(t) = self.tracks.get(&(doc, version)) else {
            return;
        };
        if t.heard < others {
            return;
        }
        if let Some((typed, sent)) = t.submitted {
            if typed >= self.measure_from {
                let last = if others == 0 { sent } else { t.last };
                self.op.saturating_record(last.saturating_sub(typed) / 1000);
                self.op_sent
                    .saturating_record(last.saturating_sub(sent) / 1000);
            }
            self.tracks.remove(&(doc, version));
        }
    }

    /// Nothing is waiting to be heard.
    pub fn quiet(&self) -> bool {
        self.sent.is_empty() && self.tracks.is_empty()
    }

    pub fn finish(
        self,
        measured_secs: f64,
        (divergences, unsettled): (Vec<String>, Vec<String>),
    ) -> CollabReport {
        CollabReport {
            op_latency_us: self.op,
            op_sent_latency_us: self.op_sent,
            ack_latency_us: self.ack,
            cursor_latency_us: self.cursor,
            changes_sent: self.changes_sent,
            changes_heard: self.changes_heard,
            cursor_moves: self.cursor_moves,
            cursor_entries: self.cursor_entries,
            cursor_frames: self.cursor_frames,
            measured_secs,
            window_changes: 0,
            window_ops: 0,
            server_cpu_secs: None,
            divergences,
            unsettled,
            unmatched: self.tracks.len() as u64 + self.collided,
            errors: self.errors,
        }
    }
}
