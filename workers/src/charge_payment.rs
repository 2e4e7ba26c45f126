//! The charge job: charges a payment session through the payment provider, once per
//! idempotency key however often the job runs (see `domain::charges`).

use apalis::prelude::{Attempt, BoxDynError, Data};
use domain::charges::{ChargeError, ChargeRequest};
use serde::{Deserialize, Serialize};

use crate::JobContext;

pub const JOB: &str = "charge_payment";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChargePayment {
    pub payment_session_id: uuid::Uuid,
    pub amount: i64,
    /// Stable for one intended charge, e.g. `confirm:<payment id>` or `extension:<id>`.
    pub idempotency_key: String,
}

/// Charges once. Running it again returns the recorded charge without a provider call.
pub async fn run(job: &ChargePayment, ctx: &JobContext) -> Result<(), ChargeError> {
    let request = ChargeRequest {
        idempotency_key: job.idempotency_key.clone(),
        payment_session_id: job.payment_session_id,
        amount: job.amount,
    };
    domain::charges::charge(&ctx.store, ctx.payments.as_ref(), &request).await.map(drop)
}

pub type Storage = apalis_postgres::PostgresStorage<ChargePayment>;

pub fn storage(store: &domain::Store) -> Storage {
    apalis_postgres::PostgresStorage::new(domain::jobs::queue_pool(store))
}

/// Queues a charge; queuing the same idempotency key twice is one job.
pub async fn enqueue(storage: &mut Storage, job: ChargePayment) -> Result<(), crate::timers::ScheduleError> {
    use apalis::prelude::{TaskBuilder, TaskSink};
    let key = format!("{JOB}:{}", job.idempotency_key);
    let task = TaskBuilder::new(job).idempotency_key(key).max_attempts(8).build();
    match storage.push_task(task).await {
        Ok(()) => Ok(()),
        Err(error) if error.to_string().contains("idx_jobs_idempotency_key") => Ok(()),
        Err(error) => Err(crate::timers::ScheduleError::new(error.to_string())),
    }
}

pub(crate) async fn handle(
    job: ChargePayment,
    attempt: Attempt,
    ctx: Data<JobContext>,
) -> Result<(), BoxDynError> {
    if attempt.current() > 1 {
        ctx.metrics.job_retries.with_label_values(&[JOB]).inc();
    }
    crate::record(&ctx.metrics, JOB, run(&job, &ctx).await)
}
