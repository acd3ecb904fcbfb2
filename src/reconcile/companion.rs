//! Reconcile a batch of companions: unit files written atomically, one daemon-reload for all, each service brought up, restarted only when its definition changed.
//!
//! A batch is whatever companions were due at once (the reactor collects
//! them), so a burst of file changes costs one `daemon-reload`, and the state
//! of every companion is read with one `show`. The steps:
//!
//! 1. `show` the batch's services; for a running service whose run
//!    (`InvocationID`) we have not seen, remember the definition it runs: the
//!    generated unit it was started from, read from `FragmentPath` *before* any
//!    reload (the generator's output only changes on a reload).
//! 2. Stop the services of companions that go away.
//! 3. Write the files that are missing or differ (temporary file in the same
//!    directory, fsync, rename, mode 0644: a symlink in the way is replaced,
//!    never written through); remove the files of companions that go away.
//! 4. One `daemon-reload` if anything was written or removed, or systemd says
//!    a definition is stale; before it, one `show` of every other companion,
//!    to learn what their unseen runs were started from (step 1's rule).
//! 5. Per companion: failed or stopped → `reset-failed` (one call) + `start`;
//!    running → `restart` only if the definition it was started from differs
//!    from the one now loaded (a file restored to what the service runs needs
//!    nothing); systemd restarting it itself (`Restart=`, `auto-restart`) →
//!    left alone, looked at again later; starting or stopping → looked at again
//!    shortly.
//! 6. One `show` of what was (re)started, to remember which definition each new
//!    run was started from.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{Call, CallLog, Reaction};
use crate::manifest::read::{read_bounded, Refusal};
use crate::manifest::Companion;
use crate::runtime::systemd::{Systemd, UnitState};
use crate::trigger::Key;

/// Look again this soon at a service that is starting or stopping.
pub const TRANSIENT_RECHECK: Duration = Duration::from_millis(100);
/// Look again this soon at a service systemd is auto-restarting (to notice
/// when it gives up).
pub const AUTO_RESTART_RECHECK: Duration = Duration::from_secs(1);
/// How many start/restart/stop jobs run at once.
const JOBS_AT_ONCE: usize = 8;
/// The suffix of podkeeper's temporary files (Quadlet ignores the extension).
pub const TEMP_SUFFIX: &str = ".podkeeper-tmp";

/// One companion due in this batch.
#[derive(Debug, Clone)]
pub struct CompanionItem {
    pub name: String,
    /// What the manifests declare (None: its app or the companion was deleted).
    pub desired: Option<Companion>,
    /// A definition it had earlier in this run whose file or service differs
    /// from the desired one (deleted, or its kind changed): to be removed.
    pub retired: Option<Companion>,
}

/// The definition a run of a service was started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningDef {
    pub invocation: String,
    /// Hash of the generated unit (`FragmentPath`) that run was started from.
    pub definition: String,
}

/// Per service: what its current run was started from, as far as podkeeper knows.
pub type StartedFrom = HashMap<String, RunningDef>;

/// Everything a batch needs; the reactor builds it and gets it back updated.
#[derive(Debug, Clone)]
pub struct Batch {
    pub unit_dir: PathBuf,
    pub items: Vec<CompanionItem>,
    /// The services of every companion podkeeper knows (looked at before a reload).
    pub known_services: Vec<String>,
    pub started_from: StartedFrom,
}

/// What a batch did: one summary (the shared calls) and one reaction per companion.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub summary: Reaction,
    pub items: Vec<Reaction>,
    pub started_from: StartedFrom,
    /// Companions whose files and services were removed for good.
    pub removed: Vec<String>,
}

/// The key the summary reaction carries (it prints as `companion/*`).
pub fn batch_key() -> Key {
    Key::Companion("*".into())
}

/// What the file step did for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileOutcome {
    Same,
    Written(&'static str),
    Removed,
    Absent,
    Failed(String),
}

