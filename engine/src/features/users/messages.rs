//! The users feature's client messages: logging in, presence, direct messages and
//! notifications, parsed from the envelope's fields, with their budget costs.
//!
//! Invariant: a [`ClientMsg`] has every field its type needs, with the right JSON type;
//! anything else is an `AppError` with a stable `code`.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;

use super::Status;
use crate::features::users::limits::NOTIFICATION_IDS_MAX;
use crate::limits::USER_ID_BYTES_MAX;
use crate::protocol::message::{AppError, Fields};

#[derive(Debug, PartialEq)]
pub enum ClientMsg<'v> {
    /// `auth:login {username}` (development mode).
    Login { username: &'v str },
    /// `presence:update {status}`: online, away or dnd.
    Presence { status: Status },
    /// `message:direct {to, content}`
    Direct { to: &'v str, content: &'v Value<'v> },
    /// `notification:list`
    NotificationList,
    /// `notification:read {ids}`
    NotificationRead { ids: Vec<u64> },
}

impl<'v> ClientMsg<'v> {
    /// Parses a message of type `kind`; None when the type is not this feature's.
    pub fn parse(kind: &str, f: &Fields<'v>) -> Option<Result<Self, AppError>> {
        Some(match kind {
            // Validated by the login itself, which answers with `auth:error`.
            "auth:login" => f
                .str("username", usize::MAX)
                .map(|username| Self::Login { username }),
            "presence:update" => Self::presence(f),
            "message:direct" => Self::direct(f),
            "notification:list" => Ok(Self::NotificationList),
            "notification:read" => Self::notification_read(f),
            _ => return None,
        })
    }

    fn presence(f: &Fields<'v>) -> Result<Self, AppError> {
        let status = f.str("status", 16)?;
        let status = Status::parse_settable(status).ok_or(AppError::InvalidField {
            field: "status",
            expected: "online, away or dnd",
        })?;
        Ok(Self::Presence { status })
    }

    fn direct(f: &Fields<'v>) -> Result<Self, AppError> {
        let to = f.str("to", USER_ID_BYTES_MAX)?;
        Ok(Self::Direct {
            to,
            content: f.value("content")?,
        })
    }

    fn notification_read(f: &Fields<'v>) -> Result<Self, AppError> {
        let ids = f
            .value("ids")?
            .as_array()
            .filter(|a| a.len() <= NOTIFICATION_IDS_MAX)
            .and_then(|a| a.iter().map(|v| v.as_u64()).collect::<Option<Vec<u64>>>())
            .ok_or(AppError::InvalidField {
                field: "ids",
                expected: "an array of at most 1000 notification ids",
            })?;
        Ok(Self::NotificationRead { ids })
    }

    /// Budget units by type.
    pub fn cost(&self) -> u32 {
        match self {
            Self::Login { .. } | Self::NotificationList => 5,
            Self::Presence { .. } => 2,
            Self::Direct { .. } => 1,
            Self::NotificationRead { ids } => 1 + ids.len() as u32 / 100,
        }
    }
}
