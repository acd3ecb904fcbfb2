//! The reactor's view of podman being away: a sweep at start-up whatever the events stream does, one line when podman stops answering and one when it answers again.
//!
//! The sweep is queued when the events stream connects, but a podman that
//! accepts connections and never answers keeps the stream from ever
//! connecting: without its own start-up sweep nothing would be reconciled
//! and nothing would say why. So `run` queues a sweep shortly after start-up
//! too (the stream's connect merges into it when it comes first). A sweep
//! that cannot reach podman says so once per outage; the sweep key's
//! failure backoff retries it; when podman answers (a sweep succeeds, or the
//! stream connects) the outage ends with one line and every key's failure
//! backoff is forgotten, so what failed meanwhile is retried at once.

use std::time::Duration;

use tokio::time::Instant;

use super::Reactor;
use crate::observe::{EventSeen, Source, Subject, What};
use crate::reconcile::Failure;
use crate::runtime::Podman;
use crate::trigger::Key;

/// Whether podman is known to be away, and since when.
#[derive(Default)]
pub(super) struct Outage {
    since: Option<Instant>,
}

impl<R: Podman> Reactor<R> {
    /// Sweep `within` from now, whether or not the events stream connects
    /// (`run` does this; replays and tests drive their own sweeps).
    pub fn with_startup_sweep(mut self, within: Duration) -> Self {
        let now = Instant::now();
        let verdict = self.schedule_verdict(&Key::Sweep, now + within);
        self.observe_event(&EventSeen {
            at: now,
            source: Source::StartUp,
            kind: "first-sweep",
            what: What::Words("first sweep"),
            subject: Subject::None,
            verdict,
        });
        self
    }

    /// A sweep ended, failed with `failure` if it did: an outage begins
    /// when podman was away (by the failure's category: unreachable, or no
    /// answer in time), and ends when podman answered anything.
    pub(super) fn on_sweep_reach(&mut self, failure: Option<&Failure>, now: Instant) {
        let away = failure.filter(|f| f.podman_away());
        match (away, self.outage.since) {
            (Some(error), None) => {
                self.outage.since = Some(now);
                self.report.note(
                    "podman",
                    &format!("podman is unreachable: {error}; nothing can be reconciled until it answers (the sweep retries with backoff)"),
                    true,
                );
            }
            (None, Some(_)) => self.podman_answers(now),
            _ => {}
        }
    }

    /// The events stream connected: podman answers.
    pub(super) fn on_stream_connected(&mut self, now: Instant) {
        if self.outage.since.is_some() {
            self.podman_answers(now);
        }
    }

    fn podman_answers(&mut self, now: Instant) {
        let Some(since) = self.outage.since.take() else {
            return;
        };
        // What failed because podman was away deserves a prompt retry.
        self.sched.reset_failures(now);
        self.report.note(
            "podman",
            &format!(
                "podman answers again (unreachable for {})",
                crate::report::secs(now.saturating_duration_since(since))
            ),
            false,
        );
    }
}
