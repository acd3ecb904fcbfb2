//! Faults during an update, end to end against the real podman 4.3 (root stack only): podkeeper SIGKILLed at each step of the replace path, the podman service SIGKILLed during the gate, a full disk during the pull; the app ends on the new spec gated or on its old container, never neither, never both running.
//!
//! The kill points need the `test-hooks` feature (scripts/test builds with
//! it): `PODKEEPER_TEST_KILL_AT=update:…` makes podkeeper SIGKILL itself at
//! that step (src/kill_points.rs). Every test holds `common::serial()`; the
//! one that kills the podman service starts it again when it ends, also on
//! failure.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(60);

/// The new spec: another command (so another spec hash), running until SIGTERM.
const NEW_CMD: &str = r#"["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 230023 & wait"]"#;
/// A new spec that fails its gate: it exits 3 after a second.
const FAILING_CMD: &str = r#"["/bin/sh", "-c", "echo i23 failing; sleep 1; exit 3"]"#;

/// `common::manifest` with an `update:` gate of `stable_for`.
fn with_gate(id: &str, command: &str, stable_for: &str) -> String {
    format!(
        "{}  update:\n    stable_for: {stable_for}\n",
        manifest(id, command)
    )
}

fn cmd_of(command: &str) -> Vec<String> {
    serde_json::from_str(command).expect("a JSON command")
}

fn next_of(id: &str) -> String {
    format!("{id}.next")
}

fn previous_of(id: &str) -> String {
    format!("{id}.previous")
}

/// A state file of its own for a test's podkeeper (`--state-file`), in `dir`.
fn state_file(dir: &tempfile::TempDir) -> String {
    dir.path().join("state.json").display().to_string()
}

