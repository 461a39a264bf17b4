//! The measurement marker carried inside each message's content:
//! `~lg~{room_pub}~{publisher}~{seq}~{intended_ns}~` followed by padding.
//!
//! Invariant: the marker uses only `~`, digits and `x`, so it survives any relay that passes the
//! content through verbatim (inside a JSON string, an envelope or a batch) and can be found by
//! a plain substring search, with no JSON parsing on the receive path.

use memchr::memmem;

/// The marker's prefix.
pub const PREFIX: &[u8] = b"~lg~";

/// One measured message as found in a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Index of the publisher among its room's publishers.
    pub room_pub: u32,
    /// Global publisher id.
    pub publisher: u32,
    /// Publisher's sequence number, from 0.
    pub seq: u64,
    /// When the message was meant to be sent, in ns since the run's clock base.
    pub intended_ns: u64,
}

/// Appends a marker for `mark` and pads the whole content to at least `size` bytes.
pub fn write(out: &mut Vec<u8>, mark: &Mark, size: usize) {
    use std::io::Write;
    let start = out.len();
    write!(
        out,
        "~lg~{}~{}~{}~{}~",
        mark.room_pub, mark.publisher, mark.seq, mark.intended_ns
    )
    .expect("writing to a Vec cannot fail");
    let written = out.len() - start;
    if written < size {
        out.resize(start + size, b'x');
    }
}

/// Markers remembered by the scanner, by their first [`KEY_BYTES`] bytes. In a broadcast every
/// member receives the same marker, so a core sees each one hundreds of times within a few
/// milliseconds: remembering the parse costs a hash and a compare instead of four digit loops
/// whose exits the branch predictor misses (measured: the parse was a quarter of a saturated
/// client core at 10M deliveries/s).
pub const CACHE_SLOTS: usize = 512;
const _: () = assert!(CACHE_SLOTS.is_power_of_two());

/// Bytes after the prefix that key a remembered marker. A marker that ends within them is
/// decided by them alone; a longer one is parsed every time.
const KEY_BYTES: usize = 32;

#[derive(Clone, Copy)]
struct Slot {
    key: [u64; 4],
    mark: Mark,
    /// Bytes of the marker after the prefix; 0 for an empty slot.
    used: u32,
}

/// Finds and parses markers. One per core: it holds the prefix finder and a cache of recently
/// parsed markers.
///
/// Invariant: a cached slot holds exactly what [`parse_fields`] returns for its key bytes, so a
/// hit gives the same mark as a parse.
pub struct Scanner {
    finder: memmem::Finder<'static>,
    slots: Box<[Slot]>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub fn new() -> Self {
        let empty = Slot {
            key: [0; 4],
            mark: Mark {
                room_pub: 0,
                publisher: 0,
                seq: 0,
                intended_ns: 0,
            },
            used: 0,
        };
        Self {
            finder: memmem::Finder::new(PREFIX),
            slots: vec![empty; CACHE_SLOTS].into_boxed_slice(),
        }
    }

    /// Calls `f` for each marker in `payload`, in order.
    pub fn scan(&mut self, payload: &[u8], mut f: impl FnMut(Mark)) {
        let mut pos = 0;
        while let Some(i) = self.finder.find(&payload[pos..]) {
            let at = pos + i + PREFIX.len();
            match self.parse(&payload[at..]) {
                Some((mark, used)) => {
                    f(mark);
                    pos = at + used;
                }
                None => pos = at,
            }
        }
    }

