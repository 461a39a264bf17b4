//! A user's presence status.
//!
//! Invariant: `Offline` is never chosen by a client; it means no connection is open.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    Away,
    Dnd,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
            Status::Dnd => "dnd",
            Status::Offline => "offline",
        }
    }

    /// A status a client may set: online, away or dnd.
    pub fn parse_settable(s: &str) -> Option<Status> {
        match s {
            "online" => Some(Status::Online),
            "away" => Some(Status::Away),
            "dnd" => Some(Status::Dnd),
            _ => None,
        }
    }
}
