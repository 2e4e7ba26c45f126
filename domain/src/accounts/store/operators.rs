//! Control-center accounts (`cc_users`) and the audit log, as admins manage and read them.

use serde_json::json;
use sqlx::AssertSqlSafe;

use super::{AccountTable, AuditAction, NewAccount, audit};
use crate::accounts::AccountError;
use crate::auth::AccountRole;
use crate::ids::OperatorId;
use crate::store::{Store, StoreError};

/// A control-center account as admins see it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct OperatorRow {
    pub id: OperatorId,
    pub email: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    /// `admin` or `operator` (docs/CONSOLE.md, "Roles").
    pub role: AccountRole,
    /// False once deactivated: sign-in refused, tokens revoked.
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const OPERATOR_COLUMNS: &str = "id, email, display_name, role, deactivated_at IS NULL AS active, created_at";

/// One entry of the audit log, with the operator's email.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub actor_id: Option<OperatorId>,
    pub actor_email: Option<String>,
    pub action: AuditAction,
    pub target_type: String,
    pub target_id: String,
    pub old_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    /// The role of an active control-center account; `None` when it is gone or deactivated.
    pub(crate) async fn active_operator_role(
        &self,
        id: OperatorId,
    ) -> Result<Option<AccountRole>, StoreError> {
        Ok(sqlx::query_scalar("SELECT role FROM cc_users WHERE id = $1 AND deactivated_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Every control-center account, admins first, then by email.
    pub(crate) async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {OPERATOR_COLUMNS} FROM cc_users ORDER BY role = 'admin' DESC, email"
        )))
        .fetch_all(&self.pg)
        .await?)
    }

    /// Creates a control-center account and records who did it, in one transaction.
    pub(crate) async fn create_operator(
        &self,
        actor: OperatorId,
        account: NewAccount<'_>,
        role: AccountRole,
    ) -> Result<OperatorRow, AccountError> {
        let mut tx = self.pg.begin().await?;
        let inserted = sqlx::query_as::<_, OperatorRow>(AssertSqlSafe(format!(
            "INSERT INTO cc_users (email, display_name, password_hash, role)
             VALUES ($1, $2, $3, $4) RETURNING {OPERATOR_COLUMNS}"
        )))
        .bind(account.email)
        .bind(account.display_name)
        .bind(account.password_hash)
        .bind(role)
        .fetch_one(&mut *tx)
        .await;
        let operator = match inserted {
            Ok(operator) => operator,
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("cc_users_email_key") => {
                return Err(AccountError::EmailTaken);
            }
            Err(e) => return Err(e.into()),
        };
        let created = json!({"email": operator.email, "display_name": operator.display_name, "role": role});
        audit(&mut tx, actor, AuditAction::OperatorCreate, &operator.id.to_string(), None, Some(&created))
            .await?;
        tx.commit().await?;
        Ok(operator)
    }

    /// Activates or deactivates a control-center account, recording the change; deactivation
    /// also revokes its refresh tokens. `None` when no such account exists.
    pub(crate) async fn set_operator_active(
        &self,
        actor: OperatorId,
        id: OperatorId,
        active: bool,
    ) -> Result<Option<OperatorRow>, StoreError> {
        self.set_account_active(actor, AccountTable::Operators, id.into(), active, OPERATOR_COLUMNS).await
    }

    /// The password hash of an active control-center account.
    pub(crate) async fn operator_password_hash(&self, id: OperatorId) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT password_hash FROM cc_users WHERE id = $1 AND deactivated_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Sets an operator's own new password, revokes their refresh tokens and records it.
    /// Returns the account's email; `None` when it is gone.
    pub(crate) async fn change_operator_password(
        &self,
        id: OperatorId,
        password_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pg.begin().await?;
        let email: Option<String> =
            sqlx::query_scalar("UPDATE cc_users SET password_hash = $2 WHERE id = $1 RETURNING email")
                .bind(id)
                .bind(password_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(email) = email else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE cc_user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, id, AuditAction::OperatorChangePassword, &id.to_string(), None, None).await?;
        tx.commit().await?;
        Ok(Some(email))
    }

    /// Records an operator's sign-in.
    pub(crate) async fn audit_operator_sign_in(&self, id: OperatorId) -> Result<(), StoreError> {
        let mut conn = self.pg.acquire().await?;
        audit(&mut conn, id, AuditAction::OperatorSignIn, &id.to_string(), None, None).await
    }

    /// A page of the audit log, newest first, optionally of one action and/or one operator;
    /// with the count of entries matching.
    pub(crate) async fn audit_log(
        &self,
        action: Option<AuditAction>,
        actor: Option<OperatorId>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditRow>, i64), StoreError> {
        let filter = "($1::text IS NULL OR a.action = $1) AND ($2::uuid IS NULL OR a.cc_user_id = $2)";
        let rows = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT a.id, a.cc_user_id AS actor_id, u.email AS actor_email, a.action, a.target_type,
                    a.target_id, a.old_value, a.new_value, a.created_at
             FROM audit_log a LEFT JOIN cc_users u ON u.id = a.cc_user_id
             WHERE {filter} ORDER BY a.created_at DESC, a.id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(action)
        .bind(actor)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pg)
        .await?;
        let total =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM audit_log a WHERE {filter}")))
                .bind(action)
                .bind(actor)
                .fetch_one(&self.pg)
                .await?;
        Ok((rows, total))
    }
}
