//! Client-side WebSocket framing with no I/O and no allocation per frame: masked frames out,
//! server frames in.
//!
//! Invariant: [`next_frame`] only returns frames fully present in the buffer.

/// A server frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFrame {
    pub opcode: u8,
    pub header_len: usize,
    pub payload_len: usize,
}

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xa;

/// Decodes the frame at the start of `buf`, if all of it is there.
pub fn next_frame(buf: &[u8]) -> Option<ServerFrame> {
    let (header_len, payload_len) = header(buf)?;
    if buf.len() < header_len.saturating_add(payload_len) {
        return None;
    }
    Some(ServerFrame {
        opcode: buf[0] & 0x0f,
        header_len,
        payload_len,
    })
}

/// How many bytes the frame starting `buf` spans, as far as `buf` tells: 2 before the first two
/// bytes are there, the header's length before the whole header is, then header and payload.
/// A reader that takes exactly this many more bytes never reads past the frame.
pub fn extent(buf: &[u8]) -> usize {
    if buf.len() < 2 {
        return 2;
    }
    match header(buf) {
        Some((header_len, payload_len)) => header_len.saturating_add(payload_len),
        None => header_len(buf[1]),
    }
}

/// The header length announced by a frame's second byte.
fn header_len(second: u8) -> usize {
    let ext = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if second & 0x80 != 0 { 4 } else { 0 }
}

/// (header length, payload length) once the whole header is in `buf`.
fn header(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let header_len = header_len(buf[1]);
    if buf.len() < header_len {
        return None;
    }
    let payload_len = match buf[1] & 0x7f {
        126 => u16::from_be_bytes([buf[2], buf[3]]) as usize,
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    Some((header_len, payload_len))
}

/// Appends a final, masked client frame carrying `payload`, masked with `mask`.
pub fn write_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A cheap mask source (xorshift): RFC 6455 wants unpredictable masks from browsers; a load
/// generator only needs them to vary.
#[derive(Debug)]
pub struct Masks(u64);

impl Masks {
    pub fn new(seed: u64) -> Self {
        Masks(seed | 1)
    }

    pub fn next_mask(&mut self) -> [u8; 4] {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 as u32).to_ne_bytes()
    }
}

/// An unmasked, final server text frame carrying `payload`, as a server writes it.
#[cfg(test)]
pub fn server_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81u8];
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_server_writes() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let buf = server_frame(&vec![b'a'; len]);
            let f = next_frame(&buf).unwrap();
            assert_eq!(f.payload_len, len);
            assert_eq!(f.header_len + len, buf.len());
            if len > 0 {
                assert_eq!(next_frame(&buf[..buf.len() - 1]), None);
            }
            // Fed byte by byte as far as `extent` asks, the frame is whole exactly at its end.
            let mut held = 0;
            while held < extent(&buf[..held]) {
                held = extent(&buf[..held]).min(buf.len());
                assert!(held <= buf.len());
            }
            assert_eq!(held, buf.len());
            assert!(next_frame(&buf[..held]).is_some());
        }
        assert_eq!(extent(&[0x81]), 2);
        assert_eq!(extent(&[0x81, 126]), 4);
        assert_eq!(extent(&[0x81, 127, 0]), 10);
        assert_eq!(extent(&[0x81, 0x80 | 3]), 6);
        assert_eq!(extent(&[0x81, 0x80 | 3, 1, 2, 3, 4]), 9);
    }

    #[test]
    fn masked_frames_unmask_to_the_payload() {
        let mut out = Vec::new();
        let mask = Masks::new(7).next_mask();
        write_masked(&mut out, OP_TEXT, b"hello", mask);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        let body: Vec<u8> = out[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(body, b"hello");
    }
}
