//! Access-token revocation in Redis: revoked token ids (until the token would have
//! expired anyway), revoked sign-ins (every token of one refresh-token family), each
//! account's "not valid before" (tokens issued earlier are refused) and deactivated
//! accounts. Every key of one user shares the hash tag `{user:<id>}`, so the check is one
//! MGET even on Redis Cluster.
//!
//! Every request checks revocation, so each process keeps the whole (small) list in memory
//! ([`Revocations`]) and answers without a round trip: an index sorted set
//! `{p}:auth:revocations` (`t:<token id>`, `s:<sign-in>` and `n:<user>:<ms>` until the
//! tokens concerned have expired, `u:<user>` for a deactivated account) is loaded at start
//! and every 5 s, and each change is published on `{p}:auth:revoked` and applied at once by
//! every process (by the one that made it before it answers). Until the first load, or when
//! Redis cannot be read, the check asks Redis.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use redis::{AsyncCommands, Script};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Principal;
use crate::ids::{SignInId, TokenId, UserId};
use crate::store::{Store, StoreError};

/// Updates the index and announces the change, in one step.
static INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
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
    Script::new(
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
    sign_ins: HashSet<Uuid>,
    /// Per account: tokens issued before this (unix ms) are refused.
    not_before: HashMap<Uuid, i64>,
}

impl Known {
    fn refuses(&self, caller: &Principal) -> bool {
        self.tokens.contains(&caller.token_id.0)
            || self.users.contains(&caller.id.0)
            || self.sign_ins.contains(&caller.sign_in.0)
            || self.not_before.get(&caller.id.0).is_some_and(|&before| caller.issued_at_ms < before)
    }

    fn raise_not_before(&mut self, user: UserId, at_ms: i64) {
        let before = self.not_before.entry(user.0).or_default();
        *before = (*before).max(at_ms);
    }
}

impl Revocations {
    /// `None` while the list is not loaded (or was dropped because Redis is unreadable).
    fn check(&self, caller: &Principal) -> Option<bool> {
        let known = self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.as_ref().map(|k| k.refuses(caller))
    }

    fn replace(&self, next: Option<Known>) {
        *self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    }

