//! The `corecast` binary: settings from the CLI, environment and a TOML file; logging; signals;
//! and `corecast chat`, the terminal client.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use corecast::{Config, Server};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its position in the option enum of both of its v2 and
/// v3 headers (libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes the allocator return freed pages to the OS when they are freed. mimalloc's default
/// waits (1 s in v3, 10 ms in v2) and purges only on later allocator calls, which an idle
/// server does not make: memory freed after a burst of connects stayed resident. Measured
/// with 15,000 idle connections, alternating: 480–765 bytes each instead of 847–1,127, and
/// no change in CPU at 4M and 8M deliveries/s or in connects/s. `MIMALLOC_PURGE_DELAY` in
/// the environment still decides when it is set.
fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// corecast: a sharded thread-per-core WebSocket server for rooms, chat and games.
///
/// Every setting can also come from a TOML file (`--config FILE`, keys spelled like the flags
/// without their dashes, e.g. `batch-window-ms = 0`) or an environment variable (shown per
/// flag). Precedence: flag, then environment, then file, then the default. Clients connect to
/// ws://ADDR/ws (or /ws/room/{room} to land on the room's core); GET /healthz reports status.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML file with settings.
    #[arg(long, env = "CORECAST_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "CORECAST_ADDR")]
    addr: Option<SocketAddr>,
    /// Shards (one executor thread each); 0 = one per CPU [default: 0].
    #[arg(long, env = "CORECAST_SHARDS")]
    shards: Option<usize>,
    /// Pin shard i to CPU i [default: true].
    #[arg(long, env = "CORECAST_PIN")]
    pin: Option<bool>,
    /// Largest client message in bytes; larger closes with 1009 [default: 65536].
    #[arg(long, env = "CORECAST_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Bytes queued per connection before it is closed as a slow consumer (1008)
    /// [default: 1048576].
    #[arg(long, env = "CORECAST_SEND_QUEUE_BYTES")]
    send_queue_bytes: Option<usize>,
    /// Room batching window in ms; 0 turns batching off [default: 50].
    #[arg(long, env = "CORECAST_BATCH_WINDOW_MS")]
    batch_window_ms: Option<u64>,
    /// Most messages per batch frame; 0 or 1 turns batching off [default: 10].
    #[arg(long, env = "CORECAST_BATCH_MAX")]
    batch_max: Option<usize>,
    /// A document's cursors go out at most this often, in ms, one frame per interval; 0
    /// sends each move at once [default: 50].
    #[arg(long, env = "CORECAST_CURSOR_INTERVAL_MS")]
    cursor_interval_ms: Option<u64>,
    /// Least time between two writes to one connection in ms; 0 = write as soon as
    /// possible [default: 0].
    #[arg(long, env = "CORECAST_WRITE_INTERVAL_MS")]
    write_interval_ms: Option<u64>,
    /// Time a client has to send its upgrade request, in ms [default: 10000].
    #[arg(long, env = "CORECAST_HANDSHAKE_TIMEOUT_MS")]
    handshake_timeout_ms: Option<u64>,
    /// Idle time before a ping in ms; two silent intervals close the connection; 0 = never
    /// [default: 30000].
    #[arg(long, env = "CORECAST_PING_INTERVAL_MS")]
    ping_interval_ms: Option<u64>,
    /// Messages kept per room for room:joined and message:history [default: 1000].
    #[arg(long, env = "CORECAST_HISTORY_MESSAGES")]
    history_messages: Option<usize>,
    /// Largest content of a chat or direct message in bytes [default: 16384].
    #[arg(long, env = "CORECAST_MAX_CONTENT_BYTES")]
    max_content_bytes: Option<usize>,
    /// Messages a connection may send: game (240 per 2 s), chat (30 per minute), off, or
    /// N/Ts, N/Tms [default: game].
    #[arg(long, env = "CORECAST_RATE_LIMIT")]
    rate_limit: Option<String>,
    /// Request budget of a connection in cost units: N/Ts, N/Tms or off [default: 600/2s].
    #[arg(long, env = "CORECAST_REQUEST_RATE")]
    request_rate: Option<String>,
    /// Request budget of a user over their devices on a shard [default: 1200/2s].
    #[arg(long, env = "CORECAST_USER_REQUEST_RATE")]
    user_request_rate: Option<String>,
    /// Request budget of a source address over its connections on a shard; off for load
    /// tests and servers behind a proxy [default: 2000/2s].
    #[arg(long, env = "CORECAST_IP_REQUEST_RATE")]
    ip_request_rate: Option<String>,
    /// HS256 secret for JWT tokens (?token= or Authorization: Bearer); turns auth:login off.
    #[arg(long, env = "CORECAST_AUTH_SECRET", hide_env_values = true)]
    auth_secret: Option<String>,
    /// Allow connections without a user (no token; or not logged in) [default: true].
    #[arg(long, env = "CORECAST_ALLOW_ANONYMOUS")]
    allow_anonymous: Option<bool>,
    /// Key for POST /api/notify and /api/publish; without one the API is off.
    #[arg(long, env = "CORECAST_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A user whose devices were all idle this long goes away, in ms [default: 300000].
    #[arg(long, env = "CORECAST_AWAY_AFTER_MS")]
    away_after_ms: Option<u64>,
    /// An owned room with no members is forgotten, with its history, after this long, in
    /// seconds [default: 3600].
    #[arg(long, env = "CORECAST_ROOM_TTL_SECS")]
    room_ttl_secs: Option<u64>,
    /// Whether guests (not logged in) may room:create [default: false].
    #[arg(long, env = "CORECAST_GUESTS_CREATE_ROOMS")]
    guests_create_rooms: Option<bool>,
    /// Bytes of history one room keeps, oldest dropped first [default: 1048576].
    #[arg(long, env = "CORECAST_HISTORY_BYTES_PER_ROOM")]
    history_bytes_per_room: Option<usize>,
    /// Bytes of history a shard's rooms keep together; the quietest rooms' oldest messages
    /// go first [default: 268435456].
    #[arg(long, env = "CORECAST_HISTORY_BYTES_PER_SHARD")]
    history_bytes_per_shard: Option<usize>,
    /// Frames a connection may send per second (a second's worth as a burst); more closes
    /// it with 1008 [default: 50000].
    #[arg(long, env = "CORECAST_MAX_FRAMES_PER_SEC")]
    max_frames_per_sec: Option<u32>,
    /// Time to complete a started frame or fragmented message, in ms; past it the
    /// connection is closed with 1008 [default: 10000].
    #[arg(long, env = "CORECAST_MESSAGE_TIMEOUT_MS")]
    message_timeout_ms: Option<u64>,
    /// Bytes a shard holds for incomplete frames and messages; a connection that would grow
    /// it past this is closed with 1013 [default: 67108864].
    #[arg(long, env = "CORECAST_INCOMPLETE_BYTES_PER_SHARD")]
    incomplete_bytes_per_shard: Option<usize>,
    /// WebSocket connections held at once over all shards; more get 503 before the upgrade;
    /// 0 = the descriptor limit (RLIMIT_NOFILE) minus a reserve [default: 0].
    #[arg(long, env = "CORECAST_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Clock skew allowed for a token's exp, nbf and iat, in seconds; a connection closes
    /// with 4001 once its token's exp plus this has passed [default: 5].
    #[arg(long, env = "CORECAST_JWT_LEEWAY_SECS")]
    jwt_leeway_secs: Option<u64>,
    /// An offline user's record and notifications are forgotten this long after their last
    /// connection closed, in seconds [default: 86400].
    #[arg(long, env = "CORECAST_USER_TTL_SECS")]
    user_ttl_secs: Option<u64>,
    /// Subprotocols spoken, comma-separated; the 101 answers with the first a client offers
    /// that is listed [default: corecast.v1,json,v1].
    #[arg(long, env = "CORECAST_SUBPROTOCOLS")]
    subprotocols: Option<String>,
    /// Log filter (tracing's EnvFilter syntax) [default: info].
    #[arg(long, env = "CORECAST_LOG")]
    log: Option<String>,
}

