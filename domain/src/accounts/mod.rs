//! Mitra accounts, as the control center manages them: create, deactivate, reactivate.
//! Deactivation takes effect everywhere at once: sign-in is refused, refresh tokens are
//! revoked, access tokens are refused, and the mitra's live sockets are closed.

mod customers;
mod operators;
pub mod store;

pub use customers::*;
pub use operators::*;
pub use store::AuditAction;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::accounts::store::MitraRow;
use crate::accounts::store::NewAccount;
use crate::auth::{Principal, Role, session};
use crate::error::{DomainError, ErrorKind};
use crate::ids::MitraId;
use crate::ids::UserId;
use crate::password;
use crate::settings::AuthSettings;
use crate::store::{Store, StoreError};

/// WebSocket close code for a socket whose account was deactivated.
pub const CLOSE_ACCOUNT_DEACTIVATED: u16 = 4003;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email must look like name@example.com (at most 254 characters)")]
    InvalidEmail,
    #[error("password must be 8 to 256 characters")]
    InvalidPassword,
    #[error("display_name must be 1 to 100 characters")]
    InvalidDisplayName,
    #[error("an account with this email exists")]
    EmailTaken,
    #[error("no such mitra")]
    MitraNotFound,
    #[error("no such customer")]
    CustomerNotFound,
    #[error("only an admin may do this")]
    AdminRequired,
    #[error("no such operator")]
    OperatorNotFound,
    #[error("you cannot deactivate your own account")]
    CannotDeactivateSelf,
    #[error("the current password is not right")]
    WrongPassword,
    #[error("role must be admin or operator")]
    InvalidRole,
    #[error("limit must be 1 to 200 and offset at least 0")]
    InvalidPage,
    #[error("password hashing failed: {0}")]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for AccountError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail => "invalid_email",
            Self::InvalidPassword => "invalid_password",
            Self::InvalidDisplayName => "invalid_display_name",
            Self::EmailTaken => "email_taken",
            Self::MitraNotFound => "mitra_not_found",
            Self::CustomerNotFound => "customer_not_found",
            Self::AdminRequired => "admin_required",
            Self::OperatorNotFound => "operator_not_found",
            Self::CannotDeactivateSelf => "cannot_deactivate_self",
            Self::WrongPassword => "wrong_password",
            Self::InvalidRole => "invalid_role",
            Self::InvalidPage => "invalid_page",
            Self::Hash(_) => "internal_error",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidEmail
            | Self::InvalidPassword
            | Self::InvalidDisplayName
            | Self::InvalidPage
            | Self::InvalidRole => ErrorKind::Invalid,
            Self::EmailTaken | Self::CannotDeactivateSelf => ErrorKind::Conflict,
            Self::MitraNotFound | Self::OperatorNotFound | Self::CustomerNotFound => ErrorKind::NotFound,
            Self::AdminRequired | Self::WrongPassword => ErrorKind::Forbidden,
            Self::Hash(_) => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
        }
    }
}

/// A new account's fields, as the operator typed them.
pub struct NewAccountFields<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub display_name: &'a str,
}

/// Creates a mitra account. `actor` is the operator, recorded in the audit log.
#[tracing::instrument(skip_all)]
pub async fn create_mitra(
    store: &Store,
    actor: &Principal,
    new: NewAccountFields<'_>,
) -> Result<MitraRow, AccountError> {
    let (email, display_name, hash) = checked_account(&new).await?;
    let account = NewAccount { email: &email, display_name, password_hash: &hash };
    store.create_mitra(actor.operator_id(), account).await
}

/// A new account's email (normalized), display name (trimmed) and password hash, or why not.
async fn checked_account<'a>(new: &NewAccountFields<'a>) -> Result<(String, &'a str, String), AccountError> {
    let email = normalize_email(new.email).ok_or(AccountError::InvalidEmail)?;
    check_password(new.password)?;
    let display_name = new.display_name.trim();
    if display_name.is_empty()
        || new.display_name.chars().count() > 100
        || new.display_name.chars().any(char::is_control)
    {
        return Err(AccountError::InvalidDisplayName);
    }
    let hash = password::hash(new.password).await?;
    Ok((email, display_name, hash))
}

/// A password is 8 to 256 characters.
fn check_password(password: &str) -> Result<(), AccountError> {
    if (8..=256).contains(&password.chars().count()) { Ok(()) } else { Err(AccountError::InvalidPassword) }
}

