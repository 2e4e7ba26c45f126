//! Event routing in Redis.
//!
//! - `{p}:ev:{u:<user>}`: the user's stream, bounded (`XADD MAXLEN ~`) and expiring; every
//!   durable event gets its id here, and resuming reads from here.
//! - `{p}:route:{u:<user>}`: the hub instances holding the user's sockets.
//! - `{p}:hub:{i:<instance>}:inbox`: each hub instance's inbox stream, read with a blocking
//!   `XREAD` on a connection of its own.
//!
//! Publishing runs one script in the user's slot (append + expire + read the route, so an
//! instance that registers a route either sees the event in the stream or gets it in its
//! inbox), then appends to each routed instance's inbox (`NOMKSTREAM`: a dead instance's
//! expired inbox is not recreated). An inbox entry may name one socket of its instance
//! (`x`) that skips it: the socket whose command caused the event, and names the event's
//! kind (`k`) so the hub labels its metrics without parsing the event.

use std::sync::LazyLock;

use redis::streams::StreamMaxlen;
use redis::{AsyncCommands, Script, Value};

use crate::event::{Encoded, EventKind};
use crate::ids::UserId;
use crate::store::redis::{array, text};
use crate::store::{Store, StoreError};

static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return {id, redis.call('SMEMBERS', KEYS[2])}
        ",
    )
});

/// Creates a hub instance's inbox when it does not exist; returns the opening entry's id,
/// or nil when the inbox was there.
static REOPEN_INBOX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 1 then return false end
        local id = redis.call('XADD', KEYS[1], '*', 'open', '1')
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return id
        ",
    )
});

/// Reads what a resuming client missed, or says the gap is gone. Atomic, so a trim cannot
/// slip between the check and the read.
static RESUME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local function parse(id)
            local ms, seq = string.match(id, '^(%d+)-(%d+)$')
            return tonumber(ms), tonumber(seq)
        end
        local function before(a, b)
            local a_ms, a_seq = parse(a)
            local b_ms, b_seq = parse(b)
            return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
        end
        if redis.call('EXISTS', KEYS[1]) == 0 then return {'resync'} end
        local info = redis.call('XINFO', 'STREAM', KEYS[1])
        local max_deleted, first, last_generated = nil, nil, nil
        for i = 1, #info, 2 do
            if info[i] == 'max-deleted-entry-id' then max_deleted = info[i + 1] end
            if info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
            if info[i] == 'last-generated-id' then last_generated = info[i + 1] end
        end
        -- An id this stream never generated (another user's, another deployment's) would
        -- hide every live event up to it: start over instead.
        if last_generated and before(last_generated, ARGV[1]) then return {'resync'} end
        -- XDEL is recorded in max-deleted-entry-id; trimming (MAXLEN) and expiry are not, but
        -- they only remove the oldest entries: an id older than the first kept entry may have
        -- lost events after it. Resyncing then is the safe answer (at worst needless).
        if max_deleted and before(ARGV[1], max_deleted) then return {'resync'} end
        if first and before(ARGV[1], first) then return {'resync'} end
        return {'ok', redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
        ",
    )
});

/// One socket of one hub instance: the socket a command came in on. An event the command
/// caused skips that socket when the command's answer carries it already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketRef {
    /// The hub instance's id (its inbox's name).
    pub instance: std::sync::Arc<str>,
    /// The socket's number within the instance.
    pub socket: u64,
}

/// One entry of an instance's inbox: an event for one or more of its users.
#[derive(Clone, Debug)]
pub struct InboxEntry {
    /// The inbox's own entry id (where to continue reading).
    pub inbox_id: String,
    /// Each user it is for, with the event's id in that user's stream (`None` for
    /// ephemeral events such as typing). Empty for an entry to skip.
    pub recipients: Vec<(UserId, Option<String>)>,
    /// The event's kind, as its producer named it (`None` from a producer older than the
    /// field, or one that named a kind this build does not know).
    pub kind: Option<EventKind>,
    /// The event as JSON (`{"type", "data"}`).
    pub event: String,
    /// When it was published, unix milliseconds (delivery latency).
    pub published_ms: u64,
    /// The socket here that does not get it (it sent the command that caused it).
    pub except_socket: Option<u64>,
}

/// A user's stream entry: the user, the event id and the instances routed to.
type Appended = (UserId, String, Vec<String>);

