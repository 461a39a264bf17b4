//! What loadgen says to a server: how to join a room and publish, and what to wait for, for
//! corecast, for any JSON server described by templates, and for plain echo servers.
//!
//! Invariant: a rendered publish message contains the marker content verbatim, once.

use serde::Serialize;

/// How to talk to the server under test.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Protocol {
    /// corecast's JSON protocol.
    Corecast,
    /// Any JSON server: templates with `{room}`, `{content}`, `{conn}`, `{seq}` placeholders.
    Template {
        join: Option<String>,
        publish: String,
        /// After connecting, wait for a text frame containing this before joining.
        greeting: Option<String>,
        /// After joining, wait for a text frame containing this.
        joined: Option<String>,
    },
    /// Plain echo servers: the content is sent as is and comes back.
    Echo,
    /// Socket.IO 4 over its WebSocket transport (Engine.IO framing): connects to the default
    /// namespace, emits `room:join {room}` and waits for `room:joined`, publishes with
    /// `message:send {room, content}`, answers the server's pings.
    SocketIo,
}

pub const CORECAST_JOIN: &str = r#"{"type":"room:join","room":"{room}"}"#;
pub const CORECAST_PUBLISH: &str =
    r#"{"type":"message:send","room":"{room}","content":"{content}"}"#;
pub const SOCKETIO_JOIN: &str = r#"42["room:join",{"room":"{room}"}]"#;
pub const SOCKETIO_PUBLISH: &str = r#"42["message:send",{"room":"{room}","content":"{content}"}]"#;
/// The path of Socket.IO's WebSocket transport.
pub const SOCKETIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

impl Protocol {
    /// The join message for `room`, if the protocol has rooms.
    pub fn join(&self, room: &str, conn: usize) -> Option<Vec<u8>> {
        let t = match self {
            Protocol::Corecast => CORECAST_JOIN,
            Protocol::SocketIo => SOCKETIO_JOIN,
            Protocol::Template { join: Some(j), .. } => j,
            _ => return None,
        };
        Some(render(t, room, b"", conn, 0))
    }

    /// What to wait for before joining.
    pub fn greeting(&self) -> Option<&str> {
        match self {
            Protocol::Corecast => Some("connection:established"),
            Protocol::SocketIo => Some("0{"),
            Protocol::Template { greeting, .. } => greeting.as_deref(),
            Protocol::Echo => None,
        }
    }

    /// What proves the join took effect.
    pub fn joined(&self) -> Option<&str> {
        match self {
            Protocol::Corecast | Protocol::SocketIo => Some("room:joined"),
            Protocol::Template { joined, .. } => joined.as_deref(),
            Protocol::Echo => None,
        }
    }

    /// Appends the publish message carrying `content` to `out`.
    pub fn publish_into(
        &self,
        out: &mut Vec<u8>,
        room: &str,
        content: &[u8],
        conn: usize,
        seq: u64,
    ) {
        let t = match self {
            Protocol::Corecast => CORECAST_PUBLISH,
            Protocol::SocketIo => SOCKETIO_PUBLISH,
            Protocol::Template { publish, .. } => publish,
            Protocol::Echo => {
                out.extend_from_slice(content);
                return;
            }
        };
        render_into(out, t, room, content, conn, seq);
    }
}

impl Protocol {
    /// A message to send after the greeting and the text that acknowledges it (Socket.IO's
    /// namespace connect).
    pub fn hello(&self) -> Option<(&'static [u8], &'static str)> {
        match self {
            Protocol::SocketIo => Some((b"40", "40")),
            _ => None,
        }
    }

    /// Whether a text frame received during setup refuses it (corecast's `error` or
    /// `auth:error`, e.g. a join refused): the refusal's code, shown as the failure's cause.
    pub fn refusal(&self, text: &[u8]) -> Option<String> {
        if !matches!(self, Protocol::Corecast) || memchr::memmem::find(text, b"error").is_none() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(text).ok()?;
        let kind = v.get("type")?.as_str()?;
        if kind != "error" && kind != "auth:error" {
            return None;
        }
        let code = v.get("code").and_then(|c| c.as_str()).unwrap_or("no code");
        Some(format!("refused by the server: {kind} {code}"))
    }

