//! Handing the reactor's records to the debug printer and every observer.

use std::time::Duration;

use tokio::time::Instant;

use super::Reactor;
use crate::observe::{EventSeen, Observer, Reacted};
use crate::reconcile::Reaction;
use crate::runtime::Podman;

impl<R: Podman> Reactor<R> {
    /// Add an observer of every event verdict and reaction (see [`crate::observe`]).
    pub fn with_observer(mut self, mut observer: Box<dyn Observer>) -> Self {
        observer.declared(&self.apps);
        self.observers.push(observer);
        self
    }

    /// Whether anyone reads event records (the reactor words events only then).
    pub(super) fn wants_events(&self) -> bool {
        self.report.wants_events() || self.observers.iter().any(|o| o.wants_events())
    }

    /// One event's verdict, to the printer and every observer.
    pub(super) fn observe_event(&mut self, source: &str, what: &str, subject: &str, verdict: &str) {
        let seen = EventSeen {
            at: Instant::now(),
            source,
            what,
            subject,
            verdict,
        };
        Observer::event(&mut self.report, &seen);
        for o in &mut self.observers {
            o.event(&seen);
        }
    }

    /// One reaction, to the printer and every observer.
    pub(super) fn observe_reaction(
        &mut self,
        reaction: &Reaction,
        retry_in: Option<Duration>,
        quiet: bool,
    ) {
        let now = Instant::now();
        let reacted = Reacted {
            at: now,
            reaction,
            retry_in,
            quiet,
            held_for: self
                .sched
                .held_until(&reaction.key)
                .filter(|t| *t > now)
                .map(|t| t - now),
            queued: self.sched.queued(),
        };
        Observer::reaction(&mut self.report, &reacted);
        for o in &mut self.observers {
            o.reaction(&reacted);
        }
    }
}
