//! `corecast chat`: seed 001's terminal chat client. Reads commands and messages from stdin,
//! prints what the server says, and reconnects with exponential backoff when the connection
//! drops (logging in and rejoining its room again).
//!
//! Invariant: stdin is read on its own thread; the socket, the state and the terminal belong
//! to the main thread, so output lines never interleave.

use std::io::{BufRead, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// First reconnection delay; doubles per failed attempt.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// Longest reconnection delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the socket is polled between stdin lines.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Typed lines waiting for the main thread; beyond it the stdin reader waits (pasted or
/// scripted input is sent in order, never dropped).
const LINES_QUEUED_MAX: usize = 256;
/// Time to connect and complete the upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time `/quit` waits for the server's answers to arrive before closing.
const QUIT_DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Server URL.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    pub url: String,
    /// Username (development-mode login).
    #[arg(long, default_value = "guest")]
    pub user: String,
    /// Room to join.
    #[arg(long, default_value = "general")]
    pub room: String,
    /// JWT to connect with instead of logging in by name.
    #[arg(long, env = "CORECAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Reconnection attempts before giving up.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
}

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

struct Chat {
    args: ChatArgs,
    out: std::io::Stdout,
    room: Option<String>,
    user_id: Option<String>,
    typing: Vec<String>,
}

const HELP: &str = "\
Commands:
  /help                     this list
  /rooms                    list rooms
  /create <room> [about]    create a room
  /join <room>              join a room (leaving the current one)
  /leave                    leave the current room
  /users                    who is in the room, and their status
  /history [n]              the last n messages (default 50)
  /online /away /dnd        set your status
  /quit /exit               leave
Anything else is sent to the room.";

/// Runs the client until `/quit`, end of input, or reconnection gives up.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let lines = stdin_lines();
    let mut chat = Chat {
        room: Some(args.room.clone()),
        args,
        out: std::io::stdout(),
        user_id: None,
        typing: Vec::new(),
    };
    let mut ws = chat.connect_with_backoff()?;
    chat.say("Type /help for commands.");
    loop {
        match lines.recv_timeout(POLL_INTERVAL) {
            Ok(line) => {
                let line = line.trim();
                if matches!(line, "/quit" | "/exit") {
                    return chat.quit(ws);
                }
                if let Err(e) = chat.command(&mut ws, line) {
                    chat.say(&format!("! {e}"));
                }
            }
            Err(RecvTimeoutError::Disconnected) => return chat.quit(ws),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Err(e) = chat.pump(&mut ws) {
            chat.say(&format!("* Disconnected: {e}"));
            ws = chat.connect_with_backoff()?;
        }
    }
}

fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::sync_channel(LINES_QUEUED_MAX);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Chat {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn connect_with_backoff(&mut self) -> anyhow::Result<Socket> {
        let mut delay = BACKOFF_FIRST;
        let mut attempt = 0;
        loop {
            match self.connect() {
                Ok(ws) => return Ok(ws),
                Err(e) if attempt < self.args.max_retries => {
                    attempt += 1;
                    self.say(&format!(
                        "* Connection failed ({e}); reconnecting in {:.1}s (attempt {attempt}/{})",
                        delay.as_secs_f64(),
                        self.args.max_retries
                    ));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
                Err(e) => bail!("giving up after {attempt} attempts: {e}"),
            }
        }
    }

    /// Connects, logs in and joins the current room.
    fn connect(&mut self) -> anyhow::Result<Socket> {
        let url = match &self.args.token {
            Some(t) => format!(
                "{}{}token={t}",
                self.args.url,
                if self.args.url.contains('?') {
                    "&"
                } else {
                    "?"
                }
            ),
            None => self.args.url.clone(),
        };
        let mut ws = open(&url).with_context(|| format!("connecting to {}", self.args.url))?;
        let hello = next_event(&mut ws)?;
        if hello["type"] != "connection:established" {
            bail!("unexpected greeting {hello}");
        }
        if self.args.token.is_none() {
            send(
                &mut ws,
                json!({"type": "auth:login", "username": self.args.user}),
            )?;
            let answer = next_event(&mut ws)?;
            match answer["type"].as_str() {
                Some("auth:success") => {}
                Some("auth:error") => bail!("login refused: {}", answer["message"]),
                _ => bail!("unexpected answer to login: {answer}"),
            }
            self.user_id = answer["userId"].as_str().map(str::to_string);
        }
        self.say(&format!(
            "* Connected to {} as {}",
            self.args.url, self.args.user
        ));
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(POLL_INTERVAL))?;
        }
        if let Some(room) = self.room.clone() {
            send(&mut ws, json!({"type": "room:join", "room": room}))?;
        }
        Ok(ws)
    }

    fn command(&mut self, ws: &mut Socket, line: &str) -> anyhow::Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let room = self.room.clone();
        let need_room = || room.clone().context("not in a room: /join one first");
        let msg = match cmd {
            "/help" => {
                self.say(HELP);
                return Ok(());
            }
            "/rooms" => json!({"type": "room:list"}),
            "/create" => {
                let (name, about) = rest.split_once(' ').unwrap_or((rest, ""));
                if name.is_empty() {
                    bail!("usage: /create <room> [description]");
                }
                json!({"type": "room:create", "room": name, "description": about.trim().trim_matches('"')})
            }
            "/join" => {
                if rest.is_empty() {
                    bail!("usage: /join <room>");
                }
                if let Some(old) = self.room.take() {
                    send(ws, json!({"type": "room:leave", "room": old}))?;
                }
                self.room = Some(rest.to_string());
                json!({"type": "room:join", "room": rest})
            }
            "/leave" => {
                let room = need_room()?;
                self.room = None;
                json!({"type": "room:leave", "room": room})
            }
            "/users" | "/online-users" => json!({"type": "presence:list", "room": need_room()?}),
            "/history" => {
                let limit: u64 = if rest.is_empty() {
                    50
                } else {
                    rest.parse().context("usage: /history [n]")?
                };
                json!({"type": "message:history", "room": need_room()?, "limit": limit})
            }
            "/online" | "/away" | "/dnd" => json!({"type": "presence:update", "status": &cmd[1..]}),
            c if c.starts_with('/') => bail!("unknown command {c}; /help lists them"),
            _ => json!({"type": "message:send", "room": need_room()?, "content": line}),
        };
        send(ws, msg)
    }

    /// Prints whatever arrived; Err when the connection is gone.
    fn pump(&mut self, ws: &mut Socket) -> anyhow::Result<()> {
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).context("server sent bad JSON")?;
                    self.show(&v);
                }
                Ok(Message::Close(frame)) => {
                    let why = frame.map_or("no reason".to_string(), |f| {
                        format!("{} {}", u16::from(f.code), f.reason)
                    });
                    bail!("closed by the server ({why})");
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn quit(&mut self, mut ws: Socket) -> anyhow::Result<()> {
        let until = Instant::now() + QUIT_DRAIN;
        while Instant::now() < until {
            if self.pump(&mut ws).is_err() {
                break;
            }
        }
        let _ = ws.close(None);
        let _ = ws.flush();
        self.say("* Bye.");
        Ok(())
    }

    fn show(&mut self, v: &Value) {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let line = match v["type"].as_str().unwrap_or("") {
            "batch" => {
                for m in v["messages"].as_array().into_iter().flatten() {
                    self.show(m);
                }
                return;
            }
            "message:new" => format!(
                "[{}] #{} <{}> {}",
                clock(&v["ts"]),
                s("room"),
                v["from"]["username"].as_str().unwrap_or("?"),
                text(&v["content"])
            ),
            "message:direct" => format!(
                "[{}] (direct) <{}> {}",
                clock(&v["ts"]),
                v["from"]["username"].as_str().unwrap_or("?"),
                text(&v["content"])
            ),
            "room:joined" => {
                let users: Vec<&str> = v["users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u["username"].as_str())
                    .collect();
                self.say(&format!(
                    "* Joined #{} (members: {}): {}",
                    s("room"),
                    v["members"],
                    users.join(", ")
                ));
                for m in v["messages"].as_array().into_iter().flatten() {
                    self.show(m);
                }
                return;
            }
            "room:left" => format!("* Left #{}", s("room")),
            "room:user_joined" => format!("* {} joined #{}", s("username"), s("room")),
            "room:user_left" => format!("* {} left #{}", s("username"), s("room")),
            "room:created" => format!("* Created #{} ({})", s("room"), s("description")),
            "room:list" => {
                let mut out = String::from("* Rooms:");
                for r in v["rooms"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n    #{} - {} member(s){}{}{}",
                        r["room"].as_str().unwrap_or(""),
                        r["members"],
                        if r["hasPassword"] == true {
                            ", password"
                        } else {
                            ""
                        },
                        if r["unread"].as_u64().unwrap_or(0) > 0 {
                            format!(", {} unread", r["unread"])
                        } else {
                            String::new()
                        },
                        match r["description"].as_str() {
                            Some(d) if !d.is_empty() => format!(": {d}"),
                            _ => String::new(),
                        },
                    ));
                }
                out
            }
            "presence:list" => {
                let mut out = format!("* In #{}:", s("room"));
                for u in v["users"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n    {} ({})",
                        u["username"].as_str().unwrap_or("?"),
                        u["status"].as_str().unwrap_or("?")
                    ));
                }
                out
            }
            "presence:update" => format!("* {} is now {}", s("username"), s("status")),
            "typing:update" => {
                let names: Vec<String> = v["users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|u| u["userId"].as_str() != self.user_id.as_deref())
                    .filter_map(|u| u["username"].as_str().map(str::to_string))
                    .collect();
                if names == self.typing {
                    return;
                }
                self.typing = names.clone();
                match names.len() {
                    0 => return,
                    1 => format!("* {} is typing...", names[0]),
                    _ => format!("* {} are typing...", names.join(", ")),
                }
            }
            "message:history" => {
                self.say(&format!(
                    "* History of #{}{}:",
                    s("room"),
                    if v["hasMore"] == true {
                        " (more before)"
                    } else {
                        ""
                    }
                ));
                for m in v["messages"].as_array().into_iter().flatten() {
                    self.show(m);
                }
                return;
            }
            "message:read" | "ack" | "connection:established" | "notification:unread" => return,
            "notification:new" => format!("! {}: {}", s("title"), s("body")),
            "rate_limit:warning" => format!(
                "! Slow down: {} messages left before the limit",
                v["remaining"]
            ),
            "error" | "auth:error" => format!("! {}: {}", s("code"), s("message")),
            _ => format!("* {v}"),
        };
        self.say(&line);
    }
}

