//! Reads and writes of control-center users and mitra accounts, and the audit log.

mod customers;
mod operators;

pub(crate) use customers::{CUSTOMER_COLUMNS, CustomerSearch};
pub use operators::{AuditRow, OperatorRow};

use serde_json::json;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::accounts::AccountError;
use crate::ids::{MitraId, OperatorId, UserId};
use crate::store::Store;
use crate::store::StoreError;

/// A new account's fields; the password is already hashed.
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
}

impl Store {
    /// Creates a control-center admin unless one with this email exists.
    /// Returns the new id, or `None` when the email was taken.
    pub(crate) async fn insert_cc_admin_if_absent(
        &self,
        account: NewAccount<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO cc_users (email, display_name, password_hash, role)
             VALUES ($1, $2, $3, 'admin')
             ON CONFLICT (email) DO NOTHING
             RETURNING id",
        )
        .bind(account.email)
        .bind(account.display_name)
        .bind(account.password_hash)
        .fetch_optional(&self.pg)
        .await?)
    }

    /// Creates a mitra unless one with this email exists.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn insert_mitra_if_absent(
        &self,
        account: NewAccount<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO mitras (email, display_name, password_hash)
             VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING
             RETURNING id",
        )
        .bind(account.email)
        .bind(account.display_name)
        .bind(account.password_hash)
        .fetch_optional(&self.pg)
        .await?)
    }

    /// Load-test customers (`bestie seed --load-customers`): creates each `(phone, call_name)`
    /// that is missing and gives those that exist that call name again, in one statement.
    /// Returns `(phone, id)` of every one, in no particular order.
    pub(crate) async fn upsert_load_customers(
        &self,
        customers: &[(String, String)],
    ) -> Result<Vec<(String, UserId)>, StoreError> {
        let (phones, call_names): (Vec<&str>, Vec<&str>) =
            customers.iter().map(|(phone, name)| (phone.as_str(), name.as_str())).unzip();
        Ok(sqlx::query_as(
            "INSERT INTO customers (phone, call_name)
             SELECT * FROM UNNEST($1::text[], $2::text[])
             ON CONFLICT (phone) DO UPDATE SET call_name = EXCLUDED.call_name
             RETURNING phone, id",
        )
        .bind(&phones)
        .bind(&call_names)
        .fetch_all(&self.pg)
        .await?)
    }

    /// Load-test mitras (`bestie seed --load-mitras`): creates each `(email, display_name)`
    /// that is missing, all with one password hash, in one statement; an existing one is left
    /// as it is. Returns `(email, id)` of every one, in no particular order.
    pub(crate) async fn upsert_load_mitras(
        &self,
        mitras: &[(String, String)],
        password_hash: &str,
    ) -> Result<Vec<(String, UserId)>, StoreError> {
        let (emails, names): (Vec<&str>, Vec<&str>) =
            mitras.iter().map(|(email, name)| (email.as_str(), name.as_str())).unzip();
        Ok(sqlx::query_as(
            "INSERT INTO mitras (email, display_name, password_hash)
             SELECT email, display_name, $3 FROM UNNEST($1::text[], $2::text[]) AS new (email, display_name)
             ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email
             RETURNING email, id",
        )
        .bind(&emails)
        .bind(&names)
        .bind(password_hash)
        .fetch_all(&self.pg)
        .await?)
    }

    /// Whether an account with this email exists among control-center users or mitras.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn account_email_exists(&self, email: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM cc_users WHERE email = $1)
                 OR EXISTS (SELECT 1 FROM mitras WHERE email = $1)",
        )
        .bind(email)
        .fetch_one(&self.pg)
        .await?)
    }
}

/// What sign-in needs of a password account.
pub struct PasswordAccount {
    pub id: UserId,
    pub password_hash: String,
    pub display_name: String,
    pub role: crate::auth::AccountRole,
    pub deactivated: bool,
}

/// A mitra account as the control center sees it (and the mitra routes answer it).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct MitraRow {
    pub id: MitraId,
    pub email: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    /// False once deactivated: sign-in refused, sockets closed.
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const MITRA_COLUMNS: &str = "id, email, display_name, deactivated_at IS NULL AS active, created_at";

