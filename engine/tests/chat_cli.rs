//! `corecast chat`, the terminal client, driven through its stdin like a person would, against
//! a real 2-shard server; and its reconnection when the server goes away and comes back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{server, Client};
use serde_json::json;

struct Cli {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Cli {
    fn start(url: &str, user: &str, room: &str) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corecast"))
            .args(["chat", "--url", url, "--user", user, "--room", room])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
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
    cli.expect("#dev - 0 member(s): Developers");
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
    cli.expect("reconnecting in 0.5s");
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
