//! Token authentication: a JWT signed with HS256 carrying `sub` (the user id) and `name`.
//!
//! Invariant: a token is accepted only with a valid signature, an `exp` in the future and a
//! `sub` and `name` that are valid identities.

use std::sync::Arc;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{valid_username, User};
use crate::limits::USER_ID_BYTES_MAX;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    name: Option<String>,
}

/// Why a token was refused (the handshake answers 401 with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {reason}")]
    Invalid { reason: String },
    #[error("token subject must be 1 to {max} bytes")]
    BadSubject { max: usize },
    #[error("token name is not a valid username")]
    BadName,
}

/// Verifies `token` with `secret`; the user is `sub`, shown as `name` (or `sub`).
pub fn verify_token(token: &str, secret: &[u8]) -> Result<Arc<User>, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data =
        decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation).map_err(|e| {
            TokenError::Invalid {
                reason: e.to_string(),
            }
        })?;
    let sub = data.claims.sub;
    if sub.is_empty() || sub.len() > USER_ID_BYTES_MAX || sub.chars().any(char::is_control) {
        return Err(TokenError::BadSubject {
            max: USER_ID_BYTES_MAX,
        });
    }
    let name = data.claims.name.unwrap_or_else(|| sub.clone());
    if !valid_username(&name) {
        return Err(TokenError::BadName);
    }
    Ok(User::new(&sub, &name))
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
        let good = token(
            serde_json::json!({"sub": "u1", "name": "alice", "exp": now() + 60}),
            s,
        );
        let u = verify_token(&good, s).unwrap();
        assert_eq!((&*u.id, &*u.name), ("u1", "alice"));
        assert!(verify_token(&good, b"other").is_err());
        let expired = token(serde_json::json!({"sub": "u1", "exp": now() - 3600}), s);
        assert!(verify_token(&expired, s).is_err());
        let no_exp = token(serde_json::json!({"sub": "u1"}), s);
        assert!(verify_token(&no_exp, s).is_err());
        let bad_name = token(
            serde_json::json!({"sub": "u1", "name": "a b", "exp": now() + 60}),
            s,
        );
        assert_eq!(verify_token(&bad_name, s), Err(TokenError::BadName));
        assert!(verify_token("not.a.token", s).is_err());
    }
}
