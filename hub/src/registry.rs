//! The sockets of this process by user.
//!
//! Registering a user's first socket here adds this instance to the user's route (and, for a
//! mitra, to their connections); closing the last removes it. Those Redis changes are made
//! by one task, in the order the registry decided them under its lock, so a close and a new
//! connection of the same user can never reach Redis in the wrong order. Every new socket
//! waits until the route work queued before it is done, then reads its backlog: an event
//! published after that point reaches this instance's inbox, one published before is in
//! the stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use domain::auth::{Principal, Role};
use domain::broker::StreamId;
use domain::ids::{SignInId, TokenId, UserId};
use tokio::sync::{mpsc, oneshot};

/// Why the server closes a socket: a WebSocket close code and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

/// Close code for a client too slow to take its frames.
pub const CLOSE_SLOW_CONSUMER: u16 = 1013;

/// A frame on its way to the user's sockets; shared, so each socket's queue holds a pointer
/// (a tokio channel allocates 32 slots up front: small slots keep idle sockets small).
pub(crate) type Outbound = Arc<OutboundFrame>;

#[derive(Debug)]
pub(crate) struct OutboundFrame {
    /// The event's stream id (durable events), to skip what the socket already sent.
    pub id: Option<StreamId>,
    /// The text frame, shared by every socket of the user.
    pub frame: Arc<str>,
    /// When the event was published (unix ms), for the delivery-latency metric.
    pub published_ms: u64,
    /// The event's type, the delivery-latency metric's label.
    pub kind: &'static str,
    /// A `resync_required` frame: events may have been lost, so whatever the socket sent
    /// before no longer bounds what it may send next.
    pub resync: bool,
}

struct SocketHandle {
    id: u64,
    /// The access token the socket authenticated with (logout closes its sockets) ...
    token_id: TokenId,
    /// ... and the sign-in that issued it (a revoked sign-in closes its sockets).
    sign_in: SignInId,
    outbound: mpsc::Sender<Outbound>,
    /// Taken by the first close request; later ones find it gone (the socket is closing).
    close: Option<oneshot::Sender<Close>>,
}

impl SocketHandle {
    fn request_close(&mut self, close: &Close) -> bool {
        self.close.take().is_some_and(|sender| sender.send(close.clone()).is_ok())
    }
}

/// Which of a user's sockets [`Registry::close_user`] closes.
#[derive(Clone, Copy)]
pub(crate) enum Sockets {
    All,
    /// Those opened with one access token (logout).
    OfToken(TokenId),
    /// Those opened with any access token of one sign-in (its refresh token was replayed).
    OfSignIn(SignInId),
}

struct UserSockets {
    role: Role,
    sockets: Vec<SocketHandle>,
}

/// Route work for the route lanes (instance.rs): one user's work is applied in order.
pub(crate) enum RouteChange {
    /// The user's first socket here: add the route (and the mitra's connection).
    Add,
    /// The user's last socket here closed: remove them.
    Remove,
    /// Another socket of a user already routed here: nothing to change, only wait for the
    /// work queued before.
    Ensure,
}

pub(crate) struct RouteOp {
    pub user: UserId,
    pub role: Role,
    pub change: RouteChange,
    /// Answered with whether the change reached Redis.
    pub done: Option<oneshot::Sender<bool>>,
}

pub(crate) struct Registry {
    next_id: AtomicU64,
    users: Mutex<HashMap<UserId, UserSockets>>,
    route_ops: mpsc::UnboundedSender<RouteOp>,
    /// Counts the sockets asked to close as slow consumers.
    metrics: domain::metrics::Metrics,
}

/// What a new socket gets from the registry.
pub(crate) struct Registered<'a> {
    pub registration: Registration<'a>,
    pub outbound: mpsc::Receiver<Outbound>,
    /// Resolves when the server wants the socket closed.
    pub close: oneshot::Receiver<Close>,
    /// Resolves once the route work queued up to this socket reached Redis (true) or failed.
    pub routed: oneshot::Receiver<bool>,
}

/// A socket's place in the registry; dropping it removes the socket.
pub(crate) struct Registration<'a> {
    registry: &'a Registry,
    user: UserId,
    pub id: u64,
}

impl Registry {
    pub(crate) fn new(route_ops: mpsc::UnboundedSender<RouteOp>, metrics: domain::metrics::Metrics) -> Self {
        Self { next_id: AtomicU64::new(1), users: Mutex::default(), route_ops, metrics }
    }

