//! Access-token revocation in Redis: revoked token ids (until the token would have
//! expired anyway) and deactivated accounts. Both keys of one user share the hash tag
//! `{user:<id>}`, so the check is one MGET even on Redis Cluster.
//!
//! Every request checks revocation, so each process keeps the whole (small) list in memory
//! ([`Revocations`]) and answers without a round trip: an index sorted set
//! `{p}:auth:revocations` (`t:<token id>` until the token's expiry, `u:<user>` for a
//! deactivated account) is loaded at start and every 5 s, and each change is published on
//! `{p}:auth:revoked` and applied at once by every process (by the one that made it before
//! it answers). Until the first load, or when Redis cannot be read, the check asks Redis.

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use fred::prelude::{KeysInterface, PubsubInterface};
use fred::types::Expiration;
use fred::types::scripts::Script;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::auth::Principal;

/// Updates the index and announces the change, in one step.
static INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r"
        if ARGV[1] == 'add' then
            redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
        else
            redis.call('ZREM', KEYS[1], ARGV[2])
        end
        redis.call('PUBLISH', ARGV[4], ARGV[5])
        return 1
        ",
    )
});

/// Drops entries whose token expired, then returns the rest.
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r"
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
        return redis.call('ZRANGE', KEYS[1], 0, -1)
        ",
    )
});

/// The revoked token ids and deactivated accounts, in memory.
#[derive(Default)]
pub struct Revocations {
    known: RwLock<Option<Known>>,
}

#[derive(Default)]
struct Known {
    tokens: HashSet<Uuid>,
    users: HashSet<Uuid>,
}

impl Revocations {
    /// `None` while the list is not loaded (or was dropped because Redis is unreadable).
    fn check(&self, caller: &Principal) -> Option<bool> {
        let known = self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.as_ref().map(|k| k.tokens.contains(&caller.token_id) || k.users.contains(&caller.id))
    }

    fn replace(&self, next: Option<Known>) {
        *self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    }

    /// Applies one `t <token id>` / `u <user> <0|1>` change (ignored until loaded: the load
    /// that follows includes it).
    fn apply(&self, message: &str) {
        let mut known = self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(known) = known.as_mut() else { return };
        let mut parts = message.split(' ');
        match (parts.next(), parts.next().and_then(|id| Uuid::parse_str(id).ok()), parts.next()) {
            (Some("t"), Some(token), _) => {
                known.tokens.insert(token);
            }
            (Some("u"), Some(user), Some("1")) => {
                known.users.insert(user);
            }
            (Some("u"), Some(user), Some("0")) => {
                known.users.remove(&user);
            }
            _ => tracing::warn!(message, "unknown revocation message"),
        }
    }
}

struct RevocationFollower {
    store: Store,
}

impl super::Follower for RevocationFollower {
    fn apply(&self, message: &str) {
        self.store.revocations.apply(message);
    }

    fn reload(&self, subscribed: bool) -> futures::future::BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let store = &self.store;
            let now_ms = crate::clock::now_ms().to_string();
            let members: Vec<String> = SNAPSHOT
                .evalsha_with_reload(store.redis.next(), vec![store.revocation_index_key()], vec![now_ms])
                .await?;
            // Without live changes a loaded list could miss a revocation for up to a reload
            // period: ask Redis per request until the subscription is back.
            store.revocations.replace(subscribed.then(|| parse_index(members)));
            Ok(())
        })
    }

    fn failing(&self, failures: u32) {
        if failures >= 2 {
            self.store.revocations.replace(None);
        }
    }
}

fn parse_index(members: Vec<String>) -> Known {
    let mut known = Known::default();
    for member in members {
        match member.split_once(':') {
            Some(("t", id)) => {
                if let Ok(id) = Uuid::parse_str(id) {
                    known.tokens.insert(id);
                }
            }
            Some(("u", id)) => {
                if let Ok(id) = Uuid::parse_str(id) {
                    known.users.insert(id);
                }
            }
            _ => {}
        }
    }
    known
}

impl Store {
    fn revoked_token_key(&self, user_id: Uuid, token_id: Uuid) -> String {
        format!("{}:auth:{{user:{user_id}}}:revoked:{token_id}", self.keys.prefix())
    }

    fn deactivated_key(&self, user_id: Uuid) -> String {
        format!("{}:auth:{{user:{user_id}}}:deactivated", self.keys.prefix())
    }

    fn revocation_index_key(&self) -> String {
        format!("{}:auth:revocations", self.keys.prefix())
    }

    fn revocation_channel(&self) -> String {
        format!("{}:auth:revoked", self.keys.prefix())
    }

