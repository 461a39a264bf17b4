//! loadgen's errors: what stops a run before it can measure anything.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported URL {url}: expected ws://host:port/path")]
    Url { url: String },
    #[error(
        "{needed} connections need {needed} file descriptors, but this process may open only \
         {limit} (ulimit -n, hard limit {hard}); run several loadgen processes \
         (each up to ~{usable} connections) or raise the limit"
    )]
    FdLimit {
        needed: usize,
        limit: u64,
        hard: u64,
        usable: u64,
    },
    #[error("invalid option {name}: {reason}")]
    Option { name: &'static str, reason: String },
    #[error("core {core} failed: {reason}")]
    Core { core: usize, reason: String },
}
