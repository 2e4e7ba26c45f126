//! The handle to Postgres and Redis: [`Store`] with the pools, the Redis key names
//! ([`keys`]), the errors and the database's creation.
//!
//! Each area keeps its own queries beside its flows, in its `store` module
//! (`chat/store/`, `payment/store.rs`, …: `impl Store` blocks), and those modules and this
//! one are the only code that speaks SQL (sqlx) or Redis (redis-rs, through `store::redis`)
//! (`tidy::only_the_stores_speak_sql_or_redis`). The flows call them and never build a query.

mod calendar;
pub mod database;
mod error;
pub mod keys;
pub(crate) mod redis;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::settings::{DatabaseSettings, RedisSettings};
pub use error::StoreError;
pub use keys::Keys;

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connections to Postgres and Redis, shared by every part of a process: one `Arc` to
/// [`StoreParts`], so a clone (every request and job takes one) is one atomic increment.
#[derive(Clone)]
pub struct Store(std::sync::Arc<StoreParts>);

impl std::ops::Deref for Store {
    type Target = StoreParts;

    fn deref(&self) -> &StoreParts {
        &self.0
    }
}

/// What a [`Store`] holds; its fields are this module's (reach them through `Store`).
pub struct StoreParts {
    pub(crate) pg: PgPool,
    pub(crate) redis: redis::Pool,
    /// Kept to open dedicated connections (subscriptions, blocking reads).
    pub(crate) redis_topology: redis::Topology,
    pub(crate) keys: Keys,
    /// The access-token revocation list in memory (see `auth::store::revocation`).
    pub(crate) revocations: crate::auth::store::revocation::Revocations,
    /// Chat sends, stored in batches (see `chat::store::send_queue`).
    pub(crate) sends: crate::chat::store::send_queue::SendQueue,
}

/// Refuses a `database.time_zone` that is not an IANA zone name Postgres knows (a POSIX
/// string such as `UTC+7` would pass Postgres but means 7 hours west, and browsers refuse it).
async fn check_time_zone(database: &DatabaseSettings) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(database.url.expose()).await?;
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
        .bind(&database.time_zone)
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    if known {
        Ok(())
    } else {
        Err(StoreError::Encode(format!(
            "database.time_zone {:?} is not a time zone name Postgres knows (e.g. Asia/Jakarta)",
            database.time_zone
        )))
    }
}

/// A snapshot of this process's connection pools, for the pool gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub postgres_in_use: u64,
    pub postgres_idle: u64,
    pub postgres_max: u64,
    pub redis_connected: u64,
    pub redis_disconnected: u64,
    /// Commands waiting to be written to a Redis connection.
    pub redis_commands_queued: u64,
}

/// Messages of one pub/sub channel, on its own connection. After the connection is lost it
/// subscribes again on a new one (asking the sentinels or the cluster anew) and then says
/// [`Received::Gap`]: what was published meanwhile is gone.
pub struct Subscription {
    topology: redis::Topology,
    channel: String,
    /// `None` while it is reconnecting.
    live: Option<(redis::Conn, tokio::sync::mpsc::UnboundedReceiver<::redis::PushInfo>)>,
}

/// What [`Subscription::receive`] got.
pub enum Received {
    Text(String),
    /// Messages may have been lost (a reconnect): reload.
    Gap,
    Closed,
}

impl Subscription {
    async fn open(
        topology: &redis::Topology,
        channel: &str,
    ) -> Result<(redis::Conn, tokio::sync::mpsc::UnboundedReceiver<::redis::PushInfo>), StoreError> {
        let (pushes, received) = tokio::sync::mpsc::unbounded_channel();
        let mut conn = topology.connect_pushing(pushes, Duration::from_secs(2)).await?;
        conn.subscribe(channel).await?;
        Ok((conn, received))
    }

