//! The command line: `run`, `check`, `record`, `replay`, `export`, their flags, and how they wire sources, channel and reactor.

pub mod docs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::duration::parse_sweep_interval;
use crate::manifest;
use crate::reactor::{Reactor, ReactorConfig};
use crate::report::Reporter;
use crate::runtime::engine::ExitDir;
use crate::runtime::podman::{default_socket, PodmanRuntime, Timeouts};
use crate::runtime::systemd::{Scope, Systemctl, SystemdTimeouts};
use crate::sources::signals::DaemonSignals;
use crate::sources::{dir_watch, exit_watch, podman_events, sweep_timer, CHANNEL_CAPACITY};
use crate::trust::{self, Finding};

/// How long podkeeper waits at start-up for podman to say what it is.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// The start-up sweep runs this soon even if the events stream has not
/// connected (a podman that accepts and never answers); a connect merges
/// into it.
pub const STARTUP_SWEEP_WITHIN: Duration = Duration::from_secs(2);

#[derive(Debug, Parser)]
#[command(
    name = "podkeeper",
    version,
    about = "Keeps podman apps in the state their manifests declare, driven by events."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format when not in --debug mode (RUST_LOG sets the level; default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Keep the apps in DIR running as declared, until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Validate every manifest in DIR: one line per app, error and skipped file; exit 1 on any error.
    Check(CheckArgs),
    /// Write everything `run` would react to into FILE.jsonl, acting on nothing.
    Record(crate::recording::record::RecordArgs),
    /// Feed a recording to the reactor against a simulated podman, in virtual time.
    Replay(crate::recording::replay::ReplayArgs),
    /// Write the apps in another tool's format (`export kube`: Kubernetes YAML).
    Export(crate::export::ExportArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, podkeeper(1), in roff.
    Manpage,
    /// Ask the running daemon how every app and companion stands (exit 3: not running).
    Status(crate::ops::status::StatusArgs),
    /// Print the running daemon's Prometheus metrics (exit 3: not running).
    Metrics(crate::ops::status::MetricsArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Directory of app manifests (*.yaml, *.yml).
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
    /// Podman API socket [default: $CONTAINER_HOST, else /run/podman/podman.sock
    /// for root, else $XDG_RUNTIME_DIR/podman/podman.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// How often the full sweep runs (it also runs at start-up and after every reconnect).
    /// From 1s to 7 days.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_sweep_interval)]
    pub sweep_interval: Duration,
    /// Print every event received and every reaction, one line each.
    #[arg(long)]
    pub debug: bool,
    /// Remove containers labelled io.podkeeper.app that have no manifest.
    #[arg(long)]
    pub prune_orphans: bool,
    /// How many apps may be reconciled at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_concurrent: usize,
    /// conmon's exit directory, watched to hear of a container's exit before
    /// the events stream reports it [default: read off a running container's
    /// conmon (--exit-dir), else podman's default: /run/libpod/exits rootful,
    /// $XDG_RUNTIME_DIR/libpod/tmp/exits rootless].
    #[arg(long, value_name = "DIR")]
    pub exit_dir: Option<PathBuf>,
    /// Do not watch the exit directory: rely on the events stream alone.
    #[arg(long)]
    pub no_exit_watch: bool,
    /// Quadlet unit directory (repeatable): companions are written into the
    /// first, all are watched [default: Quadlet's own: /etc/containers/systemd
    /// with --system; $XDG_CONFIG_HOME/containers/systemd, else
    /// ~/.config/containers/systemd, with --user].
    #[arg(long = "unit-dir", value_name = "DIR")]
    pub unit_dirs: Vec<PathBuf>,
    /// Companions run under your user's systemd manager (systemctl --user)
    /// [default when not root].
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// Companions run under the system manager [default for root].
    #[arg(long)]
    pub system: bool,
    /// Where `podkeeper status` and `podkeeper metrics` ask (a unix socket,
    /// mode 0600) [default: /run/podkeeper/control.sock for root, else
    /// $XDG_RUNTIME_DIR/podkeeper/control.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "no_control_socket")]
    pub control_socket: Option<PathBuf>,
    /// Open no control socket (`status` and `metrics` then cannot ask).
    #[arg(long)]
    pub no_control_socket: bool,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Directory of app manifests (*.yaml, *.yml).
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
}

/// `podkeeper check`: returns the process exit code.
pub fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let trust = trust::check_dir("apps directory", &args.apps);
    let set = manifest::load_dir(&args.apps)?;
    crate::report::print_text(&crate::report::check_report(&set, &trust));
    let refused = trust.iter().any(Finding::is_refusal);
    Ok(if set.errors.is_empty() && !refused {
        0
    } else {
        1
    })
}

/// Check the apps and unit directories before trusting them: a refusal
/// stops `run`, a warning is reported.
fn check_directories(
    apps: &std::path::Path,
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

/// `podkeeper run`: until a signal. Returns the process exit code.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    // Before anything else: until they are installed, SIGHUP would end the
    // process and SIGTERM would skip the drain.
    let signals = DaemonSignals::install().context("cannot install signal handlers")?;
    let mut report = Reporter::stdout(args.debug);
    let (systemd, unit_dirs) = companion_setup(&args);
    check_directories(&args.apps, &unit_dirs, &mut report)?;
    let apps = manifest::load_dir(&args.apps)?;
    // Before any source starts: a socket another podkeeper holds, or a
    // taken port, stops the start-up with a clear error.
    let control = match args.no_control_socket {
        true => None,
        false => {
            let path = args
                .control_socket
                .clone()
                .unwrap_or_else(crate::ops::control::default_path);
            Some(crate::ops::control::ControlSocket::bind(&path).context("control socket")?)
        }
    };
    let metrics_listener = match args.metrics_listen {
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
            crate::report::secs(args.sweep_interval),
        ),
        false,
    );

    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let cancel = CancellationToken::new();
    tokio::spawn(podman_events::run(
        socket.clone(),
        tx.clone(),
        cancel.child_token(),
    ));
    tokio::spawn(sweep_timer::run(
        args.sweep_interval,
        tx.clone(),
        cancel.child_token(),
    ));
    let apps_watch = dir_watch::spawn(
        vec![args.apps.clone()],
        dir_watch::Watched::AppsDir,
        tx.clone(),
        cancel.child_token(),
    );
    if !apps_watch.all_watched() {
        report.note("apps-dir", &apps_watch.describe(), true);
    }
    // What podman this is, and where its conmon writes exit files.
    let mut podman_version = None;
    let engine = match tokio::time::timeout(CONNECT_LIMIT, runtime.engine()).await {
        Ok(Ok(engine)) => {
            report.note("podman", &engine.describe(), false);
            podman_version = Some(engine.version.clone());
            Ok(engine.exit_dir)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            crate::report::secs(CONNECT_LIMIT)
        )),
    };
    if let Err(e) = &engine {
        report.note(
            "podman",
            &format!(
                "not answering at {}: {e}; podkeeper keeps trying",
                socket.display()
            ),
            true,
        );
    }
    if engine.is_ok() {
        // Once, beside the start-up: one `info`, then warnings only.
        let watched = match (&args.exit_dir, &engine) {
            _ if args.no_exit_watch => None,
            (Some(dir), _) => Some(dir.clone()),
            (None, Ok(found)) => found.watchable().map(std::path::Path::to_path_buf),
            (None, Err(_)) => None,
        };
        tokio::spawn(crate::ops::selfcheck::run(
            socket.clone(),
            podman_version,
            watched,
            Timeouts::default().quick,
            Reporter::stdout(args.debug),
        ));
    }
    match (&args.exit_dir, args.no_exit_watch) {
        (_, true) => {}
        (Some(dir), false) => {
            if let Ok(ExitDir::Found { path, how }) = &engine {
                if path != dir {
                    report.note(
                        "exit-dir",
                        &format!("podman's conmon writes exit files to {} ({how}); watching {} as --exit-dir says", path.display(), dir.display()),
                        true,
                    );
                }
            }
            match exit_watch::spawn(dir.clone(), tx.clone(), cancel.child_token()) {
                Ok(_) => report.note(
                    "exit-dir",
                    &format!("watching {} (--exit-dir)", dir.display()),
                    false,
                ),
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
        (None, false) => {
            // Reports itself; keeps asking while it has only podman's default.
            tokio::spawn(exit_watch::follow(
                socket.clone(),
                engine,
                tx.clone(),
                cancel.child_token(),
                Reporter::stdout(args.debug),
                Timeouts::default().quick,
            ));
        }
    }
    let unit_watch = dir_watch::spawn(
        unit_dirs.clone(),
        dir_watch::Watched::UnitDir,
        tx.clone(),
        cancel.child_token(),
    );
    report.note(
        "companions",
        &format!(
            "{} declared; written to {}; {}; systemctl {}",
            apps.companions().count(),
            unit_dirs[0].display(),
            unit_watch.describe(),
            systemd.scope(),
        ),
        !unit_watch.all_watched(),
    );
    // The signal task sends SIGHUP's reload; it holds its sender until the
    // shutdown begins. The reactor stops on the cancellation.
    tokio::spawn(signals.watch(cancel.clone(), tx));
    let cfg = ReactorConfig {
        apps_dir: Some(args.apps.clone()),
        prune_orphans: args.prune_orphans,
        max_concurrent: args.max_concurrent,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::new(runtime, rx, apps, cfg, report)
        .with_companions(Arc::new(systemd), unit_dirs)
        .with_startup_sweep(STARTUP_SWEEP_WITHIN);
    if control.is_some() || metrics_listener.is_some() {
        let shared = crate::ops::state::Shared::new();
        reactor = reactor.with_observer(Box::new(crate::ops::state::Records::new(shared.clone())));
        let mut report = Reporter::stdout(args.debug);
        if let Some(control) = control {
            report.note(
                "control",
                &format!("status and metrics on {}", control.path().display()),
                false,
            );
            tokio::spawn(control.serve(shared.clone(), cancel.child_token()));
        }
        if let Some(listener) = metrics_listener {
            if let Ok(addr) = listener.local_addr() {
                report.note("metrics", &format!("serving http://{addr}/metrics"), false);
            }
            tokio::spawn(crate::ops::metrics_http::serve(
                listener,
                shared,
                cancel.child_token(),
            ));
        }
    }
    let mut told_stopping = None;
    if let Some(notifier) = crate::ops::notify::Notifier::from_env() {
        reactor = reactor.with_observer(Box::new(notifier));
        // STOPPING=1 as the shutdown begins, not when the drain is over.
        let stopping = cancel.clone();
        told_stopping = Some(tokio::spawn(async move {
            stopping.cancelled().await;
            crate::ops::notify::stopping();
        }));
    }
    let stats = reactor.run(cancel.clone()).await;
    if let Some(told) = told_stopping {
        // With nothing in flight the reactor returns at once: the process
        // must not exit before systemd has been told it is stopping.
        cancel.cancel();
        let _ = told.await;
    }
    let mut report = Reporter::stdout(args.debug);
    report.note(
        "podkeeper",
        &format!(
            "stopped: {} triggers, {} reconciles, {} sweeps, {} failures",
            stats.triggers, stats.reconciles, stats.sweeps, stats.failures
        ),
        false,
    );
    Ok(0)
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
