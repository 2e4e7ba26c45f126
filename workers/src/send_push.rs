//! The push job: sends a notification to every device of an account (FCM HTTP v1, see
//! `domain::push`), deleting tokens FCM says are dead. Retries of 429 and 5xx happen inside
//! the send, with backoff; the job itself is not retried (a repeat would notify twice).

use apalis::prelude::{BoxDynError, Data, TaskBuilder, TaskSink};
use domain::StoreError;
use domain::ids::UserId;
use domain::push::Delivery;

use crate::JobContext;

pub const JOB: &str = "send_push";

/// The job: one notification for every device of an account.
pub type SendPush = domain::jobs::Push;

pub type Storage = apalis_postgres::PostgresStorage<SendPush>;

/// A 1 s heartbeat (apalis' default is 30 s): in tests, a push worker sometimes stopped
/// polling after an empty fetch until its next heartbeat, so a queued push waited up to ~29 s
/// (2 of 6 pushes, each on a fresh app); with 1 s, none waited over 0.7 s in 12. The root
/// cause (in the worker's polling) is not found; the heartbeat bounds the wait.
pub fn storage(store: &domain::Store) -> Storage {
    let config = apalis_postgres::Config::default()
        .queue(std::any::type_name::<SendPush>())
        .heartbeat_interval(std::time::Duration::from_secs(1));
    apalis_postgres::PostgresStorage::new(domain::jobs::queue_pool(store)).with_config(config)
}

/// Queues a push.
pub async fn enqueue(storage: &mut Storage, push: SendPush) -> Result<(), crate::timers::ScheduleError> {
    let task = TaskBuilder::new(push).max_attempts(1).build();
    storage.push_task(task).await.map_err(|e| crate::timers::ScheduleError::new(e.to_string()))
}

pub async fn run(push: &SendPush, ctx: &JobContext) -> Result<Vec<Delivery>, StoreError> {
    let deliveries = domain::push::send_to_account(
        &ctx.store,
        ctx.push.as_ref(),
        push.role,
        UserId(push.account),
        &push.message,
    )
    .await?;
    for delivery in &deliveries {
        let outcome = match delivery {
            Delivery::Sent => "sent",
            Delivery::TokenDeleted => "token_deleted",
            Delivery::Failed(_) => "failed",
            Delivery::AuthFailed(_) => "auth_failed",
        };
        ctx.metrics.pushes.with_label_values(&[outcome]).inc();
    }
    Ok(deliveries)
}

pub(crate) async fn handle(push: SendPush, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    crate::record(&ctx.metrics, JOB, run(&push, &ctx).await.map(drop))
}
