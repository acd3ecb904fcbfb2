//! The service manager companions run under: the calls the companion reconciler may make, and `systemctl` as the real one.
//!
//! The calls are shaped for batches: one `show` answers for any number of
//! units, one `daemon-reload` serves every file written in a batch, one
//! `reset-failed` takes many units. [`Systemctl`] runs `systemctl [--user]` as
//! a subprocess per call, each under a timeout (the process is killed when it
//! runs out). The trait is object safe so the reactor can hold any
//! implementation (the real one, or [`super::sim_systemd::SimSystemd`]) without
//! a second type parameter.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Which systemd manager to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The calling user's manager (`systemctl --user`).
    User,
    /// The system manager.
    System,
}

impl Scope {
    /// `--user` unless we run as root (Quadlet's own default split).
    pub fn default_for_current_user() -> Scope {
        if crate::host::is_root() {
            Scope::System
        } else {
            Scope::User
        }
    }

    /// Where Quadlet looks first for this scope's unit files, hence where
    /// companions are written when no `--unit-dir` is given.
    pub fn default_unit_dir(self) -> PathBuf {
        match self {
            Scope::System => PathBuf::from("/etc/containers/systemd"),
            Scope::User => {
                let config = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
                    .unwrap_or_else(|| PathBuf::from(".config"));
                config.join("containers/systemd")
            }
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::User => "--user",
            Scope::System => "--system",
        })
    }
}

