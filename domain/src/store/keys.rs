//! Redis key names. Every key starts with the deployment's prefix; keys that one script
//! touches together share a `{hash tag}` so they live in one Redis Cluster slot.

/// Builds the Redis keys of one deployment.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pub/sub channel of control messages to every hub process (e.g. close a user's sockets).
    pub fn hub_control_channel(&self) -> String {
        format!("{}:hub:control", self.prefix)
    }

    /// Pub/sub channel announcing that `app_config` changed.
    pub fn config_invalidation_channel(&self) -> String {
        format!("{}:config:invalidate", self.prefix)
    }
}

/// Deletes every key of a deployment (`{prefix}:*`). For tests and for resetting a
/// development environment; never called by the service itself.
pub async fn purge(settings: &crate::settings::RedisSettings) -> Result<u64, crate::store::StoreError> {
    use fred::prelude::{ClientLike, Config, KeysInterface};
    use fred::types::scan::Scanner;
    use futures::StreamExt;

    let client = fred::clients::Client::new(Config::from_url(settings.url.expose())?, None, None, None);
    client.init().await?;
    let pattern = format!("{}:*", settings.prefix);
    let mut deleted = 0;
    let mut pages = client.scan(pattern, Some(500), None);
    while let Some(page) = pages.next().await {
        let mut page = page?;
        if let Some(keys) = page.take_results()
            && !keys.is_empty()
        {
            deleted += client.del::<u64, _>(keys).await?;
        }
    }
    let _ = client.quit().await;
    Ok(deleted)
}
