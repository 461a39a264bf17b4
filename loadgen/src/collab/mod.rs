//! `collab`: D documents × E editors, each typing at `rate` changes per second with the client
//! discipline (`editor`), plus cursor moves at `cursor_hz`. Measures op latency (an edit
//! typed, at its scheduled time, until every other editor has it: the wait behind the change
//! in flight counts), ack latency (a change sent until its ack), cursor latency and cursor
//! conflation, then checks that every editor's text equals the server's `doc:state`.
//!
//! Invariant: a run that ends with any editor's text or version different from the server's
//! reports each divergence and fails; figures count only changes submitted after the warm-up.
//!
//! One thread drives every editor over non-blocking sockets with epoll: the documents' editors
//! share the process, so an op's arrival at all of them is observed on one clock.

mod editor;
mod text_unicode;
mod tracker;
mod yjs;

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub use editor::{Editor, Heard, Proto};
use tracker::Tracker;
use yjs::Replica;

use crate::clock::now_ns;

/// How long setup waits for a connection's `doc:state`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Each editor's read buffer. tungstenite zero-fills the whole buffer before every read, so
/// its default (128 KiB) cost a fifth of the client's time at 1,000 editors; a 20 ms batch
/// of changes to one editor is a few KB.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// How long a run waits, once every change is acknowledged, for the other editors to have
/// them all. On loopback they are already on their way; a change that never reaches them (two
/// Yjs editors deleting one character: the second delete changes nothing and Hocuspocus sends
/// it to no one) is reported as unmatched instead of holding the run for the whole drain.
const UNMATCHED_GRACE_SECS: f64 = 0.2;

/// Ready sockets taken from epoll per wait (the rest come at the next).
const EVENTS_PER_WAIT: usize = 256;

#[derive(Debug, Clone)]
pub struct CollabConfig {
    /// `ws://host:port/ws`.
    pub url: String,
    pub docs: usize,
    /// Editors per document.
    pub editors: usize,
    /// Changes per second per editor.
    pub rate: f64,
    /// Cursor moves per second per editor (0: none).
    pub cursor_hz: f64,
    pub warmup: f64,
    pub duration: f64,
    pub drain: f64,
    pub doc_prefix: String,
    pub proto: Proto,
    /// The server's process, to charge it the CPU seconds of the measured window.
    pub server_pid: Option<u32>,
    /// Poll the sockets without sleeping: a sleeping client makes each of the server's
    /// `send()` calls on loopback also pay for waking it, which on a network the client's own
    /// host would pay.
    pub spin: bool,
    /// Editors per document that keep the text and are checked against the server's (the
    /// rest are typists: `editor`); `None`: all of them.
    pub text_editors: Option<usize>,
}

#[derive(Debug)]
pub struct CollabReport {
    /// From an edit's keystroke (its scheduled time) until every other editor has it.
    pub op_latency_us: Histogram<u64>,
    /// From its change being sent until every other editor has it (what a client that keeps
    /// no backlog, composing its buffered ops into one change, would see of the server).
    pub op_sent_latency_us: Histogram<u64>,
    pub ack_latency_us: Histogram<u64>,
    pub cursor_latency_us: Histogram<u64>,
    pub changes_sent: u64,
    pub changes_heard: u64,
    pub cursor_moves: u64,
    pub cursor_entries: u64,
    pub cursor_frames: u64,
    pub measured_secs: f64,
    /// Changes submitted inside the measured window, and the server's CPU seconds over it
    /// (with `server_pid`).
    pub window_changes: u64,
    /// Ops those changes carried (corecast's editors send their whole buffer in one change,
    /// ShareDB's one op per change).
    pub window_ops: u64,
    pub server_cpu_secs: Option<f64>,
    pub divergences: Vec<String>,
    /// Editors with a change still unacknowledged when the drain ended (the server fell
    /// behind): not a divergence, but the run fails too.
    pub unsettled: Vec<String>,
    /// Changes acknowledged but not heard by every other editor when the run ended, or
    /// heard without an author (timed by neither latency).
    pub unmatched: u64,
    pub errors: Vec<String>,
}

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

struct Seat {
    ws: Ws,
    editor: Editor,
    doc: usize,
    next_edit: u64,
    next_cursor: u64,
    dirty: bool,
}

