//! The documents feature's client messages (`doc:join`, `doc:leave`, `doc:change`,
//! `doc:sync`), parsed from the envelope's fields, with their budget costs.
//!
//! Invariant: a parsed `doc:change` holds at most [`OPS_PER_CHANGE_MAX`] well-formed ops;
//! whether they fit the text is the owner's to say.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;

use super::cursor::{Cursor, COORDINATE_MAX};
use super::error::DocError;
use super::limits::{CLIENT_ID_BYTES_MAX, DOC_BYTES_MAX, OPS_PER_CHANGE_MAX};
use super::operation::Op;
use crate::protocol::message::{valid_room_name, AppError, Fields};

#[derive(Debug, PartialEq)]
pub enum ClientMsg<'v> {
    /// `doc:join {doc}`
    Join { doc: Option<&'v str> },
    /// `doc:leave {doc}`
    Leave { doc: Option<&'v str> },
    /// `doc:change {doc, version?, ops | operation..., client?, seq?}`
    Change {
        doc: Option<&'v str>,
        version: Option<u64>,
        ops: Vec<Op>,
        client: Option<&'v str>,
        seq: Option<u64>,
    },
    /// `doc:sync {doc, version}`
    Sync { doc: Option<&'v str>, version: u64 },
    /// `cursor:move {doc, x, y}` or `{doc, position, anchor?, version?}`
    Cursor {
        doc: Option<&'v str>,
        cursor: Cursor,
        /// The document version a caret's position is in.
        version: Option<u64>,
    },
}

const OP_SHAPE: &str =
    "{\"operation\":\"insert\",\"position\":N,\"content\":\"...\"} or {\"operation\":\"delete\",\"position\":N,\"length\":N}";

impl<'v> ClientMsg<'v> {
    /// Parses a message of type `kind`; None when the type is not the documents feature's.
    pub fn parse(kind: &str, f: &Fields<'v>) -> Option<Result<Self, AppError>> {
        Some(match kind {
            "doc:join" => doc(f).map(|doc| Self::Join { doc }),
            "doc:leave" => doc(f).map(|doc| Self::Leave { doc }),
            "doc:change" => Self::change(f),
            "doc:sync" => Self::sync(f),
            "cursor:move" => Self::cursor(f),
            _ => return None,
        })
    }

    fn change(f: &Fields<'v>) -> Result<Self, AppError> {
        let ops = match f.get("ops") {
            Some(list) => ops(list)?,
            None if f.get("operation").is_some() => vec![op_from(0, |k| f.get(k))?],
            None => return Err(AppError::MissingField { field: "ops" }),
        };
        let client = f.opt_str("client", CLIENT_ID_BYTES_MAX)?;
        let seq = f.opt_u64("seq")?;
        if client.is_some() && seq.is_none() {
            // Without it every change after the first would look like a resubmit.
            return Err(AppError::MissingField { field: "seq" });
        }
        Ok(Self::Change {
            doc: doc(f)?,
            version: f.opt_u64("version")?,
            ops,
            client,
            seq,
        })
    }

    fn sync(f: &Fields<'v>) -> Result<Self, AppError> {
        let version = f
            .opt_u64("version")?
            .ok_or(AppError::MissingField { field: "version" })?;
        Ok(Self::Sync {
            doc: doc(f)?,
            version,
        })
    }

    fn cursor(f: &Fields<'v>) -> Result<Self, AppError> {
        let doc = doc(f)?;
        if f.get("position").is_some() {
            let position =
                position_opt(f, "position")?.ok_or(AppError::MissingField { field: "position" })?;
            let anchor = position_opt(f, "anchor")?;
            let cursor = Cursor::Text { position, anchor };
            let version = f.opt_u64("version")?;
            return Ok(Self::Cursor {
                doc,
                cursor,
                version,
            });
        }
        let x = coordinate(f, "x")?;
        let y = coordinate(f, "y")?;
        Ok(Self::Cursor {
            doc,
            cursor: Cursor::Point { x, y },
            version: None,
        })
    }

    /// Budget units by type: joins and syncs answer with the whole text or many changes.
    pub fn cost(&self) -> u32 {
        match self {
            Self::Join { .. } | Self::Sync { .. } => 5,
            Self::Leave { .. } | Self::Change { .. } | Self::Cursor { .. } => 1,
        }
    }
}

/// A code-point position (at most [`DOC_BYTES_MAX`]), or absent.
fn position_opt(f: &Fields<'_>, field: &'static str) -> Result<Option<usize>, AppError> {
    match f.opt_u64(field) {
        Ok(Some(p)) if p <= DOC_BYTES_MAX as u64 => Ok(Some(p as usize)),
        Ok(None) => Ok(None),
        _ => Err(AppError::InvalidField {
            field,
            expected: "a code-point position in the text",
        }),
    }
}

/// A canvas coordinate: a finite number within [`COORDINATE_MAX`].
fn coordinate(f: &Fields<'_>, field: &'static str) -> Result<f64, AppError> {
    let v = f.value(field)?;
    // Integers count too (`cast_f64`: `as_f64` is only for JSON written with a fraction).
    match v.cast_f64() {
        // Rounded to thousandths: any screen is finer than that, and the JSON stays short.
        Some(n) if n.is_finite() && n.abs() <= COORDINATE_MAX => Ok((n * 1000.0).round() / 1000.0),
        _ => Err(AppError::InvalidField {
            field,
            expected: "a number from -1e9 to 1e9",
        }),
    }
}

/// `doc`, a document name (room-name rules), or absent.
fn doc<'v>(f: &Fields<'v>) -> Result<Option<&'v str>, AppError> {
    match f.opt_str("doc", 64)? {
        Some(d) if !valid_room_name(d) => Err(AppError::InvalidField {
            field: "doc",
            expected: "1 to 64 bytes of letters, digits, '-', '_', '.', ':'",
        }),
        d => Ok(d),
    }
}