/// Deactivates (`active = false`) or reactivates a mitra. Idempotent. A deactivation
/// revokes every token issued until then for good: a reactivated mitra signs in again.
#[tracing::instrument(skip_all, fields(mitra_id = %mitra_id, active))]
pub async fn set_mitra_active(
    store: &Store,
    auth: &AuthSettings,
    actor: &Principal,
    mitra_id: MitraId,
    active: bool,
) -> Result<MitraRow, AccountError> {
    let mitra = store
        .set_mitra_active(actor.operator_id(), mitra_id, active)
        .await?
        .ok_or(AccountError::MitraNotFound)?;
    enforce_active(store, auth, UserId::from(mitra_id), active).await?;
    Ok(mitra)
}

/// Makes a deactivation bite at once (the store has flagged the account in Redis already):
/// every sign-in ends and the account's sockets close with 4003 `account_deactivated`.
async fn enforce_active(
    store: &Store,
    auth: &AuthSettings,
    user: UserId,
    active: bool,
) -> Result<(), AccountError> {
    if !active {
        let ttl_s = auth.access_token_ttl_s;
        session::revoke_all_sign_ins(store, ttl_s, user, CLOSE_ACCOUNT_DEACTIVATED, "account_deactivated")
            .await?;
    }
    Ok(())
}

/// A customer as the control center names them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerRef {
    pub id: Uuid,
    pub call_name: String,
}

/// A mitra as the control center names them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MitraRef {
    pub id: Uuid,
    pub display_name: String,
}

/// One row of the control center's mitra list: the account, and for how many seconds
/// its sign-ins are still refused after too many attempts (0: not locked).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MitraListing {
    #[serde(flatten)]
    pub mitra: MitraRow,
    /// More than 0 while too many sign-in attempts lock the account.
    #[schema(minimum = 0)]
    pub sign_in_locked_for_s: u64,
}

/// A page of the mitra list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MitraPage {
    pub rows: Vec<MitraListing>,
    /// Mitras matching the search, on every page.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// Mitras for the control center's list, newest first.
pub async fn list_mitras(
    store: &Store,
    auth: &AuthSettings,
    search: Option<&str>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<MitraPage, AccountError> {
    let (limit, offset) = crate::page::checked(limit, offset).ok_or(AccountError::InvalidPage)?;
    let (rows, total) = store.mitras(search.map(str::trim).filter(|s| !s.is_empty()), limit, offset).await?;
    let emails: Vec<&str> = rows.iter().map(|row| row.email.as_str()).collect();
    let locks = store.sign_in_locks(Role::Mitra, &emails, auth.max_sign_in_failures).await?;
    let rows = rows
        .into_iter()
        .zip(locks)
        .map(|(mitra, sign_in_locked_for_s)| MitraListing { mitra, sign_in_locked_for_s })
        .collect();
    Ok(MitraPage { rows, total })
}

/// An operator sets a mitra's new password; every sign-in of the mitra ends (refresh and
/// access tokens refused, sockets closed with 4004 `password_reset`).
pub async fn reset_mitra_password(
    store: &Store,
    auth: &AuthSettings,
    actor: &Principal,
    mitra_id: MitraId,
    new_password: &str,
) -> Result<(), AccountError> {
    check_password(new_password)?;
    let hash = password::hash(new_password).await?;
    let email = store
        .reset_mitra_password(actor.operator_id(), mitra_id, &hash)
        .await?
        .ok_or(AccountError::MitraNotFound)?;
    // A mitra locked out by too many attempts signs in with the new password at once.
    store.clear_sign_in_attempts(Role::Mitra, &email).await?;
    let ttl_s = auth.access_token_ttl_s;
    session::revoke_all_sign_ins(
        store,
        ttl_s,
        UserId::from(mitra_id),
        session::CLOSE_SIGN_IN_REVOKED,
        "password_reset",
    )
    .await?;
    Ok(())
}

/// Lower-cases and checks an email address: one `@`, a dot in the domain, no spaces.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    // At most 254 characters as sent, which the OpenAPI schema can say.
    let valid = raw.chars().count() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(normalize_email(" Rani@Bestie.ID ").as_deref(), Some("rani@bestie.id"));
        for bad in
            ["", "rani", "@bestie.id", "rani@", "rani@bestie", "ra ni@bestie.id", "a@b@c.id", "rani@.id"]
        {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }
}
