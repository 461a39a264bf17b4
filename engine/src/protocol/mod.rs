//! The wire protocol, with no I/O: RFC 6455 frames and the HTTP upgrade, and the JSON messages
//! corecast speaks inside them. Every function here works on byte slices and is unit-tested.

pub mod assembler;
pub mod close;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod json;
pub mod message;

pub use assembler::{Assembler, Incoming};
pub use close::ProtocolError;
pub use message::{AppError, Envelope, Fields};
