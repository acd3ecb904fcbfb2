//! The real stack as the benchmark sees it: podman (CLI and REST), systemd's user manager, podkeeper as a process.
//!
//! Everything the benchmark creates is named `bench-…` and removed by [`cleanup`];
//! the podman API service itself is never stopped (others test against it).
//! Which podman: the stack `scripts/env.sh` was sourced for (`scripts/bench`
//! sources it for `BENCH_STACK`): its CLI (`PODKEEPER_PODMAN`) and its API
//! socket (`PODKEEPER_PODMAN_SOCKET`); unset, the host's `podman` as root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use tokio::process::{Child, Command};

/// Every name the benchmark creates starts with this.
pub const PREFIX: &str = "bench-";
pub const IMAGE: &str = "localhost/bb:1";
/// A command that exits on SIGTERM (busybox sleep as PID 1 ignores it).
pub const TRAP: &str = "trap \"exit 0\" TERM; sleep 100000 & wait";

/// The stack under test (`scripts/env.sh`'s `PODKEEPER_STACK`; unset: `root`).
pub fn name() -> String {
    std::env::var("PODKEEPER_STACK")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// The stack's podman CLI (`PODKEEPER_PODMAN`, e.g. `/usr/local/bin/podman5`), else `podman`.
pub fn cli() -> String {
    std::env::var("PODKEEPER_PODMAN")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "podman".into())
}

/// Whether a systemd user manager's Quadlet runs this stack's podman, so
/// that Quadlet units are a peer here (`PODKEEPER_COMPANIONS`; on podman 5
/// they would run the host's podman 4.3).
pub fn has_quadlet() -> bool {
    std::env::var("PODKEEPER_COMPANIONS").map_or(true, |v| v != "0")
}

/// The stack's API socket: `PODKEEPER_PODMAN_SOCKET`, else `CONTAINER_HOST`, else root's.
pub fn socket() -> PathBuf {
    if let Ok(s) = std::env::var("PODKEEPER_PODMAN_SOCKET") {
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    match std::env::var("CONTAINER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/run/podman/podman.sock"),
    }
}

/// The version of the podman answering on [`socket`] (its `_ping`), e.g. `5.4.2`.
pub async fn podman_version() -> anyhow::Result<String> {
    let ping = podkeeper::runtime::libpod::ping(&socket(), Duration::from_secs(10))
        .await
        .with_context(|| format!("ping podman at {}", socket().display()))?;
    Ok(ping.version)
}

/// One line for the output: which podman the figures are of.
pub fn describe(version: &str) -> String {
    format!(
        "podman {version} (stack {}, {})",
        name(),
        socket().display()
    )
}

/// Where Quadlet reads root's user units (`--user`).
pub fn user_unit_dir() -> PathBuf {
    let base = std::env::var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root/.config"));
    base.join("containers/systemd")
}

/// The local podman CLI (not a remote client of the service), with a time limit.
/// Refused once the bench is interrupted (only [`cleanup`] runs podman then).
pub async fn podman(args: &[&str]) -> anyhow::Result<String> {
    anyhow::ensure!(!crate::interrupt::stopping(), "interrupted");
    podman_now(args).await
}

