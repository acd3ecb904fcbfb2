//! The replay's scratch directory: private copies of the apps and unit directories, edited as the recording says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::fixture::FileRecord;
use crate::manifest;
use crate::trigger::ChangeKind;

/// Make our copy of a watched directory look as it did after the change.
pub(super) fn write(dir: &Path, f: &FileRecord, manifests_only: bool) {
    let wanted = |p: &Path| !manifests_only || manifest::is_manifest_file(p);
    let result = match (&f.kind, &f.content, &f.files) {
        (ChangeKind::Rescan, _, Some(files)) => sync_dir(dir, files, &wanted),
        (_, Some(text), _) if wanted(&f.path) => std::fs::write(dir.join(&f.path), text),
        (ChangeKind::Remove | ChangeKind::RenameFrom, _, _) if !f.path.as_os_str().is_empty() => {
            match std::fs::remove_file(dir.join(&f.path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, path = %f.path.display(), "replay: cannot update the directory copy");
    }
}

/// Make `dir`'s wanted files exactly `files`.
fn sync_dir(
    dir: &Path,
    files: &BTreeMap<String, String>,
    wanted: &dyn Fn(&Path) -> bool,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if wanted(Path::new(&name)) && !files.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Private copies of the apps and unit directories, which the replay edits as
/// the recording says; removed when dropped.
/// The root is a fresh directory with an unpredictable name, created 0700 by
/// `mkdir` (which never follows a symlink planted in its place).
pub(super) struct Workspace {
    pub root: PathBuf,
    pub apps: PathBuf,
    pub unit_dirs: Vec<PathBuf>,
    /// Removes the root when dropped.
    _dir: tempfile::TempDir,
}

impl Workspace {
    pub fn copy(apps: &Path, unit_dirs: &[PathBuf]) -> anyhow::Result<Workspace> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("podkeeper-replay-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("cannot create the replay's private directory")?;
        let root = dir.path().to_path_buf();
        let ws = Workspace {
            _dir: dir,
            apps: root.join("apps"),
            unit_dirs: (0..unit_dirs.len())
                .map(|i| root.join(format!("units-{i}")))
                .collect(),
            root,
        };
        copy_dir(apps, &ws.apps)
            .with_context(|| format!("cannot copy the apps directory {}", apps.display()))?;
        for (from, to) in unit_dirs.iter().zip(&ws.unit_dirs) {
            copy_dir(from, to)
                .with_context(|| format!("cannot copy the unit directory {}", from.display()))?;
        }
        Ok(ws)
    }
}

/// Copy the regular files of `from` (not recursively) into a new `to`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)?.flatten() {
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_should_be_private_and_never_follow_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let apps = tempfile::tempdir().unwrap();
        std::fs::write(
            apps.path().join("a.yaml"),
            "app:\n  id: a\n  container:\n    image: localhost/bb:1\n",
        )
        .unwrap();
        let victim = tempfile::tempdir().unwrap();
        // Where earlier versions put it: /tmp/podkeeper-replay-<pid>-<n>.
        let planted: Vec<PathBuf> = (0..4)
            .map(|n| {
                std::env::temp_dir().join(format!("podkeeper-replay-{}-{n}", std::process::id()))
            })
            .collect();
        for p in &planted {
            let _ = std::os::unix::fs::symlink(victim.path(), p);
        }
        let ws = Workspace::copy(apps.path(), &[]).unwrap();
        assert!(!planted.contains(&ws.root));
        let mode = std::fs::metadata(&ws.root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(ws.apps.join("a.yaml").is_file());
        let root = ws.root.clone();
        drop(ws);
        assert!(!root.exists(), "removed when done");
        assert_eq!(
            std::fs::read_dir(victim.path()).unwrap().count(),
            0,
            "nothing written through"
        );
        for p in &planted {
            let _ = std::fs::remove_file(p);
        }
    }
}
