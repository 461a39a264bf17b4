//! The chat feature's client messages: rooms, messages, history, read marks, typing and
//! presence lists, parsed from the envelope's fields, with their budget costs.
//!
//! Invariant: a [`ClientMsg`] has every field its type needs, with the right JSON type and a
//! valid room name; anything else is an `AppError` with a stable `code`.

use simd_json::BorrowedValue as Value;

use crate::features::chat::limits::{
    HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, ROOM_DESCRIPTION_BYTES_MAX, ROOM_PASSWORD_BYTES_MAX,
};
use crate::limits::ROOM_MEMBERS_MAX;
use crate::protocol::message::{AppError, Fields};

// The bounds' error texts name these values.
const _: () = assert!(ROOM_MEMBERS_MAX == 100_000 && HISTORY_PAGE_MAX == 100);

#[derive(Debug, PartialEq)]
pub enum ClientMsg<'v> {
    /// `room:create {room, description?, password?, maxUsers?}`
    Create {
        room: &'v str,
        description: Option<&'v str>,
        password: Option<&'v str>,
        max_users: Option<u32>,
    },
    /// `room:list`
    List,
    /// `room:join {room, password?}`
    Join {
        room: &'v str,
        password: Option<&'v str>,
    },
    /// `room:leave {room}`
    Leave { room: &'v str },
    /// `message:send {room, content}`; `content` is any JSON value, relayed as sent.
    Send {
        room: &'v str,
        content: &'v Value<'v>,
    },
    /// `message:history {room, limit?, before?}`
    History {
        room: &'v str,
        limit: usize,
        before: Option<u64>,
    },
    /// `message:read {room, upTo}`
    Read { room: &'v str, up_to: u64 },
    /// `typing:start {room}` (`on`) or `typing:stop {room}`.
    Typing { room: &'v str, on: bool },
    /// `presence:list {room}`
    PresenceList { room: &'v str },
}

impl<'v> ClientMsg<'v> {
    /// Parses a message of type `kind`; None when the type is not chat's.
    pub fn parse(kind: &str, f: &Fields<'v>) -> Option<Result<Self, AppError>> {
        Some(match kind {
            "room:create" => Self::create(f),
            "room:list" => Ok(Self::List),
            "room:join" => Self::join(f),
            "room:leave" => f.room().map(|room| Self::Leave { room }),
            "message:send" => Self::send(f),
            "message:history" => Self::history(f),
            "message:read" => Self::read(f),
            "typing:start" => f.room().map(|room| Self::Typing { room, on: true }),
            "typing:stop" => f.room().map(|room| Self::Typing { room, on: false }),
            "presence:list" => f.room().map(|room| Self::PresenceList { room }),
            _ => return None,
        })
    }

    fn create(f: &Fields<'v>) -> Result<Self, AppError> {
        let room = f.room()?;
        let max_users = f
            .opt_in(
                "maxUsers",
                1,
                ROOM_MEMBERS_MAX as u64,
                "an integer from 1 to 100000",
            )?
            .map(|n| n as u32);
        Ok(Self::Create {
            room,
            description: f.opt_str("description", ROOM_DESCRIPTION_BYTES_MAX)?,
            password: f
                .opt_str("password", ROOM_PASSWORD_BYTES_MAX)?
                .filter(|p| !p.is_empty()),
            max_users,
        })
    }

    fn join(f: &Fields<'v>) -> Result<Self, AppError> {
        Ok(Self::Join {
            room: f.room()?,
            password: f.opt_str("password", ROOM_PASSWORD_BYTES_MAX)?,
        })
    }

    fn send(f: &Fields<'v>) -> Result<Self, AppError> {
        let room = f.room()?;
        Ok(Self::Send {
            room,
            content: f.value("content")?,
        })
    }

    fn history(f: &Fields<'v>) -> Result<Self, AppError> {
        let room = f.room()?;
        let limit = f
            .opt_in(
                "limit",
                1,
                HISTORY_PAGE_MAX as u64,
                "an integer from 1 to 100",
            )?
            .map_or(HISTORY_PAGE_DEFAULT, |n| n as usize);
        Ok(Self::History {
            room,
            limit,
            before: f.opt_u64("before")?,
        })
    }

    fn read(f: &Fields<'v>) -> Result<Self, AppError> {
        let room = f.room()?;
        let up_to = f
            .opt_u64("upTo")?
            .ok_or(AppError::MissingField { field: "upTo" })?;
        Ok(Self::Read { room, up_to })
    }

    /// Budget units by type: queries that make large answers cost more.
    pub fn cost(&self) -> u32 {
        match self {
            Self::Create { .. } | Self::List => 10,
            Self::Join { .. } | Self::PresenceList { .. } => 5,
            Self::Leave { .. } | Self::Send { .. } | Self::Read { .. } | Self::Typing { .. } => 1,
            Self::History { limit, .. } => 5 + (*limit as u32) / 4,
        }
    }
}
