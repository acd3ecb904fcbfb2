//! Directory watcher (inotify through `notify`), falling back to rescanning on a timer what inotify cannot watch.
//!
//! Directories are watched, not files, because editors save by writing a
//! temporary file and renaming it over the original. The parent is watched
//! too, so a directory that is deleted and created again is watched again
//! (and reported as a rescan, since anything may have changed meanwhile).
//!
//! inotify has per-user limits (`fs.inotify.max_user_instances`,
//! `fs.inotify.max_user_watches`) that other programs may have used up. A
//! directory that cannot be watched is never claimed as watched: [`spawn`]
//! says which and why, and it is rescanned every [`POLL_EVERY`] instead (a
//! listing fingerprint: names, inodes, sizes, mtimes; a change is reported as
//! a rescan of that directory) while the watch is tried again, until it can
//! be made. Then a last rescan covers the switch, and events take over.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode};
use tokio_util::sync::CancellationToken;

use super::{FsWatcher, RawFsEvents, TriggerTx};
use crate::host::absolute;
use crate::trigger::{ChangeKind, FileChange, Trigger};

/// How often a directory inotify cannot watch is rescanned (and the watch tried again).
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// At most this many entries of a polled directory go into its fingerprint.
const FINGERPRINT_ENTRIES: usize = 100_000;

/// Which trigger a change becomes.
#[derive(Debug, Clone, Copy)]
pub enum Watched {
    AppsDir,
    UnitDir,
    /// The directories of `container.secrets` files: any change there is
    /// the apps directory's (read again, its secrets with it), named by
    /// the directory alone.
    SecretDirs,
}

impl Watched {
    fn trigger(self, change: FileChange) -> Trigger {
        match self {
            Watched::AppsDir => Trigger::AppsDir(change),
            Watched::UnitDir => Trigger::UnitDir(change),
            Watched::SecretDirs => Trigger::AppsDir(FileChange {
                path: PathBuf::new(),
                ..change
            }),
        }
    }
}

/// How a directory is kept an eye on, as [`spawn`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirStatus {
    pub dir: PathBuf,
    /// None: watched by inotify (or, not there yet, through its parent's
    /// watch). Some(why): inotify cannot watch it (why, in words); it is
    /// rescanned every [`POLL_EVERY`] until it can.
    pub polled: Option<String>,
    /// It does not exist (yet): its parent's watch will see it appear.
    pub absent: bool,
}

/// The watcher task and how each of its directories is watched.
pub struct Watching {
    pub task: tokio::task::JoinHandle<()>,
    pub dirs: Vec<DirStatus>,
}

