//! The `probe` timer: records that it fired, for measuring the timer service.

use domain::StoreError;
use domain::ids::ProbeId;
use uuid::Uuid;

use crate::JobContext;

pub async fn run(probe: Uuid, ctx: &JobContext) -> Result<(), StoreError> {
    domain::jobs::probes::fired(&ctx.store, ProbeId(probe)).await
}