/// What to do with a service after the reload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Keep(String),
    Start { reset: bool, why: String },
    Restart(String),
    Leave(String),
    Wait(String),
    Fail(String),
}

struct Work {
    name: String,
    desired: Option<Companion>,
    /// Companions (desired None, or retired) whose service and file go.
    going: Vec<Companion>,
    file: Option<FileOutcome>,
    removed_files: Vec<FileOutcome>,
    plan: Option<Plan>,
    log: CallLog,
    notes: Vec<String>,
    error: Option<String>,
    restarted_after: Option<Duration>,
}

impl Work {
    fn service(&self) -> Option<String> {
        self.desired.as_ref().map(Companion::service_name)
    }

    fn fail(&mut self, e: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(e.into());
        }
    }
}

/// Reconcile `batch` against `sd`. Never panics; every failure lands in the
/// reaction of the companion it concerns (a shared call's failure in all).
pub async fn reconcile_companions(sd: &dyn Systemd, batch: Batch) -> BatchOutcome {
    let Batch {
        unit_dir,
        items,
        known_services,
        mut started_from,
    } = batch;
    let mut summary = Reaction::new(batch_key());
    summary.action = "batch";
    let mut slog = CallLog::default();
    let mut works: Vec<Work> = items
        .into_iter()
        .map(|i| {
            let mut going: Vec<Companion> = Vec::new();
            if i.desired.is_none() {
                going.extend(i.retired.clone());
            } else if let Some(old) = i.retired.clone() {
                going.push(old);
            }
            Work {
                name: i.name,
                desired: i.desired,
                going,
                file: None,
                removed_files: Vec::new(),
                plan: None,
                log: CallLog::default(),
                notes: Vec::new(),
                error: None,
                restarted_after: None,
            }
        })
        .collect();

    // 1. One show for the batch; learn the definitions of runs not seen yet.
    let mut watch: BTreeSet<String> = BTreeSet::new();
    for w in &works {
        watch.extend(w.service());
        watch.extend(w.going.iter().map(Companion::service_name));
    }
    let watch: Vec<String> = watch.into_iter().collect();
    let before = match slog.time("show", sd.show(&watch)).await {
        Ok(states) => by_id(states),
        Err(e) => return finish(summary, slog, works, started_from, Some(e.to_string())),
    };
    for st in before.values() {
        learn_definition(&mut started_from, st);
    }

    // 2. Stop the services of companions that go away (and forget their failures).
    let mut reset_going = Vec::new();
    for w in works.iter_mut() {
        for old in w.going.clone() {
            let svc = old.service_name();
            let Some(st) = before.get(&svc) else { continue };
            if st.active_state == "failed" {
                reset_going.push(svc.clone());
            } else if st.active_state != "inactive" {
                if let Err(e) = w.log.time("stop", sd.stop(&svc)).await {
                    w.fail(e.to_string());
                }
            }
            started_from.remove(&svc);
        }
    }
    if !reset_going.is_empty() {
        if let Err(e) = slog
            .time("reset-failed", sd.reset_failed(&reset_going))
            .await
        {
            tracing::warn!(error = %e, "reset-failed of removed companions");
        }
    }

    // 3. Files, off the async threads (fsync can take a while).
    let jobs: Vec<FileJob> = works
        .iter()
        .map(|w| {
            let keep = w.desired.as_ref().map(|c| (c.file_name(), c.unit.clone()));
            let keep_name = keep.as_ref().map(|(f, _)| f.clone());
            let remove = w
                .going
                .iter()
                .map(Companion::file_name)
                .filter(|f| Some(f) != keep_name.as_ref())
                .collect();
            (keep, remove)
        })
        .collect();
    let dir = unit_dir.clone();
    let files = tokio::task::spawn_blocking(move || file_step(&dir, jobs)).await;
    let files = match files {
        Ok(f) => f,
        Err(e) => return finish(summary, slog, works, started_from, Some(e.to_string())),
    };
    let mut changed_files = 0;
    for (w, (keep, removed, calls)) in works.iter_mut().zip(files) {
        w.log.calls.extend(calls);
        if let Some(FileOutcome::Failed(e)) = &keep {
            w.fail(e.clone());
        }
        changed_files += usize::from(matches!(keep, Some(FileOutcome::Written(_))));
        changed_files += removed
            .iter()
            .filter(|r| **r == FileOutcome::Removed)
            .count();
        for r in &removed {
            if let FileOutcome::Failed(e) = r {
                w.fail(e.clone());
            }
        }
        w.file = keep;
        w.removed_files = removed;
    }

    // 4. One daemon-reload for the whole batch, if anything calls for it.
    let stale: Vec<&str> = works
        .iter()
        .filter_map(|w| {
            let svc = w.service()?;
            let st = before.get(&svc)?;
            (st.need_daemon_reload || !st.is_loaded()).then_some(w.name.as_str())
        })
        .collect();
    let reload = changed_files > 0 || !stale.is_empty();
    let mut why = Vec::new();
    if changed_files > 0 {
        why.push("daemon-reload: files changed".to_string());
    } else if !stale.is_empty() {
        why.push(format!(
            "daemon-reload: stale definition of {}",
            stale.join(", ")
        ));
    }
    let after = if reload {
        // The reload changes every unit's loaded definition, so first learn
        // what the other companions' unseen runs were started from.
        let others: Vec<String> = known_services
            .into_iter()
            .filter(|s| !watch.contains(s))
            .collect();
        if !others.is_empty() {
            match slog.time("show", sd.show(&others)).await {
                Ok(states) => {
                    for st in &states {
                        learn_definition(&mut started_from, st);
                    }
                }
                Err(e) => return finish(summary, slog, works, started_from, Some(e.to_string())),
            }
        }
        if let Err(e) = slog.time("daemon-reload", sd.daemon_reload()).await {
            return finish(summary, slog, works, started_from, Some(e.to_string()));
        }
        let wanted: Vec<String> = works.iter().filter_map(Work::service).collect();
        match slog.time("show", sd.show(&wanted)).await {
            Ok(states) => by_id(states),
            Err(e) => return finish(summary, slog, works, started_from, Some(e.to_string())),
        }
    } else {
        before.clone()
    };
    summary.why = why.join("; ");

    // 5. Decide per service.
    let mut reset = Vec::new();
    for w in works.iter_mut() {
        if w.error.is_some() {
            continue;
        }
        let (Some(c), Some(svc)) = (w.desired.clone(), w.service()) else {
            continue;
        };
        let Some(st) = after.get(&svc) else {
            w.fail(format!("systemd did not report {svc}"));
            continue;
        };
        let plan = plan(&unit_dir, &c, st, &started_from);
        if let Plan::Start { reset: true, .. } = plan {
            reset.push(svc.clone());
        }
        if let Plan::Start { .. } = plan {
            w.restarted_after = st.last_uptime();
        }
        w.plan = Some(plan);
    }
    if !reset.is_empty() {
        if let Err(e) = slog.time("reset-failed", sd.reset_failed(&reset)).await {
            // start may still work (it only refuses after the start limit).
            tracing::warn!(error = %e, "reset-failed");
        }
    }

    // Start and restart a few at once: each waits for its job.
    let works: Vec<Work> = futures::stream::iter(works)
        .map(|mut w| async move {
            let svc = w.service().unwrap_or_default();
            let res = match &w.plan {
                Some(Plan::Start { .. }) => Some(w.log.time("start", sd.start(&svc)).await),
                Some(Plan::Restart(_)) => Some(w.log.time("restart", sd.restart(&svc)).await),
                _ => None,
            };
            if let Some(Err(e)) = res {
                w.fail(e.to_string());
            }
            w
        })
        .buffered(JOBS_AT_ONCE)
        .collect()
        .await;
    let mut works = works;

    // 6. Remember what each new run was started from.
    let started: Vec<String> = works
        .iter()
        .filter(|w| matches!(w.plan, Some(Plan::Start { .. } | Plan::Restart(_))))
        .filter_map(Work::service)
        .collect();
    if !started.is_empty() {
        match slog.time("show", sd.show(&started)).await {
            Ok(states) => {
                let states = by_id(states);
                for w in works.iter_mut() {
                    let Some(st) = w.service().and_then(|s| states.get(&s)) else {
                        continue;
                    };
                    if !matches!(w.plan, Some(Plan::Start { .. } | Plan::Restart(_))) {
                        continue;
                    }
                    learn_definition(&mut started_from, st);
                    if w.error.is_none() && !st.is_active() {
                        w.notes.push(format!("now {}", st.describe()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "show after start"),
        }
    }
    finish(summary, slog, works, started_from, None)
}

/// Decide what a companion's service needs, from its state after any reload.
fn plan(unit_dir: &Path, c: &Companion, st: &UnitState, started_from: &StartedFrom) -> Plan {
    let svc = c.service_name();
    if !st.is_loaded() {
        return Plan::Fail(format!(
            "{svc} is {} after daemon-reload: Quadlet generated nothing from {} (check the unit: /usr/libexec/podman/quadlet -dryrun)",
            st.load_state,
            c.file_name()
        ));
    }
    if let Some(other) = shadowed_by(unit_dir, c, st) {
        return Plan::Fail(format!(
            "{svc} is generated from {other}, not from podkeeper's {}: another unit file of that name shadows it",
            c.file_name()
        ));
    }
    if st.is_active() {
        let loaded = definition_hash(&st.fragment_path);
        return match (started_from.get(&svc), loaded) {
            (Some(run), Some(loaded)) if run.invocation == st.invocation_id => {
                if run.definition == loaded {
                    Plan::Keep("running the declared definition".into())
                } else {
                    Plan::Restart("definition changed since it started".into())
                }
            }
            _ => Plan::Keep("running; started before podkeeper could see its definition".into()),
        };
    }
    if st.is_auto_restarting() {
        return Plan::Leave(format!(
            "systemd is restarting it (Restart={}, {} restarts): left to systemd until it gives up",
            st.restart, st.n_restarts
        ));
    }
    match st.active_state.as_str() {
        "failed" => Plan::Start {
            reset: true,
            why: format!("failed ({})", st.result),
        },
        "inactive" => Plan::Start {
            reset: false,
            why: format!("inactive ({})", st.sub_state),
        },
        _ => Plan::Wait(format!("{}, looking again shortly", st.describe())),
    }
}

/// The other file the unit is generated from, if it is not ours.
fn shadowed_by(unit_dir: &Path, c: &Companion, st: &UnitState) -> Option<String> {
    if st.source_path.is_empty() {
        return None;
    }
    let ours = unit_dir.join(c.file_name());
    let theirs = Path::new(&st.source_path);
    let same = match (std::fs::canonicalize(&ours), std::fs::canonicalize(theirs)) {
        (Ok(a), Ok(b)) => a == b,
        _ => ours == theirs,
    };
    (!same).then(|| st.source_path.clone())
}

/// Remember the definition of a run not seen before (read before any reload).
fn learn_definition(started_from: &mut StartedFrom, st: &UnitState) {
    if !st.is_active() || st.invocation_id.is_empty() {
        return;
    }
    if started_from
        .get(&st.id)
        .is_some_and(|r| r.invocation == st.invocation_id)
    {
        return;
    }
    if let Some(definition) = definition_hash(&st.fragment_path) {
        started_from.insert(
            st.id.clone(),
            RunningDef {
                invocation: st.invocation_id.clone(),
                definition,
            },
        );
    }
}

/// Hash of a loaded unit definition (the generated file; small, on tmpfs).
fn definition_hash(fragment: &str) -> Option<String> {
    if fragment.is_empty() {
        return None;
    }
    let text = std::fs::read(fragment).ok()?;
    let digest = Sha256::digest(&text);
    Some(digest[..12].iter().map(|b| format!("{b:02x}")).collect())
}

fn by_id(states: Vec<UnitState>) -> HashMap<String, UnitState> {
    states.into_iter().map(|s| (s.id.clone(), s)).collect()
}

/// Turn the work into reactions; `shared_error` fails every companion.
fn finish(
    mut summary: Reaction,
    slog: CallLog,
    works: Vec<Work>,
    started_from: StartedFrom,
    shared_error: Option<String>,
) -> BatchOutcome {
    summary.calls = slog.calls;
    let mut items = Vec::new();
    let mut removed = Vec::new();
    let (mut written, mut started, mut restarted, mut kept) = (0, 0, 0, Vec::new());
    let mut failed = 0;
    for mut w in works {
        if let Some(e) = &shared_error {
            w.fail(e.clone());
        }
        let mut r = Reaction::new(Key::Companion(w.name.clone()));
        let mut why = Vec::new();
        let wrote = match &w.file {
            Some(FileOutcome::Written(how)) => {
                written += 1;
                why.push(format!("file {how}: written"));
                true
            }
            _ => false,
        };
        let gone = w
            .removed_files
            .iter()
            .any(|f| matches!(f, FileOutcome::Removed | FileOutcome::Absent));
        if !w.going.is_empty() && gone {
            why.push(match &w.desired {
                None => "no manifest declares it any more: service stopped, file removed".into(),
                Some(_) => "kind changed: old service stopped, old file removed".into(),
            });
        }
        r.action = match (&w.plan, wrote) {
            (Some(Plan::Restart(m)), _) => {
                restarted += 1;
                why.push(m.clone());
                if wrote {
                    "write+restart"
                } else {
                    "restart"
                }
            }
            (Some(Plan::Start { why: m, reset }), _) => {
                started += 1;
                why.push(if *reset {
                    format!("{m}: reset-failed + start")
                } else {
                    format!("{m}: start")
                });
                if wrote {
                    "write+start"
                } else {
                    "start"
                }
            }
            (Some(Plan::Keep(m)), true) => {
                why.push(format!("{m}: not restarted"));
                "write"
            }
            (Some(Plan::Keep(m)), false) => {
                why.push(m.clone());
                if !gone {
                    kept.push(w.name.clone());
                }
                if gone {
                    "remove"
                } else {
                    "none"
                }
            }
            (Some(Plan::Leave(m)), _) => {
                why.push(m.clone());
                r.requeue_after = Some(AUTO_RESTART_RECHECK);
                "leave"
            }
            (Some(Plan::Wait(m)), _) => {
                why.push(m.clone());
                r.requeue_after = Some(TRANSIENT_RECHECK);
                "wait"
            }
            (Some(Plan::Fail(m)), _) => {
                w.fail(m.clone());
                if wrote {
                    "write"
                } else {
                    "none"
                }
            }
            (None, _) if w.desired.is_none() => {
                if w.error.is_none() {
                    removed.push(w.name.clone());
                }
                if w.going.is_empty() {
                    why.push("not declared and nothing of it known: nothing to do".into());
                    "none"
                } else {
                    "remove"
                }
            }
            (None, true) => "write",
            (None, false) => "none",
        };
        why.extend(w.notes.iter().cloned());
        r.why = why.join("; ");
        r.calls = w.log.calls;
        r.restarted_after = w.restarted_after;
        if let Some(e) = w.error {
            failed += 1;
            r.result = Err(e);
            r.requeue_after = None;
        }
        items.push(r);
    }
    let mut parts = vec![format!("{} companion(s)", items.len())];
    if written > 0 {
        parts.push(format!("{written} written"));
    }
    if started > 0 {
        parts.push(format!("{started} start(s) asked"));
    }
    if restarted > 0 {
        parts.push(format!("{restarted} restart(s) asked"));
    }
    if !removed.is_empty() {
        parts.push(format!("{} removed", removed.len()));
    }
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    if !kept.is_empty() {
        parts.push(if kept.len() <= 4 {
            format!("as declared: {}", kept.join(", "))
        } else {
            format!("{} as declared", kept.len())
        });
    }
    if !summary.why.is_empty() {
        parts.push(std::mem::take(&mut summary.why));
    }
    summary.why = parts.join(", ");
    if let Some(e) = shared_error {
        summary.result = Err(e);
    }
    BatchOutcome {
        summary,
        items,
        started_from,
        removed,
    }
}

type FileJob = (Option<(String, String)>, Vec<String>);
type FileResult = (Option<FileOutcome>, Vec<FileOutcome>, Vec<Call>);

/// Write and remove the batch's files in `dir` (blocking).
fn file_step(dir: &Path, jobs: Vec<FileJob>) -> Vec<FileResult> {
    let dir_ok = ensure_dir(dir);
    jobs.into_iter()
        .map(|(keep, remove)| {
            let mut calls = Vec::new();
            let keep = keep.map(|(file, content)| match &dir_ok {
                Err(e) => FileOutcome::Failed(e.clone()),
                Ok(()) => {
                    // tokio's clock: wall time in `run`, virtual (so the
                    // same bytes every time) in a replay.
                    let started = tokio::time::Instant::now();
                    let out = ensure_file(dir, &file, content.as_bytes());
                    if matches!(out, FileOutcome::Written(_) | FileOutcome::Failed(_)) {
                        calls.push(Call {
                            name: "write",
                            took: started.elapsed(),
                        });
                    }
                    out
                }
            });
            let removed = remove
                .iter()
                .map(|file| {
                    let out = remove_unit_file(dir, file);
                    if out == FileOutcome::Removed {
                        calls.push(Call {
                            name: "unlink",
                            took: Duration::ZERO,
                        });
                    }
                    out
                })
                .collect();
            (keep, removed, calls)
        })
        .collect()
}

fn ensure_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("cannot create unit directory {}: {e}", dir.display()))
}

/// A file name podkeeper may create in the unit directory: a plain name, no path.
fn is_plain_name(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('.')
        && !file.contains('/')
        && !file.contains('\0')
        && file != ".."
}

/// The file holds exactly `content` afterwards (written only if it did not).
fn ensure_file(dir: &Path, file: &str, content: &[u8]) -> FileOutcome {
    if !is_plain_name(file) {
        return FileOutcome::Failed(format!("refusing to write {file:?}: not a plain file name"));
    }
    let path = dir.join(file);
    let why = match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Err(e) => return FileOutcome::Failed(format!("{}: {e}", path.display())),
        Ok(m) if m.file_type().is_symlink() => "was a symlink (replaced, not followed)",
        Ok(m) if m.is_dir() => {
            return FileOutcome::Failed(format!(
                "{} is a directory: refusing to replace it",
                path.display()
            ))
        }
        Ok(m) if !m.is_file() => {
            return FileOutcome::Failed(format!(
                "{} is not a regular file: refusing to replace it",
                path.display()
            ))
        }
        // Read no more than the declared content and one byte: a file grown
        // huge differs; one swapped for a FIFO is refused, never waited on.
        Ok(m) => match read_bounded(&path, content.len() as u64) {
            Ok((current, _)) if current == content && m.permissions().mode() & 0o777 == 0o644 => {
                return FileOutcome::Same
            }
            Ok((current, _)) if current == content => "had the wrong mode",
            Ok(_) | Err(Refusal::TooLarge(_)) => "differed",
            Err(e) => return FileOutcome::Failed(format!("{}: {e}", path.display())),
        },
    };
    match write_atomic(dir, file, content) {
        Ok(()) => FileOutcome::Written(why),
        Err(e) => FileOutcome::Failed(format!("writing {}: {e}", path.display())),
    }
}

/// Temporary file in the same directory, fsync, rename over the target
/// (which replaces a symlink rather than following it), fsync the directory.
pub fn write_atomic(dir: &Path, file: &str, content: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{file}{TEMP_SUFFIX}"));
    // A leftover from a crash; remove_file never follows a symlink.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        // create_new (O_EXCL) never follows a symlink planted at `tmp`.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        // The umask may have taken bits away.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(file))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn remove_unit_file(dir: &Path, file: &str) -> FileOutcome {
    if !is_plain_name(file) {
        return FileOutcome::Failed(format!(
            "refusing to remove {file:?}: not a plain file name"
        ));
    }
    let path = dir.join(file);
    match std::fs::remove_file(&path) {
        Ok(()) => FileOutcome::Removed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileOutcome::Absent,
        Err(e) => FileOutcome::Failed(format!("removing {}: {e}", path.display())),
    }
}

/// Is this a file name podkeeper writes as a temporary file?
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// A shared systemd handle, for the reactor.
pub type SharedSystemd = Arc<dyn Systemd>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_file_should_write_atomically_with_mode_0644_and_then_leave_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = ensure_file(dir.path(), "a.container", b"[Container]\n");
        assert_eq!(out, FileOutcome::Written("missing"));
        let path = dir.path().join("a.container");
        assert_eq!(std::fs::read(&path).unwrap(), b"[Container]\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            ensure_file(dir.path(), "a.container", b"[Container]\n"),
            FileOutcome::Same
        );
        std::fs::write(&path, "edited").unwrap();
        assert_eq!(
            ensure_file(dir.path(), "a.container", b"[Container]\n"),
            FileOutcome::Written("differed")
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_symlink_should_be_replaced_and_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("a.container")).unwrap();
        let out = ensure_file(dir.path(), "a.container", b"[Container]\n");
        assert_eq!(
            out,
            FileOutcome::Written("was a symlink (replaced, not followed)")
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let m = std::fs::symlink_metadata(dir.path().join("a.container")).unwrap();
        assert!(m.is_file());
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_should_not_be_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".a.container.podkeeper-tmp")).unwrap();
        write_atomic(dir.path(), "a.container", b"x").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.container")).unwrap(),
            "x"
        );
    }

    #[test]
    fn names_with_paths_should_be_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ensure_file(dir.path(), "../x.container", b""),
            FileOutcome::Failed(_)
        ));
        assert!(matches!(
            remove_unit_file(dir.path(), "a/b"),
            FileOutcome::Failed(_)
        ));
    }

    #[test]
    fn a_directory_in_the_way_should_be_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a.container")).unwrap();
        let FileOutcome::Failed(e) = ensure_file(dir.path(), "a.container", b"") else {
            panic!("should refuse");
        };
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn a_fifo_in_the_way_should_be_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.container");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let FileOutcome::Failed(e) = ensure_file(dir.path(), "a.container", b"[Container]\n")
        else {
            panic!("should refuse");
        };
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_huge_unit_file_should_be_replaced_having_read_only_what_compares() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.container");
        let f = std::fs::File::create(&path).unwrap();
        // Sparse: 8 GiB that reading whole would take in memory.
        f.set_len(8 << 30).unwrap();
        drop(f);
        assert_eq!(
            ensure_file(dir.path(), "a.container", b"[Container]\n"),
            FileOutcome::Written("differed")
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"[Container]\n");
    }

    #[test]
    fn temp_files_should_be_recognised() {
        assert!(is_temp_file(".a.container.podkeeper-tmp"));
        assert!(!is_temp_file("a.container"));
    }
}