impl Watching {
    /// The directories, each with how it is watched, for a log line:
    /// `/a (watched), /b (rescanned every 2.0s: …)`.
    pub fn describe(&self) -> String {
        self.dirs
            .iter()
            .map(|d| match &d.polled {
                None if d.absent => format!(
                    "{} (not there yet; watched from its parent)",
                    d.dir.display()
                ),
                None => format!("{} (watched)", d.dir.display()),
                Some(why) => format!(
                    "{} (NOT watched: {why}; rescanned every {} until it can be)",
                    d.dir.display(),
                    crate::report::secs(POLL_EVERY)
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether inotify watches every directory.
    pub fn all_watched(&self) -> bool {
        self.dirs.iter().all(|d| d.polled.is_none())
    }
}

/// One directory's state.
struct Dir {
    path: PathBuf,
    /// Its inotify watch is in place.
    watched: bool,
    /// Its parent's watch is in place (a recreated directory is noticed).
    parent_watched: bool,
    /// Why it is not watched, when it is not.
    why: Option<String>,
    /// The last fingerprint taken while it was polled (or, watched but with
    /// its parent unwatched, of the directory itself).
    fingerprint: Option<u64>,
}

/// Watch `dirs` until cancelled. Never fails: what inotify cannot watch (no
/// free inotify instance, no free watch) is rescanned on a timer instead, and
/// the returned statuses say so. A directory that does not exist yet is
/// watched from the moment it appears.
pub fn spawn(
    dirs: Vec<PathBuf>,
    what: Watched,
    tx: TriggerTx,
    cancel: CancellationToken,
) -> Watching {
    let mut state = State {
        what,
        dirs: dirs
            .into_iter()
            .map(|d| Dir {
                path: absolute(&d),
                watched: false,
                parent_watched: false,
                why: None,
                fingerprint: None,
            })
            .collect(),
        watcher: None,
    };
    let mut raw_rx = state.try_watch_all(false);
    let statuses = state
        .dirs
        .iter()
        .map(|d| {
            let absent = !d.watched && d.parent_watched && !d.path.exists();
            DirStatus {
                dir: d.path.clone(),
                polled: (!d.watched && !absent).then(|| d.why.clone().unwrap_or_default()),
                absent,
            }
        })
        .collect();
    for d in &mut state.dirs {
        d.fingerprint = Some(fingerprint(&d.path, d.watched));
    }
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            // Events dropped while a watch was added (at start-up too): as
            // after an overflow, anything may have changed.
            if !state.rescan_if_dropped(&tx).await {
                return;
            }
            let polling = state.needs_polling();
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = recv(&mut raw_rx) => match r {
                    Some(res) => {
                        if !state.on_raw(res, &tx).await {
                            return;
                        }
                    }
                    // The watcher's thread is gone: poll from now on.
                    None => {
                        raw_rx = None;
                        state.lost_watcher("the inotify watcher stopped");
                    }
                },
                _ = tick.tick(), if polling => {
                    if let Some(rx) = state.try_watch_all(true) {
                        raw_rx = Some(rx);
                    }
                    if !state.poll(&tx).await {
                        return;
                    }
                }
            }
        }
    });
    Watching {
        task,
        dirs: statuses,
    }
}

async fn recv(rx: &mut Option<RawFsEvents>) -> Option<notify::Result<Event>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

struct State {
    what: Watched,
    dirs: Vec<Dir>,
    watcher: Option<FsWatcher>,
}

impl State {
    fn needs_polling(&self) -> bool {
        self.watcher.is_none() || self.dirs.iter().any(|d| !d.watched || !d.parent_watched)
    }