fn ops(list: &Value<'_>) -> Result<Vec<Op>, AppError> {
    let Some(items) = list.as_array() else {
        return Err(AppError::InvalidField {
            field: "ops",
            expected: "an array of ops",
        });
    };
    if items.len() > OPS_PER_CHANGE_MAX {
        let (count, max) = (items.len(), OPS_PER_CHANGE_MAX);
        let e = super::document::ChangeError::TooManyOps { count, max };
        return Err(AppError::Doc(e.into()));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, v)| match v.as_object() {
            Some(o) => op_from(index, |k| o.get(k)),
            None => Err(bad_op(index, OP_SHAPE)),
        })
        .collect()
}

fn bad_op(index: usize, expected: &'static str) -> AppError {
    AppError::Doc(DocError::BadOp { index, expected })
}

/// Op `index` from its fields: `operation`, `position` and `content` or `length`.
fn op_from<'a>(index: usize, get: impl Fn(&str) -> Option<&'a Value<'a>>) -> Result<Op, AppError> {
    let kind = get("operation").and_then(|v| v.as_str());
    let pos = get("position").and_then(|v| v.as_u64());
    // No text is longer than DOC_BYTES_MAX code points: larger numbers are out of range
    // anywhere, and refused here so no transform adds them up.
    let Some(pos) = pos
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| *p <= DOC_BYTES_MAX)
    else {
        return Err(bad_op(
            index,
            "`position`: a non-negative integer (code points)",
        ));
    };
    match kind {
        Some("insert") => match get("content").and_then(|v| v.as_str()) {
            Some(text) => Ok(Op::insert(pos, text)),
            None => Err(bad_op(index, "`content`: the string to insert")),
        },
        Some("delete") => match get("length").and_then(|v| v.as_u64()) {
            Some(len) if len <= DOC_BYTES_MAX as u64 => Ok(Op::delete(pos, len as usize)),
            _ => Err(bad_op(
                index,
                "`length`: a non-negative integer (code points)",
            )),
        },
        _ => Err(bad_op(index, OP_SHAPE)),
    }
}
