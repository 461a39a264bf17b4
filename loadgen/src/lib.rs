//! loadgen: measures any WebSocket deployment: throughput, latency percentiles with coordinated
//! omission corrected, and exact delivery accounting.
//!
//! Layers: `frame`, `handshake`, `marker`, `protocol` (wire, no I/O); `accounting`, `recorder`,
//! `report` (figures), `chart` (the report's SVG); `scenario` (plans); `runner` (setup on
//! glommio), `event_loop` (the measured run on epoll); [`run`] ties them.

pub mod accounting;
pub mod chart;
pub mod clock;
pub mod collab;
pub mod error;
pub mod event_loop;
pub mod frame;
pub mod handshake;
pub mod marker;
pub mod process_cpu;
pub mod protocol;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod tls;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::Error;
pub use report::Report;
pub use runner::{RunConfig, Shared};

/// File descriptors kept free for everything that is not a connection.
const FD_RESERVE: u64 = 64;

/// Checks that the process may open one descriptor per connection (raising the soft limit to
/// the hard one when needed).
pub fn check_fd_limit(conns: usize) -> Result<(), Error> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let needed = conns as u64 + FD_RESERVE;
    if lim.rlim_cur < needed && lim.rlim_max > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max.min(needed.max(lim.rlim_cur)),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: valid pointer; raising up to the hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    if lim.rlim_cur < needed {
        return Err(Error::FdLimit {
            needed: conns,
            limit: lim.rlim_cur,
            hard: lim.rlim_max,
            usable: lim.rlim_cur.saturating_sub(FD_RESERVE),
        });
    }
    Ok(())
}

/// Live progress, called about every 200 ms with the counters.
pub type Progress<'a> = &'a mut dyn FnMut(&str, &Shared, Duration);

/// Runs `cfg` and returns its report.
pub fn run(
    cfg: RunConfig,
    scenario: &str,
    params: serde_json::Value,
    progress: Progress<'_>,
) -> Result<Report, Error> {
    check_fd_limit(cfg.plan.conns.len())?;
    clock::init();
    let total = cfg.plan.conns.len();
    let cfg = Arc::new(cfg);
    let shared = Arc::new(Shared::new(cfg.cores));
    let mut handles = Vec::with_capacity(cfg.cores);
    for id in 0..cfg.cores {
        let (cfg, shared) = (cfg.clone(), shared.clone());
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{id}"))
            .spawn(move || runner::run_core(id, cfg, shared))
            .map_err(|e| Error::Core {
                core: id,
                reason: e.to_string(),
            })?;
        handles.push(h);
    }
    let began = Instant::now();
    while shared.settled.load(Relaxed) < total {
        progress("connecting", &shared, began.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let connect_secs = began.elapsed().as_secs_f64();
    shared
        .start_at
        .store(clock::now_ns() + 100_000_000, Relaxed);
    let run_began = Instant::now();
    while shared.cores_done.load(Relaxed) < cfg.cores {
        progress("running", &shared, run_began.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut results = Vec::with_capacity(cfg.cores);
    for (core, h) in handles.into_iter().enumerate() {
        let r = h.join().map_err(|_| Error::Core {
            core,
            reason: "panicked".into(),
        })?;
        results.push(r.map_err(|reason| Error::Core { core, reason })?);
    }
    Ok(report::build(scenario, params, &cfg, results, connect_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_connections_for_one_process_is_refused_with_advice() {
        let err = check_fd_limit(100_000_000).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                Error::FdLimit {
                    needed: 100_000_000,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("several loadgen processes"), "{text}");
        check_fd_limit(10).unwrap();
    }
}
