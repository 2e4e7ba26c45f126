//! The sockets of this process by user, so a control message ("close this user's sockets")
//! reaches every device the user has connected here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use uuid::Uuid;

/// Why the server closes a socket: a WebSocket close code and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

/// The sockets of one user on this process: (socket id, where to ask it to close).
type Sockets = Vec<(u64, mpsc::Sender<Close>)>;

#[derive(Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    users: Mutex<HashMap<Uuid, Sockets>>,
}

/// A socket's place in the registry; leaving it removes the socket.
pub(crate) struct Registration<'a> {
    registry: &'a Registry,
    user: Uuid,
    id: u64,
}

impl Registry {
    /// Adds a socket of `user`; the receiver yields a [`Close`] when the server wants it gone.
    pub(crate) fn register(&self, user: Uuid) -> (Registration<'_>, mpsc::Receiver<Close>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(1);
        self.lock().entry(user).or_default().push((id, sender));
        (Registration { registry: self, user, id }, receiver)
    }

    /// Asks every socket of `user` on this process to close. Returns how many were asked.
    pub(crate) fn close_user(&self, user: Uuid, close: &Close) -> usize {
        let senders: Vec<_> =
            self.lock().get(&user).map(|s| s.iter().map(|(_, tx)| tx.clone()).collect()).unwrap_or_default();
        senders.iter().filter(|sender| sender.try_send(close.clone()).is_ok()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Sockets>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut users = self.registry.lock();
        if let Some(sockets) = users.get_mut(&self.user) {
            sockets.retain(|(id, _)| *id != self.id);
            if sockets.is_empty() {
                users.remove(&self.user);
            }
        }
    }
}
