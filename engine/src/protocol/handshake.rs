//! The HTTP/1.1 request that opens a connection: WebSocket upgrade (RFC 6455 4.2) or a plain
//! HTTP endpoint, and the responses to each.
//!
//! Invariant: [`parse_request`] returns a [`Route::WebSocket`] only for a request the server may
//! upgrade (GET, Upgrade and Connection headers, a well-formed key, version 13, a ws path);
//! everything else maps to one HTTP status with a reason.

use super::message::valid_room_name;
use crate::limits::{API_BODY_BYTES_MAX, HANDSHAKE_REQUEST_BYTES_MAX, REFUSED_RETRY_AFTER_SECS};

/// Headers parsed from one request; more is a 431.
const REQUEST_HEADERS_MAX: usize = 64;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Upgrade to a WebSocket; `home` is the home topic named in the path or query (a room,
    /// or [`DOC_TOPIC_PREFIX`] and a document for `/ws/collab/{doc}`), `token`
    /// the JWT from `?token=` or `Authorization: Bearer`, `protocols` the subprotocols the
    /// client offers (`Sec-WebSocket-Protocol`), in its order of preference.
    WebSocket {
        key: String,
        home: Option<String>,
        token: Option<String>,
        protocols: Vec<String>,
    },
    /// `GET /healthz`.
    Health,
    /// `GET` of a file the engine serves (the JS client, pages), by its path.
    Asset { path: String },
    /// `POST /api/notify` or `/api/publish` with a JSON body of `content_length` bytes;
    /// `api_key` from `Authorization: Bearer` or `X-Api-Key`.
    Api {
        endpoint: ApiEndpoint,
        api_key: Option<String>,
        content_length: usize,
    },
}

/// The backend's HTTP endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiEndpoint {
    Notify,
    Publish,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub route: Route,
    /// Bytes of the head, including the blank line; anything after it is frame data.
    pub head_len: usize,
}

/// Why a request is refused, with the HTTP status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed HTTP request")]
    Malformed,
    #[error("request head exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("method {method} is not GET")]
    NotGet { method: String },
    #[error("no route for {path}")]
    NotFound { path: String },
    #[error("missing or wrong Upgrade/Connection headers")]
    NotUpgrade,
    #[error("missing or malformed Sec-WebSocket-Key")]
    BadKey,
    #[error("unsupported Sec-WebSocket-Version {version:?}")]
    BadVersion { version: String },
    #[error("invalid room name in the request")]
    BadRoom,
    #[error("Content-Length required")]
    LengthRequired,
    #[error("request body exceeds {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("the server holds its most connections ({max}); retry later")]
    TooManyConnections { max: usize },
    #[error("the server is out of file descriptors; retry later")]
    NoDescriptors,
}

impl HandshakeError {
    /// The HTTP status line's code and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            HandshakeError::TooLarge { .. } => (431, "Request Header Fields Too Large"),
            HandshakeError::NotFound { .. } => (404, "Not Found"),
            HandshakeError::BadVersion { .. } => (426, "Upgrade Required"),
            HandshakeError::LengthRequired => (411, "Length Required"),
            HandshakeError::BodyTooLarge { .. } => (413, "Content Too Large"),
            HandshakeError::TooManyConnections { .. } | HandshakeError::NoDescriptors => {
                (503, "Service Unavailable")
            }
            _ => (400, "Bad Request"),
        }
    }

    /// The full HTTP response for this refusal; the connection closes after it.
    pub fn response(&self) -> Vec<u8> {
        let (code, reason) = self.status();
        let extra = match self {
            HandshakeError::BadVersion { .. } => "Sec-WebSocket-Version: 13\r\n".to_string(),
            _ if code == 503 => format!("Retry-After: {REFUSED_RETRY_AFTER_SECS}\r\n"),
            _ => String::new(),
        };
        http_response(
            code,
            reason,
            &extra,
            "text/plain",
            self.to_string().as_bytes(),
        )
    }
}

/// Parses a request head from `buf`. `Ok(None)`: incomplete, read more.
pub fn parse_request(buf: &[u8]) -> Result<Option<Request>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; REQUEST_HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let too_large = HandshakeError::TooLarge {
        max: HANDSHAKE_REQUEST_BYTES_MAX,
    };
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= HANDSHAKE_REQUEST_BYTES_MAX => {
            return Err(too_large)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(too_large),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if head_len > HANDSHAKE_REQUEST_BYTES_MAX {
        return Err(too_large);
    }
    let head = Head {
        method: req.method.unwrap_or(""),
        target: req.path.unwrap_or(""),
        headers: req.headers,
    };
    let route = head.route()?;
    Ok(Some(Request { route, head_len }))
}

