//! systemd's notify protocol: READY=1 after the first sweep is reconciled, STATUS= summaries, WATCHDOG=1 from the reactor loop, STOPPING=1.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;

use crate::manifest::ManifestSet;
use crate::observe::{Observer, Reacted};
use crate::reconcile::Action;
use crate::trigger::Key;

/// Test-only: after this many seconds (a whole number) of `run`, the reactor loop blocks for
/// good (as a deadlocked reactor would), so a test can watch systemd's
/// watchdog kill and restart it. Read only by a binary built with the
/// `test-hooks` feature (`scripts/test` builds it so); a release build
/// ignores it.
pub const STALL_ENV: &str = "PODKEEPER_TEST_STALL_REACTOR_AFTER";

/// Where notifications go: systemd's socket, or a test's list.
pub type Sink = Box<dyn FnMut(&[NotifyState]) + std::marker::Send>;

/// How the first full sweep stands: systemd hears READY=1 once it is `Done`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FirstSweep {
    NotYet,
    /// It ran; these apps it queued have not finished their reconcile.
    Reconciling(BTreeSet<String>),
    Done,
}

/// The systemd notifier: an [`Observer`] of the reactor, so it sees exactly
/// what the reactor decides and asks podman nothing.
pub struct Notifier {
    /// WATCHDOG_USEC, when systemd watches this process.
    watchdog: Option<Duration>,
    /// When the test-only stall begins (see [`STALL_ENV`]).
    stall_at: Option<Instant>,
    first: FirstSweep,
    /// Declared app → whether its last reconcile left it as declared.
    apps: BTreeMap<String, bool>,
    /// Declared companion → whether it is as declared (no failure, no wait).
    companions: BTreeMap<String, bool>,
    /// Local time of the last sweep and whether podman answered it.
    last_sweep: Option<(String, bool)>,
    last_status: String,
    send: Sink,
}

impl Notifier {
    /// A notifier when systemd asked for one (NOTIFY_SOCKET is set), else None:
    /// outside systemd it costs nothing.
    pub fn from_env() -> Option<Self> {
        std::env::var_os("NOTIFY_SOCKET")?;
        let send = Box::new(|states: &[NotifyState]| {
            if let Err(e) = sd_notify::notify(states) {
                tracing::warn!(error = %e, "cannot notify systemd");
            }
        });
        Some(Self::new(
            sd_notify::watchdog_enabled(),
            stall_after(),
            send,
        ))
    }

    pub fn new(watchdog: Option<Duration>, stall_after: Option<Duration>, send: Sink) -> Self {
        Notifier {
            watchdog,
            stall_at: stall_after.map(|d| Instant::now() + d),
            first: FirstSweep::NotYet,
            apps: BTreeMap::new(),
            companions: BTreeMap::new(),
            last_sweep: None,
            last_status: String::new(),
            send,
        }
    }

    /// The one-line summary systemd shows as the unit's status.
    pub fn summary(&self) -> String {
        let ok = |m: &BTreeMap<String, bool>| m.values().filter(|v| **v).count();
        let mut s = match self.first {
            FirstSweep::NotYet => "starting: first sweep not run yet".to_string(),
            _ => format!(
                "{}/{} apps as declared, {}/{} companions as declared",
                ok(&self.apps),
                self.apps.len(),
                ok(&self.companions),
                self.companions.len()
            ),
        };
        match &self.last_sweep {
            Some((at, true)) => s.push_str(&format!(", last sweep {at}")),
            Some((at, false)) => s.push_str(&format!(", podman not answering (sweep {at})")),
            None => {}
        }
        s
    }

    /// Send STATUS= (and READY=1 the first time the first sweep is done) when
    /// either changed.
    fn publish(&mut self, ready_now: bool) {
        let status = self.summary();
        if status == self.last_status && !ready_now {
            return;
        }
        let mut states = vec![NotifyState::Status(&status)];
        if ready_now {
            states.insert(0, NotifyState::Ready);
        }
        (self.send)(&states);
        self.last_status = status;
    }
}

impl Observer for Notifier {
    fn declared(&mut self, apps: &ManifestSet) {
        let was = std::mem::take(&mut self.apps);
        self.apps = apps
            .apps
            .keys()
            .map(|id| (id.clone(), was.get(id).copied().unwrap_or(true)))
            .collect();
        let was = std::mem::take(&mut self.companions);
        self.companions = apps
            .companions()
            .map(|(name, _)| (name.to_string(), was.get(name).copied().unwrap_or(true)))
            .collect();
        if self.first != FirstSweep::NotYet {
            self.publish(false);
        }
    }

