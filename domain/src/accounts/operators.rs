//! Control-center accounts and what they may do. Two roles (docs/CONSOLE.md, "Roles"):
//! `admin` manages operators and the marketplace settings and reads the audit log;
//! `operator` runs the day: failed pairings, mitras, sessions, flags. Both sign in as
//! [`Role::Cc`]; the role is read from Postgres on each admin-only request, so a change of
//! role or a deactivation applies to the next request.

use serde::Serialize;
use utoipa::ToSchema;

pub use super::store::OperatorRow;
use super::store::{AuditAction, AuditRow, NewAccount};
use super::{AccountError, NewAccountFields, check_password, checked_account};
use crate::auth::{AccountRole, Principal, Role, session};
use crate::ids::{OperatorId, UserId};
use crate::password;
use crate::settings::AuthSettings;
use crate::store::Store;

/// Refuses a caller who is not an active admin (403 `admin_required`).
pub async fn require_admin(store: &Store, caller: &Principal) -> Result<(), AccountError> {
    match store.active_operator_role(caller.operator_id()).await? {
        Some(AccountRole::Admin) => Ok(()),
        _ => Err(AccountError::AdminRequired),
    }
}

/// Every control-center account.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OperatorList {
    pub rows: Vec<OperatorRow>,
}

pub async fn list_operators(store: &Store) -> Result<OperatorList, AccountError> {
    Ok(OperatorList { rows: store.operators().await? })
}

/// Creates a control-center account of `role` (`admin` or `operator`).
#[tracing::instrument(skip_all, fields(role = %role))]
pub async fn create_operator(
    store: &Store,
    actor: &Principal,
    new: NewAccountFields<'_>,
    role: AccountRole,
) -> Result<OperatorRow, AccountError> {
    if role == AccountRole::Mitra {
        return Err(AccountError::InvalidRole);
    }
    let (email, display_name, hash) = checked_account(&new).await?;
    let account = NewAccount { email: &email, display_name, password_hash: &hash };
    store.create_operator(actor.operator_id(), account, role).await
}

/// Deactivates or reactivates a control-center account. Idempotent. A deactivation ends
/// every sign-in of the account at once; an admin cannot deactivate themselves (so the
/// marketplace keeps at least the admin who is acting).
#[tracing::instrument(skip_all, fields(operator_id = %id, active))]
pub async fn set_operator_active(
    store: &Store,
    auth: &AuthSettings,
    actor: &Principal,
    id: OperatorId,
    active: bool,
) -> Result<OperatorRow, AccountError> {
    if !active && id == actor.operator_id() {
        return Err(AccountError::CannotDeactivateSelf);
    }
    let operator = store
        .set_operator_active(actor.operator_id(), id, active)
        .await?
        .ok_or(AccountError::OperatorNotFound)?;
    super::enforce_active(store, auth, UserId::from(id), active).await?;
    Ok(operator)
}

/// An operator changes their own password, giving the current one. Every sign-in of the
/// account ends, this one included: the console signs in again with the new password.
#[tracing::instrument(skip_all)]
pub async fn change_own_password(
    store: &Store,
    auth: &AuthSettings,
    caller: &Principal,
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    check_password(new)?;
    let id = caller.operator_id();
    let hash = store.operator_password_hash(id).await?.ok_or(AccountError::OperatorNotFound)?;
    if !password::verify(current, &hash).await {
        return Err(AccountError::WrongPassword);
    }
    let hash = password::hash(new).await?;
    let email = store.change_operator_password(id, &hash).await?.ok_or(AccountError::OperatorNotFound)?;
    store.clear_sign_in_attempts(Role::Cc, &email).await?;
    let code = session::CLOSE_SIGN_IN_REVOKED;
    session::revoke_all_sign_ins(store, auth.access_token_ttl_s, UserId::from(id), code, "password_changed")
        .await?;
    Ok(())
}

/// The operator who did something, as the audit log names them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Actor {
    pub id: uuid::Uuid,
    pub email: Option<String>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// None for what no operator did.
    pub actor: Option<Actor>,
    pub action: AuditAction,
    /// What it was done to: `mitra`, `operator`, `config`, `review_flag`, `failed_pairing`.
    pub target_type: String,
    /// Its id, or the configuration key.
    pub target_id: String,
    pub old_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            actor: row.actor_id.map(|id| Actor { id: id.0, email: row.actor_email }),
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            old_value: row.old_value,
            new_value: row.new_value,
            created_at: row.created_at,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub rows: Vec<AuditEntry>,
    #[schema(minimum = 0)]
    pub total: i64,
}

/// The audit log, newest first: 50 entries by default, at most 200 a page.
pub async fn audit_log(
    store: &Store,
    action: Option<AuditAction>,
    actor: Option<OperatorId>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<AuditPage, AccountError> {
    let (limit, offset) = crate::page::checked(limit, offset).ok_or(AccountError::InvalidPage)?;
    let (rows, total) = store.audit_log(action, actor, limit, offset).await?;
    Ok(AuditPage { rows: rows.into_iter().map(AuditEntry::from).collect(), total })
}
