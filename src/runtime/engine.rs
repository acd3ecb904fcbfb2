//! What podkeeper learns of the podman it talks to when it connects: versions, rootless or not, and where its conmon writes exit files.
//!
//! podman's `info` does not report its engine `tmp_dir` (where conmon's exit
//! files go: `<tmp_dir>/exits`), not in 4.3 and not in 5.x. Every conmon is
//! started with it, though: `conmon … --exit-dir DIR …`. So podkeeper reads it
//! off the command line of a running container's conmon (`State.ConmonPid`
//! in its inspect), and checks that `DIR` seen from here is the directory
//! conmon writes to, by comparing it with `/proc/<conmon>/root/DIR`: a podman
//! in another root or mount namespace (a chroot, another container) has a
//! directory of that name that is not ours. With no container running there
//! is no conmon to ask, and podkeeper takes podman's default for its mode
//! (rootful `/run/libpod/exits`, rootless `$XDG_RUNTIME_DIR/libpod/tmp/exits`)
//! until one runs (see `sources::exit_watch`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::libpod::{self, CallError};

/// How many running containers are asked for their conmon before giving up.
const CONMONS_ASKED: usize = 5;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// podman's version, e.g. `5.4.2`.
    pub version: String,
    /// Its libpod API version (podkeeper requests [`libpod::API_VERSION`]).
    pub api_version: String,
    pub rootless: bool,
    pub exit_dir: ExitDir,
}

impl Engine {
    /// One line for people: `podman 5.4.2 (libpod API 5.4.2; podkeeper requests /v4.0.0), rootful`.
    pub fn describe(&self) -> String {
        format!(
            "podman {} (libpod API {}; podkeeper requests /v{}), {}",
            self.version,
            self.api_version,
            libpod::API_VERSION,
            if self.rootless { "rootless" } else { "rootful" }
        )
    }
}

/// Where conmon writes exit files, as far as podkeeper could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitDir {
    /// Read off a running container's conmon, and the same directory here.
    Found { path: PathBuf, how: String },
    /// podman's default for its mode: no conmon could be asked.
    Default { path: PathBuf, why: String },
    /// conmon writes to `path` in its own root or mount namespace, where it
    /// is not the directory of that name here.
    Elsewhere { path: PathBuf, why: String },
}

impl ExitDir {
    /// A directory worth watching, if any.
    pub fn watchable(&self) -> Option<&Path> {
        match self {
            ExitDir::Found { path, .. } | ExitDir::Default { path, .. } => Some(path),
            ExitDir::Elsewhere { .. } => None,
        }
    }

    /// Whether a running container may still tell better (a default, not a finding).
    pub fn provisional(&self) -> bool {
        matches!(self, ExitDir::Default { .. })
    }
}

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
}

/// Ask the podman at `socket` for its versions and mode, and find its exit
/// directory. Each call must answer within `limit`.
pub async fn discover(socket: &Path, limit: Duration) -> Result<Engine, CallError> {
    let ping = libpod::ping(socket, limit).await?;
    // A rootless podman's service (or the user manager activating it) runs
    // as its user; `info` would say so too, at the cost of most of a second.
    let rootless = ping.listener_uid.is_some_and(|uid| uid != 0);
    let exit_dir = match from_running_conmon(socket, limit).await? {
        Some(found) => found,
        None => ExitDir::Default {
            path: default_exit_dir(rootless, ping.listener_uid),
            why: "podman's default: no running container's conmon to ask yet".into(),
        },
    };
    Ok(Engine {
        version: ping.version,
        api_version: ping.api_version,
        rootless,
        exit_dir,
    })
}

/// podman's default exit directory: `<tmp_dir>/exits`, where `tmp_dir` is
/// `/run/libpod` for root and `$XDG_RUNTIME_DIR/libpod/tmp` rootless, and a
/// rootless podman's `$XDG_RUNTIME_DIR` is `/run/user/<uid>`: ours when it
/// is our uid's, else that uid's.
pub fn default_exit_dir(rootless: bool, uid: Option<u32>) -> PathBuf {
    if !rootless {
        return PathBuf::from("/run/libpod/exits");
    }
    let ours = crate::host::euid();
    let same_user = uid.unwrap_or(ours) == ours;
    let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if same_user => PathBuf::from(dir),
        _ => PathBuf::from(format!("/run/user/{}", uid.unwrap_or(ours))),
    };
    runtime_dir.join("libpod/tmp/exits")
}

#[derive(Deserialize)]
struct Inspected {
    #[serde(rename = "State")]
    state: InspectedState,
}

#[derive(Deserialize)]
struct InspectedState {
    #[serde(rename = "ConmonPid", default)]
    conmon_pid: i64,
}

