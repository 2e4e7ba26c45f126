//! Timer probes, and the job queue's depth (the job backend's own table, read-only).

use crate::ids::ProbeId;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// The lateness of the probes fired in a run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProbeReport {
    pub scheduled: i64,
    pub fired: i64,
    /// Probes that fired more than once.
    pub repeated: i64,
    /// Probes that fired before their due time.
    pub early: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Store {
    /// Records one firing of a probe at the database's clock.
    pub(crate) async fn record_probe_firing(&self, id: ProbeId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE timer_probes SET firings = firings + 1, fired_at = COALESCE(fired_at, clock_timestamp())
             WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pg)
        .await?;
        Ok(())
    }

    /// Lateness of the probes created since `since`.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn probe_report(&self, since: DateTime<Utc>) -> Result<ProbeReport, StoreError> {
        let row: (i64, i64, i64, i64, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT count(*),
                    count(fired_at),
                    count(*) FILTER (WHERE firings > 1),
                    count(*) FILTER (WHERE fired_at < due_at),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at) * 1000),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at) * 1000),
                    max(extract(epoch FROM fired_at - due_at) * 1000)::float8
             FROM timer_probes WHERE created_at >= $1",
        )
        .bind(since)
        .fetch_one(&self.pg)
        .await?;
        Ok(ProbeReport {
            scheduled: row.0,
            fired: row.1,
            repeated: row.2,
            early: row.3,
            p50_ms: row.4,
            p99_ms: row.5,
            max_ms: row.6,
        })
    }

    /// Per job type, the jobs due and not started (pending, claimed but not running, or failed
    /// with attempts left, whose run time has come) and how long the oldest of them has been
    /// due, in seconds. Types with nothing due are absent.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn job_queue_depths(&self) -> Result<Vec<(String, i64, f64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT job_type, count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(run_at)), 0)::float8
             FROM apalis.jobs
             WHERE (status IN ('Pending', 'Queued') OR (status = 'Failed' AND attempts < max_attempts))
               AND run_at <= now()
             GROUP BY job_type",
        )
        .fetch_all(&self.pg)
        .await?)
    }
}

impl Store {
    /// Inserts many probes at once.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn insert_probes(&self, probes: &[(ProbeId, DateTime<Utc>)]) -> Result<(), StoreError> {
        let (ids, due): (Vec<Uuid>, Vec<DateTime<Utc>>) = probes.iter().map(|&(id, due)| (id.0, due)).unzip();
        sqlx::query(
            "INSERT INTO timer_probes (id, due_at) SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[])",
        )
        .bind(ids)
        .bind(due)
        .execute(&self.pg)
        .await?;
        Ok(())
    }
}
