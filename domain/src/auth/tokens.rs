//! Access tokens: HS256 JWTs with `sub`, `role`, `exp`, `iat`, `jti`, `iss`, `sid` (the
//! sign-in that issued it: its refresh-token family) and a `kid` header naming the key, so keys rotate (sign with the current key, verify with the
//! current or the previous one). Only HS256 is accepted: `none` and algorithm confusion are
//! refused by the validation, not by luck.

use crate::ids::TokenId;
use crate::ids::{SignInId, UserId};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthError, Principal, Role};
use crate::clock::{now_ms, now_s};
use crate::settings::AuthSettings;

const ISSUER: &str = "bestie";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    exp: i64,
    iat: i64,
    jti: Uuid,
    iss: String,
    /// The sign-in (refresh-token family). Tokens signed before the claim existed have none.
    #[serde(default)]
    sid: Uuid,
    /// `iat` in milliseconds, for the account's "not valid before" (a password reset at
    /// second 10.4 refuses a token of 10.2 and keeps one of 10.6). Tokens without it count as
    /// issued at 0: refused by any "not valid before".
    #[serde(default)]
    iat_ms: i64,
}

/// Signs and verifies access tokens.
pub struct TokenKeys {
    current_kid: String,
    current: (EncodingKey, DecodingKey),
    previous: Option<(String, DecodingKey)>,
    validation: Validation,
    ttl_s: i64,
    /// Tokens whose signature and claims were already checked (see [`Self::verify`]).
    verified: std::sync::Mutex<std::collections::HashMap<Box<str>, Principal>>,
}

/// Verified tokens kept at most; the cache is emptied when it is full (a token is just
/// verified again).
const VERIFIED_CAPACITY: usize = 100_000;

/// A freshly signed access token.
pub struct AccessToken {
    pub token: String,
    pub expires_in_s: i64,
}

