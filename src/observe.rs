//! What happened, as typed records: each event's verdict and each reaction, produced by the reactor for whoever observes it.
//!
//! The reactor hands every record to the debug printer (`report::Reporter`:
//! the `--debug` lines and tracing) and then to each [`Observer`] added with
//! `Reactor::with_observer`: status and metrics read the
//! same records the debug printer does, and never touch a reconciler.
//! Observers run on the reactor's task: they must be quick and never block.

use std::time::Duration;

use tokio::time::Instant;

use crate::manifest::ManifestSet;
use crate::reconcile::Reaction;

/// An event a source delivered, and what the reactor made of it.
#[derive(Debug, Clone, Copy)]
pub struct EventSeen<'a> {
    /// On tokio's clock (virtual in a replay).
    pub at: Instant,
    /// `podman`, `conmon`, `apps-dir`, `unit-dir`, `timer`, `sweep`, `start-up`, …
    pub source: &'a str,
    /// What happened, e.g. `container died (137)`.
    pub what: &'a str,
    /// The container, file or key it concerns (may be empty).
    pub subject: &'a str,
    /// What the reactor did with it: `queue app/web`, `ignored: …`.
    pub verdict: &'a str,
}

/// A finished reconcile (an app, the sweep, the manifests, a companion batch
/// or one companion of it), as the scheduler settled it.
#[derive(Debug, Clone, Copy)]
pub struct Reacted<'a> {
    /// On tokio's clock (virtual in a replay).
    pub at: Instant,
    /// Key, action, why, the calls with their durations, the result.
    pub reaction: &'a Reaction,
    /// When it failed: how long until the scheduler retries it.
    pub retry_in: Option<Duration>,
    /// Covered by its batch's summary (a companion found as declared): the
    /// debug printer leaves it out; counters still count it.
    pub quiet: bool,
    /// How long the scheduler holds the key back from now on (failure
    /// backoff or crash-loop delay), if it does.
    pub held_for: Option<Duration>,
    /// How many keys the scheduler has queued, as this reaction settled.
    pub queued: usize,
}

/// Receives the reactor's records. Both methods default to doing nothing.
pub trait Observer: Send {
    /// Whether this observer reads [`EventSeen`] records. Wording an event
    /// costs allocations; the reactor words them only when someone reads.
    fn wants_events(&self) -> bool {
        false
    }

    fn event(&mut self, _seen: &EventSeen<'_>) {}

    fn reaction(&mut self, _reacted: &Reacted<'_>) {}

    /// The declared apps and companions changed (start-up, a re-read).
    fn declared(&mut self, _apps: &ManifestSet) {}

    /// How often the reactor loop should call [`Observer::heartbeat`] (None: never).
    fn heartbeat_every(&self) -> Option<Duration> {
        None
    }

    /// Called from the reactor loop itself, so a stuck loop stops calling it
    /// (systemd's watchdog).
    fn heartbeat(&mut self) {}
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;
    use crate::manifest::{assemble, parse_manifest};
    use crate::reactor::{Reactor, ReactorConfig};
    use crate::report::{Clock, Reporter, SharedBuf};
    use crate::runtime::sim_podman::SimRuntime;
    use crate::trigger::{StreamStatus, Trigger};

    /// One reaction as an observer kept it: key, action, call names, ok, retry.
    type Kept = (String, String, Vec<String>, bool, Option<Duration>);

    /// What an observer got: (source, verdict) per event, and the reactions.
    #[derive(Default)]
    struct Seen {
        events: Vec<(String, String)>,
        reactions: Vec<Kept>,
    }

    struct Collect(Arc<Mutex<Seen>>);

    impl Observer for Collect {
        fn wants_events(&self) -> bool {
            true
        }
        fn event(&mut self, e: &EventSeen<'_>) {
            let mut seen = self.0.lock().unwrap();
            seen.events.push((e.source.into(), e.verdict.into()));
        }
        fn reaction(&mut self, r: &Reacted<'_>) {
            let calls = r
                .reaction
                .calls
                .iter()
                .map(|c| c.name.to_string())
                .collect();
            let mut seen = self.0.lock().unwrap();
            seen.reactions.push((
                r.reaction.key.to_string(),
                r.reaction.action.to_string(),
                calls,
                r.reaction.result.is_ok(),
                r.retry_in,
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_observer_should_read_every_event_verdict_and_reaction_the_printer_reads() {
        let app = parse_manifest(
            Path::new("web.yaml"),
            "app:\n  id: web\n  container:\n    image: localhost/bb:1\n",
        )
        .unwrap();
        let set = assemble(vec![("web.yaml".into(), app)], vec![]);
        let sim = SimRuntime::new(&["localhost/bb:1"], None);
        let (_tx, rx) = mpsc::channel(1);
        let printed = SharedBuf::default();
        // The printer in --debug mode, to compare with.
        let report = Reporter::new(
            true,
            Clock::SinceStart(Instant::now()),
            Box::new(printed.clone()),
        );
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut reactor = Reactor::new(
            Arc::new(sim.clone()),
            rx,
            set,
            ReactorConfig::default(),
            report,
        )
        .with_observer(Box::new(Collect(seen.clone())));
        reactor.handle(Trigger::Stream(StreamStatus::Connected { resumed: false }));
        reactor.run_until_idle().await;

        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.events,
            [
                ("podman".to_string(), "queue sweep".to_string()),
                ("sweep".to_string(), "queue app/web".to_string())
            ]
        );
        let web = seen
            .reactions
            .iter()
            .find(|r| r.0 == "app/web")
            .expect("a reaction for app/web");
        assert_eq!(web.1, "create");
        assert!(web.2.contains(&"create".to_string()), "{:?}", web.2);
        assert!(web.3 && web.4.is_none());
        // The printer printed one line per record the observer got.
        let out = printed.contents();
        assert_eq!(out.matches("  event  ").count(), seen.events.len(), "{out}");
        assert_eq!(
            out.matches("  react  ").count(),
            seen.reactions.len(),
            "{out}"
        );
    }
}