/// The exit directory of the first running container whose conmon this
/// process can read, or `None` when there is none.
async fn from_running_conmon(socket: &Path, limit: Duration) -> Result<Option<ExitDir>, CallError> {
    let filters = libpod::urlencode(r#"{"status":["running"]}"#);
    let running: Vec<Listed> = libpod::get_json(
        socket,
        &libpod::path(&format!("/containers/json?filters={filters}")),
        limit,
    )
    .await?;
    for c in running.iter().take(CONMONS_ASKED) {
        let path = libpod::path(&format!("/containers/{}/json", c.id));
        let inspected: Inspected = match libpod::get_json(socket, &path, limit).await {
            Ok(i) => i,
            // Gone or stopped meanwhile: ask the next.
            Err(CallError::Status(..)) => continue,
            Err(e) => return Err(e),
        };
        if let Some(found) = exit_dir_of_conmon(inspected.state.conmon_pid, &c.id) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// What conmon `pid` of container `id` says, if this process can read it
/// (the same pid namespace: `/proc/<pid>` is that conmon).
pub fn exit_dir_of_conmon(pid: i64, id: &str) -> Option<ExitDir> {
    if pid <= 0 {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let dir = conmon_exit_dir(&args, id)?;
    Some(compare_roots(pid, &dir))
}

/// `--exit-dir` of a conmon command line, when it is the conmon of `id`.
fn conmon_exit_dir(args: &[String], id: &str) -> Option<PathBuf> {
    let value = |flag: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            if a == flag {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix(&format!("{flag}=")).map(String::from)
            }
        })
    };
    let is_conmon = args
        .first()
        .is_some_and(|a| Path::new(a).file_name().is_some_and(|f| f == "conmon"));
    let cid = value("-c").or_else(|| value("--cid"));
    if !is_conmon || cid.as_deref() != Some(id) {
        return None;
    }
    value("--exit-dir").map(PathBuf::from)
}

/// `dir` as conmon `pid` sees it (through `/proc/<pid>/root`) against `dir` here.
fn compare_roots(pid: i64, dir: &Path) -> ExitDir {
    let theirs = Path::new(&format!("/proc/{pid}/root")).join(dir.strip_prefix("/").unwrap_or(dir));
    let ours = std::fs::metadata(dir);
    let how = format!("--exit-dir of conmon {pid}");
    match (std::fs::metadata(&theirs), ours) {
        (Ok(t), Ok(o)) if (t.dev(), t.ino()) == (o.dev(), o.ino()) => ExitDir::Found {
            path: dir.to_path_buf(),
            how,
        },
        (Ok(_), Ok(_)) => ExitDir::Elsewhere {
            path: dir.to_path_buf(),
            why: format!(
                "{how}: conmon runs in another root or mount namespace, where it is another directory than {} here",
                dir.display()
            ),
        },
        (Ok(_), Err(e)) => ExitDir::Elsewhere {
            path: dir.to_path_buf(),
            why: format!(
                "{how}: conmon runs in another root or mount namespace; {} here: {e}",
                dir.display()
            ),
        },
        // Cannot look into conmon's root (another user's process): the
        // directory of that name here is the best guess there is.
        (Err(e), Ok(_)) => ExitDir::Found {
            path: dir.to_path_buf(),
            how: format!("{how} (its root is not readable from here: {e}; assumed the same)"),
        },
        (Err(_), Err(e)) => ExitDir::Elsewhere {
            path: dir.to_path_buf(),
            why: format!("{how}: {} is not readable here: {e}", dir.display()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_exit_dir_should_be_read_off_the_conmon_of_that_container() {
        let id = "ab".repeat(32);
        let line = format!("/usr/bin/conmon --api-version 1 -c {id} -u {id} -r /usr/bin/runc --exit-dir /run/libpod/exits --full-attach");
        assert_eq!(
            conmon_exit_dir(&args(&line), &id),
            Some(PathBuf::from("/run/libpod/exits"))
        );
        let eq = format!(
            "/usr/libexec/podman/conmon -c {id} --exit-dir=/run/user/1001/libpod/tmp/exits"
        );
        assert_eq!(
            conmon_exit_dir(&args(&eq), &id),
            Some(PathBuf::from("/run/user/1001/libpod/tmp/exits"))
        );
        // Another container's conmon (a pid reused, another pid namespace), or not conmon at all.
        assert_eq!(conmon_exit_dir(&args(&line), &"cd".repeat(32)), None);
        let sleep = format!("/bin/sleep -c {id} --exit-dir /x");
        assert_eq!(conmon_exit_dir(&args(&sleep), &id), None);
    }

    #[test]
    fn the_default_should_follow_podmans_mode_and_user() {
        assert_eq!(
            default_exit_dir(false, Some(0)),
            PathBuf::from("/run/libpod/exits")
        );
        let other = crate::host::euid() + 1;
        assert_eq!(
            default_exit_dir(true, Some(other)),
            PathBuf::from(format!("/run/user/{other}/libpod/tmp/exits"))
        );
    }

    #[test]
    fn a_directory_should_be_found_only_when_conmon_sees_the_same_one() {
        let me = std::process::id() as i64;
        let dir = std::env::temp_dir();
        // Our own root is our root: the same directory.
        assert!(matches!(compare_roots(me, &dir), ExitDir::Found { .. }));
        let missing = Path::new("/nonexistent/podkeeper/exits");
        assert!(matches!(
            compare_roots(me, missing),
            ExitDir::Elsewhere { .. }
        ));
    }
}