/// Runs the scenario; the report says whether it converged.
pub fn run(cfg: &CollabConfig) -> Result<CollabReport, String> {
    let joining = std::time::Instant::now();
    let mut seats = setup(cfg)?;
    eprintln!(
        "loadgen collab: {} editors joined in {:.1} s",
        seats.len(),
        joining.elapsed().as_secs_f64()
    );
    let epoll = Epoll::new(&seats)?;
    let start = now_ns();
    let secs = |s: f64| (s * 1e9) as u64;
    let (measure_from, stop_edits) = (
        start + secs(cfg.warmup),
        start + secs(cfg.warmup + cfg.duration),
    );
    let plan = Schedule {
        edit_every: secs(1.0 / cfg.rate.max(1e-9)),
        cursor_every: (cfg.cursor_hz > 0.0).then(|| secs(1.0 / cfg.cursor_hz)),
        stop_edits,
    };
    let n = seats.len() as u64;
    for (i, s) in seats.iter_mut().enumerate() {
        s.next_edit = start + plan.edit_every * i as u64 / n.max(1);
        s.next_cursor = start + plan.cursor_every.unwrap_or(0) * i as u64 / n.max(1);
    }
    let mut t = Tracker::new(cfg.docs, cfg.editors, measure_from);
    let drain_until = stop_edits + secs(cfg.drain);
    let mut window = Window::default();
    let mut acked_since: Option<u64> = None;
    let wait = Duration::from_millis(if cfg.spin { 0 } else { 1 });
    loop {
        let now = now_ns();
        let editing = now < stop_edits;
        let sent = (t.changes_sent, t.ops_sent);
        window.observe(cfg.server_pid, now >= measure_from, editing, sent)?;
        if editing {
            for (i, s) in seats.iter_mut().enumerate() {
                drive(s, i, &mut t, now, &plan);
            }
        }
        for s in seats.iter_mut().filter(|s| s.dirty) {
            s.dirty = matches!(s.ws.flush(), Err(tungstenite::Error::Io(_)));
        }
        // Settled: every change acknowledged, and every other editor has it, or a grace
        // period has passed (a change no other editor can get stays unmatched and is counted).
        let acked = !editing && seats.iter().all(|s| s.editor.settled());
        acked_since = if acked {
            acked_since.or(Some(now))
        } else {
            None
        };
        let grace = secs(UNMATCHED_GRACE_SECS);
        let settled = acked_since.is_some_and(|at| t.quiet() || now >= at + grace);
        if !editing && (settled || now >= drain_until) {
            break;
        }
        epoll.wait(wait, |i| read(&mut seats[i], i, &mut t))?;
    }
    let measured = (stop_edits - measure_from) as f64 / 1e9;
    let mut report = t.finish(measured, converged(cfg, &seats));
    (
        (report.window_changes, report.window_ops),
        report.server_cpu_secs,
    ) = window.result();
    Ok(report)
}

/// When the editors type and move their cursors.
struct Schedule {
    edit_every: u64,
    cursor_every: Option<u64>,
    stop_edits: u64,
}

/// Seat `i`'s turn while editing: the edits and the cursor move that are due.
fn drive(s: &mut Seat, i: usize, t: &mut Tracker, now: u64, plan: &Schedule) {
    if now >= s.next_edit {
        // Every edit due is typed, each at its intended time: a user does not wait for the
        // client, so a client that falls behind its schedule shows in op latency.
        while now >= s.next_edit && s.next_edit < plan.stop_edits {
            s.editor.edit(s.next_edit);
            s.next_edit += plan.edit_every;
        }
        submit(s, i, t, now);
    }
    if let Some(every) = plan.cursor_every.filter(|_| now >= s.next_cursor) {
        s.next_cursor += every;
        let x = now as f64 / 1e6;
        let mv = json!({"type": "cursor:move", "doc": s.editor.doc, "x": x, "y": i});
        send(s, Message::text(mv.to_string()));
        t.cursor_moves += 1;
    }
}

/// The measured window's changes and server CPU: a reading when it opens and one when edits
/// stop.
#[derive(Default)]
struct Window {
    /// (changes, ops) sent so far, and the server's CPU seconds.
    from: Option<((u64, u64), Option<f64>)>,
    to: Option<((u64, u64), Option<f64>)>,
}

impl Window {
    fn observe(
        &mut self,
        pid: Option<u32>,
        open: bool,
        editing: bool,
        changes: (u64, u64),
    ) -> Result<(), String> {
        let cpu = || pid.map(crate::process_cpu::cpu_seconds).transpose();
        if open && self.from.is_none() {
            self.from = Some((changes, cpu()?));
        }
        if !editing && self.to.is_none() {
            self.to = Some((changes, cpu()?));
        }
        Ok(())
    }

    fn result(&self) -> ((u64, u64), Option<f64>) {
        match (self.from, self.to) {
            (Some((c0, s0)), Some((c1, s1))) => {
                ((c1.0 - c0.0, c1.1 - c0.1), s0.zip(s1).map(|(a, b)| b - a))
            }
            _ => ((0, 0), None),
        }
    }
}

