//! The exit accelerator: conmon's exit files, watched so podkeeper hears of an exit as soon as podman has dealt with it.
//!
//! conmon renames `<exit dir>/<container id>` into place the instant a
//! container's process exits; podman's cleanup process (conmon's exit
//! command, or the `podman stop` that caused the exit) reads it, deletes it,
//! and finishes cleaning up under the container's lock. The events stream
//! reports the same exit 0–250 ms later (the file events logger is read four
//! times a second).
//!
//! The signal used is the file's *deletion*: by then podman has taken the exit
//! in hand, and an inspect waits for the rest of its cleanup, so a start that
//! follows never races it (starting before cleanup makes podman's cleanup, or
//! a user's `podman stop`, fail with "refusing to clean up"). Reacting to the
//! file's creation would only add a look at a container that podman is still
//! stopping, and that look takes the container's lock away from the cleanup.
//! This watcher only makes podkeeper hear sooner: it carries no state, and the
//! events stream and the sweep stay the source of truth. An exit of a
//! container podkeeper does not manage is ignored by the reactor.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::TriggerTx;
use crate::trigger::Trigger;

/// conmon's exit directory for podman's default configuration: rootful
/// `/run/libpod/exits`, rootless `$XDG_RUNTIME_DIR/libpod/tmp/exits`.
pub fn default_exit_dir() -> PathBuf {
    let rootful = PathBuf::from("/run/libpod/exits");
    match std::env::var("XDG_RUNTIME_DIR") {
        Ok(dir) if !is_root() => Path::new(&dir).join("libpod/tmp/exits"),
        _ => rootful,
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Is this file name a full container id (64 hex digits)?
fn container_id(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
}

/// Watch `dir` until cancelled, sending [`Trigger::ContainerExited`] per exit file podman collected.
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
            let Ok(event) = res else { continue };
            // The deletion: podman has collected the exit (see above).
            if !matches!(event.kind, EventKind::Remove(_)) {
                continue;
            }
            for id in event.paths.iter().filter_map(|p| container_id(p)) {
                if tx.send(Trigger::ContainerExited { id }).await.is_err() {
                    return;
                }
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
}
