//! `corecast chat`, the terminal client, driven through its stdin like a person would, against
//! a real 2-shard server; and its reconnection when the server goes away and comes back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{server, Client};
use serde_json::json;

fn forward(from: impl std::io::Read, to: mpsc::Sender<String>) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        if to.send(line).is_err() {
            break;
        }
    }
}

struct Cli {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Cli {
    fn start(url: &str, user: &str, room: &str) -> Cli {
        Cli::run(&["--url", url, "--user", user, "--room", room])
    }

    /// `corecast chat ARGS`, its stdout and stderr read as one stream of lines.
    fn run(args: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corecast"))
            .arg("chat")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out_tx = tx.clone();
        std::thread::spawn(move || forward(stdout, out_tx));
        std::thread::spawn(move || forward(stderr, tx));
        Cli {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for an output line containing `text`; returns it.
    fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the client to end by itself; returns its exit status and everything it
    /// printed.
    fn ends(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                self.seen.extend(self.lines.try_iter());
                return (status, self.seen.join("\n"));
            }
            assert!(
                Instant::now() < deadline,
                "still running:\n{}",
                self.seen.join("\n")
            );
            self.seen.extend(self.lines.try_iter());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn quit(mut self) {
        self.type_line("/quit");
        self.expect("Bye.");
        let status = self.child.wait().unwrap();
        assert!(status.success());
    }
}

#[test]
fn a_scripted_session() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let mut bob = Client::user(addr, "general", "bob");
    bob.join("general");
    bob.send(json!({"type":"message:send","room":"general","content":"earlier"}));
    bob.recv_type("message:new");

    let mut cli = Cli::start(&format!("ws://{addr}/ws"), "alice", "general");
    cli.expect("Connected");
    let joined = cli.expect("Joined #general");
    assert!(
        joined.contains("alice") && joined.contains("bob"),
        "{joined}"
    );
    cli.expect("<bob> earlier");
    assert_eq!(bob.recv_type("room:user_joined")["username"], "alice");

    cli.type_line("hello from the terminal");
    let m = bob.recv_type("message:new");
    assert_eq!(
        (m["from"]["username"].as_str(), m["content"].as_str()),
        (Some("alice"), Some("hello from the terminal"))
    );
    bob.send(json!({"type":"message:send","room":"general","content":"hi alice"}));
    cli.expect("<bob> hi alice");
    bob.send(json!({"type":"typing:start","room":"general"}));
    cli.expect("bob is typing");

    cli.type_line("/users");
    cli.expect("In #general");
    cli.expect("bob (online)");
    cli.type_line("/history 2");
    cli.expect("History of #general (more before)");
    cli.type_line("/dnd");
    assert_eq!(bob.recv_type("presence:update")["status"], "dnd");
    cli.type_line("/create dev Developers");
    cli.expect("Created #dev");
    cli.type_line("/rooms");
    cli.expect("#dev - 0 members - \"Developers\"");
    cli.type_line("/join dev");
    cli.expect("Joined #dev");
    assert_eq!(bob.recv_type("room:user_left")["username"], "alice");
    cli.type_line("/bogus");
    cli.expect("unknown command /bogus");
    cli.quit();
    srv.shutdown().unwrap();
}

#[test]
fn reconnects_with_backoff_and_rejoins() {
    let first = server(|_| {});
    let addr = first.local_addr();
    let mut cli = Cli::start(&format!("ws://{addr}/ws"), "alice", "lobby");
    cli.expect("Joined #lobby");
    first.shutdown().unwrap();
    cli.expect("Disconnected");
    cli.expect("retrying in 0.5s");
    // The server comes back on the same address.
    let second = server(|c| c.addr = addr);
    cli.expect("Connected");
    cli.expect("Joined #lobby");
    let mut bob = Client::user(addr, "lobby", "bob");
    bob.join("lobby");
    bob.send(json!({"type":"message:send","room":"lobby","content":"welcome back"}));
    cli.expect("<bob> welcome back");
    cli.quit();
    second.shutdown().unwrap();
}

#[test]
fn a_refused_join_keeps_the_room_and_a_password_gets_in() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let mut bob = Client::user(addr, "general", "bob");
    bob.join("general");
    bob.send(json!({"type":"room:create","room":"secret","password":"pw"}));
    bob.recv_type("room:created");

