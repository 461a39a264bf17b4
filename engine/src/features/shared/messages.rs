//! The shared feature's client messages: `state:get`, `state:set`, `state:merge`,
//! `broadcast:send`, `broadcast:history`, `presence:set`, each naming a room (`room`) or a
//! document (`doc`).
//!
//! Invariant: a parsed message names one topic and carries values as the client sent them;
//! their sizes are checked where they are encoded.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;

use super::limits::{CHANNEL_HISTORY_MAX, CHANNEL_NAME_BYTES_MAX, STATE_KEY_BYTES_MAX};
use crate::protocol::message::{valid_room_name, AppError, Fields};

/// Where a message goes: a room by name, a document by name, or (neither given) the
/// connection's home document.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Place<'v> {
    Room(&'v str),
    Doc(&'v str),
    Home,
}

#[derive(Debug, PartialEq)]
pub enum ClientMsg<'v> {
    Get {
        at: Place<'v>,
    },
    /// `state:set` (one key) or `state:merge` (a patch object); a null value deletes.
    Write {
        at: Place<'v>,
        changes: Vec<(&'v str, &'v Value<'v>)>,
        if_version: Option<u64>,
        patch: &'v Value<'v>,
    },
    Broadcast {
        at: Place<'v>,
        channel: &'v str,
        payload: &'v Value<'v>,
    },
    History {
        at: Place<'v>,
        channel: &'v str,
        limit: usize,
    },
    Presence {
        at: Place<'v>,
        data: &'v Value<'v>,
    },
}

impl<'v> ClientMsg<'v> {
    pub fn parse(kind: &str, f: &Fields<'v>) -> Option<Result<Self, AppError>> {
        Some(match kind {
            "state:get" => place(f).map(|at| Self::Get { at }),
            "state:set" => Self::set(f),
            "state:merge" => Self::merge(f),
            "broadcast:send" => Self::broadcast(f),
            "broadcast:history" => Self::history(f),
            "presence:set" => place(f).and_then(|at| {
                let data = f.value("data")?;
                Ok(Self::Presence { at, data })
            }),
            _ => return None,
        })
    }

    fn set(f: &Fields<'v>) -> Result<Self, AppError> {
        let at = place(f)?;
        let key = f.str("key", STATE_KEY_BYTES_MAX)?;
        let value = f.value("value")?;
        Ok(Self::Write {
            at,
            changes: vec![(key, value)],
            if_version: f.opt_u64("ifVersion")?,
            patch: value,
        })
    }

    fn merge(f: &Fields<'v>) -> Result<Self, AppError> {
        let at = place(f)?;
        let patch = f.value("patch")?;
        let Some(obj) = patch.as_object() else {
            let expected = "an object of keys to values (null deletes)";
            return Err(AppError::InvalidField {
                field: "patch",
                expected,
            });
        };
        let mut changes: Vec<(&str, &Value)> = Vec::with_capacity(obj.len());
        for (k, v) in obj.iter() {
            if k.is_empty() || k.len() > STATE_KEY_BYTES_MAX {
                let expected = "keys of 1 to 128 bytes";
                return Err(AppError::InvalidField {
                    field: "patch",
                    expected,
                });
            }
            // A key given twice counts once, with its last value (as JSON.parse reads it).
            match changes.iter_mut().find(|(seen, _)| *seen == &**k) {
                Some(change) => change.1 = v,
                None => changes.push((&**k, v)),
            }
        }
        Ok(Self::Write {
            at,
            changes,
            if_version: f.opt_u64("ifVersion")?,
            patch,
        })
    }

    fn broadcast(f: &Fields<'v>) -> Result<Self, AppError> {
        Ok(Self::Broadcast {
            at: place(f)?,
            channel: channel(f)?,
            payload: f.value("payload")?,
        })
    }

    fn history(f: &Fields<'v>) -> Result<Self, AppError> {
        let limit = f
            .opt_in(
                "limit",
                1,
                CHANNEL_HISTORY_MAX as u64,
                "an integer from 1 to 100",
            )?
            .map_or(CHANNEL_HISTORY_MAX, |n| n as usize);
        Ok(Self::History {
            at: place(f)?,
            channel: channel(f)?,
            limit,
        })
    }

    /// Budget units: a history page answers with up to a hundred messages.
    pub fn cost(&self) -> u32 {
        match self {
            Self::Get { .. } | Self::History { .. } => 5,
            Self::Write { .. } | Self::Broadcast { .. } | Self::Presence { .. } => 1,
        }
    }
}

fn place<'v>(f: &Fields<'v>) -> Result<Place<'v>, AppError> {
    if f.get("room").is_some() {
        return f.room().map(Place::Room);
    }
    match f.opt_str("doc", 64)? {
        Some(d) if valid_room_name(d) => Ok(Place::Doc(d)),
        Some(_) => Err(AppError::InvalidField {
            field: "doc",
            expected: "1 to 64 bytes of letters, digits, '-', '_', '.', ':'",
        }),
        None => Ok(Place::Home),
    }
}

fn channel<'v>(f: &Fields<'v>) -> Result<&'v str, AppError> {
    let c = f.str("channel", CHANNEL_NAME_BYTES_MAX)?;
    if !valid_room_name(c) {
        let expected = "1 to 64 bytes of letters, digits, '-', '_', '.', ':'";
        return Err(AppError::InvalidField {
            field: "channel",
            expected,
        });
    }
    Ok(c)
}
