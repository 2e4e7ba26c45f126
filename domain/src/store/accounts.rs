//! Reads and writes of control-center users and mitra accounts.

use uuid::Uuid;

use super::Store;
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
    pub async fn insert_cc_admin_if_absent(
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
    pub async fn insert_mitra_if_absent(
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

    /// Whether an account with this email exists among control-center users or mitras.
    pub async fn account_email_exists(&self, email: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM cc_users WHERE email = $1)
                 OR EXISTS (SELECT 1 FROM mitras WHERE email = $1)",
        )
        .bind(email)
        .fetch_one(&self.pg)
        .await?)
    }
}
