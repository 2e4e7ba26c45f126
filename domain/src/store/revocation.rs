//! Access-token revocation in Redis: revoked token ids (until the token would have
//! expired anyway) and deactivated accounts. Both keys of one user share the hash tag
//! `{user:<id>}`, so the per-request check is one MGET even on Redis Cluster.

use fred::prelude::{KeysInterface, PubsubInterface};
use fred::types::Expiration;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::auth::Principal;

impl Store {
    fn revoked_token_key(&self, user_id: Uuid, token_id: Uuid) -> String {
        format!("{}:auth:{{user:{user_id}}}:revoked:{token_id}", self.keys.prefix())
    }

    fn deactivated_key(&self, user_id: Uuid) -> String {
        format!("{}:auth:{{user:{user_id}}}:deactivated", self.keys.prefix())
    }

    /// Refuses the caller's access token for its remaining `ttl_s`.
    pub async fn revoke_access_token(&self, caller: &Principal, ttl_s: i64) -> Result<(), StoreError> {
        let key = self.revoked_token_key(caller.id, caller.token_id);
        let _: () = self.redis.set(key, 1, Some(Expiration::EX(ttl_s.max(1))), None, false).await?;
        Ok(())
    }

    /// Whether the caller's token was revoked or its account deactivated since it was issued.
    pub async fn access_token_revoked(&self, caller: &Principal) -> Result<bool, StoreError> {
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
        Ok(())
    }

    /// Publishes a control message to every hub process.
    pub async fn publish_hub_control(&self, message: &str) -> Result<(), StoreError> {
        let _: () = self.redis.next().publish(self.keys.hub_control_channel(), message).await?;
        Ok(())
    }
}
