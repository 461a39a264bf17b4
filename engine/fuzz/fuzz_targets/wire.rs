//! Fuzzes a connection's read path as the shard runs it: frame headers, unmasking, the
//! assembler (fragments, UTF-8, limits, close frames) and the JSON messages inside, with a
//! 4 KiB message limit. Any bytes end in messages or a protocol error, never a panic.
#![no_main]

use corecast::protocol::frame::{apply_mask, decode_header};
use corecast::protocol::message::{interpret, parse_json};
use corecast::protocol::{Assembler, Incoming};
use libfuzzer_sys::fuzz_target;

/// The message limit the target runs with; small, so the fuzzer reaches it.
const MESSAGE_BYTES_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let mut assembler = Assembler::new(MESSAGE_BYTES_MAX);
    let mut buffers = simd_json::Buffers::default();
    let mut pos = 0;
    while let Ok(Some(header)) = decode_header(&buf[pos..], assembler.frame_payload_max()) {
        if buf.len() - pos < header.frame_len() {
            break;
        }
        let payload = &mut buf[pos + header.header_len..pos + header.frame_len()];
        pos += header.frame_len();
        apply_mask(payload, header.mask);
        match assembler.on_frame(&header, payload) {
            Err(e) => {
                let code = e.close_code();
                assert!((1000..5000).contains(&code), "{e:?} -> {code}");
                break;
            }
            Ok(Some(Incoming::Text(text))) => {
                assert!(text.len() <= MESSAGE_BYTES_MAX);
                assert!(std::str::from_utf8(text).is_ok());
                let mut text = text.to_vec();
                if let Ok(value) = parse_json(&mut text, &mut buffers) {
                    if let Err(e) = interpret(&value).message {
                        assert!(!e.code().is_empty());
                    }
                }
                assembler.finish_message();
            }
            Ok(Some(Incoming::Close { .. })) => break,
            Ok(_) => {}
        }
    }
});
