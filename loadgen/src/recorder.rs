//! Latency and throughput recording for one core, merged into the run's figures at the end.
//!
//! Invariant: latency is measured from each message's intended send time (open loop), so a
//! stalled server shows as latency, not as missing samples; only messages intended inside the
//! measurement window are recorded.

use hdrhistogram::Histogram;

/// Highest latency recorded, in µs (an hour): anything later is clamped.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
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

    /// A message meant for `intended_ns` arrived at `now_ns`.
    pub fn on_received(&mut self, intended_ns: u64, now_ns: u64) {
        self.received_total += 1;
        let us = (now_ns.saturating_sub(intended_ns) / 1000).clamp(1, LATENCY_US_MAX);
        if self.in_window(intended_ns) {
            self.received_in_window += 1;
            self.latency.record(us).expect("clamped");
        }
        let s = self.second(now_ns);
        s.received += 1;
        s.latency.record(us).expect("clamped");
    }

    /// The p99 (µs) of the last complete second, if any second has completed.
    pub fn completed_second_p99(&self) -> Option<u64> {
        let n = self.timeline.len();
        let s = self.timeline.get(n.checked_sub(2)?)?;
        (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(0.99))
    }

    /// Adds another core's figures.
    pub fn merge(&mut self, other: &Recorder) {
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
        assert_eq!(a.received_in_window, 1);
        assert_eq!(a.latency.len(), 1);
        assert!((a.latency.value_at_quantile(0.5) as i64 - 2000).abs() < 10);
        let mut b = Recorder::new(0, s, 3 * s);
        b.on_received(2 * s, 2 * s + 200_000_000); // a 200 ms stall
        a.merge(&b);
        assert_eq!(a.received_total, 3);
        assert!(a.latency.max() >= 199_000);
        assert_eq!(a.timeline.len(), 3);
    }
}
