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
    use crate::store::redis::Topology;

    let pattern = format!("{}:*", settings.prefix);
    let topology = Topology::parse(settings.url.expose())?;
    let mut deleted = 0;
    match &topology {
        // A cluster is scanned on every master.
        Topology::Cluster(nodes) => {
            let first =
                nodes.first().ok_or_else(|| crate::store::StoreError::Encode("no cluster node".into()))?;
            let mut any = redis::Client::open(first.clone())?.get_multiplexed_async_connection().await?;
            let listing: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut any).await?;
            for line in listing.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let serving = fields.len() > 8 && fields[2].contains("master") && !fields[2].contains("fail");
                let Some((host, port)) = fields.get(1).and_then(|at| at.split('@').next()?.rsplit_once(':'))
                else {
                    continue;
                };
                let Ok(port) = port.parse() else { continue };
                if serving {
                    let node = first.clone().set_addr(redis::ConnectionAddr::Tcp(host.to_owned(), port));
                    let mut master = redis::Client::open(node)?.get_multiplexed_async_connection().await?;
                    deleted += purge_node(&mut master, &pattern).await?;
                }
            }
        }
        _ => deleted += purge_node(&mut topology.connect().await?, &pattern).await?,
    }
    Ok(deleted)
}

/// SCAN one server for `pattern` and delete what it finds, a key per DEL (keys of several
/// slots cannot share one on a cluster node).
async fn purge_node(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    pattern: &str,
) -> Result<u64, crate::store::StoreError> {
    let mut cursor = 0_u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let mut pipeline = redis::pipe();
            for key in &keys {
                pipeline.del(key);
            }
            let counts: Vec<u64> = pipeline.query_async(conn).await?;
            deleted += counts.iter().sum::<u64>();
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
