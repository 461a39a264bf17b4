//! Nothing a client sends can exhaust the server's connections or descriptors: connections
//! over `--max-connections` get 503 before the upgrade, and a process out of descriptors
//! still refuses new connections at once and answers `/healthz`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, room_on, server, Client, KEY, RECV_TIMEOUT};
use serde_json::Value;

/// Sends an upgrade request; Ok(the open socket) on 101, Err(the response head) otherwise.
fn upgrade(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => break,
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 101") {
        Ok(s)
    } else {
        Err(head)
    }
}

fn health(addr: SocketAddr) -> Value {
    let resp = http(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = &resp[resp.find("\r\n\r\n").expect("a body") + 4..];
    serde_json::from_str(body).unwrap()
}

/// Polls `/healthz` until `ok` holds of it (or fails the test after [`RECV_TIMEOUT`]).
fn wait_health(addr: SocketAddr, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let h = health(addr);
        if ok(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what}: {h}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connections_over_the_limit_get_503_and_healthz_still_answers() {
    let srv = server(|c| c.max_connections = 5);
    let addr = srv.local_addr();
    // Five WebSockets, over both shards; two are handed to their home room's shard.
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(addr, "/ws")).collect();
    for shard in 0..2 {
        let home = room_on(shard, 2, "home");
        clients.push(Client::connect(addr, &format!("/ws/room/{home}")));
    }
    let refused = upgrade(addr).expect_err("the sixth connection is refused");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Retry-After: 2\r\n"), "{refused}");
    match tungstenite::connect(format!("ws://{addr}/ws")) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    let h = health(addr);
    assert_eq!(h["connections"], 5, "{h}");
    assert_eq!(h["stats"]["connections_refused"], 2, "{h}");
    // Those admitted still work.
    clients[0].join("still-fine");

    // One leaves: its slot is given back once the server has forgotten it.
    clients.pop().unwrap().close();
    wait_health(addr, "a closed connection gives its slot back", |h| {
        h["connections"] == 4
    });
    let mut newcomer = Client::connect(addr, "/ws");
    newcomer.join("let-in");
    let refused = upgrade(addr).expect_err("full again");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    srv.shutdown().unwrap();
}

/// The server binary, with `RLIMIT_NOFILE` set to `fds` before it starts; returns it and the
/// address it listens on (from its log).
fn spawn_with_fd_limit(fds: u64, args: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
    cmd.args(["--addr", "127.0.0.1:0", "--shards", "1", "--pin", "false"])
        .args(args)
        .env_remove("CORECAST_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: fds,
                rlim_max: fds,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("the server binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Reads the whole log (so the server never blocks on a full pipe).
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("server: {line}");
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(RECV_TIMEOUT)
        .expect("the server logs its address");
    (child, addr.parse().expect("a socket address"))
}

#[test]
fn out_of_descriptors_new_connections_are_refused_at_once_and_healthz_answers() {
    let (mut child, addr) = spawn_with_fd_limit(64, &["--max-connections", "10000"]);
    let mut open = Vec::new();
    let refused = loop {
        assert!(
            open.len() < 64,
            "64 descriptors held more than 64 connections"
        );
        let started = Instant::now();
        match upgrade(addr) {
            Ok(s) => open.push(s),
            Err(head) => {
                let took = started.elapsed();
                assert!(took < Duration::from_secs(1), "refused after {took:?}");
                break head;
            }
        }
    };
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Retry-After: "), "{refused}");
    assert!(open.len() >= 10, "only {} connections got in", open.len());
    // Sockets that send nothing take the last descriptors (an upgrade needs two for a
    // moment, so WebSockets alone stop one short): from now on `accept` itself fails.
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // Still out of descriptors: refused again, promptly, and /healthz answers.
    for _ in 0..5 {
        let started = Instant::now();
        let head = upgrade(addr).expect_err("still full");
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let h = health(addr);
    assert!(
        h["stats"]["connections_refused"].as_u64().unwrap() >= 6,
        "{h}"
    );
    assert!(h["stats"]["accept_failures"].as_u64().unwrap() >= 1, "{h}");
    assert_eq!(h["connections"], open.len(), "{h}");
    // Two leave: new connections get in again.
    drop(silent);
    open.truncate(open.len() - 2);
    wait_health(addr, "closed connections free their descriptors", |h| {
        h["connections"] == open.len()
    });
    open.push(upgrade(addr).expect("a freed descriptor admits a connection"));
    child.kill().unwrap();
    child.wait().unwrap();
}
