//! Close codes (RFC 6455 7.4) and the protocol violations that lead to them.
//!
//! Invariant: every [`ProtocolError`] maps to exactly one close code a client can act on.

/// 1000: normal closure.
pub const NORMAL: u16 = 1000;
/// 1001: the server is going away (shutdown) or the peer stopped answering pings.
pub const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
pub const PROTOCOL: u16 = 1002;
/// 1003: a data type the server does not accept (binary frames).
pub const UNSUPPORTED: u16 = 1003;
/// 1007: text that is not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1008: policy violation; corecast uses it for slow consumers.
pub const POLICY: u16 = 1008;
/// 1009: message larger than the configured limit.
pub const TOO_BIG: u16 = 1009;
/// 1011: the server hit an internal error.
pub const INTERNAL: u16 = 1011;
/// The server is over a limit of its own for now (RFC 6455 7.4.1 registry: 1013 Try Again
/// Later); the client may reconnect after a while.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// 4001 (application range): the token the connection authenticated with expired.
pub const TOKEN_EXPIRED: u16 = 4001;

/// Whether a peer may send `code` in a close frame (RFC 6455 7.4.1 and 7.4.2; the IANA
/// registry adds 1012-1014). 1004-1006 and 1015 are reserved and never sent on the wire.
pub fn is_valid_peer_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A peer broke RFC 6455 or a connection limit; the connection closes with [`Self::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("client frame is not masked")]
    UnmaskedFrame,
    #[error("reserved bits {rsv:#x} set without a negotiated extension")]
    ReservedBits { rsv: u8 },
    #[error("unknown opcode {opcode:#x}")]
    UnknownOpcode { opcode: u8 },
    #[error("control frame payload of {len} bytes exceeds 125")]
    ControlFrameTooLong { len: u64 },
    #[error("control frame is fragmented")]
    FragmentedControl,
    #[error("continuation frame without a message to continue")]
    ContinuationWithoutStart,
    #[error("new data frame inside a fragmented message")]
    DataFrameInsideFragmented,
    #[error("frame length uses the most significant bit")]
    InvalidLength,
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge { size: u64, max: usize },
    #[error("close frame with a 1-byte payload")]
    ClosePayloadTooShort,
    #[error("close code {code} is not allowed on the wire")]
    InvalidCloseCode { code: u16 },
    #[error("binary messages are not accepted")]
    BinaryUnsupported,
}

impl ProtocolError {
    /// The close code sent to the peer for this violation.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => INVALID_PAYLOAD,
            ProtocolError::MessageTooLarge { .. } => TOO_BIG,
            ProtocolError::BinaryUnsupported => UNSUPPORTED,
            _ => PROTOCOL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1008, 1011, 3000, 4999] {
            assert!(is_valid_peer_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_peer_code(bad), "{bad}");
        }
    }

    #[test]
    fn codes_by_error() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
        assert_eq!(
            ProtocolError::MessageTooLarge { size: 10, max: 1 }.close_code(),
            1009
        );
        assert_eq!(ProtocolError::BinaryUnsupported.close_code(), 1003);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code(), 1002);
    }
}
