//! RFC 6455 frame headers: decoding client frames, encoding server frames, masking.
//!
//! Invariant: [`decode_header`] accepts only headers a server may receive (masked, no RSV bits,
//! known opcode, control frames short and final, length within the limit), so code above it
//! never sees a malformed frame.

use bytes::{BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::close::ProtocolError;
use crate::limits::CONTROL_PAYLOAD_BYTES_MAX;

/// Longest server frame header: 2 bytes, plus 8 of extended length (servers never mask).
pub const SERVER_HEADER_BYTES_MAX: usize = 10;

/// A decoded client frame header; the payload follows it in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: OpCode,
    pub mask: [u8; 4],
    /// Bytes of header, including the mask.
    pub header_len: usize,
    pub payload_len: usize,
}

impl Header {
    /// Header plus payload: the bytes this frame occupies in the buffer.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Decodes the header at the start of `buf`. `Ok(None)` means more bytes are needed.
/// `payload_max` bounds a single data frame (the message limit); control frames are
/// bounded by RFC 6455.
pub fn decode_header(buf: &[u8], payload_max: usize) -> Result<Option<Header>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let rsv = (b0 >> 4) & 0x7;
    if rsv != 0 {
        return Err(ProtocolError::ReservedBits { rsv });
    }
    let fin = b0 & 0x80 != 0;
    let opcode = OpCode::from(b0 & 0x0f);
    match opcode {
        OpCode::Data(Data::Reserved(op)) | OpCode::Control(Control::Reserved(op)) => {
            return Err(ProtocolError::UnknownOpcode { opcode: op });
        }
        _ => {}
    }
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::UnmaskedFrame);
    }
    let len7 = (b1 & 0x7f) as u64;
    let (len, ext) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 2)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(ProtocolError::InvalidLength);
            }
            (len, 8)
        }
        n => (n, 0),
    };
    if let OpCode::Control(_) = opcode {
        if len > CONTROL_PAYLOAD_BYTES_MAX as u64 {
            return Err(ProtocolError::ControlFrameTooLong { len });
        }
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
    } else if len > payload_max as u64 {
        return Err(ProtocolError::MessageTooLarge {
            size: len,
            max: payload_max,
        });
    }
    let header_len = 2 + ext + 4;
    if buf.len() < header_len {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[2 + ext..header_len]);
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        header_len,
        payload_len: len as usize,
    }))
}

/// XORs `buf` with the 4-byte `mask`, starting at mask offset 0. Works a word at a time.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let mask64 = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(w) ^ mask64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Writes a frame header: the first byte `b0` (FIN, RSV bits, opcode), the payload length,
/// and, for a client frame, the mask bit and `mask`.
fn put_frame_header(out: &mut impl BufMut, b0: u8, payload_len: usize, mask: Option<[u8; 4]>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.put_u8(b0);
    if payload_len < 126 {
        out.put_u8(mask_bit | payload_len as u8);
    } else if payload_len <= u16::MAX as usize {
        out.put_u8(mask_bit | 126);
        out.put_u16(payload_len as u16);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(payload_len as u64);
    }
    if let Some(mask) = mask {
        out.put_slice(&mask);
    }
}

/// Writes an unmasked, final server frame header for `payload_len` bytes.
pub fn put_header(out: &mut impl BufMut, opcode: u8, payload_len: usize) {
    put_frame_header(out, 0x80 | opcode, payload_len, None);
}

