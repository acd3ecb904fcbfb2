//! The exit accelerator: conmon's exit files, watched so podkeeper hears of an exit before the events stream says so.
//!
//! conmon renames `<exit dir>/<container id>` into place the instant a
//! container's process exits ([`ExitFile::Written`]); podman's cleanup process
//! (conmon's exit command, or the `podman stop` that caused the exit) reads
//! it, deletes it ([`ExitFile::Collected`]) and finishes cleaning up under
//! the container's lock. The events stream reports the same exit 0–250 ms
//! later (the file events logger is read four times a second).
//!
//! Both moments are sent; the reactor picks the one it can act on. A podman
//! that records a user's stop before it signals (4.7 and later) lets the
//! reconciler tell a crash from a stop at the first look, so the written
//! file is enough. An older one cannot tell: there podkeeper waits for the
//! deletion, after which an inspect waits for the rest of podman's cleanup,
//! so a start that follows never races it (starting before cleanup makes a
//! user's `podman stop` fail with "refusing to clean up", and one between a
//! `podman rm`'s two steps leaks the process).
//! This watcher only makes podkeeper hear sooner: it carries no state, and the
//! events stream and the sweep stay the source of truth. An exit of a
//! container podkeeper does not manage is ignored by the reactor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode};
use tokio_util::sync::CancellationToken;

use super::TriggerTx;
use crate::backoff::Backoff;
use crate::report::Reporter;
use crate::runtime::engine::{self, ExitDir};
use crate::trigger::{ExitFile, Trigger};

/// How often podkeeper asks again while it only has podman's default: after
/// 500 ms, doubling to a minute (a `_ping` and a container list when nothing
/// runs).
pub const RECHECK: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(60),
};

/// podman's default exit directory for a podman of podkeeper's own mode
/// (when podman cannot be asked): rootful `/run/libpod/exits`, rootless
/// `$XDG_RUNTIME_DIR/libpod/tmp/exits`.
pub fn default_exit_dir() -> PathBuf {
    engine::default_exit_dir(!crate::host::is_root(), None)
}

/// Watch the exit directory of the podman at `socket`, as found at start-up
/// (`first`; an error when podman did not answer). While podkeeper has only
/// podman's default, or could not watch it, it asks podman again now and
/// then ([`RECHECK`]) and moves the watch when a running container's conmon
/// names another directory. Every change is one note.
pub async fn follow(
    socket: PathBuf,
    first: Result<ExitDir, String>,
    tx: TriggerTx,
    cancel: CancellationToken,
    mut report: Reporter,
    limit: Duration,
) {
    let mut known = first.unwrap_or_else(|e| ExitDir::Default {
        path: default_exit_dir(),
        why: format!("podman did not answer ({e}); the default for podkeeper's own user"),
    });
    let mut watching: Option<(PathBuf, CancellationToken)> = None;
    let mut attempt = 0;
    loop {
        let want = known.watchable().map(Path::to_path_buf);
        if want != watching.as_ref().map(|(p, _)| p.clone()) {
            if let Some((_, token)) = watching.take() {
                token.cancel();
            }
            match &want {
                Some(dir) => {
                    let token = cancel.child_token();
                    match spawn(dir.clone(), tx.clone(), token.clone()) {
                        Ok(_) => {
                            report.note("exit-dir", &describe(&known), false);
                            watching = Some((dir.clone(), token));
                        }
                        Err(e) => report.note(
                            "exit-dir",
                            &format!(
                                "cannot watch {} ({}): {e}; exits come from the events stream only until it can",
                                dir.display(),
                                describe(&known)
                            ),
                            true,
                        ),
                    }
                }
                None => report.note("exit-dir", &describe(&known), true),
            }
        }
        // Found (and watched), or nothing here to watch: settled.
        if !known.provisional() && (watching.is_some() || want.is_none()) {
            return;
        }
        attempt += 1;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RECHECK.delay(attempt)) => {}
        }
        // podman away: ask again later.
        if let Ok(e) = engine::discover(&socket, limit).await {
            let same_dir = e.exit_dir.watchable() == known.watchable();
            if same_dir && known.provisional() && !e.exit_dir.provisional() {
                report.note(
                    "exit-dir",
                    &format!("confirmed: {}", describe(&e.exit_dir)),
                    false,
                );
            }
            known = e.exit_dir;
        }
    }
}

