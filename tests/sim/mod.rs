//! One simulated stack for the spec tests: the reactor over the simulated podman (and systemd), in paused tokio time, its debug lines kept.
//!
//! `tests/reactor_spec.rs`, `tests/companion_spec.rs`, `tests/bad_input_spec.rs`
//! and `tests/observe_spec.rs` set their reactor up here ([`Setup`]) and
//! drive it through [`Sim`]. Nothing here touches the real podman or
//! systemd: those tests use `tests/common`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podkeeper::manifest::{assemble, load_dir, parse_manifest, ManifestSet};
use podkeeper::observe::Observer;
use podkeeper::reactor::{Reactor, ReactorConfig, Stats};
use podkeeper::report::{Clock, Reporter, SharedBuf};
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::runtime::sim_systemd::SimSystemd;
use podkeeper::trigger::{Actor, ChangeKind, FileChange, PodmanEvent, StreamStatus, Trigger};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

/// The image the simulated podman has (and the real tests build).
pub const IMAGE: &str = "localhost/bb:1";

/// A simulated podman with [`IMAGE`] that emits no events.
pub fn podman() -> SimRuntime {
    SimRuntime::new(&[IMAGE], None)
}

/// A simulated podman with [`IMAGE`], and the receiver of the events it
/// emits (give it to [`Setup::events`]).
pub fn podman_with_events() -> (SimRuntime, mpsc::UnboundedReceiver<PodmanEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (SimRuntime::new(&[IMAGE], Some(tx)), rx)
}

/// Manifests held in memory, from `(file, text)` pairs (each must be valid).
pub fn manifests(files: &[(&str, String)]) -> ManifestSet {
    let parsed = files
        .iter()
        .map(|(file, text)| {
            let app = parse_manifest(Path::new(file), text).unwrap();
            (PathBuf::from(file), app)
        })
        .collect();
    assemble(parsed, vec![])
}

/// A container event as podman's stream carries it (`time_nano` 1: no time).
pub fn container_event(action: &str, id: &str, attributes: &[(&str, &str)]) -> PodmanEvent {
    PodmanEvent {
        typ: "container".into(),
        action: action.into(),
        actor: Actor {
            id: id.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        time_nano: 1,
        rest: Default::default(),
    }
}

/// Where the reactor's manifests come from.
enum Apps {
    /// Fixed, in memory: no apps directory is re-read.
    Fixed(ManifestSet),
    /// A real apps directory holding these `(file, text)`, re-read on change.
    Dir(Vec<(String, String)>),
}

type PrepareSystemd = Box<dyn FnOnce(&SimSystemd)>;

/// What the reactor of a [`Sim`] runs on; [`Setup::start`] starts it.
pub struct Setup {
    podman: SimRuntime,
    events: Option<mpsc::UnboundedReceiver<PodmanEvent>>,
    apps: Apps,
    cfg: ReactorConfig,
    companions: Option<PrepareSystemd>,
    startup_sweep: Option<Duration>,
    observers: Vec<Box<dyn Observer>>,
    debug: bool,
}

impl Setup {
    /// The reactor over `podman`, its manifests fixed in memory.
    pub fn fixed(podman: SimRuntime, set: ManifestSet) -> Self {
        Self::with(podman, Apps::Fixed(set))
    }

    /// The reactor over `podman`, its apps directory a real one holding
    /// `files` (file name, text) that it re-reads when told of a change.
    pub fn dir<F: Into<String>, T: Into<String>>(
        podman: SimRuntime,
        files: impl IntoIterator<Item = (F, T)>,
    ) -> Self {
        let files = files
            .into_iter()
            .map(|(f, t)| (f.into(), t.into()))
            .collect();
        Self::with(podman, Apps::Dir(files))
    }

    fn with(podman: SimRuntime, apps: Apps) -> Self {
        Setup {
            podman,
            events: None,
            apps,
            cfg: ReactorConfig::default(),
            companions: None,
            startup_sweep: None,
            observers: Vec::new(),
            debug: true,
        }
    }

    /// Forward what the simulated podman emits, as the events stream does.
    pub fn events(mut self, events: mpsc::UnboundedReceiver<PodmanEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// The reactor's configuration (its `apps_dir` is the [`Setup::dir`]'s).
    pub fn config(mut self, cfg: ReactorConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Companions on, through a simulated systemd over a unit directory of
    /// its own; `prepare` sets that systemd up before the reactor starts.
    pub fn companions(mut self, prepare: impl FnOnce(&SimSystemd) + 'static) -> Self {
        self.companions = Some(Box::new(prepare));
        self
    }

    /// A start-up sweep within `within`, whether or not a stream connects.
    pub fn startup_sweep(mut self, within: Duration) -> Self {
        self.startup_sweep = Some(within);
        self
    }

    pub fn observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// No debug lines (nor tracing: no subscriber), as a service runs.
    pub fn quiet(mut self) -> Self {
        self.debug = false;
        self
    }

    /// The reactor, not running: for tests that feed it one trigger at a
    /// time. The [`Sim`]'s channel is not read until it runs.
    pub fn build(self) -> (Reactor<SimRuntime>, Sim) {
        let apps_dir = tempfile::tempdir().unwrap();
        let units = tempfile::tempdir().unwrap();
        let generator = tempfile::tempdir().unwrap();
        let mut cfg = self.cfg;
        let set = match self.apps {
            Apps::Fixed(set) => set,
            Apps::Dir(files) => {
                for (file, text) in &files {
                    std::fs::write(apps_dir.path().join(file), text).unwrap();
                }
                cfg.apps_dir = Some(apps_dir.path().to_path_buf());
                load_dir(apps_dir.path()).unwrap()
            }
        };
        let systemd = SimSystemd::new(&[units.path().to_path_buf()], generator.path());
        let (tx, rx) = mpsc::channel(4096);
        let out = SharedBuf::default();
        let started = Instant::now();
        let report = Reporter::new(
            self.debug,
            Clock::SinceStart(started),
            Box::new(out.clone()),
        );
        let mut reactor = Reactor::new(Arc::new(self.podman.clone()), rx, set, cfg, report);
        if let Some(prepare) = self.companions {
            prepare(&systemd);
            reactor = reactor
                .with_companions(Arc::new(systemd.clone()), vec![units.path().to_path_buf()]);
        }
        if let Some(within) = self.startup_sweep {
            reactor = reactor.with_startup_sweep(within);
        }
        for o in self.observers {
            reactor = reactor.with_observer(o);
        }
        if let Some(mut events) = self.events {
            // What the simulated podman emits reaches the reactor like the real stream.
            let fwd = tx.clone();
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    if fwd.send(Trigger::Podman(ev)).await.is_err() {
                        return;
                    }
                }
            });
        }
        let sim = Sim {
            podman: self.podman,
            systemd,
            apps_dir,
            units,
            _generator: generator,
            tx,
            out,
            started,
            cancel: CancellationToken::new(),
            task: None,
        };
        (reactor, sim)
    }

    /// The reactor, running.
    pub fn start(self) -> Sim {
        let (reactor, mut sim) = self.build();
        sim.task = Some(tokio::spawn(reactor.run(sim.cancel.clone())));
        sim
    }
}