    let mut cli = Cli::start(&format!("ws://{addr}/ws"), "alice", "general");
    cli.expect("Joined #general");
    bob.recv_type("room:user_joined");
    cli.type_line("/join secret");
    let refused = cli.expect("Could not join #secret");
    assert!(refused.contains("wrong password") && refused.contains("still in #general"));
    cli.type_line("/join secret nope");
    cli.expect("Could not join #secret");
    // Still in #general: what alice types reaches bob there.
    cli.type_line("still here");
    let m = bob.recv_type("message:new");
    assert_eq!(
        (m["room"].as_str(), m["content"].as_str()),
        (Some("general"), Some("still here"))
    );
    // The right password gets in, and only then is #general left.
    cli.type_line("/join secret pw");
    cli.expect("Joined #secret");
    assert_eq!(bob.recv_type("room:user_left")["username"], "alice");
    // A later join carries no error of an earlier one.
    cli.type_line("/join other");
    cli.expect("Joined #other");
    cli.type_line("/users");
    cli.expect("In #other");
    let stale: Vec<&String> = cli
        .seen
        .iter()
        .filter(|l| l.contains("not a member"))
        .collect();
    assert!(stale.is_empty(), "{stale:?}");
    cli.quit();
    srv.shutdown().unwrap();
}

#[test]
fn direct_messages_show_once_and_the_room_in_view_is_read() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let mut bob = Client::user(addr, "general", "bob");
    bob.join("general");
    let mut cli = Cli::start(&format!("ws://{addr}/ws"), "alice", "general");
    cli.expect("Joined #general");

    cli.type_line("/msg bob psst, over here");
    let dm = bob.recv_type("message:direct");
    assert_eq!(dm["content"], "psst, over here");
    cli.expect("(direct to bob) psst, over here");
    cli.type_line("/msg nobody-at-all hello?");
    cli.expect("Could not send \"hello?\" to nobody-at-all: no user");

    bob.send(json!({"type":"message:direct","to":"alice","content":"hi alice"}));
    cli.expect("(direct from bob) hi alice");
    for i in 0..3 {
        bob.send(json!({"type":"message:send","room":"general","content":format!("m{i}")}));
    }
    cli.expect("<bob> m2");
    // A mention of the message just shown is not printed twice.
    bob.send(json!({"type":"message:send","room":"general","content":"look @alice"}));
    cli.expect("<bob> look @alice");
    assert_eq!(
        cli.expect("mentioned you"),
        "! bob mentioned you in general"
    );
    cli.type_line("/rooms");
    let general = cli.expect("#general");
    assert!(
        !general.contains("unread"),
        "the room in view is read: {general}"
    );
    let dms = cli.seen.iter().filter(|l| l.contains("hi alice")).count();
    assert_eq!(dms, 1, "{:?}", cli.seen);
    cli.quit();
    srv.shutdown().unwrap();
}

#[test]
fn clients_without_a_name_get_names_of_their_own() {
    let srv = server(|_| {});
    let url = format!("ws://{}/ws", srv.local_addr());
    let mut one = Cli::run(&["--url", &url, "--room", "lobby"]);
    let mut two = Cli::run(&["--url", &url, "--room", "lobby"]);
    let a = one.expect("Connected");
    let b = two.expect("Connected");
    assert!(
        a.contains("as guest-") && b.contains("as guest-"),
        "{a} / {b}"
    );
    let name = |line: &str| {
        line.split(" as ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let (a, b) = (name(&a), name(&b));
    assert_ne!(a, b);
    one.expect("Joined #lobby");
    two.expect("Joined #lobby");
    one.type_line("/users");
    one.expect("In #lobby");
    let mut listed = [one.expect(" (online)"), one.expect(" (online)")];
    listed.sort();
    let mut want = [format!("    {a} (online)"), format!("    {b} (online)")];
    want.sort();
    assert_eq!(listed, want);
    one.quit();
    two.quit();
    srv.shutdown().unwrap();
}

#[test]
fn a_token_names_the_user_and_refusals_are_final_and_explained() {
    let srv = server(|c| c.auth_secret = Some(common::SECRET.into()));
    let url = format!("ws://{}/ws", srv.local_addr());
    let token = common::user_token("u-1", "alice", 60);
    let mut cli = Cli::run(&["--url", &url, "--token", &token]);
    let connected = cli.expect("Connected");
    assert!(connected.ends_with("as alice"), "{connected}");
    cli.expect("Joined #general");
    cli.quit();

    let started = Instant::now();
    let (status, out) = Cli::run(&["--url", &url, "--token", "forged"]).ends();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("401 Unauthorized ("),
        "the reason is shown: {out}"
    );
    assert!(!out.contains("retrying"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    srv.shutdown().unwrap();

    let dev = server(|_| {});
    let addr = dev.local_addr();
    let (status, out) =
        Cli::run(&["--url", &format!("ws://{addr}/ws"), "--user", "no spaces"]).ends();
    assert!(
        !status.success() && out.contains("login as \"no spaces\" refused"),
        "{out}"
    );
    assert!(!out.contains("retrying"), "{out}");
    let (status, out) = Cli::run(&["--url", &format!("ws://{addr}/nowhere")]).ends();
    assert!(
        !status.success() && out.contains("404 Not Found") && out.contains("/ws"),
        "{out}"
    );
    let (status, out) = Cli::run(&["--url", &format!("http://{addr}/ws")]).ends();
    assert!(
        !status.success() && out.contains(&format!("ws://{addr}/ws")),
        "{out}"
    );
    assert!(!out.contains("retrying"), "{out}");
    dev.shutdown().unwrap();
}
