//! Faults and signals, end to end against the real podman 4.3: pulls from a local registry, `rename` by hand, crash loops, broken pipes, SIGHUP, inotify limits, a podman that never answers, a stream lost early.
//!
//! Every test holds `common::serial()`; the ones that lower inotify limits or
//! stop the podman service put them back when they end, also on failure.

mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// A manifest like `common::manifest`, with another image.
fn manifest_with_image(id: &str, command: &str, image: &str) -> String {
    manifest(id, command).replace("localhost/bb:1", image)
}

fn script(name: &str, arg: &str) {
    let ok = Command::new(repo().join("scripts").join(name))
        .arg(arg)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "scripts/{name} {arg} failed (run `bash scripts/setup-host`)"
    );
}

/// A debug line's wall-clock stamp (`HH:MM:SS.mmm`) in seconds of the day.
fn stamp(line: &str) -> f64 {
    let t = line.split_whitespace().next().unwrap_or("");
    let mut parts = t.split(':');
    let h: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let m: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let s: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}

const REG_IMAGE: &str = "127.0.0.1:5000/podkeeper-test/bb:pull";
const REG_ABSENT: &str = "127.0.0.1:5000/podkeeper-test/absent:1";

#[test]
fn a_missing_image_should_be_pulled_from_the_registry_and_a_failed_pull_reported_once_per_backoff_step(
) {
    let _g = serial();
    script("registry-service", "start");
    podman_ok(&["push", "--quiet", "localhost/bb:1", REG_IMAGE]);
    let _ = podman(&["rmi", "-f", REG_IMAGE]);
    assert!(
        !podman(&["image", "exists", REG_IMAGE]).status.success(),
        "the image is only in the registry"
    );
    let apps = Apps::new("e2e-pull-");
    apps.write_raw(
        "e2e-pull-ok.yaml",
        &manifest_with_image("e2e-pull-ok", TRAP_CMD, REG_IMAGE),
    );
    apps.write_raw(
        "e2e-pull-bad.yaml",
        &manifest_with_image("e2e-pull-bad", TRAP_CMD, REG_ABSENT),
    );
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "the pulled app runs", || is_running("e2e-pull-ok"));
    d.wait_line(
        0,
        &[
            "react",
            "app/e2e-pull-ok",
            "create",
            "pull ",
            "start ",
            "] ok",
        ],
        T,
    );
    // Attempts at 0, 1, 3, 7 s: one line each, the retry doubling.
    d.wait_line(0, &["react", "app/e2e-pull-bad", "retry in 8.0s"], T);
    let fails = d.reactions(0, "app/e2e-pull-bad");
    let retries: Vec<&str> = fails
        .iter()
        .map(|l| l.rsplit("(retry in ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        retries,
        ["1.0s)", "2.0s)", "4.0s)", "8.0s)"],
        "one line per backoff step:\n{}",
        fails.join("\n")
    );
    for l in &fails {
        assert!(
            l.contains(&format!("FAILED: pull {REG_ABSENT}: ")) && l.contains("pull "),
            "{l}"
        );
    }
    assert_eq!(d.stop(), Some(0));
    let _ = podman(&["rm", "-f", "-t", "0", "e2e-pull-ok"]);
    let _ = podman(&["rmi", "-f", REG_IMAGE]);
}

/// podkeeper with stdout and stderr on one pipe whose reader takes 10
/// bytes and goes away: `podkeeper run … 2>&1 | head -c 10`.
fn spawn_into_a_pipe_closed_early(apps: &Path, extra: &[&str]) -> Child {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) fills two new descriptors that we own from here on.
    // O_CLOEXEC: the child must not inherit the read end too (the pipe
    // would never break).
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w2 = w.try_clone().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .arg("run")
        .arg("--apps")
        .arg(apps)
        .arg("--socket")
        .arg(socket())
        .args(extra)
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .spawn()
        .expect("start podkeeper");
    let mut reader = std::fs::File::from(r);
    let mut head = [0u8; 10];
    reader.read_exact(&mut head).expect("the first 10 bytes");
    drop(reader);
    child
}

