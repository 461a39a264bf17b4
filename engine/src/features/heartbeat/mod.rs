//! Heartbeat: `ping {ref?}` answered with `pong {ts, ref?}`, so a client that cannot see
//! WebSocket pings (a browser) can tell a live but quiet connection from a dead one.
//!
//! Invariant: every `ping` that passes the budgets gets exactly one `pong`, from the shard the
//! connection is on; nothing else happens.

use bytes::Bytes;

use crate::protocol::event::{frame, open, push_num, push_ref};
use crate::protocol::message::{AppError, Fields};
use crate::server::Ctx;

#[derive(Debug, PartialEq)]
pub enum ClientMsg {
    /// `ping {ref?}`
    Ping,
}

impl ClientMsg {
    /// Parses a message of type `kind`; None when the type is not this feature's.
    pub fn parse(kind: &str, _fields: &Fields<'_>) -> Option<Result<Self, AppError>> {
        (kind == "ping").then_some(Ok(Self::Ping))
    }

    /// Budget units: the cheapest message, like a read mark.
    pub fn cost(&self) -> u32 {
        1
    }
}

/// `pong {ts, ref?}`: `ts` is the server's time (Unix ms).
pub fn pong(ts_ms: u64, reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, "pong");
        push_num(o, b"ts", ts_ms);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// Answers a `ping` from connection `key`.
pub fn on_client(ctx: &mut Ctx<'_>, key: usize, _message: ClientMsg, reference: Option<&[u8]>) {
    let ts = ctx.now().unix_ms;
    ctx.reply(key, pong(ts, reference));
}

#[cfg(test)]
mod tests {
    use crate::server::harness::Harness;

    #[test]
    fn a_ping_gets_one_pong_with_its_ref() {
        let mut h = Harness::new(1);
        let c = h.connect(0);
        h.received(c);
        h.send(c, r#"{"type":"ping","ref":"hb1"}"#);
        let got = h.received(c);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["type"], "pong");
        assert_eq!(got[0]["ref"], "hb1");
        assert_eq!(got[0]["ts"], h.now().unix_ms);
    }
}
