//! The `expire_payment_session` timer: closes a payment session at its expiry, instead of at
//! the next sweep (which stays as the backstop).

use domain::StoreError;
use domain::payment::PaymentStatus;
use uuid::Uuid;

use crate::JobContext;

pub async fn run(payment_session: Uuid, ctx: &JobContext) -> Result<(), StoreError> {
    let counts = domain::payment::expire(&ctx.store, domain::ids::PaymentId(payment_session)).await?;
    let swept = &ctx.metrics.payment_sessions_swept;
    swept.with_label_values(&[PaymentStatus::Expired.as_str()]).inc_by(counts.expired);
    swept.with_label_values(&[PaymentStatus::FailedPairing.as_str()]).inc_by(counts.failed);
    Ok(())
}