    /// Applies one `t <token id>` / `s <sign-in>` / `n <user> <ms>` / `u <user> <0|1>` change
    /// (ignored until loaded: the load that follows includes it).
    fn apply(&self, message: &str) {
        let mut known = self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(known) = known.as_mut() else { return };
        let mut parts = message.split(' ');
        match (parts.next(), parts.next().and_then(|id| Uuid::parse_str(id).ok()), parts.next()) {
            (Some("t"), Some(token), _) => {
                known.tokens.insert(token);
            }
            (Some("s"), Some(sign_in), _) => {
                known.sign_ins.insert(sign_in);
            }
            (Some("n"), Some(user), Some(at_ms)) if at_ms.parse::<i64>().is_ok() => {
                known.raise_not_before(UserId(user), at_ms.parse().unwrap_or_default());
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

impl crate::store::Follower for RevocationFollower {
    fn apply(&self, message: &str) {
        self.store.revocations.apply(message);
    }

    fn reload(&self, subscribed: bool) -> futures::future::BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let store = &self.store;
            let now_ms = crate::clock::now_ms().to_string();
            let members: Vec<String> = SNAPSHOT
                .key(store.revocation_index_key())
                .arg(now_ms)
                .invoke_async(&mut store.redis.next())
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
            Some(("s", id)) => {
                if let Ok(id) = Uuid::parse_str(id) {
                    known.sign_ins.insert(id);
                }
            }
            Some(("n", rest)) => {
                if let Some((user, at_ms)) = rest.split_once(':')
                    && let (Ok(user), Ok(at_ms)) = (Uuid::parse_str(user), at_ms.parse::<i64>())
                {
                    known.raise_not_before(UserId(user), at_ms);
                }
            }
            _ => {}
        }
    }
    known
}

impl Store {
    fn revoked_token_key(&self, user_id: UserId, token_id: TokenId) -> String {
        format!("{}:auth:{{user:{user_id}}}:revoked:{token_id}", self.keys.prefix())
    }

    fn revoked_sign_in_key(&self, user_id: UserId, sign_in: SignInId) -> String {
        format!("{}:auth:{{user:{user_id}}}:revoked_sign_in:{sign_in}", self.keys.prefix())
    }

    fn not_before_key(&self, user_id: UserId) -> String {
        format!("{}:auth:{{user:{user_id}}}:not_before", self.keys.prefix())
    }

    fn deactivated_key(&self, user_id: UserId) -> String {
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
        let _: i64 = INDEX
            .key(self.revocation_index_key())
            .arg(op)
            .arg(member)
            .arg(until_ms)
            .arg(self.revocation_channel())
            .arg(&message)
            .invoke_async(&mut self.redis.next())
            .await?;
        self.revocations.apply(&message);
        Ok(())
    }

    /// Refuses the caller's access token for its remaining `ttl_s`: recorded in Postgres
    /// (which also forgets the tokens that expired since), then flagged in Redis.
    pub(crate) async fn revoke_access_token(&self, caller: &Principal, ttl_s: i64) -> Result<(), StoreError> {
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

    async fn flag_revoked_token(
        &self,
        user_id: UserId,
        token_id: TokenId,
        ttl_s: i64,
    ) -> Result<(), StoreError> {
        let key = self.revoked_token_key(user_id, token_id);
        self.flag_for(key, 1, ttl_s, format!("t:{token_id}"), format!("t {token_id}")).await
    }

    /// Sets `key` to `value` for `ttl_s` (what a process without the list in memory asks),
    /// then indexes `member` as long and announces `message`.
    async fn flag_for(
        &self,
        key: String,
        value: i64,
        ttl_s: i64,
        member: String,
        message: String,
    ) -> Result<(), StoreError> {
        let _: () = self.redis.next().set_ex(key, value, u64::try_from(ttl_s).unwrap_or(1)).await?;
        let until_ms = crate::clock::now_ms().saturating_add(u64::try_from(ttl_s).unwrap_or(1) * 1_000);
        self.index_revocation(true, member, &until_ms.to_string(), message).await
    }

    /// Refuses every access token of the sign-in `sign_in` (a refresh-token family) of
    /// `user_id` for `ttl_s` (the access tokens' lifetime, after which none can be left):
    /// recorded in Postgres, then flagged in Redis.
    pub(crate) async fn revoke_sign_in(
        &self,
        user_id: UserId,
        sign_in: SignInId,
        ttl_s: i64,
    ) -> Result<(), StoreError> {
        let ttl_s = ttl_s.max(1);
        sqlx::query(
            "WITH expired AS (DELETE FROM revoked_sign_ins WHERE expires_at <= now())
             INSERT INTO revoked_sign_ins (sign_in, user_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3::double precision))
             ON CONFLICT (sign_in) DO NOTHING",
        )
        .bind(sign_in)
        .bind(user_id)
        .bind(ttl_s as f64)
        .execute(&self.pg)
        .await?;
        self.flag_revoked_sign_in(user_id, sign_in, ttl_s).await
    }

    async fn flag_revoked_sign_in(
        &self,
        user_id: UserId,
        sign_in: SignInId,
        ttl_s: i64,
    ) -> Result<(), StoreError> {
        let key = self.revoked_sign_in_key(user_id, sign_in);
        self.flag_for(key, 1, ttl_s, format!("s:{sign_in}"), format!("s {sign_in}")).await
    }

    /// Refuses every access token of `user_id` issued before now (a password reset, a
    /// deactivation), for `ttl_s` (the access tokens' lifetime). A reactivation does not
    /// lift it. Returns the instant (unix ms).
    pub(crate) async fn set_not_valid_before(&self, user_id: UserId, ttl_s: i64) -> Result<i64, StoreError> {
        let ttl_s = ttl_s.max(1);
        let at_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
        sqlx::query(
            "WITH expired AS (DELETE FROM account_not_valid_before WHERE expires_at <= now())
             INSERT INTO account_not_valid_before (user_id, not_before_ms, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3::double precision))
             ON CONFLICT (user_id) DO UPDATE SET
                 not_before_ms = GREATEST(account_not_valid_before.not_before_ms, EXCLUDED.not_before_ms),
                 expires_at = EXCLUDED.expires_at",
        )
        .bind(user_id)
        .bind(at_ms)
        .bind(ttl_s as f64)
        .execute(&self.pg)
        .await?;
        self.flag_not_before(user_id, at_ms, ttl_s).await?;
        Ok(at_ms)
    }

    async fn flag_not_before(&self, user_id: UserId, at_ms: i64, ttl_s: i64) -> Result<(), StoreError> {
        let key = self.not_before_key(user_id);
        self.flag_for(key, at_ms, ttl_s, format!("n:{user_id}:{at_ms}"), format!("n {user_id} {at_ms}")).await
    }

    /// Copies the record of revocations into Redis: the deactivated accounts, the access
    /// tokens and sign-ins revoked and the "not valid before" times not yet expired. Run
    /// when Redis lost its data; idempotent. Returns how many were copied.
    pub(crate) async fn restore_revocations(&self) -> Result<usize, StoreError> {
        let deactivated: Vec<UserId> = sqlx::query_scalar(
            "SELECT id FROM mitras WHERE deactivated_at IS NOT NULL
                 UNION ALL SELECT id FROM customers WHERE deactivated_at IS NOT NULL
                 UNION ALL SELECT id FROM cc_users WHERE deactivated_at IS NOT NULL",
        )
        .fetch_all(&self.pg)
        .await?;
        let tokens: Vec<(TokenId, UserId, i64)> = sqlx::query_as(
            "SELECT token_id, user_id, ceil(extract(epoch FROM expires_at - now()))::bigint
             FROM revoked_access_tokens WHERE expires_at > now()",
        )
        .fetch_all(&self.pg)
        .await?;
        let sign_ins: Vec<(SignInId, UserId, i64)> = sqlx::query_as(
            "SELECT sign_in, user_id, ceil(extract(epoch FROM expires_at - now()))::bigint
             FROM revoked_sign_ins WHERE expires_at > now()",
        )
        .fetch_all(&self.pg)
        .await?;
        let not_before: Vec<(UserId, i64, i64)> = sqlx::query_as(
            "SELECT user_id, not_before_ms, ceil(extract(epoch FROM expires_at - now()))::bigint
             FROM account_not_valid_before WHERE expires_at > now()",
        )
        .fetch_all(&self.pg)
        .await?;
        for &account in &deactivated {
            self.set_deactivated_flag(account, true).await?;
        }
        for &(token, user, ttl_s) in &tokens {
            self.flag_revoked_token(user, token, ttl_s.max(1)).await?;
        }
        for &(sign_in, user, ttl_s) in &sign_ins {
            self.flag_revoked_sign_in(user, sign_in, ttl_s.max(1)).await?;
        }
        for &(user, at_ms, ttl_s) in &not_before {
            self.flag_not_before(user, at_ms, ttl_s.max(1)).await?;
        }
        Ok(deactivated.len() + tokens.len() + sign_ins.len() + not_before.len())
    }

    /// Whether the caller's token was revoked or its account deactivated since it was issued.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn access_token_revoked(&self, caller: &Principal) -> Result<bool, StoreError> {
        if let Some(revoked) = self.revocations.check(caller) {
            return Ok(revoked);
        }
        let keys = vec![
            self.revoked_token_key(caller.id, caller.token_id),
            self.deactivated_key(caller.id),
            self.revoked_sign_in_key(caller.id, caller.sign_in),
            self.not_before_key(caller.id),
        ];
        let found: Vec<Option<String>> = self.redis.next().mget(keys).await?;
        let not_before = found.get(3).cloned().flatten().and_then(|at_ms| at_ms.parse::<i64>().ok());
        Ok(found.iter().take(3).any(Option::is_some)
            || not_before.is_some_and(|at_ms| caller.issued_at_ms < at_ms))
    }

    /// Marks an account deactivated (its access tokens are refused) or active again.
    pub(crate) async fn set_deactivated_flag(
        &self,
        user_id: UserId,
        deactivated: bool,
    ) -> Result<(), StoreError> {
        let key = self.deactivated_key(user_id);
        if deactivated {
            let _: () = self.redis.next().set(key, 1).await?;
        } else {
            let _: () = self.redis.next().del(key).await?;
        }
        let message = format!("u {user_id} {}", u8::from(deactivated));
        self.index_revocation(deactivated, format!("u:{user_id}"), "+inf", message).await
    }

    /// Keeps this process's in-memory revocation list loaded and current until `shutdown`.
    pub(crate) async fn run_revocation_watcher(&self, shutdown: CancellationToken) {
        let follower = RevocationFollower { store: self.clone() };
        self.follow(self.revocation_channel(), Duration::from_secs(5), &follower, shutdown).await;
    }

    /// Publishes a control message to every hub process.
    pub(crate) async fn publish_hub_control(&self, message: &str) -> Result<(), StoreError> {
        let _: () = self.redis.next().publish(self.keys.hub_control_channel(), message).await?;
        Ok(())
    }
}