impl Store {
    /// The mitra (`Role::Mitra`) or control-center user (`Role::Cc`) with this email.
    pub(crate) async fn password_account(
        &self,
        role: crate::auth::Role,
        email: &str,
    ) -> Result<Option<PasswordAccount>, StoreError> {
        // Postgres text cannot hold NUL: no account has such an email, and binding it would
        // fail the query (a sign-in answered 500 before this check).
        if email.contains('\0') {
            return Ok(None);
        }
        let query = match role {
            crate::auth::Role::Mitra => {
                "SELECT id, password_hash, display_name, 'mitra', deactivated_at IS NOT NULL FROM mitras WHERE email = $1"
            }
            crate::auth::Role::Cc => {
                "SELECT id, password_hash, display_name, role, deactivated_at IS NOT NULL FROM cc_users WHERE email = $1"
            }
            crate::auth::Role::Customer => return Ok(None),
        };
        let row: Option<(Uuid, String, String, crate::auth::AccountRole, bool)> =
            sqlx::query_as(query).bind(email).fetch_optional(&self.pg).await?;
        Ok(row.map(|(id, password_hash, display_name, role, deactivated)| PasswordAccount {
            id: UserId(id),
            password_hash,
            display_name,
            role,
            deactivated,
        }))
    }

    /// Creates a mitra and records who did it, in one transaction.
    pub(crate) async fn create_mitra(
        &self,
        actor: OperatorId,
        account: NewAccount<'_>,
    ) -> Result<MitraRow, AccountError> {
        let mut tx = self.pg.begin().await?;
        let inserted = sqlx::query_as::<_, MitraRow>(AssertSqlSafe(format!(
            "INSERT INTO mitras (email, display_name, password_hash, created_by)
             VALUES ($1, $2, $3, $4) RETURNING {MITRA_COLUMNS}"
        )))
        .bind(account.email)
        .bind(account.display_name)
        .bind(account.password_hash)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await;
        let mitra = match inserted {
            Ok(mitra) => mitra,
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("mitras_email_key") => {
                return Err(AccountError::EmailTaken);
            }
            Err(e) => return Err(e.into()),
        };
        audit(
            &mut tx,
            actor,
            AuditAction::MitraCreate,
            &mitra.id.to_string(),
            None,
            Some(&json!({"email": mitra.email, "display_name": mitra.display_name})),
        )
        .await?;
        tx.commit().await?;
        Ok(mitra)
    }

    /// Activates or deactivates a mitra, recording the change; deactivation also revokes
    /// every refresh token of the mitra. `None` when no such mitra exists.
    pub(crate) async fn set_mitra_active(
        &self,
        actor: OperatorId,
        id: MitraId,
        active: bool,
    ) -> Result<Option<MitraRow>, StoreError> {
        self.set_account_active(actor, AccountTable::Mitras, UserId::from(id), active, MITRA_COLUMNS).await
    }

    /// Activates or deactivates an account of `table` and returns it as `columns`: the change
    /// is audited, and a deactivation revokes the account's refresh tokens, in one
    /// transaction; Redis' deactivated flag (which refuses access tokens) follows. `None`
    /// when no such account exists.
    pub(crate) async fn set_account_active<R>(
        &self,
        actor: OperatorId,
        table: AccountTable,
        id: UserId,
        active: bool,
        columns: &str,
    ) -> Result<Option<R>, StoreError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let (name, owner) = (table.name(), table.token_owner());
        let mut tx = self.pg.begin().await?;
        let before: Option<bool> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT deactivated_at IS NULL FROM {name} WHERE id = $1 FOR UPDATE"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(was_active) = before else {
            return Ok(None);
        };
        let account = sqlx::query_as::<_, R>(AssertSqlSafe(format!(
            "UPDATE {name} SET deactivated_at = CASE WHEN $2 THEN NULL ELSE COALESCE(deactivated_at, now()) END
             WHERE id = $1 RETURNING {columns}"
        )))
        .bind(id)
        .bind(active)
        .fetch_one(&mut *tx)
        .await?;
        if !active {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE {owner} = $1 AND revoked_at IS NULL"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if was_active != active {
            let (old, new) = (json!({"active": was_active}), json!({"active": active}));
            audit(&mut tx, actor, table.audit_action(active), &id.to_string(), Some(&old), Some(&new))
                .await?;
        }
        // Redis' flag is written while the row is locked, so two switches of one account
        // land in Redis in the order they commit; a failed commit puts the flag back.
        self.set_deactivated_flag(id, !active).await?;
        if let Err(error) = tx.commit().await {
            self.set_deactivated_flag(id, !was_active).await?;
            return Err(error.into());
        }
        Ok(Some(account))
    }
}

/// The tables of accounts an operator can switch off and on again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccountTable {
    Mitras,
    Operators,
    Customers,
}

