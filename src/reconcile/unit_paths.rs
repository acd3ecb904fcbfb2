//! Before a `daemon-reload`: every file the Quadlet generator would open in the unit directories must be a regular file.
//!
//! A reload runs the generators, and Quadlet opens every unit file it finds
//! (`*.container`, `*.volume`, … and the `*.d/*.conf` drop-ins, in
//! subdirectories too). Opening a FIFO blocks until someone writes to it, so a
//! FIFO named `web.container` wedges the generator, and with it the whole
//! systemd manager (every `systemctl` of that user waits, until systemd's
//! generator timeout of about 90 s). A device or a socket is no better. So
//! before any reload the unit directories are scanned (without opening
//! anything) and, if such a file is there, the reload is withheld and the
//! companions that needed it fail with an error that names it.

use std::path::{Path, PathBuf};

use crate::manifest::CompanionKind;

/// How deep into subdirectories the scan goes (Quadlet reads them too).
const MAX_DEPTH: usize = 8;
/// How many entries the scan looks at in all, so a huge tree stays cheap.
const MAX_ENTRIES: usize = 100_000;

/// Quadlet file extensions beyond the kinds podkeeper writes (newer Quadlet).
const OTHER_QUADLET_EXTENSIONS: &[&str] = &["artifact"];

/// Every Quadlet file or drop-in under `dirs` that is not a regular file
/// (after following symlinks), described: `/u/web.container is a FIFO`.
/// Blocking: run it off the async threads.
pub fn unsafe_unit_files(dirs: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    let mut budget = MAX_ENTRIES;
    for dir in dirs {
        scan(dir, 0, false, &mut budget, &mut found);
    }
    found
}

fn scan(
    dir: &Path,
    depth: usize,
    in_dropin_dir: bool,
    budget: &mut usize,
    found: &mut Vec<String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // lstat first: a real subdirectory is scanned, never followed through a symlink.
        let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if lmeta.is_dir() {
            if depth < MAX_DEPTH {
                scan(&path, depth + 1, name.ends_with(".d"), budget, found);
            }
            continue;
        }
        if !is_read_by_quadlet(&name, in_dropin_dir) {
            continue;
        }
        // What opening it would open (a dangling symlink opens nothing).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            found.push(format!(
                "{} is {}",
                path.display(),
                crate::manifest::read::kind_of(&meta)
            ));
        }
    }
}

/// A unit file (`x.container`, …) or a drop-in (`*.d/*.conf`).
fn is_read_by_quadlet(name: &str, in_dropin_dir: bool) -> bool {
    if in_dropin_dir && name.ends_with(".conf") {
        return true;
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            CompanionKind::from_extension(ext).is_some() || OTHER_QUADLET_EXTENSIONS.contains(&ext)
        }
        _ => false,
    }
}

/// The error a companion gets when the reload it needs is withheld.
pub fn withheld_reload(problems: &[String]) -> String {
    format!(
        "daemon-reload withheld: {} (the Quadlet generator would block opening it and wedge the systemd manager); remove it",
        problems.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn a_fifo_or_a_symlink_to_one_should_be_found_and_regular_files_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ok.container"), "[Container]\n").unwrap();
        mkfifo(&d.join("web.container"));
        mkfifo(&d.join("not-a-unit.txt"));
        std::fs::create_dir_all(d.join("sub/web.container.d")).unwrap();
        mkfifo(&d.join("sub/web.container.d/10-x.conf"));
        mkfifo(&d.join("elsewhere"));
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join("sub/data.volume")).unwrap();
        std::os::unix::fs::symlink(d.join("missing"), d.join("dangling.network")).unwrap();
        let mut found = unsafe_unit_files(&[d.to_path_buf()]);
        found.sort();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].ends_with("sub/data.volume is a FIFO"), "{found:?}");
        assert!(
            found[1].ends_with("sub/web.container.d/10-x.conf is a FIFO"),
            "{found:?}"
        );
        assert!(found[2].ends_with("/web.container is a FIFO"), "{found:?}");
    }

    #[test]
    fn a_missing_directory_should_be_nothing_to_report() {
        assert!(unsafe_unit_files(&[PathBuf::from("/nonexistent/podkeeper")]).is_empty());
    }
}
