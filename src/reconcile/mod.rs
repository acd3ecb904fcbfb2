//! Reconcilers: for one key, read the real state, compare with the manifest, act.
//!
//! They hold no state between runs; the reactor gives them what they need and
//! gets back a [`Reaction`] saying what was decided, why, and what it cost.

pub mod adopt;
pub mod app;
pub(crate) mod companion;
pub(crate) mod depends;
pub(crate) mod health;
pub(crate) mod outcome;
pub(crate) mod restart;
pub(crate) mod secrets;
pub(crate) mod sweep;
pub(crate) mod unit_paths;
pub mod updates;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::trigger::Key;
pub use outcome::{Action, Category, Failure};

/// One runtime call as the reconciler made it: its name and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: &'static str,
    pub took: Duration,
}

/// Collects the calls a reconcile made, timing each.
#[derive(Debug, Default)]
pub struct CallLog {
    pub calls: Vec<Call>,
}

impl CallLog {
    /// Run one runtime call, recording its duration.
    pub async fn time<T>(&mut self, name: &'static str, fut: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = fut.await;
        self.calls.push(Call {
            name,
            took: started.elapsed(),
        });
        out
    }
}

/// What one reconcile decided and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    pub key: Key,
    pub action: Action,
    /// Why, in words: "exited (code 137)", "spec changed", …
    pub why: String,
    pub calls: Vec<Call>,
    pub result: Result<(), Failure>,
    /// When this run started a container that had exited: how long it had run.
    pub restarted_after: Option<Duration>,
    /// Run again after this long (a transient state was seen).
    pub requeue_after: Option<Duration>,
    /// Apps to queue as a result (the sweep's findings), with the reason.
    pub queue: Vec<(Key, String)>,
    /// The app containers this reconcile saw, as it left them (the app
    /// reconciler: its own; the sweep: every declared app's). Read by
    /// status; nothing decides on it.
    pub found: Vec<Found>,
    /// The app this one waits for (action `wait` on a dependency): the
    /// reactor queues it again as soon as that app starts or turns healthy.
    pub waits_for: Option<String>,
    /// What became of an update this reconcile made or checked (issue 23).
    pub update: Option<updates::UpdateNews>,
    /// A container this reconcile adopted (issue 23): the reactor records
    /// it in the state file.
    pub adopted: Option<Adopted>,
}

/// What the reactor remembers of an app across reconciles, and across
/// restarts (the state file, `ops/state_file.rs`): handed to each reconcile
/// of the app (issue 23).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// A spec hash that failed its gate and was rolled back: not tried
    /// again until the manifest changes again or `podkeeper retry`.
    pub failed_spec: Option<String>,
    /// The container podkeeper adopted for this app (made by another
    /// orchestrator, without podkeeper's labels).
    pub adopted: Option<Adopted>,
    /// Whether a container of the app's name without podkeeper's labels may
    /// be adopted (`run --adopt`, or the manifest's `adopt: true`).
    pub may_adopt: bool,
    /// Whether an update of the app may be under way (the reactor saw a
    /// gate start, a sweep listed one of its `<app>.previous`/`.next`, or
    /// one was renamed so): only then does a reconcile of a running,
    /// current container look for them (`reconcile/app/replace.rs`).
    pub update_under_way: bool,
}

/// A container podkeeper took over without recreating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// podman's container id: a container of the same name made later is
    /// not adopted by this record.
    pub container: String,
    /// The spec hash of the manifest it matched: what drift compares with,
    /// as it would the label of a container podkeeper made.
    pub spec_hash: String,
}

/// An app's container as a reconcile last knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub app: String,
    /// The container id; `None` when there is no container.
    pub container: Option<String>,
    /// podman's state word (`running`, `exited`, …), or `missing`; or
    /// `completed` / `failed` for a container its `restart` policy leaves
    /// exited (`reconcile/restart.rs`).
    pub state: String,
    /// The exit code of a `completed` or `failed` one; else `None`.
    pub exit_code: Option<i32>,
}

impl Reaction {
    pub fn new(key: Key) -> Self {
        Reaction {
            key,
            action: Action::None,
            why: String::new(),
            calls: Vec::new(),
            result: Ok(()),
            restarted_after: None,
            requeue_after: None,
            queue: Vec::new(),
            found: Vec::new(),
            waits_for: None,
            update: None,
            adopted: None,
        }
    }

    /// The failure, if it failed.
    pub fn failure(&self) -> Option<&Failure> {
        self.result.as_ref().err()
    }

    /// Total time spent in runtime calls.
    pub fn call_time(&self) -> Duration {
        self.calls.iter().map(|c| c.took).sum()
    }
}
