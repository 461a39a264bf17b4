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
}

pub const CORECAST_JOIN: &str = r#"{"type":"room:join","room":"{room}"}"#;
pub const CORECAST_PUBLISH: &str =
    r#"{"type":"message:send","room":"{room}","content":"{content}"}"#;

impl Protocol {
    /// The join message for `room`, if the protocol has rooms.
    pub fn join(&self, room: &str, conn: usize) -> Option<Vec<u8>> {
        let t = match self {
            Protocol::Corecast => CORECAST_JOIN,
            Protocol::Template { join: Some(j), .. } => j,
            _ => return None,
        };
        Some(render(t, room, b"", conn, 0))
    }

    /// What to wait for before joining.
    pub fn greeting(&self) -> Option<&str> {
        match self {
            Protocol::Corecast => Some("connection:established"),
            Protocol::Template { greeting, .. } => greeting.as_deref(),
            Protocol::Echo => None,
        }
    }

    /// What proves the join took effect.
    pub fn joined(&self) -> Option<&str> {
        match self {
            Protocol::Corecast => Some("room:joined"),
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
            Protocol::Template { publish, .. } => publish,
            Protocol::Echo => {
                out.extend_from_slice(content);
                return;
            }
        };
        render_into(out, t, room, content, conn, seq);
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
}
