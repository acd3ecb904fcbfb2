//! `podkeeper run`, step by step: check and bind, start the sources, ask podman what it is, watch exits and unit directories, build the reactor with its observers, run it, and shut every task down.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::RunArgs;
use crate::manifest::{self, ManifestSet};
use crate::ops::control::ControlSocket;
use crate::reactor::{Reactor, ReactorConfig, Stats};
use crate::report::{secs, Reporter};
use crate::runtime::engine::ExitDir;
use crate::runtime::podman::{default_socket, PodmanRuntime, Timeouts};
use crate::runtime::systemd::{Scope, Systemctl, SystemdTimeouts};
use crate::sources::signals::DaemonSignals;
use crate::sources::CHANNEL_CAPACITY;
use crate::sources::{dir_watch, exit_watch, podman_events, sweep_timer, TriggerTx};
use crate::trust::{self, Finding};

/// How long podkeeper waits at start-up for podman to say what it is.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// The start-up sweep runs this soon even if the events stream has not
/// connected (a podman that accepts and never answers); a connect merges
/// into it.
pub const STARTUP_SWEEP_WITHIN: Duration = Duration::from_secs(2);

/// After the reactor's drain, how long the sources and listeners get to
/// return. Each stops at its next await on the token; only a task stuck in
/// a call outside tokio could take longer, and the exit does not wait for it.
pub const TASKS_STOP_WITHIN: Duration = Duration::from_secs(5);

/// `podkeeper run`: until a signal. Returns the process exit code.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    // Before anything else: until they are installed, SIGHUP would end the
    // process and SIGTERM would skip the drain.
    let signals = DaemonSignals::install().context("cannot install signal handlers")?;
    let mut report = Reporter::stdout(args.debug);
    let bound = Bound::check_and_bind(&args, &mut report).await?;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let tasks = Tasks::new(tx);
    start_watchers(&args, &bound, &tasks, &mut report);
    let engine = ask_podman(&bound, &mut report).await;
    if engine.is_ok() {
        start_selfcheck(&args, &bound.socket, &engine, &tasks);
    }
    watch_exits(&args, &bound.socket, engine, &tasks, &mut report);
    watch_unit_dirs(&bound, &tasks, &mut report);
    // The signal task sends SIGHUP's reload and cancels on SIGTERM; it is not
    // tracked: after a first signal it waits for a second, to exit at once.
    tokio::spawn(signals.watch(tasks.cancel.clone(), tasks.tx.clone()));
    let (reactor, told_stopping) = build_reactor(&args, bound, rx, &tasks);
    let stats = reactor.run(tasks.cancel.clone()).await;
    tasks.cancel.cancel();
    if let Some(told) = told_stopping {
        // With nothing in flight the reactor returns at once: the process
        // must not exit before systemd has been told it is stopping.
        let _ = told.await;
    }
    tasks.shut_down(&mut report).await;
    report.note("podkeeper", &stopped(&stats), false);
    Ok(0)
}

/// What `run` checks and binds before any task starts: a refused directory,
/// a socket another podkeeper holds or a taken port stops the start-up
/// here, with a clear error.
struct Bound {
    apps_dir: PathBuf,
    apps: ManifestSet,
    systemd: Systemctl,
    unit_dirs: Vec<PathBuf>,
    control: Option<ControlSocket>,
    metrics: Option<TcpListener>,
    socket: PathBuf,
    runtime: Arc<PodmanRuntime>,
}

impl Bound {
    async fn check_and_bind(args: &RunArgs, report: &mut Reporter) -> anyhow::Result<Self> {
        let (systemd, unit_dirs) = companion_setup(args);
        check_directories(&args.apps, &unit_dirs, report)?;
        let apps = manifest::load_dir(&args.apps)?;
        let control = match args.no_control_socket {
            true => None,
            false => {
                let path = args
                    .control_socket
                    .clone()
                    .unwrap_or_else(crate::ops::control::default_path);
                Some(ControlSocket::bind(&path).context("control socket")?)
            }
        };
        let metrics = match args.metrics_listen {
            Some(addr) => Some(crate::ops::metrics_http::bind(addr).await?),
            None => None,
        };
        let socket = args.socket.clone().unwrap_or_else(default_socket);
        let runtime = Arc::new(PodmanRuntime::new(&socket, Timeouts::default()));
        report.note(
            "podkeeper",
            &format!(
                "{} starting: {} apps from {}, podman at {}, sweep every {}",
                env!("CARGO_PKG_VERSION"),
                apps.apps.len(),
                args.apps.display(),
                socket.display(),
                secs(args.sweep_interval),
            ),
            false,
        );
        Ok(Bound {
            apps_dir: args.apps.clone(),
            apps,
            systemd,
            unit_dirs,
            control,
            metrics,
            socket,
            runtime,
        })
    }
}

