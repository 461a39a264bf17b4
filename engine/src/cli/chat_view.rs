//! How `corecast chat` words what the server says: one line (or a few) per event, in plain
//! terms, with no state of its own.
//!
//! Invariant: every function here is pure; the client decides what to show and when.

use serde_json::Value;

/// A string field, or "".
fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or("")
}

/// Message content as typed: a string as is, anything else as JSON.
pub fn text(content: &Value) -> String {
    match content.as_str() {
        Some(s) => s.to_string(),
        None => content.to_string(),
    }
}

/// `HH:MM:SS` (UTC) of a Unix-ms timestamp.
pub fn clock(ts: &Value) -> String {
    let secs = ts.as_u64().unwrap_or(0) / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The current time as a Unix-ms JSON value (for lines the server sends no time with).
pub fn now_ms() -> Value {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Value::from(ms)
}

pub fn message(v: &Value) -> String {
    format!(
        "[{}] #{} <{}> {}",
        clock(&v["ts"]),
        s(v, "room"),
        v["from"]["username"].as_str().unwrap_or("?"),
        text(&v["content"])
    )
}

pub fn direct_in(v: &Value) -> String {
    format!(
        "[{}] (direct from {}) {}",
        clock(&v["ts"]),
        v["from"]["username"].as_str().unwrap_or("?"),
        text(&v["content"])
    )
}

pub fn direct_out(to: &str, content: &str) -> String {
    format!("[{}] (direct to {to}) {content}", clock(&now_ms()))
}

/// `* Rooms:` and one line per room: name, members, whether it needs a password, unread,
/// then its description in quotes.
pub fn room_list(v: &Value) -> String {
    let rooms = v["rooms"].as_array().map_or(&[][..], Vec::as_slice);
    if rooms.is_empty() {
        return "* No rooms yet: /create one, or /join one by name".into();
    }
    let mut out = String::from("* Rooms:");
    for r in rooms {
        let members = r["members"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "\n    #{} - {members} {}",
            s(r, "room"),
            if members == 1 { "member" } else { "members" }
        ));
        if r["hasPassword"] == true {
            out.push_str(", needs a password");
        }
        if let Some(n) = r["unread"].as_u64().filter(|n| *n > 0) {
            out.push_str(&format!(", {n} unread"));
        }
        if !s(r, "description").is_empty() {
            out.push_str(&format!(" - \"{}\"", s(r, "description")));
        }
    }
    if v["truncated"] == true {
        out.push_str("\n    (more rooms than the server lists)");
    }
    out
}

pub fn presence_list(v: &Value) -> String {
    let mut out = format!("* In #{}:", s(v, "room"));
    for u in v["users"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n    {} ({})",
            u["username"].as_str().unwrap_or("?"),
            u["status"].as_str().unwrap_or("?")
        ));
    }
    if let Some(more) = v["more"].as_u64().filter(|n| *n > 0) {
        out.push_str(&format!("\n    and {more} more"));
    }
    out
}

/// `* Joined #room (N members): alice, bob`.
pub fn joined(v: &Value) -> String {
    let users: Vec<&str> = v["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["username"].as_str())
        .collect();
    let members = v["members"].as_u64().unwrap_or(0);
    format!(
        "* Joined #{} ({members} {}){}{}",
        s(v, "room"),
        if members == 1 { "member" } else { "members" },
        if users.is_empty() { "" } else { ": " },
        users.join(", ")
    )
}

/// The line for an event that needs no state; None for events not shown.
pub fn simple(v: &Value) -> Option<String> {
    Some(match s(v, "type") {
        "room:left" => format!("* Left #{}", s(v, "room")),
        "room:user_joined" => format!("* {} joined #{}", s(v, "username"), s(v, "room")),
        "room:user_left" => format!("* {} left #{}", s(v, "username"), s(v, "room")),
        "room:created" => {
            let about = s(v, "description");
            let lock = if v["hasPassword"] == true {
                ", with a password"
            } else {
                ""
            };
            match about {
                "" => format!("* Created #{}{lock} (/join it)", s(v, "room")),
                _ => format!("* Created #{}{lock}: \"{about}\" (/join it)", s(v, "room")),
            }
        }
        "room:list" => room_list(v),
        "presence:list" => presence_list(v),
        "presence:update" => format!("* {} is now {}", s(v, "username"), s(v, "status")),
        "notification:new" if s(v, "kind") == "direct" => return None, // Shown as the DM.
        "notification:new" => format!("! {}: {}", s(v, "title"), s(v, "body")),
        "rate_limit:warning" => format!(
            "! Slow down: {} messages left before the rate limit",
            v["remaining"]
        ),
        "error" | "auth:error" => format!("! {}", s(v, "message")),
        "message:read"
        | "ack"
        | "connection:established"
        | "notification:unread"
        | "typing:update" => return None,
        _ => format!("* {v}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn room_lists_keep_descriptions_apart_from_passwords() {
        let v = json!({"type": "room:list", "rooms": [
            {"room": "dev", "description": "Discussion about development", "members": 3,
             "hasPassword": true, "maxUsers": 50, "unread": 2},
            {"room": "general", "description": "", "members": 1, "hasPassword": false,
             "maxUsers": null, "unread": 0}
        ], "truncated": false});
        assert_eq!(
            room_list(&v),
            "* Rooms:\n    #dev - 3 members, needs a password, 2 unread - \
             \"Discussion about development\"\n    #general - 1 member"
        );
    }

    #[test]
    fn direct_notifications_are_not_shown_twice() {
        let dm = json!({"type": "notification:new", "kind": "direct", "title": "t", "body": "b"});
        assert_eq!(simple(&dm), None);
        let mention =
            json!({"type": "notification:new", "kind": "mention", "title": "t", "body": "b"});
        assert_eq!(simple(&mention).as_deref(), Some("! t: b"));
    }
}
