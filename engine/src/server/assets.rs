//! The files the engine serves over HTTP, embedded in the binary: the pages (`/`, `/chat`,
//! `/collab`, `/playground`) with their script, style and icon, and the JS client with its types. No
//! file system, no network: they work offline.
//!
//! Invariant: every path in `protocol::handshake::ASSET_PATHS` has an entry here (a test
//! checks), and every answer carries `X-Content-Type-Options: nosniff` and a
//! `Content-Security-Policy`.

use crate::protocol::handshake::http_response;

/// An embedded file: its content type and bytes.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The embedded file at `path`.
pub fn asset(path: &str) -> Option<Asset> {
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    let (content_type, body): (&str, &[u8]) = match path {
        "/" => (HTML, include_bytes!("../../../clients/pages/index.html")),
        "/chat" => (HTML, include_bytes!("../../../clients/pages/chat.html")),
        "/chat.js" => (JS, include_bytes!("../../../clients/pages/chat.js")),
        "/chat-view.js" => (JS, include_bytes!("../../../clients/pages/chat-view.js")),
        "/collab" => (HTML, include_bytes!("../../../clients/pages/collab.html")),
        "/collab.js" => (JS, include_bytes!("../../../clients/pages/collab.js")),
        "/ui.js" => (JS, include_bytes!("../../../clients/pages/ui.js")),
        "/playground" => (
            HTML,
            include_bytes!("../../../clients/pages/playground.html"),
        ),
        "/style.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../../clients/pages/style.css"),
        ),
        "/index.js" => (JS, include_bytes!("../../../clients/pages/index.js")),
        "/playground.js" => (JS, include_bytes!("../../../clients/pages/playground.js")),
        "/favicon.svg" => (
            "image/svg+xml",
            include_bytes!("../../../clients/pages/favicon.svg"),
        ),
        "/client.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../clients/js/corecast.js"),
        ),
        "/client.d.ts" => (
            "text/plain; charset=utf-8",
            include_bytes!("../../../clients/js/index.d.ts"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// Headers every served file carries: no content sniffing, nothing loaded from elsewhere,
/// and a revalidation on every load (the file changes with the server).
const ASSET_HEADERS: &str = "X-Content-Type-Options: nosniff\r\n\
     Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'\r\n\
     Cache-Control: no-cache\r\n\
     Access-Control-Allow-Origin: *\r\n";

/// The whole HTTP response for `path`: 200 with the file, or 404.
pub fn response(path: &str) -> Vec<u8> {
    match asset(path) {
        Some(a) => http_response(200, "OK", ASSET_HEADERS, a.content_type, a.body),
        None => http_response(
            404,
            "Not Found",
            ASSET_HEADERS,
            "text/plain",
            b"no such file",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::ASSET_PATHS;

    #[test]
    fn every_asset_path_is_served_with_its_headers() {
        for path in ASSET_PATHS {
            let a = asset(path).unwrap_or_else(|| panic!("{path} is embedded"));
            assert!(!a.body.is_empty());
            let r = String::from_utf8_lossy(&response(path)).into_owned();
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{path}");
            assert!(r.contains("X-Content-Type-Options: nosniff"));
            assert!(r.contains("Content-Security-Policy: default-src 'self'"));
        }
        assert!(String::from_utf8_lossy(&response("/nope")).starts_with("HTTP/1.1 404"));
    }
}
