//! When a mitra's app was last heard from (any frame or pong on one of their sockets), by
//! the hub holding the socket: the extension safeguard reads it, so an unanswered request
//! is never auto-approved for a mitra whose app went silent while the socket lingers.

use fred::prelude::KeysInterface;
use fred::types::Expiration;
use uuid::Uuid;

use super::{Store, StoreError};

/// How long a record outlives the last sign of life (well past every extension window).
const HEARD_TTL_S: i64 = 600;

impl Store {
    fn heard_key(&self, user: Uuid) -> String {
        format!("{}:live:{{user:{user}}}:heard", self.keys.prefix())
    }

    /// Records that `user`'s app was heard from at `at_ms` (unix ms).
    pub async fn record_heard(&self, user: Uuid, at_ms: u64) -> Result<(), StoreError> {
        let _: () = self
            .redis
            .set(self.heard_key(user), at_ms, Some(Expiration::EX(HEARD_TTL_S)), None, false)
            .await?;
        Ok(())
    }

    /// When `user`'s app was last heard from (unix ms), if within the record's life.
    pub async fn last_heard_ms(&self, user: Uuid) -> Result<Option<u64>, StoreError> {
        Ok(self.redis.get(self.heard_key(user)).await?)
    }
}
