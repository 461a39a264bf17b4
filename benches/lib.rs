//! Shared inputs of the micro-benchmarks: the client message and frames a chat room sees.

/// A typical client publish, as a browser sends it.
pub const CLIENT_MESSAGE: &str = r#"{"type":"message:send","room":"general","content":"Hello everyone! How is it going?","ref":17}"#;

/// A masked client frame carrying `payload`, as a browser would send it.
pub fn masked_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x81];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}