    /// The reply to a text frame that is an application-level ping (Engine.IO's `2`).
    pub fn pong_for(&self, text: &[u8]) -> Option<&'static [u8]> {
        match (self, text) {
            (Protocol::SocketIo, b"2") => Some(b"3"),
            _ => None,
        }
    }
}

/// Fills a template's placeholders.
pub fn render(template: &str, room: &str, content: &[u8], conn: usize, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + content.len() + room.len());
    render_into(&mut out, template, room, content, conn, seq);
    out
}

fn render_into(
    out: &mut Vec<u8>,
    template: &str,
    room: &str,
    content: &[u8],
    conn: usize,
    seq: u64,
) {
    use std::io::Write;
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let tail = &rest[i..];
        let taken = if let Some(t) = tail.strip_prefix("{room}") {
            out.extend_from_slice(room.as_bytes());
            t
        } else if let Some(t) = tail.strip_prefix("{content}") {
            out.extend_from_slice(content);
            t
        } else if let Some(t) = tail.strip_prefix("{conn}") {
            write!(out, "{conn}").expect("Vec write");
            t
        } else if let Some(t) = tail.strip_prefix("{seq}") {
            write!(out, "{seq}").expect("Vec write");
            t
        } else {
            out.push(b'{');
            &tail[1..]
        };
        rest = taken;
    }
    out.extend_from_slice(rest.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder_and_keep_other_braces() {
        let t = r#"{"t":"pub","room":"{room}","c":"{content}","n":{conn},"s":{seq},"x":{}}"#;
        let out = render(t, "r1", b"~lg~", 7, 9);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"t":"pub","room":"r1","c":"~lg~","n":7,"s":9,"x":{}}"#
        );
    }

    #[test]
    fn corecast_messages() {
        let p = Protocol::Corecast;
        let join: serde_json::Value = serde_json::from_slice(&p.join("a", 0).unwrap()).unwrap();
        assert_eq!(join["type"], "room:join");
        let mut out = Vec::new();
        p.publish_into(&mut out, "a", b"hello", 0, 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["content"], "hello");
        let mut out = Vec::new();
        Protocol::Echo.publish_into(&mut out, "a", b"raw", 0, 0);
        assert_eq!(out, b"raw");
    }

    #[test]
    fn socketio_packets() {
        let p = Protocol::SocketIo;
        assert_eq!(p.join("r", 0).unwrap(), br#"42["room:join",{"room":"r"}]"#);
        let mut out = Vec::new();
        p.publish_into(&mut out, "r", b"c", 0, 0);
        let v: serde_json::Value = serde_json::from_slice(&out[2..]).unwrap();
        assert_eq!(v[0], "message:send");
        assert_eq!(v[1]["content"], "c");
        assert_eq!(p.pong_for(b"2"), Some(&b"3"[..]));
        assert_eq!(p.pong_for(b"22"), None);
        assert_eq!(Protocol::Corecast.pong_for(b"2"), None);
    }

    #[test]
    fn corecast_refusals_name_their_code() {
        let p = Protocol::Corecast;
        let refused = br#"{"type":"error","code":"wrong_password","message":"no"}"#;
        assert_eq!(
            p.refusal(refused).as_deref(),
            Some("refused by the server: error wrong_password")
        );
        let login = br#"{"type":"auth:error","code":"invalid_username","message":"x"}"#;
        assert!(p.refusal(login).unwrap().contains("invalid_username"));
        let chat = br#"{"type":"message:new","content":"an error"}"#;
        assert_eq!(p.refusal(chat), None);
        assert_eq!(Protocol::Echo.refusal(refused), None);
    }
}
