//! Client-to-server messages: JSON objects `{"type": ..., ...}` parsed in place with simd-json,
//! and the application errors a malformed one earns.
//!
//! Invariant: a [`ClientMessage`] has every field its type needs, with the right JSON type and
//! a valid room name; anything else is an [`AppError`] with a stable `code`.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;

use crate::limits::{
    HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, NOTIFICATION_IDS_MAX, REF_BYTES_MAX,
    ROOM_DESCRIPTION_BYTES_MAX, ROOM_MEMBERS_MAX, ROOM_NAME_BYTES_MAX, ROOM_PASSWORD_BYTES_MAX,
    USER_ID_BYTES_MAX,
};

/// A room name: 1 to [`ROOM_NAME_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`, `.`, `:`.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= ROOM_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A message from a client, borrowing from its parsed JSON.
#[derive(Debug, PartialEq)]
pub enum ClientMessage<'v> {
    /// `auth:login {username}` (development mode).
    Login { username: &'v str },
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
    /// `presence:update {status}`: online, away or dnd.
    Presence { status: &'v str },
    /// `presence:list {room}`
    PresenceList { room: &'v str },
    /// `message:direct {to, content}`
    Direct { to: &'v str, content: &'v Value<'v> },
    /// `notification:list`
    NotificationList,
    /// `notification:read {ids}`
    NotificationRead { ids: Vec<u64> },
}

/// A parsed client message and the `ref` the client attached (raw JSON, string or number).
#[derive(Debug)]
pub struct Parsed<'v> {
    pub reference: Option<Vec<u8>>,
    pub message: Result<ClientMessage<'v>, AppError>,
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
    #[error("a connection may be in at most {max} rooms")]
    TooManyRooms { max: usize },
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
    #[error("this shard holds {max} rooms already")]
    RoomLimit { max: usize },
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
            AppError::TooManyRooms { .. } => "too_many_rooms",
            AppError::InvalidUsername { .. } => "invalid_username",
            AppError::ReservedUsername { .. } => "reserved_username",
            AppError::AuthRequired => "auth_required",
            AppError::AlreadyAuthenticated => "already_authenticated",
            AppError::LoginDisabled => "login_disabled",
            AppError::RoomExists { .. } => "room_exists",
            AppError::WrongPassword { .. } => "wrong_password",
            AppError::RoomFull { .. } => "room_full",
            AppError::RoomLimit { .. } => "room_limit",
            AppError::ContentTooLarge { .. } => "content_too_large",
            AppError::RateLimited { .. } | AppError::Throttled { .. } => "rate_limited",
            AppError::RoomQuota { .. } => "room_quota",
            AppError::GuestsCannotCreate => "auth_required",
            AppError::UnknownUser { .. } => "unknown_user",
            AppError::Busy { .. } => "busy",
        }
    }
}

// The bounds' error texts name these values.
const _: () = assert!(ROOM_MEMBERS_MAX == 100_000 && HISTORY_PAGE_MAX == 100);

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

