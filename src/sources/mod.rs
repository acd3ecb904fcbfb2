//! Sources: tasks that watch the outside world and push [`Trigger`]s into the one channel.
//!
//! A source decides nothing: it reports what happened and lets the reactor
//! judge. Each runs until its cancellation token fires or the channel closes.

pub mod dir_watch;
pub mod exit_watch;
pub mod podman_events;
pub mod sweep_timer;

use tokio::sync::mpsc;

use crate::trigger::Trigger;

/// The sending half of the one channel.
pub type TriggerTx = mpsc::Sender<Trigger>;
