//! Shared harness for the end-to-end tests: a real podkeeper process against the real podman.
//!
//! These tests need the stack `scripts/setup-host` installs. They never skip:
//! a missing podman is a failure, with a message saying how to set it up.
//!
//! Which podman they run against is a parameter: the environment
//! `source scripts/env.sh STACK` sets (scripts/stacks.sh lists the stacks:
//! `root`, `podman5`, `rootless`). The test process itself always runs as
//! root; on the rootless stack podkeeper, the podman CLI and `systemctl
//! --user` run as that stack's user ([`user_command`]), so every helper here
//! (`podman()`, `inspect()`, `Daemon::start`, `Apps`, `podman_service()`, …)
//! means the stack under test, and a test written with them runs unchanged
//! on every stack.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The stack under test, from the environment (defaults: the host's rootful podman).
#[derive(Debug)]
pub struct Stack {
    /// `PODKEEPER_STACK`: `root`, `podman5`, `rootless`.
    pub name: String,
    /// `PODKEEPER_PODMAN`: the podman CLI of that stack (words), run as its user.
    pub podman: Vec<String>,
    /// `PODKEEPER_PODMAN_SOCKET` (else `CONTAINER_HOST`): its API socket.
    pub socket: PathBuf,
    /// `PODKEEPER_PODMAN_SERVICE`: a script taking start | stop | status.
    pub service: PathBuf,
    /// `PODKEEPER_TEST_USER`: the user podkeeper and podman run as (none: root).
    pub user: Option<User>,
}

/// An unprivileged user a stack runs as.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl User {
    /// Its `$XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    fn lookup(name: &str) -> User {
        let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let fields: Vec<&str> = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && f[0] == name)
            .unwrap_or_else(|| {
                panic!("user {name} (PODKEEPER_TEST_USER) does not exist: run `bash scripts/setup-host` first")
            });
        User {
            name: name.to_string(),
            uid: fields[2].parse().expect("uid"),
            gid: fields[3].parse().expect("gid"),
            home: PathBuf::from(fields[5]),
        }
    }
}

/// The stack under test (read once).
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let socket = var("PODKEEPER_PODMAN_SOCKET")
            .map(PathBuf::from)
            .or_else(|| {
                var("CONTAINER_HOST").and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
            })
            .unwrap_or_else(|| PathBuf::from("/run/podman/podman.sock"));
        Stack {
            name: var("PODKEEPER_STACK").unwrap_or_else(|| "root".into()),
            podman: var("PODKEEPER_PODMAN")
                .unwrap_or_else(|| "podman".into())
                .split_whitespace()
                .map(String::from)
                .collect(),
            socket,
            service: var("PODKEEPER_PODMAN_SERVICE")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join("scripts/podman-service")),
            user: var("PODKEEPER_TEST_USER").map(|u| User::lookup(&u)),
        }
    })
}

/// The podman API socket the tests use.
pub fn socket() -> PathBuf {
    stack().socket.clone()
}

/// `program` run as the stack's user, with that user's environment and `/`
/// as its directory (root stacks: as it is). Arguments and environment added
/// to the command afterwards still apply.
pub fn user_command(program: impl AsRef<OsStr>) -> Command {
    let Some(u) = &stack().user else {
        return Command::new(program);
    };
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &u.home)
        .env("USER", &u.name)
        .env("LOGNAME", &u.name)
        .env("LANG", "C.UTF-8")
        .env("XDG_RUNTIME_DIR", u.runtime_dir())
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}/bus", u.runtime_dir().display()),
        )
        .current_dir("/");
    for keep in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    c
}

/// The stack user's home (root's otherwise).
pub fn home() -> PathBuf {
    match &stack().user {
        Some(u) => u.home.clone(),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or("/root".into()),
    }
}

