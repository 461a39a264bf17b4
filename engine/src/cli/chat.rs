//! `corecast chat`: seed 001's terminal chat client. Reads commands and messages from stdin,
//! prints what the server says, and reconnects with exponential backoff when the connection
//! drops (logging in and rejoining its room again); refusals that retrying cannot fix (a bad
//! token, an invalid name, a wrong URL) end it at once, with the server's reason.
//!
//! Invariants: stdin is read on its own thread; the socket, the state and the terminal belong
//! to the main thread, so output lines never interleave. The client is in at most one room,
//! and leaves it only once the server confirmed the join of the next.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::chat_view as view;

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
/// Direct messages awaiting the server's ack; more is a server that does not answer, and
/// the oldest are forgotten (their ack then shows nothing).
const DIRECTS_PENDING_MAX: usize = 1000;
/// ANSI: cursor up one line, clear it. Erases a typed line the server is about to echo.
const ERASE_TYPED_LINE: &str = "\x1b[1A\x1b[2K";

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Server URL (ws://HOST:PORT/ws).
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    pub url: String,
    /// Username (development-mode login) [default: guest-<connection id>, one per client].
    #[arg(long)]
    pub user: Option<String>,
    /// Room to join.
    #[arg(long, default_value = "general")]
    pub room: String,
    /// Password of --room.
    #[arg(long, env = "CORECAST_ROOM_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// JWT to connect with instead of logging in by name.
    #[arg(long, env = "CORECAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Reconnection attempts before giving up.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
}

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// A failure that retrying cannot fix: the client stops with it.
#[derive(Debug)]
struct Fatal(String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

fn fatal(why: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fatal(why.into()))
}

/// A room and the password it was joined with (to rejoin after a reconnect).
#[derive(Debug, Clone, PartialEq)]
struct Room {
    name: String,
    password: Option<String>,
}

/// A join sent and not answered yet.
#[derive(Debug)]
struct Joining {
    room: Room,
    reference: String,
}

struct Chat {
    args: ChatArgs,
    out: std::io::Stdout,
    /// The room the server confirmed.
    room: Option<Room>,
    joining: Option<Joining>,
    /// The name to log in with: --user, or the guest name chosen at the first connection.
    login_name: Option<String>,
    user_id: Option<String>,
    /// Whether this connection speaks for a user (read marks, DMs, presence need one).
    is_user: bool,
    typing: Vec<String>,
    next_ref: u64,
    /// `/msg`s awaiting their ack, by ref: (to, text).
    directs: HashMap<String, (String, String)>,
    /// The content of the last room message shown (a mention of it is not repeated).
    last_content: String,
    /// The room whose messages `newest_seen` counts (kept over a reconnect).
    shown_room: Option<String>,
    /// The newest message id shown in the current room, and the one marked read.
    newest_seen: u64,
    marked_read: u64,
    /// Typed lines are echoed by the terminal: erase those the server echoes back.
    erase_typed: bool,
}

const HELP: &str = "\
Commands:
  /help                       this list
  /rooms                      list rooms
  /create <room> [about]      create a room
  /join <room> [password]     join a room (leaving the current one once in)
  /leave                      leave the current room
  /users                      who is in the room, and their status
  /history [n]                the last n messages (default 50)
  /msg <user> <text>          a direct message
  /online /away /dnd          set your status
  /quit /exit                 leave
Anything else is sent to the room.";