/// What podman shows of the app's three names, for the test's output.
fn roles(id: &str) -> String {
    [id.to_string(), next_of(id), previous_of(id)]
        .iter()
        .map(|n| match inspect(n) {
            Some(c) => format!(
                "{n}={} {} {:?}",
                &c.id[..12],
                c.status,
                c.cmd.last().map(|s| s.as_str()).unwrap_or("")
            ),
            None => format!("{n}=none"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names and ids of the running containers, from the API service (one
/// request on the socket: a few ms, where the CLI takes a tenth of a second).
fn running_containers(socket: &PathBuf) -> Result<Vec<(String, String)>, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the service answers without chunks and closes.
    s.write_all(b"GET /v4.0.0/libpod/containers/json HTTP/1.0\r\nHost: d\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("answer: {}", head.lines().next().unwrap_or("")));
    }
    let list: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut running = Vec::new();
    for c in list.as_array().ok_or("not a list")? {
        if c["State"].as_str() != Some("running") {
            continue;
        }
        let id = c["Id"].as_str().unwrap_or("").to_string();
        for n in c["Names"].as_array().into_iter().flatten() {
            running.push((n.as_str().unwrap_or("").to_string(), id.clone()));
        }
    }
    Ok(running)
}

/// What a [`Sampler`] saw.
#[derive(Debug, Default)]
struct Samples {
    taken: usize,
    /// Samples the service did not answer (it is down on purpose in one test).
    unanswered: usize,
    /// Each sample where more than one container of the app ran.
    both: Vec<String>,
}

/// Every 50 ms: how many containers of the app (`<id>`, `<id>.next`,
/// `<id>.previous`) are running; never more than one may be.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Samples>>,
}

impl Sampler {
    fn start(id: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let names = [id.to_string(), next_of(id), previous_of(id)];
        let flag = stop.clone();
        let socket = socket();
        let handle = std::thread::spawn(move || {
            let mut s = Samples::default();
            let t0 = Instant::now();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                match running_containers(&socket) {
                    Ok(running) => {
                        let ours: Vec<String> = running
                            .iter()
                            .filter(|(n, _)| names.contains(n))
                            .map(|(n, id)| format!("{n}={}", &id[..12.min(id.len())]))
                            .collect();
                        if ours.len() > 1 {
                            s.both
                                .push(format!("{:?}: {}", t0.elapsed(), ours.join(" ")));
                        }
                        s.taken += 1;
                    }
                    Err(_) => s.unanswered += 1,
                }
                next += Duration::from_millis(50);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            s
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("sampler")
            .join()
            .expect("sampler thread")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The app on the new spec, gated: `<id>` running `command`, not the old
/// container, and neither `<id>.previous` nor `<id>.next` left.
fn on_new_gated(id: &str, old: &Ctr, command: &str) -> bool {
    inspect(id).is_some_and(|c| c.status == "running" && c.id != old.id && c.cmd == cmd_of(command))
        && inspect(&previous_of(id)).is_none()
        && inspect(&next_of(id)).is_none()
}

/// The app back on its old container (the same id), running, nothing else left.
fn on_old(id: &str, old: &Ctr) -> bool {
    inspect(id).is_some_and(|c| c.status == "running" && c.id == old.id)
        && inspect(&previous_of(id)).is_none()
        && inspect(&next_of(id)).is_none()
}

/// Where an update must end.
#[derive(Clone, Copy, PartialEq, Debug)]
enum End {
    /// On the new spec, gated (new id, no `.previous`, no `.next`).
    New,
    /// On the old container (its id), the new spec failed.
    Old,
}

/// Wait (60 s at most) for the app to end as `end`, then check it stays so
/// for 1.5 s more (no further replace, no loop); how long it took.
fn wait_end(id: &str, old: &Ctr, command: &str, end: End) -> Duration {
    let t0 = Instant::now();
    let done = || match end {
        End::New => on_new_gated(id, old, command),
        End::Old => on_old(id, old),
    };
    let mut last = String::new();
    let start = Instant::now();
    while !done() {
        last = roles(id);
        assert!(
            start.elapsed() < T,
            "{id} did not end {end:?} within {T:?}; podman shows: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t0.elapsed();
    let ended = inspect(id).expect("the app's container");
    std::thread::sleep(Duration::from_millis(1500));
    let now = inspect(id);
    assert!(
        done()
            && now
                .as_ref()
                .is_some_and(|c| c.id == ended.id && c.started_at == ended.started_at),
        "{id} ended {end:?} (after {last}) but did not stay so: {}",
        roles(id)
    );
    if end == End::New {
        assert!(
            inspect(&old.id).is_none(),
            "the old container {} of {id} is left after the update",
            &old.id[..12]
        );
    }
    took
}

/// podkeeper SIGKILLed at `point` while it updates `id` from a running
/// container to `command`; a new podkeeper (without the hook) must end the
/// app as `end`, and at no 50 ms sample may two of its containers run.
fn killed_at(point: &str, id: &str, command: &str, end: End) {
    killed_at_then(point, id, command, end, |_| {});
}

/// [`killed_at`], with `then` done to podman between the kill and the restart.
fn killed_at_then(point: &str, id: &str, command: &str, end: End, then: impl FnOnce(&str)) {
    let _g = serial();
    let t0 = Instant::now();
    let apps = Apps::new(id);
    let file = format!("{id}.yaml");
    apps.write_raw(&file, &with_gate(id, TRAP_CMD, "2s"));
    // The state file both podkeepers share (and no other test sees).
    let state = tempfile::tempdir().expect("tempdir");
    let state = state_file(&state);
    let mut first = Daemon::start_with(
        apps.path(),
        &socket(),
        &["--state-file", &state],
        &[("PODKEEPER_TEST_KILL_AT", point)],
    );
    first.wait_ready();
    wait_until(T, &format!("{id} running"), || is_running(id));
    let old = inspect(id).expect("the old container");
    let sampler = Sampler::start(id);
    apps.write_raw(&file, &with_gate(id, command, "2s"));
    eprintln!("{id}: waiting for podkeeper to SIGKILL itself at {point}");
    let code = first.wait_exit(T);
    assert_eq!(
        code, None,
        "podkeeper should have been SIGKILLed at {point}; it exited with {code:?}"
    );
    then(id);
    let left = roles(id);
    eprintln!("{id}: killed at {point}, podman shows: {left}");

    let second = Daemon::start(apps.path(), &["--state-file", &state]);
    let took = wait_end(id, &old, command, end);
    let samples = sampler.finish();
    eprintln!(
        "{id}: killed at {point} [{left}] -> {end:?} {took:?} after the restart; {} samples, {} unanswered",
        samples.taken, samples.unanswered
    );
    assert!(
        samples.both.is_empty(),
        "two containers of {id} ran at once (killed at {point}): {:?}",
        samples.both
    );
    assert!(samples.taken >= 20, "too few samples: {samples:?}");
    assert_eq!(second.stop(), Some(0));
    eprintln!("{id}: {:?} in all", t0.elapsed());
}

#[test]
fn killed_before_the_pull_should_end_on_the_new_spec_gated() {
    killed_at("update:pulling", "i23-kf-pulling", NEW_CMD, End::New);
}

#[test]
fn killed_after_the_new_container_is_created_should_end_on_the_new_spec_gated() {
    killed_at("update:created", "i23-kf-created", NEW_CMD, End::New);
}

#[test]
fn killed_after_the_old_container_is_stopped_should_end_on_the_new_spec_gated() {
    killed_at("update:stopped", "i23-kf-stopped", NEW_CMD, End::New);
}

#[test]
fn killed_after_the_old_container_is_kept_should_end_on_the_new_spec_gated() {
    killed_at("update:kept", "i23-kf-kept", NEW_CMD, End::New);
}

#[test]
fn killed_after_the_new_container_is_started_should_end_on_the_new_spec_gated() {
    killed_at("update:started", "i23-kf-started", NEW_CMD, End::New);
}

#[test]
fn killed_at_the_gates_first_look_should_end_on_the_new_spec_gated() {
    killed_at("update:gating", "i23-kf-gating", NEW_CMD, End::New);
}

#[test]
fn killed_after_the_gate_passed_should_end_on_the_new_spec_gated() {
    killed_at("update:passed", "i23-kf-passed", NEW_CMD, End::New);
}

#[test]
fn killed_at_the_gate_of_a_failing_spec_should_end_on_the_old_container() {
    killed_at("update:gating", "i23-kf-gatefail", FAILING_CMD, End::Old);
}

/// The state a rollback killed between its two steps leaves (the failed new
/// container removed, the previous one not yet renamed back): killed in the
/// gate of a failing spec, then `<id>` removed. The next podkeeper renames
/// the previous one back and starts it: the old id, and it stays there.
#[test]
fn killed_in_a_rollback_should_end_on_the_old_container() {
    killed_at_then(
        "update:gating",
        "i23-kf-rollback",
        FAILING_CMD,
        End::Old,
        |id| {
            podman_ok(&["rm", "-f", "-t", "0", id]);
        },
    );
}

/// The podman API service's processes (root stack: `podman system service … SOCKET`).
fn service_pids() -> Vec<i32> {
    let want = format!("unix://{}", socket().display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let joined = argv.join(" ");
        if argv.first().is_some_and(|a| a.ends_with("podman"))
            && joined.contains(" system service ")
            && joined.contains(&want)
        {
            pids.push(pid);
        }
    }
    pids
}

/// The podman service SIGKILLed while two apps are in their gate, down for
/// 3 s: the one whose new container keeps running passes its gate; the one
/// whose new container exits (3, after 2 s: while podman is away) is rolled
/// back to its old container.
#[test]
fn the_podman_service_sigkilled_during_the_gate_should_still_end_each_gate_right() {
    let _g = serial();
    let _service = ServiceGuard;
    let apps = Apps::new("i23-fsvc-");
    let (good, bad) = ("i23-fsvc-good", "i23-fsvc-bad");
    let bad_cmd = r#"["/bin/sh", "-c", "echo i23 exits; sleep 2; exit 3"]"#;
    for id in [good, bad] {
        apps.write_raw(&format!("{id}.yaml"), &with_gate(id, TRAP_CMD, "6s"));
    }
    let state = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(apps.path(), &["--state-file", &state_file(&state)]);
    d.wait_ready();
    for id in [good, bad] {
        wait_until(T, &format!("{id} running"), || is_running(id));
    }
    let (good_old, bad_old) = (inspect(good).unwrap(), inspect(bad).unwrap());
    let samplers = [Sampler::start(good), Sampler::start(bad)];
    apps.write_raw(&format!("{good}.yaml"), &with_gate(good, NEW_CMD, "6s"));
    apps.write_raw(&format!("{bad}.yaml"), &with_gate(bad, bad_cmd, "6s"));
    wait_until(T, "both apps in their gate", || {
        [good, bad].iter().all(|id| {
            inspect(&previous_of(id)).is_some()
                && inspect(id).is_some_and(|c| c.status == "running")
        })
    });
    let pids = service_pids();
    assert!(!pids.is_empty(), "no podman service found");
    for pid in &pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    eprintln!(
        "podman service SIGKILLed ({pids:?}) in the gate: {} | {}",
        roles(good),
        roles(bad)
    );
    std::thread::sleep(Duration::from_secs(3));
    podman_service("start");
    let took_good = wait_end(good, &good_old, NEW_CMD, End::New);
    let took_bad = wait_end(bad, &bad_old, bad_cmd, End::Old);
    eprintln!("after the service's return: {good} gated in {took_good:?}, {bad} rolled back in {took_bad:?}");
    for (id, s) in [good, bad].iter().zip(samplers) {
        let s = s.finish();
        eprintln!("{id}: {} samples, {} unanswered", s.taken, s.unanswered);
        assert!(
            s.both.is_empty(),
            "two containers of {id} ran at once: {:?}",
            s.both
        );
    }
    assert_eq!(d.stop(), Some(0));
}

/// The image the full-disk test pulls: the test image with an 8 MiB layer
/// of random bytes (so neither compressible nor shared).
const FULL_IMAGE: &str = "127.0.0.1:5000/podkeeper-test/i23-full:1";

/// A second podman 4.3 engine, its storage on a 64 MiB tmpfs, with its own
/// API service: a disk that can be filled without touching the host's.
/// Everything it made goes when it is dropped, also on failure.
struct SmallStore {
    dir: PathBuf,
    service: Option<std::process::Child>,
}

impl SmallStore {
    fn new() -> Self {
        let dir = PathBuf::from(format!("/tmp/i23-small-store-{}", std::process::id()));
        for d in ["store", "run", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).expect("create the store's directories");
        }
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(dir.join("store"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mount a 64 MiB tmpfs on {}", dir.display());
        let mut store = SmallStore { dir, service: None };
        let log = std::fs::File::create(store.dir.join("service.log")).expect("service log");
        let service = Command::new("podman")
            .args(store.globals())
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", store.socket().display()))
            .env_remove("CONTAINER_HOST")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the small store's podman service");
        store.service = Some(service);
        let socket = store.socket();
        wait_until(Duration::from_secs(30), "the small store's service", || {
            running_containers(&socket).is_ok()
        });
        store
    }

    fn globals(&self) -> Vec<String> {
        let at = |d: &str| self.dir.join(d).display().to_string();
        vec![
            "--root".into(),
            at("store/root"),
            "--runroot".into(),
            at("run"),
            "--tmpdir".into(),
            at("tmp"),
        ]
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    fn podman(&self, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["60", "podman"])
            .args(self.globals())
            .args(args)
            .env_remove("CONTAINER_HOST")
            .output()
            .expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman (small store) {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A container's id, status and StartedAt.
    fn inspect(&self, name: &str) -> Option<(String, String, String)> {
        let out = self.podman(&[
            "container",
            "inspect",
            "--format",
            "{{.Id}} {{.State.Status}} {{.State.StartedAt}}",
            name,
        ]);
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut w = text.trim().splitn(3, ' ');
        Some((
            w.next()?.to_string(),
            w.next()?.to_string(),
            w.next().unwrap_or("").to_string(),
        ))
    }

    /// Bytes free on the store's tmpfs.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.dir.join("store").display().to_string()).unwrap();
        // SAFETY: statvfs fills the struct we own; the path is a valid C string.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Fill the store's disk but for `leave` bytes.
    fn fill(&self, leave: u64) {
        let n = self.free().saturating_sub(leave);
        let f = std::fs::File::create(self.filler()).expect("filler");
        let mut w = std::io::BufWriter::new(f);
        std::io::copy(&mut std::io::repeat(0).take(n), &mut w).expect("fill the store");
        w.flush().expect("fill the store");
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("store/filler")
    }
}

impl Drop for SmallStore {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if let Some(mut s) = self.service.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.podman(&["system", "reset", "-f"]);
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.join("store"))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The disk full while the new image is pulled: the pull fails with
/// podman's "no space left on device", the old container is untouched
/// (same id, same start, still running, no `.next` nor `.previous`), the
/// pull is retried; once there is room the update goes through.
#[test]
fn a_full_disk_during_the_pull_should_leave_the_old_container_running_and_say_so() {
    let _g = serial();
    let ok = Command::new(repo().join("scripts/registry-service"))
        .arg("start")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "scripts/registry-service start (run `bash scripts/setup-host`)"
    );
    let small = SmallStore::new();
    let tar = small.dir.join("bb.tar");
    podman_ok(&[
        "save",
        "-q",
        "-o",
        &tar.display().to_string(),
        "localhost/bb:1",
    ]);
    small.ok(&["load", "-q", "-i", &tar.display().to_string()]);
    // The big image: built in the small store, pushed, removed again.
    let ctx = small.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut big = std::fs::File::create(ctx.join("big")).unwrap();
    std::io::copy(
        &mut std::fs::File::open("/dev/urandom").unwrap().take(8 << 20),
        &mut big,
    )
    .unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/bb:1\nCOPY big /big\n",
    )
    .unwrap();
    let ctx = ctx.display().to_string();
    small.ok(&["build", "-q", "-t", FULL_IMAGE, &ctx]);
    small.ok(&["push", "-q", FULL_IMAGE]);
    small.ok(&["rmi", FULL_IMAGE]);

    let id = "i23-full";
    let apps = tempfile::tempdir().unwrap();
    let write = |text: &str| {
        let tmp = apps.path().join(".m.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, apps.path().join(format!("{id}.yaml"))).unwrap();
    };
    write(&with_gate(id, TRAP_CMD, "2s"));
    let state = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start_with(
        apps.path(),
        &small.socket(),
        &["--state-file", &state_file(&state)],
        &[],
    );
    d.wait_ready();
    wait_until(T, "the app running", || {
        small.inspect(id).is_some_and(|c| c.1 == "running")
    });
    let old = small.inspect(id).unwrap();
    small.fill(2 << 20);
    eprintln!("store filled: {} bytes free", small.free());

    let mark = d.mark();
    write(&with_gate(id, NEW_CMD, "2s").replace("localhost/bb:1", FULL_IMAGE));
    // Two attempts, each failing: the first and its retry.
    wait_until(T, "two failed pulls", || {
        d.reactions(mark, &format!("app/{id}"))
            .iter()
            .filter(|l| l.contains("FAILED"))
            .count()
            >= 2
    });
    let failed: Vec<String> = d
        .reactions(mark, &format!("app/{id}"))
        .into_iter()
        .filter(|l| l.contains("FAILED"))
        .collect();
    eprintln!("{}", failed.join("\n"));
    for l in &failed {
        assert!(
            l.contains(FULL_IMAGE) && l.contains("no space left on device"),
            "the failure should name the image and the full disk: {l}"
        );
    }
    assert_eq!(
        small.inspect(id),
        Some(old.clone()),
        "the old container should be untouched and running"
    );
    for role in [next_of(id), previous_of(id)] {
        assert_eq!(small.inspect(&role), None, "{role} should not exist");
    }

    // Room again: the next retry pulls, and the update passes its gate.
    std::fs::remove_file(small.filler()).unwrap();
    wait_until(T, "the update applied once there is room", || {
        small
            .inspect(id)
            .is_some_and(|c| c.0 != old.0 && c.1 == "running")
            && small.inspect(&previous_of(id)).is_none()
            && small.inspect(&next_of(id)).is_none()
    });
    assert_eq!(small.inspect(&old.0), None, "the old container is removed");
    assert_eq!(d.stop(), Some(0));
}
