//! What happened, as typed records: each event's verdict and each reaction, produced by the reactor for whoever observes it.
//!
//! The reactor hands every record to the debug printer (`report::Reporter`:
//! the `--debug` lines and tracing) and then to each [`Observer`] added with
//! `Reactor::with_observer`: status and metrics read the
//! same records the debug printer does, and never touch a reconciler.
//! Observers run on the reactor's task: they must be quick and never block.
//!
//! An event record is built for every trigger on the hot path, so it is made
//! of borrowed parts and small enums: building and counting one allocates
//! nothing. Its words (`container died (137)`, `queue app/web in 30ms`) are
//! made by the `Display` impls here, only when someone prints them.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::duration::secs;
use crate::manifest::ManifestSet;
use crate::reconcile::Reaction;
use crate::scheduler::Scheduled;
use crate::trigger::{KeyRef, PodmanEvent};

/// An event a source delivered (or a finding that queued work), and what the
/// reactor made of it.
#[derive(Debug, Clone, Copy)]
pub struct EventSeen<'a> {
    /// On tokio's clock (virtual in a replay).
    pub at: Instant,
    /// Where it came from.
    pub source: Source,
    /// The event's type in one word, from a bounded set (a metrics label):
    /// podman's action (`died`, `start`, `health_status`, `remove`, …) or
    /// `connected` / `resumed` (the events stream); `exit-file` (conmon);
    /// a file change (`create`, `modify`, `remove`, `rename-from`,
    /// `rename-to`, `rescan`); after a re-read of the apps directory
    /// `manifest-added`, `manifest-gone`, `manifest-changed`,
    /// `companion-added`, `companion-gone`, `companion-changed`, `duplicate`;
    /// `sweep-due`, `companions-due` (timer); `drift` (a sweep's finding);
    /// `first-sweep`, `companions` (start-up).
    pub kind: &'a str,
    /// What happened, as the debug line words it: `container died (137)`.
    pub what: What<'a>,
    /// The container, file or key it concerns.
    pub subject: Subject<'a>,
    /// What the reactor did with it: `queue app/web`, `ignored: …`.
    pub verdict: Verdict<'a>,
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// podman's events stream (and its connection).
    Podman,
    /// conmon's exit files.
    Conmon,
    /// The apps directory: a file change, or what a re-read found changed.
    AppsDir,
    /// A Quadlet unit directory.
    UnitDir,
    /// The periodic sweep's timer.
    Timer,
    /// A sweep that found an app differing from its manifest.
    Sweep,
    /// podkeeper starting.
    StartUp,
}

impl Source {
    /// Every source, e.g. to register a metric's labels up front.
    pub const ALL: [Source; 7] = [
        Source::Podman,
        Source::Conmon,
        Source::AppsDir,
        Source::UnitDir,
        Source::Timer,
        Source::Sweep,
        Source::StartUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Podman => "podman",
            Source::Conmon => "conmon",
            Source::AppsDir => "apps-dir",
            Source::UnitDir => "unit-dir",
            Source::Timer => "timer",
            Source::Sweep => "sweep",
            Source::StartUp => "start-up",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, kept in the form the reactor had it.
#[derive(Debug, Clone, Copy)]
pub enum What<'a> {
    /// A podman event: `container died (137)`, `container health_status (unhealthy)`.
    Podman(&'a PodmanEvent),
    /// Words that say it: `exit file`, `manifest added`, a sweep's finding.
    Words(&'a str),
    /// A second container of this app (see `reactor/duplicates.rs`).
    DuplicateOf(&'a str),
}

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Podman(ev) => {
                write!(f, "{} {}", ev.typ, ev.action)?;
                if let Some(code) = ev
                    .label("containerExitCode")
                    .filter(|_| ev.action == "died")
                {
                    write!(f, " ({code})")
                } else if let Some(health) = ev.rest.get("HealthStatus").and_then(|h| h.as_str()) {
                    write!(f, " ({health})")
                } else {
                    Ok(())
                }
            }
            What::Words(words) => f.write_str(words),
            What::DuplicateOf(app) => write!(f, "duplicate of app/{app}"),
        }
    }
}

/// What an event concerns.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    None,
    /// A container's name, or a short container id.
    Name(&'a str),
    /// A file (relative to its watched directory), or the directory.
    Path(&'a Path),
    Key(KeyRef<'a>),
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::None => Ok(()),
            Subject::Name(name) => f.write_str(name),
            Subject::Path(path) => path.display().fmt(f),
            Subject::Key(key) => key.fmt(f),
        }
    }
}

/// What the reactor did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Queued the key, to run after this wait (zero: at once).
    Queued(KeyRef<'a>, Duration),
    /// The key was queued already; it runs after this wait.
    Merged(KeyRef<'a>, Duration),
    /// The key is running; it runs once more after.
    Dirty(KeyRef<'a>),
    /// Queued this many companions (every one podkeeper knows of).
    Companions(usize),
    /// Queued this many apps (those on a network that just appeared).
    Apps(usize),
    Ignored(Ignored<'a>),
}

impl<'a> Verdict<'a> {
    /// What scheduling `key` did, seen at `now`.
    pub fn scheduled(key: KeyRef<'a>, scheduled: Scheduled, now: Instant) -> Self {
        match scheduled {
            Scheduled::Queued(t) => Verdict::Queued(key, t.saturating_duration_since(now)),
            Scheduled::Merged(t) => Verdict::Merged(key, t.saturating_duration_since(now)),
            Scheduled::Dirty => Verdict::Dirty(key),
        }
    }

    /// The verdict in one word: `queued`, `merged`, `dirty` or `ignored`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Queued(..) | Verdict::Companions(_) | Verdict::Apps(_) => "queued",
            Verdict::Merged(..) => "merged",
            Verdict::Dirty(_) => "dirty",
            Verdict::Ignored(_) => "ignored",
        }
    }
}

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Queued(key, wait) if wait.is_zero() => write!(f, "queue {key}"),
            Verdict::Queued(key, wait) => write!(f, "queue {key} in {}", secs(*wait)),
            Verdict::Merged(key, wait) if wait.is_zero() => write!(f, "{key} already queued"),
            Verdict::Merged(key, wait) => {
                write!(f, "{key} already queued (runs in {})", secs(*wait))
            }
            Verdict::Dirty(key) => write!(f, "{key} running; runs once more after"),
            Verdict::Companions(n) => write!(f, "queue {n} companion(s)"),
            Verdict::Apps(n) => write!(f, "queue {n} app(s)"),
            Verdict::Ignored(why) => write!(f, "ignored: {why}"),
        }
    }
}

