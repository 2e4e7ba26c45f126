//! Presence and availability in Redis, all under the hash tag `{avail}` so one script sees
//! every key it changes (one Redis Cluster slot):
//!
//! - `{p}:{avail}:m:<mitra>` hash: `status` (the mitra's own switch, 0/1), `active` (active
//!   sessions)
//! - `{p}:{avail}:mc:<mitra>` set: hub instances holding the mitra's sockets
//! - `{p}:{avail}:im:<instance>` set: mitras an instance holds (to clean up a dead instance)
//! - `{p}:{avail}:instances` sorted set: hub instance → last heartbeat (unix ms)
//! - `{p}:{avail}:online` set: mitras whose status is online and who hold a live socket
//! - `{p}:{avail}:available` set: online mitras below the cap — what the availability poll counts
//! - `{p}:{avail}:cap` the capacity cap; `{p}:{avail}:known` every mitra with a hash
//! - `{p}:{avail}:seeded`: set once the record's part (switches, session counts, cap) was
//!   copied from Postgres into this Redis; its absence means Redis lost its data (or never
//!   had it), and `{p}:{avail}:rebuilding` is the claim of the process copying it now
//!
//! Every transition runs [`AVAILABILITY`], which changes one input and recomputes the mitra's
//! membership of `online` and `available` in the same step: no read-modify-write from Rust.
//! Each call declares in KEYS the shared keys and those of the mitra or instance it names;
//! the keys it finds inside (a retired instance's mitras, every known mitra when the cap
//! changes, the mitras a copy restores) are built from the same prefix, in the same slot.
//! Customers' routes (`{p}:route:{u:<id>}`, see `broker::store`) are per user, outside `{avail}`.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script, Value};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::ids::{MitraId, UserId};
use crate::store::redis::{array, int, text};
use crate::store::{Store, StoreError};

/// The keys every [`AVAILABILITY`] call declares first, after the `{avail}` prefix, in the
/// order the script names them.
const SHARED_KEYS: [&str; 9] =
    ["online", "available", "cap", "known", "instances", "version", "epoch", "seeded", "rebuilding"];

