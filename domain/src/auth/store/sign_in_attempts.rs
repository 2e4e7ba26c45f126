//! Password sign-in attempts per account (role and email), in Redis: one counter per
//! account that lives one window from its first attempt. Losing it (Redis restarted empty)
//! only gives every account a fresh window.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

use crate::auth::Role;
use crate::store::{Store, StoreError};

/// Counts one attempt; starts the window at the first. Returns the count and the seconds
/// left in the window.
static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local count = redis.call('INCR', KEYS[1])
        if count == 1 then
            redis.call('EXPIRE', KEYS[1], ARGV[1])
        end
        local ttl = redis.call('TTL', KEYS[1])
        if ttl < 0 then
            redis.call('EXPIRE', KEYS[1], ARGV[1])
            ttl = tonumber(ARGV[1])
        end
        return {count, ttl}
        ",
    )
});

/// One counted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts in the window, this one included.
    pub count: u64,
    /// When over the limit: the seconds until the window ends.
    pub locked_for_s: Option<u64>,
}

impl Store {
    /// The key of an account's counter. The email is hashed: no address sits in Redis.
    fn sign_in_attempts_key(&self, role: Role, email: &str) -> String {
        let digest = Sha256::digest(email.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}:auth:sign_in_attempts:{}:{hex}", self.keys.prefix(), role.as_str())
    }

    /// Counts an attempt to sign in as `email`; over `max` in the window, says for how long
    /// the account is locked. Atomic: of concurrent attempts exactly `max` pass.
    pub(crate) async fn count_sign_in_attempt(
        &self,
        role: Role,
        email: &str,
        max: u32,
        window_s: u64,
    ) -> Result<Attempt, StoreError> {
        let key = self.sign_in_attempts_key(role, email);
        let (count, ttl_s): (u64, i64) =
            COUNT.key(key).arg(window_s.max(1)).invoke_async(&mut self.redis.next()).await?;
        let locked_for_s = (count > u64::from(max)).then(|| u64::try_from(ttl_s).unwrap_or(1).max(1));
        Ok(Attempt { count, locked_for_s })
    }

    /// Forgets an account's attempts (it signed in, or an operator reset its password).
    pub(crate) async fn clear_sign_in_attempts(&self, role: Role, email: &str) -> Result<(), StoreError> {
        let _: i64 = self.redis.next().del(self.sign_in_attempts_key(role, email)).await?;
        Ok(())
    }

    /// Seconds each of `emails` (of `role`) stays locked, 0 when it is not, in order.
    pub(crate) async fn sign_in_locks(
        &self,
        role: Role,
        emails: &[&str],
        max: u32,
    ) -> Result<Vec<u64>, StoreError> {
        let lock = |email: &str| {
            let key = self.sign_in_attempts_key(role, email);
            async move {
                let mut conn = self.redis.next();
                let count: Option<u64> = conn.get(&key).await?;
                if count.unwrap_or(0) < u64::from(max) {
                    return Ok::<_, StoreError>(0);
                }
                let ttl_s: i64 = conn.ttl(&key).await?;
                Ok(u64::try_from(ttl_s).unwrap_or(0))
            }
        };
        futures::future::try_join_all(emails.iter().map(|email| lock(email))).await
    }
}
