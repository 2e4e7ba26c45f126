//! The activity log's query.

use super::OfferRow;
use crate::calendar::Instants;
use crate::ids::MitraId;
use crate::pairing::store::OfferResponse;
use crate::store::{Store, StoreError};

const OFFER_WHERE: &str = "n.notified_at >= $1 AND n.notified_at < $2
     AND ($3::uuid IS NULL OR n.mitra_id = $3) AND ($4::text IS NULL OR n.response = $4)";

impl Store {
    pub(super) async fn offer_log(
        &self,
        period: Instants,
        mitra: Option<MitraId>,
        response: Option<OfferResponse>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<OfferRow>, i64), StoreError> {
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT n.id, n.pairing_request_id, r.request_type, r.status AS request_status, n.mitra_id, m.display_name, n.notified_at,
                    n.response, n.responded_at, n.active_session_count, n.pushed
             FROM chat_request_notifications n
             JOIN mitras m ON m.id = n.mitra_id
             JOIN pairing_requests r ON r.id = n.pairing_request_id
             WHERE {OFFER_WHERE}
             ORDER BY n.notified_at DESC, n.id DESC LIMIT $5 OFFSET $6"
        )))
        .bind(period.from)
        .bind(period.to)
        .bind(mitra)
        .bind(response)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pg)
        .await?;
        let total = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM chat_request_notifications n WHERE {OFFER_WHERE}"
        )))
        .bind(period.from)
        .bind(period.to)
        .bind(mitra)
        .bind(response)
        .fetch_one(&self.pg)
        .await?;
        Ok((rows, total))
    }
}
