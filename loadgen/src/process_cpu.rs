//! Another process's CPU time (user + system), read from `/proc/PID/stat`: how a run charges
//! the server under test for exactly its measured window.
//!
//! Invariant: a reading is the process's cumulative CPU seconds; only differences of two
//! readings of the same live process mean anything.

use std::fs;

/// Cumulative user + system CPU seconds of process `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    let ticks = parse_stat(&stat).ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_sec <= 0 {
        return Err("sysconf(_SC_CLK_TCK) failed".into());
    }
    Ok(ticks as f64 / per_sec as f64)
}

/// utime + stime in clock ticks: fields 14 and 15, counted after the `(comm)` field, which
/// may itself hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat(line), Some(281));
    }

    #[test]
    fn refuses_a_truncated_line() {
        assert_eq!(parse_stat("4242 (x) S 1 2 3"), None);
    }

    #[test]
    fn reads_this_process_and_never_goes_back() {
        let pid = std::process::id();
        let a = cpu_seconds(pid).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(pid).unwrap() >= a);
    }
}
