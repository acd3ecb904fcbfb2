//! The command line: `run`, `check`, `record`, `replay`, `export` and their flags; `run`'s start-up and shutdown are `cli/daemon.rs`.

pub mod adopt;
mod daemon;
pub mod docs;

pub use daemon::{run, STARTUP_SWEEP_WITHIN, TASKS_STOP_WITHIN};

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::duration::parse_sweep_interval;
use crate::manifest;
use crate::trust::{self, Finding};

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
    /// Say which apps' containers podkeeper did not make would be adopted,
    /// replaced or left (--dry-run): exit 0 when all would be adopted.
    Adopt(adopt::AdoptArgs),
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
    /// Forget the spec APP failed its update gate with, and try it again now (exit 3: not running).
    Retry(crate::ops::status::RetryArgs),
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
    /// Where podkeeper keeps what podman cannot show across restarts: specs
    /// that failed their update gate, containers it adopted [default:
    /// /var/lib/podkeeper/state.json for root, else
    /// $XDG_STATE_HOME/podkeeper/state.json, ~/.local/state when unset].
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Take over a running container of an app's name that podkeeper did not
    /// make, when it matches the manifest, without restarting it (every app;
    /// `adopt: true` in a manifest does it for that app only).
    #[arg(long)]
    pub adopt: bool,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Directory of app manifests (*.yaml, *.yml).
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
    /// Also ask podman, for each app whose container podkeeper did not
    /// make: would it be adopted, or how does it differ (read-only).
    #[arg(long)]
    pub adopt: bool,
    /// Podman API socket for --adopt [default: as `run`'s].
    #[arg(long, value_name = "PATH", requires = "adopt")]
    pub socket: Option<PathBuf>,
}

/// `podkeeper check`: returns the process exit code.
pub fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let trust = trust::check_dir("apps directory", &args.apps);
    let set = manifest::load_dir(&args.apps)?;
    crate::report::print_text(&crate::report::check_report(&set, &trust));
    if args.adopt {
        let socket = args
            .socket
            .clone()
            .unwrap_or_else(crate::runtime::podman::default_socket);
        let rows = adopt::survey_blocking(&socket, &set)?;
        crate::report::print_text(&adopt::render(&rows, set.apps.len()));
    }
    let refused = trust.iter().any(Finding::is_refusal);
    Ok(if set.errors.is_empty() && !refused {
        0
    } else {
        1
    })
}