/// Sends what the editor's discipline lets go now: one change when none is in flight (corecast,
/// ShareDB), every keystroke's update (Hocuspocus).
fn submit(s: &mut Seat, i: usize, t: &mut Tracker, now: u64) {
    while let Some((seq, msg, typed, edits)) = s.editor.flush(now) {
        t.submitted(i, seq, typed, now, edits as u64);
        send(s, msg);
    }
}

fn send(s: &mut Seat, msg: Message) {
    match s.ws.send(msg) {
        Ok(()) => {}
        Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
            s.dirty = true
        }
        Err(e) => panic!("editor socket failed: {e}"),
    }
}

/// Reads what seat `i`'s socket holds.
fn read(s: &mut Seat, i: usize, t: &mut Tracker) -> Result<(), String> {
    loop {
        match s.ws.read() {
            Ok(Message::Text(text)) => {
                let now = now_ns();
                match s.editor.on_text(&text) {
                    Ok((heard, v)) => {
                        let ack = matches!(heard, Heard::Ack { .. });
                        t.heard(s.doc, i, &heard, v.as_ref(), now);
                        if ack {
                            submit(s, i, t, now);
                        }
                    }
                    Err(e) => t.errors.push(e),
                }
            }
            Ok(Message::Binary(frame)) => match s.editor.on_binary(&frame) {
                Ok(heard) => {
                    t.heard(s.doc, i, &heard, None, now_ns());
                }
                Err(e) => t.errors.push(e),
            },
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Ok(())
            }
            Err(e) => return Err(format!("editor {i}: {e}")),
        }
    }
}

/// A connection that has joined `doc`: its socket and the document's state message (for
/// ShareDB also the connection's agent id).
fn connect(cfg: &CollabConfig, doc: &str) -> Result<(Ws, Value, String), String> {
    let mut ws = open(cfg)?;
    let send = |ws: &mut Ws, v: Value| {
        ws.send(Message::text(v.to_string()))
            .map_err(|e| e.to_string())
    };
    if cfg.proto == Proto::ShareDb {
        send(&mut ws, json!({"a": "hs", "id": null}))?;
        let hs = wait_for(&mut ws, doc, |v| v["a"] == "hs")?;
        let agent = hs["id"].as_str().unwrap_or("").to_string();
        send(&mut ws, json!({"a": "s", "c": "docs", "d": doc}))?;
        let state = wait_for(&mut ws, doc, |v| v["a"] == "s")?;
        return Ok((ws, state, agent));
    }
    send(&mut ws, json!({"type": "doc:join", "doc": doc}))?;
    let state = wait_for(&mut ws, doc, |v| v["type"] == "doc:state")?;
    Ok((ws, state, String::new()))
}

/// A blocking connection with Nagle off, for joining.
fn open(cfg: &CollabConfig) -> Result<Ws, String> {
    let config =
        tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (ws, _) = tungstenite::client::connect_with_config(&cfg.url, Some(config), 0)
        .map_err(|e| format!("{}: {e}", cfg.url))?;
    let MaybeTlsStream::Plain(s) = ws.get_ref() else {
        return Err("collab drives plain ws:// only".into());
    };
    s.set_read_timeout(Some(JOIN_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(ws)
}

/// A Hocuspocus connection to `doc` as Yjs client `client`, synced: authenticated (an empty
/// token), our step 1 answered with the document, the server's answered with ours.
fn connect_yjs(cfg: &CollabConfig, doc: &str, client: u64) -> Result<(Ws, Replica), String> {
    let mut ws = open(cfg)?;
    let mut r = Replica::new(doc, client);
    let send = |ws: &mut Ws, frame: Vec<u8>| {
        ws.send(Message::binary(frame))
            .map_err(|e| format!("joining {doc}: {e}"))
    };
    send(&mut ws, yjs::auth(doc))?;
    send(&mut ws, r.step1())?;
    loop {
        let Message::Binary(b) = ws.read().map_err(|e| format!("joining {doc}: {e}"))? else {
            continue;
        };
        match yjs::parse(&b)? {
            yjs::Frame::Denied(why) => return Err(format!("joining {doc}: denied: {why}")),
            yjs::Frame::Step1(sv) => send(&mut ws, r.step2(&sv)?)?,
            yjs::Frame::Saved(true) => {
                r.sent.pop_front();
            }
            yjs::Frame::Saved(false) => return Err(format!("joining {doc}: sync not saved")),
            yjs::Frame::Step2(u) => {
                r.apply(&u)?;
                return Ok((ws, r));
            }
            _ => {}
        }
    }
}

/// Reads until a message `want` accepts; an error message fails.
fn wait_for(ws: &mut Ws, doc: &str, want: impl Fn(&Value) -> bool) -> Result<Value, String> {
    loop {
        let m = ws.read().map_err(|e| format!("joining {doc}: {e}"))?;
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
            if want(&v) {
                return Ok(v);
            }
            if v["type"] == "error" || v.get("error").is_some() {
                return Err(format!("joining {doc}: {v}"));
            }
        }
    }
}

fn setup(cfg: &CollabConfig) -> Result<Vec<Seat>, String> {
    let mut seats = Vec::with_capacity(cfg.docs * cfg.editors);
    for d in 0..cfg.docs {
        let doc = format!("{}-{d}", cfg.doc_prefix);
        for e in 0..cfg.editors {
            let client = format!("lg-{d}-{e}-{}", now_ns());
            let mut editor = Editor::new(&doc, client, (d * 7919 + e * 104_729 + 1) as u64);
            editor.proto = cfg.proto;
            let ws = if cfg.proto == Proto::Hocuspocus {
                let (ws, replica) = connect_yjs(cfg, &doc, (seats.len() + 1) as u64)?;
                editor.yjs = Some(replica);
                ws
            } else {
                let (ws, state, agent) = connect(cfg, &doc)?;
                editor.agent = agent;
                editor.typist = cfg.text_editors.is_some_and(|n| e >= n);
                editor.on_frame(&state)?;
                ws
            };
            if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
            }
            seats.push(Seat {
                ws,
                editor,
                doc: d,
                next_edit: 0,
                next_cursor: 0,
                dirty: false,
            });
        }
    }
    Ok(seats)
}