static AVAILABILITY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        -- KEYS: the shared keys (see SHARED_KEYS), then the keys of the mitra or instance the
        -- operation names. Keys found only inside (the members of a set) are built from the
        -- same prefix, in the same slot.
        local online_key, available_key, cap_key, known_key, instances_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
        local version_key, epoch_key, seeded_key, rebuilding_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
        local p = string.sub(online_key, 1, #online_key - #'online')
        local op, a, b = ARGV[1], ARGV[2], ARGV[3]
        local now, lease, default_cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
        -- The counting epoch, created when missing: a Redis that lost its data starts a new
        -- one, so no view takes its counts for newer versions of the old epoch.
        local function epoch()
            local current = redis.call('GET', epoch_key)
            if not current then
                local now = redis.call('TIME')
                current = now[1] .. string.format('%06d', tonumber(now[2]))
                redis.call('SET', epoch_key, current)
            end
            return current
        end
        local function recompute(m)
            local h = p .. 'm:' .. m
            local status = redis.call('HGET', h, 'status') == '1'
            local active = tonumber(redis.call('HGET', h, 'active') or '0')
            local connected = redis.call('SCARD', p .. 'mc:' .. m) > 0
            local cap = tonumber(redis.call('GET', cap_key) or default_cap)
            local online = status and connected
            local available = online and active < cap
            if online then redis.call('SADD', online_key, m) else redis.call('SREM', online_key, m) end
            local changed
            if available then
                changed = redis.call('SADD', available_key, m)
            else
                changed = redis.call('SREM', available_key, m)
            end
            if changed == 1 then
                -- Tell the processes' in-memory views: epoch, version, then the new count. A
                -- new epoch (Redis lost its data) tells them to drop what they hold.
                local version = redis.call('INCR', version_key)
                local count = redis.call('SCARD', available_key)
                redis.call('PUBLISH', p .. 'count', epoch() .. ' ' .. version .. ' ' .. count)
            end
            return {status and 1 or 0, connected and 1 or 0, active, online and 1 or 0, available and 1 or 0}
        end
        local function retire(instance)
            for _, m in ipairs(redis.call('SMEMBERS', p .. 'im:' .. instance)) do
                redis.call('SREM', p .. 'mc:' .. m, instance)
                recompute(m)
            end
            redis.call('DEL', p .. 'im:' .. instance)
            redis.call('ZREM', instances_key, instance)
        end
        if op == 'status' then
            redis.call('HSET', KEYS[10], 'status', b)
            redis.call('SADD', known_key, a)
            return recompute(a)
        elseif op == 'connect' then
            redis.call('SADD', KEYS[11], b)
            redis.call('SADD', KEYS[12], a)
            redis.call('SADD', known_key, a)
            return recompute(a)
        elseif op == 'disconnect' then
            redis.call('SREM', KEYS[11], b)
            redis.call('SREM', KEYS[12], a)
            return recompute(a)
        elseif op == 'sessions' then
            local active = redis.call('HINCRBY', KEYS[10], 'active', b)
            if active < 0 then redis.call('HSET', KEYS[10], 'active', 0) end
            redis.call('SADD', known_key, a)
            return recompute(a)
        elseif op == 'set_sessions' then
            redis.call('HSET', KEYS[10], 'active', b)
            redis.call('SADD', known_key, a)
            return recompute(a)
        elseif op == 'cap' then
            redis.call('SET', cap_key, a)
            for _, m in ipairs(redis.call('SMEMBERS', known_key)) do recompute(m) end
            return {}
        elseif op == 'heartbeat' then
            redis.call('ZADD', instances_key, now, a)
            return {}
        elseif op == 'retire' then
            retire(a)
            return {}
        elseif op == 'reap' then
            -- Also says whether the record's part must be copied from Postgres: 0 no, 1 yes
            -- and the caller `a` holds the claim for the next `b` ms (taken or renewed: a
            -- claimant whose copy failed tries again), 2 another process holds it.
            local seed = 0
            if redis.call('EXISTS', seeded_key) == 0 then
                local holder = redis.call('GET', rebuilding_key)
                if not holder or holder == a then
                    redis.call('SET', rebuilding_key, a, 'PX', b)
                    seed = 1
                else
                    seed = 2
                end
            end
            local dead = redis.call('ZRANGEBYSCORE', instances_key, '-inf', now - lease)
            for _, instance in ipairs(dead) do retire(instance) end
            return {seed, dead}
        elseif op == 'restore' then
            -- Copies the record (ARGV[7..]: mitra, switch, live sessions) into the counters.
            -- The switch is only set where none is: one set since Redis came back is newer
            -- than the record read before it. Returns the mitras who became available, with
            -- their session counts.
            local out = {}
            for i = 7, #ARGV, 3 do
                local m = ARGV[i]
                redis.call('HSETNX', p .. 'm:' .. m, 'status', ARGV[i + 1])
                redis.call('HSET', p .. 'm:' .. m, 'active', ARGV[i + 2])
                redis.call('SADD', known_key, m)
                local was = redis.call('SISMEMBER', available_key, m)
                local state = recompute(m)
                if was == 0 and state[5] == 1 then
                    out[#out + 1] = m
                    out[#out + 1] = state[3]
                end
            end
            return out
        elseif op == 'seeded' then
            -- Only while the claim holds: a claim that vanished means this Redis lost its data
            -- again during the copy (or the claim ran out and another process took over).
            if redis.call('GET', rebuilding_key) ~= a then return 0 end
            redis.call('SET', seeded_key, now)
            redis.call('DEL', rebuilding_key)
            return 1
        elseif op == 'state' then
            return recompute(a)
        elseif op == 'count' then
            return {epoch(), redis.call('GET', version_key) or '0', redis.call('SCARD', available_key)}
        elseif op == 'snapshot' then
            local out = {}
            for _, m in ipairs(redis.call('SMEMBERS', available_key)) do
                out[#out + 1] = m
                out[#out + 1] = tonumber(redis.call('HGET', p .. 'm:' .. m, 'active') or '0')
            end
            return out
        end
        return redis.error_reply('unknown op ' .. op)
        ",
    )
});

/// A mitra's presence as the counters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MitraPresence {
    /// The mitra's own switch.
    pub status_online: bool,
    /// At least one live socket on a live hub instance.
    pub connected: bool,
    pub active_sessions: i64,
    /// Status online and connected.
    pub online: bool,
    /// Online and below the cap: offered new chat requests.
    pub available: bool,
}

/// A mitra's presence as Postgres records it (rebuilding Redis after it lost its data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MitraRecord {
    pub id: MitraId,
    /// The switch, `mitras.status_online` (false for a deactivated mitra).
    pub status_online: bool,
    /// Sessions not completed.
    pub live_sessions: i64,
}

/// Whether the counters' record part must be copied from Postgres.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seeding {
    /// It is in Redis.
    Done,
    /// It is missing and the caller now holds the claim to copy it.
    Claimed,
    /// It is missing and another process is copying it.
    Elsewhere,
}

