//! Client-to-server messages: the envelope every message shares (`type`, `ref`), read from
//! JSON parsed in place with simd-json, the field readers features parse their messages with,
//! and the application errors a malformed or refused message earns.
//!
//! Invariant: a message reaches a feature only with a string `type` and a valid `ref`; a field
//! read through [`Fields`] has the JSON type and bounds asked for, or is an [`AppError`] with a
//! stable `code`.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;

use crate::limits::{REF_BYTES_MAX, ROOM_NAME_BYTES_MAX};

/// A room name: 1 to [`ROOM_NAME_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`, `.`, `:`.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= ROOM_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// An application error: answered with `error {code, message, ref?}`; the connection stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error(
        "message is not valid JSON ({reason}); send one JSON object, e.g. {{\"type\":\"room:list\"}}"
    )]
    BadJson { reason: String },
    #[error("message must be a JSON object, e.g. {{\"type\":\"room:list\"}}")]
    NotAnObject,
    #[error("missing field `{field}`")]
    MissingField { field: &'static str },
    #[error("field `{field}` must be {expected}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("unknown message type `{kind}`")]
    UnknownType { kind: String },
    #[error("room names are 1 to {max} bytes of letters, digits, '-', '_', '.', ':'")]
    InvalidRoomName { max: usize },
    #[error("not a member of room `{room}`")]
    NotInRoom { room: String },
    #[error("already a member of room `{room}`")]
    AlreadyInRoom { room: String },
    #[error("a connection may be in at most {max} rooms and documents")]
    TooManyTopics { max: usize },
    #[error("usernames are 1 to {max} bytes of letters, digits, '-', '_', '.'")]
    InvalidUsername { max: usize },
    #[error("the username `{name}` is reserved")]
    ReservedUsername { name: String },
    #[error("log in first (auth:login or a token)")]
    AuthRequired,
    #[error("this connection is already logged in")]
    AlreadyAuthenticated,
    #[error("auth:login is disabled: this server authenticates with tokens")]
    LoginDisabled,
    #[error("room `{room}` already exists")]
    RoomExists { room: String },
    #[error("wrong password for room `{room}`")]
    WrongPassword { room: String },
    #[error("room `{room}` is full ({max} users)")]
    RoomFull { room: String, max: usize },
    #[error("this shard holds {max} rooms and documents already")]
    TopicLimit { max: usize },
    #[error("content is {size} bytes; at most {max}")]
    ContentTooLarge { size: usize, max: usize },
    #[error("rate limit: {limit} messages per {window_ms} ms; retry in {retry_ms} ms")]
    RateLimited {
        limit: u32,
        window_ms: u64,
        retry_ms: u64,
    },
    #[error("at most {max} rooms may be made by one {by}")]
    RoomQuota { by: &'static str, max: u32 },
    #[error("log in to create rooms: guests may not (--guests-create-rooms)")]
    GuestsCannotCreate,
    #[error("request budget of this {budget} spent; retry in {retry_ms} ms")]
    Throttled { budget: &'static str, retry_ms: u64 },
    #[error("no user `{user}`")]
    UnknownUser { user: String },
    #[error("too many {what} requests in flight (at most {max}); retry")]
    Busy { what: &'static str, max: usize },
    #[error(transparent)]
    Doc(#[from] crate::features::docs::DocError),
    #[error(transparent)]
    Shared(#[from] crate::features::shared::SharedError),
}

impl AppError {
    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadJson { .. } | AppError::NotAnObject => "bad_json",
            AppError::MissingField { .. } => "missing_field",
            AppError::InvalidField { .. } => "invalid_field",
            AppError::UnknownType { .. } => "unknown_type",
            AppError::InvalidRoomName { .. } => "invalid_room_name",
            AppError::NotInRoom { .. } => "not_in_room",
            AppError::AlreadyInRoom { .. } => "already_in_room",
            AppError::TooManyTopics { .. } => "too_many_rooms",
            AppError::InvalidUsername { .. } => "invalid_username",
            AppError::ReservedUsername { .. } => "reserved_username",
            AppError::AuthRequired => "auth_required",
            AppError::AlreadyAuthenticated => "already_authenticated",
            AppError::LoginDisabled => "login_disabled",
            AppError::RoomExists { .. } => "room_exists",
            AppError::WrongPassword { .. } => "wrong_password",
            AppError::RoomFull { .. } => "room_full",
            AppError::TopicLimit { .. } => "room_limit",
            AppError::ContentTooLarge { .. } => "content_too_large",
            AppError::RateLimited { .. } | AppError::Throttled { .. } => "rate_limited",
            AppError::RoomQuota { .. } => "room_quota",
            AppError::GuestsCannotCreate => "auth_required",
            AppError::UnknownUser { .. } => "unknown_user",
            AppError::Busy { .. } => "busy",
            AppError::Doc(e) => e.code(),
            AppError::Shared(e) => e.code(),
        }
    }
}

/// Parses the JSON text of one message in place (simd-json rewrites `text`).
pub fn parse_json<'t>(
    text: &'t mut [u8],
    buffers: &mut simd_json::Buffers,
) -> Result<Value<'t>, AppError> {
    // A message is one object: say so before the parser words it in its own states.
    let trimmed = text.trim_ascii();
    if trimmed.first() != Some(&b'{') {
        return Err(AppError::NotAnObject);
    }
    if trimmed.last() != Some(&b'}') {
        return Err(AppError::BadJson {
            reason: "it ends before its closing `}`".into(),
        });
    }
    simd_json::to_borrowed_value_with_buffers(text, buffers).map_err(|e| AppError::BadJson {
        reason: match e.character() {
            Some(c) if !c.is_control() => format!("invalid near byte {} (`{c}`)", e.index()),
            _ => format!("invalid near byte {}", e.index()),
        },
    })
}

/// A message's envelope: the `ref` the client attached (raw JSON, string or number) and its
/// `type` with the object's fields, or why it has none.
#[derive(Debug)]
pub struct Envelope<'v> {
    pub reference: Option<Vec<u8>>,
    pub message: Result<(&'v str, Fields<'v>), AppError>,
}

