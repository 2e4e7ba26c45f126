//! The Redis connections (redis-rs): one server, a Redis Cluster or a master behind Sentinel,
//! each behind [`Conn`], which runs any command or script the same way.
//!
//! A cluster is served by `ClusterConnection`, which holds one connection per node: a node
//! that fails stalls only the commands for its slots until its replica is promoted, and the
//! other shards keep serving (the reason for this client, issue 25). Sentinel: the master is
//! asked of the sentinels at connect, and again after a command meets a dead or demoted
//! master. Connections reconnect by themselves; the dedicated ones (subscriptions, blocking
//! reads) speak RESP3 and report a lost connection on their push channel
//! ([`redis::PushKind::Disconnection`]), which is how their owners learn of a gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisError, RedisFuture,
    RedisResult, Value,
};

/// How long a command may take, and a connection attempt, before it fails (as fred's 2 s did).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// A blocking read's extra time beyond its own block.
const BLOCKING_MARGIN: Duration = Duration::from_secs(5);

/// Where Redis is, from `redis.url`.
#[derive(Clone, Debug)]
pub(crate) enum Topology {
    Single(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
    Sentinel { sentinels: Vec<ConnectionInfo>, service: String, node: redis::RedisConnectionInfo },
}

impl Topology {
    /// Reads the three URL forms of docs/CONFIGURATION.md: `redis://`, `redis-cluster://`
    /// (`?node=host:port` for more nodes) and `redis-sentinel://` (the hosts are sentinels;
    /// `?sentinelServiceName=`, `&node=`; the password is the master's).
    pub(crate) fn parse(url: &str) -> RedisResult<Self> {
        let invalid = |what: &str| {
            RedisError::from((redis::ErrorKind::InvalidClientConfig, "redis.url", what.to_owned()))
        };
        let parsed = url::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        let scheme = parsed.scheme().to_owned();
        if scheme == "redis" || scheme == "rediss" {
            return Ok(Self::Single(url.into_connection_info()?));
        }
        let host = parsed.host_str().ok_or_else(|| invalid("no host"))?.to_owned();
        let mut hosts = vec![format!(
            "{host}:{}",
            parsed.port().unwrap_or(if scheme == "redis-sentinel" { 26379 } else { 6379 })
        )];
        let mut service = None;
        let mut sentinel_auth = (None, None);
        for (name, value) in parsed.query_pairs() {
            match name.as_ref() {
                "node" => hosts.push(value.into_owned()),
                "sentinelServiceName" => service = Some(value.into_owned()),
                "sentinelUsername" => sentinel_auth.0 = Some(value.into_owned()),
                "sentinelPassword" => sentinel_auth.1 = Some(value.into_owned()),
                _ => {}
            }
        }
        let user = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let password = parsed.password().map(decode);
        let with_auth = |address: &str, user: &Option<String>, password: &Option<String>| {
            let mut settings = redis::RedisConnectionInfo::default();
            if let Some(user) = user {
                settings = settings.set_username(user);
            }
            if let Some(password) = password {
                settings = settings.set_password(password);
            }
            format!("redis://{address}").into_connection_info().map(|info| info.set_redis_settings(settings))
        };
        match scheme.as_str() {
            "redis-cluster" => Ok(Self::Cluster(
                hosts
                    .iter()
                    .map(|address| with_auth(address, &user, &password))
                    .collect::<RedisResult<_>>()?,
            )),
            "redis-sentinel" => {
                let db: i64 = parsed.path().trim_start_matches('/').parse().unwrap_or(0);
                let mut node = redis::RedisConnectionInfo::default().set_db(db);
                if let Some(user) = &user {
                    node = node.set_username(user);
                }
                if let Some(password) = &password {
                    node = node.set_password(password);
                }
                Ok(Self::Sentinel {
                    sentinels: hosts
                        .iter()
                        .map(|address| with_auth(address, &sentinel_auth.0, &sentinel_auth.1))
                        .collect::<RedisResult<_>>()?,
                    service: service
                        .ok_or_else(|| invalid("redis-sentinel:// needs ?sentinelServiceName="))?,
                    node,
                })
            }
            other => Err(invalid(&format!("unknown scheme {other}://"))),
        }
    }