/// Runs the client until `/quit`, end of input, a fatal refusal, or reconnection gives up.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let lines = stdin_lines();
    let mut chat = Chat {
        room: None,
        joining: None,
        login_name: args.user.clone(),
        user_id: None,
        is_user: false,
        typing: Vec::new(),
        next_ref: 0,
        directs: HashMap::new(),
        last_content: String::new(),
        shown_room: None,
        newest_seen: 0,
        marked_read: 0,
        erase_typed: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
        out: std::io::stdout(),
        args,
    };
    let first = Room {
        name: chat.args.room.clone(),
        password: chat.args.password.clone(),
    };
    let mut ws = chat.connect_with_backoff(Some(first))?;
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
            let rejoin = chat.room.take().or(chat.joining.take().map(|j| j.room));
            ws = chat.connect_with_backoff(rejoin)?;
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

    fn next_ref(&mut self, kind: &str) -> String {
        self.next_ref += 1;
        format!("{kind}{}", self.next_ref)
    }

    /// Connects (retrying transient failures with backoff) and joins `room`.
    fn connect_with_backoff(&mut self, room: Option<Room>) -> anyhow::Result<Socket> {
        let mut delay = BACKOFF_FIRST;
        let mut attempt = 0;
        loop {
            match self.connect() {
                Ok(mut ws) => {
                    if let Some(room) = room {
                        self.start_join(&mut ws, room)?;
                    }
                    return Ok(ws);
                }
                Err(e) if e.downcast_ref::<Fatal>().is_some() => {
                    let Some(Fatal(why)) = e.downcast_ref::<Fatal>() else {
                        unreachable!("checked by the guard")
                    };
                    bail!("{why}")
                }
                Err(e) if attempt < self.args.max_retries => {
                    attempt += 1;
                    self.say(&format!(
                        "* Cannot connect ({}); retrying in {:.1}s (attempt {attempt}/{})",
                        e.root_cause(),
                        delay.as_secs_f64(),
                        self.args.max_retries
                    ));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
                Err(e) => bail!("giving up after {attempt} attempts: {e:#}"),
            }
        }
    }

    /// The URL with the token, if any.
    fn url(&self) -> String {
        match &self.args.token {
            Some(t) => {
                let sep = if self.args.url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}token={t}", self.args.url)
            }
            None => self.args.url.clone(),
        }
    }

    /// Connects and logs in (by token, by name, or as a guest name of its own).
    fn connect(&mut self) -> anyhow::Result<Socket> {
        let mut ws =
            open(&self.url()).with_context(|| format!("connecting to {}", self.args.url))?;
        let hello = next_event(&mut ws)?;
        if hello["type"] != "connection:established" {
            bail!("unexpected greeting {hello}");
        }
        self.typing.clear();
        let who = match hello.get("user") {
            Some(user) => {
                self.user_id = user["userId"].as_str().map(str::to_string);
                self.is_user = true;
                user["username"].as_str().unwrap_or("?").to_string()
            }
            None => self.login(&mut ws, &hello)?,
        };
        self.say(&format!("* Connected to {} as {who}", self.args.url));
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(POLL_INTERVAL))?;
        }
        Ok(ws)
    }

    /// `auth:login` with --user or a guest name; returns how to name this connection.
    fn login(&mut self, ws: &mut Socket, hello: &Value) -> anyhow::Result<String> {
        let chosen = self.args.user.is_some();
        let name = match &self.login_name {
            Some(name) => name.clone(),
            None => format!("guest-{}", hello["connectionId"]),
        };
        send(ws, json!({"type": "auth:login", "username": name}))?;
        let answer = next_event(ws)?;
        match (answer["type"].as_str(), answer["code"].as_str()) {
            (Some("auth:success"), _) => {}
            (Some("auth:error"), Some("login_disabled")) if !chosen => {
                self.is_user = false;
                return Ok("a guest (this server names users by token: --token)".into());
            }
            (Some("auth:error"), _) => {
                let why = answer["message"].as_str().unwrap_or("refused");
                return Err(fatal(format!("login as {name:?} refused: {why}")));
            }
            _ => bail!("unexpected answer to login: {answer}"),
        }
        self.login_name = Some(name.clone());
        self.user_id = answer["userId"].as_str().map(str::to_string);
        self.is_user = true;
        Ok(if chosen {
            name
        } else {
            format!("{name} (choose a name with --user)")
        })
    }

    /// Sends a join; the current room is left once the server confirms it.
    fn start_join(&mut self, ws: &mut Socket, room: Room) -> anyhow::Result<()> {
        let reference = self.next_ref("join");
        let mut msg = json!({"type": "room:join", "room": room.name, "ref": reference});
        if let Some(p) = &room.password {
            msg["password"] = json!(p);
        }
        self.joining = Some(Joining { room, reference });
        send(ws, msg)
    }

    fn command(&mut self, ws: &mut Socket, line: &str) -> anyhow::Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let room = self.room.as_ref().map(|r| r.name.clone());
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
            "/join" => return self.join_command(ws, rest),
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
            "/msg" => return self.direct(ws, rest),
            "/online" | "/away" | "/dnd" => json!({"type": "presence:update", "status": &cmd[1..]}),
            c if c.starts_with('/') => bail!("unknown command {c}; /help lists them"),
            _ => {
                let msg = json!({"type": "message:send", "room": need_room()?, "content": line});
                self.erase_typed_line();
                msg
            }
        };
        send(ws, msg)
    }

    /// `/join <room> [password]`.
    fn join_command(&mut self, ws: &mut Socket, rest: &str) -> anyhow::Result<()> {
        let (name, password) = rest.split_once(' ').unwrap_or((rest, ""));
        if name.is_empty() {
            bail!("usage: /join <room> [password]");
        }
        if self.room.as_ref().is_some_and(|r| r.name == name) {
            bail!("already in #{name}");
        }
        let password = Some(password.trim()).filter(|p| !p.is_empty());
        let room = Room {
            name: name.to_string(),
            password: password.map(str::to_string),
        };
        self.start_join(ws, room)
    }

    /// `/msg <user> <text>`: shown once the server took it.
    fn direct(&mut self, ws: &mut Socket, rest: &str) -> anyhow::Result<()> {
        let (to, content) = rest.split_once(' ').unwrap_or((rest, ""));
        let content = content.trim();
        if to.is_empty() || content.is_empty() {
            bail!("usage: /msg <user> <text>");
        }
        let reference = self.next_ref("dm");
        if self.directs.len() >= DIRECTS_PENDING_MAX {
            self.directs.clear();
        }
        self.directs
            .insert(reference.clone(), (to.to_string(), content.to_string()));
        self.erase_typed_line();
        send(
            ws,
            json!({"type": "message:direct", "to": to, "content": content, "ref": reference}),
        )
    }

    fn erase_typed_line(&mut self) {
        if self.erase_typed {
            let _ = write!(self.out, "{ERASE_TYPED_LINE}");
        }
    }

    /// Prints whatever arrived and marks what was shown read; Err when the connection is
    /// gone.
    fn pump(&mut self, ws: &mut Socket) -> anyhow::Result<()> {
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).context("server sent bad JSON")?;
                    self.on_event(ws, &v)?;
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
                    return self.mark_read(ws)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Tells the server the current room is read up to the newest message shown.
    fn mark_read(&mut self, ws: &mut Socket) -> anyhow::Result<()> {
        let Some(room) = self.room.as_ref().filter(|_| self.is_user) else {
            return Ok(());
        };
        if self.newest_seen <= self.marked_read {
            return Ok(());
        }
        let msg = json!({"type": "message:read", "room": room.name, "upTo": self.newest_seen});
        self.marked_read = self.newest_seen;
        send(ws, msg)
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

    /// Handles one event: the answers the client waits for, then what it shows.
    fn on_event(&mut self, ws: &mut Socket, v: &Value) -> anyhow::Result<()> {
        let reference = v["ref"].as_str().unwrap_or("");
        match v["type"].as_str().unwrap_or("") {
            "room:joined" => return self.on_joined(ws, v),
            "error"
                if self
                    .joining
                    .as_ref()
                    .is_some_and(|j| j.reference == reference) =>
            {
                let j = self.joining.take().expect("checked");
                let still = match &self.room {
                    Some(r) => format!("; still in #{}", r.name),
                    None => String::new(),
                };
                let why = v["message"].as_str().unwrap_or("refused");
                self.say(&format!("! Could not join #{}: {why}{still}", j.room.name));
            }
            "ack" | "error" if self.directs.contains_key(reference) => {
                let (to, content) = self.directs.remove(reference).expect("checked");
                let line = match v["type"].as_str() {
                    Some("ack") => view::direct_out(&to, &content),
                    _ => format!(
                        "! Could not send \"{content}\" to {to}: {}",
                        v["message"].as_str().unwrap_or("refused")
                    ),
                };
                self.say(&line);
            }
            _ => self.show(v),
        }
        Ok(())
    }

    /// A join confirmed: leave the room before it, show the new one.
    fn on_joined(&mut self, ws: &mut Socket, v: &Value) -> anyhow::Result<()> {
        let name = v["room"].as_str().unwrap_or("");
        let Some(j) = self.joining.take_if(|j| j.room.name == name) else {
            // A join given up on for a later /join: one room at a time.
            if self.room.as_ref().is_none_or(|r| r.name != name) {
                send(ws, json!({"type": "room:leave", "room": name}))?;
            }
            return Ok(());
        };
        if let Some(old) = self.room.replace(j.room) {
            send(ws, json!({"type": "room:leave", "room": old.name}))?;
        }
        let backlog = v["messages"].as_array().map_or(&[][..], Vec::as_slice);
        let id = |m: &Value| m["id"].as_u64().unwrap_or(0);
        // Rejoined after a reconnect, with the history it had: show only what is new.
        let resumed = self.shown_room.as_deref() == Some(name)
            && backlog.last().is_some_and(|m| id(m) >= self.newest_seen);
        if !resumed {
            self.newest_seen = 0;
            self.marked_read = 0;
        }
        self.shown_room = Some(name.to_string());
        self.typing.clear();
        self.say(&view::joined(v));
        let seen = self.newest_seen;
        for m in backlog.iter().filter(|m| id(m) > seen) {
            self.show(m);
        }
        Ok(())
    }

    fn show(&mut self, v: &Value) {
        let line = match v["type"].as_str().unwrap_or("") {
            "batch" => {
                for m in v["messages"].as_array().into_iter().flatten() {
                    self.show(m);
                }
                return;
            }
            "message:new" => {
                let current = self.room.as_ref().map(|r| r.name.as_str());
                if v["room"].as_str().is_some() && v["room"].as_str() == current {
                    self.newest_seen = self.newest_seen.max(v["id"].as_u64().unwrap_or(0));
                }
                self.last_content = view::text(&v["content"]);
                view::message(v)
            }
            "message:direct" => view::direct_in(v),
            // A mention of the message just shown: its title says enough.
            "notification:new"
                if v["kind"] == "mention" && v["body"].as_str() == Some(&self.last_content) =>
            {
                format!("! {}", v["title"].as_str().unwrap_or("a mention"))
            }
            "message:history" => {
                let more = if v["hasMore"] == true {
                    " (more before)"
                } else {
                    ""
                };
                let room = v["room"].as_str().unwrap_or("");
                let messages = v["messages"].as_array().map_or(&[][..], Vec::as_slice);
                if messages.is_empty() {
                    self.say(&format!("* No messages in #{room} yet"));
                    return;
                }
                self.say(&format!("* History of #{room}{more}:"));
                for m in messages {
                    self.say(&view::message(m));
                }
                return;
            }
            "typing:update" => match self.typing_line(v) {
                Some(line) => line,
                None => return,
            },
            _ => match view::simple(v) {
                Some(line) => line,
                None => return,
            },
        };
        self.say(&line);
    }

    /// `* bob is typing...` when the set of others typing changed to a non-empty one.
    fn typing_line(&mut self, v: &Value) -> Option<String> {
        let names: Vec<String> = v["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| u["userId"].as_str() != self.user_id.as_deref())
            .filter_map(|u| u["username"].as_str().map(str::to_string))
            .collect();
        if names == self.typing {
            return None;
        }
        self.typing = names.clone();
        match names.len() {
            0 => None,
            1 => Some(format!("* {} is typing...", names[0])),
            _ => Some(format!("* {} are typing...", names.join(", "))),
        }
    }
}

/// Connects and upgrades within [`CONNECT_TIMEOUT`] (a server that accepts but never answers
/// counts as down). Plain `ws://` only; a refused upgrade is fatal, with the server's reason.
fn open(url: &str) -> anyhow::Result<Socket> {
    use std::net::ToSocketAddrs;
    use tungstenite::client::IntoClientRequest;
    if let Some(rest) = url.strip_prefix("http://") {
        return Err(fatal(format!(
            "{url} is an HTTP URL; WebSocket URLs start with ws:// (ws://{rest})"
        )));
    }
    let request = url
        .into_client_request()
        .map_err(|e| fatal(format!("{url} is not a ws:// URL: {e}")))?;
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        return Err(fatal("only ws:// URLs are supported"));
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
    match tungstenite::client(request, MaybeTlsStream::Plain(stream)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(refusal(url, &response))
        }
        Err(e) => bail!("upgrade failed: {e}"),
    }
}

/// A refused upgrade as the user should read it; fatal unless retrying may help (408, 429,
/// 5xx).
fn refusal(url: &str, response: &tungstenite::http::Response<Option<Vec<u8>>>) -> anyhow::Error {
    let status = response.status();
    let body = response
        .body()
        .as_deref()
        .map(String::from_utf8_lossy)
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty());
    let mut why = format!(
        "{} refused the connection: {} {}",
        url.split('?').next().unwrap_or(url),
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if let Some(body) = body {
        why.push_str(&format!(" ({body})"));
    }
    if status.as_u16() == 404 {
        why.push_str("; corecast's WebSocket path is /ws");
    }
    match status.as_u16() {
        408 | 429 | 500.. => anyhow::anyhow!(why),
        _ => fatal(why),
    }
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