/// What a reap did and found.
#[derive(Clone, Debug)]
pub struct Reaped {
    /// The instances retired.
    pub dead: Vec<String>,
    pub seeding: Seeding,
}

impl Store {
    fn avail_prefix(&self) -> String {
        format!("{}:{{avail}}:", self.keys.prefix())
    }

    async fn availability(
        &self,
        op: &str,
        a: &str,
        b: &str,
        lease_ms: u64,
        default_cap: i64,
    ) -> Result<Value, StoreError> {
        self.availability_with(op, a, b, lease_ms, default_cap, Vec::new()).await
    }

    /// [`availability`](Self::availability) with the operation's list after the fixed arguments.
    async fn availability_with(
        &self,
        op: &str,
        a: &str,
        b: &str,
        lease_ms: u64,
        default_cap: i64,
        list: Vec<String>,
    ) -> Result<Value, StoreError> {
        let prefix = self.avail_prefix();
        let mut keys: Vec<String> = SHARED_KEYS.iter().map(|key| format!("{prefix}{key}")).collect();
        // The keys of the mitra (`a`) or hub instance (`a`, or `b` for a connection) named.
        match op {
            "status" | "sessions" | "set_sessions" | "state" => {
                keys.extend([format!("{prefix}m:{a}"), format!("{prefix}mc:{a}")]);
            }
            "connect" | "disconnect" => {
                keys.extend([format!("{prefix}m:{a}"), format!("{prefix}mc:{a}"), format!("{prefix}im:{b}")]);
            }
            "retire" => keys.push(format!("{prefix}im:{a}")),
            _ => {}
        }
        let mut args = vec![
            op.to_owned(),
            a.to_owned(),
            b.to_owned(),
            now_ms().to_string(),
            lease_ms.to_string(),
            default_cap.to_string(),
        ];
        args.extend(list);
        let mut invocation = AVAILABILITY.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        Ok(invocation.invoke_async(&mut self.redis.next()).await?)
    }

    async fn mitra_op(
        &self,
        op: &str,
        mitra: MitraId,
        arg: &str,
        default_cap: i64,
    ) -> Result<MitraPresence, StoreError> {
        let reply = self.availability(op, &mitra.to_string(), arg, 0, default_cap).await?;
        let values: Vec<i64> = array(reply).iter().filter_map(int).collect();
        let [status, connected, active, online, available] = values[..] else {
            return Err(StoreError::Encode("availability reply".into()));
        };
        Ok(MitraPresence {
            status_online: status == 1,
            connected: connected == 1,
            active_sessions: active,
            online: online == 1,
            available: available == 1,
        })
    }

