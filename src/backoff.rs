//! Exponential backoff policies: per-key reconcile failures, crash loops, stream reconnects.

use std::time::Duration;

/// `initial`, doubling on every step, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Reconcile failures: 1 s doubling to 5 min (client-go's item backoff, slower start).
    pub const FAILURE: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(300),
    };

    /// Crash loops: Docker's restart manager, 100 ms doubling to 1 min.
    pub const CRASH_LOOP: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(60),
    };

    /// Reconnecting the podman events stream: 100 ms doubling to 5 s, so a
    /// restarted podman service is picked up quickly.
    pub const RECONNECT: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    /// The delay before attempt `n` after `n` consecutive failures (`n >= 1`).
    pub fn delay(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// A container that ran less than this before exiting counts as a crash loop.
pub const CRASH_LOOP_UPTIME: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_backoff_should_double_from_one_second_to_five_minutes() {
        let b = Backoff::FAILURE;
        let secs: Vec<u64> = (1..=11).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.delay(100), Duration::from_secs(300));
    }

    #[test]
    fn crash_loop_backoff_should_start_at_100ms() {
        let b = Backoff::CRASH_LOOP;
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(40), Duration::from_secs(60));
    }
}
