//! The `probe` timer: records that it fired, for measuring the timer service.

use domain::ids::ProbeId;
use domain::store::StoreError;
use uuid::Uuid;

use crate::JobContext;

pub async fn run(probe: Uuid, ctx: &JobContext) -> Result<(), StoreError> {
    ctx.store.record_probe_firing(ProbeId(probe)).await
}