    fn reaction(&mut self, reacted: &Reacted<'_>) {
        let r = reacted.reaction;
        let settled = r.result.is_ok() && !matches!(r.action, Action::Wait | Action::Conflict);
        match &r.key {
            Key::Sweep => {
                let at = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
                self.last_sweep = Some((at, r.result.is_ok()));
                let differ: BTreeSet<String> = r
                    .queue
                    .iter()
                    .filter_map(|(k, _)| match k {
                        Key::App(id) => Some(id.clone()),
                        _ => None,
                    })
                    .collect();
                if r.result.is_ok() {
                    for (id, ok) in self.apps.iter_mut() {
                        *ok = !differ.contains(id);
                    }
                }
                if self.first == FirstSweep::NotYet {
                    // A sweep podman did not answer still ends the start-up:
                    // a keeper that never reports ready would be restarted
                    // by systemd over and over for podman's outage.
                    self.first = FirstSweep::Reconciling(differ);
                }
            }
            Key::App(id) => {
                if let Some(ok) = self.apps.get_mut(id) {
                    *ok = settled;
                }
                if let FirstSweep::Reconciling(left) = &mut self.first {
                    left.remove(id);
                }
            }
            Key::Companion(name) => {
                // Every companion's outcome comes here, "none" included.
                if let Some(ok) = self.companions.get_mut(name) {
                    *ok = settled;
                }
            }
            Key::Manifests | Key::Health(_) => {}
        }
        let ready_now = matches!(&self.first, FirstSweep::Reconciling(left) if left.is_empty());
        if ready_now {
            self.first = FirstSweep::Done;
        }
        if self.first != FirstSweep::NotYet {
            self.publish(ready_now);
        }
    }

    fn heartbeat_every(&self) -> Option<Duration> {
        // Half the watchdog period, as sd_watchdog_enabled(3) advises.
        match (self.watchdog, self.stall_at) {
            (Some(w), _) => Some((w / 2).max(Duration::from_millis(10))),
            (None, Some(_)) => Some(Duration::from_secs(1)),
            (None, None) => None,
        }
    }

    fn heartbeat(&mut self) {
        if self.stall_at.is_some_and(|at| Instant::now() >= at) {
            tracing::error!("{STALL_ENV} is set: blocking the reactor for good (test only)");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        if self.watchdog.is_some() {
            (self.send)(&[NotifyState::Watchdog]);
        }
    }
}

/// Without `test-hooks` the hook is not there: no environment can wedge a
/// production daemon.
#[cfg(not(feature = "test-hooks"))]
fn stall_after() -> Option<Duration> {
    None
}

#[cfg(feature = "test-hooks")]
fn stall_after() -> Option<Duration> {
    let v = std::env::var(STALL_ENV).ok()?;
    match v.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            tracing::warn!("{STALL_ENV}={v:?} is not a number of seconds; ignored");
            None
        }
    }
}

