//! The small state file: what podkeeper remembers across restarts that podman cannot show (failed specs, adoptions), read bounded and written atomically.
//!
//! Everything an update is *doing* lives in podman, by name; this file
//! holds only what podkeeper *decided*: a spec that failed its gate (not
//! tried again until the manifest changes or `podkeeper retry`) and the
//! containers it adopted. Losing it costs a retry of a failed spec, never a
//! running app, so a bad file is set aside with a warning and podkeeper
//! starts fresh; a write that fails is logged and tried again at the next
//! change. Unknown fields are kept as they are (a later podkeeper's, such
//! as issue 24's bad digests), so an older one rewriting the file loses
//! nothing of them.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format this podkeeper reads and writes.
pub const VERSION: u32 = 1;
/// The largest state file read; a larger one is set aside.
pub const MAX_BYTES: u64 = 1 << 20;

/// `state.json`, as it is on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// App id → the spec that failed its gate and was rolled back.
    #[serde(default)]
    pub failed: BTreeMap<String, FailedSpec>,
    /// Container id → the app it was adopted for.
    #[serde(default)]
    pub adopted: BTreeMap<String, AdoptedContainer>,
    /// Whatever else a later podkeeper wrote: kept, never read.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            version: VERSION,
            failed: BTreeMap::new(),
            adopted: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedSpec {
    pub spec_hash: String,
    pub why: String,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// At most [`crate::reconcile::updates::LOG_TAIL_BYTES`].
    #[serde(default)]
    pub log_tail: String,
    /// When it was rolled back, RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedContainer {
    pub app: String,
    pub spec_hash: String,
    /// When it was adopted, RFC 3339.
    pub at: String,
}

/// `/var/lib/podkeeper/state.json` for root; else
/// `$XDG_STATE_HOME/podkeeper/state.json` (`~/.local/state` when unset).
pub fn default_path() -> PathBuf {
    if crate::host::is_root() {
        return PathBuf::from("/var/lib/podkeeper/state.json");
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/podkeeper-{}", crate::host::euid())));
    state.join("podkeeper/state.json")
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    pub state: StateFile,
    /// Why the file was not used (podkeeper starts fresh), in words naming it.
    pub warning: Option<String>,
}

/// Read `path`: a missing file is a fresh start, silently; anything wrong
/// with it (a symlink, not a regular file, too big, truncated, not JSON,
/// another version) a fresh start with a warning, the file set aside as
/// `<name>.bad` when it is a regular file. Never fails, never panics.
pub fn load(path: &Path) -> Loaded {
    let shown = path.display();
    let fresh = |warning: String| Loaded {
        state: StateFile::default(),
        warning: Some(warning),
    };
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        // A FIFO would block an open without it; a symlink is refused.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Loaded {
                state: StateFile::default(),
                warning: None,
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return fresh(format!(
                "state file {shown} is a symlink: not followed; starting fresh (it is replaced at the next write)"
            ))
        }
        Err(e) => return fresh(format!("cannot open state file {shown}: {e}; starting fresh")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            return fresh(format!(
                "cannot read state file {shown}: {e}; starting fresh"
            ))
        }
    };
    if !meta.is_file() {
        return fresh(format!(
            "state file {shown} is not a regular file: not read; starting fresh (it is replaced at the next write)"
        ));
    }
    let mut text = Vec::new();
    let problem = match (&mut file).take(MAX_BYTES + 1).read_to_end(&mut text) {
        Err(e) => Some(format!("cannot be read ({e})")),
        Ok(_) if text.len() as u64 > MAX_BYTES => {
            Some(format!("is larger than {} KiB", MAX_BYTES / 1024))
        }
        Ok(_) => match serde_json::from_slice::<StateFile>(&text) {
            Err(e) if e.is_eof() => Some(format!("is truncated ({e})")),
            Err(e) => Some(format!("is not a podkeeper state file ({e})")),
            Ok(s) if s.version != VERSION => Some(format!(
                "has version {} (this podkeeper reads version {VERSION})",
                s.version
            )),
            Ok(state) => {
                return Loaded {
                    state,
                    warning: None,
                }
            }
        },
    };
    let problem = problem.unwrap_or_default();
    let bad = bad_path(path);
    let aside = match std::fs::rename(path, &bad) {
        Ok(()) => format!("kept as {}", bad.display()),
        Err(e) => format!("could not be set aside as {}: {e}", bad.display()),
    };
    fresh(format!(
        "state file {shown} {problem}: starting fresh; the file is {aside}"
    ))
}

/// `<name>.bad`, beside the file.
pub fn bad_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bad");
    path.with_file_name(name)
}

/// Write `state` to `path` atomically: a temporary file in the same
/// directory (created 0700 when missing), fsync, rename over `path`, fsync
/// the directory. A reader (or a crash) sees the old file or the new one,
/// never half of one. The error says what failed, naming the file.
pub fn save(path: &Path, state: &StateFile) -> Result<(), String> {
    let shown = path.display();
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| format!("cannot write state file {shown}: {e}"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail =
        |what: &str, e: std::io::Error| format!("cannot write state file {shown}: {what}: {e}");
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail(&format!("cannot create {}", dir.display()), e))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| fail("create a temporary file", e))?;
        f.write_all(&json).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("fsync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail("rename", e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable only once the directory is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("fsync its directory", e))
}

#[cfg(test)]
mod tests;
