//! Handing the reactor's records to the debug printer and every observer.

use std::time::Duration;

use tokio::time::Instant;

use super::Reactor;
use crate::observe::{EventSeen, Observer, Reacted};
use crate::reconcile::Reaction;
use crate::report::Reporter;
use crate::runtime::Podman;

impl<R: Podman> Reactor<R> {
    /// Add an observer of every event verdict and reaction (see [`crate::observe`]).
    pub fn with_observer(mut self, mut observer: Box<dyn Observer>) -> Self {
        observer.declared(&self.apps);
        self.tell_remembered(&mut *observer);
        self.observers.push(observer);
        self
    }

    /// One event's verdict, to the printer and every observer. A record
    /// borrowing the reactor's own state goes through [`emit`] instead.
    pub(super) fn observe_event(&mut self, seen: &EventSeen<'_>) {
        emit(&mut self.report, &mut self.observers, seen);
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

/// One event's verdict, to the printer and every observer; a free function,
/// so the record may borrow the rest of the reactor meanwhile.
pub(super) fn emit(
    report: &mut Reporter,
    observers: &mut [Box<dyn Observer>],
    seen: &EventSeen<'_>,
) {
    report.event(seen);
    for o in observers {
        o.event(seen);
    }
}