    /// Every available mitra with their active session count, read in one step.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn available_mitras(&self) -> Result<Vec<(MitraId, i64)>, StoreError> {
        let reply = self.availability("snapshot", "", "", 0, 0).await?;
        let values = array(reply);
        Ok(values
            .chunks(2)
            .filter_map(|pair| {
                let id = MitraId(Uuid::parse_str(&text(pair.first()?.clone())?).ok()?);
                Some((id, int(pair.get(1)?)?))
            })
            .collect())
    }

    /// Records the mitra's own online switch.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn set_mitra_status(
        &self,
        mitra: MitraId,
        online: bool,
        cap: i64,
    ) -> Result<MitraPresence, StoreError> {
        self.mitra_op("status", mitra, if online { "1" } else { "0" }, cap).await
    }

    /// Records that `instance` holds at least one socket of the mitra.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn mitra_connected(
        &self,
        mitra: MitraId,
        instance: &str,
        cap: i64,
    ) -> Result<MitraPresence, StoreError> {
        self.mitra_op("connect", mitra, instance, cap).await
    }

    /// Records that `instance` holds no socket of the mitra any more.
    pub(crate) async fn mitra_disconnected(
        &self,
        mitra: MitraId,
        instance: &str,
        cap: i64,
    ) -> Result<MitraPresence, StoreError> {
        self.mitra_op("disconnect", mitra, instance, cap).await
    }

    /// Moves the mitra's active-session count by `delta` (session start +1, end -1).
    pub(crate) async fn add_mitra_sessions(
        &self,
        mitra: MitraId,
        delta: i64,
        cap: i64,
    ) -> Result<MitraPresence, StoreError> {
        self.mitra_op("sessions", mitra, &delta.to_string(), cap).await
    }

    /// Sets the mitra's active-session count (rebuilding from Postgres).
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn set_mitra_sessions(
        &self,
        mitra: MitraId,
        active: i64,
        cap: i64,
    ) -> Result<MitraPresence, StoreError> {
        self.mitra_op("set_sessions", mitra, &active.to_string(), cap).await
    }

    /// The mitra's presence, recomputed.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn mitra_presence(&self, mitra: MitraId, cap: i64) -> Result<MitraPresence, StoreError> {
        self.mitra_op("state", mitra, "", cap).await
    }

    /// Sets the capacity cap and recomputes every mitra against it.
    pub(crate) async fn set_capacity_cap(&self, cap: i64) -> Result<(), StoreError> {
        self.availability("cap", &cap.to_string(), "", 0, cap).await?;
        Ok(())
    }

    /// Mitras online, and mitras online and below the cap: `(online, available)`.
    pub(crate) async fn mitra_counts(&self) -> Result<(u64, u64), StoreError> {
        let (mut first, mut second) = (self.redis.next(), self.redis.next());
        let prefix = self.avail_prefix();
        let (online, available) = tokio::try_join!(
            first.scard::<_, u64>(format!("{prefix}online")),
            second.scard::<_, u64>(format!("{prefix}available")),
        )?;
        Ok((online, available))
    }

    /// Mitras online and below the cap: the availability poll's answer. One SCARD.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn available_mitra_count(&self) -> Result<u64, StoreError> {
        Ok(self.redis.next().scard(format!("{}available", self.avail_prefix())).await?)
    }

    /// The available count with its epoch and version: `(epoch, version, count)`.
    pub(crate) async fn available_count_versioned(&self) -> Result<(u64, u64, u64), StoreError> {
        let reply = self.availability("count", "", "", 0, 0).await?;
        let values: Vec<u64> = array(reply).iter().filter_map(|v| u64::try_from(int(v)?).ok()).collect();
        match values[..] {
            [epoch, version, count] => Ok((epoch, version, count)),
            _ => Err(StoreError::Encode("availability count reply".into())),
        }
    }

    /// The channel of available-count changes, as `<epoch> <version> <count>` messages.
    pub(crate) fn availability_channel(&self) -> String {
        format!("{}count", self.avail_prefix())
    }

    /// Renews a hub instance's lease and keeps its inbox and user index alive.
    pub(crate) async fn instance_heartbeat(&self, instance: &str, lease_ms: u64) -> Result<(), StoreError> {
        self.availability("heartbeat", instance, "", lease_ms, 0).await?;
        let keep_ms = i64::try_from(lease_ms.saturating_mul(6)).unwrap_or(i64::MAX);
        let mut conn = self.redis.next();
        let _: () = conn.pexpire(self.inbox_key(instance), keep_ms).await?;
        let _: () = conn.pexpire(self.instance_users_key(instance), keep_ms).await?;
        Ok(())
    }

    /// Takes an instance out of presence at once (graceful shutdown), as a dead one would be.
    pub(crate) async fn retire_instance(&self, instance: &str) -> Result<(), StoreError> {
        self.availability("retire", instance, "", 0, 0).await?;
        self.forget_instance_routes(instance).await
    }

    /// Retires every instance whose lease is older than `lease_ms`, and finds out in the same
    /// step whether the counters' record part must be copied from Postgres (claiming that
    /// work for `claimant` for `claim_ms` when nobody holds it).
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn reap_dead_instances(
        &self,
        lease_ms: u64,
        cap: i64,
        claimant: &str,
        claim_ms: u64,
    ) -> Result<Reaped, StoreError> {
        let reply = self.availability("reap", claimant, &claim_ms.to_string(), lease_ms, cap).await?;
        let mut parts = array(reply).into_iter();
        let seeding = match parts.next().as_ref().and_then(int) {
            Some(0) => Seeding::Done,
            Some(1) => Seeding::Claimed,
            Some(2) => Seeding::Elsewhere,
            _ => return Err(StoreError::Encode("availability reap reply".into())),
        };
        let dead: Vec<String> =
            parts.next().map(array).unwrap_or_default().into_iter().filter_map(text).collect();
        for instance in &dead {
            self.forget_instance_routes(instance).await?;
        }
        Ok(Reaped { dead, seeding })
    }

    /// The part of presence Postgres records: every mitra whose switch is on (and who is
    /// not deactivated) or who has sessions not completed, with both.
    pub(crate) async fn mitra_records(&self) -> Result<Vec<MitraRecord>, StoreError> {
        let rows: Vec<(Uuid, bool, i64)> = sqlx::query_as(
            "SELECT m.id, m.status_online AND m.deactivated_at IS NULL,
                    (SELECT count(*) FROM chat_sessions s WHERE s.mitra_id = m.id AND s.status <> 'completed')
             FROM mitras m
             WHERE (m.status_online AND m.deactivated_at IS NULL)
                OR EXISTS (SELECT 1 FROM chat_sessions s WHERE s.mitra_id = m.id AND s.status <> 'completed')",
        )
        .fetch_all(&self.pg)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, status_online, live_sessions)| MitraRecord {
                id: MitraId(id),
                status_online,
                live_sessions,
            })
            .collect())
    }

    /// Copies `records` into the counters: each session count as recorded, each switch
    /// unless one was set since Redis lost it (that one is newer). Returns the mitras who
    /// became available, with their session counts.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn restore_mitras(
        &self,
        records: &[MitraRecord],
        default_cap: i64,
    ) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let list = records
            .iter()
            .flat_map(|record| {
                [
                    record.id.to_string(),
                    if record.status_online { "1" } else { "0" }.to_owned(),
                    record.live_sessions.to_string(),
                ]
            })
            .collect();
        let reply = self.availability_with("restore", "", "", 0, default_cap, list).await?;
        Ok(array(reply)
            .chunks(2)
            .filter_map(|pair| {
                Some((Uuid::parse_str(&text(pair.first()?.clone())?).ok()?, int(pair.get(1)?)?))
            })
            .collect())
    }

    /// Records that the counters hold the record again and releases `claimant`'s claim, if
    /// the claim still holds; returns whether it did.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn mark_presence_seeded(&self, claimant: &str) -> Result<bool, StoreError> {
        let reply = self.availability("seeded", claimant, "", 0, 0).await?;
        Ok(int(&reply) == Some(1))
    }

    /// Whether the counters hold the record's part (switches, session counts) since Redis
    /// came up: false until a reaper's first copy is done.
    /// Only the tests read it (feature `test-support`).
    #[cfg(feature = "test-support")]
    pub async fn presence_seeded(&self) -> Result<bool, StoreError> {
        let seeded: i64 = self.redis.next().exists(format!("{}seeded", self.avail_prefix())).await?;
        Ok(seeded == 1)
    }

    /// The live hub instances (lease younger than `lease_ms`).
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn live_instances(&self, lease_ms: u64) -> Result<Vec<String>, StoreError> {
        let since = now_ms().saturating_sub(lease_ms);
        Ok(self
            .redis
            .next()
            .zrangebyscore(format!("{}instances", self.avail_prefix()), since as f64, "+inf")
            .await?)
    }

    /// Every hub instance with its last heartbeat (unix ms), alive or not.
    pub(crate) async fn instance_heartbeats(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let beats: Vec<(String, f64)> = self
            .redis
            .next()
            .zrangebyscore_withscores(format!("{}instances", self.avail_prefix()), "-inf", "+inf")
            .await?;
        Ok(beats.into_iter().map(|(instance, ms)| (instance, ms as u64)).collect())
    }

    /// Adds `instance` to the routes of `user` (its first socket there).
    pub(crate) async fn add_route(&self, user: UserId, instance: &str) -> Result<(), StoreError> {
        let mut conn = self.redis.next();
        let _: () = conn.sadd(self.user_route_key(user), instance).await?;
        let _: () = conn.sadd(self.instance_users_key(instance), user.to_string()).await?;
        Ok(())
    }

    /// Removes `instance` from the routes of `user` (its last socket there closed).
    pub(crate) async fn remove_route(&self, user: UserId, instance: &str) -> Result<(), StoreError> {
        let mut conn = self.redis.next();
        let _: () = conn.srem(self.user_route_key(user), instance).await?;
        let _: () = conn.srem(self.instance_users_key(instance), user.to_string()).await?;
        Ok(())
    }

    /// Whether any live instance holds a socket of `user` (push only when none does).
    pub(crate) async fn user_connected(&self, user: UserId, lease_ms: u64) -> Result<bool, StoreError> {
        let routed: Vec<String> = self.redis.next().smembers(self.user_route_key(user)).await?;
        if routed.is_empty() {
            return Ok(false);
        }
        let live = self.live_instances(lease_ms).await?;
        Ok(routed.iter().any(|instance| live.contains(instance)))
    }

    async fn forget_instance_routes(&self, instance: &str) -> Result<(), StoreError> {
        let mut conn = self.redis.next();
        let users: Vec<String> = conn.smembers(self.instance_users_key(instance)).await?;
        for user in users {
            let route = format!("{}:route:{{u:{user}}}", self.keys.prefix());
            let _: () = conn.srem(route, instance).await?;
        }
        let _: () = conn.del(&[self.instance_users_key(instance), self.inbox_key(instance)]).await?;
        Ok(())
    }
}
