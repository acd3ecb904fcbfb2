//! The slow periodic full sweep: the safety net behind the events.

use std::time::Duration;

use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::TriggerTx;
use crate::trigger::Trigger;

/// Send [`Trigger::SweepTick`] every `every` (the first one `every` from now:
/// the reactor sweeps at start-up by itself).
pub async fn run(every: Duration, tx: TriggerTx, cancel: CancellationToken) {
    // The flag is bounded (1s to 7 days); whatever comes here, never panic
    // (a zero period or an instant past the clock's end would, and the
    // daemon would run on without its safety net).
    let every = every.max(Duration::from_millis(1));
    let first = Instant::now()
        .checked_add(every)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
    let mut ticks = interval_at(first, every);
    // A sweep missed while the machine slept is one sweep, not a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {
                if tx.send(Trigger::SweepTick).await.is_err() {
                    return;
                }
            }
        }
    }
}
