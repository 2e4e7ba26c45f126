//! Sessions: signing in with a password, issuing the token pair, rotating refresh tokens,
//! logging out, and authenticating a presented access token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::tokens::TokenKeys;
use super::{AuthError, Principal, Role};
use crate::auth::store::refresh_tokens::{NewRefreshToken, Rotation, family_end};
use crate::clock::now_s;
use crate::ids::{RefreshTokenId, SignInId, UserId};
use crate::password;
use crate::settings::AuthSettings;
use crate::store::Store;

/// WebSocket close code for a socket whose access token was logged out.
pub const CLOSE_LOGGED_OUT: u16 = 4002;
/// WebSocket close code for a socket whose sign-in was revoked: its refresh token was
/// presented a second time (stolen, or replayed), or the account's password was reset.
pub const CLOSE_SIGN_IN_REVOKED: u16 = 4004;

/// A signed-in session: what every sign-in and refresh answers.
#[derive(Debug)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_s: i64,
}

/// A mitra or operator account, as sign-in returns it.
#[derive(Debug)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: crate::auth::AccountRole,
}

/// Issues a new token pair: a new refresh-token family.
pub async fn start(
    store: &Store,
    keys: &TokenKeys,
    settings: &AuthSettings,
    id: UserId,
    role: Role,
) -> Result<Session, AuthError> {
    let sign_in = Uuid::new_v4();
    let access = keys.issue_in(SignInId(sign_in), id, role)?;
    let refresh_token = URL_SAFE_NO_PAD.encode(super::random_bytes::<32>()?);
    let new = NewRefreshToken {
        id: RefreshTokenId(Uuid::new_v4()),
        family_id: SignInId(sign_in),
        role,
        owner_id: id,
        token_hash: refresh_hash(&refresh_token),
        ttl_s: settings.refresh_token_ttl_s,
        family_expires_at: family_end(settings.refresh_token_max_lifetime_s),
    };
    store.insert_refresh_token(&new).await?;
    tracing::info!(user_id = %id, %role, %sign_in, "signed in");
    Ok(Session { access_token: access.token, refresh_token, expires_in_s: access.expires_in_s })
}

/// Signs a mitra (`Role::Mitra`) or operator (`Role::Cc`) in with email + password.
///
/// Each account (each email, whether or not it has one) gets `max_sign_in_failures`
/// attempts per `sign_in_failure_window_s`, counted before the password is checked so that
/// concurrent guesses cannot slip past the count; a successful sign-in resets it. Beyond
/// that: `sign_in_locked` (429) until the window ends, whatever the password.
#[tracing::instrument(skip_all, fields(role = %role))]
pub async fn password_login(
    store: &Store,
    keys: &TokenKeys,
    settings: &AuthSettings,
    role: Role,
    email: &str,
    password: &str,
) -> Result<(Session, Account), AuthError> {
    let email = email.trim().to_lowercase();
    let attempt = store
        .count_sign_in_attempt(role, &email, settings.max_sign_in_failures, settings.sign_in_failure_window_s)
        .await?;
    if let Some(retry_after_s) = attempt.locked_for_s {
        tracing::warn!(role = %role, attempts = attempt.count, "sign-ins of one account refused: too many attempts");
        return Err(AuthError::SignInLocked { retry_after_s });
    }
    let found = store.password_account(role, &email).await?;
    let Some(found) = found else {
        // Spend the same time as a real check, so response times do not reveal which
        // emails have accounts.
        password::verify(password, DUMMY_HASH).await;
        return Err(AuthError::InvalidCredentials);
    };
    if !password::verify(password, &found.password_hash).await {
        return Err(AuthError::InvalidCredentials);
    }
    store.clear_sign_in_attempts(role, &email).await?;
    if found.deactivated {
        return Err(AuthError::AccountDeactivated);
    }
    let session = start(store, keys, settings, found.id, role).await?;
    if role == Role::Cc {
        store.audit_operator_sign_in(crate::ids::OperatorId(found.id.0)).await?;
    }
    let account = Account { id: found.id.0, email, display_name: found.display_name, role: found.role };
    Ok((session, account))
}

/// An argon2id hash of a random string, checked when the email is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YmVzdGllLWR1bW15LXNhbHQ$3mvLMZ2qBmpVFZl1g6yKmAHtrrEuAqR2I7SYFSFFQ0Q";

