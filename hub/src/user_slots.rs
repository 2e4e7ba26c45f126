//! Sockets per user on this process: one user (a script holding stolen credentials, or an
//! app that reconnects in a loop without closing) cannot take the slots everyone shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use domain::ids::UserId;

pub(crate) struct UserSlots {
    max: usize,
    held: Mutex<HashMap<UserId, usize>>,
}

/// One socket's place in its user's count; dropping it frees the place.
pub(crate) struct UserSlot {
    slots: Arc<UserSlots>,
    user: UserId,
}

impl UserSlots {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max, held: Mutex::default() })
    }

    /// A place for one more socket of `user`, or `None` when they hold `max` already.
    /// Taken under one lock: of concurrent upgrades exactly the free places succeed.
    pub(crate) fn try_take(self: &Arc<Self>, user: UserId) -> Option<UserSlot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(user).or_default();
        if *count >= self.max {
            if *count == 0 {
                held.remove(&user);
            }
            return None;
        }
        *count += 1;
        Some(UserSlot { slots: self.clone(), user })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_max_places_and_a_freed_one_back() {
        let slots = UserSlots::new(2);
        let (rani, sari) = (UserId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
        let first = slots.try_take(rani).expect("first");
        let _second = slots.try_take(rani).expect("second");
        assert!(slots.try_take(rani).is_none(), "a third is refused");
        assert!(slots.try_take(sari).is_some(), "another user has places of their own");
        drop(first);
        assert!(slots.try_take(rani).is_some(), "a closed socket frees its place");
    }

    #[test]
    fn no_entry_is_left_for_a_user_without_sockets() {
        let slots = UserSlots::new(1);
        let user = UserId(uuid::Uuid::new_v4());
        drop(slots.try_take(user));
        assert!(slots.held.lock().expect("lock").is_empty());
        let none = UserSlots::new(0);
        assert!(none.try_take(user).is_none());
        assert!(none.held.lock().expect("lock").is_empty());
    }
}
