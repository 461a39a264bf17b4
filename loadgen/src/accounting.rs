//! Exact delivery accounting for one (receiver, publisher) pair: unique messages, duplicates,
//! late (out-of-order) arrivals and gaps.
//!
//! Invariant: `unique` counts each sequence number at most once, as long as at most
//! [`MISSING_TRACKED_MAX`] gaps are open; past that, late arrivals count as duplicates and
//! `overflowed` says so.

/// Open gaps remembered per pair: enough for any reordering a real relay produces.
pub const MISSING_TRACKED_MAX: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct Pair {
    next: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    missing: Vec<u64>,
    pub overflowed: bool,
}

impl Pair {
    /// Takes one received sequence number.
    pub fn on(&mut self, seq: u64) {
        if seq == self.next {
            self.next += 1;
            self.unique += 1;
        } else if seq > self.next {
            let room = MISSING_TRACKED_MAX - self.missing.len();
            let gap = seq - self.next;
            if gap as usize > room {
                self.overflowed = true;
            }
            self.missing
                .extend(self.next..self.next + gap.min(room as u64));
            self.next = seq + 1;
            self.unique += 1;
        } else if let Some(pos) = self.missing.iter().position(|&m| m == seq) {
            self.missing.swap_remove(pos);
            self.unique += 1;
            self.out_of_order += 1;
        } else {
            self.duplicates += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_gaps_late_and_duplicates() {
        let mut p = Pair::default();
        for s in [0, 1, 2] {
            p.on(s);
        }
        assert_eq!(p.unique, 3);
        p.on(5); // 3 and 4 missing
        p.on(3); // late
        p.on(3); // duplicate
        p.on(1); // duplicate
        assert_eq!((p.unique, p.out_of_order, p.duplicates), (5, 1, 2));
        p.on(4);
        p.on(6);
        assert_eq!((p.unique, p.out_of_order, p.duplicates), (7, 2, 2));
        assert!(!p.overflowed);
    }

    #[test]
    fn huge_gaps_are_bounded() {
        let mut p = Pair::default();
        p.on(1_000_000);
        assert!(p.overflowed);
        assert_eq!(p.unique, 1);
    }
}
