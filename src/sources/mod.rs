//! Sources: tasks that watch the outside world and push [`Trigger`]s into the one channel.
//!
//! A source decides nothing: it reports what happened and lets the reactor
//! judge. Each runs until its cancellation token fires or the channel closes.

pub mod dir_watch;
pub mod exit_watch;
pub mod podman_events;
pub mod signals;
pub mod sweep_timer;

use tokio::sync::mpsc;

use crate::trigger::Trigger;

/// Capacity of the one channel. Sources wait when it is full (backpressure),
/// which only happens if the reactor falls far behind.
pub const CHANNEL_CAPACITY: usize = 4096;

/// The sending half of the one channel.
pub type TriggerTx = mpsc::Sender<Trigger>;

/// What a `notify` watcher reports.
pub type RawFsEvents = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// A `notify` watcher whose events arrive on an async channel. notify calls
/// back on its own thread; the unbounded send never blocks that thread, and
/// the async side applies backpressure when it forwards into the one channel.
pub fn fs_watcher() -> notify::Result<(notify::RecommendedWatcher, RawFsEvents)> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |res| {
        let _ = raw_tx.send(res);
    })?;
    Ok((watcher, raw_rx))
}