/// Create `dir` (and missing parents), each new one owned by the stack's user.
pub fn user_dir(dir: &Path) {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    if let Some(u) = &stack().user {
        for d in missing.iter().chain(std::iter::once(&dir.to_path_buf())) {
            std::os::unix::fs::chown(d, Some(u.uid), Some(u.gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", d.display()));
        }
    }
}

/// The podkeeper binary to run: `PODKEEPER_BIN`, else cargo's. A stack user
/// may not reach cargo's target directory (a checkout under /root): the
/// binary is then copied to /tmp, once per build.
pub fn podkeeper_bin() -> PathBuf {
    let built = std::env::var_os("PODKEEPER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_podkeeper")));
    if stack().user.is_none() {
        return built;
    }
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let meta = std::fs::metadata(&built).expect("podkeeper binary");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&built, meta.len(), meta.modified().ok()).hash(&mut h);
        let dir = PathBuf::from(format!("/tmp/podkeeper-e2e-bin/{:016x}", h.finish()));
        let to = dir.join("podkeeper");
        if !to.exists() {
            std::fs::create_dir_all(&dir).expect("create the binary's directory");
            let tmp = dir.join(format!(".podkeeper.{}", std::process::id()));
            std::fs::copy(&built, &tmp).expect("copy podkeeper");
            for d in [Path::new("/tmp/podkeeper-e2e-bin"), dir.as_path()] {
                set_mode(d, 0o755);
            }
            set_mode(&tmp, 0o755);
            std::fs::rename(&tmp, &to).expect("rename podkeeper");
        }
        to
    })
    .clone()
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
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
    require_stack_env();
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

/// Without the environment of `scripts/env.sh` (a plain `cargo test` on a
/// newcomer's machine), end this test binary with one line naming the test
/// files that need the stack, instead of every test failing on its own with
/// the podman error of a stack that is not there. It is still a failure (exit
/// 1), never a skip, so CI, which always sources `scripts/env.sh`, stays
/// strict; and it comes before the host lock, so it never waits for it.
fn require_stack_env() {
    if std::env::var_os("PODKEEPER_STACK").is_some_and(|v| !v.is_empty()) {
        return;
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    // The other tests of this binary wait here while the first one exits.
    ONCE.call_once(|| {
        let (mut real, mut plain) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(repo().join("tests"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            let (Some(name), Ok(text)) = (
                path.file_stem().and_then(|s| s.to_str()).map(String::from),
                std::fs::read_to_string(&path),
            ) else {
                continue;
            };
            // The rule scripts/test runs the other stacks' files by.
            if path.extension().is_some_and(|x| x == "rs") {
                if text.contains("serial()") {
                    real.push(name);
                } else {
                    plain.push(format!("--test {name}"));
                }
            }
        }
        real.sort();
        plain.sort();
        let line = format!(
            "{}: needs the test stack (podman, systemd, Quadlet): run `bash scripts/test`, or \
             `source scripts/env.sh root` on a host set up by scripts/setup-host. Files that \
             need it: {}. Without it: cargo test --lib {}\n",
            env!("CARGO_CRATE_NAME"),
            real.join(" "),
            plain.join(" ")
        );
        // Straight to stderr: the test harness would swallow a captured
        // eprintln! of a process that exits.
        use std::io::Write;
        let _ = std::io::stderr().write_all(line.as_bytes());
        std::process::exit(1);
    });
}

/// Fail loudly, never skip, when the stack is missing.
pub fn require_podman() {
    require_stack_env();
    let st = stack();
    let ok = podman(&["image", "exists", "localhost/bb:1"])
        .status
        .success();
    assert!(
        ok,
        "stack {}: {:?} with the image localhost/bb:1 is required: run `bash scripts/setup-host` first",
        st.name, st.podman
    );
    assert!(
        socket().exists(),
        "stack {}: the podman API service is not running at {}: run `{} start`",
        st.name,
        socket().display(),
        st.service.display()
    );
}

/// Run the stack's podman CLI (locally, not through the service), as its
/// user, with a time limit.
pub fn podman(args: &[&str]) -> std::process::Output {
    user_command("timeout")
        .arg("60")
        .args(&stack().podman)
        .args(args)
        .env_remove("CONTAINER_HOST")
        .output()
        .expect("run podman")
}

pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} ({}): {}",
        stack().name,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `systemctl --user` of the stack user's manager, with a time limit.
pub fn systemctl(args: &[&str]) -> std::process::Output {
    user_command("timeout")
        .args(["60", "systemctl", "--user", "--no-pager"])
        .args(args)
        .output()
        .expect("run systemctl")
}

/// Start, stop or ask about the stack's podman API service.
pub fn podman_service(action: &str) {
    let st = stack();
    let ok = Command::new(&st.service)
        .arg(action)
        .env("PODKEEPER_STACK", &st.name)
        .status()
        .unwrap_or_else(|e| panic!("run {}: {e}", st.service.display()));
    assert!(
        ok.success(),
        "{} {action} ({})",
        st.service.display(),
        st.name
    );
}

/// Starts the podman service again when dropped, even when a test fails half-way.
pub struct ServiceGuard;

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let st = stack();
        let _ = Command::new(&st.service)
            .arg("start")
            .env("PODKEEPER_STACK", &st.name)
            .status();
    }
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