impl AccountTable {
    fn name(self) -> &'static str {
        match self {
            Self::Mitras => "mitras",
            Self::Operators => "cc_users",
            Self::Customers => "customers",
        }
    }

    /// The column of `refresh_tokens` naming an owner in this table.
    fn token_owner(self) -> &'static str {
        match self {
            Self::Mitras => "mitra_id",
            Self::Operators => "cc_user_id",
            Self::Customers => "customer_id",
        }
    }

    fn audit_action(self, active: bool) -> AuditAction {
        match (self, active) {
            (Self::Mitras, true) => AuditAction::MitraReactivate,
            (Self::Mitras, false) => AuditAction::MitraDeactivate,
            (Self::Operators, true) => AuditAction::OperatorReactivate,
            (Self::Operators, false) => AuditAction::OperatorDeactivate,
            (Self::Customers, true) => AuditAction::CustomerUnblock,
            (Self::Customers, false) => AuditAction::CustomerBlock,
        }
    }
}

impl Store {
    /// Mitras, newest first, optionally those whose name or email contains `search`.
    pub(crate) async fn mitras(
        &self,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<MitraRow>, i64), StoreError> {
        let pattern = search.map(|s| format!("%{}%", crate::accounts::like_literal(s)));
        let rows = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {MITRA_COLUMNS} FROM mitras
             WHERE $1::text IS NULL OR display_name ILIKE $1 OR email ILIKE $1
             ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
        )))
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pg)
        .await?;
        let total = sqlx::query_scalar(
            "SELECT count(*) FROM mitras WHERE $1::text IS NULL OR display_name ILIKE $1 OR email ILIKE $1",
        )
        .bind(&pattern)
        .fetch_one(&self.pg)
        .await?;
        Ok((rows, total))
    }

    /// Sets a mitra's password, revokes their refresh tokens (sign in again) and records
    /// it. Returns the mitra's email; `None` when no such mitra exists.
    pub(crate) async fn reset_mitra_password(
        &self,
        actor: OperatorId,
        id: MitraId,
        password_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pg.begin().await?;
        let email: Option<String> =
            sqlx::query_scalar("UPDATE mitras SET password_hash = $2 WHERE id = $1 RETURNING email")
                .bind(id)
                .bind(password_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(email) = email else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE mitra_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, actor, AuditAction::MitraResetPassword, &id.to_string(), None, None).await?;
        tx.commit().await?;
        Ok(Some(email))
    }
}

crate::text_enum::text_enum! {
    /// What an operator did, as the audit log records it (`audit_log.action`):
    /// `<what it was done to>.<what was done>`.
    pub enum AuditAction {
        MitraCreate = "mitra.create",
        MitraDeactivate = "mitra.deactivate",
        MitraReactivate = "mitra.reactivate",
        MitraResetPassword = "mitra.reset_password",
        ConfigUpdate = "config.update",
        OperatorCreate = "operator.create",
        OperatorDeactivate = "operator.deactivate",
        OperatorReactivate = "operator.reactivate",
        /// An operator changed their own password.
        OperatorChangePassword = "operator.change_password",
        OperatorSignIn = "operator.sign_in",
        ReviewFlagResolve = "review_flag.resolve",
        FailedPairingAction = "failed_pairing.action",
        CustomerBlock = "customer.block",
        CustomerUnblock = "customer.unblock",
    }
}

impl AuditAction {
    /// What it was done to (`audit_log.target_type`): the part before the dot.
    pub(crate) fn target_type(self) -> &'static str {
        let name = self.as_str();
        name.split_once('.').map_or(name, |(target, _)| target)
    }
}

/// Appends to the audit log inside the caller's transaction: `target_id` names what the
/// action was done to (a mitra's id, a configuration key).
pub(crate) async fn audit(
    conn: &mut sqlx::PgConnection,
    actor: OperatorId,
    action: AuditAction,
    target_id: &str,
    old_value: Option<&serde_json::Value>,
    new_value: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    let target_type = action.target_type();
    sqlx::query(
        "INSERT INTO audit_log (cc_user_id, action, target_type, target_id, old_value, new_value)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(actor)
    .bind(action)
    .bind(target_type)
    .bind(target_id)
    .bind(old_value)
    .bind(new_value)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Stores the mitra's own online switch.
    pub(crate) async fn set_mitra_status_online(
        &self,
        mitra: MitraId,
        online: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE mitras SET status_online = $2 WHERE id = $1")
            .bind(mitra)
            .bind(online)
            .execute(&self.pg)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn audit_actions_fit_the_logs_check_and_name_their_target() {
        for action in AuditAction::ALL {
            let name = action.as_str();
            // audit_log.action: CHECK (action ~ '^[a-z_.]+$').
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.'), "{name}");
            assert!(name.contains('.') && !action.target_type().contains('.'), "{name}");
        }
        assert_eq!(AuditAction::ConfigUpdate.target_type(), "config");
    }
}