    /// The next message, or word that some may have been lost.
    pub async fn receive(&mut self) -> Received {
        loop {
            let Some((_, pushes)) = self.live.as_mut() else {
                // Reconnect, backing off to 2 s, until subscribed again.
                let mut wait = Duration::from_millis(100);
                loop {
                    match Self::open(&self.topology, &self.channel).await {
                        Ok(live) => {
                            self.live = Some(live);
                            return Received::Gap;
                        }
                        Err(error) => {
                            tracing::debug!(%error, channel = self.channel, "resubscribing failed; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            };
            let Some(push) = pushes.recv().await else { return Received::Closed };
            match push.kind {
                ::redis::PushKind::Message => {
                    if let Some(::redis::Value::BulkString(bytes)) = push.data.get(1) {
                        return Received::Text(String::from_utf8_lossy(bytes).into_owned());
                    }
                }
                ::redis::PushKind::Disconnection => self.live = None,
                _ => {}
            }
        }
    }

    /// Whether the connection is up (messages published now will arrive).
    pub fn is_connected(&self) -> bool {
        self.live.is_some()
    }

    pub async fn close(self) {}
}

/// A view kept fresh by [`Store::follow`]: changes arrive as messages on a channel, and a
/// periodic reload is the backstop for messages lost while the subscription was down.
pub trait Follower: Send + Sync {
    /// Applies one message of the channel.
    fn apply(&self, message: &str);
    /// Reloads the whole view; `subscribed` says whether messages are flowing.
    fn reload(&self, subscribed: bool) -> futures::future::BoxFuture<'_, Result<(), StoreError>>;
    /// The last `failures` reloads in a row failed (Redis unreadable).
    fn failing(&self, failures: u32);
}

impl Store {
    /// Keeps `follower` fresh from `channel` and a reload every `period` until `shutdown`.
    /// A new subscription is followed by a reload at once (changes published before it
    /// are in the reload).
    pub(crate) async fn follow(
        &self,
        channel: String,
        period: Duration,
        follower: &dyn Follower,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscription: Option<Subscription> = None;
        let mut failures = 0_u32;
        loop {
            if subscription.is_none() {
                match self.subscribe(channel.clone()).await {
                    Ok(subscribed) => {
                        subscription = Some(subscribed);
                        every.reset_immediately();
                    }
                    Err(error) => tracing::debug!(%error, channel, "subscription failed; retrying"),
                }
            }
            let message = async {
                match subscription.as_mut() {
                    Some(subscribed) => subscribed.receive().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                message = message => match message {
                    Received::Text(message) => follower.apply(&message),
                    // Reload now: what was published while we were not listening is in it.
                    Received::Gap => every.reset_immediately(),
                    Received::Closed => subscription = None,
                },
                _ = every.tick() => match follower.reload(subscription.as_ref().is_some_and(Subscription::is_connected)).await {
                    Ok(()) => failures = 0,
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, channel, "reload failed");
                        follower.failing(failures);
                    }
                },
            }
        }
    }

    /// Connects to both stores, creating the Postgres database first when it is missing.
    pub async fn connect(database: &DatabaseSettings, redis: &RedisSettings) -> Result<Self, StoreError> {
        let to_postgres = |error: StoreError| error.connecting_to_postgres(&database.url);
        database::ensure_exists(database.url.expose()).await.map_err(to_postgres)?;
        // Every session counts days in the marketplace's time zone (`now()::date`, a date
        // filter's `$1::date::timestamptz`). sqlx sends `TimeZone=UTC` at startup, so it is
        // set once per new connection; Postgres refuses an unknown zone, and so does connect.
        check_time_zone(database).await.map_err(to_postgres)?;
        let time_zone: std::sync::Arc<str> = database.time_zone.as_str().into();
        let pg = PgPoolOptions::new()
            .max_connections(database.max_connections)
            .acquire_timeout(Duration::from_millis(database.acquire_timeout_ms))
            .after_connect(move |connection, _| {
                let time_zone = time_zone.clone();
                Box::pin(async move {
                    sqlx::query("SELECT set_config('TimeZone', $1, false)")
                        .bind(&*time_zone)
                        .execute(connection)
                        .await
                        .map(drop)
                })
            })
            .connect(database.url.expose())
            .await
            .map_err(|error| to_postgres(error.into()))?;
        let to_redis = |error: StoreError| error.connecting_to_redis(&redis.url);
        let topology = redis::Topology::parse(redis.url.expose()).map_err(|error| to_redis(error.into()))?;
        let redis_pool = match redis::Pool::connect(&topology, redis.pool_size).await {
            Ok(pool) => pool,
            Err(error) if error.is_io_error() || error.is_connection_refusal() => {
                // Say what the first server did, in the operating system's words.
                return Err(to_redis(unreachable_redis(&topology).await.unwrap_or_else(|| error.into())));
            }
            Err(error) => return Err(to_redis(error.into())),
        };
        Ok(Self(std::sync::Arc::new(StoreParts {
            sends: crate::chat::store::send_queue::SendQueue::start(pg.clone()),
            pg,
            redis: redis_pool,
            redis_topology: topology,
            keys: Keys::new(&redis.prefix),
            revocations: Default::default(),
        })))
    }

    /// Applies pending migrations. Safe to call from several processes at once: sqlx takes
    /// an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pg).await?;
        Ok(())
    }

    /// The Postgres pool, for libraries that keep their own tables (the job backend).
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) fn pg_pool(&self) -> &PgPool {
        &self.pg
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Subscribes to the hub control channel on a dedicated connection (a subscribed
    /// connection cannot run other commands); it resubscribes by itself after a reconnect.
    pub(crate) async fn subscribe_hub_control(&self) -> Result<Subscription, StoreError> {
        self.subscribe(self.keys.hub_control_channel()).await
    }

    /// Subscribes to `channel` on a dedicated connection that resubscribes after a reconnect.
    pub(crate) async fn subscribe(&self, channel: String) -> Result<Subscription, StoreError> {
        let live = Subscription::open(&self.redis_topology, &channel).await?;
        Ok(Subscription { topology: self.redis_topology.clone(), channel, live: Some(live) })
    }

    /// Answers when Postgres runs a query.
    pub(crate) async fn check_postgres(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pg).await?;
        Ok(())
    }

    /// Answers when Redis answers PING.
    pub(crate) async fn check_redis(&self) -> Result<(), StoreError> {
        let _: String = ::redis::cmd("PING").query_async(&mut self.redis.next()).await?;
        Ok(())
    }

    /// How busy this process's pools are right now (no I/O: the pools' own counters).
    pub(crate) fn pool_usage(&self) -> PoolUsage {
        let conns = self.redis.conns();
        let idle = self.pg.num_idle();
        PoolUsage {
            postgres_in_use: u64::from(self.pg.size()).saturating_sub(idle as u64),
            postgres_idle: idle as u64,
            postgres_max: u64::from(self.pg.options().get_max_connections()),
            redis_connected: conns.iter().filter(|conn| conn.is_connected()).count() as u64,
            redis_disconnected: conns.iter().filter(|conn| !conn.is_connected()).count() as u64,
            redis_commands_queued: conns.iter().map(redis::Conn::in_flight).sum(),
        }
    }

    /// Closes both pools; in-flight queries finish first.
    pub async fn close(&self) {
        self.pg.close().await;
    }
}

/// Why the first server named cannot be reached, as the operating system says it
/// (`Connection refused (os error 111)`), or `None` when it can be.
async fn unreachable_redis(topology: &redis::Topology) -> Option<StoreError> {
    let address = topology.first_address()?;
    let reached =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&address)).await;
    let reason = match reached {
        Ok(Ok(_)) => return None,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    Some(StoreError::Unreachable(format!("{address}: {reason}")))
}
