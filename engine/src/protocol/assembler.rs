//! Reassembles client frames into messages: fragmentation, UTF-8 and the size limit.
//!
//! Invariant: a [`Incoming::Text`] is complete, valid UTF-8 and at most `max_message_bytes`
//! long; control frames may arrive between fragments and are handed out at once.

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::close::{is_valid_peer_code, ProtocolError};
use super::frame::Header;

/// What one frame meant, once reassembly rules were applied.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A complete text message (payload bytes, valid UTF-8; mutable for in-place parsing).
    Text(&'a mut [u8]),
    /// A ping; answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (an answer to our ping, or unsolicited: both only prove liveness).
    Pong,
    /// The peer's close frame, validated. `code` is `None` for an empty close payload.
    Close { code: Option<u16>, reason: &'a str },
}

/// A message in fragments, being put together.
#[derive(Debug, Default)]
struct Fragments {
    buf: Vec<u8>,
    /// `buf[..utf8_checked]` is known to be valid UTF-8 (ends on a character boundary).
    utf8_checked: usize,
}

/// Per-connection reassembly state. Empty (no allocation) between messages.
#[derive(Debug)]
pub struct Assembler {
    max_message_bytes: usize,
    fragments: Option<Fragments>,
    /// The last reassembled message, handed out until [`Assembler::finish_message`].
    complete: Vec<u8>,
}

impl Assembler {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes,
            fragments: None,
            complete: Vec::new(),
        }
    }

    /// The limit data frames are decoded against: what is left of the message budget.
    pub fn frame_payload_max(&self) -> usize {
        let used = self.fragments.as_ref().map_or(0, |f| f.buf.len());
        self.max_message_bytes - used
    }

    /// Bytes held for the fragmented message in progress (its buffer's capacity).
    pub fn buffered_bytes(&self) -> usize {
        self.fragments.as_ref().map_or(0, |f| f.buf.capacity())
    }

    /// Whether a fragmented message is in progress.
    pub fn in_message(&self) -> bool {
        self.fragments.is_some()
    }

    /// Takes one frame whose `payload` is already unmasked.
    pub fn on_frame<'a>(
        &'a mut self,
        header: &Header,
        payload: &'a mut [u8],
    ) -> Result<Option<Incoming<'a>>, ProtocolError> {
        match header.opcode {
            OpCode::Control(Control::Ping) => Ok(Some(Incoming::Ping(payload))),
            OpCode::Control(Control::Pong) => Ok(Some(Incoming::Pong)),
            OpCode::Control(Control::Close) => parse_close(payload).map(Some),
            OpCode::Control(Control::Reserved(op)) | OpCode::Data(Data::Reserved(op)) => {
                Err(ProtocolError::UnknownOpcode { opcode: op })
            }
            OpCode::Data(Data::Binary) => {
                if self.fragments.is_some() {
                    return Err(ProtocolError::DataFrameInsideFragmented);
                }
                Err(ProtocolError::BinaryUnsupported)
            }
            OpCode::Data(Data::Text) => {
                if self.fragments.is_some() {
                    return Err(ProtocolError::DataFrameInsideFragmented);
                }
                if header.fin {
                    if std::str::from_utf8(payload).is_err() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    return Ok(Some(Incoming::Text(payload)));
                }
                let mut frags = Fragments::default();
                frags.buf.extend_from_slice(payload);
                check_utf8_prefix(&mut frags)?;
                self.fragments = Some(frags);
                Ok(None)
            }
            OpCode::Data(Data::Continue) => {
                let Some(frags) = self.fragments.as_mut() else {
                    return Err(ProtocolError::ContinuationWithoutStart);
                };
                let size = frags.buf.len() + payload.len();
                if size > self.max_message_bytes {
                    return Err(ProtocolError::MessageTooLarge {
                        size: size as u64,
                        max: self.max_message_bytes,
                    });
                }
                frags.buf.extend_from_slice(payload);
                check_utf8_prefix(frags)?;
                if !header.fin {
                    return Ok(None);
                }
                if frags.utf8_checked != frags.buf.len() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                let frags = self.fragments.take().expect("checked above");
                self.complete = frags.buf;
                Ok(Some(Incoming::Text(&mut self.complete[..])))
            }
        }
    }

    /// Drops a message handed out by [`Self::on_frame`] once the caller is done with it.
    pub fn finish_message(&mut self) {
        self.complete = Vec::new();
    }
}

