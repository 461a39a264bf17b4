//! Latency and throughput recording for one core, merged into the run's figures at the end.
//!
//! Invariants: latency is measured from each message's intended send time (open loop), so a
//! stalled server shows as latency, not as missing samples; only messages intended inside the
//! measurement window are recorded in the run's histogram. Receipts of one message stamped with
//! one clock reading are counted together before they reach the histograms, and every figure is
//! read only after [`Recorder::settle`].

use hdrhistogram::Histogram;

/// Highest latency recorded, in µs (an hour): anything later is clamped.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// Receipts held for counting together. A core stamps a whole slice of sockets with one clock
/// reading and, in a broadcast, finds the same message in each of them, so one histogram update
/// with a count replaces hundreds (measured: the updates were an eighth of a saturated client
/// core at 10M deliveries/s).
pub const PENDING_SLOTS: usize = 512;
const _: () = assert!(PENDING_SLOTS.is_power_of_two());

/// Receipts of one message at one clock reading, not yet in the histograms.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    intended_ns: u64,
    at_ns: u64,
    /// 0 for an empty slot.
    count: u64,
}

/// One second of the run.
#[derive(Debug, Clone)]
pub struct Second {
    pub sent: u64,
    pub received: u64,
    pub latency: Histogram<u64>,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    /// Start of sending, warm-up start, measurement start and end, in clock ns.
    pub t0: u64,
    pub window_start: u64,
    pub window_end: u64,
    pub latency: Histogram<u64>,
    pub schedule_lag: Histogram<u64>,
    pub received_in_window: u64,
    pub sent_in_window: u64,
    pub received_total: u64,
    pub sent_total: u64,
    pub timeline: Vec<Second>,
    pending: Box<[Pending]>,
}

impl Recorder {
    pub fn new(t0: u64, window_start: u64, window_end: u64) -> Self {
        Self {
            t0,
            window_start,
            window_end,
            latency: histogram(),
            schedule_lag: histogram(),
            received_in_window: 0,
            sent_in_window: 0,
            received_total: 0,
            sent_total: 0,
            timeline: Vec::new(),
            pending: vec![Pending::default(); PENDING_SLOTS].into_boxed_slice(),
        }
    }

    fn second(&mut self, at_ns: u64) -> &mut Second {
        let i = (at_ns.saturating_sub(self.t0) / 1_000_000_000) as usize;
        while self.timeline.len() <= i {
            self.timeline.push(Second {
                sent: 0,
                received: 0,
                latency: Histogram::new_with_bounds(1, LATENCY_US_MAX, 2).expect("bounds"),
            });
        }
        &mut self.timeline[i]
    }

    fn in_window(&self, intended_ns: u64) -> bool {
        intended_ns >= self.window_start && intended_ns < self.window_end
    }

    /// A message meant for `intended_ns` left at `sent_ns`.
    pub fn on_sent(&mut self, intended_ns: u64, sent_ns: u64) {
        self.sent_total += 1;
        if self.in_window(intended_ns) {
            self.sent_in_window += 1;
            let lag_us = (sent_ns.saturating_sub(intended_ns) / 1000).clamp(1, LATENCY_US_MAX);
            self.schedule_lag.record(lag_us).expect("clamped");
        }
        self.second(intended_ns).sent += 1;
    }

    /// A message meant for `intended_ns` arrived at `now_ns`. Counted in the figures at the
    /// latest by the next [`Recorder::settle`].
    pub fn on_received(&mut self, intended_ns: u64, now_ns: u64) {
        let index = (intended_ns.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            >> (64 - PENDING_SLOTS.trailing_zeros())) as usize;
        let slot = &mut self.pending[index];
        if slot.count != 0 && slot.intended_ns == intended_ns && slot.at_ns == now_ns {
            slot.count += 1;
            return;
        }
        let evicted = std::mem::replace(
            slot,
            Pending {
                intended_ns,
                at_ns: now_ns,
                count: 1,
            },
        );
        if evicted.count != 0 {
            self.record_received(evicted);
        }
    }

    /// Puts every held receipt into the figures.
    pub fn settle(&mut self) {
        for i in 0..self.pending.len() {
            let held = std::mem::take(&mut self.pending[i]);
            if held.count != 0 {
                self.record_received(held);
            }
        }
    }

