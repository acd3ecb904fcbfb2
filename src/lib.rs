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
//!   push them into the single channel (`CHANNEL_CAPACITY`). They decide
//!   nothing. Signals are a source too (`sources::signals`: SIGHUP reloads).
//! * [`reactor`]: the single task that owns every piece of mutable state.
//!   `reactor/run_loop.rs` is its one loop (run, the drain at shutdown,
//!   replay's steps and the tests differ only in when it stops);
//!   `reactor/routing.rs` maps triggers to keys and records each event's
//!   verdict; the reactor hands keys to the [`scheduler`], runs reconciles of
//!   ready keys (a few at once, never the same key twice at once; companions
//!   in one batch at a time, so a burst costs one `daemon-reload`) and settles
//!   each finished one the same way. `reactor/manifests.rs` takes in a freshly
//!   read apps directory, `reactor/health.rs` keeps the health-check timers,
//!   routes `health_status` events and wakes apps waiting for a dependency,
//!   `reactor/observers.rs` hands each record to the printer and observers,
//!   `reactor/memory.rs` remembers failed update specs and adoptions (kept
//!   across restarts in the state file, `ops/state_file.rs`).
//! * [`observe`]: the typed records of each event verdict (source, type,
//!   subject, verdict: borrowed parts and small enums, so counting them
//!   allocates nothing) and each reaction, which the reactor hands to the
//!   debug printer and to every observer (status, metrics).
//! * [`scheduler`]: the keyed work queue: idle / queued / running(+dirty) per key,
//!   earliest deadline wins (or, debounced, the latest, capped), per-key
//!   failure backoff and crash-loop delay.
//! * [`reconcile`]: what "reconcile one app", "reconcile these companions" and
//!   "sweep everything" mean: read the real state, compare with the manifest,
//!   act. `reconcile/companion/` is the batch's steps, the planning, the
//!   summary and the unit-file I/O (the only code writing into a unit
//!   directory).
//! * [`runtime`]: the [`runtime::Podman`] and [`runtime::systemd::Systemd`]
//!   traits, their real implementations (every call under a timeout) and
//!   their simulations (`sim_podman`, `sim_systemd`).
//! * [`manifest`]: the app manifest format, its bounds and validation, and the
//!   apps directory as last read (the last valid declaration of a file stands).
//! * [`trust`]: start-up checks of who may write the directories podkeeper trusts.
//! * [`report`]: the human-readable `--debug` lines (an observer of the
//!   reactor's records, the only place they are put into words), tracing,
//!   and `check`'s report. [`output`]: where lines go, through bounded queues
//!   that writer threads empty, so a stalled reader never stalls the reactor.
//! * [`ops`]: running as a service: systemd notify and the status board and
//!   metrics (both [`observe::Observer`]s of the reactor's records), the
//!   control socket and `/metrics` listener that serve them off the
//!   reactor's task, `status` and `metrics` (their clients), and the
//!   start-up self-check.
//! * [`export`]: `export kube`, the apps as Kubernetes YAML for `podman kube play`
//!   or a cluster; it only reads manifests.
//! * [`recording`]: event streams written down as fixtures (`record`), and fed
//!   back to the same reactor against the simulations in virtual time
//!   (`replay`); the file format as serde types both share.
//! * [`cli`] on top: the command line, `run`'s start-up and shutdown
//!   step by step (`cli/daemon.rs`), and the
//!   completions and man page generated from it (`cli/docs.rs`); no module
//!   imports it. Below everything: [`duration`] (as flags take them and
//!   lines write them), [`host`] (who podkeeper runs as, absolute paths),
//!   [`backoff`], `kill_points` (SIGKILL at a named step, for tests only).
//!
//! Shutdown follows mini-redis (`cli/daemon.rs`): SIGTERM cancels one
//! [`tokio_util::sync::CancellationToken`]; the reactor stops taking triggers
//! and drains its in-flight reconciles; then `run` waits on a
//! [`tokio_util::task::TaskTracker`], at most `cli::TASKS_STOP_WITHIN`, for
//! every source and listener it spawned to return (the control socket removes
//! its file as it goes), and `main` waits, bounded too, for queued output to
//! be written. Only the signal task is not waited for: after the first signal
//! it stays to turn a second one into an immediate exit.

// The docs are built with `--document-private-items` (they are the
// developers' map, and most modules are pub(crate)); there, links to private
// items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod backoff;
pub mod cli;
pub(crate) mod duration;
pub mod export;
pub(crate) mod host;
pub(crate) mod kill_points;
pub mod manifest;
pub mod observe;
pub mod ops;
pub mod output;
pub mod reactor;
pub mod reconcile;
pub(crate) mod recording;
pub mod report;
pub mod runtime;
pub(crate) mod scheduler;
pub mod sources;
pub mod trigger;
pub(crate) mod trust;

/// `podkeeper::record` and `podkeeper::replay`, as `main` and the fixture tests name them.
pub use recording::{record, replay};

/// The label that marks a container as managed by podkeeper; its value is the app id.
pub const APP_LABEL: &str = "io.podkeeper.app";
/// The label holding the hash of the container spec the container was created from.
pub const SPEC_HASH_LABEL: &str = "io.podkeeper.spec-hash";
/// On a container that shares app `<id>`'s network namespace (`network:
/// app:<id>`): podman refuses to remove `<id>`'s container while it exists,
/// so a recreate of `<id>` removes these first (they rejoin once it runs).
pub const NETNS_OF_LABEL: &str = "io.podkeeper.network-of";