/// Interprets a parsed JSON value as a client message.
pub fn interpret<'v>(value: &'v Value<'v>) -> Parsed<'v> {
    let Some(obj) = value.as_object() else {
        return Parsed {
            reference: None,
            message: Err(AppError::NotAnObject),
        };
    };
    let reference = match obj.get("ref") {
        None => Ok(None),
        Some(r) if r.is_str() || r.is_number() => {
            let raw = r.encode().into_bytes();
            if raw.len() > REF_BYTES_MAX {
                Err(AppError::InvalidField {
                    field: "ref",
                    expected: "a string or number of at most 128 bytes",
                })
            } else {
                Ok(Some(raw))
            }
        }
        Some(_) => Err(AppError::InvalidField {
            field: "ref",
            expected: "a string or number",
        }),
    };
    let reference = match reference {
        Ok(r) => r,
        Err(e) => {
            return Parsed {
                reference: None,
                message: Err(e),
            }
        }
    };
    let message = (|| {
        let kind = obj
            .get("type")
            .ok_or(AppError::MissingField { field: "type" })?
            .as_str()
            .ok_or(AppError::InvalidField {
                field: "type",
                expected: "a string",
            })?;
        let room = || -> Result<&'v str, AppError> {
            let room = obj
                .get("room")
                .ok_or(AppError::MissingField { field: "room" })?
                .as_str()
                .ok_or(AppError::InvalidField {
                    field: "room",
                    expected: "a string",
                })?;
            if !valid_room_name(room) {
                return Err(AppError::InvalidRoomName {
                    max: ROOM_NAME_BYTES_MAX,
                });
            }
            Ok(room)
        };
        let opt_str = |field: &'static str, max: usize| -> Result<Option<&'v str>, AppError> {
            match obj.get(field) {
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
        };
        let opt_u64 = |field: &'static str| -> Result<Option<u64>, AppError> {
            match obj.get(field) {
                None => Ok(None),
                Some(v) if v.is_null() => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or(AppError::InvalidField {
                    field,
                    expected: "a non-negative integer",
                }),
            }
        };
        // Any value outside `lo..=hi` (0, -1, 1.5, "5") is the same mistake, worded once.
        let opt_in =
            |field: &'static str, lo: u64, hi: u64, expected: &'static str| match opt_u64(field) {
                Ok(None) => Ok(None),
                Ok(Some(n)) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(AppError::InvalidField { field, expected }),
            };
        let content = || {
            obj.get("content")
                .ok_or(AppError::MissingField { field: "content" })
        };
        match kind {
            "auth:login" => {
                // Validated by the login itself, which answers with `auth:error`.
                let username = opt_str("username", usize::MAX)?
                    .ok_or(AppError::MissingField { field: "username" })?;
                Ok(ClientMessage::Login { username })
            }
            "room:create" => {
                let room = room()?;
                let max_users = opt_in(
                    "maxUsers",
                    1,
                    ROOM_MEMBERS_MAX as u64,
                    "an integer from 1 to 100000",
                )?
                .map(|n| n as u32);
                Ok(ClientMessage::Create {
                    room,
                    description: opt_str("description", ROOM_DESCRIPTION_BYTES_MAX)?,
                    password: opt_str("password", ROOM_PASSWORD_BYTES_MAX)?
                        .filter(|p| !p.is_empty()),
                    max_users,
                })
            }
            "room:list" => Ok(ClientMessage::List),
            "room:join" => Ok(ClientMessage::Join {
                room: room()?,
                password: opt_str("password", ROOM_PASSWORD_BYTES_MAX)?,
            }),
            "room:leave" => Ok(ClientMessage::Leave { room: room()? }),
            "message:send" => {
                let room = room()?;
                Ok(ClientMessage::Send {
                    room,
                    content: content()?,
                })
            }
            "message:history" => {
                let room = room()?;
                let limit = opt_in(
                    "limit",
                    1,
                    HISTORY_PAGE_MAX as u64,
                    "an integer from 1 to 100",
                )?
                .map_or(HISTORY_PAGE_DEFAULT, |n| n as usize);
                Ok(ClientMessage::History {
                    room,
                    limit,
                    before: opt_u64("before")?,
                })
            }
            "message:read" => {
                let room = room()?;
                let up_to = opt_u64("upTo")?.ok_or(AppError::MissingField { field: "upTo" })?;
                Ok(ClientMessage::Read { room, up_to })
            }
            "typing:start" => Ok(ClientMessage::Typing {
                room: room()?,
                on: true,
            }),
            "typing:stop" => Ok(ClientMessage::Typing {
                room: room()?,
                on: false,
            }),
            "presence:update" => {
                let status =
                    opt_str("status", 16)?.ok_or(AppError::MissingField { field: "status" })?;
                if !matches!(status, "online" | "away" | "dnd") {
                    return Err(AppError::InvalidField {
                        field: "status",
                        expected: "online, away or dnd",
                    });
                }
                Ok(ClientMessage::Presence { status })
            }
            "presence:list" => Ok(ClientMessage::PresenceList { room: room()? }),
            "message:direct" => {
                let to = opt_str("to", USER_ID_BYTES_MAX)?
                    .ok_or(AppError::MissingField { field: "to" })?;
                Ok(ClientMessage::Direct {
                    to,
                    content: content()?,
                })
            }
            "notification:list" => Ok(ClientMessage::NotificationList),
            "notification:read" => {
                let ids = obj
                    .get("ids")
                    .ok_or(AppError::MissingField { field: "ids" })?
                    .as_array()
                    .filter(|a| a.len() <= NOTIFICATION_IDS_MAX)
                    .and_then(|a| a.iter().map(|v| v.as_u64()).collect::<Option<Vec<u64>>>())
                    .ok_or(AppError::InvalidField {
                        field: "ids",
                        expected: "an array of at most 1000 notification ids",
                    })?;
                Ok(ClientMessage::NotificationRead { ids })
            }
            other => Err(AppError::UnknownType {
                kind: other.chars().take(64).collect(),
            }),
        }
    })();
    Parsed { reference, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<R>(text: &str, f: impl FnOnce(Parsed<'_>) -> R) -> R {
        let mut bytes = text.as_bytes().to_vec();
        let mut buffers = simd_json::Buffers::default();
        let parsed = parse_json(&mut bytes, &mut buffers);
        let out = match &parsed {
            Ok(v) => f(interpret(v)),
            Err(e) => f(Parsed {
                reference: None,
                message: Err(e.clone()),
            }),
        };
        out
    }

    #[test]
    fn parses_the_three_messages() {
        with(r#"{"type":"room:join","room":"general","ref":7}"#, |p| {
            assert_eq!(p.reference.as_deref(), Some(&b"7"[..]));
            assert_eq!(
                p.message,
                Ok(ClientMessage::Join {
                    room: "general",
                    password: None
                })
            );
        });
        with(r#"{"type":"room:leave","room":"a:b"}"#, |p| {
            assert_eq!(p.message, Ok(ClientMessage::Leave { room: "a:b" }));
        });
        with(
            r#"{"type":"message:send","room":"r","content":"hi \"you\"","ref":"x1"}"#,
            |p| {
                assert_eq!(p.reference.as_deref(), Some(&br#""x1""#[..]));
                match p.message.unwrap() {
                    ClientMessage::Send { room, content } => {
                        assert_eq!(room, "r");
                        assert_eq!(content.encode(), r#""hi \"you\"""#);
                    }
                    other => panic!("{other:?}"),
                }
            },
        );
    }

    #[test]
    fn errors_have_stable_codes() {
        let code = |t: &str| with(t, |p| p.message.unwrap_err().code());
        assert_eq!(code("{not json"), "bad_json");
        assert_eq!(code("[1,2]"), "bad_json");
        assert_eq!(code(r#"{"room":"a"}"#), "missing_field");
        assert_eq!(code(r#"{"type":5}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"nope"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"room:join"}"#), "missing_field");
        assert_eq!(
            code(r#"{"type":"room:join","room":"a b"}"#),
            "invalid_room_name"
        );
        assert_eq!(
            code(r#"{"type":"room:join","room":""}"#),
            "invalid_room_name"
        );
        assert_eq!(
            code(r#"{"type":"message:send","room":"a"}"#),
            "missing_field"
        );
        assert_eq!(
            code(r#"{"type":"room:join","room":"a","ref":[]}"#),
            "invalid_field"
        );
    }

    #[test]
    fn parses_the_chat_messages() {
        with(
            r#"{"type":"room:create","room":"dev","description":"d","password":"","maxUsers":5}"#,
            |p| {
                assert_eq!(
                    p.message,
                    Ok(ClientMessage::Create {
                        room: "dev",
                        description: Some("d"),
                        password: None,
                        max_users: Some(5)
                    })
                );
            },
        );
        with(r#"{"type":"message:history","room":"r","before":9}"#, |p| {
            assert_eq!(
                p.message,
                Ok(ClientMessage::History {
                    room: "r",
                    limit: HISTORY_PAGE_DEFAULT,
                    before: Some(9)
                })
            );
        });
        with(r#"{"type":"notification:read","ids":[1,2]}"#, |p| {
            assert_eq!(
                p.message,
                Ok(ClientMessage::NotificationRead { ids: vec![1, 2] })
            );
        });
        with(r#"{"type":"typing:stop","room":"r"}"#, |p| {
            assert_eq!(
                p.message,
                Ok(ClientMessage::Typing {
                    room: "r",
                    on: false
                })
            );
        });
    }

    #[test]
    fn chat_fields_are_checked() {
        let code = |t: &str| with(t, |p| p.message.unwrap_err().code());
        let long = "x".repeat(ROOM_DESCRIPTION_BYTES_MAX + 1);
        assert_eq!(
            code(&format!(
                r#"{{"type":"room:create","room":"a","description":"{long}"}}"#
            )),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"type":"room:create","room":"a","maxUsers":0}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"type":"message:history","room":"a","limit":101}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"type":"message:read","room":"a"}"#),
            "missing_field"
        );
        assert_eq!(
            code(r#"{"type":"presence:update","status":"offline"}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"type":"notification:read","ids":["x"]}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"type":"message:direct","content":1}"#),
            "missing_field"
        );
        assert_eq!(code(r#"{"type":"auth:login"}"#), "missing_field");
    }

    #[test]
    fn mistakes_are_worded_for_the_sender() {
        let text = |t: &str| with(t, |p| p.message.unwrap_err().to_string());
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
        let same = text(r#"{"type":"message:history","room":"a","limit":0}"#);
        for other in ["-1", "101", "1.5", "\"5\""] {
            let t = format!(r#"{{"type":"message:history","room":"a","limit":{other}}}"#);
            assert_eq!(text(&t), same, "limit {other}");
        }
        assert_eq!(same, "field `limit` must be an integer from 1 to 100");
        let zero = text(r#"{"type":"room:create","room":"a","maxUsers":0}"#);
        assert_eq!(
            text(r#"{"type":"room:create","room":"a","maxUsers":-1}"#),
            zero
        );
        assert!(zero.contains("from 1 to 100000"), "{zero}");
    }

    #[test]
    fn unknown_type_keeps_the_ref() {
        with(r#"{"type":"nope","ref":"abc"}"#, |p| {
            assert_eq!(p.reference.as_deref(), Some(&br#""abc""#[..]));
        });
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