/// Connects and upgrades within [`CONNECT_TIMEOUT`] (a server that accepts but never answers
/// counts as down). Plain `ws://` only.
fn open(url: &str) -> anyhow::Result<Socket> {
    use std::net::ToSocketAddrs;
    use tungstenite::client::IntoClientRequest;
    let request = url.into_client_request()?;
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        bail!("only ws:// URLs are supported");
    }
    let host = uri.host().context("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .context("the host has no address")?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tungstenite::client(request, MaybeTlsStream::Plain(stream))
        .map_err(|e| anyhow::anyhow!("upgrade failed: {e}"))?;
    Ok(ws)
}

fn send(ws: &mut Socket, v: Value) -> anyhow::Result<()> {
    ws.send(Message::text(v.to_string())).context("sending")
}

/// The next JSON event (during the handshake, with the connect timeout).
fn next_event(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match ws.read()? {
            Message::Text(t) => return Ok(serde_json::from_str(&t)?),
            Message::Close(_) => bail!("closed by the server"),
            _ => {}
        }
    }
}

fn text(content: &Value) -> String {
    match content.as_str() {
        Some(s) => s.to_string(),
        None => content.to_string(),
    }
}

/// `HH:MM:SS` (UTC) of a Unix-ms timestamp.
fn clock(ts: &Value) -> String {
    let secs = ts.as_u64().unwrap_or(0) / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}