    /// Create the watcher if there is none, and watch every directory not
    /// watched yet. Returns the watcher's events when it was just created.
    /// `later`: this is a retry, so a directory now watched is logged and
    /// rescanned (it may have changed while it was polled).
    fn try_watch_all(&mut self, later: bool) -> Option<RawFsEvents> {
        let mut new_rx = None;
        if self.watcher.is_none() {
            match super::fs_watcher() {
                Ok((w, rx)) => {
                    self.watcher = Some(w);
                    new_rx = Some(rx);
                }
                Err(e) => {
                    let why = describe_error(&e, true);
                    for d in &mut self.dirs {
                        d.watched = false;
                        d.parent_watched = false;
                        if d.why.as_deref() != Some(why.as_str()) && later {
                            tracing::warn!(dir = %d.path.display(), "still cannot watch: {why}");
                        }
                        d.why = Some(why.clone());
                    }
                    return None;
                }
            }
        }
        let Some(watcher) = self.watcher.as_mut() else {
            return new_rx;
        };
        for d in &mut self.dirs {
            if !d.parent_watched {
                if let Some(parent) = d.path.parent() {
                    d.parent_watched = watcher.watch(parent, RecursiveMode::NonRecursive).is_ok();
                }
            }
            if d.watched {
                continue;
            }
            if !d.path.is_dir() {
                // Watched from the moment it appears (through its parent, or
                // this poll); nothing to miss meanwhile.
                d.why = Some("it does not exist (yet)".into());
                continue;
            }
            match watcher.watch(&d.path, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    d.watched = true;
                    if later {
                        tracing::info!(dir = %d.path.display(), "now watched by inotify; rescanning it once");
                        d.fingerprint = None;
                    }
                    d.why = None;
                }
                Err(e) => {
                    let why = describe_error(&e, false);
                    if later && d.why.as_deref() != Some(why.as_str()) {
                        tracing::warn!(dir = %d.path.display(), "cannot watch: {why}; rescanning it every {}", crate::report::secs(POLL_EVERY));
                    }
                    d.why = Some(why);
                }
            }
        }
        new_rx
    }

    /// Rescan every directory if the watcher dropped events; false when the channel closed.
    async fn rescan_if_dropped(&mut self, tx: &TriggerTx) -> bool {
        if !self.watcher.as_ref().is_some_and(FsWatcher::take_dropped) {
            return true;
        }
        tracing::warn!("file watcher events dropped while a watch was added; rescanning");
        for d in &self.dirs {
            let change = FileChange::rescan(d.path.clone());
            if tx.send(self.what.trigger(change)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// The watcher is gone (its thread ended): every directory is polled.
    fn lost_watcher(&mut self, why: &str) {
        self.watcher = None;
        for d in &mut self.dirs {
            d.watched = false;
            d.parent_watched = false;
            d.why = Some(why.to_string());
        }
        tracing::warn!(
            "{why}: rescanning the watched directories every {}",
            crate::report::secs(POLL_EVERY)
        );
    }

    /// Rescan what is not watched: a directory whose fingerprint changed (or
    /// that just became watched) is reported as a rescan.
    async fn poll(&mut self, tx: &TriggerTx) -> bool {
        for d in &mut self.dirs {
            if d.watched && d.parent_watched && d.fingerprint.is_some() {
                continue;
            }
            let path = d.path.clone();
            let shallow = d.watched;
            let now = tokio::task::spawn_blocking(move || fingerprint(&path, shallow))
                .await
                .unwrap_or(0);
            if d.fingerprint == Some(now) {
                continue;
            }
            d.fingerprint = Some(now);
            if d.watched && d.parent_watched {
                // Just became watched: the one rescan that covers the switch.
            } else if d.watched {
                // Watched, parent not: the directory itself changed
                // (deleted, recreated): watch it again.
                d.watched = false;
            }
            let change = FileChange::rescan(d.path.clone());
            if tx.send(self.what.trigger(change)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// One raw notify result; false when the channel closed.
    async fn on_raw(&mut self, res: notify::Result<Event>, tx: &TriggerTx) -> bool {
        let event = match res {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; rescanning");
                for d in &self.dirs {
                    let change = FileChange::rescan(d.path.clone());
                    if tx.send(self.what.trigger(change)).await.is_err() {
                        return false;
                    }
                }
                return true;
            }
        };
        let paths: Vec<PathBuf> = self.dirs.iter().map(|d| d.path.clone()).collect();
        for change in changes(&paths, &event) {
            if change.path.as_os_str().is_empty() {
                if let Some(d) = self.dirs.iter_mut().find(|d| d.path == change.dir) {
                    match change.kind {
                        // Our directory came back: watch it again.
                        ChangeKind::Rescan => {
                            d.watched = false;
                            d.fingerprint = None;
                        }
                        // Gone: its watch went with it.
                        ChangeKind::Remove | ChangeKind::RenameFrom => d.watched = false,
                        _ => {}
                    }
                }
            }
            if tx.send(self.what.trigger(change)).await.is_err() {
                return false;
            }
        }
        if self.dirs.iter().any(|d| !d.watched) {
            let _ = self.try_watch_all(true);
        }
        true
    }
}

/// What a notify error means here, in words that name the limit to raise.
fn describe_error(e: &notify::Error, creating: bool) -> String {
    let emfile = matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(EMFILE));
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            "no free inotify watch (fs.inotify.max_user_watches reached)".into()
        }
        _ if creating && emfile => {
            "no free inotify instance (fs.inotify.max_user_instances reached, or too many open files)".into()
        }
        _ if creating => format!("cannot create an inotify watcher: {e}"),
        _ => format!("inotify: {e}"),
    }
}

/// EMFILE ("Too many open files", Linux): what inotify_init answers when
/// the user has no inotify instance left.
const EMFILE: i32 = 24;

/// A cheap fingerprint of a directory: its own identity and, unless
/// `shallow`, every entry's name, inode, size and mtime. 0 when it is absent.
fn fingerprint(dir: &Path, shallow: bool) -> u64 {
    let mut h = DefaultHasher::new();
    let Ok(meta) = std::fs::metadata(dir) else {
        return 0;
    };
    (meta.dev(), meta.ino()).hash(&mut h);
    if shallow {
        return h.finish() | 1;
    }
    let mut entries: Vec<(std::ffi::OsString, u64, u64, i64, i64)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten().take(FINGERPRINT_ENTRIES) {
            let m = entry.metadata().ok();
            entries.push((
                entry.file_name(),
                m.as_ref().map_or(0, MetadataExt::ino),
                m.as_ref().map_or(0, MetadataExt::size),
                m.as_ref().map_or(0, MetadataExt::mtime),
                m.as_ref().map_or(0, MetadataExt::mtime_nsec),
            ));
        }
    }
    entries.sort();
    entries.hash(&mut h);
    h.finish() | 1
}

