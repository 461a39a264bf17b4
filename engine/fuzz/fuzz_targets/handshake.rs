//! Fuzzes the HTTP upgrade parser: any bytes give a request, "need more", or a refusal with
//! its status and response, never a panic.
#![no_main]

use corecast::protocol::handshake::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(Some(request)) => assert!(request.head_len <= data.len()),
        Ok(None) => {}
        Err(refusal) => {
            let (status, _) = refusal.status();
            assert!((400..500).contains(&status), "{refusal:?} -> {status}");
            let _ = refusal.response();
        }
    }
});
