//! Reads and writes of the `app_config` table.

use serde_json::Value;

use crate::ids::OperatorId;
use crate::store::Store;
use crate::store::StoreError;

impl Store {
    /// Every stored key and value.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn app_config_values(&self) -> Result<Vec<(String, Value)>, StoreError> {
        Ok(sqlx::query_as("SELECT key, value FROM app_config ORDER BY key").fetch_all(&self.pg).await?)
    }

    /// One stored value.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn app_config_value(&self, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM app_config WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Inserts keys that are missing with the given defaults; existing values are kept.
    pub(crate) async fn insert_missing_app_config(
        &self,
        defaults: &[(&str, Value)],
    ) -> Result<u64, StoreError> {
        let (keys, values): (Vec<&str>, Vec<Value>) = defaults.iter().cloned().unzip();
        let inserted = sqlx::query(
            "INSERT INTO app_config (key, value)
             SELECT * FROM UNNEST($1::text[], $2::jsonb[])
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(keys)
        .bind(values)
        .execute(&self.pg)
        .await?;
        Ok(inserted.rows_affected())
    }
}

/// A stored key with who changed it last.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredKey {
    pub key: String,
    pub value: Value,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub updated_by: Option<uuid::Uuid>,
}

/// One change of a key, from the audit log.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConfigChange {
    pub key: String,
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
    pub changed_by: Option<uuid::Uuid>,
    pub changed_by_email: Option<String>,
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    /// Every stored key with its last change.
    pub(crate) async fn app_config_rows(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(sqlx::query_as("SELECT key, value, updated_at, updated_by FROM app_config")
            .fetch_all(&self.pg)
            .await?)
    }

    /// Sets a key and writes the audit row (who, old → new) in one transaction. Returns the
    /// old value.
    pub(crate) async fn set_app_config(
        &self,
        actor: OperatorId,
        key: &str,
        value: &Value,
    ) -> Result<Option<Value>, StoreError> {
        let mut tx = self.pg.begin().await?;
        let old: Option<Value> = sqlx::query_scalar("SELECT value FROM app_config WHERE key = $1 FOR UPDATE")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO app_config (key, value, updated_at, updated_by) VALUES ($1, $2, now(), $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by",
        )
        .bind(key)
        .bind(value)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let action = crate::accounts::store::AuditAction::ConfigUpdate;
        crate::accounts::store::audit(&mut tx, actor, action, key, old.as_ref(), Some(value)).await?;
        tx.commit().await?;
        Ok(old)
    }

    /// The configuration changes, newest first (one key, or all).
    pub(crate) async fn config_changes(
        &self,
        key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConfigChange>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT a.target_id AS key, a.old_value, a.new_value, a.cc_user_id AS changed_by,
                    u.email AS changed_by_email, a.created_at AS changed_at
             FROM audit_log a LEFT JOIN cc_users u ON u.id = a.cc_user_id
             WHERE a.action = 'config.update' AND ($1::text IS NULL OR a.target_id = $1)
             ORDER BY a.created_at DESC, a.id DESC LIMIT $2",
        )
        .bind(key)
        .bind(limit)
        .fetch_all(&self.pg)
        .await?)
    }
}
