//! Creating and dropping whole databases, for start-up and for the test harness.

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::Postgres;

use crate::error::StoreError;

/// Creates the database named in `url` when it does not exist. Two processes racing to
/// create it both succeed.
pub async fn ensure_exists(url: &str) -> Result<(), StoreError> {
    if Postgres::database_exists(url).await? {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // 42P04 duplicate_database, 23505 unique_violation on pg_database: another process won.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Drops the database named in `url`, disconnecting its sessions first.
pub async fn drop(url: &str) -> Result<(), StoreError> {
    Postgres::force_drop_database(url).await?;
    Ok(())
}
