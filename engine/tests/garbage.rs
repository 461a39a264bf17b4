//! Bad input from many clients at once: random frames and random bytes never take the server
//! down or disturb a well-behaved client; every garbage connection ends with a close frame or
//! is still usable.

mod common;

use std::time::Duration;

use common::{server, Client, Raw};
use serde_json::json;

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_frames_and_bytes_never_hurt_the_server() {
    let srv = server(|c| c.max_message_bytes = 4096);
    let addr = srv.local_addr();
    let mut good = Client::connect(addr, "/ws");
    good.join("calm");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60 {
        let mut raw = Raw::connect(addr);
        raw.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        for _ in 0..(1 + rng.next() % 4) {
            match rng.next() % 5 {
                // A frame with a random first byte (opcode, RSV, FIN) and random payload.
                0 | 1 => {
                    let b0 = rng.next() as u8;
                    let len = (rng.next() % 300) as usize;
                    let payload = rng.bytes(len);
                    raw.frame(b0, &payload);
                }
                // A text frame with random JSON-ish content.
                2 => {
                    let junk = [
                        "{",
                        "}",
                        "\"type\"",
                        ":",
                        "\"room:join\"",
                        "\"room\"",
                        "[",
                        "]",
                        "1",
                        ",",
                        "\"message:send\"",
                        "\"content\"",
                        "null",
                    ];
                    let text: String = (0..(rng.next() % 20))
                        .map(|_| junk[(rng.next() % junk.len() as u64) as usize])
                        .collect();
                    raw.frame(0x81, text.as_bytes());
                }
                // Raw bytes, no framing at all.
                3 => {
                    let len = (rng.next() % 64) as usize;
                    let bytes = rng.bytes(len);
                    raw.write(&bytes);
                }
                // A header that promises far more than it sends.
                _ => raw.write(&[0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]),
            }
        }
        // Whatever happened, the connection either answers or was closed with a valid code.
        loop {
            match raw.read_frame() {
                Some((8, p)) => {
                    let code = u16::from_be_bytes([p[0], p[1]]);
                    // Ours for a violation, or the client's own valid code echoed back.
                    assert!(
                        [1002, 1003, 1007, 1009].contains(&code)
                            || corecast::protocol::close::is_valid_peer_code(code),
                        "round {round}: close code {code}"
                    );
                    break;
                }
                Some(_) => continue,
                None => break, // Timeout (still open) or closed after the close frame.
            }
        }
        // The well-behaved client is untouched.
        good.send(json!({"type":"message:send","room":"calm","content":round}));
        assert_eq!(good.recv_type("message:new")["content"], round);
    }
    let stats: serde_json::Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert!(stats["protocol_closes"].as_u64().unwrap() > 0, "{stats}");
    srv.shutdown().unwrap();
}
