//! Facts about the process podkeeper runs as, and paths as it sees them: one `is_root`, one way to make a path absolute.

use std::path::{Path, PathBuf};

/// The effective user id podkeeper runs as.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether podkeeper runs as root (the system podman and systemd), not rootless.
pub fn is_root() -> bool {
    euid() == 0
}

/// `p` made absolute against the current directory, without resolving
/// symlinks (a path that cannot be made absolute is kept as given).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
