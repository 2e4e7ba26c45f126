//! A mitra's room for chats, changed in one place. Five things move it: the mitra's own
//! online switch, a hub instance holding their first socket or losing their last, a session
//! of theirs starting or ending, and a recount of their live sessions from the record. Each
//! goes through [`changed`], which applies it to the counters in Redis (one script,
//! `presence::store`) and says whether the change may have made room. A change that made
//! room, for a mitra who can take a chat now, offers them the open general requests
//! ([`Changed::offer`]): at once where the caller answers the mitra (the switch, a session's
//! end), from a task of its own where it must not wait (a hub's route lane).

use crate::app_config;
use crate::ids::MitraId;
use crate::presence::store::MitraPresence;
use crate::services::Services;
use crate::store::StoreError;

/// What changed about a mitra's room for chats. `cap` is the capacity cap to count with
/// when Redis does not hold one (it lost its data and the record is not copied back yet).
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// The mitra's own online switch.
    Switched { online: bool },
    /// Hub `instance` holds the mitra's first socket there.
    Connected { instance: &'a str },
    /// Hub `instance` holds no socket of the mitra any more.
    Disconnected { instance: &'a str },
    /// A session of theirs started. A delta, not a count: two accepts of one mitra may reach
    /// Redis in either order.
    SessionStarted { cap: i64 },
    /// A session of theirs completed.
    SessionEnded { cap: i64 },
    /// Their live sessions, counted in the record (heals a delta lost in a crash).
    Recounted { live: i64, cap: i64 },
}

impl Change<'_> {
    /// Whether the change can leave the mitra with room they did not have.
    fn may_make_room(self) -> bool {
        match self {
            Self::Switched { online } => online,
            Self::Connected { .. } | Self::SessionEnded { .. } | Self::Recounted { .. } => true,
            Self::Disconnected { .. } | Self::SessionStarted { .. } => false,
        }
    }
}

/// A change applied to the counters, and the offers it may owe the mitra.
#[must_use = "a change that made room owes the mitra the open requests: call offer()"]
#[derive(Debug)]
pub struct Changed {
    pub mitra: MitraId,
    pub presence: MitraPresence,
    made_room: bool,
}

impl Changed {
    /// Offers the open general requests when the change made room and the mitra can take a
    /// chat; otherwise nothing. A failure is logged: the change itself is done, and the next
    /// blast or change offers again. Returns the presence after the change.
    pub async fn offer(self, services: &Services) -> MitraPresence {
        if self.made_room && self.presence.available {
            let offered =
                crate::pairing::offer_open_requests(services, self.mitra, self.presence.active_sessions)
                    .await;
            if let Err(error) = offered {
                tracing::warn!(%error, mitra_id = %self.mitra, "offering open requests to a mitra with room failed");
            }
        }
        self.presence
    }
}

impl Changed {
    /// A mitra the copy of the record back into Redis made available (`active` live
    /// sessions): owed the open requests like a mitra who just switched on.
    pub(crate) fn restored(mitra: MitraId, active: i64) -> Self {
        let presence = MitraPresence {
            status_online: true,
            connected: true,
            active_sessions: active,
            online: true,
            available: true,
        };
        Self { mitra, presence, made_room: true }
    }
}

/// Applies `change` to the mitra's counters.
pub async fn changed(services: &Services, mitra: MitraId, change: Change<'_>) -> Result<Changed, StoreError> {
    let store = &services.store;
    let presence = match change {
        Change::Switched { online } => store.set_mitra_status(mitra, online, default_cap()).await?,
        Change::Connected { instance } => store.mitra_connected(mitra, instance, default_cap()).await?,
        Change::Disconnected { instance } => store.mitra_disconnected(mitra, instance, default_cap()).await?,
        Change::SessionStarted { cap } => store.add_mitra_sessions(mitra, 1, cap).await?,
        Change::SessionEnded { cap } => store.add_mitra_sessions(mitra, -1, cap).await?,
        Change::Recounted { live, cap } => store.set_mitra_sessions(mitra, live, cap).await?,
    };
    Ok(Changed { mitra, presence, made_room: change.may_make_room() })
}

/// The cap used when the Redis copy is missing and Postgres cannot be read.
pub(crate) fn default_cap() -> i64 {
    app_config::default_of(app_config::MAX_CUSTOMERS_PER_MITRA).unwrap_or(3)
}
