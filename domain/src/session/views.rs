//! What the control center sees of sessions: the live board, the early-end log and the
//! mitras flagged for review, each with its OpenAPI schema.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::{CustomerRef, MitraRef};
use crate::chat::SessionRow;
use crate::chat::store::{ClosureInitiator, SessionStatus};
use crate::pairing::CustomerName;
use crate::session::store::{EarlyEndRow, ReviewFlagRow};

/// A session not completed, as the live board shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LiveSessionView {
    pub id: Uuid,
    pub status: SessionStatus,
    pub customer: CustomerRef,
    pub mitra: MitraRef,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The end of the goodbye window, once closing.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// To its end, or to the end of its goodbye window when closing.
    #[schema(minimum = 0)]
    pub seconds_left: i64,
    /// Messages sent so far.
    #[schema(minimum = 0)]
    pub messages: i64,
}

impl LiveSessionView {
    pub fn new(session: &SessionRow, now: DateTime<Utc>) -> Self {
        let until = match session.status {
            SessionStatus::Closing => session.grace_ends_at.unwrap_or(session.ends_at),
            _ => session.ends_at,
        };
        Self {
            id: session.id.0,
            status: session.status,
            customer: CustomerRef {
                id: session.customer_id.0,
                call_name: session.customer_call_name.clone(),
            },
            mitra: MitraRef { id: session.mitra_id.0, display_name: session.mitra_display_name.clone() },
            started_at: session.started_at,
            ends_at: session.ends_at,
            grace_ends_at: session.grace_ends_at,
            seconds_left: (until - now).num_seconds().max(0),
            messages: session.last_seq,
        }
    }
}

/// The live board, oldest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LiveSessions {
    pub rows: Vec<LiveSessionView>,
}

/// One early end of the log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EarlyEndView {
    pub session_id: Uuid,
    /// The side that ended it.
    pub initiated_by: ClosureInitiator,
    /// The app's reason code (`a-z`, `0-9`, `_`).
    #[schema(min_length = 1, max_length = 64)]
    pub reason_code: Option<String>,
    /// Free text the side gave, if any.
    pub reason: Option<String>,
    pub ended_at: DateTime<Utc>,
    pub mitra: MitraRef,
    pub customer: CustomerName,
}

impl From<&EarlyEndRow> for EarlyEndView {
    fn from(row: &EarlyEndRow) -> Self {
        Self {
            session_id: row.chat_session_id.0,
            initiated_by: row.initiated_by,
            reason_code: row.reason_code.clone(),
            reason: row.reason.clone(),
            ended_at: row.ended_at,
            mitra: MitraRef { id: row.mitra_id.0, display_name: row.mitra_display_name.clone() },
            customer: CustomerName { call_name: row.customer_call_name.clone() },
        }
    }
}

/// The early-end log, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EarlyEnds {
    pub rows: Vec<EarlyEndView>,
}

/// A mitra flagged for review: over the daily early-end cap on `day`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReviewFlagView {
    pub id: Uuid,
    pub mitra: MitraRef,
    pub reason: String,
    /// The day (Asia/Jakarta) the cap was passed.
    pub day: NaiveDate,
    /// Early ends that day when the flag was raised.
    #[schema(minimum = 0)]
    pub count: i32,
    pub created_at: DateTime<Utc>,
    /// The operator who resolved it; none while it is open.
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

impl From<&ReviewFlagRow> for ReviewFlagView {
    fn from(row: &ReviewFlagRow) -> Self {
        Self {
            id: row.id.0,
            mitra: MitraRef { id: row.mitra_id.0, display_name: row.mitra_display_name.clone() },
            reason: row.reason.clone(),
            day: row.day,
            count: row.count,
            created_at: row.created_at,
            reviewed_by: row.reviewed_by.map(Uuid::from),
            reviewed_at: row.reviewed_at,
        }
    }
}

/// The review flags, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReviewFlags {
    pub rows: Vec<ReviewFlagView>,
}