    fn is_settled(&self) -> bool {
        self.pending.iter().all(|p| p.count == 0)
    }

    fn record_received(&mut self, p: Pending) {
        self.received_total += p.count;
        let us = (p.at_ns.saturating_sub(p.intended_ns) / 1000).clamp(1, LATENCY_US_MAX);
        if self.in_window(p.intended_ns) {
            self.received_in_window += p.count;
            self.latency.record_n(us, p.count).expect("clamped");
        }
        let s = self.second(p.at_ns);
        s.received += p.count;
        s.latency.record_n(us, p.count).expect("clamped");
    }

    /// The p99 (µs) of the last complete second, if any second has completed.
    pub fn completed_second_p99(&mut self) -> Option<u64> {
        self.settle();
        let n = self.timeline.len();
        let s = self.timeline.get(n.checked_sub(2)?)?;
        (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(0.99))
    }

    /// Adds another core's figures. Both must be settled.
    pub fn merge(&mut self, other: &Recorder) {
        assert!(
            self.is_settled() && other.is_settled(),
            "merging a recorder that still holds receipts"
        );
        self.latency.add(&other.latency).expect("same bounds");
        self.schedule_lag
            .add(&other.schedule_lag)
            .expect("same bounds");
        self.received_in_window += other.received_in_window;
        self.sent_in_window += other.sent_in_window;
        self.received_total += other.received_total;
        self.sent_total += other.sent_total;
        for (i, s) in other.timeline.iter().enumerate() {
            let at = self.t0 + i as u64 * 1_000_000_000;
            let mine = self.second(at);
            mine.sent += s.sent;
            mine.received += s.received;
            mine.latency.add(&s.latency).expect("same bounds");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_window_counts_and_merge_adds_up() {
        let s = 1_000_000_000;
        let mut a = Recorder::new(0, s, 3 * s);
        a.on_received(s / 2, s / 2 + 1_000_000); // warm-up: timeline only
        a.on_received(s + 10, s + 2_000_010); // 2 ms
        a.on_sent(2 * s, 2 * s + 5_000);
        a.settle();
        assert_eq!(a.received_in_window, 1);
        assert_eq!(a.latency.len(), 1);
        assert!((a.latency.value_at_quantile(0.5) as i64 - 2000).abs() < 10);
        let mut b = Recorder::new(0, s, 3 * s);
        b.on_received(2 * s, 2 * s + 200_000_000); // a 200 ms stall
        b.settle();
        a.merge(&b);
        assert_eq!(a.received_total, 3);
        assert!(a.latency.max() >= 199_000);
        assert_eq!(a.timeline.len(), 3);
    }

    #[test]
    fn receipts_counted_together_give_the_figures_of_one_by_one() {
        let s = 1_000_000_000;
        let mut held = Recorder::new(0, s, 3 * s);
        let mut reference = Recorder::new(0, s, 3 * s);
        let mut n = 0u64;
        // 3,000 messages around the window's edges, each received by 40 members at 4 stamps,
        // enough distinct (message, stamp) pairs to evict held slots all along.
        for m in 0..3_000u64 {
            let intended = s / 2 + m * 1_000_000;
            for member in 0..40u64 {
                let at = intended + 1_000_000 * (1 + member % 4) + (m % 3) * 7_777;
                held.on_received(intended, at);
                n += 1;
                reference.received_total += 1;
                let us = (at - intended) / 1000;
                if reference.in_window(intended) {
                    reference.received_in_window += 1;
                    reference.latency.record(us).unwrap();
                }
                let sec = reference.second(at);
                sec.received += 1;
                sec.latency.record(us).unwrap();
            }
        }
        held.settle();
        assert_eq!(held.received_total, n);
        assert_eq!(held.received_in_window, reference.received_in_window);
        assert_eq!(held.latency, reference.latency);
        assert_eq!(held.timeline.len(), reference.timeline.len());
        for (a, b) in held.timeline.iter().zip(&reference.timeline) {
            assert_eq!((a.received, &a.latency), (b.received, &b.latency));
        }
    }
}
