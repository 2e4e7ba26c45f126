//! Redis key names. Every key starts with the deployment's prefix; keys that one script
//! touches together share a `{hash tag}` so they live in one Redis Cluster slot.

/// Builds the Redis keys of one deployment.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pub/sub channel announcing that `app_config` changed.
    pub fn config_invalidation_channel(&self) -> String {
        format!("{}:config:invalidate", self.prefix)
    }
}