/// Appends a complete client frame (masked, as RFC 6455 5.3 requires of clients) whose first
/// byte is `b0`: for load generators and tests, which also send frames a browser would not.
pub fn put_client_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8], mask: [u8; 4]) {
    put_frame_header(out, b0, payload.len(), Some(mask));
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xa;

/// A complete server frame carrying `payload`, encoded once and shareable by every recipient.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(SERVER_HEADER_BYTES_MAX + payload.len());
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// A text frame carrying `payload` (which must be UTF-8 JSON).
pub fn text_frame(payload: &[u8]) -> Bytes {
    server_frame(OP_TEXT, payload)
}

/// A close frame with `code` and a reason cut to fit the 125-byte control payload.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(CONTROL_PAYLOAD_BYTES_MAX - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    server_frame(OP_CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a masked client frame the way a browser would.
    pub(crate) fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        put_client_frame(&mut out, b0, payload, mask);
        out
    }

    #[test]
    fn decodes_all_length_forms() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 100_000] {
            let payload = vec![b'a'; len];
            let f = client_frame(0x81, &payload, [1, 2, 3, 4]);
            let h = decode_header(&f, 1 << 20).unwrap().unwrap();
            assert_eq!(h.payload_len, len);
            assert_eq!(h.frame_len(), f.len());
            assert!(h.fin);
            assert_eq!(h.opcode, OpCode::Data(Data::Text));
            let mut p = f[h.header_len..].to_vec();
            apply_mask(&mut p, h.mask);
            assert_eq!(p, payload);
        }
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let f = client_frame(0x81, &[b'x'; 300], [9, 9, 9, 9]);
        for cut in 0..8 {
            assert_eq!(decode_header(&f[..cut], 1 << 20), Ok(None), "cut {cut}");
        }
        assert!(decode_header(&f[..8], 1 << 20).unwrap().is_some());
    }

    #[test]
    fn rejects_what_a_server_must_not_accept() {
        let unmasked = [0x81u8, 0x01, b'a'];
        assert_eq!(
            decode_header(&unmasked, 100),
            Err(ProtocolError::UnmaskedFrame)
        );
        let rsv = client_frame(0xC1, b"a", [0; 4]);
        assert_eq!(
            decode_header(&rsv, 100),
            Err(ProtocolError::ReservedBits { rsv: 4 })
        );
        let op = client_frame(0x83, b"a", [0; 4]);
        assert_eq!(
            decode_header(&op, 100),
            Err(ProtocolError::UnknownOpcode { opcode: 3 })
        );
        let op = client_frame(0x8B, b"a", [0; 4]);
        assert_eq!(
            decode_header(&op, 100),
            Err(ProtocolError::UnknownOpcode { opcode: 0xB })
        );
        let long_ping = client_frame(0x89, &[0; 126], [0; 4]);
        assert_eq!(
            decode_header(&long_ping, 1000),
            Err(ProtocolError::ControlFrameTooLong { len: 126 })
        );
        let frag_ping = client_frame(0x09, b"a", [0; 4]);
        assert_eq!(
            decode_header(&frag_ping, 100),
            Err(ProtocolError::FragmentedControl)
        );
        let big = client_frame(0x81, &[0; 200], [0; 4]);
        assert_eq!(
            decode_header(&big, 100),
            Err(ProtocolError::MessageTooLarge {
                size: 200,
                max: 100
            })
        );
        let mut msb = vec![0x81u8, 0x80 | 127];
        msb.extend_from_slice(&(1u64 << 63).to_be_bytes());
        msb.extend_from_slice(&[0; 4]);
        assert_eq!(decode_header(&msb, 100), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn mask_is_an_involution_at_every_length() {
        for len in 0..40 {
            let orig: Vec<u8> = (0..len as u8).collect();
            let mut b = orig.clone();
            apply_mask(&mut b, [0xde, 0xad, 0xbe, 0xef]);
            for (i, (x, y)) in b.iter().zip(&orig).enumerate() {
                assert_eq!(*x, y ^ [0xde, 0xad, 0xbe, 0xef][i % 4]);
            }
            apply_mask(&mut b, [0xde, 0xad, 0xbe, 0xef]);
            assert_eq!(b, orig);
        }
    }

    #[test]
    fn server_frames() {
        assert_eq!(&text_frame(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let f = text_frame(&[b'x'; 300]);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44]);
        let f = text_frame(&[b'x'; 70000]);
        assert_eq!(f[1], 127);
        assert_eq!(f.len(), 10 + 70000);
        let c = close_frame(1001, "bye");
        assert_eq!(&c[..], &[0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']);
        let long = "é".repeat(100);
        let c = close_frame(1000, &long);
        assert!(c.len() <= 2 + 125);
        assert!(std::str::from_utf8(&c[4..]).is_ok());
    }
}
