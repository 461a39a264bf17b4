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
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, ext) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 2)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 8)
        }
        n => (n as usize, 0),
    };
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    if buf.len() < header_len + len {
        return None;
    }
    Some(ServerFrame {
        opcode,
        header_len,
        payload_len: len,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_server_writes() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let mut buf = vec![0x81u8];
            if len < 126 {
                buf.push(len as u8);
            } else if len < 65536 {
                buf.push(126);
                buf.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                buf.push(127);
                buf.extend_from_slice(&(len as u64).to_be_bytes());
            }
            buf.extend(std::iter::repeat_n(b'a', len));
            let f = next_frame(&buf).unwrap();
            assert_eq!(f.payload_len, len);
            assert_eq!(f.header_len + len, buf.len());
            if len > 0 {
                assert_eq!(next_frame(&buf[..buf.len() - 1]), None);
            }
        }
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