/// A running reactor over the simulations, and what it printed.
pub struct Sim {
    pub podman: SimRuntime,
    /// Wired into the reactor only with [`Setup::companions`].
    pub systemd: SimSystemd,
    apps_dir: tempfile::TempDir,
    units: tempfile::TempDir,
    _generator: tempfile::TempDir,
    tx: mpsc::Sender<Trigger>,
    out: SharedBuf,
    /// Instant 0 of the debug lines' clock (`+    1.234s`).
    started: Instant,
    cancel: CancellationToken,
    task: Option<JoinHandle<Stats>>,
}

impl Sim {
    pub async fn send(&self, t: Trigger) {
        self.tx.send(t).await.unwrap();
    }

    /// Sleep until `ms` after instant 0 of the debug lines.
    pub async fn at(&self, ms: u64) {
        tokio::time::sleep_until(self.started + Duration::from_millis(ms)).await;
    }

    /// The events stream connects (a sweep follows).
    pub async fn connect(&self) {
        self.send(Trigger::Stream(StreamStatus::Connected { resumed: false }))
            .await;
    }

    /// The apps directory (with [`Setup::dir`]).
    pub fn apps_dir(&self) -> &Path {
        self.apps_dir.path()
    }

    pub fn apps_path(&self, file: &str) -> PathBuf {
        self.apps_dir.path().join(file)
    }

    /// A change in the apps directory, as its watcher reports it.
    pub async fn apps_changed(&self, file: &str, kind: ChangeKind) {
        let change = file_change(self.apps_dir.path(), file, kind);
        self.send(Trigger::AppsDir(change)).await;
    }

    /// Write `text` into the apps directory's `file` and say so (`modify`).
    pub async fn write_app_file(&self, file: &str, text: &str) {
        std::fs::write(self.apps_path(file), text).unwrap();
        self.apps_changed(file, ChangeKind::Modify).await;
    }

    /// A file in the companions' unit directory.
    pub fn unit_path(&self, file: &str) -> PathBuf {
        self.units.path().join(file)
    }

    pub fn read_unit(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.unit_path(file)).ok()
    }

    /// A change in the unit directory, as its watcher reports it.
    pub async fn unit_changed(&self, file: &str, kind: ChangeKind) {
        let change = file_change(self.units.path(), file, kind);
        self.send(Trigger::UnitDir(change)).await;
    }

    /// A podman event of the container a Quadlet unit runs.
    pub async fn unit_container_event(&self, unit: &str, action: &str) {
        let name = format!("systemd-{unit}");
        let ev = container_event(
            action,
            "c0ffee",
            &[("PODMAN_SYSTEMD_UNIT", unit), ("name", &name)],
        );
        self.send(Trigger::Podman(ev)).await;
    }

    /// The simulated podman's calls naming `app`.
    pub fn calls_for(&self, app: &str) -> Vec<String> {
        self.podman
            .calls()
            .into_iter()
            .filter(|c| c.ends_with(&format!(" {app}")))
            .collect()
    }

    /// The debug lines so far.
    pub fn output(&self) -> String {
        self.out.contents()
    }

    /// Shut the reactor down (it drains); its counters and debug lines.
    pub async fn stop(mut self) -> (Stats, String) {
        self.cancel.cancel();
        let task = self.task.take().expect("a started reactor");
        let stats = task.await.unwrap();
        (stats, self.out.contents())
    }
}

fn file_change(dir: &Path, file: &str, kind: ChangeKind) -> FileChange {
    FileChange {
        dir: dir.to_path_buf(),
        path: file.into(),
        kind,
    }
}

/// Wait (virtual time, 10 ms at a time, at most `limit`) until `cond`
/// holds. Re-reading the apps directory runs on a blocking thread, which
/// paused time does not wait for: each step also gives it real time.
pub async fn settle_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
        sleep(Duration::from_millis(10)).await;
    }
}

/// How many lines of `out` contain `needle`.
pub fn count(out: &str, needle: &str) -> usize {
    out.lines().filter(|l| l.contains(needle)).count()
}
