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

/// Calls `f` for each marker in `payload`.
pub fn scan(finder: &memmem::Finder<'_>, payload: &[u8], mut f: impl FnMut(Mark)) {
    let mut pos = 0;
    while let Some(i) = finder.find(&payload[pos..]) {
        let at = pos + i + PREFIX.len();
        match parse_fields(&payload[at..]) {
            Some((mark, used)) => {
                f(mark);
                pos = at + used;
            }
            None => pos = at,
        }
    }
}

/// A finder for [`PREFIX`], built once per core.
pub fn finder() -> memmem::Finder<'static> {
    memmem::Finder::new(PREFIX)
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
        let mut found = Vec::new();
        scan(&finder(), frame.as_bytes(), |m| found.push(m));
        assert_eq!(found, vec![a, b]);
    }

    #[test]
    fn ignores_broken_markers() {
        let mut found = 0;
        scan(&finder(), b"~lg~1~2~x~lg~~lg~1~2~3", |_| found += 1);
        assert_eq!(found, 0);
    }
}