/// `kill -9` of app `app`'s main process, then wait (30 s at most) until
/// podkeeper has started it again; how long that took.
pub fn kill_and_wait(app: &str) -> Duration {
    let before = inspect(app).expect("container");
    let t0 = Instant::now();
    kill9(before.pid);
    wait_until(
        Duration::from_secs(30),
        &format!("{app} started again"),
        || inspect(app).is_some_and(|c| c.status == "running" && c.started_at != before.started_at),
    );
    t0.elapsed()
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
        let dir = tempfile::tempdir().expect("tempdir");
        // podkeeper reads it as the stack's user; it stays root's (podkeeper
        // trusts a directory root owns, and a `check` run as root trusts it too).
        if stack().user.is_some() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod apps dir");
        }
        Apps {
            dir,
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
/// The state file `Daemon::start` gives a daemon on `apps` (podkeeper
/// creates its directory, owner-only, as the stack's user).
pub fn state_file_for(apps: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    apps.hash(&mut h);
    std::env::temp_dir()
        .join(format!("podkeeper-test-state-{:016x}", h.finish()))
        .join("state.json")
}

pub struct Daemon {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `podkeeper run --debug` on `apps`, against the stack's socket, as its user.
    pub fn start(apps: &Path, extra: &[&str]) -> Self {
        Self::start_with(apps, &socket(), extra, &[])
    }

    /// [`Daemon::start`] against another podman `socket`, with `env` added
    /// to its environment (e.g. `PODKEEPER_TEST_KILL_AT`).
    pub fn start_with(apps: &Path, socket: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = user_command(podkeeper_bin());
        cmd.arg("run")
            .arg("--apps")
            .arg(apps)
            .arg("--socket")
            .arg(socket)
            .arg("--debug");
        if !extra.contains(&"--state-file") {
            // issue 23: a state file per apps directory, so a failed spec
            // one test remembers never reaches another test's app of the
            // same id (as root they would all share /var/lib/podkeeper);
            // a daemon restarted on the same apps finds it again.
            cmd.arg("--state-file").arg(state_file_for(apps));
        }
        let mut child = cmd
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podkeeper");
        if let Some(u) = &stack().user {
            // setpriv has become podkeeper, as the stack's user.
            let pid = child.id();
            wait_until(
                Duration::from_secs(10),
                "podkeeper running as the stack user",
                || {
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    exe.ends_with("podkeeper")
                        && status.lines().any(|l| {
                            l.starts_with("Uid:")
                                && l.split_whitespace().nth(1) == Some(&u.uid.to_string())
                        })
                },
            );
        }
        let out = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = out.clone();
        let name = &stack().name;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("podkeeper[{name}]| {line}");
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

    /// The debug lines (after `mark`) that are reactions of `key`.
    pub fn reactions(&self, mark: usize, key: &str) -> Vec<String> {
        let needle = format!("react  {key} ");
        self.lines_since(mark)
            .into_iter()
            .filter(|l| l.contains(&needle))
            .collect()
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
