//! Start-up checks of who may write the directories podkeeper trusts, as sshd's StrictModes does for `~/.ssh`.
//!
//! Whoever can write the apps directory or a unit directory decides what
//! runs, as the user podkeeper runs as (a manifest can bind-mount `/`, a
//! companion can run any host command): a directory everyone may write
//! hands that to everyone. So, for each directory and every directory
//! above it (one of those renamed away and replaced is the same thing):
//!
//! * writable by every user, without the sticky bit (`/tmp` has it) on an
//!   ancestor: refused;
//! * owned by a user other than root and the one podkeeper runs as: refused;
//! * writable by its group: a warning.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// podkeeper must not use the directory.
    Refuse(String),
    /// Worth saying; not a reason to stop.
    Warn(String),
}

impl Finding {
    pub fn is_refusal(&self) -> bool {
        matches!(self, Finding::Refuse(_))
    }

    pub fn text(&self) -> &str {
        match self {
            Finding::Refuse(t) | Finding::Warn(t) => t,
        }
    }
}

/// Check `dir` (the `what` directory: "apps directory", "unit directory")
/// and its ancestors for the user podkeeper runs as. A directory that does
/// not exist yet is judged by the ancestors that do.
pub fn check_dir(what: &str, dir: &Path) -> Vec<Finding> {
    check_dir_as(what, dir, crate::host::euid())
}

fn check_dir_as(what: &str, dir: &Path, euid: u32) -> Vec<Finding> {
    let start = crate::host::absolute(dir);
    let real = nearest_existing(&start);
    let mut findings = Vec::new();
    let mut path = Some(real.as_path());
    let mut first = true;
    while let Some(p) = path {
        let Ok(m) = std::fs::metadata(p) else {
            path = p.parent();
            continue;
        };
        let mode = m.mode() & 0o7777;
        let whose = if p == real && first {
            format!("{what} {}", p.display())
        } else {
            format!("{} (above the {what} {})", p.display(), dir.display())
        };
        if m.uid() != 0 && m.uid() != euid {
            findings.push(Finding::Refuse(format!(
                "{whose} is owned by uid {}, neither root nor podkeeper's user (uid {euid}): that user decides what runs",
                m.uid()
            )));
        }
        let sticky = mode & 0o1000 != 0;
        // The sticky bit (/tmp) excuses an ancestor, never the directory itself.
        if mode & 0o002 != 0 && (first || !sticky) {
            findings.push(Finding::Refuse(format!(
                "{whose} is writable by every user (mode {mode:04o}): anyone could decide what runs (chmod o-w)"
            )));
        } else if mode & 0o020 != 0 && !sticky {
            findings.push(Finding::Warn(format!(
                "{whose} is writable by its group (mode {mode:04o}): every member decides what runs"
            )));
        }
        first = false;
        path = p.parent();
    }
    findings
}

/// `dir` resolved (symlinks followed), or its nearest ancestor that exists.
fn nearest_existing(dir: &Path) -> PathBuf {
    let mut p = Some(dir);
    while let Some(d) = p {
        if let Ok(real) = std::fs::canonicalize(d) {
            return real;
        }
        p = d.parent();
    }
    PathBuf::from("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn uid() -> u32 {
        crate::host::euid()
    }

    #[test]
    fn a_private_directory_under_tmp_should_pass() {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o755);
        assert_eq!(check_dir_as("apps directory", d.path(), uid()), []);
    }

    #[test]
    fn a_world_writable_directory_should_be_refused_even_with_the_sticky_bit() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o1777] {
            chmod(d.path(), mode);
            let f = check_dir_as("apps directory", d.path(), uid());
            assert!(
                f.iter()
                    .any(|f| f.is_refusal() && f.text().contains("writable by every user")),
                "{f:?}"
            );
        }
    }

    #[test]
    fn a_world_writable_parent_without_the_sticky_bit_should_be_refused() {
        let d = tempfile::tempdir().unwrap();
        let apps = d.path().join("apps");
        std::fs::create_dir(&apps).unwrap();
        chmod(d.path(), 0o777);
        let f = check_dir_as("apps directory", &apps, uid());
        assert!(
            f.iter()
                .any(|f| f.is_refusal() && f.text().contains("above the apps directory")),
            "{f:?}"
        );
        chmod(d.path(), 0o700);
    }

    #[test]
    fn a_group_writable_directory_should_be_a_warning() {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o775);
        let f = check_dir_as("unit directory", d.path(), uid());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            !f[0].is_refusal() && f[0].text().contains("writable by its group"),
            "{f:?}"
        );
    }

    #[test]
    fn a_directory_of_another_user_should_be_refused() {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o755);
        let me = uid();
        let f = if me == 0 {
            // Root running podkeeper on a directory another user owns.
            std::os::unix::fs::chown(d.path(), Some(4242), None).unwrap();
            check_dir_as("apps directory", d.path(), 0)
        } else {
            // Our own directory, seen by another user that is not root.
            check_dir_as("apps directory", d.path(), me + 1)
        };
        assert!(
            f.iter()
                .any(|f| f.is_refusal() && f.text().contains("owned by uid")),
            "{f:?}"
        );
        // By its owner: fine.
        let owner = std::fs::metadata(d.path()).unwrap().uid();
        assert_eq!(check_dir_as("apps directory", d.path(), owner), []);
    }

    #[test]
    fn a_directory_not_made_yet_should_be_judged_by_its_parent() {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o777);
        let f = check_dir_as("unit directory", &d.path().join("later/units"), uid());
        assert!(f.iter().any(Finding::is_refusal), "{f:?}");
        chmod(d.path(), 0o700);
    }
}
