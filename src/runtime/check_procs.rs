//! A healthcheck's processes that outlived its timeout, found in the container's pid namespace through /proc and killed.
//!
//! podman 4.3 never kills a check at its timeout: its exec waits for the
//! command however long it runs, and a check that hangs (`sleep 100000`, a
//! wedged `curl`) stays in the container for good, one more at every run.
//! Docker and newer podmans kill it; podkeeper does so itself, on every
//! podman, the moment the timeout is up.
//!
//! A check's process is told from the app's own and from a user's `podman
//! exec` by two things together:
//! * it is an *exec root*: in the container's pid namespace, but its parent
//!   is not (the conmon podman started for that exec is outside);
//! * it runs the check's command: the process spec that conmon was given
//!   (`--exec-process-spec FILE`, read through conmon's own root, so a
//!   podman in another mount namespace is read alike) holds exactly the
//!   check's arguments, or its own command line is exactly them. The spec
//!   is what tells `sh -c 'sleep 5'`, which a shell turns into a bare
//!   `sleep 5` by exec'ing its last command.
//!
//! Such a root and every process below it in the namespace are killed with
//! SIGKILL, as Docker does.
//!
//! Each process is pinned with a pidfd before it is checked again and
//! signalled, so a pid reused meanwhile is never killed by mistake.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// The most of a command line read (a check's is bounded by the manifest's).
const MAX_CMDLINE: usize = 64 * 1024;
/// The most of an exec process spec read (a few kB: args, env, capabilities).
const MAX_SPEC: u64 = 1 << 20;

/// Kill the processes of the check `command` running in the pid namespace
/// of the container whose main process is `container_pid`. Returns how many
/// were killed (0 when there are none, or /proc cannot tell).
pub fn kill_check_processes(container_pid: u32, command: &[String]) -> usize {
    let proc = Path::new("/proc");
    let Ok(ns) = fs::read_link(proc.join(container_pid.to_string()).join("ns/pid")) else {
        return 0;
    };
    let members = namespace_members(proc, &ns);
    let roots: Vec<u32> = members
        .iter()
        .filter(|(pid, ppid)| {
            **pid != container_pid
                && !members.contains_key(ppid)
                && (spec_args(**ppid).is_some_and(|a| a == command)
                    || cmdline(**pid).is_some_and(|c| c == command))
        })
        .map(|(pid, _)| *pid)
        .collect();
    let mut doomed = Vec::new();
    for root in roots {
        doomed.push(root);
        descendants(&members, root, &mut doomed);
    }
    doomed
        .into_iter()
        .filter(|pid| kill_if_still(*pid, &ns))
        .count()
}

/// Every process in pid namespace `ns`: pid → parent pid (both as the host sees them).
fn namespace_members(proc: &Path, ns: &Path) -> HashMap<u32, u32> {
    let Ok(dir) = fs::read_dir(proc) else {
        return HashMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(proc.join(pid.to_string()).join("ns/pid")).is_ok_and(|l| l == ns)
        })
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// The process's command line, split at its NULs.
fn cmdline(pid: u32) -> Option<Vec<String>> {
    use std::io::Read;
    let mut raw = Vec::new();
    fs::File::open(format!("/proc/{pid}/cmdline"))
        .ok()?
        .take(MAX_CMDLINE as u64)
        .read_to_end(&mut raw)
        .ok()?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    Some(
        raw.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// The arguments of the exec process spec conmon `conmon_pid` was given.
fn spec_args(conmon_pid: u32) -> Option<Vec<String>> {
    use std::io::Read;
    let args = cmdline(conmon_pid)?;
    let at = args.iter().position(|a| a == "--exec-process-spec")?;
    let spec = args.get(at + 1)?.trim_start_matches('/');
    let mut raw = Vec::new();
    fs::File::open(Path::new(&format!("/proc/{conmon_pid}/root")).join(spec))
        .ok()?
        .take(MAX_SPEC)
        .read_to_end(&mut raw)
        .ok()?;
    #[derive(serde::Deserialize)]
    struct Spec {
        args: Vec<String>,
    }
    serde_json::from_slice::<Spec>(&raw).ok().map(|s| s.args)
}

fn descendants(members: &HashMap<u32, u32>, root: u32, out: &mut Vec<u32>) {
    // Bounded: each member is visited once (a pid is never its own ancestor).
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        for (pid, _) in members.iter().filter(|(_, p)| **p == parent) {
            if !out.contains(pid) {
                out.push(*pid);
                stack.push(*pid);
            }
        }
    }
}

/// SIGKILL `pid` if it is still a process of namespace `ns` once pinned.
fn kill_if_still(pid: u32, ns: &Path) -> bool {
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    let Ok(fd) = i32::try_from(fd) else {
        return false;
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The pidfd names one process for good: if the pid still shows the
    // namespace now, the pidfd is that process, not a successor.
    let same = fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns);
    if !same {
        return false;
    }
    let raw = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
    // SAFETY: pidfd_send_signal(pidfd, sig, info = NULL, flags = 0).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            raw,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_should_cover_the_whole_tree_once() {
        let members: HashMap<u32, u32> = [(10, 1), (11, 10), (12, 11), (13, 10), (20, 1)]
            .into_iter()
            .collect();
        let mut out = vec![10];
        descendants(&members, 10, &mut out);
        out.sort_unstable();
        assert_eq!(out, [10, 11, 12, 13]);
    }

    #[test]
    fn a_container_that_is_gone_should_kill_nothing() {
        assert_eq!(kill_check_processes(u32::MAX - 1, &["/bin/true".into()]), 0);
    }

    #[test]
    fn our_own_command_line_should_read_as_given() {
        let own = cmdline(std::process::id()).unwrap();
        assert!(!own.is_empty() && !own[0].is_empty(), "{own:?}");
    }
}