/// Reads the envelope of a parsed JSON value.
pub fn envelope<'v>(value: &'v Value<'v>) -> Envelope<'v> {
    let Some(obj) = value.as_object() else {
        return Envelope {
            reference: None,
            message: Err(AppError::NotAnObject),
        };
    };
    let fields = Fields { obj };
    let reference = match fields.reference() {
        Ok(r) => r,
        Err(e) => {
            return Envelope {
                reference: None,
                message: Err(e),
            }
        }
    };
    let kind = obj
        .get("type")
        .ok_or(AppError::MissingField { field: "type" })
        .and_then(|t| {
            t.as_str().ok_or(AppError::InvalidField {
                field: "type",
                expected: "a string",
            })
        });
    Envelope {
        reference,
        message: kind.map(|k| (k, fields)),
    }
}

/// The fields of one message object, read with their types and bounds checked.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'v> {
    obj: &'v simd_json::borrowed::Object<'v>,
}

impl<'v> Fields<'v> {
    fn reference(&self) -> Result<Option<Vec<u8>>, AppError> {
        match self.obj.get("ref") {
            None => Ok(None),
            Some(r) if r.is_str() || r.is_number() => {
                let raw = r.encode().into_bytes();
                if raw.len() > REF_BYTES_MAX {
                    return Err(AppError::InvalidField {
                        field: "ref",
                        expected: "a string or number of at most 128 bytes",
                    });
                }
                Ok(Some(raw))
            }
            Some(_) => Err(AppError::InvalidField {
                field: "ref",
                expected: "a string or number",
            }),
        }
    }

    /// The field's raw value, if present.
    pub fn get(&self, field: &str) -> Option<&'v Value<'v>> {
        self.obj.get(field)
    }

    /// A field that must be present, of any JSON type.
    pub fn value(&self, field: &'static str) -> Result<&'v Value<'v>, AppError> {
        self.obj.get(field).ok_or(AppError::MissingField { field })
    }

    /// `room`: a valid room name.
    pub fn room(&self) -> Result<&'v str, AppError> {
        let room = self.value("room")?.as_str().ok_or(AppError::InvalidField {
            field: "room",
            expected: "a string",
        })?;
        if !valid_room_name(room) {
            return Err(AppError::InvalidRoomName {
                max: ROOM_NAME_BYTES_MAX,
            });
        }
        Ok(room)
    }

    /// A string of at most `max` bytes, or absent (null counts as absent).
    pub fn opt_str(&self, field: &'static str, max: usize) -> Result<Option<&'v str>, AppError> {
        match self.obj.get(field) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) if s.len() <= max => Ok(Some(s)),
                _ => Err(AppError::InvalidField {
                    field,
                    expected: "a string of bounded length (see docs/PROTOCOL.md)",
                }),
            },
        }
    }

    /// A string of at most `max` bytes that must be present.
    pub fn str(&self, field: &'static str, max: usize) -> Result<&'v str, AppError> {
        self.opt_str(field, max)?
            .ok_or(AppError::MissingField { field })
    }

    /// A non-negative integer, or absent.
    pub fn opt_u64(&self, field: &'static str) -> Result<Option<u64>, AppError> {
        match self.obj.get(field) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or(AppError::InvalidField {
                field,
                expected: "a non-negative integer",
            }),
        }
    }

    /// An integer in `lo..=hi`, or absent. Any value outside (0, -1, 1.5, "5") is the same
    /// mistake, worded once by `expected`.
    pub fn opt_in(
        &self,
        field: &'static str,
        lo: u64,
        hi: u64,
        expected: &'static str,
    ) -> Result<Option<u64>, AppError> {
        match self.opt_u64(field) {
            Ok(None) => Ok(None),
            Ok(Some(n)) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(AppError::InvalidField { field, expected }),
        }
    }
}