/// The paths of the files the engine serves (see `server::assets`).
pub const ASSET_PATHS: &[&str] = &[
    "/",
    "/chat",
    "/collab",
    "/playground",
    "/style.css",
    "/index.js",
    "/chat.js",
    "/chat-view.js",
    "/collab.js",
    "/ui.js",
    "/playground.js",
    "/favicon.svg",
    "/client.js",
    "/client.d.ts",
];

fn is_asset_path(path: &str) -> bool {
    ASSET_PATHS.contains(&path)
}

/// A parsed request head's parts.
struct Head<'h, 'b> {
    method: &'b str,
    target: &'b str,
    headers: &'h [httparse::Header<'b>],
}

impl<'b> Head<'_, 'b> {
    fn header(&self, name: &str) -> Option<&'b str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    }

    /// Whether header `name` lists `token` (comma-separated, any case).
    fn lists(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    fn route(&self) -> Result<Route, HandshakeError> {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.target, None),
        };
        let endpoint = match path {
            "/api/notify" => Some(ApiEndpoint::Notify),
            "/api/publish" => Some(ApiEndpoint::Publish),
            _ => None,
        };
        if let (Some(endpoint), "POST") = (endpoint, self.method) {
            return self.api(endpoint);
        }
        if self.method != "GET" {
            return Err(HandshakeError::NotGet {
                method: self.method.to_string(),
            });
        }
        if path == "/healthz" {
            return Ok(Route::Health);
        }
        if is_asset_path(path) {
            return Ok(Route::Asset {
                path: path.to_string(),
            });
        }
        if path != "/ws" && !path.starts_with("/ws/") {
            return Err(HandshakeError::NotFound {
                path: path.to_string(),
            });
        }
        self.websocket(path, query)
    }

    fn bearer(&self) -> Option<String> {
        self.header("authorization").and_then(bearer_token)
    }

    fn api(&self, endpoint: ApiEndpoint) -> Result<Route, HandshakeError> {
        let content_length = self
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(HandshakeError::LengthRequired)?;
        if content_length > API_BODY_BYTES_MAX {
            return Err(HandshakeError::BodyTooLarge {
                max: API_BODY_BYTES_MAX,
            });
        }
        let api_key = self
            .bearer()
            .or_else(|| self.header("x-api-key").map(|v| v.trim().to_string()));
        Ok(Route::Api {
            endpoint,
            api_key,
            content_length,
        })
    }

    fn websocket(&self, path: &str, query: Option<&str>) -> Result<Route, HandshakeError> {
        if !self.lists("upgrade", "websocket") || !self.lists("connection", "upgrade") {
            return Err(HandshakeError::NotUpgrade);
        }
        let version = self.header("sec-websocket-version").unwrap_or("").trim();
        if version != "13" {
            return Err(HandshakeError::BadVersion {
                version: version.to_string(),
            });
        }
        let key = self.header("sec-websocket-key").unwrap_or("").trim();
        if !valid_key(key) {
            return Err(HandshakeError::BadKey);
        }
        let home = home_topic(path, query)?;
        let token = query
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
            .map(str::to_string)
            .or_else(|| self.bearer());
        let protocols = self
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Route::WebSocket {
            key: key.to_string(),
            home,
            token,
            protocols,
        })
    }
}

/// The subprotocol to answer with: the first the client offers that the server `supports`
/// (RFC 6455 4.2.2: one of the client's). None: the 101 carries no `Sec-WebSocket-Protocol`
/// (RFC 6455 allows it; a client that insists on a subprotocol then fails the handshake).
pub fn choose_protocol<'a>(offered: &'a [String], supports: &[&str]) -> Option<&'a str> {
    offered
        .iter()
        .map(String::as_str)
        .find(|p| supports.contains(p))
}

