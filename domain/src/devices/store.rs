//! Writes of push device tokens.

use crate::auth::Role;
use crate::ids::{SignInId, UserId};
use crate::store::{Store, StoreError};

impl Store {
    /// Stores `fcm_token` for its latest owner and sign-in: a token the app registers again
    /// (another account signed in on the same phone) moves to that account.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn upsert_device(
        &self,
        fcm_token: &str,
        platform: &str,
        role: Role,
        owner_id: UserId,
        sign_in: Option<SignInId>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO devices (fcm_token, platform, customer_id, mitra_id, sign_in)
             VALUES ($1, $2, CASE WHEN $3 = 'customer' THEN $4 END, CASE WHEN $3 = 'mitra' THEN $4 END, $5)
             ON CONFLICT (fcm_token) DO UPDATE
             SET platform = EXCLUDED.platform, customer_id = EXCLUDED.customer_id,
                 mitra_id = EXCLUDED.mitra_id, sign_in = EXCLUDED.sign_in, updated_at = now()",
        )
        .bind(fcm_token)
        .bind(platform)
        .bind(role.as_str())
        .bind(owner_id)
        .bind(sign_in)
        .execute(&self.pg)
        .await?;
        Ok(())
    }

    /// Unregisters push tokens of the account `owner_id`: those its sign-in `sign_in`
    /// registered and the one named `fcm_token`; with neither, all of them. Tokens of other
    /// accounts are never touched. Returns how many.
    pub(crate) async fn delete_devices_of(
        &self,
        owner_id: UserId,
        sign_in: Option<SignInId>,
        fcm_token: Option<&str>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM devices
             WHERE (customer_id = $1 OR mitra_id = $1)
               AND (($2::uuid IS NULL AND $3::text IS NULL) OR sign_in = $2 OR fcm_token = $3)",
        )
        .bind(owner_id)
        .bind(sign_in)
        .bind(fcm_token)
        .execute(&self.pg)
        .await?
        .rows_affected())
    }

    /// The owner of a device token, as `(role, id)`.
    /// Only the tests read it (feature `test-support`).
    #[cfg(feature = "test-support")]
    pub async fn device_owner(&self, fcm_token: &str) -> Result<Option<(String, uuid::Uuid)>, StoreError> {
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
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn device_tokens(
        &self,
        role: Role,
        owner_id: UserId,
    ) -> Result<Vec<String>, StoreError> {
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
    pub(crate) async fn delete_device(&self, fcm_token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM devices WHERE fcm_token = $1").bind(fcm_token).execute(&self.pg).await?;
        Ok(())
    }
}