    /// The marker at the start of `b` (just after the prefix) and its length.
    fn parse(&mut self, b: &[u8]) -> Option<(Mark, usize)> {
        let Some(window) = b.get(..KEY_BYTES) else {
            return parse_fields(b);
        };
        let key: [u64; 4] = std::array::from_fn(|i| {
            u64::from_le_bytes(window[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        });
        let index = slot_index(key);
        let slot = &mut self.slots[index];
        if slot.used != 0 && slot.key == key {
            return Some((slot.mark, slot.used as usize));
        }
        let (mark, used) = parse_fields(b)?;
        if used <= KEY_BYTES {
            *slot = Slot {
                key,
                mark,
                used: used as u32,
            };
        }
        Some((mark, used))
    }
}

/// A slot for `key`: each word multiplied by its own odd constant, the top bits of the sum,
/// so every digit of the marker moves the index.
fn slot_index(key: [u64; 4]) -> usize {
    const ODD: [u64; 4] = [
        0x9E37_79B9_7F4A_7C15,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x85EB_CA77_C2B2_AE63,
    ];
    let mixed = (0..4).fold(0u64, |h, i| h.wrapping_add(key[i].wrapping_mul(ODD[i])));
    (mixed >> (64 - CACHE_SLOTS.trailing_zeros())) as usize
}

fn parse_fields(b: &[u8]) -> Option<(Mark, usize)> {
    let mut pos = 0;
    let mut nums = [0u64; 4];
    for n in nums.iter_mut() {
        let mut v: u64 = 0;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add((b[pos] - b'0') as u64)?;
            pos += 1;
        }
        if pos == start || pos >= b.len() || b[pos] != b'~' {
            return None;
        }
        pos += 1;
        *n = v;
    }
    Some((
        Mark {
            room_pub: u32::try_from(nums[0]).ok()?,
            publisher: u32::try_from(nums[1]).ok()?,
            seq: nums[2],
            intended_ns: nums[3],
        },
        pos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_inside_any_envelope() {
        let a = Mark {
            room_pub: 3,
            publisher: 17,
            seq: 42,
            intended_ns: 123_456_789,
        };
        let b = Mark { seq: 43, ..a };
        let mut content = Vec::new();
        write(&mut content, &a, 64);
        assert_eq!(content.len(), 64);
        let mut c2 = Vec::new();
        write(&mut c2, &b, 0);
        let frame = format!(
            r#"{{"type":"batch","messages":[{{"content":"{}"}},{{"content":"{}"}}]}}"#,
            String::from_utf8(content).unwrap(),
            String::from_utf8(c2).unwrap()
        );
        let mut scanner = Scanner::new();
        for _ in 0..3 {
            let mut found = Vec::new();
            scanner.scan(frame.as_bytes(), |m| found.push(m));
            assert_eq!(found, vec![a, b], "the cache answers as the parse does");
        }
    }

    #[test]
    fn the_cache_never_confuses_markers_that_share_their_first_bytes() {
        // Long markers (past the key) and short ones that differ in one late digit, mixed with
        // enough distinct markers to evict slots: every scan must find exactly what was written.
        let mut marks = Vec::new();
        for i in 0..2_000u64 {
            marks.push(Mark {
                room_pub: (i % 7) as u32,
                publisher: (i % 13) as u32,
                seq: i,
                intended_ns: 1_000_000_000_000 + i,
            });
            // 34 bytes after the prefix: only the last digit is past the key.
            marks.push(Mark {
                room_pub: 1,
                publisher: 2,
                seq: 10_000_000 + i / 10,
                intended_ns: 10_000_000_000_000_000_000 + i % 10,
            });
            marks.push(Mark {
                room_pub: 4_000_000_000,
                publisher: 4_000_000_000,
                seq: u64::MAX - i,
                intended_ns: u64::MAX - 7,
            });
        }
        let mut scanner = Scanner::new();
        for round in 0..2 {
            for chunk in marks.chunks(3) {
                let mut payload = b"{\"content\":\"".to_vec();
                for m in chunk {
                    write(&mut payload, m, 32);
                    payload.extend_from_slice(b"\"},{\"content\":\"");
                }
                let mut found = Vec::new();
                scanner.scan(&payload, |m| found.push(m));
                assert_eq!(found, chunk, "round {round}");
            }
        }
    }

    #[test]
    fn ignores_broken_markers() {
        let mut found = 0;
        Scanner::new().scan(b"~lg~1~2~x~lg~~lg~1~2~3", |_| found += 1);
        assert_eq!(found, 0);
    }
}