/// Whether `name` is a valid subprotocol name: an HTTP token (RFC 6455 4.1, RFC 7230 3.2.6).
pub fn valid_protocol_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The credentials of an `Authorization: Bearer {token}` header. The scheme is
/// case-insensitive (RFC 9110 11.1), so `bearer` and `BEARER` work too; other schemes: None.
fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The topic name of document `{doc}` (`/ws/collab/{doc}`): `/` is in no room name, so a
/// document's topic never meets a room's.
pub const DOC_TOPIC_PREFIX: &str = "doc/";

/// The home topic: room `{room}` for `/ws/room/{room}` or `?room={room}`, document `{doc}`
/// for `/ws/collab/{doc}` (names as room names).
fn home_topic(path: &str, query: Option<&str>) -> Result<Option<String>, HandshakeError> {
    if let Some(doc) = path.strip_prefix("/ws/collab/") {
        if !valid_room_name(doc) {
            return Err(HandshakeError::BadRoom);
        }
        return Ok(Some(format!("{DOC_TOPIC_PREFIX}{doc}")));
    }
    let from_path = path.strip_prefix("/ws/room/");
    let from_query = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("room=")));
    match from_path.or(from_query) {
        None => Ok(None),
        Some(room) if valid_room_name(room) => Ok(Some(room.to_string())),
        Some(_) => Err(HandshakeError::BadRoom),
    }
}

