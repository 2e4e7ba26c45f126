//! Writes of push device tokens.

use uuid::Uuid;

use super::{Store, StoreError};
use crate::auth::Role;

impl Store {
    /// Stores `fcm_token` for its latest owner: a token the app registers again (another
    /// account signed in on the same phone) moves to that account.
    pub async fn upsert_device(
        &self,
        fcm_token: &str,
        platform: &str,
        role: Role,
        owner_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO devices (fcm_token, platform, customer_id, mitra_id)
             VALUES ($1, $2, CASE WHEN $3 = 'customer' THEN $4 END, CASE WHEN $3 = 'mitra' THEN $4 END)
             ON CONFLICT (fcm_token) DO UPDATE
             SET platform = EXCLUDED.platform, customer_id = EXCLUDED.customer_id,
                 mitra_id = EXCLUDED.mitra_id, updated_at = now()",
        )
        .bind(fcm_token)
        .bind(platform)
        .bind(role.as_str())
        .bind(owner_id)
        .execute(&self.pg)
        .await?;
        Ok(())
    }

    /// The owner of a device token, as `(role, id)`.
    pub async fn device_owner(&self, fcm_token: &str) -> Result<Option<(String, Uuid)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT CASE WHEN customer_id IS NOT NULL THEN 'customer' ELSE 'mitra' END,
                    COALESCE(customer_id, mitra_id)
             FROM devices WHERE fcm_token = $1",
        )
        .bind(fcm_token)
        .fetch_optional(&self.pg)
        .await?)
    }
}

impl Store {
    /// The push tokens of an account.
    pub async fn device_tokens(&self, role: Role, owner_id: Uuid) -> Result<Vec<String>, StoreError> {
        let column = match role {
            Role::Customer => "customer_id",
            Role::Mitra => "mitra_id",
            Role::Cc => return Ok(Vec::new()),
        };
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT fcm_token FROM devices WHERE {column} = $1 ORDER BY updated_at DESC"
        )))
        .bind(owner_id)
        .fetch_all(&self.pg)
        .await?)
    }

    /// Forgets a push token FCM says is dead.
    pub async fn delete_device(&self, fcm_token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM devices WHERE fcm_token = $1").bind(fcm_token).execute(&self.pg).await?;
        Ok(())
    }
}