/// Each document's text from a fresh connection, against every settled editor's: the
/// divergences, and the editors whose changes were still unacknowledged.
fn converged(cfg: &CollabConfig, seats: &[Seat]) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut unsettled = Vec::new();
    for d in 0..cfg.docs {
        let doc = format!("{}-{d}", cfg.doc_prefix);
        let server = if cfg.proto == Proto::Hocuspocus {
            // A Yjs document has no version: its text is the whole of it.
            let reader = (1 << 40) + d as u64;
            connect_yjs(cfg, &doc, reader).map(|(_, r)| (r.text(), None))
        } else {
            connect(cfg, &doc).map(|(_, v, _)| server_state(cfg, &v))
        };
        let (text, version) = match server {
            Ok(state) => state,
            Err(e) => {
                out.push(e);
                continue;
            }
        };
        for s in seats.iter().filter(|s| s.doc == d) {
            let mine = s.editor.text();
            let unversioned = cfg.proto == Proto::Hocuspocus;
            if !s.editor.settled() {
                // Its last change never came back within the drain: the server fell behind.
                unsettled.push(s.editor.client.clone());
            } else if (!s.editor.typist && mine != text)
                || (!unversioned && Some(s.editor.version) != version)
            {
                out.push(format!(
                    "{}: {} chars at v{}, server {} chars at v{:?}",
                    s.editor.client,
                    mine.chars().count(),
                    s.editor.version,
                    text.chars().count(),
                    version
                ));
            }
        }
    }
    (out, unsettled)
}

/// A document's text and version from its state message.
fn server_state(cfg: &CollabConfig, v: &Value) -> (String, Option<u64>) {
    let (text, version) = if cfg.proto == Proto::ShareDb {
        (&v["data"]["data"], &v["data"]["v"])
    } else {
        (&v["content"], &v["version"])
    };
    (text.as_str().unwrap_or("").to_string(), version.as_u64())
}

/// epoll over the seats' sockets (readable), by seat index.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn new(seats: &[Seat]) -> Result<Epoll, String> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // SAFETY: fd is a fresh descriptor owned by nothing else.
        let ep = Epoll(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        for (i, s) in seats.iter().enumerate() {
            let MaybeTlsStream::Plain(sock) = s.ws.get_ref() else {
                return Err("plain sockets only".into());
            };
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: both descriptors are open; ev lives for the call.
            let rc = unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, sock.as_raw_fd(), &mut ev) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
        }
        Ok(ep)
    }

    fn wait(
        &self,
        timeout: Duration,
        mut on: impl FnMut(usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        // SAFETY: the buffer holds EVENTS_PER_WAIT events.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS_PER_WAIT as i32,
                timeout.as_millis() as i32,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e.to_string())
            };
        }
        for ev in &events[..n as usize] {
            on(ev.u64 as usize)?;
        }
        Ok(())
    }
}