/// A child process killed when the test ends, also on failure.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<i32> {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("podkeeper did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig}");
}

#[test]
fn a_pipe_closed_early_should_never_stop_the_daemon_nor_its_clean_exit() {
    let _g = serial();
    let apps = Apps::new("e2e-pipe-");
    apps.write("e2e-pipe-a", TRAP_CMD);
    // Without --debug (logs on stderr): it runs, works, and a SIGTERM exits 0.
    let mut quiet = Reaped(spawn_into_a_pipe_closed_early(apps.path(), &[]));
    let quiet = &mut quiet.0;
    wait_until(T, "a running", || is_running("e2e-pipe-a"));
    let c = inspect("e2e-pipe-a").unwrap();
    kill9(c.pid);
    wait_until(T, "repaired with nobody reading its logs", || {
        inspect("e2e-pipe-a").is_some_and(|n| n.status == "running" && n.started_at != c.started_at)
    });
    assert!(quiet.try_wait().unwrap().is_none(), "still running");
    signal(quiet, "TERM");
    assert_eq!(wait_child(quiet, T), Some(0));

    // With --debug: SIGTERM drains a reconcile in flight; a second signal
    // exits 130 at once. busybox sleep ignores SIGTERM, so recreating it
    // waits out podman's 10 s stop timeout.
    apps.write("e2e-pipe-a", r#"["/bin/sleep", "100000"]"#);
    let mut debug = Reaped(spawn_into_a_pipe_closed_early(apps.path(), &["--debug"]));
    let debug = &mut debug.0;
    wait_until(T, "recreated with sleep", || {
        inspect("e2e-pipe-a").is_some_and(|n| n.status == "running" && n.cmd[0] == "/bin/sleep")
    });
    std::thread::sleep(Duration::from_millis(500));
    apps.write("e2e-pipe-a", TRAP_CMD);
    std::thread::sleep(Duration::from_millis(1500));
    signal(debug, "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        debug.try_wait().unwrap().is_none(),
        "draining the recreate in flight"
    );
    let t0 = Instant::now();
    signal(debug, "INT");
    assert_eq!(wait_child(debug, Duration::from_secs(5)), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(3), "at once");

    // And a drain that ends by itself exits 0 (the recreate is done or abandoned by now).
    let mut last = Reaped(spawn_into_a_pipe_closed_early(apps.path(), &["--debug"]));
    let last = &mut last.0;
    wait_until(T, "a running", || is_running("e2e-pipe-a"));
    signal(last, "TERM");
    assert_eq!(wait_child(last, Duration::from_secs(40)), Some(0));
}

#[test]
fn sighup_should_reload_and_never_end_the_daemon() {
    let _g = serial();
    let apps = Apps::new("e2e-hup-");
    apps.write("e2e-hup-a", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    d.wait_ready();
    wait_until(T, "a running", || is_running("e2e-hup-a"));
    let mark = d.mark();
    for _ in 0..3 {
        d.signal("HUP");
        std::thread::sleep(Duration::from_millis(300));
    }
    d.wait_line(
        mark,
        &["note", "signal", "SIGHUP: re-reading the manifests"],
        T,
    );
    d.wait_line(mark, &["react", "manifests", "reload", "1 apps"], T);
    d.wait_line(mark, &["react", "sweep", "ok"], T);
    d.signal("0");
    assert!(is_running("e2e-hup-a"));
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn an_instant_crash_loop_should_be_held_back_by_the_crash_loop_delay() {
    let _g = serial();
    let apps = Apps::new("e2e-loop-");
    apps.write("e2e-loop-false", r#"["/bin/false"]"#);
    let d = Daemon::start(apps.path(), &[]);
    std::thread::sleep(Duration::from_secs(20));
    let starts: Vec<f64> = d
        .reactions(0, "app/e2e-loop-false")
        .iter()
        .filter(|l| (l.contains(" start ") || l.contains(" create ")) && l.ends_with("ok"))
        .map(|l| stamp(l))
        .collect();
    let intervals: Vec<String> = starts
        .windows(2)
        .map(|w| format!("{:.2}", w[1] - w[0]))
        .collect();
    println!("{} starts in 20 s, intervals {intervals:?}", starts.len());
    // Delays 0.1, 0.2, 0.4 … 6.4 s: about 8 starts in 20 s (podman 4.3
    // stamped the exit before the start, and each restart used to follow
    // the last in 0.15 s: about 25 in 20 s).
    assert!(
        (4..=12).contains(&starts.len()),
        "{} starts in 20 s: {intervals:?}",
        starts.len()
    );
    let last: f64 = intervals.last().and_then(|i| i.parse().ok()).unwrap_or(0.0);
    assert!(last >= 1.5, "the delay grew: {intervals:?}");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_fixed_or_deleted_manifest_should_not_wait_out_any_backoff() {
    let _g = serial();
    let apps = Apps::new("e2e-fix-");
    apps.write("e2e-fix-loop", r#"["/bin/false"]"#);
    apps.write_raw(
        "e2e-fix-nope.yaml",
        &manifest_with_image("e2e-fix-nope", TRAP_CMD, "localhost/podkeeper-absent:1"),
    );
    let d = Daemon::start(apps.path(), &[]);
    // Crash-loop delay at 3.2 s or more, failure backoff at 8 s or more.
    d.wait_line(0, &["react", "app/e2e-fix-nope", "retry in 8.0s"], T);
    std::thread::sleep(Duration::from_secs(4));
    let mark = d.mark();
    apps.write("e2e-fix-loop", TRAP_CMD);
    apps.remove("e2e-fix-nope");
    let changed = d.wait_line(
        mark,
        &["apps-dir", "manifest changed", "app/e2e-fix-loop"],
        T,
    );
    let gone = d.wait_line(mark, &["apps-dir", "manifest gone", "app/e2e-fix-nope"], T);
    for l in [&changed, &gone] {
        assert!(
            !l.contains("runs in"),
            "acted on at once, not after the backoff: {l}"
        );
    }
    let fixed = d.wait_line(
        mark,
        &[
            "react",
            "app/e2e-fix-loop",
            "recreate",
            "spec changed",
            "ok",
        ],
        Duration::from_secs(5),
    );
    let done = d.wait_line(
        mark,
        &["react", "app/e2e-fix-nope", "ok"],
        Duration::from_secs(5),
    );
    assert!(stamp(&fixed) - stamp(&changed) < 2.0, "{changed}\n{fixed}");
    assert!(stamp(&done) - stamp(&gone) < 2.0, "{gone}\n{done}");
    wait_until(T, "the fixed app runs", || is_running("e2e-fix-loop"));
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_renamed_container_should_be_reported_once_and_removed_with_its_manifest() {
    let _g = serial();
    let apps = Apps::new("e2e-dup-");
    apps.write("e2e-dup-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-dup-web"));
    let first = inspect("e2e-dup-web").unwrap();
    let mark = d.mark();
    podman_ok(&["rename", "e2e-dup-web", "e2e-dup-web-old"]);
    wait_until(T, "a new e2e-dup-web", || {
        inspect("e2e-dup-web").is_some_and(|c| c.status == "running" && c.id != first.id)
    });
    d.wait_line(
        mark,
        &[
            "WARN",
            "duplicate",
            "e2e-dup-web-old",
            "app/e2e-dup-web",
            "left alone",
        ],
        T,
    );
    // A sweep finds it again: no second report.
    d.signal("HUP");
    d.wait_line(mark, &["react", "sweep", "ok"], T);
    std::thread::sleep(Duration::from_millis(500));
    let reports = d
        .lines_since(mark)
        .iter()
        .filter(|l| l.contains("duplicate ") && l.contains("WARN"))
        .count();
    assert_eq!(reports, 1, "reported once:\n{}", d.output());
    assert!(
        is_running("e2e-dup-web-old"),
        "left alone while the manifest exists"
    );

    apps.remove("e2e-dup-web");
    wait_until(T, "both gone", || {
        inspect("e2e-dup-web").is_none() && inspect("e2e-dup-web-old").is_none()
    });
    d.wait_line(
        mark,
        &[
            "react",
            "app/e2e-dup-web-old",
            "remove",
            "duplicate of app/e2e-dup-web",
            "ok",
        ],
        T,
    );
    assert_eq!(d.stop(), Some(0));

    // With --prune-orphans a duplicate goes at once.
    apps.write("e2e-dup-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &["--prune-orphans"]);
    wait_until(T, "running", || is_running("e2e-dup-web"));
    podman_ok(&["rename", "e2e-dup-web", "e2e-dup-web-old"]);
    wait_until(T, "the duplicate removed, the app recreated", || {
        inspect("e2e-dup-web-old").is_none() && is_running("e2e-dup-web")
    });
    d.wait_line(
        0,
        &["WARN", "duplicate", "e2e-dup-web-old", "--prune-orphans"],
        T,
    );
    assert_eq!(d.stop(), Some(0));
}

/// Sets inotify limits for a while; puts the old values back when dropped.
struct InotifyLimit {
    path: &'static str,
    old: String,
}

impl InotifyLimit {
    fn set(name: &'static str, value: u64) -> Self {
        let path = match name {
            "max_user_watches" => "/proc/sys/fs/inotify/max_user_watches",
            _ => "/proc/sys/fs/inotify/max_user_instances",
        };
        let old = std::fs::read_to_string(path).expect("read the inotify limit");
        std::fs::write(path, value.to_string()).expect("set the inotify limit (root)");
        InotifyLimit { path, old }
    }
}

impl Drop for InotifyLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, self.old.trim());
    }
}

#[test]
fn inotify_limits_should_degrade_to_rescanning_and_say_exactly_what_is_not_watched() {
    let _g = serial();
    let apps = Apps::new("e2e-ino-");
    let units = tempfile::tempdir().unwrap();
    let unit_arg = units.path().display().to_string();
    let args = ["--unit-dir", unit_arg.as_str(), "--no-exit-watch"];

    // No free watch: both directories rescanned, a new manifest applied.
    let limit = InotifyLimit::set("max_user_watches", 1);
    let d = Daemon::start(apps.path(), &args);
    d.wait_ready();
    let apps_dir = apps.path().display().to_string();
    let apps_line = d.wait_line(0, &["WARN", "apps-dir", &apps_dir, "NOT watched"], T);
    assert!(
        apps_line.contains("fs.inotify.max_user_watches"),
        "{apps_line}"
    );
    let unit_line = d.wait_line(0, &["WARN", "companions", &unit_arg], T);
    assert!(
        unit_line.contains("NOT watched") && !unit_line.contains("(watched)"),
        "{unit_line}"
    );
    apps.write("e2e-ino-a", TRAP_CMD);
    wait_until(T, "a manifest written while unwatched is applied", || {
        is_running("e2e-ino-a")
    });
    d.wait_line(0, &["apps-dir", "rescan", "queue manifests"], T);
    // The limit back: the watch is made, and changes are events again.
    drop(limit);
    std::thread::sleep(Duration::from_secs(3));
    let mark = d.mark();
    apps.write("e2e-ino-b", TRAP_CMD);
    d.wait_line(mark, &["apps-dir", "rename-to", "e2e-ino-b.yaml"], T);
    wait_until(T, "b", || is_running("e2e-ino-b"));
    assert_eq!(d.stop(), Some(0));

    // No free inotify instance, no companion: it runs (it used to exit 2).
    let limit = InotifyLimit::set("max_user_instances", 1);
    let d = Daemon::start(apps.path(), &args);
    d.wait_ready();
    let line = d.wait_line(0, &["WARN", "apps-dir", "NOT watched"], T);
    assert!(line.contains("no free inotify instance"), "{line}");
    apps.write("e2e-ino-c", TRAP_CMD);
    wait_until(T, "c applied without inotify", || is_running("e2e-ino-c"));
    drop(limit);
    assert_eq!(d.stop(), Some(0));
}

/// A unix socket that accepts connections and never answers, until told to
/// pass them on to the real podman.
struct Impostor {
    path: PathBuf,
    forward: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<UnixStream>>>,
}

impl Impostor {
    fn start(path: PathBuf) -> Self {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the silent socket");
        let forward = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (fwd, keep) = (forward.clone(), held.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                if !fwd.load(Ordering::SeqCst) {
                    keep.lock().unwrap().push(conn);
                    continue;
                }
                let Ok(up) = UnixStream::connect(socket()) else {
                    continue;
                };
                let pipe = |mut from: UnixStream, mut to: UnixStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(conn.try_clone().unwrap(), up.try_clone().unwrap());
                pipe(up, conn);
            }
        });
        Impostor {
            path,
            forward,
            held,
        }
    }

    /// From now on, connections reach podman; the silent ones are closed.
    fn answer(&self) {
        self.forward.store(true, Ordering::SeqCst);
        self.held.lock().unwrap().clear();
    }
}

#[test]
fn a_podman_that_accepts_and_never_answers_should_be_reported_and_left_behind_when_it_answers() {
    let _g = serial();
    let apps = Apps::new("e2e-mute-");
    apps.write("e2e-mute-a", TRAP_CMD);
    let dir = tempfile::tempdir().unwrap();
    let imp = Impostor::start(dir.path().join("podman.sock"));
    let path = imp.path.display().to_string();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_podkeeper"))
            .args(["run", "--debug", "--no-exit-watch", "--apps"])
            .arg(apps.path())
            .args(["--socket", &path])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            println!("podkeeper| {l}");
            sink.lock().unwrap().push(l);
        }
    });
    let wait_for = |parts: &[&str], limit: Duration| {
        wait_until(limit, &format!("a line with {parts:?}"), || {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        })
    };
    // The start-up sweep runs although the stream never connects, and times out.
    wait_for(
        &["react", "sweep", "list did not answer within"],
        Duration::from_secs(40),
    );
    wait_for(&["WARN", "podman is unreachable"], T);
    assert!(inspect("e2e-mute-a").is_none());
    imp.answer();
    wait_until(
        Duration::from_secs(60),
        "created once podman answers",
        || is_running("e2e-mute-a"),
    );
    wait_for(&["podman answers again"], T);
    signal(child, "TERM");
    assert_eq!(wait_child(child, T), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lost_before_its_first_event_should_resume_from_its_first_connection() {
    use podkeeper::trigger::{StreamStatus, Trigger};
    let _g = serial();
    let name = "e2e-gap-created";
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(podkeeper::sources::podman_events::run(
        socket(),
        tx,
        cancel.clone(),
    ));
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(Trigger::Stream(StreamStatus::Connected { .. }))) => {}
        other => panic!("the events stream did not connect: {other:?}"),
    }
    let _service = ServiceGuard;
    podman_service("stop");
    // Made while nobody listens: written to podman's events log only.
    podman_ok(&[
        "create",
        "--network=none",
        "--name",
        name,
        "localhost/bb:1",
        "true",
    ]);
    podman_service("start");
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(t) = rx.recv().await {
            if let Trigger::Podman(ev) = t {
                if ev.action == "create" && ev.name() == name {
                    return true;
                }
            }
        }
        false
    })
    .await;
    cancel.cancel();
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    assert_eq!(found, Ok(true), "the gap's create event was delivered");
}

#[test]
fn duration_flags_should_be_bounded_with_a_clear_error_and_never_panic() {
    for (flag, value) in [
        ("--sweep-interval", "99999999999999999999h"),
        ("--sweep-interval", "0.0000000001s"),
        ("--sweep-interval", "8000h"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
            .args(["run", "--apps", "/nonexistent", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains("allowed: 1.0s to 168h") && !err.contains("panicked"),
            "{flag} {value}: {err}"
        );
    }
}