/// One line for the note: where, and how podkeeper knows.
pub fn describe(dir: &ExitDir) -> String {
    match dir {
        ExitDir::Found { path, how } => format!("watching {} ({how})", path.display()),
        ExitDir::Default { path, why } => format!(
            "watching {} ({why}; asked again when a container runs)",
            path.display()
        ),
        ExitDir::Elsewhere { path, why } => format!(
            "conmon writes exit files to {} where podkeeper cannot see them ({why}): exits come from the events stream only; \
             set podman's tmp_dir ([engine] in containers.conf) to a directory shared with this host at the same path, \
             or pass that directory's path here with --exit-dir",
            path.display()
        ),
    }
}

/// Is this file name a full container id (64 hex digits)?
fn container_id(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
}

/// What an inotify event in the exit directory says of the file at `paths`:
/// which container's exit file, and what became of it. conmon writes the
/// file under a temporary name and renames it into place (glib's
/// `g_file_set_contents`); the temporary names are no container ids. A
/// rename within the directory also comes as one `Both` event after its
/// `To`: only the `To` counts, so one exit is one trigger.
fn exit_file(event: &notify::Event) -> Option<(String, ExitFile)> {
    let (path, file) = match event.kind {
        EventKind::Remove(_) => (event.paths.first()?, ExitFile::Collected),
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            (event.paths.first()?, ExitFile::Written)
        }
        _ => return None,
    };
    Some((container_id(path)?, file))
}

/// Watch `dir` until cancelled, sending a [`Trigger::ContainerExited`] per exit file written or collected.
pub fn spawn(
    dir: PathBuf,
    tx: TriggerTx,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (mut watcher, mut raw_rx) = super::fs_watcher()?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        loop {
            let res = tokio::select! {
                _ = cancel.cancelled() => return,
                r = raw_rx.recv() => match r { Some(r) => r, None => return },
            };
            let Some((id, file)) = res.ok().as_ref().and_then(exit_file) else {
                continue;
            };
            if tx
                .send(Trigger::ContainerExited { id, file })
                .await
                .is_err()
            {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_container_ids_should_count_as_exit_files() {
        let id = "a".repeat(64);
        assert_eq!(container_id(Path::new(&format!("/x/{id}"))), Some(id));
        assert_eq!(container_id(Path::new("/x/abc")), None);
        assert_eq!(
            container_id(Path::new(&format!("/x/{}.tmp", "a".repeat(60)))),
            None
        );
    }

    #[test]
    fn a_renamed_into_place_file_should_be_written_and_a_deletion_collected() {
        use notify::event::{CreateKind, RemoveKind};
        let id = "b".repeat(64);
        let at = |name: &str| PathBuf::from(format!("/run/libpod/exits/{name}"));
        let ev = |kind, paths: Vec<PathBuf>| notify::Event {
            kind,
            paths,
            attrs: Default::default(),
        };
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        let removed = EventKind::Remove(RemoveKind::File);
        let created = EventKind::Create(CreateKind::File);
        let tmp = at(&format!("{id}.4XK1Z2"));
        assert_eq!(exit_file(&ev(created, vec![tmp.clone()])), None);
        assert_eq!(exit_file(&ev(from, vec![tmp.clone()])), None);
        let written = Some((id.clone(), ExitFile::Written));
        assert_eq!(exit_file(&ev(to, vec![at(&id)])), written);
        assert_eq!(
            exit_file(&ev(both, vec![tmp, at(&id)])),
            None,
            "its To counted"
        );
        assert_eq!(exit_file(&ev(created, vec![at(&id)])), written);
        assert_eq!(
            exit_file(&ev(removed, vec![at(&id)])),
            Some((id, ExitFile::Collected))
        );
    }
}