    /// The address of the first server named (to say why it cannot be reached).
    pub(crate) fn first_address(&self) -> Option<String> {
        let info = match self {
            Self::Single(info) => info,
            Self::Cluster(nodes) => nodes.first()?,
            Self::Sentinel { sentinels, .. } => sentinels.first()?,
        };
        Some(info.addr().to_string())
    }

    /// Opens a command connection.
    pub(crate) async fn connect(&self) -> RedisResult<Conn> {
        Ok(Conn { link: self.open(None, COMMAND_TIMEOUT).await?, stats: Arc::default() })
    }

    /// Opens a dedicated RESP3 connection whose server pushes (subscribed messages, and the
    /// client's own word of a lost connection) go to `pushes`, with commands allowed up to
    /// `timeout` (a blocking read's block and more).
    pub(crate) async fn connect_pushing(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<PushInfo>,
        timeout: Duration,
    ) -> RedisResult<Conn> {
        Ok(Conn { link: self.open(Some(pushes), timeout + BLOCKING_MARGIN).await?, stats: Arc::default() })
    }

    async fn open(
        &self,
        pushes: Option<tokio::sync::mpsc::UnboundedSender<PushInfo>>,
        timeout: Duration,
    ) -> RedisResult<Link> {
        match self {
            Self::Single(info) => Ok(Link::Single(manager(info.clone(), pushes, timeout).await?)),
            Self::Cluster(nodes) => {
                let mut builder = ClusterClient::builder(nodes.clone())
                    .connection_timeout(COMMAND_TIMEOUT)
                    .response_timeout(timeout)
                    // A command for a failed shard fails within a few seconds (the caller
                    // announces or retries); the other shards are not held up by it.
                    .retries(3)
                    .min_retry_wait(100)
                    .max_retry_wait(1_000);
                if let Some(pushes) = pushes {
                    builder = builder.use_protocol(ProtocolVersion::RESP3).push_sender(pushes);
                }
                Ok(Link::Cluster(builder.build()?.get_async_connection().await?))
            }
            Self::Sentinel { sentinels, service, node } => {
                let mut sentinel = SentinelClient::build(
                    sentinels.clone(),
                    service.clone(),
                    Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node.clone())),
                    SentinelServerType::Master,
                )?;
                let master = sentinel.async_get_client().await?.get_connection_info().clone();
                let current = manager(master, pushes.clone(), timeout).await?;
                Ok(Link::Sentinel(Arc::new(SentinelLink {
                    sentinel: tokio::sync::Mutex::new(sentinel),
                    current: std::sync::RwLock::new(current),
                    pushes,
                    timeout,
                })))
            }
        }
    }
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

async fn manager(
    info: ConnectionInfo,
    pushes: Option<tokio::sync::mpsc::UnboundedSender<PushInfo>>,
    timeout: Duration,
) -> RedisResult<ConnectionManager> {
    let mut info = info;
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(timeout))
        // A few attempts, backing off to 2 s, then the command fails; the next command tries
        // again, so a restarted Redis heals by itself while a process that cannot reach it
        // at start says so within seconds.
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(4);
    if let Some(pushes) = pushes {
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        info = info.set_redis_settings(settings);
        config = config.set_push_sender(pushes).set_automatic_resubscription();
    }
    ConnectionManager::new_with_config(redis::Client::open(info)?, config).await
}

/// A master behind Sentinel: the connection to the master the sentinels named last.
struct SentinelLink {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: std::sync::RwLock<ConnectionManager>,
    pushes: Option<tokio::sync::mpsc::UnboundedSender<PushInfo>>,
    timeout: Duration,
}

impl SentinelLink {
    fn current(&self) -> ConnectionManager {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// `result`, after following a failover if it says the master is gone.
    async fn checked<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(error) = &result {
            self.follow_failover(error).await;
        }
        result
    }

