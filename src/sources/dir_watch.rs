//! Directory watcher (inotify through `notify`): every create, modify, delete and rename in a directory.
//!
//! Directories are watched, not files, because editors save by writing a
//! temporary file and renaming it over the original. The parent is watched
//! too, so a directory that is deleted and created again is watched again
//! (and reported as a rescan, since anything may have changed meanwhile).

use std::path::{Path, PathBuf};

use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::TriggerTx;
use crate::trigger::{ChangeKind, FileChange, Trigger};

/// Which trigger a change becomes.
#[derive(Debug, Clone, Copy)]
pub enum Watched {
    AppsDir,
    UnitDir,
}

impl Watched {
    fn trigger(self, change: FileChange) -> Trigger {
        match self {
            Watched::AppsDir => Trigger::AppsDir(change),
            Watched::UnitDir => Trigger::UnitDir(change),
        }
    }
}

/// Watch `dirs` until cancelled. Fails only if the watcher cannot be created;
/// a directory that does not exist yet is watched from the moment it appears.
pub fn spawn(
    dirs: Vec<PathBuf>,
    what: Watched,
    tx: TriggerTx,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (mut watcher, mut raw_rx) = super::fs_watcher()?;
    let dirs: Vec<PathBuf> = dirs.into_iter().map(|d| absolute(&d)).collect();
    for dir in &dirs {
        watch_dir(&mut watcher, dir);
        if let Some(parent) = dir.parent() {
            if let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %parent.display(), error = %e, "cannot watch parent directory; a recreated directory will be noticed by the sweep only");
            }
        }
    }
    Ok(tokio::spawn(async move {
        loop {
            let res = tokio::select! {
                _ = cancel.cancelled() => return,
                r = raw_rx.recv() => match r { Some(r) => r, None => return },
            };
            let event = match res {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "file watcher error; rescanning");
                    for dir in &dirs {
                        let change = FileChange {
                            dir: dir.clone(),
                            path: PathBuf::new(),
                            kind: ChangeKind::Rescan,
                        };
                        if tx.send(what.trigger(change)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            };
            for change in changes(&dirs, &event) {
                // Our directory came back: watch it again.
                if change.path.as_os_str().is_empty() && change.kind == ChangeKind::Rescan {
                    watch_dir(&mut watcher, &change.dir);
                }
                if tx.send(what.trigger(change)).await.is_err() {
                    return;
                }
            }
        }
    }))
}

fn watch_dir(watcher: &mut RecommendedWatcher, dir: &Path) {
    if dir.is_dir() {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory");
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Turn one notify event into changes of the watched directories.
fn changes(dirs: &[PathBuf], event: &Event) -> Vec<FileChange> {
    let mut out = Vec::new();
    if event.need_rescan() {
        for dir in dirs {
            out.push(FileChange {
                dir: dir.clone(),
                path: PathBuf::new(),
                kind: ChangeKind::Rescan,
            });
        }
        return out;
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