/// A fan-out entry's recipients: `<user> <event id>` pairs joined by `,`.
fn parse_recipients(list: &str) -> Option<Vec<(UserId, Option<String>)>> {
    list.split(',')
        .map(|pair| {
            let (user, id) = pair.split_once(' ')?;
            Some((user.parse().ok()?, Some(id.to_owned())))
        })
        .collect()
}

/// What a resuming client gets.
#[derive(Debug)]
pub enum Backlog {
    /// The events after the client's last id, oldest first: `(id, event JSON)`.
    Events(Vec<(String, String)>),
    /// Some events in the gap are no longer kept: the app must refetch by REST.
    ResyncRequired,
}

impl Store {
    pub(crate) fn user_stream_key(&self, user: UserId) -> String {
        format!("{}:ev:{{u:{user}}}", self.keys.prefix())
    }

    pub(crate) fn user_route_key(&self, user: UserId) -> String {
        format!("{}:route:{{u:{user}}}", self.keys.prefix())
    }

    pub(crate) fn inbox_key(&self, instance: &str) -> String {
        format!("{}:hub:{{i:{instance}}}:inbox", self.keys.prefix())
    }

    pub(crate) fn instance_users_key(&self, instance: &str) -> String {
        format!("{}:hub:{{i:{instance}}}:users", self.keys.prefix())
    }

    /// Appends a durable event to the user's stream and forwards it to the instances that
    /// hold the user's sockets, except to the socket `except`. Returns the event's stream id
    /// and the instances routed to.
    pub(crate) async fn publish_event(
        &self,
        user: UserId,
        event: &Encoded,
        maxlen: u64,
        ttl_ms: u64,
        except: Option<&SocketRef>,
    ) -> Result<(String, Vec<String>), StoreError> {
        let (id, instances) = self.append_to_stream(user, event, maxlen, ttl_ms).await?;
        self.forward(user, Some(&id), event, &instances, except).await?;
        Ok((id, instances))
    }

    /// Appends `event` to the user's stream (bounded, expiring) and reads the user's route
    /// in the same step: the event's id and the instances holding the user.
    async fn append_to_stream(
        &self,
        user: UserId,
        event: &Encoded,
        maxlen: u64,
        ttl_ms: u64,
    ) -> Result<(String, Vec<String>), StoreError> {
        Ok(PUBLISH
            .key(self.user_stream_key(user))
            .key(self.user_route_key(user))
            .arg(maxlen)
            .arg(&event.json)
            .arg(ttl_ms)
            .invoke_async(&mut self.redis.next())
            .await?)
    }

    /// Publishes the same durable event to many users: each user's stream gets its entry
    /// (one script per user, run concurrently), then each routed hub instance gets one
    /// fan-out inbox entry naming all its recipients. Returns, per user, the event id and
    /// the instances routed to, and the users whose stream could not be written.
    pub(crate) async fn publish_event_to_many(
        &self,
        users: &[UserId],
        event: &Encoded,
        maxlen: u64,
        ttl_ms: u64,
    ) -> Result<(Vec<Appended>, Vec<UserId>), StoreError> {
        use futures::StreamExt;
        let appended: Vec<Result<Appended, (UserId, StoreError)>> = futures::stream::iter(users.to_vec())
            .map(|user| async move {
                let (id, instances) = self
                    .append_to_stream(user, event, maxlen, ttl_ms)
                    .await
                    .map_err(|error| (user, error))?;
                Ok((user, id, instances))
            })
            .buffer_unordered(512)
            .collect()
            .await;
        let mut by_instance: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        let mut published = Vec::with_capacity(appended.len());
        let mut failed = Vec::new();
        for result in appended {
            // One user's stream failing must not cost the others their event.
            let (user, id, instances) = match result {
                Ok(appended) => appended,
                Err((user, error)) => {
                    tracing::warn!(%error, "publishing to one user of a fan-out failed");
                    failed.push(user);
                    continue;
                }
            };
            for instance in &instances {
                by_instance.entry(instance.clone()).or_default().push(format!("{user} {id}"));
            }
            published.push((user, id, instances));
        }
        if by_instance.is_empty() {
            return Ok((published, failed));
        }
        let now_ms = crate::clock::now_ms().to_string();
        // One XADD per instance, concurrently on one connection (a pipeline cannot span the
        // slots of several inboxes on a cluster).
        let appends = by_instance.into_iter().map(|(instance, recipients)| {
            let list = recipients.join(",");
            let fields = [
                ("m", list),
                ("k", event.kind.as_str().to_owned()),
                ("e", event.json.clone()),
                ("t", now_ms.clone()),
            ];
            self.append_to_inbox(instance, fields.to_vec())
        });
        futures::future::try_join_all(appends).await?;
        Ok((published, failed))
    }