/// A key is the base64 of 16 bytes: 22 alphabet characters and `==`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// The 101 response that completes the upgrade, with the chosen subprotocol if any.
pub fn accept_response(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let protocol = protocol.map_or(String::new(), |p| {
        format!("Sec-WebSocket-Protocol: {p}\r\n")
    });
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
    )
    .into_bytes()
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn http_response(
    code: u16,
    reason: &str,
    extra_headers: &str,
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\n{extra_headers}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn req(target: &str, extra: &str) -> String {
        format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn accepts_a_browser_upgrade() {
        let r = req("/ws", "");
        let parsed = parse_request(r.as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.head_len, r.len());
        assert_eq!(
            parsed.route,
            Route::WebSocket {
                key: KEY.into(),
                home: None,
                token: None,
                protocols: Vec::new(),
            }
        );
        let resp = String::from_utf8(accept_response(KEY, None)).unwrap();
        // The example from RFC 6455 section 1.3.
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(!resp.contains("Sec-WebSocket-Protocol"));
        assert!(resp.ends_with("\r\n\r\n"));
    }

    #[test]
    fn subprotocols_offered_and_chosen() {
        let r = req(
            "/ws",
            "Sec-WebSocket-Protocol: v2, corecast.v1\r\nSec-WebSocket-Protocol: json\r\n",
        );
        let p = parse_request(r.as_bytes()).unwrap().unwrap();
        let Route::WebSocket { protocols, .. } = p.route else {
            panic!("{:?}", p.route)
        };
        assert_eq!(protocols, ["v2", "corecast.v1", "json"]);
        let supports = ["corecast.v1", "json", "v1"];
        // The client's first choice that the server speaks.
        assert_eq!(choose_protocol(&protocols, &supports), Some("corecast.v1"));
        let offered = ["v1".to_string(), "v2".to_string()];
        assert_eq!(choose_protocol(&offered, &supports), Some("v1"));
        assert_eq!(choose_protocol(&["mqtt".to_string()], &supports), None);
        assert_eq!(choose_protocol(&[], &supports), None);
        let resp = String::from_utf8(accept_response(KEY, Some("v1"))).unwrap();
        assert!(
            resp.contains("\r\nSec-WebSocket-Protocol: v1\r\n\r\n"),
            "{resp}"
        );
        assert!(valid_protocol_name("corecast.v1"));
        assert!(
            !valid_protocol_name("a b") && !valid_protocol_name("") && !valid_protocol_name("a,b")
        );
    }

    #[test]
    fn home_room_from_path_or_query() {
        let p = parse_request(req("/ws/room/lobby-1", "").as_bytes())
            .unwrap()
            .unwrap();
        assert!(matches!(p.route, Route::WebSocket { home: Some(r), .. } if r == "lobby-1"));
        let p = parse_request(req("/ws/chat?x=1&room=general", "").as_bytes())
            .unwrap()
            .unwrap();
        assert!(matches!(p.route, Route::WebSocket { home: Some(r), .. } if r == "general"));
        assert_eq!(
            parse_request(req("/ws/room/bad%20name", "").as_bytes()),
            Err(HandshakeError::BadRoom)
        );
        let p = parse_request(req("/ws/collab/doc123", "").as_bytes())
            .unwrap()
            .unwrap();
        assert!(matches!(p.route, Route::WebSocket { home: Some(r), .. } if r == "doc/doc123"));
        assert_eq!(
            parse_request(req("/ws/collab/", "").as_bytes()),
            Err(HandshakeError::BadRoom)
        );
    }

    #[test]
    fn partial_requests_wait_for_more() {
        let r = req("/ws", "");
        assert_eq!(parse_request(&r.as_bytes()[..20]), Ok(None));
    }

    #[test]
    fn refusals_and_their_statuses() {
        let bad_version = req("/ws", "").replace("Version: 13", "Version: 8");
        let e = parse_request(bad_version.as_bytes()).unwrap_err();
        assert_eq!(e.status().0, 426);
        assert!(String::from_utf8(e.response())
            .unwrap()
            .contains("Sec-WebSocket-Version: 13\r\n"));

        let bad_key = req("/ws", "").replace(KEY, "short");
        assert_eq!(
            parse_request(bad_key.as_bytes()),
            Err(HandshakeError::BadKey)
        );
        let no_key = req("/ws", "").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
        assert_eq!(
            parse_request(no_key.as_bytes()).unwrap_err().status().0,
            400
        );

        let post = req("/ws", "").replacen("GET", "POST", 1);
        assert_eq!(parse_request(post.as_bytes()).unwrap_err().status().0, 400);

        let e = parse_request(req("/nope", "").as_bytes()).unwrap_err();
        assert_eq!(e.status().0, 404);

        let no_upgrade = req("/ws", "").replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            parse_request(no_upgrade.as_bytes()),
            Err(HandshakeError::NotUpgrade)
        );

        let huge = req("/ws", &format!("X-Big: {}\r\n", "a".repeat(9000)));
        assert_eq!(parse_request(huge.as_bytes()).unwrap_err().status().0, 431);
        let endless = format!("GET /ws HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert_eq!(
            parse_request(endless.as_bytes()).unwrap_err().status().0,
            431
        );

        assert_eq!(
            parse_request(b"\x00\x01garbage\r\n\r\n"),
            Err(HandshakeError::Malformed)
        );
    }

    #[test]
    fn tokens_from_query_or_bearer() {
        let p = parse_request(req("/ws?room=a&token=abc.def", "").as_bytes())
            .unwrap()
            .unwrap();
        assert!(matches!(p.route, Route::WebSocket { token: Some(t), .. } if t == "abc.def"));
        let p = parse_request(req("/ws", "Authorization: Bearer xyz\r\n").as_bytes())
            .unwrap()
            .unwrap();
        assert!(matches!(p.route, Route::WebSocket { token: Some(t), .. } if t == "xyz"));
        for header in ["bearer xyz", "BEARER   xyz ", "BeArEr xyz"] {
            let r = req("/ws", &format!("Authorization: {header}\r\n"));
            let p = parse_request(r.as_bytes()).unwrap().unwrap();
            assert!(
                matches!(&p.route, Route::WebSocket { token: Some(t), .. } if t == "xyz"),
                "{header}: {:?}",
                p.route
            );
        }
        for header in ["Basic eHl6", "Bearer", "Bearerxyz"] {
            let r = req("/ws", &format!("Authorization: {header}\r\n"));
            let p = parse_request(r.as_bytes()).unwrap().unwrap();
            assert!(
                matches!(&p.route, Route::WebSocket { token: None, .. }),
                "{header}"
            );
        }
    }

    #[test]
    fn api_routes() {
        let r =
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nX-Api-Key: k\r\nContent-Length: 12\r\n\r\n";
        let p = parse_request(r.as_bytes()).unwrap().unwrap();
        assert_eq!(
            p.route,
            Route::Api {
                endpoint: ApiEndpoint::Publish,
                api_key: Some("k".into()),
                content_length: 12
            }
        );
        let no_len = "POST /api/notify HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse_request(no_len.as_bytes()).unwrap_err().status().0,
            411
        );
        let big = "POST /api/notify HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(parse_request(big.as_bytes()).unwrap_err().status().0, 413);
        let get = "GET /api/notify HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse_request(get.as_bytes()).unwrap_err().status().0, 404);
    }

    #[test]
    fn health_route() {
        let p = parse_request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.route, Route::Health);
    }
}