    pub(crate) fn register(&self, principal: &Principal, queue: usize) -> Registered<'_> {
        let (user, role) = (principal.id, principal.role);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (outbound_tx, outbound) = mpsc::channel(queue.max(1));
        let (close_tx, close) = oneshot::channel();
        let (done, routed) = oneshot::channel();
        let mut users = self.lock();
        let entry = users.entry(user).or_insert_with(|| UserSockets { role, sockets: Vec::new() });
        let change = if entry.sockets.is_empty() { RouteChange::Add } else { RouteChange::Ensure };
        entry.sockets.push(SocketHandle {
            id,
            token_id: principal.token_id,
            sign_in: principal.sign_in,
            outbound: outbound_tx,
            close: Some(close_tx),
        });
        // Sent under the lock: the route lanes see a user's changes in the order they were decided.
        let _ = self.route_ops.send(RouteOp { user, role, change, done: Some(done) });
        drop(users);
        Registered { registration: Registration { registry: self, user, id }, outbound, close, routed }
    }

    /// Queues `outbound` for every socket of `user` here but the socket `except`. A socket
    /// whose queue is full is asked to close (1013) rather than buffered without bound.
    /// Returns sockets reached.
    pub(crate) fn deliver(&self, user: UserId, outbound: &Outbound, except: Option<u64>) -> usize {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(&user) else { return 0 };
        self.queue(entry, outbound, except)
    }

    /// Queues `outbound` for every socket here, as [`deliver`](Self::deliver) does for one
    /// user's. Returns sockets reached.
    pub(crate) fn deliver_to_all(&self, outbound: &Outbound) -> usize {
        let mut users = self.lock();
        users.values_mut().map(|entry| self.queue(entry, outbound, None)).sum()
    }

    fn queue(&self, entry: &mut UserSockets, outbound: &Outbound, except: Option<u64>) -> usize {
        let mut delivered = 0;
        for socket in entry.sockets.iter_mut().filter(|socket| Some(socket.id) != except) {
            match socket.outbound.try_send(outbound.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let close = Close { code: CLOSE_SLOW_CONSUMER, reason: "slow_consumer".into() };
                    if socket.request_close(&close) {
                        self.metrics.hub_slow_consumer_closes.inc();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// Asks the sockets of `user` here that `which` names to close. Returns how many were asked.
    pub(crate) fn close_user(&self, user: UserId, which: Sockets, close: &Close) -> usize {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(&user) else { return 0 };
        entry
            .sockets
            .iter_mut()
            .filter(|socket| match which {
                Sockets::All => true,
                Sockets::OfToken(token) => token == socket.token_id,
                Sockets::OfSignIn(sign_in) => sign_in == socket.sign_in,
            })
            .filter_map(|socket| socket.request_close(close).then_some(()))
            .count()
    }

    /// Queues the route of every user here again (after Redis lost its data). Returns each
    /// user with the answer to whether their route reached Redis.
    pub(crate) fn reannounce(&self) -> Vec<(UserId, oneshot::Receiver<bool>)> {
        self.reannounce_where(|_| true)
    }

    /// [`reannounce`](Self::reannounce) for those of `users` still connected here.
    pub(crate) fn reannounce_users(&self, users: &[UserId]) -> Vec<(UserId, oneshot::Receiver<bool>)> {
        self.reannounce_where(|user| users.contains(user))
    }

    fn reannounce_where(&self, wanted: impl Fn(&UserId) -> bool) -> Vec<(UserId, oneshot::Receiver<bool>)> {
        let users = self.lock();
        users
            .iter()
            .filter(|(user, _)| wanted(user))
            .map(|(user, entry)| {
                let (done, routed) = oneshot::channel();
                let op =
                    RouteOp { user: *user, role: entry.role, change: RouteChange::Add, done: Some(done) };
                let _ = self.route_ops.send(op);
                (*user, routed)
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, UserSockets>> {
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut users = self.registry.lock();
        let Some(entry) = users.get_mut(&self.user) else { return };
        entry.sockets.retain(|socket| socket.id != self.id);
        if entry.sockets.is_empty() {
            let role = entry.role;
            users.remove(&self.user);
            let op = RouteOp { user: self.user, role, change: RouteChange::Remove, done: None };
            let _ = self.registry.route_ops.send(op);
        }
    }
}