    /// Appends one entry to an instance's inbox, capped, never creating it (`NOMKSTREAM`: a
    /// dead instance's expired inbox is not recreated).
    async fn append_to_inbox(
        &self,
        instance: String,
        fields: Vec<(&'static str, String)>,
    ) -> Result<(), StoreError> {
        let mut command = redis::cmd("XADD");
        command.arg(self.inbox_key(&instance)).arg("NOMKSTREAM").arg(StreamMaxlen::Approx(100_000)).arg("*");
        for (name, value) in fields {
            command.arg(name).arg(value);
        }
        let _: Option<String> = command.query_async(&mut self.redis.next()).await?;
        Ok(())
    }

    /// Forwards an ephemeral event (never stored, never resumed) to the user's instances.
    pub(crate) async fn publish_ephemeral(&self, user: UserId, event: &Encoded) -> Result<(), StoreError> {
        let instances: Vec<String> = self.redis.next().smembers(self.user_route_key(user)).await?;
        self.forward(user, None, event, &instances, None).await
    }

    /// Appends `event` for `user` (with its id in the user's stream, if durable) to each
    /// instance's inbox; the entry in the inbox of the socket `except` names that socket
    /// (`x`), so the instance skips it.
    async fn forward(
        &self,
        user: UserId,
        event_id: Option<&str>,
        event: &Encoded,
        instances: &[String],
        except: Option<&SocketRef>,
    ) -> Result<(), StoreError> {
        if instances.is_empty() {
            return Ok(());
        }
        let now_ms = crate::clock::now_ms().to_string();
        let user = user.to_string();
        let except_socket = except.map(|except| (except.instance.as_ref(), except.socket.to_string()));
        let appends = instances.iter().map(|instance| {
            let mut fields = vec![
                ("u", user.clone()),
                ("i", event_id.unwrap_or("").to_owned()),
                ("k", event.kind.as_str().to_owned()),
                ("e", event.json.clone()),
                ("t", now_ms.clone()),
            ];
            if let Some((_, socket)) = except_socket.as_ref().filter(|(on, _)| *on == instance.as_str()) {
                fields.push(("x", socket.clone()));
            }
            self.append_to_inbox(instance.clone(), fields)
        });
        futures::future::try_join_all(appends).await?;
        Ok(())
    }

    /// The events of `user` after `last_id`, at most `limit`, or `ResyncRequired`.
    pub(crate) async fn read_backlog(
        &self,
        user: UserId,
        last_id: &str,
        limit: u64,
    ) -> Result<Backlog, StoreError> {
        let reply: Value = RESUME
            .key(self.user_stream_key(user))
            .arg(last_id)
            .arg(limit)
            .invoke_async(&mut self.redis.next())
            .await?;
        let mut parts = array(reply).into_iter();
        let status = parts.next().and_then(text).unwrap_or_default();
        if status != "ok" {
            return Ok(Backlog::ResyncRequired);
        }
        let entries = parts.next().map(array).unwrap_or_default();
        let events = entries.into_iter().filter_map(|entry| {
            let mut entry = array(entry).into_iter();
            let id = text(entry.next()?)?;
            let fields: Vec<Option<String>> = array(entry.next()?).into_iter().map(text).collect();
            let event = fields.chunks(2).find(|pair| pair[0].as_deref() == Some("e"))?.get(1)?.clone()?;
            Some((id, event))
        });
        Ok(Backlog::Events(events.collect()))
    }

    /// Creates the inbox of a hub instance (so forwards, which never create it, land) and
    /// keeps it alive for `ttl_ms`. Returns the id of its opening entry: on an inbox that
    /// did not exist, everything forwarded later comes after it.
    pub(crate) async fn open_inbox(&self, instance: &str, ttl_ms: u64) -> Result<String, StoreError> {
        let mut conn = self.redis.next();
        let key = self.inbox_key(instance);
        let opened: String = conn.xadd(&key, "*", &[("open", "1")]).await?;
        let _: () = conn.pexpire(&key, i64::try_from(ttl_ms).unwrap_or(i64::MAX)).await?;
        Ok(opened)
    }

    /// Opens the instance's inbox again if it is gone (Redis lost its data), in one step so
    /// nothing can land in it first. Returns the opening entry's id when it was gone: what
    /// is forwarded from then on comes after it.
    pub(crate) async fn reopen_inbox(
        &self,
        instance: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let reply: Value = REOPEN_INBOX
            .key(self.inbox_key(instance))
            .arg(ttl_ms)
            .invoke_async(&mut self.redis.next())
            .await?;
        Ok(text(reply))
    }

    /// A Redis connection of its own, for blocking reads that would stall the pool.
    pub(crate) async fn dedicated_redis(&self) -> Result<InboxReader, StoreError> {
        let (pushes, received) = tokio::sync::mpsc::unbounded_channel();
        let conn = self.redis_topology.connect_pushing(pushes, std::time::Duration::from_secs(5)).await?;
        Ok(InboxReader { conn, store: self.clone(), pushes: received })
    }
}

/// The fields of one inbox entry, by name (`m`, `u`, `i`, `k`, `e`, `t`, `x`).
#[derive(Default)]
struct InboxFields {
    recipients: Option<String>,
    user: Option<String>,
    event_id: Option<String>,
    kind: Option<String>,
    event: Option<String>,
    published_ms: Option<String>,
    except_socket: Option<String>,
}

impl InboxFields {
    fn read(flat: Vec<Value>) -> Self {
        let mut fields = Self::default();
        let mut flat = flat.into_iter();
        while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
            let slot = match &name {
                Value::BulkString(name) => match name.as_slice() {
                    b"m" => &mut fields.recipients,
                    b"u" => &mut fields.user,
                    b"i" => &mut fields.event_id,
                    b"k" => &mut fields.kind,
                    b"e" => &mut fields.event,
                    b"t" => &mut fields.published_ms,
                    b"x" => &mut fields.except_socket,
                    _ => continue,
                },
                _ => continue,
            };
            *slot = text(value);
        }
        fields
    }