/// Exchanges a refresh token for a new pair. The old token is spent; presenting a spent
/// token revokes its whole sign-in (it was stolen, or the app replayed it): the family's
/// refresh tokens, every access token it issued, and the sockets opened with them (4004).
/// Only tokens of `allowed` roles are accepted, so each listener refreshes only its own
/// callers. A sign-in ends `refresh_token_max_lifetime_s` after it began however often it
/// rotates.
#[tracing::instrument(skip_all)]
pub async fn refresh(
    store: &Store,
    keys: &TokenKeys,
    settings: &AuthSettings,
    refresh_token: &str,
    allowed: &[Role],
) -> Result<Session, AuthError> {
    let old_hash = refresh_hash(refresh_token);
    let new_refresh = URL_SAFE_NO_PAD.encode(super::random_bytes::<32>()?);
    let replacement_hash = refresh_hash(&new_refresh);
    let rotation = store
        .rotate_refresh_token(
            &old_hash,
            (RefreshTokenId(Uuid::new_v4()), &replacement_hash),
            settings.refresh_token_ttl_s,
            settings.refresh_token_max_lifetime_s,
            allowed,
        )
        .await?;
    match rotation {
        Rotation::Rotated { owner_id, role, sign_in } => {
            let access = keys.issue_in(sign_in, owner_id, role)?;
            Ok(Session {
                access_token: access.token,
                refresh_token: new_refresh,
                expires_in_s: access.expires_in_s,
            })
        }
        Rotation::Reused { owner_id, sign_in } => {
            revoke_sign_in(store, settings, owner_id, sign_in).await?;
            tracing::warn!(user_id = %owner_id, %sign_in, "a spent refresh token was presented again; its sign-in is revoked");
            Err(AuthError::RefreshTokenReused)
        }
        Rotation::Invalid => Err(AuthError::InvalidRefreshToken),
    }
}

/// Refuses every access token of one sign-in and closes the sockets opened with them.
async fn revoke_sign_in(
    store: &Store,
    settings: &AuthSettings,
    user_id: UserId,
    sign_in: SignInId,
) -> Result<(), AuthError> {
    let ttl_s = i64::try_from(settings.access_token_ttl_s).unwrap_or(i64::MAX);
    store.revoke_sign_in(user_id, sign_in, ttl_s).await?;
    store.delete_devices_of(user_id, Some(sign_in), None).await?;
    let close = serde_json::json!({
        "kind": "disconnect_sign_in",
        "user_id": user_id,
        "sign_in": sign_in,
        "code": CLOSE_SIGN_IN_REVOKED,
        "reason": "sign_in_revoked",
    });
    store.publish_hub_control(&close.to_string()).await?;
    Ok(())
}

/// Refuses every access token of the account issued until now (a password reset, a
/// deactivation), unregisters its push tokens and closes its sockets with `code`/`reason`.
/// Its refresh tokens are the caller's to revoke.
pub async fn revoke_all_sign_ins(
    store: &Store,
    access_token_ttl_s: u64,
    user_id: UserId,
    code: u16,
    reason: &str,
) -> Result<(), crate::store::StoreError> {
    store.set_not_valid_before(user_id, i64::try_from(access_token_ttl_s).unwrap_or(i64::MAX)).await?;
    store.delete_devices_of(user_id, None, None).await?;
    let close = serde_json::json!({
        "kind": "disconnect_user",
        "user_id": user_id,
        "code": code,
        "reason": reason,
    });
    store.publish_hub_control(&close.to_string()).await
}

/// Revokes the presented access token and, when given, the family of `refresh_token`,
/// which must belong to the caller (otherwise nothing changes and the answer is 404). The
/// push tokens this sign-in registered are unregistered: a signed-out phone gets no more
/// pushes for the account.
#[tracing::instrument(skip_all)]
pub async fn logout(
    store: &Store,
    principal: &Principal,
    refresh_token: Option<&str>,
) -> Result<(), AuthError> {
    if let Some(token) = refresh_token {
        let revoked = store.revoke_refresh_family(&refresh_hash(token), principal.id, principal.role).await?;
        if !revoked {
            return Err(AuthError::RefreshTokenNotFound);
        }
    }
    let remaining_s = (principal.expires_at_s - now_s()).max(1);
    store.revoke_access_token(principal, remaining_s).await?;
    store.delete_devices_of(principal.id, Some(principal.sign_in), None).await?;
    // Sockets opened with this token close now rather than at its expiry.
    let close = serde_json::json!({
        "kind": "disconnect_token",
        "user_id": principal.id,
        "token_id": principal.token_id,
        "code": CLOSE_LOGGED_OUT,
        "reason": "logged_out",
    });
    store.publish_hub_control(&close.to_string()).await?;
    tracing::info!(user_id = %principal.id, role = %principal.role, sign_in = %principal.sign_in, "signed out");
    Ok(())
}

/// Keeps this process's copy of the revoked tokens, sign-ins and accounts loaded and current
/// until `shutdown` (what [`authenticate`] checks without a round trip).
pub async fn watch_revocations(store: &Store, shutdown: tokio_util::sync::CancellationToken) {
    store.run_revocation_watcher(shutdown).await;
}

/// Verifies an access token and checks it was neither revoked nor issued to an account
/// deactivated since.
pub async fn authenticate(store: &Store, keys: &TokenKeys, token: &str) -> Result<Principal, AuthError> {
    let principal = keys.verify(token)?;
    if store.access_token_revoked(&principal).await? {
        return Err(AuthError::TokenRevoked);
    }
    Ok(principal)
}

fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        // Otherwise an unknown email would skip the expensive check and answer faster.
        let parsed = argon2::password_hash::phc::PasswordHash::new(super::DUMMY_HASH).expect("parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
    }
}