/// STOPPING=1: the shutdown has begun (a no-op outside systemd).
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Failure, Reaction};
    use crate::runtime::RuntimeError;

    /// A reaction as the reactor hands it to observers.
    fn feed(n: &mut Notifier, r: &Reaction) {
        n.reaction(&Reacted {
            at: tokio::time::Instant::now(),
            reaction: r,
            retry_in: None,
            quiet: false,
            held_for: None,
            queued: 0,
        });
    }
    use std::sync::{Arc, Mutex};

    fn notifier() -> (Notifier, Arc<Mutex<Vec<String>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let sink = sent.clone();
        let send = Box::new(move |states: &[NotifyState]| {
            let line = states.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            sink.lock().unwrap().push(line.join(" "));
        });
        (Notifier::new(None, None, send), sent)
    }

    fn apps(dir: &tempfile::TempDir, ids: &[&str]) -> ManifestSet {
        for id in ids {
            let m = format!("app:\n  id: {id}\n  name: {id}\n  version: 1.0.0\n  container:\n    image: localhost/bb:1\n");
            std::fs::write(dir.path().join(format!("{id}.yaml")), m).unwrap();
        }
        crate::manifest::load_dir(dir.path()).unwrap()
    }

    fn reaction(key: Key, result: Result<(), String>) -> Reaction {
        let mut r = Reaction::new(key);
        r.action = Action::Start;
        r.result = result.map_err(|e| Failure::Podman(RuntimeError::Failed(e)));
        r
    }

    #[test]
    fn ready_should_wait_for_the_apps_the_first_sweep_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (mut n, sent) = notifier();
        n.declared(&apps(&dir, &["a", "b", "c"]));
        assert!(sent.lock().unwrap().is_empty(), "nothing before the sweep");
        let mut sweep = Reaction::new(Key::Sweep);
        sweep.queue = vec![(Key::App("a".into()), "missing".into())];
        sweep.queue.push((Key::App("b".into()), "exited".into()));
        feed(&mut n, &sweep);
        let first = sent.lock().unwrap().clone();
        assert_eq!(first.len(), 1);
        assert!(
            first[0].starts_with(
                "STATUS=1/3 apps as declared, 0/0 companions as declared, last sweep "
            ),
            "{first:?}"
        );
        feed(&mut n, &reaction(Key::App("a".into()), Ok(())));
        assert!(!sent.lock().unwrap().iter().any(|l| l.contains("READY=1")));
        feed(
            &mut n,
            &reaction(Key::App("b".into()), Err("image missing".into())),
        );
        let all = sent.lock().unwrap().clone();
        let last = all.last().unwrap();
        assert!(
            last.starts_with("READY=1 STATUS=2/3 apps as declared"),
            "{all:?}"
        );
        // Once only, and no repeat of an unchanged status.
        feed(
            &mut n,
            &reaction(Key::App("b".into()), Err("image missing".into())),
        );
        assert_eq!(sent.lock().unwrap().len(), all.len());
        feed(&mut n, &reaction(Key::App("b".into()), Ok(())));
        let all = sent.lock().unwrap().clone();
        assert_eq!(all.iter().filter(|l| l.contains("READY=1")).count(), 1);
        assert!(
            all.last().unwrap().starts_with("STATUS=3/3 apps"),
            "{all:?}"
        );
    }

    #[test]
    fn a_sweep_podman_did_not_answer_should_still_end_the_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let (mut n, sent) = notifier();
        n.declared(&apps(&dir, &["a"]));
        feed(
            &mut n,
            &reaction(Key::Sweep, Err("podman unreachable".into())),
        );
        let all = sent.lock().unwrap().clone();
        assert_eq!(all.len(), 1);
        assert!(all[0].starts_with("READY=1 STATUS=1/1 apps as declared, 0/0 companions as declared, podman not answering (sweep "), "{all:?}");
    }

    #[test]
    fn the_heartbeat_should_follow_the_watchdog_and_cost_nothing_without_it() {
        let (n, _) = notifier();
        assert_eq!(n.heartbeat_every(), None);
        let mut n = Notifier::new(
            Some(Duration::from_secs(4)),
            None,
            Box::new(|_: &[NotifyState]| {}),
        );
        assert_eq!(n.heartbeat_every(), Some(Duration::from_secs(2)));
        n.heartbeat();
    }

    #[test]
    fn a_companion_should_count_as_declared_again_after_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let m = "app:\n  id: w\n  name: w\n  version: 1.0.0\n  container:\n    image: localhost/bb:1\n  companions:\n    - name: w-db\n      kind: container\n      unit: |\n        [Container]\n        Image=localhost/bb:1\n";
        std::fs::write(dir.path().join("w.yaml"), m).unwrap();
        let set = crate::manifest::load_dir(dir.path()).unwrap();
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let (mut n, _) = notifier();
        n.declared(&set);
        feed(&mut n, &Reaction::new(Key::Sweep));
        let name = set.companions().next().unwrap().0.to_string();
        let mut wait = Reaction::new(Key::Companion(name.clone()));
        wait.action = Action::Wait;
        feed(&mut n, &wait);
        assert!(
            n.summary().contains("0/1 companions as declared"),
            "{}",
            n.summary()
        );
        feed(&mut n, &Reaction::new(Key::Companion(name)));
        assert!(
            n.summary()
                .starts_with("1/1 apps as declared, 1/1 companions as declared"),
            "{}",
            n.summary()
        );
    }

    #[test]
    fn the_stall_hook_should_be_read_only_with_the_test_hooks_feature() {
        // The only test touching this variable.
        std::env::set_var(STALL_ENV, "7");
        let got = stall_after();
        std::env::remove_var(STALL_ENV);
        let expected = cfg!(feature = "test-hooks").then(|| Duration::from_secs(7));
        assert_eq!(got, expected);
    }
}
