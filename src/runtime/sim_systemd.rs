//! A simulated systemd with a Quadlet generator: unit files on disk in, services in memory, deterministic under paused time.
//!
//! It reads real unit directories (as Quadlet does) at `daemon-reload` and
//! writes each generated definition into a generator directory, so the
//! reconciler reads `FragmentPath` exactly as it does against the real one.
//! Calls take a fixed time on tokio's clock. What it leaves out: drop-ins,
//! dependencies, jobs that run concurrently, and `NeedDaemonReload` compares
//! contents rather than mtimes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::systemd::{Systemd, SystemdError, SystemdFuture, SystemdResult, UnitState};
use crate::manifest::{Companion, CompanionKind};

#[derive(Debug, Clone)]
struct SimUnit {
    source: PathBuf,
    /// The source's contents when last loaded (None: its file is gone).
    loaded_source: Option<String>,
    fragment: PathBuf,
    fragment_text: String,
    active: &'static str,
    sub: &'static str,
    result: &'static str,
    restart: String,
    invocation: String,
    /// The definition the current (or last) run was started from.
    running_fragment: Option<String>,
    start_us: u64,
    exit_us: u64,
    n_restarts: u32,
}

#[derive(Debug, Default)]
struct SimSd {
    unit_dirs: Vec<PathBuf>,
    generator: PathBuf,
    units: BTreeMap<String, SimUnit>,
    calls: Vec<String>,
    fail_start: BTreeSet<String>,
    next_invocation: u64,
    unreachable: bool,
}

/// See the module documentation.
#[derive(Clone)]
pub struct SimSystemd {
    state: Arc<Mutex<SimSd>>,
    /// How long each call takes (on tokio's clock).
    pub latency: Duration,
    /// How long a daemon-reload takes.
    pub reload_latency: Duration,
    started: Instant,
}