/// Why an event changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored<'a> {
    /// A podman event of this type (image, volume, …), not a container's.
    NotAContainer(&'a str),
    /// A container without podkeeper's label.
    Unmanaged,
    /// A labelled container whose app has no manifest.
    Orphan,
    /// This action cannot take a container out of its declared state.
    NoChange(&'a str),
    /// The last successful reconcile of this app already saw it.
    SeenByCheck(&'a str),
    /// An exit file of a container podkeeper does not manage.
    NotManaged,
    /// An exit file just written, where podman cannot tell a crash from a
    /// user's stop: podkeeper acts once podman has collected it.
    UntilCollected,
    /// A file in the apps directory that is no manifest.
    NotAManifest,
    /// A unit-directory change or a Quadlet container's event while
    /// companions are not enabled.
    CompanionsOff,
    /// podkeeper's own temporary file in a unit directory.
    OwnTempFile,
    /// A unit file no companion owns.
    NoOwner,
    /// A container of this systemd unit, which is no companion.
    NotACompanion(&'a str),
    /// A `health_status` of an app that declares no healthcheck.
    NoHealthcheck,
    /// A thing of this kind (a network) that no app declares.
    NoApp(&'a str),
}

impl fmt::Display for Ignored<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::NotAContainer(typ) => write!(f, "{typ} events do not change an app"),
            Ignored::Unmanaged => f.write_str("not managed (no io.podkeeper.app label)"),
            Ignored::Orphan => f.write_str("orphan (no manifest)"),
            Ignored::NoChange(action) => {
                write!(f, "{action} does not leave the declared state")
            }
            Ignored::SeenByCheck(id) => write!(f, "older than the last check of app/{id}"),
            Ignored::NotManaged => f.write_str("not a container podkeeper manages"),
            Ignored::UntilCollected => f.write_str(
                "acting once podman collects it (this podman cannot tell a crash from a stop yet)",
            ),
            Ignored::NotAManifest => f.write_str("not a manifest (*.yaml, *.yml)"),
            Ignored::CompanionsOff => f.write_str("companions are not enabled"),
            Ignored::OwnTempFile => f.write_str("podkeeper's own temporary file"),
            Ignored::NoOwner => f.write_str("no companion owns it"),
            Ignored::NoHealthcheck => f.write_str("no healthcheck declared, podkeeper runs none"),
            Ignored::NotACompanion(unit) => write!(f, "{unit} is no companion"),
            Ignored::NoApp(kind) => write!(f, "no app declares this {kind}"),
        }
    }
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

/// A spec that failed its gate, as the reactor remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedFailure {
    pub failure: crate::reconcile::updates::Failure,
    /// When it was rolled back.
    pub at: jiff::Timestamp,
}

/// Receives the reactor's records. Every method defaults to doing nothing.
pub trait Observer: Send {
    /// Every event, as it is decided (cheap: see the module documentation).
    fn event(&mut self, _seen: &EventSeen<'_>) {}

    fn reaction(&mut self, _reacted: &Reacted<'_>) {}

    /// The declared apps and companions changed (start-up, a re-read).
    fn declared(&mut self, _apps: &ManifestSet) {}

    /// What the reactor remembers of app `app` changed (issue 23): the spec
    /// that failed its gate and when it was rolled back (`None`: forgotten:
    /// applied, retried, the manifest changed). Also said, for each, at
    /// start-up from the state file and to an observer as it is added.
    fn remembered(&mut self, _app: &str, _failed: Option<&RememberedFailure>) {}

    /// How often the reactor loop should call [`Observer::heartbeat`] (None: never).
    fn heartbeat_every(&self) -> Option<Duration> {
        None
    }

    /// Called from the reactor loop itself, so a stuck loop stops calling it
    /// (systemd's watchdog).
    fn heartbeat(&mut self) {}
}
