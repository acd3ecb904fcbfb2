//! podkeeper keeps podman apps (and their Quadlet companion units) in the state
//! their YAML manifests declare, reacting to changes instead of polling.
//!
//! # Layout
//!
//! The crate reads in the direction the data flows:
//!
//! ```text
//!  sources ──► one mpsc channel ──► reactor ──► reconcilers ──► runtime
//!  (podman events,  (Trigger)        (owns all     (one app, one   (podman API,
//!   exit files,                       state, keyed  companion batch, systemctl)
//!   apps/unit-dir watchers,           scheduler)    one sweep)
//!   sweep timer)
//! ```
//!
//! * [`sources`]: tasks that turn the outside world into [`trigger::Trigger`]s and
//!   push them into the single channel. They decide nothing.
//! * [`reactor`]: the single task that owns every piece of mutable state. It maps
//!   triggers to keys, hands keys to the [`scheduler`], and runs reconciles of
//!   ready keys (a few at once, never the same key twice at once; companions
//!   in one batch at a time, so a burst costs one `daemon-reload`).
//! * [`scheduler`]: the keyed work queue: idle / queued / running(+dirty) per key,
//!   earliest deadline wins (or, debounced, the latest, capped), per-key
//!   failure backoff and crash-loop delay.
//! * [`reconcile`]: what "reconcile one app", "reconcile these companions" and
//!   "sweep everything" mean: read the real state, compare with the manifest, act.
//! * [`runtime`]: the [`runtime::Runtime`] (podman) and
//!   [`runtime::systemd::Systemd`] traits, their real implementations (every
//!   call under a timeout) and their simulations.
//! * [`manifest`]: the app manifest format, its bounds and validation, and the
//!   apps directory as last read (the last valid declaration of a file stands).
//! * [`trust`]: start-up checks of who may write the directories podkeeper trusts.
//! * [`ops`]: running as a service: systemd notify (through the reporter's
//!   [`report::Observer`] seam), the start-up self-check, completions and man page.
//! * [`report`]: the human-readable `--debug` lines for every event and reaction.
//! * [`export`]: `export kube`, the apps as Kubernetes YAML for `podman kube play`
//!   or a cluster; it only reads manifests.
//! * [`record`] and [`replay`]: event streams written down as fixtures, and fed
//!   back to the same reactor against the simulations in virtual time.
//!
//! Shutdown follows mini-redis: a [`tokio_util::sync::CancellationToken`] tells
//! sources to stop; when their senders drop, the channel closes and the reactor
//! drains its in-flight reconciles before returning.

pub mod backoff;
pub mod cli;
pub mod export;
pub mod manifest;
pub mod ops;
pub mod reactor;
pub mod reconcile;
pub mod record;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod sources;
pub mod trigger;
pub mod trust;

/// The label that marks a container as managed by podkeeper; its value is the app id.
pub const APP_LABEL: &str = "io.podkeeper.app";
/// The label holding the hash of the container spec the container was created from.
pub const SPEC_HASH_LABEL: &str = "io.podkeeper.spec-hash";