async fn podman_now(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(cli())
        .args(args)
        .env_remove("CONTAINER_HOST")
        .output()
        .await
        .context("run podman")?;
    if !out.status.success() {
        bail!(
            "{} {}: {}",
            cli(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub async fn systemctl(args: &[&str]) -> anyhow::Result<String> {
    anyhow::ensure!(!crate::interrupt::stopping(), "interrupted");
    systemctl_now(args).await
}

async fn systemctl_now(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .env("XDG_RUNTIME_DIR", "/run/user/0")
        .output()
        .await
        .context("run systemctl")?;
    if !out.status.success() {
        bail!(
            "systemctl --user {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `systemctl --user show UNIT -p …` as (key, value) pairs.
pub async fn unit_props(unit: &str, props: &str) -> anyhow::Result<Vec<(String, String)>> {
    let out = systemctl(&["show", unit, "-p", props]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

pub fn prop<'a>(props: &'a [(String, String)], key: &str) -> &'a str {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// What the benchmark reads of a container, over the REST API (cheaper than the CLI).
#[derive(Debug, Clone)]
pub struct Ctr {
    /// Quadlet recreates its container: a new id, where a restart keeps it.
    #[allow(dead_code)]
    pub id: String,
    pub pid: i32,
    pub running: bool,
    pub started_at: Timestamp,
}

pub struct Api(podman_api::Podman);

impl Api {
    pub fn new() -> Self {
        Api(podman_api::Podman::unix_versioned(
            socket(),
            podkeeper::runtime::libpod::api_version(),
        ))
    }

    pub async fn inspect(&self, name: &str) -> Option<Ctr> {
        let r = self.0.containers().get(name).inspect().await.ok()?;
        let st = r.state?;
        Some(Ctr {
            id: r.id?,
            pid: st.pid.unwrap_or(0) as i32,
            running: st.status.as_deref() == Some("running"),
            // podman-api's models carry chrono's type: taken as nanoseconds.
            started_at: Timestamp::from_nanosecond(st.started_at?.timestamp_nanos_opt()?.into())
                .ok()?,
        })
    }

    /// The `--exit-dir` podman gave the conmon of container `name` (its
    /// engine `tmp_dir`'s `exits`): where podkeeper should be watching.
    pub async fn conmon_exit_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let r = self
            .0
            .containers()
            .get(name)
            .inspect()
            .await
            .with_context(|| format!("inspect {name}"))?;
        let pid = r.state.and_then(|s| s.conmon_pid).unwrap_or(0);
        anyhow::ensure!(pid > 0, "{name} has no conmon");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .with_context(|| format!("read the command line of {name}'s conmon {pid}"))?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        args.iter()
            .enumerate()
            .find_map(|(i, a)| match a.strip_prefix("--exit-dir") {
                Some("") => args.get(i + 1).cloned(),
                Some(v) => v.strip_prefix('=').map(String::from),
                None => None,
            })
            .map(PathBuf::from)
            .with_context(|| format!("conmon {pid} of {name} has no --exit-dir"))
    }

    /// Wait until `name` runs with a StartedAt after `after`.
    pub async fn wait_started(
        &self,
        name: &str,
        after: Timestamp,
        limit: Duration,
    ) -> anyhow::Result<Ctr> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(c) = self.inspect(name).await {
                if c.running && c.pid > 0 && c.started_at > after {
                    return Ok(c);
                }
            }
            if tokio::time::Instant::now() > until {
                bail!("{name} did not run again within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// SIGKILL with a direct syscall; the wall-clock time right before it.
pub fn kill9(pid: i32) -> anyhow::Result<Timestamp> {
    anyhow::ensure!(pid > 1, "no pid to kill ({pid})");
    let t0 = Timestamp::now();
    // SAFETY: kill(2) has no memory effects; a stale pid only yields ESRCH.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    anyhow::ensure!(rc == 0, "kill {pid}: {}", std::io::Error::last_os_error());
    Ok(t0)
}

/// CLOCK_MONOTONIC in microseconds (systemd's `…TimestampMonotonic` clock).
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

pub fn ms_between(t0: Timestamp, t1: Timestamp) -> f64 {
    t1.duration_since(t0).as_secs_f64() * 1000.0
}

/// Wait until the container has run at least `min` (podkeeper's crash-loop rule).
pub async fn wait_uptime(api: &Api, name: &str, min: Duration) -> anyhow::Result<Ctr> {
    let c = api
        .wait_started(name, Timestamp::MIN, Duration::from_secs(60))
        .await?;
    let up = Duration::try_from(Timestamp::now().duration_since(c.started_at)).unwrap_or_default();
    if up < min {
        tokio::time::sleep(min - up).await;
    }
    api.wait_started(name, Timestamp::MIN, Duration::from_secs(60))
        .await
}

/// `podman run -d` of a test container.
pub async fn run_container(name: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec!["run", "-d", "--name", name, "--network=none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "/bin/sh", "-c", TRAP]);
    podman(&args).await.map(drop)
}

/// A podman app manifest (optionally with companions, YAML already indented).
pub fn manifest(id: &str, companions: &str) -> String {
    let trap = TRAP.replace('"', "\\\"");
    format!(
        "app:\n  id: {id}\n  name: bench {id}\n  version: 1.0.0\n  container:\n    image: {IMAGE}\n    command: [\"/bin/sh\", \"-c\", \"{trap}\"]\n    network: none\n{companions}"
    )
}

/// A Quadlet `.container` unit running the test command (`restart`: add `Restart=always`).
/// Write `rot` Quadlet units `<prefix><i>.container` with `Restart=always`
/// into `dir`, reload, and start their services: systemd's own peer.
pub async fn start_quadlet_peers(
    dir: &std::path::Path,
    prefix: &str,
    rot: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..rot {
        let name = format!("{prefix}{i}");
        std::fs::write(
            dir.join(format!("{name}.container")),
            quadlet_unit(&name, true),
        )?;
    }
    systemctl(&["daemon-reload"]).await?;
    for i in 0..rot {
        systemctl(&["start", &format!("{prefix}{i}.service")]).await?;
    }
    Ok(())
}

pub fn quadlet_unit(container_name: &str, restart: bool) -> String {
    let mut u = format!(
        "[Container]\nImage={IMAGE}\nContainerName={container_name}\nNetwork=none\nExec=/bin/sh -c '{TRAP}'\n"
    );
    if restart {
        u.push_str("\n[Service]\nRestart=always\n");
    }
    u
}

/// A podkeeper process with its `--debug` output going to a log file.
pub struct Podkeeper {
    pub child: Child,
    pub log: PathBuf,
}

impl Podkeeper {
    pub async fn start(args: &[&str], log: &Path) -> anyhow::Result<Self> {
        Self::start_bin(Path::new(env!("CARGO_BIN_EXE_podkeeper")), args, log).await
    }

    /// [`Podkeeper::start`] of another build (the update case's baseline).
    pub async fn start_bin(bin: &Path, args: &[&str], log: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(!crate::interrupt::stopping(), "interrupted");
        let file = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--debug")
            .args(args)
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .context("start podkeeper")?;
        if let Some(pid) = child.id() {
            crate::interrupt::register(pid as i32);
        }
        Ok(Podkeeper {
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id().map(|p| p as i32).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (up to `limit`) until podkeeper's log says it watches an exit
    /// directory it read off a running container's conmon, not podman's
    /// default; that directory and the log line.
    pub async fn watched_exit_dir(&self, limit: Duration) -> anyhow::Result<(PathBuf, String)> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(found) = watched_exit_dir(&self.log_text()) {
                return Ok(found);
            }
            if tokio::time::Instant::now() > until {
                bail!(
                    "podkeeper's log ({}) names no exit directory read off a conmon within {limit:?}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, then wait (podkeeper drains in-flight reconciles).
    pub async fn stop(mut self) {
        let pid = self.child.id();
        if let Some(pid) = pid {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(40), self.child.wait()).await;
        let _ = self.child.kill().await;
        if let Some(pid) = pid {
            crate::interrupt::unregister(pid as i32);
        }
    }
}

/// The last `exit-dir` note of a `--debug` log that names a directory found
/// on a conmon's command line: `watching DIR (--exit-dir of conmon N)`.
fn watched_exit_dir(log: &str) -> Option<(PathBuf, String)> {
    log.lines()
        .rev()
        .filter(|l| l.contains("  note   exit-dir ") && l.contains("(--exit-dir of conmon "))
        .find_map(|l| {
            let rest = &l[l.find("watching ")? + "watching ".len()..];
            let dir = &rest[..rest.find(" (")?];
            Some((PathBuf::from(dir), l.trim().to_string()))
        })
}

/// Does this podkeeper build know companions (issue 3)?
pub async fn podkeeper_has_companions() -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["run", "--help"])
        .output()
        .await;
    out.map(|o| String::from_utf8_lossy(&o.stdout).contains("--unit-dir"))
        .unwrap_or(false)
}

/// CPU seconds of a process and its waited-for children, and its RSS / peak RSS in MB.
pub fn proc_usage(pid: i32) -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    let ticks: f64 = (11..=14)
        .map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        .sum();
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some((ticks / hz, kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0))
}

/// Remove everything named `bench-…`: containers, user units, their files.
pub async fn cleanup() {
    if let Ok(names) = podman_now(&["ps", "-a", "--format", "{{.Names}}"]).await {
        let ours: Vec<&str> = names.lines().filter(|n| n.starts_with(PREFIX)).collect();
        if !ours.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(ours.iter().copied());
            let _ = podman_now(&args).await;
        }
    }
    let dir = user_unit_dir();
    let mut units = Vec::new();
    for d in [dir.clone(), dir.join("bench")] {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(PREFIX) && name.ends_with(".container") {
                    units.push(format!("{}.service", name.trim_end_matches(".container")));
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    let _ = std::fs::remove_dir(dir.join("bench"));
    if !units.is_empty() {
        let mut args = vec!["stop"];
        args.extend(units.iter().map(String::as_str));
        let _ = systemctl_now(&args).await;
        let _ = systemctl_now(&["daemon-reload"]).await;
        let mut args = vec!["reset-failed"];
        args.extend(units.iter().map(String::as_str));
        let _ = systemctl_now(&args).await;
        // Quadlet containers are --rm, but a failed stop may leave one.
        if let Ok(names) = podman_now(&["ps", "-a", "--format", "{{.Names}}"]).await {
            for n in names.lines().filter(|n| n.starts_with(PREFIX)) {
                let _ = podman_now(&["rm", "-f", "-t", "0", n]).await;
            }
        }
    }
}
