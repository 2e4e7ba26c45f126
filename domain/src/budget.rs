//! Each app user's budget of writes: every REST call that changes something and every
//! socket command that reaches the store spend from one bucket per user and process (the
//! hub's command rate, `hub.commands_per_second` after a burst of `hub.command_burst`).
//! More sockets or more routes do not buy more: 80 messages in 0.4 s or 200 payment
//! sessions in 2 s are refused past the burst. In memory (governor's keyed GCRA): each
//! process keeps its own buckets, so behind N api processes a user gets at most N budgets.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ids::UserId;
use crate::settings::HubSettings;

pub struct UserBudget {
    limiter: DefaultKeyedRateLimiter<Uuid>,
}

/// A spend refused: the seconds until one fits again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub retry_after_s: u64,
}

impl UserBudget {
    pub fn new(settings: &HubSettings) -> Self {
        let per_second = NonZeroU32::new(settings.commands_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.command_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self { limiter: RateLimiter::dashmap(Quota::per_second(per_second).allow_burst(burst)) }
    }

    /// Spends one write of `user`'s budget.
    pub fn spend(&self, user: UserId) -> Result<(), OverBudget> {
        self.limiter.check_key(&user.0).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            OverBudget { retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64 }
        })
    }

    /// Forgets users whose bucket is full again (idle): call now and then, so the map holds
    /// only recent writers.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Forgets idle users' buckets every minute until `shutdown`.
pub async fn run_forgetting(
    services: std::sync::Arc<crate::services::Services>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => services.budget.forget_idle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_spends_the_burst_then_waits_and_others_are_untouched() {
        let settings = HubSettings { commands_per_second: 2, command_burst: 3, ..HubSettings::default() };
        let budget = UserBudget::new(&settings);
        let (rani, sari) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(budget.spend(UserId(rani)), Ok(()));
        }
        let refused = budget.spend(UserId(rani)).expect_err("over the burst");
        assert_eq!(refused.retry_after_s, 1);
        assert_eq!(budget.spend(UserId(sari)), Ok(()), "each user has a bucket of their own");
    }
}