/// The error for a `type` no feature handles.
pub fn unknown_type(kind: &str) -> AppError {
    AppError::UnknownType {
        kind: kind.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<R>(text: &str, f: impl FnOnce(Envelope<'_>) -> R) -> R {
        let mut bytes = text.as_bytes().to_vec();
        let mut buffers = simd_json::Buffers::default();
        let parsed = parse_json(&mut bytes, &mut buffers);
        match &parsed {
            Ok(v) => f(envelope(v)),
            Err(e) => f(Envelope {
                reference: None,
                message: Err(e.clone()),
            }),
        }
    }

    #[test]
    fn the_envelope_has_a_type_and_a_ref() {
        with(r#"{"type":"room:join","room":"general","ref":7}"#, |e| {
            assert_eq!(e.reference.as_deref(), Some(&b"7"[..]));
            let (kind, fields) = e.message.unwrap();
            assert_eq!(kind, "room:join");
            assert_eq!(fields.room(), Ok("general"));
            assert_eq!(fields.opt_str("password", 8), Ok(None));
        });
        with(r#"{"type":"nope","ref":"abc"}"#, |e| {
            assert_eq!(e.reference.as_deref(), Some(&br#""abc""#[..]));
        });
    }

    #[test]
    fn envelope_errors_have_stable_codes() {
        let code = |t: &str| with(t, |e| e.message.unwrap_err().code());
        assert_eq!(code("{not json"), "bad_json");
        assert_eq!(code("[1,2]"), "bad_json");
        assert_eq!(code(r#"{"room":"a"}"#), "missing_field");
        assert_eq!(code(r#"{"type":5}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"x","ref":[]}"#), "invalid_field");
        assert_eq!(unknown_type("nope").code(), "unknown_type");
    }

    #[test]
    fn field_readers_check_types_and_bounds() {
        with(
            r#"{"type":"t","room":"a b","n":0,"s":"long","empty":""}"#,
            |e| {
                let (_, f) = e.message.unwrap();
                assert_eq!(f.room().unwrap_err().code(), "invalid_room_name");
                assert_eq!(
                    f.opt_in("n", 1, 5, "1 to 5").unwrap_err().code(),
                    "invalid_field"
                );
                assert_eq!(f.opt_str("s", 3).unwrap_err().code(), "invalid_field");
                assert_eq!(f.str("missing", 3).unwrap_err().code(), "missing_field");
                assert_eq!(f.opt_u64("absent"), Ok(None));
            },
        );
    }

    #[test]
    fn mistakes_are_worded_for_the_sender() {
        let text = |t: &str| with(t, |e| e.message.unwrap_err().to_string());
        let object = "message must be a JSON object, e.g. {\"type\":\"room:list\"}";
        for t in ["not json", "", "[1,2]", " \"hi\" ", "5"] {
            assert_eq!(text(t), object, "{t:?}");
        }
        assert_eq!(
            text(r#"{"type":"room:list""#),
            "message is not valid JSON (it ends before its closing `}`); send one JSON \
             object, e.g. {\"type\":\"room:list\"}"
        );
        assert!(text(r#"{not json}"#).contains("invalid near byte 1 (`n`)"));
    }

    #[test]
    fn room_names() {
        assert!(valid_room_name("general"));
        assert!(valid_room_name("game:42.lobby_A-1"));
        assert!(valid_room_name(&"a".repeat(64)));
        assert!(!valid_room_name(&"a".repeat(65)));
        assert!(!valid_room_name("with space"));
        assert!(!valid_room_name("slash/no"));
        assert!(!valid_room_name("é"));
    }
}
