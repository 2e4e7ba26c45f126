//! Customers as operators find and look after them.

use chrono::{DateTime, Utc};

use crate::accounts::{CustomerChat, CustomerView, DETAIL_ROWS, MitraRef};
use crate::chat::store::SessionStatus;
use crate::ids::{CustomerId, MitraId, SessionId};
use crate::store::{Store, StoreError};

pub(crate) const CUSTOMER_COLUMNS: &str = "id, phone, call_name, created_at, deactivated_at AS blocked_at";

/// A customer search: each part given must match (`phone` and `name` are LIKE patterns).
#[derive(Debug, Default)]
pub(crate) struct CustomerSearch {
    pub id: Option<CustomerId>,
    pub phone: Option<String>,
    pub name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ChatRow {
    id: SessionId,
    mitra_id: MitraId,
    display_name: String,
    status: SessionStatus,
    started_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    last_seq: i64,
}

impl Store {
    /// Customers matching every part of `search` given, newest first, and how many match.
    pub(crate) async fn customers(
        &self,
        search: &CustomerSearch,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<CustomerView>, i64), StoreError> {
        let CustomerSearch { id, phone, name } = search;
        let filter = "($1::uuid IS NULL OR id = $1) AND ($2::text IS NULL OR phone LIKE $2)
                      AND ($3::text IS NULL OR call_name ILIKE $3)";
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE {filter}
             ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"
        )))
        .bind(id)
        .bind(phone)
        .bind(name)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pg)
        .await?;
        let total =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM customers WHERE {filter}")))
                .bind(id)
                .bind(phone)
                .bind(name)
                .fetch_one(&self.pg)
                .await?;
        Ok((rows, total))
    }

    pub(crate) async fn customer(&self, id: CustomerId) -> Result<Option<CustomerView>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pg)
        .await?)
    }

    pub(crate) async fn customer_chats(&self, id: CustomerId) -> Result<Vec<CustomerChat>, StoreError> {
        let rows: Vec<ChatRow> = sqlx::query_as(
            "SELECT s.id, s.mitra_id, m.display_name, s.status, s.started_at, s.ends_at, s.completed_at, s.last_seq
             FROM chat_sessions s JOIN mitras m ON m.id = s.mitra_id
             WHERE s.customer_id = $1 ORDER BY s.started_at DESC LIMIT $2",
        )
        .bind(id)
        .bind(DETAIL_ROWS)
        .fetch_all(&self.pg)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| CustomerChat {
                id: row.id,
                mitra: MitraRef { id: row.mitra_id.0, display_name: row.display_name },
                status: row.status,
                started_at: row.started_at,
                ends_at: row.ends_at,
                completed_at: row.completed_at,
                messages: row.last_seq,
            })
            .collect())
    }
}
