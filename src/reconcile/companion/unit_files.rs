//! Unit-file I/O: the only code that writes into or removes from a unit directory (atomic write, mode 0644, never through a symlink).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::manifest::read::{read_bounded, Refusal};
use crate::reconcile::Call;

/// The suffix of podkeeper's temporary files (Quadlet ignores the extension).
pub const TEMP_SUFFIX: &str = ".podkeeper-tmp";

/// What the file step did for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FileOutcome {
    Same,
    Written(&'static str),
    Removed,
    Absent,
    Failed(String),
}

/// One companion's files: the one to keep (name, content), the ones to remove.
pub(super) type FileJob = (Option<(String, String)>, Vec<String>);
/// What became of them, and the calls that cost.
pub(super) type FileResult = (Option<FileOutcome>, Vec<FileOutcome>, Vec<Call>);

/// Write and remove the batch's files in `dir` (blocking).
pub(super) fn file_step(dir: &Path, jobs: Vec<FileJob>) -> Vec<FileResult> {
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
