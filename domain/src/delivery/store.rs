//! When a mitra's app was last heard from (any frame or pong on one of their sockets), by
//! the hub holding the socket: the extension safeguard reads it, so an unanswered request
//! is never auto-approved for a mitra whose app went silent while the socket lingers.

use crate::ids::UserId;
use redis::AsyncCommands;

use crate::store::{Store, StoreError};

/// How long a record outlives the last sign of life (well past every extension window).
const HEARD_TTL_S: u64 = 600;

impl Store {
    fn heard_key(&self, user: UserId) -> String {
        format!("{}:live:{{user:{user}}}:heard", self.keys.prefix())
    }

    /// Records that `user`'s app was heard from at `at_ms` (unix ms).
    pub(crate) async fn record_heard(&self, user: UserId, at_ms: u64) -> Result<(), StoreError> {
        let _: () = self.redis.next().set_ex(self.heard_key(user), at_ms, HEARD_TTL_S).await?;
        Ok(())
    }

    /// When `user`'s app was last heard from (unix ms), if within the record's life.
    pub(crate) async fn last_heard_ms(&self, user: UserId) -> Result<Option<u64>, StoreError> {
        Ok(self.redis.next().get(self.heard_key(user)).await?)
    }
}

/// Raises a user's delivered watermark to `ARGV[1]` (a stream id `<ms>-<seq>`) unless it is
/// there already; it lives `ARGV[2]` seconds from the last raise.
static RAISE_DELIVERED: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local function parse(id)
            local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
            return tonumber(ms), tonumber(seq)
        end
        local new_ms, new_seq = parse(ARGV[1])
        if not new_ms then return 0 end
        local old_ms, old_seq = parse(redis.call('GET', KEYS[1]))
        if old_ms and (old_ms > new_ms or (old_ms == new_ms and old_seq >= new_seq)) then
            return 0
        end
        redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
        return 1
        ",
    )
});

impl Store {
    fn delivered_key(&self, user: UserId) -> String {
        format!("{}:live:{{user:{user}}}:delivered", self.keys.prefix())
    }

    /// Records that a device of `user` received every event of their stream up to `id`
    /// (it answered a ping the hub sent after writing them). Only moves forward.
    pub(crate) async fn record_delivered(
        &self,
        user: UserId,
        id: &str,
        ttl_s: u64,
    ) -> Result<(), StoreError> {
        let _: i64 = RAISE_DELIVERED
            .key(self.delivered_key(user))
            .arg(id)
            .arg(ttl_s.max(1))
            .invoke_async(&mut self.redis.next())
            .await?;
        Ok(())
    }

    /// For each of `users`, in order, the stream id up to which some device of theirs
    /// received their events, if known; one round trip (a pipeline).
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn delivered_up_to_many(
        &self,
        users: &[UserId],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per user, concurrently on one connection (a pipeline cannot span the users'
        // slots on a cluster).
        let reads = users.iter().map(|&user| {
            let mut conn = self.redis.next();
            let key = self.delivered_key(user);
            async move { conn.get::<_, Option<String>>(key).await }
        });
        Ok(futures::future::try_join_all(reads).await?)
    }
}