    async fn index_revocation(
        &self,
        add: bool,
        member: String,
        until_ms: &str,
        message: String,
    ) -> Result<(), StoreError> {
        let op = if add { "add" } else { "remove" };
        let args =
            vec![op.to_owned(), member, until_ms.to_owned(), self.revocation_channel(), message.clone()];
        let _: i64 =
            INDEX.evalsha_with_reload(self.redis.next(), vec![self.revocation_index_key()], args).await?;
        self.revocations.apply(&message);
        Ok(())
    }

    /// Refuses the caller's access token for its remaining `ttl_s`: recorded in Postgres
    /// (which also forgets the tokens that expired since), then flagged in Redis.
    pub async fn revoke_access_token(&self, caller: &Principal, ttl_s: i64) -> Result<(), StoreError> {
        let ttl_s = ttl_s.max(1);
        sqlx::query(
            "WITH expired AS (DELETE FROM revoked_access_tokens WHERE expires_at <= now())
             INSERT INTO revoked_access_tokens (token_id, user_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3::double precision))
             ON CONFLICT (token_id) DO NOTHING",
        )
        .bind(caller.token_id)
        .bind(caller.id)
        .bind(ttl_s as f64)
        .execute(&self.pg)
        .await?;
        self.flag_revoked_token(caller.id, caller.token_id, ttl_s).await
    }

    async fn flag_revoked_token(&self, user_id: Uuid, token_id: Uuid, ttl_s: i64) -> Result<(), StoreError> {
        let key = self.revoked_token_key(user_id, token_id);
        let _: () = self.redis.set(key, 1, Some(Expiration::EX(ttl_s)), None, false).await?;
        let until_ms = crate::clock::now_ms().saturating_add(u64::try_from(ttl_s).unwrap_or(1) * 1_000);
        self.index_revocation(true, format!("t:{token_id}"), &until_ms.to_string(), format!("t {token_id}"))
            .await
    }

    /// Copies the record of revocations into Redis: the deactivated mitras and the access
    /// tokens revoked and not yet expired. Run when Redis lost its data; idempotent. Returns
    /// how many were copied.
    pub async fn restore_revocations(&self) -> Result<usize, StoreError> {
        let deactivated: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM mitras WHERE deactivated_at IS NOT NULL")
                .fetch_all(&self.pg)
                .await?;
        let tokens: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
            "SELECT token_id, user_id, ceil(extract(epoch FROM expires_at - now()))::bigint
             FROM revoked_access_tokens WHERE expires_at > now()",
        )
        .fetch_all(&self.pg)
        .await?;
        for &mitra in &deactivated {
            self.set_deactivated_flag(mitra, true).await?;
        }
        for &(token, user, ttl_s) in &tokens {
            self.flag_revoked_token(user, token, ttl_s.max(1)).await?;
        }
        Ok(deactivated.len() + tokens.len())
    }

    /// Whether the caller's token was revoked or its account deactivated since it was issued.
    pub async fn access_token_revoked(&self, caller: &Principal) -> Result<bool, StoreError> {
        if let Some(revoked) = self.revocations.check(caller) {
            return Ok(revoked);
        }
        let keys = vec![self.revoked_token_key(caller.id, caller.token_id), self.deactivated_key(caller.id)];
        let found: Vec<Option<String>> = self.redis.mget(keys).await?;
        Ok(found.iter().any(Option::is_some))
    }

    /// Marks an account deactivated (its access tokens are refused) or active again.
    pub async fn set_deactivated_flag(&self, user_id: Uuid, deactivated: bool) -> Result<(), StoreError> {
        let key = self.deactivated_key(user_id);
        if deactivated {
            let _: () = self.redis.set(key, 1, None, None, false).await?;
        } else {
            let _: () = self.redis.del(key).await?;
        }
        let message = format!("u {user_id} {}", u8::from(deactivated));
        self.index_revocation(deactivated, format!("u:{user_id}"), "+inf", message).await
    }

    /// Keeps this process's in-memory revocation list loaded and current until `shutdown`.
    pub async fn run_revocation_watcher(&self, shutdown: CancellationToken) {
        let follower = RevocationFollower { store: self.clone() };
        self.follow(self.revocation_channel(), Duration::from_secs(5), &follower, shutdown).await;
    }

    /// Publishes a control message to every hub process.
    pub async fn publish_hub_control(&self, message: &str) -> Result<(), StoreError> {
        let _: () = self.redis.next().publish(self.keys.hub_control_channel(), message).await?;
        Ok(())
    }
}
