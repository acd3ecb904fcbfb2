//! podkeeper keeps podman apps (and their Quadlet companion units) in the state
//! their YAML manifests declare, reacting to changes instead of polling.
//!
//! # Layout
//!
//! The crate reads in the direction the data flows:
//!
//! ```text
//!  sources ──► one mpsc channel ──► reactor ──► reconcilers ──► runtime
//!  (podman events,  (Trigger)        (owns all     (one app,       (podman API,
//!   apps-dir watcher,                 state, keyed  one sweep)      systemd)
//!   sweep timer)                      scheduler)
//! ```
//!
//! * [`sources`]: tasks that turn the outside world into [`trigger::Trigger`]s and
//!   push them into the single channel. They decide nothing.
//! * [`reactor`]: the single task that owns every piece of mutable state. It maps
//!   triggers to keys, hands keys to the [`scheduler`], and runs reconciles of
//!   ready keys (a few at once, never the same key twice at once).
//! * [`scheduler`]: the keyed work queue: idle / queued / running(+dirty) per key,
//!   earliest deadline wins, per-key failure backoff and crash-loop delay.
//! * [`reconcile`]: what "reconcile one app" and "sweep everything" mean: read the
//!   real state from the runtime, compare with the manifest, act.
//! * [`runtime`]: the [`runtime::Runtime`] trait and its podman implementation;
//!   every call carries a timeout.
//! * [`manifest`]: the app manifest format, its validation and the desired state.
//! * [`report`]: the human-readable `--debug` lines for every event and reaction.
//!
//! Shutdown follows mini-redis: a [`tokio_util::sync::CancellationToken`] tells
//! sources to stop; when their senders drop, the channel closes and the reactor
//! drains its in-flight reconciles before returning.

pub mod backoff;
pub mod cli;
pub mod manifest;
pub mod reactor;
pub mod reconcile;
pub mod record;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod sources;
pub mod trigger;

/// The label that marks a container as managed by podkeeper; its value is the app id.
pub const APP_LABEL: &str = "io.podkeeper.app";
/// The label holding the hash of the container spec the container was created from.
pub const SPEC_HASH_LABEL: &str = "io.podkeeper.spec-hash";