    /// After a command met a dead or demoted master: asks the sentinels again and, if they
    /// name another master, sends the next commands there.
    async fn follow_failover(&self, error: &RedisError) {
        let moved = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if !moved {
            return;
        }
        let Ok(mut sentinel) = self.sentinel.try_lock() else { return };
        let Ok(client) = sentinel.async_get_client().await else { return };
        let master = client.get_connection_info().clone();
        if let Ok(manager) = manager(master, self.pushes.clone(), self.timeout).await {
            *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = manager;
            tracing::warn!(%error, "redis: asked the sentinels for the master again");
        }
    }
}

#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelLink>),
}

/// What a connection has seen, for the pool gauges.
#[derive(Default)]
struct Stats {
    in_flight: AtomicU64,
    down: AtomicBool,
}

/// One Redis connection (clones share it): run commands with redis-rs' `AsyncCommands`,
/// `Script::invoke_async` or `query_async`.
#[derive(Clone)]
pub(crate) struct Conn {
    link: Link,
    stats: Arc<Stats>,
}

impl Conn {
    /// Subscribes this (pushing) connection to `channel`.
    pub(crate) async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match &mut self.link {
            Link::Single(manager) => manager.subscribe(channel).await,
            Link::Cluster(cluster) => cluster.subscribe(channel).await,
            Link::Sentinel(link) => link.current().subscribe(channel).await,
        }
    }

    /// Whether the last command on it reached the server (a gauge, not a health check).
    pub(crate) fn is_connected(&self) -> bool {
        !self.stats.down.load(Ordering::Relaxed)
    }

    /// Commands sent on it and not yet answered.
    pub(crate) fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Ordering::Relaxed)
    }
}

/// One command in flight on a connection, counted until it is dropped: answered, failed, or
/// cancelled by its caller (a `select!`, a `try_join_all` that failed early).
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn start(stats: &'a Stats) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }

    /// Records whether the answer came from the server, and returns it.
    fn answered<T>(self, result: RedisResult<T>) -> RedisResult<T> {
        let down = result.as_ref().err().is_some_and(|error| {
            error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
        });
        self.0.down.store(down, Ordering::Relaxed);
        result
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let Self { link, stats } = self;
        Box::pin(async move {
            let flight = InFlight::start(stats);
            flight.answered(match link {
                Link::Single(manager) => manager.req_packed_command(cmd).await,
                Link::Cluster(cluster) => cluster.req_packed_command(cmd).await,
                Link::Sentinel(link) => link.checked(link.current().req_packed_command(cmd).await).await,
            })
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Self { link, stats } = self;
        Box::pin(async move {
            let flight = InFlight::start(stats);
            flight.answered(match link {
                Link::Single(manager) => manager.req_packed_commands(pipeline, offset, count).await,
                Link::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count).await,
                Link::Sentinel(link) => {
                    link.checked(link.current().req_packed_commands(pipeline, offset, count).await).await
                }
            })
        })
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(manager) => manager.get_db(),
            Link::Cluster(cluster) => cluster.get_db(),
            Link::Sentinel(link) => link.current().get_db(),
        }
    }
}

/// The command connections of a process, used in turn.
pub(crate) struct Pool {
    conns: Vec<Conn>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) async fn connect(topology: &Topology, size: usize) -> RedisResult<Self> {
        let mut conns = Vec::with_capacity(size.max(1));
        for _ in 0..size.max(1) {
            conns.push(topology.connect().await?);
        }
        Ok(Self { conns, next: AtomicUsize::new(0) })
    }

    /// The next connection (a clone: commands on it share its socket).
    pub(crate) fn next(&self) -> Conn {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[at].clone()
    }

    pub(crate) fn conns(&self) -> &[Conn] {
        &self.conns
    }
}

/// A reply's elements (nothing for a nil or a scalar).
pub(crate) fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(key, value)| [key, value]).collect(),
        _ => Vec::new(),
    }
}

/// A reply as text (`None` for nil or a non-string).
pub(crate) fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A reply as an integer (Lua numbers arrive as integers, counters stored as text parse).
pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) => Some(*number),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(text) => text.parse().ok(),
        _ => None,
    }
}
