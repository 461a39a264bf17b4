//! The client's HTTP upgrade: the request loadgen sends and the response it accepts.
//!
//! Invariant: a response is accepted only if it is `101` with the right `Sec-WebSocket-Accept`;
//! anything else is reported with its status line.

/// The upgrade request for `path` on `host`, with extra headers and subprotocols.
pub fn request(
    host: &str,
    path: &str,
    key: &str,
    headers: &[String],
    subprotocols: &[String],
) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !subprotocols.is_empty() {
        r.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            subprotocols.join(", ")
        ));
    }
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A key for connection `n` (any 16 bytes, base64).
pub fn key_for(n: u64) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    let mut out = String::with_capacity(24);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Why an upgrade failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The server answered with another status: its status line.
    Status(String),
    /// The response was not HTTP, or lacked the right accept key.
    Invalid(String),
}

/// Parses a response head: `Ok(Some(len))` when complete and accepted, `Ok(None)` for more.
pub fn response(buf: &[u8], key: &str) -> Result<Option<usize>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Refusal::Invalid(format!("bad HTTP response: {e}"))),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(Refusal::Status(format!(
            "HTTP/1.1 {code} {}",
            resp.reason.unwrap_or("")
        )));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let ok = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == expected.as_bytes()
    });
    if !ok {
        return Err(Refusal::Invalid(
            "missing or wrong Sec-WebSocket-Accept".into(),
        ));
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_base64_of_16_bytes() {
        for n in [0, 1, u64::MAX] {
            let k = key_for(n);
            assert_eq!(k.len(), 24);
            assert!(k.ends_with("=="));
        }
        assert_ne!(key_for(1), key_for(2));
    }

    #[test]
    fn accepts_only_a_proper_101() {
        let key = key_for(5);
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept}\r\n\r\nrest"
        );
        assert_eq!(response(ok.as_bytes(), &key), Ok(Some(ok.len() - 4)));
        assert_eq!(response(b"HTTP/1.1 101 Sw", &key), Ok(None));
        assert_eq!(
            response(b"HTTP/1.1 401 Unauthorized\r\n\r\n", &key),
            Err(Refusal::Status("HTTP/1.1 401 Unauthorized".into()))
        );
        assert!(matches!(
            response(
                b"HTTP/1.1 101 X\r\nSec-WebSocket-Accept: nope\r\n\r\n",
                &key
            ),
            Err(Refusal::Invalid(_))
        ));
        let r = String::from_utf8(request(
            "h",
            "/ws",
            &key,
            &["Authorization: Bearer t".into()],
            &["chat".into()],
        ))
        .unwrap();
        assert!(r.contains("Authorization: Bearer t\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: chat\r\n"));
    }
}