/// The tasks beside the reactor, as mini-redis's `Listener` holds them: the
/// sender they feed, the token that stops them, and the tracker the
/// shutdown waits on.
struct Tasks {
    tx: TriggerTx,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    fn new(tx: TriggerTx) -> Self {
        Tasks {
            tx,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// A token cancelled with the shutdown.
    fn token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// A task a source spawned itself, waited for like the others.
    fn track(&self, task: JoinHandle<()>) {
        self.tracker.spawn(async move {
            let _ = task.await;
        });
    }

    /// After the drain: every task has its cancellation; wait for them to
    /// return (the control socket removes its file as it goes), bounded.
    async fn shut_down(self, report: &mut Reporter) {
        self.cancel.cancel();
        self.tracker.close();
        drop(self.tx);
        if tokio::time::timeout(TASKS_STOP_WITHIN, self.tracker.wait())
            .await
            .is_err()
        {
            report.note(
                "podkeeper",
                &format!(
                    "{} task(s) still running {} after the shutdown; exiting without them",
                    self.tracker.len(),
                    secs(TASKS_STOP_WITHIN)
                ),
                true,
            );
        }
    }
}

/// The events stream, the sweep timer and the apps directory's watcher.
fn start_watchers(args: &RunArgs, bound: &Bound, tasks: &Tasks, report: &mut Reporter) {
    let tx = &tasks.tx;
    tasks.spawn(podman_events::run(
        bound.socket.clone(),
        tx.clone(),
        tasks.token(),
    ));
    tasks.spawn(sweep_timer::run(
        args.sweep_interval,
        tx.clone(),
        tasks.token(),
    ));
    let apps_watch = dir_watch::spawn(
        vec![bound.apps_dir.clone()],
        dir_watch::Watched::AppsDir,
        tx.clone(),
        tasks.token(),
    );
    if !apps_watch.all_watched() {
        report.note("apps-dir", &apps_watch.describe(), true);
    }
    tasks.track(apps_watch.task);
    // container.secrets: the directories of the secret files declared at
    // start-up, so a changed secret is read again at once (others: SIGHUP).
    let secret_dirs = crate::manifest::secrets::dirs(&bound.apps);
    if !secret_dirs.is_empty() {
        let w = dir_watch::spawn(
            secret_dirs,
            dir_watch::Watched::SecretDirs,
            tx.clone(),
            tasks.token(),
        );
        if !w.all_watched() {
            report.note("secrets", &w.describe(), true);
        }
        tasks.track(w.task);
    }
}

/// What podman this is, and where its conmon writes exit files; podkeeper
/// starts anyway when it does not answer.
async fn ask_podman(bound: &Bound, report: &mut Reporter) -> Result<Found, String> {
    let engine = match tokio::time::timeout(CONNECT_LIMIT, bound.runtime.engine()).await {
        Ok(Ok(engine)) => {
            report.note("podman", &engine.describe(), false);
            Ok(Found {
                version: engine.version.clone(),
                exit_dir: engine.exit_dir,
            })
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}", secs(CONNECT_LIMIT))),
    };
    if let Err(e) = &engine {
        report.note(
            "podman",
            &format!(
                "not answering at {}: {e}; podkeeper keeps trying",
                bound.socket.display()
            ),
            true,
        );
    }
    engine
}

/// What podman said at start-up.
struct Found {
    version: String,
    exit_dir: ExitDir,
}

/// Once, beside the start-up: one `info`, then warnings only.
fn start_selfcheck(args: &RunArgs, socket: &Path, engine: &Result<Found, String>, tasks: &Tasks) {
    let watched = match (&args.exit_dir, engine) {
        _ if args.no_exit_watch => None,
        (Some(dir), _) => Some(dir.clone()),
        (None, Ok(found)) => found.exit_dir.watchable().map(Path::to_path_buf),
        (None, Err(_)) => None,
    };
    tasks.spawn(crate::ops::selfcheck::run(
        socket.to_path_buf(),
        engine.as_ref().ok().map(|f| f.version.clone()),
        watched,
        Timeouts::default().quick,
        Reporter::stdout(args.debug),
    ));
}

/// conmon's exit directory: the one `--exit-dir` names, else the one podman
/// uses (followed as it changes), unless `--no-exit-watch`.
fn watch_exits(
    args: &RunArgs,
    socket: &Path,
    engine: Result<Found, String>,
    tasks: &Tasks,
    report: &mut Reporter,
) {
    let engine = engine.map(|f| f.exit_dir);
    if args.no_exit_watch {
        return;
    }
    let Some(dir) = &args.exit_dir else {
        // Reports itself; keeps asking while it has only podman's default.
        tasks.spawn(exit_watch::follow(
            socket.to_path_buf(),
            engine,
            tasks.tx.clone(),
            tasks.token(),
            Reporter::stdout(args.debug),
            Timeouts::default().quick,
        ));
        return;
    };
    if let Ok(ExitDir::Found { path, how }) = &engine {
        if path != dir {
            report.note(
                "exit-dir",
                &format!("podman's conmon writes exit files to {} ({how}); watching {} as --exit-dir says", path.display(), dir.display()),
                true,
            );
        }
    }
    match exit_watch::spawn(dir.clone(), tasks.tx.clone(), tasks.token()) {
        Ok(task) => {
            tasks.track(task);
            report.note(
                "exit-dir",
                &format!("watching {} (--exit-dir)", dir.display()),
                false,
            );
        }
        Err(e) => report.note(
            "exit-dir",
            &format!(
                "cannot watch {}: {e}; exits are seen through the events stream only",
                dir.display()
            ),
            true,
        ),
    }
}

/// The unit directories' watcher, and the line saying where companions go.
fn watch_unit_dirs(bound: &Bound, tasks: &Tasks, report: &mut Reporter) {
    let unit_watch = dir_watch::spawn(
        bound.unit_dirs.clone(),
        dir_watch::Watched::UnitDir,
        tasks.tx.clone(),
        tasks.token(),
    );
    report.note(
        "companions",
        &format!(
            "{} declared; written to {}; {}; systemctl {}",
            bound.apps.companions().count(),
            bound.unit_dirs[0].display(),
            unit_watch.describe(),
            bound.systemd.scope(),
        ),
        !unit_watch.all_watched(),
    );
    tasks.track(unit_watch.task);
}

/// The reactor, with the status board behind the control socket and
/// `/metrics`, and systemd's notifier; the task that says STOPPING=1.
fn build_reactor(
    args: &RunArgs,
    bound: Bound,
    rx: mpsc::Receiver<crate::trigger::Trigger>,
    tasks: &Tasks,
) -> (Reactor<PodmanRuntime>, Option<JoinHandle<()>>) {
    let cfg = ReactorConfig {
        apps_dir: Some(bound.apps_dir),
        prune_orphans: args.prune_orphans,
        max_concurrent: args.max_concurrent,
        ..ReactorConfig::default()
    };
    let report = Reporter::stdout(args.debug);
    let mut reactor = Reactor::new(bound.runtime, rx, bound.apps, cfg, report)
        .with_companions(Arc::new(bound.systemd), bound.unit_dirs)
        .with_startup_sweep(STARTUP_SWEEP_WITHIN)
        .with_memory(
            Some(
                args.state_file
                    .clone()
                    .map(|p| crate::host::absolute(&p))
                    .unwrap_or_else(crate::ops::state_file::default_path),
            ),
            args.adopt,
        );
    if bound.control.is_some() || bound.metrics.is_some() {
        let shared = crate::ops::state::Shared::new();
        // `retry APP` reaches the reactor as a trigger.
        let _ = shared.triggers.set(tasks.tx.clone());
        reactor = reactor.with_observer(Box::new(crate::ops::state::Records::new(shared.clone())));
        serve(args, bound.control, bound.metrics, shared, tasks);
    }
    let Some(notifier) = crate::ops::notify::Notifier::from_env() else {
        return (reactor, None);
    };
    reactor = reactor.with_observer(Box::new(notifier));
    // STOPPING=1 as the shutdown begins, not when the drain is over.
    let stopping = tasks.cancel.clone();
    let told = tokio::spawn(async move {
        stopping.cancelled().await;
        crate::ops::notify::stopping();
    });
    (reactor, Some(told))
}

/// The control socket and the `/metrics` listener, off the reactor's task.
fn serve(
    args: &RunArgs,
    control: Option<ControlSocket>,
    metrics: Option<TcpListener>,
    shared: Arc<crate::ops::state::Shared>,
    tasks: &Tasks,
) {
    let mut report = Reporter::stdout(args.debug);
    if let Some(control) = control {
        report.note(
            "control",
            &format!("status and metrics on {}", control.path().display()),
            false,
        );
        tasks.spawn(control.serve(shared.clone(), tasks.token()));
    }
    if let Some(listener) = metrics {
        if let Ok(addr) = listener.local_addr() {
            report.note("metrics", &format!("serving http://{addr}/metrics"), false);
        }
        tasks.spawn(crate::ops::metrics_http::serve(
            listener,
            shared,
            tasks.token(),
        ));
    }
}

fn stopped(stats: &Stats) -> String {
    use crate::output::{dropped, Stream};
    let lost = dropped(Stream::Stdout) + dropped(Stream::Stderr);
    format!(
        "stopped: {} triggers, {} reconciles, {} sweeps, {} failures{}",
        stats.triggers,
        stats.reconciles,
        stats.sweeps,
        stats.failures,
        match lost {
            0 => String::new(),
            n => format!(", {n} output lines dropped (nobody read them in time)"),
        }
    )
}

/// Check the apps and unit directories before trusting them: a refusal
/// stops `run`, a warning is reported.
fn check_directories(
    apps: &Path,
    unit_dirs: &[PathBuf],
    report: &mut Reporter,
) -> anyhow::Result<()> {
    let mut findings = trust::check_dir("apps directory", apps);
    for dir in unit_dirs {
        findings.extend(trust::check_dir("unit directory", dir));
    }
    let mut refusals = Vec::new();
    for f in findings {
        match f {
            Finding::Refuse(t) => refusals.push(t),
            Finding::Warn(t) => report.note("directory", &t, true),
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("refusing to start: {}", refusals.join("; "))
    }
}

/// The systemd manager companions run under, and the unit directories
/// (absolute; the first is where companions are written).
fn companion_setup(args: &RunArgs) -> (Systemctl, Vec<PathBuf>) {
    let scope = match (args.user, args.system) {
        (true, _) => Scope::User,
        (_, true) => Scope::System,
        _ => Scope::default_for_current_user(),
    };
    let mut dirs = args.unit_dirs.clone();
    if dirs.is_empty() {
        dirs.push(scope.default_unit_dir());
    }
    let dirs = dirs
        .into_iter()
        .map(|d| crate::host::absolute(&d))
        .collect();
    (Systemctl::new(scope, SystemdTimeouts::default()), dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn tasks() -> Tasks {
        Tasks::new(mpsc::channel(1).0)
    }

    #[tokio::test(start_paused = true)]
    async fn the_shutdown_should_wait_for_a_source_that_finishes_after_its_cancellation() {
        let tasks = tasks();
        let done = Arc::new(AtomicBool::new(false));
        let (token, flag) = (tasks.token(), done.clone());
        tasks.spawn(async move {
            token.cancelled().await;
            // Tidying up (a socket file, a last send) takes a while.
            tokio::time::sleep(Duration::from_secs(1)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tasks.shut_down(&mut Reporter::stdout(false)).await;
        assert!(done.load(Ordering::SeqCst), "returned before the task");
    }

    #[tokio::test(start_paused = true)]
    async fn the_shutdown_should_give_up_on_a_task_that_never_returns_after_its_bound() {
        let tasks = tasks();
        tasks.spawn(std::future::pending());
        let t0 = tokio::time::Instant::now();
        tasks.shut_down(&mut Reporter::stdout(false)).await;
        assert_eq!(t0.elapsed(), TASKS_STOP_WITHIN);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_a_source_spawned_itself_should_be_waited_for_too() {
        let tasks = tasks();
        let token = tasks.token();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        tasks.track(tokio::spawn(async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            flag.store(true, Ordering::SeqCst);
        }));
        tasks.shut_down(&mut Reporter::stdout(false)).await;
        assert!(done.load(Ordering::SeqCst));
    }
}
