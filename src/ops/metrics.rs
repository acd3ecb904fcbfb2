//! Prometheus metrics from the reactor's records, in the `prometheus-client` crate's types and text encoding.
//!
//! Counters move as records come (atomics; no allocation for events or
//! reconciles: their label values are `&'static str`). The per-state gauges
//! are read off the status board when someone asks, so they cost nothing
//! in between.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use std::collections::BTreeMap;

use crate::observe::{EventSeen, Reacted, Source};
use crate::reconcile::Category;
use crate::trigger::Key;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub source: &'static str,
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub action: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: &'static str,
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    pub app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpdateLabels {
    pub app: String,
    /// `applied`, `rolled_back`, `failed` (`UpdateNews::result`).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// Every metric podkeeper exports, registered once.
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    panics: Counter,
    reconcile_seconds: Family<KindLabels, Histogram>,
    restarts: Family<AppLabels, Counter>,
    updates: Family<UpdateLabels, Counter>,
    apps: Family<StateLabels, Gauge>,
    companions: Family<StateLabels, Gauge>,
    reconnects: Counter,
    sweep_seconds: Histogram,
    queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn seconds_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("podkeeper");
        let m = Metrics {
            registry: Registry::default(),
            events: Family::default(),
            reconciles: Family::default(),
            failures: Family::default(),
            panics: Counter::default(),
            reconcile_seconds: Family::new_with_constructor(seconds_histogram),
            restarts: Family::default(),
            updates: Family::default(),
            apps: Family::default(),
            companions: Family::default(),
            reconnects: Counter::default(),
            sweep_seconds: seconds_histogram(),
            queue_depth: Gauge::default(),
        };
        registry.register(
            "events",
            "Events received from the sources, by source and type",
            m.events.clone(),
        );
        registry.register(
            "reconciles",
            "Finished reconciles, by key kind, action and result",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles, by key kind and cause (unreachable, timeout, name-conflict, image-missing, refused, local, panicked)",
            m.failures.clone(),
        );
        registry.register(
            "reconcile_panics",
            "Reconciles lost to a panic (each key of the task), settled as failed and retried after the backoff",
            m.panics.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile spent in podman and systemd calls, by key kind",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "restarts",
            "Restarts of an app's container after an exit or a failed healthcheck",
            m.restarts.clone(),
        );
        registry.register(
            "updates",
            "Updates of an app's spec that ended, by result (applied, rolled_back, failed)",
            m.updates.clone(),
        );
        registry.register(
            "apps",
            "Declared apps by the state their container was last seen in",
            m.apps.clone(),
        );
        registry.register(
            "companions",
            "Declared companions by state (active, waiting, failed, unknown)",
            m.companions.clone(),
        );
        registry.register(
            "stream_reconnects",
            "Times the podman events stream was resumed after a gap",
            m.reconnects.clone(),
        );
        registry.register(
            "sweep_duration_seconds",
            "Time a full sweep spent listing containers",
            m.sweep_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Keys queued in the scheduler, as the last reconcile settled",
            m.queue_depth.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One event. The labels are words from a fixed list: a label set per
    /// podman action someone invents would grow without bound.
    pub fn count_event(&self, seen: &EventSeen<'_>) {
        let (kind, reconnect) = event_kind(seen);
        self.events
            .get_or_create(&EventLabels {
                source: seen.source.as_str(),
                r#type: kind,
            })
            .inc();
        if reconnect {
            self.reconnects.inc();
        }
    }

    pub fn count_reaction(&self, reacted: &Reacted<'_>) {
        let r = reacted.reaction;
        let kind = key_kind(&r.key);
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind,
                action: r.action.as_str(),
                result: if r.result.is_ok() { "ok" } else { "failed" },
            })
            .inc();
        if let Some(failure) = r.failure() {
            let cause = failure.category();
            self.failures
                .get_or_create(&FailureLabels {
                    kind,
                    cause: cause.as_str(),
                })
                .inc();
            if cause == Category::Panicked {
                self.panics.inc();
            }
        }
        let took = r.call_time().as_secs_f64();
        self.reconcile_seconds
            .get_or_create(&KindLabels { kind })
            .observe(took);
        if r.key == Key::Sweep {
            self.sweep_seconds.observe(took);
        }
        self.queue_depth
            .set(i64::try_from(reacted.queued).unwrap_or(i64::MAX));
    }

    pub fn count_restart(&self, app: &str) {
        self.restarts
            .get_or_create(&AppLabels {
                app: app.to_string(),
            })
            .inc();
    }

    /// An update of `app` ended with `result` (`UpdateNews::result`).
    pub fn count_update(&self, app: &str, result: &'static str) {
        self.updates
            .get_or_create(&UpdateLabels {
                app: app.to_string(),
                result,
            })
            .inc();
    }

    /// Drop a deleted app's series (Prometheus sees it go stale).
    pub fn forget_app(&self, app: &str) {
        self.restarts.remove(&AppLabels {
            app: app.to_string(),
        });
        for result in ["applied", "rolled_back", "failed"] {
            self.updates.remove(&UpdateLabels {
                app: app.to_string(),
                result,
            });
        }
    }

    /// The text exposition (OpenMetrics, which Prometheus reads), with the
    /// gauges set now from how many apps and companions are in each state
    /// (the status board's counts).
    pub fn encode(&self, apps: &BTreeMap<String, i64>, companions: &BTreeMap<&str, i64>) -> String {
        self.apps.clear();
        for (state, n) in apps {
            self.apps
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(*n);
        }
        self.companions.clear();
        for (state, n) in companions {
            self.companions
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(*n);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// `app`, `companion`, `sweep`, `manifests`, `health`.
pub fn key_kind(key: &Key) -> &'static str {
    match key {
        Key::App(_) => "app",
        Key::Companion(_) => "companion",
        Key::Sweep => "sweep",
        Key::Manifests => "manifests",
        Key::Health(_) => "health",
    }
}

/// The event kinds podkeeper names in `type` (see `observe::EventSeen::kind`):
/// podman's actions, and the words of the events stream, conmon, the
/// directories, the timers, the sweep and the start-up. Any other (a podman
/// action this list does not know) is `other`, so the label's values stay
/// bounded whatever podman sends. Sorted: looked up by binary search, once
/// per event.
const KINDS: &[&str] = &[
    "attach",
    "checkpoint",
    "cleanup",
    "commit",
    "companion-added",
    "companion-changed",
    "companion-gone",
    "companions",
    "companions-due",
    "connected",
    "create",
    "died",
    "drift",
    "duplicate",
    "exec",
    "exec_died",
    "exit-file",
    "exit-written",
    "exited",
    "export",
    "first-sweep",
    "health_status",
    "import",
    "init",
    "kill",
    "manifest-added",
    "manifest-changed",
    "manifest-gone",
    "modify",
    "mount",
    "pause",
    "prune",
    "pull",
    "remove",
    "rename",
    "rename-from",
    "rename-to",
    "rescan",
    "restart",
    "restore",
    "resumed",
    "start",
    "stop",
    "sweep-due",
    "sync",
    "tag",
    "unmount",
    "unpause",
    "untag",
];

/// An event's `type` label, and whether it is the events stream resuming
/// after a gap. The one place that reads event records.
fn event_kind(seen: &EventSeen<'_>) -> (&'static str, bool) {
    let kind = KINDS
        .binary_search(&seen.kind)
        .map_or("other", |i| KINDS[i]);
    (kind, seen.source == Source::Podman && kind == "resumed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_should_be_sorted_so_a_binary_search_finds_each() {
        assert!(KINDS.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        for k in KINDS {
            assert_eq!(KINDS.binary_search(k).map(|i| KINDS[i]), Ok(*k));
        }
        assert!(KINDS.binary_search(&"no-such-action").is_err());
    }
}