/// Turn one notify event into changes of the watched directories.
fn changes(dirs: &[PathBuf], event: &Event) -> Vec<FileChange> {
    let mut out = Vec::new();
    if event.need_rescan() {
        return dirs.iter().cloned().map(FileChange::rescan).collect();
    }
    let kind = match event.kind {
        EventKind::Create(_) => ChangeKind::Create,
        EventKind::Remove(_) => ChangeKind::Remove,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => ChangeKind::RenameFrom,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => ChangeKind::RenameTo,
        // inotify reports From and To separately as well; `Both` would repeat them.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return out,
        EventKind::Modify(_) => ChangeKind::Modify,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => return out,
    };
    for path in &event.paths {
        for dir in dirs {
            if path == dir {
                // The directory itself, seen from its parent.
                let kind = match kind {
                    ChangeKind::Create | ChangeKind::RenameTo => ChangeKind::Rescan,
                    other => other,
                };
                out.push(FileChange {
                    dir: dir.clone(),
                    path: PathBuf::new(),
                    kind,
                });
            } else if path.parent() == Some(dir.as_path()) {
                if let Ok(rel) = path.strip_prefix(dir) {
                    out.push(FileChange {
                        dir: dir.clone(),
                        path: rel.to_path_buf(),
                        kind,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RemoveKind};

    fn ev(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn changes_should_be_relative_to_the_watched_directory() {
        let dirs = vec![PathBuf::from("/u")];
        let c = changes(
            &dirs,
            &ev(EventKind::Create(CreateKind::File), "/u/a.container"),
        );
        assert_eq!(
            c,
            vec![FileChange {
                dir: "/u".into(),
                path: "a.container".into(),
                kind: ChangeKind::Create
            }]
        );
        // Siblings of the watched directory (seen through the parent watch) are not ours.
        assert!(changes(&dirs, &ev(EventKind::Create(CreateKind::File), "/other")).is_empty());
    }

    #[test]
    fn a_recreated_directory_should_be_a_rescan() {
        let dirs = vec![PathBuf::from("/u")];
        let c = changes(&dirs, &ev(EventKind::Create(CreateKind::Folder), "/u"));
        assert_eq!(c[0].kind, ChangeKind::Rescan);
        let c = changes(&dirs, &ev(EventKind::Remove(RemoveKind::Folder), "/u"));
        assert_eq!(c[0].kind, ChangeKind::Remove);
    }

    #[test]
    fn an_overflow_should_rescan_every_directory() {
        let dirs = vec![PathBuf::from("/u"), PathBuf::from("/v")];
        let e = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        let c = changes(&dirs, &e);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.kind == ChangeKind::Rescan));
    }
}