/// Extends the checked UTF-8 prefix; fails only on bytes that can never become valid.
fn check_utf8_prefix(frags: &mut Fragments) -> Result<(), ProtocolError> {
    match std::str::from_utf8(&frags.buf[frags.utf8_checked..]) {
        Ok(_) => {
            frags.utf8_checked = frags.buf.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() => {
            // An incomplete character at the end: the next fragment may finish it.
            frags.utf8_checked += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(ProtocolError::InvalidUtf8),
    }
}

fn parse_close(payload: &[u8]) -> Result<Incoming<'_>, ProtocolError> {
    match payload.len() {
        0 => Ok(Incoming::Close {
            code: None,
            reason: "",
        }),
        1 => Err(ProtocolError::ClosePayloadTooShort),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_peer_code(code) {
                return Err(ProtocolError::InvalidCloseCode { code });
            }
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Incoming::Close {
                code: Some(code),
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(b0: u8, len: usize) -> Header {
        Header {
            fin: b0 & 0x80 != 0,
            opcode: OpCode::from(b0 & 0x0f),
            mask: [0; 4],
            header_len: 6,
            payload_len: len,
        }
    }

    fn feed(a: &mut Assembler, b0: u8, payload: &[u8]) -> Result<Option<Vec<u8>>, ProtocolError> {
        let mut p = payload.to_vec();
        let r = a.on_frame(&header(b0, p.len()), &mut p)?;
        let out = match r {
            Some(Incoming::Text(t)) => Some(t.to_vec()),
            Some(other) => panic!("unexpected {other:?}"),
            None => None,
        };
        a.finish_message();
        Ok(out)
    }

    #[test]
    fn single_frame_text() {
        let mut a = Assembler::new(100);
        assert_eq!(feed(&mut a, 0x81, b"hello"), Ok(Some(b"hello".to_vec())));
        assert!(!a.in_message());
    }

    #[test]
    fn fragments_with_control_frames_between() {
        let mut a = Assembler::new(100);
        assert_eq!(feed(&mut a, 0x01, b"hel"), Ok(None));
        let mut ping = b"p".to_vec();
        assert_eq!(
            a.on_frame(&header(0x89, 1), &mut ping),
            Ok(Some(Incoming::Ping(b"p")))
        );
        assert_eq!(feed(&mut a, 0x00, b"lo "), Ok(None));
        assert_eq!(
            feed(&mut a, 0x80, b"world"),
            Ok(Some(b"hello world".to_vec()))
        );
        assert!(!a.in_message());
        assert_eq!(feed(&mut a, 0x81, b"next"), Ok(Some(b"next".to_vec())));
    }

    #[test]
    fn utf8_split_across_fragments_is_fine() {
        let s = "κόσμε".as_bytes();
        let mut a = Assembler::new(100);
        assert_eq!(feed(&mut a, 0x01, &s[..1]), Ok(None));
        assert_eq!(feed(&mut a, 0x00, &s[1..4]), Ok(None));
        assert_eq!(feed(&mut a, 0x80, &s[4..]), Ok(Some(s.to_vec())));
    }

    #[test]
    fn invalid_utf8_fails_fast_and_at_the_end() {
        let mut a = Assembler::new(100);
        assert_eq!(feed(&mut a, 0x81, &[0xff]), Err(ProtocolError::InvalidUtf8));
        let mut a = Assembler::new(100);
        assert_eq!(
            feed(&mut a, 0x01, &[b'a', 0xed, 0xa0, 0x80]),
            Err(ProtocolError::InvalidUtf8)
        );
        let mut a = Assembler::new(100);
        assert_eq!(feed(&mut a, 0x01, &[0xce]), Ok(None));
        assert_eq!(feed(&mut a, 0x80, b""), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn sequencing_errors() {
        let mut a = Assembler::new(100);
        assert_eq!(
            feed(&mut a, 0x80, b"x"),
            Err(ProtocolError::ContinuationWithoutStart)
        );
        let mut a = Assembler::new(100);
        feed(&mut a, 0x01, b"x").unwrap();
        assert_eq!(
            feed(&mut a, 0x81, b"y"),
            Err(ProtocolError::DataFrameInsideFragmented)
        );
        let mut a = Assembler::new(100);
        let mut p = b"x".to_vec();
        assert_eq!(
            a.on_frame(&header(0x82, 1), &mut p),
            Err(ProtocolError::BinaryUnsupported)
        );
    }

    #[test]
    fn size_limit_counts_all_fragments() {
        let mut a = Assembler::new(10);
        feed(&mut a, 0x01, b"123456").unwrap();
        assert_eq!(a.frame_payload_max(), 4);
        assert_eq!(
            feed(&mut a, 0x80, b"78901"),
            Err(ProtocolError::MessageTooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn close_frames() {
        let mut a = Assembler::new(10);
        let mut p = vec![];
        assert_eq!(
            a.on_frame(&header(0x88, 0), &mut p),
            Ok(Some(Incoming::Close {
                code: None,
                reason: ""
            }))
        );
        let mut p = vec![3, 0xe8, b'o', b'k'];
        assert_eq!(
            a.on_frame(&header(0x88, 4), &mut p),
            Ok(Some(Incoming::Close {
                code: Some(1000),
                reason: "ok"
            }))
        );
        let mut p = vec![3];
        assert_eq!(
            a.on_frame(&header(0x88, 1), &mut p),
            Err(ProtocolError::ClosePayloadTooShort)
        );
        let mut p = vec![3, 0xed];
        assert_eq!(
            a.on_frame(&header(0x88, 2), &mut p),
            Err(ProtocolError::InvalidCloseCode { code: 1005 })
        );
        let mut p = vec![3, 0xe8, 0xff];
        assert_eq!(
            a.on_frame(&header(0x88, 3), &mut p),
            Err(ProtocolError::InvalidUtf8)
        );
    }
}
