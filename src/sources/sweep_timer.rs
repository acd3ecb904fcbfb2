//! The slow periodic full sweep: the safety net behind the events.

use std::time::Duration;

use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::TriggerTx;
use crate::trigger::Trigger;

/// Send [`Trigger::SweepTick`] every `every` (the first one `every` from now:
/// the reactor sweeps at start-up by itself).
pub async fn run(every: Duration, tx: TriggerTx, cancel: CancellationToken) {
    let mut ticks = interval_at(Instant::now() + every, every);
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
