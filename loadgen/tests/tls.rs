//! wss:// against a real TLS WebSocket echo server (rustls + tungstenite, self-signed).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use loadgen::protocol::Protocol;
use loadgen::runner::Target;
use loadgen::scenario::{Echo, Scenario};
use loadgen::RunConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

fn tls_echo_server() -> std::net::SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let tls = rustls::StreamOwned::new(conn, tcp);
                let Ok(mut ws) = tungstenite::accept(tls) else {
                    return;
                };
                while let Ok(msg) = ws.read() {
                    if msg.is_text() && ws.send(msg).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn wss_round_trips_are_measured() {
    let addr = tls_echo_server();
    let echo = Echo {
        conns: 4,
        rate: 50.0,
        room_prefix: "tls".into(),
    };
    let target = Target::parse(&format!("wss://{addr}/")).unwrap();
    assert!(target.secure);
    let mut cfg = RunConfig::new(target, Protocol::Echo, echo.plan().unwrap());
    cfg.tls = Some(loadgen::tls::client_config(true));
    cfg.warmup = Duration::from_millis(100);
    cfg.duration = Duration::from_secs(1);
    cfg.drain = Duration::from_millis(500);
    let r = loadgen::run(cfg, "echo", serde_json::json!({}), &mut |_, _, _| {}).unwrap();
    assert_eq!(r.connects.ok, 4, "{:?}", r.failures);
    assert!(r.sent > 100);
    assert_eq!(r.received, r.expected);
    assert_eq!(r.delivery_ratio, 1.0);
}

#[test]
fn a_self_signed_certificate_is_refused_without_insecure() {
    let addr = tls_echo_server();
    let echo = Echo {
        conns: 2,
        rate: 10.0,
        room_prefix: "tls".into(),
    };
    let target = Target::parse(&format!("wss://{addr}/")).unwrap();
    // Default TLS settings: Mozilla's roots, which do not include a self-signed certificate.
    let mut cfg = RunConfig::new(target, Protocol::Echo, echo.plan().unwrap());
    cfg.warmup = Duration::ZERO;
    cfg.duration = Duration::from_millis(200);
    cfg.drain = Duration::from_millis(100);
    let r = loadgen::run(cfg, "echo", serde_json::json!({}), &mut |_, _, _| {}).unwrap();
    assert_eq!(r.connects.ok, 0);
    let causes: Vec<&String> = r.failures.keys().collect();
    assert!(causes.iter().all(|c| c.starts_with("tls:")), "{causes:?}");
}