/// One unit as `systemctl show` reports it (the properties the reconciler reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub id: String,
    /// `loaded`, `not-found`, `error`, `masked`, …
    pub load_state: String,
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`
    pub active_state: String,
    /// `running`, `dead`, `failed`, `auto-restart`, `stop-post`, …
    pub sub_state: String,
    /// `success`, `exit-code`, `signal`, …
    pub result: String,
    pub n_restarts: u32,
    /// The loaded definition (for Quadlet units: the generated file).
    pub fragment_path: String,
    /// The file the definition was generated from (the Quadlet file).
    pub source_path: String,
    /// The files changed on disk since systemd loaded them.
    pub need_daemon_reload: bool,
    /// The unit's `Restart=` policy (`no`, `always`, `on-failure`, …).
    pub restart: String,
    /// Changes on every activation: tells one run of the service from the next.
    pub invocation_id: String,
    /// CLOCK_MONOTONIC µs of the main process's start and exit (0: never).
    pub exec_main_start_us: u64,
    pub exec_main_exit_us: u64,
}

/// The properties [`Systemctl::show`] asks for.
pub const SHOW_PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,Result,NRestarts,FragmentPath,SourcePath,NeedDaemonReload,Restart,InvocationID,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic";

impl UnitState {
    pub fn is_loaded(&self) -> bool {
        self.load_state == "loaded"
    }

    /// Up (a reload keeps it up).
    pub fn is_active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }

    /// systemd's own `Restart=` is bringing it back right now: not ours to touch.
    pub fn is_auto_restarting(&self) -> bool {
        self.active_state == "activating" && self.sub_state == "auto-restart"
    }

    /// How long the main process ran before it exited, when it did.
    pub fn last_uptime(&self) -> Option<Duration> {
        (self.exec_main_start_us > 0 && self.exec_main_exit_us > self.exec_main_start_us)
            .then(|| Duration::from_micros(self.exec_main_exit_us - self.exec_main_start_us))
    }

    /// `active/running`, for people.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.active_state, self.sub_state)
    }

    fn set(&mut self, key: &str, value: &str) {
        let flag = |v: &str| v == "yes";
        let num = |v: &str| v.parse().unwrap_or(0);
        match key {
            "Id" => self.id = value.into(),
            "LoadState" => self.load_state = value.into(),
            "ActiveState" => self.active_state = value.into(),
            "SubState" => self.sub_state = value.into(),
            "Result" => self.result = value.into(),
            "NRestarts" => self.n_restarts = num(value) as u32,
            "FragmentPath" => self.fragment_path = value.into(),
            "SourcePath" => self.source_path = value.into(),
            "NeedDaemonReload" => self.need_daemon_reload = flag(value),
            "Restart" => self.restart = value.into(),
            "InvocationID" => self.invocation_id = value.into(),
            "ExecMainStartTimestampMonotonic" => self.exec_main_start_us = num(value),
            "ExecMainExitTimestampMonotonic" => self.exec_main_exit_us = num(value),
            _ => {}
        }
    }
}

/// Parse `systemctl show` output: `Key=value` lines, one block per unit, blocks
/// separated by an empty line, in the order the units were asked for.
pub fn parse_show(text: &str, asked: &[String]) -> Vec<UnitState> {
    let mut units = Vec::new();
    let mut cur: Option<UnitState> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            units.extend(cur.take());
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            cur.get_or_insert_with(UnitState::default).set(k, v);
        }
    }
    units.extend(cur);
    // systemd answers in argument order; fill in an Id it left out.
    for (u, name) in units.iter_mut().zip(asked) {
        if u.id.is_empty() {
            u.id = name.clone();
        }
    }
    units
}

/// Why a systemd call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemdError {
    /// No answer in time (the `systemctl` process was killed).
    Timeout { call: &'static str, after: Duration },
    /// `systemctl` could not be run at all.
    Spawn(String),
    /// It ran and said no (exit status and what it printed).
    Failed { call: &'static str, message: String },
}

impl std::fmt::Display for SystemdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SystemdError::Timeout { call, after } => {
                write!(
                    f,
                    "systemctl {call} did not answer within {}s",
                    after.as_secs_f32()
                )
            }
            SystemdError::Spawn(e) => write!(f, "cannot run systemctl: {e}"),
            SystemdError::Failed { call, message } => write!(f, "systemctl {call}: {message}"),
        }
    }
}

impl std::error::Error for SystemdError {}

pub type SystemdResult<T> = Result<T, SystemdError>;
/// A boxed call, so that [`Systemd`] is object safe.
pub type SystemdFuture<'a, T> = Pin<Box<dyn Future<Output = SystemdResult<T>> + Send + 'a>>;

/// What the companion reconciler needs from systemd. Every call must end
/// (the real one has a timeout on each).
pub trait Systemd: Send + Sync + 'static {
    /// Re-run the generators (Quadlet) and reload every unit definition.
    fn daemon_reload(&self) -> SystemdFuture<'_, ()>;
    /// The state of every unit in `units`, in one call, in the same order.
    fn show<'a>(&'a self, units: &'a [String]) -> SystemdFuture<'a, Vec<UnitState>>;
    /// Start and wait for the start job to finish (fails if the unit fails to start).
    fn start<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()>;
    fn restart<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()>;
    fn stop<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()>;
    /// Forget the failed state (and the start-limit counter) of these units, in one call.
    fn reset_failed<'a>(&'a self, units: &'a [String]) -> SystemdFuture<'a, ()>;
}

/// How long each kind of call may take.
#[derive(Debug, Clone, Copy)]
pub struct SystemdTimeouts {
    /// show, reset-failed
    pub query: Duration,
    /// daemon-reload (runs every generator)
    pub reload: Duration,
    /// start, restart, stop: they wait for the job (a Quadlet start runs `podman run`)
    pub job: Duration,
}

impl Default for SystemdTimeouts {
    fn default() -> Self {
        SystemdTimeouts {
            query: Duration::from_secs(10),
            reload: Duration::from_secs(30),
            job: Duration::from_secs(90),
        }
    }
}

/// The real one: `systemctl [--user] …` as a subprocess per call.
#[derive(Debug, Clone)]
pub struct Systemctl {
    scope: Scope,
    timeouts: SystemdTimeouts,
    program: PathBuf,
}

impl Systemctl {
    pub fn new(scope: Scope, timeouts: SystemdTimeouts) -> Self {
        Systemctl {
            scope,
            timeouts,
            program: PathBuf::from("systemctl"),
        }
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    async fn run(
        &self,
        call: &'static str,
        after: Duration,
        args: &[&str],
        units: &[String],
    ) -> SystemdResult<String> {
        let mut cmd = Command::new(&self.program);
        if self.scope == Scope::User {
            cmd.arg("--user");
        }
        cmd.args(["--no-pager", "--no-ask-password"])
            .args(args)
            .args(units)
            .env("LC_ALL", "C")
            .env("SYSTEMD_COLORS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the future on timeout kills the process.
            .kill_on_drop(true);
        let out = match tokio::time::timeout(after, cmd.output()).await {
            Err(_) => return Err(SystemdError::Timeout { call, after }),
            Ok(Err(e)) => return Err(SystemdError::Spawn(e.to_string())),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The first line says what failed; the rest points at journalctl.
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let status = out
            .status
            .code()
            .map_or_else(|| "killed".to_string(), |c| format!("exit {c}"));
        Err(SystemdError::Failed {
            call,
            message: format!("{} ({status})", first.trim()),
        })
    }
}

impl Systemd for Systemctl {
    fn daemon_reload(&self) -> SystemdFuture<'_, ()> {
        Box::pin(async move {
            self.run(
                "daemon-reload",
                self.timeouts.reload,
                &["daemon-reload"],
                &[],
            )
            .await
            .map(drop)
        })
    }

    fn show<'a>(&'a self, units: &'a [String]) -> SystemdFuture<'a, Vec<UnitState>> {
        Box::pin(async move {
            if units.is_empty() {
                return Ok(Vec::new());
            }
            let out = self
                .run(
                    "show",
                    self.timeouts.query,
                    &["show", "-p", SHOW_PROPERTIES, "--"],
                    units,
                )
                .await?;
            let states = parse_show(&out, units);
            if states.len() != units.len() {
                return Err(SystemdError::Failed {
                    call: "show",
                    message: format!("asked for {} units, got {}", units.len(), states.len()),
                });
            }
            Ok(states)
        })
    }

    fn start<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()> {
        Box::pin(async move { self.job("start", unit).await })
    }

    fn restart<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()> {
        Box::pin(async move { self.job("restart", unit).await })
    }

    fn stop<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()> {
        Box::pin(async move { self.job("stop", unit).await })
    }

    fn reset_failed<'a>(&'a self, units: &'a [String]) -> SystemdFuture<'a, ()> {
        Box::pin(async move {
            if units.is_empty() {
                return Ok(());
            }
            self.run(
                "reset-failed",
                self.timeouts.query,
                &["reset-failed", "--"],
                units,
            )
            .await
            .map(drop)
        })
    }
}

impl Systemctl {
    async fn job(&self, call: &'static str, unit: &str) -> SystemdResult<()> {
        self.run(call, self.timeouts.job, &[call, "--"], &[unit.to_string()])
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Restart=no\nResult=success\nNRestarts=0\nExecMainStartTimestampMonotonic=1928290029\nExecMainExitTimestampMonotonic=0\nId=a.service\nLoadState=loaded\nActiveState=active\nSubState=running\nFragmentPath=/run/user/0/systemd/generator/a.service\nSourcePath=/u/a.container\nNeedDaemonReload=no\nInvocationID=1477a0\n\nRestart=no\nResult=success\nNRestarts=0\nExecMainStartTimestampMonotonic=0\nExecMainExitTimestampMonotonic=0\nId=gone.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nFragmentPath=\nSourcePath=\nNeedDaemonReload=yes\nInvocationID=\n";

    #[test]
    fn show_output_should_parse_one_block_per_unit() {
        let asked = vec!["a.service".to_string(), "gone.service".to_string()];
        let units = parse_show(SHOW, &asked);
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].id, "a.service");
        assert!(units[0].is_loaded() && units[0].is_active());
        assert_eq!(units[0].source_path, "/u/a.container");
        assert_eq!(units[0].invocation_id, "1477a0");
        assert_eq!(units[0].exec_main_start_us, 1928290029);
        assert!(!units[0].need_daemon_reload);
        assert_eq!(units[1].load_state, "not-found");
        assert!(units[1].need_daemon_reload);
        assert_eq!(units[1].last_uptime(), None);
    }

    #[test]
    fn auto_restart_should_be_recognised_as_systemds_own_business() {
        let mut u = UnitState {
            active_state: "activating".into(),
            sub_state: "auto-restart".into(),
            ..UnitState::default()
        };
        assert!(u.is_auto_restarting() && !u.is_active());
        u.sub_state = "start".into();
        assert!(!u.is_auto_restarting());
    }

    #[test]
    fn uptime_should_come_from_the_main_process_timestamps() {
        let u = UnitState {
            exec_main_start_us: 1_000_000,
            exec_main_exit_us: 3_500_000,
            ..UnitState::default()
        };
        assert_eq!(u.last_uptime(), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn default_unit_dirs_should_follow_quadlets_search_path() {
        assert_eq!(
            Scope::System.default_unit_dir(),
            PathBuf::from("/etc/containers/systemd")
        );
        assert!(
            Scope::User
                .default_unit_dir()
                .ends_with(".config/containers/systemd")
                || std::env::var_os("XDG_CONFIG_HOME").is_some()
        );
    }
}
