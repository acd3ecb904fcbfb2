//! The reactor's one loop, shared by `run`, the drain at shutdown, replay's steps and the tests: start what is ready, wait for what comes next, stop when told.
//!
//! Every turn starts the ready keys, then waits for the first of: shutdown,
//! an observer's heartbeat, a finished reconcile, triggers from the channel,
//! the next scheduled deadline. What differs between the entry points is
//! only when the loop stops ([`Until`]) and whether it reads the channel.

use std::time::Duration;

use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Reactor;
use crate::runtime::Podman;

/// How many waiting triggers the reactor handles before it looks at finished
/// reconciles, timers and shutdown again (a few microseconds' worth).
const BATCH: usize = 64;

/// When the loop stops.
#[derive(Clone, Copy)]
pub(super) enum Until<'a> {
    /// `shutdown` fires or the channel closes (every source has stopped):
    /// `run`, the only mode that reads the channel.
    Shutdown(&'a CancellationToken),
    /// Nothing is queued or running (replay settling, tests).
    Idle,
    /// This instant has come (replay stepping through virtual time).
    Deadline(Instant),
    /// Every reconcile in flight has finished, or this instant has come
    /// (the drain at shutdown). Nothing new starts, and what finishes is
    /// only reported: nothing is settled or queued any more.
    Drained(Instant),
}

/// Why the loop stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stopped {
    Cancelled,
    ChannelClosed,
    Idle,
    DeadlineCame,
    Drained,
    /// `Drained`'s instant came with reconciles still in flight.
    DrainTimedOut,
}

impl<R: Podman> Reactor<R> {
    pub(super) async fn run_loop(&mut self, until: Until<'_>) -> Stopped {
        let draining = matches!(until, Until::Drained(_));
        let shutdown = match until {
            Until::Shutdown(token) => Some(token),
            _ => None,
        };
        // An observer's heartbeat (systemd's watchdog) beats from this loop,
        // so a stuck loop stops it.
        let beat_every = self
            .observers
            .iter()
            .filter_map(|o| o.heartbeat_every())
            .min();
        let mut beat = interval(beat_every.unwrap_or(Duration::from_secs(3600)));
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if !draining {
                self.dispatch();
            }
            match until {
                Until::Idle if self.is_idle() => return Stopped::Idle,
                Until::Drained(_) if self.inflight.is_empty() => return Stopped::Drained,
                _ => {}
            }
            let wake = match until {
                Until::Drained(at) => Some(at),
                Until::Deadline(at) => Some(self.next_deadline().map_or(at, |d| d.min(at))),
                Until::Shutdown(_) | Until::Idle => self.next_deadline(),
            };
            tokio::select! {
                // Results first: they free slots and may queue follow-ups.
                biased;
                _ = cancelled(shutdown), if shutdown.is_some() => return Stopped::Cancelled,
                // Before the channel: a storm of triggers must not starve
                // the watchdog of a reactor that is working through it.
                _ = beat.tick(), if beat_every.is_some() => {
                    for o in &mut self.observers {
                        o.heartbeat();
                    }
                }
                Some(done) = self.inflight.join_next_with_id() => match done {
                    Ok((id, done)) => {
                        self.slots.finished(id);
                        if draining {
                            let r = done.reaction().clone();
                            self.observe_reaction(&r, None, false);
                        } else {
                            self.finish(done);
                        }
                    }
                    Err(e) => {
                        let keys = self.slots.finished(e.id());
                        self.settle_lost(keys, &e, draining);
                    }
                },
                msg = self.rx.recv(), if shutdown.is_some() => match msg {
                    Some(trigger) => {
                        self.on_trigger(trigger);
                        // Take what else is waiting before going round again:
                        // one select (cancellation, results, timer) per batch,
                        // not per trigger, when events pour in.
                        for _ in 1..BATCH {
                            match self.rx.try_recv() {
                                Ok(trigger) => self.on_trigger(trigger),
                                Err(_) => break,
                            }
                        }
                    }
                    None => return Stopped::ChannelClosed,
                },
                _ = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => match until {
                    Until::Deadline(at) if Instant::now() >= at => return Stopped::DeadlineCame,
                    Until::Drained(at) if Instant::now() >= at => return Stopped::DrainTimedOut,
                    _ => {}
                },
            }
        }
    }
}

/// Fires when `token` is cancelled; never without one.
async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}