    /// The entry, or one to skip (the opening marker, or garbage) that still moves the
    /// reader past it.
    fn entry(self, inbox_id: String) -> InboxEntry {
        let Self { recipients, user, event_id, kind, event, published_ms, except_socket } = self;
        let recipients = match recipients {
            Some(list) => parse_recipients(&list),
            None => {
                user.and_then(|user| Some(vec![(user.parse().ok()?, event_id.filter(|id| !id.is_empty()))]))
            }
        };
        let published_ms = published_ms.and_then(|ms| ms.parse().ok());
        match (recipients, event, published_ms) {
            (Some(recipients), Some(event), Some(published_ms)) => InboxEntry {
                inbox_id,
                recipients,
                kind: kind.and_then(|kind| kind.parse().ok()),
                event,
                published_ms,
                except_socket: except_socket.and_then(|socket| socket.parse().ok()),
            },
            _ => InboxEntry {
                inbox_id,
                recipients: Vec::new(),
                kind: None,
                event: String::new(),
                published_ms: 0,
                except_socket: None,
            },
        }
    }
}

/// Reads one instance's inbox with blocking reads on a dedicated connection.
pub struct InboxReader {
    conn: crate::store::redis::Conn,
    store: Store,
    pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
}

impl InboxReader {
    /// Whether the connection was lost (to any node) since the last call: a Redis restart, a
    /// Cluster failover or a cut connection, across which entries may have been lost.
    pub fn reconnected(&mut self) -> bool {
        let mut reconnected = false;
        while let Ok(push) = self.pushes.try_recv() {
            reconnected |= push.kind == redis::PushKind::Disconnection;
        }
        reconnected
    }

    /// Waits up to `block_ms` for entries after `after` (an inbox id; `0-0` from the start).
    pub async fn read(
        &self,
        instance: &str,
        after: &str,
        block_ms: u64,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let key = self.store.inbox_key(instance);
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1_000)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&key)
            .arg(after)
            .query_async(&mut self.conn.clone())
            .await?;
        // RESP3: {stream: [[id, [field, value, ...]], ...]}; RESP2: [[stream, [...]]]; nil
        // on timeout.
        let streams: Vec<Value> = match reply {
            Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
            other => array(other).into_iter().filter_map(|stream| array(stream).into_iter().nth(1)).collect(),
        };
        let mut entries = Vec::new();
        for entry in streams.into_iter().flat_map(array) {
            let mut entry = array(entry).into_iter();
            let Some(inbox_id) = entry.next().and_then(text) else { continue };
            let fields = InboxFields::read(entry.next().map(array).unwrap_or_default());
            entries.push(fields.entry(inbox_id));
        }
        Ok(entries)
    }
}
