//! Creating and dropping whole databases, for start-up and for the test harness.

use std::str::FromStr;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, Postgres};
use sqlx::{AssertSqlSafe, ConnectOptions};

use crate::store::StoreError;

/// Creates the database named in `url` when it does not exist. Two processes racing to
/// create it both succeed.
pub async fn ensure_exists(url: &str) -> Result<(), StoreError> {
    if Postgres::database_exists(url).await? {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // 42P04 duplicate_database, 23505 unique_violation on pg_database: another process won.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Drops the database named in `url`. New connections are refused first and existing ones
/// terminated, so a pool that keeps reconnecting cannot hold the drop up.
pub async fn drop(url: &str) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut maintenance = options.database("postgres").connect().await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let refuse = format!("ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS false");
    match sqlx::query(AssertSqlSafe(refuse)).execute(&mut maintenance).await {
        Ok(_) => {}
        // 3D000 invalid_catalog_name: already gone.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let drop = format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)");
    sqlx::query(AssertSqlSafe(drop)).execute(&mut maintenance).await?;
    Ok(())
}
