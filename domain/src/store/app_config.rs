//! Reads and writes of the `app_config` table.

use serde_json::Value;

use super::Store;
use crate::store::StoreError;

impl Store {
    /// Every stored key and value.
    pub async fn app_config_values(&self) -> Result<Vec<(String, Value)>, StoreError> {
        Ok(sqlx::query_as("SELECT key, value FROM app_config ORDER BY key").fetch_all(&self.pg).await?)
    }

    /// One stored value.
    pub async fn app_config_value(&self, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM app_config WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Inserts keys that are missing with the given defaults; existing values are kept.
    pub async fn insert_missing_app_config(&self, defaults: &[(&str, Value)]) -> Result<u64, StoreError> {
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