/// The log filter when neither the flag, the environment nor the file sets one.
const LOG_FILTER_DEFAULT: &str = "info";

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A terminal chat client: `corecast chat --url ws://127.0.0.1:3000/ws --user Alice
    /// --room general`; reads messages and /commands from stdin (/help lists them).
    Chat(cli::chat::ChatArgs),
}

/// A settings file: the server's [`Config`] and the binary's own `log` filter.
fn parse_file(text: &str) -> anyhow::Result<(Config, Option<String>)> {
    let mut table: toml::Table = toml::from_str(text)?;
    let log = match table.remove("log") {
        None => None,
        Some(toml::Value::String(filter)) => Some(filter),
        Some(other) => anyhow::bail!("log: a tracing filter string, not {other}"),
    };
    Ok((table.try_into()?, log))
}

/// The settings and the log filter, each from the flag, the environment, the file or the
/// default, in that order.
fn load(cli: &Cli) -> anyhow::Result<(Config, String)> {
    let (mut config, file_log) = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_file(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => (Config::default(), None),
    };
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = cli.$f { config.$f = v; })* };
    }
    set!(
        addr,
        shards,
        pin,
        max_message_bytes,
        send_queue_bytes,
        batch_window_ms,
        batch_max,
        cursor_interval_ms,
        write_interval_ms,
        handshake_timeout_ms,
        ping_interval_ms,
        history_messages,
        max_content_bytes,
        allow_anonymous,
        away_after_ms,
        max_frames_per_sec,
        room_ttl_secs,
        guests_create_rooms,
        history_bytes_per_room,
        history_bytes_per_shard,
        message_timeout_ms,
        incomplete_bytes_per_shard,
        max_connections,
        jwt_leeway_secs,
        user_ttl_secs
    );
    macro_rules! set_string {
        ($($f:ident),*) => { $(if let Some(v) = &cli.$f { config.$f = v.clone(); })* };
    }
    set_string!(rate_limit, request_rate, user_request_rate, ip_request_rate);
    if let Some(v) = &cli.auth_secret {
        config.auth_secret = Some(v.clone());
    }
    if let Some(v) = &cli.subprotocols {
        config.subprotocols = v.clone();
    }
    if let Some(v) = &cli.api_key {
        config.api_key = Some(v.clone());
    }
    config.validate()?;
    let log = cli.log.clone().or(file_log);
    Ok((config, log.unwrap_or_else(|| LOG_FILTER_DEFAULT.into())))
}

fn main() -> anyhow::Result<()> {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    if let Some(Command::Chat(args)) = cli.command {
        return cli::chat::run(args);
    }
    let (config, log) = load(&cli)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&log)?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let server = Server::start(config)?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    server.shutdown()?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_may_set_the_log_filter() {
        let (config, log) = parse_file("log = \"debug\"\nshards = 2\n").unwrap();
        assert_eq!((config.shards, log.as_deref()), (2, Some("debug")));
        let (_, log) = parse_file("batch-window-ms = 0\n").unwrap();
        assert_eq!(log, None);
        assert!(parse_file("log = 3\n").is_err());
        assert!(parse_file("nope = 1\n").is_err());
    }

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads and writes integer options.
        unsafe {
            // Its documented default shows the constant names the right option.
            let default = if libmimalloc_sys::mi_version() >= 300 {
                1000
            } else {
                10
            };
            assert_eq!(
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
                default
            );
            return_freed_memory_promptly();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
        }
    }
}