impl SimSystemd {
    /// A manager whose generator reads `unit_dirs` and writes into `generator`.
    pub fn new(unit_dirs: &[PathBuf], generator: &Path) -> Self {
        let st = SimSd {
            unit_dirs: unit_dirs.to_vec(),
            generator: generator.to_path_buf(),
            ..SimSd::default()
        };
        SimSystemd {
            state: Arc::new(Mutex::new(st)),
            latency: Duration::from_millis(5),
            reload_latency: Duration::from_millis(50),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimSd> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_us(&self) -> u64 {
        // Monotonic clocks never start at 0 on a booted machine.
        1_000_000 + self.started.elapsed().as_micros() as u64
    }

    /// Every call so far: `daemon-reload`, `show a.service b.service`, `start a.service`, …
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// How many calls so far start with `prefix` (`daemon-reload`, `restart x.service`).
    pub fn count(&self, prefix: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    /// Starting this unit fails (like a `.volume` unit on podman 4.3).
    pub fn fail_starts_of(&self, unit: &str) {
        self.lock().fail_start.insert(unit.to_string());
    }

    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// The unit as `show` would report it.
    pub fn unit(&self, unit: &str) -> UnitState {
        let st = self.lock();
        state_of(&st, unit)
    }

    /// The definition the unit's current run was started from.
    pub fn running_definition(&self, unit: &str) -> Option<String> {
        self.lock()
            .units
            .get(unit)
            .and_then(|u| u.running_fragment.clone())
    }

    /// The service's main process dies and, without `Restart=`, the unit fails.
    pub fn crash(&self, unit: &str) {
        let now = self.now_us();
        let mut st = self.lock();
        if let Some(u) = st.units.get_mut(unit) {
            u.active = "failed";
            u.sub = "failed";
            u.result = "signal";
            u.exit_us = now;
        }
    }

    /// The main process died and systemd's `Restart=` is bringing it back.
    pub fn begin_auto_restart(&self, unit: &str) {
        let now = self.now_us();
        let mut st = self.lock();
        if let Some(u) = st.units.get_mut(unit) {
            u.active = "activating";
            u.sub = "auto-restart";
            u.result = "signal";
            u.exit_us = now;
        }
    }

    /// systemd hit the start limit and stopped trying.
    pub fn give_up(&self, unit: &str) {
        let mut st = self.lock();
        if let Some(u) = st.units.get_mut(unit) {
            u.active = "failed";
            u.sub = "failed";
            u.result = "start-limit-hit";
        }
    }

    /// Load the unit directories as a `daemon-reload` would, without it
    /// counting as a call: the state a replay starts from.
    pub fn assume_loaded(&self) {
        self.reload_now();
    }

    /// Start a loaded unit without it counting as a call: a service that ran
    /// when a recording started, from its current definition. False if the
    /// unit is not loaded.
    pub fn assume_running(&self, unit: &str) -> bool {
        self.activate(unit, false).is_ok()
    }

    /// The service's main process (its container) exited with `code`. With a
    /// `Restart=` that applies, systemd is now bringing it back (see
    /// [`SimSystemd::auto_restart_done`]); otherwise the unit fails, or goes
    /// inactive on a clean exit. False if the unit was not running.
    pub fn main_exited(&self, unit: &str, code: i32) -> bool {
        let now = self.now_us();
        let mut st = self.lock();
        let Some(u) = st.units.get_mut(unit).filter(|u| u.active == "active") else {
            return false;
        };
        u.exit_us = now;
        let restarts = match u.restart.as_str() {
            "always" => true,
            "on-success" => code == 0,
            "on-failure" | "on-abnormal" | "on-abort" => code != 0,
            _ => false,
        };
        (u.active, u.sub, u.result) = match (restarts, code) {
            (true, 0) => ("activating", "auto-restart", "success"),
            (true, _) => ("activating", "auto-restart", "exit-code"),
            (false, 0) => ("inactive", "dead", "success"),
            (false, _) => ("failed", "failed", "exit-code"),
        };
        true
    }

    /// systemd's own restart of a unit in `auto-restart` came up. False if the
    /// unit was not auto-restarting.
    pub fn auto_restart_done(&self, unit: &str) -> bool {
        {
            let mut st = self.lock();
            let Some(u) = st.units.get_mut(unit).filter(|u| u.sub == "auto-restart") else {
                return false;
            };
            u.n_restarts += 1;
            u.active = "inactive";
        }
        self.activate(unit, false).is_ok()
    }

    async fn call(&self, what: String, latency: Duration) -> SystemdResult<()> {
        self.lock().calls.push(what);
        tokio::time::sleep(latency).await;
        if self.lock().unreachable {
            return Err(SystemdError::Failed {
                call: "sim",
                message: "Failed to connect to bus: No such file or directory".into(),
            });
        }
        Ok(())
    }

    fn reload_now(&self) {
        let mut st = self.lock();
        let mut found: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        for dir in st.unit_dirs.clone() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for path in files {
                let (Some(stem), Some(ext)) = (
                    path.file_stem().and_then(|s| s.to_str()),
                    path.extension().and_then(|s| s.to_str()),
                ) else {
                    continue;
                };
                let Some(kind) = CompanionKind::from_extension(ext) else {
                    continue;
                };
                if stem.starts_with('.') {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let service = Companion {
                    name: stem.to_string(),
                    kind,
                    unit: String::new(),
                }
                .service_name();
                // The first directory in the search path wins, as in Quadlet.
                found.entry(service).or_insert((path, text));
            }
        }
        let _ = std::fs::create_dir_all(&st.generator);
        let generator = st.generator.clone();
        let names: BTreeSet<String> = st.units.keys().chain(found.keys()).cloned().collect();
        for name in names {
            match found.remove(&name) {
                Some((source, text)) => {
                    let fragment = generator.join(&name);
                    let fragment_text = format!(
                        "# generated by the simulated quadlet\n{text}\n[Unit]\nSourcePath={}\n",
                        source.display()
                    );
                    let _ = std::fs::write(&fragment, &fragment_text);
                    let restart = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Restart="))
                        .unwrap_or("no")
                        .to_string();
                    let u = st.units.entry(name).or_insert_with(|| SimUnit {
                        source: source.clone(),
                        loaded_source: None,
                        fragment: fragment.clone(),
                        fragment_text: String::new(),
                        active: "inactive",
                        sub: "dead",
                        result: "success",
                        restart: String::new(),
                        invocation: String::new(),
                        running_fragment: None,
                        start_us: 0,
                        exit_us: 0,
                        n_restarts: 0,
                    });
                    u.source = source;
                    u.loaded_source = Some(text);
                    u.fragment = fragment;
                    u.fragment_text = fragment_text;
                    u.restart = restart;
                }
                None => {
                    let _ = std::fs::remove_file(generator.join(&name));
                    let keep = st
                        .units
                        .get(&name)
                        .is_some_and(|u| !matches!(u.active, "inactive"));
                    if keep {
                        // A running unit whose file is gone stays, not-found.
                        if let Some(u) = st.units.get_mut(&name) {
                            u.loaded_source = None;
                            u.fragment_text.clear();
                        }
                    } else {
                        st.units.remove(&name);
                    }
                }
            }
        }
    }

    fn activate(&self, unit: &str, always_new: bool) -> SystemdResult<()> {
        let now = self.now_us();
        let mut st = self.lock();
        st.next_invocation += 1;
        let invocation = format!("{:032x}", st.next_invocation);
        let fails = st.fail_start.contains(unit);
        let Some(u) = st.units.get_mut(unit).filter(|u| u.loaded_source.is_some()) else {
            return Err(SystemdError::Failed {
                call: "start",
                message: format!("Failed to start {unit}: Unit {unit} not found. (exit 5)"),
            });
        };
        if u.active == "active" && !always_new {
            return Ok(());
        }
        u.invocation = invocation;
        u.start_us = now;
        u.exit_us = 0;
        if fails {
            u.active = "failed";
            u.sub = "failed";
            u.result = "exit-code";
            u.exit_us = now;
            return Err(SystemdError::Failed {
                call: "start",
                message: format!("Job for {unit} failed because the control process exited with error code. (exit 1)"),
            });
        }
        u.active = "active";
        u.sub = "running";
        u.result = "success";
        u.running_fragment = Some(u.fragment_text.clone());
        Ok(())
    }
}

fn state_of(st: &SimSd, unit: &str) -> UnitState {
    let Some(u) = st.units.get(unit) else {
        return UnitState {
            id: unit.into(),
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            result: "success".into(),
            restart: "no".into(),
            ..UnitState::default()
        };
    };
    let on_disk = std::fs::read_to_string(&u.source).ok();
    let loaded = u.loaded_source.is_some();
    UnitState {
        id: unit.into(),
        load_state: if loaded { "loaded" } else { "not-found" }.into(),
        active_state: u.active.into(),
        sub_state: u.sub.into(),
        result: u.result.into(),
        n_restarts: u.n_restarts,
        fragment_path: if loaded {
            u.fragment.display().to_string()
        } else {
            String::new()
        },
        source_path: if loaded {
            u.source.display().to_string()
        } else {
            String::new()
        },
        need_daemon_reload: on_disk != u.loaded_source,
        restart: u.restart.clone(),
        invocation_id: u.invocation.clone(),
        exec_main_start_us: u.start_us,
        exec_main_exit_us: u.exit_us,
    }
}

impl Systemd for SimSystemd {
    fn daemon_reload(&self) -> SystemdFuture<'_, ()> {
        Box::pin(async move {
            self.call("daemon-reload".into(), self.reload_latency)
                .await?;
            self.reload_now();
            Ok(())
        })
    }

    fn show<'a>(&'a self, units: &'a [String]) -> SystemdFuture<'a, Vec<UnitState>> {
        Box::pin(async move {
            self.call(format!("show {}", units.join(" ")), self.latency)
                .await?;
            let st = self.lock();
            Ok(units.iter().map(|u| state_of(&st, u)).collect())
        })
    }

    fn start<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()> {
        Box::pin(async move {
            self.call(format!("start {unit}"), self.latency).await?;
            self.activate(unit, false)
        })
    }

    fn restart<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()> {
        Box::pin(async move {
            self.call(format!("restart {unit}"), self.latency).await?;
            self.activate(unit, true)
        })
    }

    fn stop<'a>(&'a self, unit: &'a str) -> SystemdFuture<'a, ()> {
        Box::pin(async move {
            self.call(format!("stop {unit}"), self.latency).await?;
            let mut st = self.lock();
            let gone = match st.units.get_mut(unit) {
                Some(u) => {
                    u.active = "inactive";
                    u.sub = "dead";
                    u.loaded_source.is_none()
                }
                None => false,
            };
            if gone {
                st.units.remove(unit);
            }
            Ok(())
        })
    }

    fn reset_failed<'a>(&'a self, units: &'a [String]) -> SystemdFuture<'a, ()> {
        Box::pin(async move {
            self.call(format!("reset-failed {}", units.join(" ")), self.latency)
                .await?;
            let mut st = self.lock();
            for unit in units {
                if let Some(u) = st.units.get_mut(unit) {
                    if u.active == "failed" {
                        u.active = "inactive";
                        u.sub = "dead";
                    }
                }
            }
            Ok(())
        })
    }
}