impl TokenKeys {
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = settings.jwt_secret.expose().as_bytes();
        let previous = settings
            .jwt_previous_kid
            .clone()
            .zip(settings.jwt_previous_secret.as_ref())
            .map(|(kid, secret)| (kid, DecodingKey::from_secret(secret.expose().as_bytes())));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        Self {
            current_kid: settings.jwt_kid.clone(),
            current: (EncodingKey::from_secret(secret), DecodingKey::from_secret(secret)),
            previous,
            validation,
            ttl_s: i64::try_from(settings.access_token_ttl_s).unwrap_or(i64::MAX),
            verified: Default::default(),
        }
    }

    /// Signs a new access token for `id` acting as `role`, outside any sign-in (seeded and
    /// benchmark tokens): it gets a sign-in id of its own.
    pub fn issue(&self, id: UserId, role: Role) -> Result<AccessToken, AuthError> {
        self.issue_in(SignInId(Uuid::new_v4()), id, role)
    }

    /// Signs an access token as if issued at `issued_at_s` (unix seconds); it expires one
    /// lifetime later. Tests use it to hold tokens that have already expired.
    pub fn issue_at(&self, id: UserId, role: Role, issued_at_s: i64) -> Result<AccessToken, AuthError> {
        self.sign(SignInId(Uuid::new_v4()), id, role, issued_at_s.saturating_mul(1_000))
    }

    /// Signs an access token of the sign-in `sign_in` (its refresh-token family), so revoking
    /// the sign-in revokes the token.
    pub fn issue_in(&self, sign_in: SignInId, id: UserId, role: Role) -> Result<AccessToken, AuthError> {
        self.sign(sign_in, id, role, i64::try_from(now_ms()).unwrap_or(i64::MAX))
    }

    fn sign(
        &self,
        sign_in: SignInId,
        id: UserId,
        role: Role,
        issued_at_ms: i64,
    ) -> Result<AccessToken, AuthError> {
        let issued_at_s = issued_at_ms.div_euclid(1_000);
        let claims = Claims {
            sub: id.0,
            role,
            exp: issued_at_s + self.ttl_s,
            iat: issued_at_s,
            jti: Uuid::new_v4(),
            iss: ISSUER.into(),
            sid: sign_in.0,
            iat_ms: issued_at_ms,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.current.0)
            .map_err(|e| AuthError::Crypto(e.to_string()))?;
        Ok(AccessToken { token, expires_in_s: self.ttl_s })
    }

    /// Checks signature, algorithm, key id, issuer and expiry. Revocation is checked by the
    /// caller against the store ([`crate::auth::session::authenticate`]).
    ///
    /// An app presents the same token many times (the availability poll every 5 s for the
    /// token's 15 minutes), so a verified token is remembered, keyed by its exact text: the
    /// same bytes verify the same way until expiry, which is checked again on every use.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let remembered = self.verified.lock().ok().and_then(|verified| verified.get(token).copied());
        if let Some(principal) = remembered {
            // Zero leeway, as in the full check: valid up to and including `exp`.
            return if now_s() > principal.expires_at_s {
                Err(AuthError::TokenExpired)
            } else {
                Ok(principal)
            };
        }
        let principal = self.verify_signed(token)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(token.into(), principal);
        }
        Ok(principal)
    }

    fn verify_signed(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::InvalidToken);
        }
        let key = match header.kid.as_deref() {
            Some(kid) if kid == self.current_kid => &self.current.1,
            Some(kid) => match &self.previous {
                Some((previous_kid, key)) if previous_kid == kid => key,
                _ => return Err(AuthError::InvalidToken),
            },
            None => return Err(AuthError::InvalidToken),
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| match e.kind() {
                JwtErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::InvalidToken,
            })?;
        let claims = data.claims;
        Ok(Principal {
            id: UserId(claims.sub),
            role: claims.role,
            token_id: TokenId(claims.jti),
            sign_in: SignInId(claims.sid),
            issued_at_ms: claims.iat_ms,
            expires_at_s: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::settings::Secret;

    fn keys() -> TokenKeys {
        TokenKeys::new(&AuthSettings::default())
    }

    #[test]
    fn an_issued_token_verifies_to_its_principal() {
        let keys = keys();
        let (id, sign_in) = (UserId(Uuid::new_v4()), SignInId(Uuid::new_v4()));
        let token = keys.issue_in(sign_in, id, Role::Mitra).expect("issue").token;
        let principal = keys.verify(&token).expect("verify");
        assert_eq!((principal.id, principal.role, principal.sign_in), (id, Role::Mitra, sign_in));
        assert_eq!(
            keys.verify(&token).expect("verify again"),
            principal,
            "the remembered answer is the same"
        );
    }

    #[test]
    fn a_remembered_token_does_not_vouch_for_a_tampered_copy() {
        let keys = keys();
        let token = keys.issue(UserId(Uuid::new_v4()), Role::Customer).expect("issue").token;
        keys.verify(&token).expect("verify");
        let (unsigned, signature) = token.rsplit_once('.').expect("three parts");
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{unsigned}.{flipped}{}", &signature[1..]);
        assert!(matches!(keys.verify(&tampered), Err(AuthError::InvalidToken)));
        let other_claims = keys.issue(UserId(Uuid::new_v4()), Role::Cc).expect("issue").token;
        let (_, other_signature) = other_claims.rsplit_once('.').expect("three parts");
        let spliced = format!("{unsigned}.{other_signature}");
        assert!(matches!(keys.verify(&spliced), Err(AuthError::InvalidToken)));
    }

    #[test]
    fn an_unsigned_none_token_is_refused() {
        let keys = keys();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"dev-1"}"#);
        let claims = format!(
            r#"{{"sub":"{}","role":"cc","exp":{},"iat":{},"jti":"{}","iss":"bestie"}}"#,
            Uuid::new_v4(),
            now_s() + 600,
            now_s(),
            Uuid::new_v4()
        );
        let forged = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims));
        assert!(matches!(keys.verify(&forged), Err(AuthError::InvalidToken)));
    }

    #[test]
    fn a_token_signed_with_another_key_or_kid_is_refused() {
        let other = AuthSettings {
            jwt_secret: Secret::new("another-secret-another-secret-another-secret"),
            ..AuthSettings::default()
        };
        let forged = TokenKeys::new(&other).issue(UserId(Uuid::new_v4()), Role::Cc).expect("issue").token;
        assert!(matches!(keys().verify(&forged), Err(AuthError::InvalidToken)));

        let unknown_kid = AuthSettings { jwt_kid: "someone-else".into(), ..AuthSettings::default() };
        let forged =
            TokenKeys::new(&unknown_kid).issue(UserId(Uuid::new_v4()), Role::Cc).expect("issue").token;
        assert!(matches!(keys().verify(&forged), Err(AuthError::InvalidToken)));
    }

    #[test]
    fn tokens_of_the_previous_key_verify_after_rotation() {
        let before = AuthSettings::default();
        let token =
            TokenKeys::new(&before).issue(UserId(Uuid::new_v4()), Role::Customer).expect("issue").token;
        let mut rotated = AuthSettings {
            jwt_kid: "dev-2".into(),
            jwt_secret: Secret::new("a-brand-new-key-a-brand-new-key-a-brand-new-key"),
            jwt_previous_kid: Some(before.jwt_kid.clone()),
            jwt_previous_secret: Some(before.jwt_secret.clone()),
            ..AuthSettings::default()
        };
        assert!(TokenKeys::new(&rotated).verify(&token).is_ok());
        rotated.jwt_previous_kid = None;
        rotated.jwt_previous_secret = None;
        assert!(TokenKeys::new(&rotated).verify(&token).is_err());
    }

    #[test]
    fn a_token_past_its_expiry_is_refused_as_expired() {
        let keys = keys();
        let ttl = i64::try_from(AuthSettings::default().access_token_ttl_s).expect("small ttl");
        let token =
            keys.issue_at(UserId(Uuid::new_v4()), Role::Customer, now_s() - ttl - 1).expect("issue").token;
        assert!(matches!(keys.verify(&token), Err(AuthError::TokenExpired)));
        let fresh =
            keys.issue_at(UserId(Uuid::new_v4()), Role::Customer, now_s() - ttl + 30).expect("issue").token;
        assert!(keys.verify(&fresh).is_ok());
    }
}
