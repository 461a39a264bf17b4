//! Token authentication: a JWT signed with HS256 carrying `sub` (the user id), `name`, `exp`,
//! and optionally `nbf` and `iat`, checked against a time the caller passes in.
//!
//! Invariant: a token is accepted only with a valid signature, `now < exp + leeway`, no
//! `nbf` or `iat` later than `now + leeway`, and a `sub` and `name` that are valid identities
//! and not reserved ([`is_reserved_name`]).

use std::sync::Arc;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{is_reserved_name, valid_username, User};
use crate::limits::USER_ID_BYTES_MAX;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    name: Option<String>,
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
}

/// Why a token was refused (the handshake answers 401 with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {reason}")]
    Invalid { reason: String },
    #[error("token expired at {exp} (now {now}, leeway {leeway} s)")]
    Expired { exp: u64, now: u64, leeway: u64 },
    #[error("token not valid before {nbf} (now {now}, leeway {leeway} s)")]
    NotYetValid { nbf: u64, now: u64, leeway: u64 },
    #[error("token issued in the future, at {iat} (now {now}, leeway {leeway} s)")]
    IssuedInFuture { iat: u64, now: u64, leeway: u64 },
    #[error("token subject must be 1 to {max} bytes")]
    BadSubject { max: usize },
    #[error("token name is not a valid username")]
    BadName,
    #[error("token subject or name `{name}` is reserved")]
    Reserved { name: String },
}

/// A verified token: who it names and when it expires (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: Arc<User>,
    pub exp: u64,
}

/// Whether a token expiring at `exp` is expired at `now` (Unix seconds), `leeway` seconds
/// of clock skew allowed: the handshake and the connection's later check use this one rule.
pub fn token_expired(exp: u64, leeway: u64, now: u64) -> bool {
    now >= exp.saturating_add(leeway)
}

/// Verifies `token` with `secret` at `now` (Unix seconds), allowing `leeway` seconds of
/// clock skew; the user is `sub`, shown as `name` (or `sub`).
pub fn verify_token(
    token: &str,
    secret: &[u8],
    leeway: u64,
    now: u64,
) -> Result<Verified, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    // The times are checked below, against the `now` passed in.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map_err(|e| TokenError::Invalid {
            reason: e.to_string(),
        })?
        .claims;
    check_times(&claims, leeway, now)?;
    let sub = claims.sub;
    if sub.is_empty() || sub.len() > USER_ID_BYTES_MAX || sub.chars().any(char::is_control) {
        return Err(TokenError::BadSubject {
            max: USER_ID_BYTES_MAX,
        });
    }
    let name = claims.name.unwrap_or_else(|| sub.clone());
    if !valid_username(&name) {
        return Err(TokenError::BadName);
    }
    if let Some(reserved) = [&sub, &name].into_iter().find(|n| is_reserved_name(n)) {
        return Err(TokenError::Reserved {
            name: reserved.clone(),
        });
    }
    Ok(Verified {
        user: User::new(&sub, &name),
        exp: claims.exp,
    })
}

fn check_times(c: &Claims, leeway: u64, now: u64) -> Result<(), TokenError> {
    if token_expired(c.exp, leeway, now) {
        return Err(TokenError::Expired {
            exp: c.exp,
            now,
            leeway,
        });
    }
    let late = now.saturating_add(leeway);
    if let Some(nbf) = c.nbf.filter(|&nbf| nbf > late) {
        return Err(TokenError::NotYetValid { nbf, now, leeway });
    }
    if let Some(iat) = c.iat.filter(|&iat| iat > late) {
        return Err(TokenError::IssuedInFuture { iat, now, leeway });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn accepts_good_tokens_and_refuses_the_rest() {
        let s = b"secret";
        let now = now();
        let good = token(
            serde_json::json!({"sub": "u1", "name": "alice", "exp": now + 60}),
            s,
        );
        let v = verify_token(&good, s, 5, now).unwrap();
        assert_eq!(
            (&*v.user.id, &*v.user.name, v.exp),
            ("u1", "alice", now + 60)
        );
        assert!(verify_token(&good, b"other", 5, now).is_err());
        let expired = token(serde_json::json!({"sub": "u1", "exp": now - 3600}), s);
        assert!(matches!(
            verify_token(&expired, s, 5, now),
            Err(TokenError::Expired { .. })
        ));
        let no_exp = token(serde_json::json!({"sub": "u1"}), s);
        assert!(verify_token(&no_exp, s, 5, now).is_err());
        let bad_name = token(
            serde_json::json!({"sub": "u1", "name": "a b", "exp": now + 60}),
            s,
        );
        assert_eq!(verify_token(&bad_name, s, 5, now), Err(TokenError::BadName));
        assert!(verify_token("not.a.token", s, 5, now).is_err());
    }

    #[test]
    fn the_leeway_bounds_exp_nbf_and_iat() {
        let s = b"secret";
        let t0 = 1_800_000_000;
        let exp = token(serde_json::json!({"sub": "u1", "exp": t0}), s);
        // Expired 4 s ago: within a 5 s leeway, not within 3 s, nor with the old 60 s gone.
        assert!(verify_token(&exp, s, 5, t0 + 4).is_ok());
        assert!(verify_token(&exp, s, 3, t0 + 4).is_err());
        assert!(verify_token(&exp, s, 0, t0).is_err());
        assert!(verify_token(&exp, s, 0, t0 - 1).is_ok());
        let nbf = token(
            serde_json::json!({"sub": "u1", "exp": t0 + 600, "nbf": t0 + 10}),
            s,
        );
        assert!(matches!(
            verify_token(&nbf, s, 5, t0),
            Err(TokenError::NotYetValid { nbf, .. }) if nbf == t0 + 10
        ));
        assert!(verify_token(&nbf, s, 5, t0 + 5).is_ok());
        let iat = token(
            serde_json::json!({"sub": "u1", "exp": t0 + 600, "iat": t0 + 60}),
            s,
        );
        assert!(matches!(
            verify_token(&iat, s, 5, t0),
            Err(TokenError::IssuedInFuture { .. })
        ));
        assert!(verify_token(&iat, s, 5, t0 + 60).is_ok());
        assert!(token_expired(t0, 5, t0 + 5));
        assert!(!token_expired(t0, 5, t0 + 4));
    }

    #[test]
    fn reserved_subjects_and_names_are_refused() {
        let s = b"secret";
        let now = now();
        for claims in [
            serde_json::json!({"sub": "system", "exp": now + 60}),
            serde_json::json!({"sub": "SyStem", "exp": now + 60}),
            serde_json::json!({"sub": "u1", "name": "System", "exp": now + 60}),
            serde_json::json!({"sub": "guest:7", "name": "mallory", "exp": now + 60}),
        ] {
            let t = token(claims.clone(), s);
            assert!(
                matches!(
                    verify_token(&t, s, 5, now),
                    Err(TokenError::Reserved { .. })
                ),
                "{claims}"
            );
        }
        let fine = token(
            serde_json::json!({"sub": "systematic", "name": "guest", "exp": now + 60}),
            s,
        );
        assert!(verify_token(&fine, s, 5, now).is_ok());
    }
}
