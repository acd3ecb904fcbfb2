//! Shared harness for the end-to-end tests: a real podkeeper process against the real podman.
//!
//! These tests need the stack `scripts/setup-host` installs. They never skip:
//! a missing podman is a failure, with a message saying how to set it up.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The podman API socket the tests use.
pub fn socket() -> PathBuf {
    match std::env::var("CONTAINER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/run/podman/podman.sock"),
    }
}

/// The repository root (for scripts/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Held while a test uses the shared stack; see [`serial`].
pub struct Serial {
    _guard: MutexGuard<'static, ()>,
    _host: std::fs::File,
}

/// Tests share podman, the systemd user manager and Quadlet's unit
/// directory (and one stops the podman service): run them one at a time,
/// within this binary (a mutex) and across every process on the host (an
/// flock on a file in /tmp), so two checkouts testing at once, or a bench
/// and a test, never see each other's containers come and go.
pub fn serial() -> Serial {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let host = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/podkeeper-e2e.lock")
        .expect("open /tmp/podkeeper-e2e.lock");
    // SAFETY: flock on a file descriptor we own; it is released when the file closes.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&host), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock /tmp/podkeeper-e2e.lock");
    require_podman();
    Serial {
        _guard: guard,
        _host: host,
    }
}

/// Fail loudly, never skip, when the stack is missing.
pub fn require_podman() {
    let ok = Command::new("podman")
        .args(["image", "exists", "localhost/bb:1"])
        .env_remove("CONTAINER_HOST")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "podman with the image localhost/bb:1 is required: run `bash scripts/setup-host` first"
    );
    assert!(
        socket().exists(),
        "the podman API service is not running at {}: run `scripts/podman-service start`",
        socket().display()
    );
}

/// Run the podman CLI (locally, not through the service), with a time limit.
pub fn podman(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg("podman")
        .args(args)
        .env_remove("CONTAINER_HOST")
        .output()
        .expect("run podman")
}

pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the tests read of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Ctr {
    pub id: String,
    pub status: String,
    pub pid: i64,
    pub started_at: String,
    pub cmd: Vec<String>,
    pub labels: serde_json::Value,
}

pub fn inspect(name: &str) -> Option<Ctr> {
    let out = podman(&["container", "inspect", name]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let c = v.get(0)?;
    Some(Ctr {
        id: c["Id"].as_str()?.to_string(),
        status: c["State"]["Status"].as_str()?.to_string(),
        pid: c["State"]["Pid"].as_i64().unwrap_or(0),
        started_at: c["State"]["StartedAt"].as_str().unwrap_or("").to_string(),
        cmd: serde_json::from_value(c["Config"]["Cmd"].clone()).unwrap_or_default(),
        labels: c["Config"]["Labels"].clone(),
    })
}

/// `kill -9` of a process (a container's main process).
pub fn kill9(pid: i64) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -9 {pid}");
}

pub fn is_running(name: &str) -> bool {
    inspect(name).is_some_and(|c| c.status == "running")
}

/// Poll `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Remove every container whose name starts with `prefix`.
pub fn remove_containers(prefix: &str) {
    let names = podman_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let ours: Vec<&str> = names.lines().filter(|n| n.starts_with(prefix)).collect();
    if !ours.is_empty() {
        let mut args = vec!["rm", "-f", "-t", "0"];
        args.extend(ours);
        podman(&args);
    }
}

/// A command that exits on SIGTERM (busybox sleep as PID 1 ignores it).
pub const TRAP_CMD: &str = r#"["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]"#;

pub fn manifest(id: &str, command: &str) -> String {
    format!(
        "app:\n  id: {id}\n  name: Test {id}\n  version: 1.0.0\n  container:\n    image: localhost/bb:1\n    command: {command}\n    network: none\n"
    )
}

/// The `companions:` block of a manifest: (name, kind, unit file contents)
/// each; nothing when there are none.
pub fn companions_yaml(companions: &[(&str, &str, &str)]) -> String {
    let mut m = String::new();
    if !companions.is_empty() {
        m.push_str("  companions:\n");
        for (name, kind, unit) in companions {
            m.push_str(&format!(
                "    - name: {name}\n      kind: {kind}\n      unit: |\n"
            ));
            for line in unit.lines() {
                m.push_str(&format!("        {line}\n"));
            }
        }
    }
    m
}

/// A temporary apps directory that cleans its containers up.
pub struct Apps {
    pub dir: tempfile::TempDir,
    pub prefix: String,
}

impl Apps {
    pub fn new(prefix: &str) -> Self {
        remove_containers(prefix);
        Apps {
            dir: tempfile::tempdir().expect("tempdir"),
            prefix: prefix.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `<id>.yaml` atomically (as a careful tool would).
    pub fn write(&self, id: &str, command: &str) {
        self.write_raw(&format!("{id}.yaml"), &manifest(id, command));
    }

    pub fn write_raw(&self, file: &str, text: &str) {
        let tmp = self.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, self.path().join(file)).expect("rename manifest");
    }

    pub fn remove(&self, id: &str) {
        std::fs::remove_file(self.path().join(format!("{id}.yaml"))).expect("remove manifest");
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        remove_containers(&self.prefix);
    }
}

/// A running `podkeeper run --debug`, its stdout captured line by line.
pub struct Daemon {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(apps: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
            .arg("run")
            .arg("--apps")
            .arg(apps)
            .arg("--socket")
            .arg(socket())
            .arg("--debug")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podkeeper");
        let out = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("podkeeper| {line}");
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Daemon { child, out }
    }

    /// The podkeeper process id (to read /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn lines(&self) -> Vec<String> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// How many lines have been printed so far (a mark to search after).
    pub fn mark(&self) -> usize {
        self.lines().len()
    }

    pub fn lines_since(&self, mark: usize) -> Vec<String> {
        self.lines().into_iter().skip(mark).collect()
    }

    /// Wait for a line (after `mark`) containing every one of `parts`.
    pub fn wait_line(&self, mark: usize, parts: &[&str], limit: Duration) -> String {
        let mut found = String::new();
        wait_until(limit, &format!("a line with {parts:?}"), || {
            match self
                .lines_since(mark)
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                Some(l) => {
                    found = l;
                    true
                }
                None => false,
            }
        });
        found
    }

    /// Wait for the start-up sweep to have run.
    pub fn wait_ready(&self) {
        self.wait_line(0, &["react", "sweep"], Duration::from_secs(30));
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig}");
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status.code();
            }
            assert!(
                start.elapsed() < limit,
                "podkeeper did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(40))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
