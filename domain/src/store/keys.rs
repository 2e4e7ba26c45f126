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
    use std::collections::BTreeMap;

    use fred::prelude::{ClientLike, Config, KeysInterface};
    use fred::types::scan::{ScanResult, Scanner};
    use futures::StreamExt;
    use futures::stream::BoxStream;

    let client = fred::clients::Client::new(Config::from_url(settings.url.expose())?, None, None, None);
    client.init().await?;
    let pattern = format!("{}:*", settings.prefix);
    // A cluster is scanned on every master, and a DEL names keys of one slot only.
    let mut pages: BoxStream<'_, Result<ScanResult, fred::error::Error>> = if client.is_clustered() {
        client.scan_cluster(pattern, Some(500), None).boxed()
    } else {
        client.scan(pattern, Some(500), None).boxed()
    };
    let mut deleted = 0;
    while let Some(page) = pages.next().await {
        let mut page = page?;
        let mut by_slot: BTreeMap<u16, Vec<fred::types::Key>> = BTreeMap::new();
        for key in page.take_results().unwrap_or_default() {
            by_slot.entry(fred::util::redis_keyslot(key.as_bytes())).or_default().push(key);
        }
        for keys in by_slot.into_values() {
            deleted += client.del::<u64, _>(keys).await?;
        }
    }
    drop(pages);
    let _ = client.quit().await;
    Ok(deleted)
}
