//! End to end for companions: podkeeper as a process, the real systemd user manager, real Quadlet, real podman.
//!
//! Quadlet reads only its search path, so each test gets a private
//! subdirectory of `~/.config/containers/systemd/` (Quadlet 5 reads
//! subdirectories too), passed with `--unit-dir`, and removes it afterwards
//! (services stopped, directory gone, one daemon-reload). Companion names carry
//! a per-test prefix.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// A Quadlet container that stops at once on SIGTERM.
const UNIT: &str = "[Container]\nImage=localhost/bb:1\nExec=/bin/sh -c 'trap \"exit 0\" TERM; sleep 100000 & wait'\nNetwork=none\n";

/// Make sure `systemctl --user` finds the stack user's manager (scripts/env.sh sets this for root).
fn user_manager_env() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(0);
        std::env::set_var("XDG_RUNTIME_DIR", format!("/run/user/{uid}"));
    }
    let ok = systemctl(&["is-system-running"]).status.code().is_some();
    assert!(
        ok && Path::new("/usr/libexec/podman/quadlet").exists(),
        "stack {}: a systemd user manager and Quadlet are required: run `bash scripts/setup-host` first",
        stack().name
    );
}

/// `systemctl --user show -p PROP --value UNIT`
fn prop(unit: &str, p: &str) -> String {
    let out = systemctl(&["show", "-p", p, "--value", unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn is_active(unit: &str) -> bool {
    prop(unit, "ActiveState") == "active"
}

/// A test-private Quadlet directory that Quadlet really reads.
struct UnitDir {
    path: PathBuf,
    prefix: String,
    dropins: Vec<PathBuf>,
}

impl UnitDir {
    fn new(prefix: &str) -> Self {
        user_manager_env();
        let path = home()
            .join(".config/containers/systemd")
            .join(format!("podkeeper-test-{prefix}"));
        let d = UnitDir {
            path,
            prefix: prefix.to_string(),
            dropins: Vec::new(),
        };
        d.clean();
        user_dir(&d.path);
        d
    }

    fn arg(&self) -> String {
        self.path.display().to_string()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(name)).ok()
    }

    /// A drop-in for every service whose name starts with `prefix` (systemd's
    /// dash-prefix drop-ins), removed with the directory.
    fn dropin(&mut self, prefix: &str, text: &str) {
        let dir = home().join(format!(".config/systemd/user/{prefix}.service.d"));
        user_dir(&dir);
        std::fs::write(dir.join("50-podkeeper-test.conf"), text).unwrap();
        self.dropins.push(dir);
    }

    fn clean(&self) {
        let pattern = format!("{}*", self.prefix);
        systemctl(&["stop", &pattern]);
        let _ = std::fs::remove_dir_all(&self.path);
        for d in &self.dropins {
            let _ = std::fs::remove_dir_all(d);
        }
        systemctl(&["daemon-reload"]);
        systemctl(&["reset-failed", &pattern]);
        remove_containers(&format!("systemd-{}", self.prefix));
    }
}

impl Drop for UnitDir {
    fn drop(&mut self) {
        self.clean();
    }
}

/// An app manifest with `.container` (or other) companions.
fn app_with(id: &str, companions: &[(&str, &str, &str)]) -> String {
    manifest(id, TRAP_CMD) + &companions_yaml(companions)
}

fn start(apps: &Apps, units: &UnitDir) -> Daemon {
    let d = Daemon::start(apps.path(), &["--user", "--unit-dir", &units.arg()]);
    d.wait_ready();
    d
}

fn container_id(name: &str) -> Option<String> {
    inspect(name)
        .filter(|c| c.status == "running")
        .map(|c| c.id)
}

#[test]
fn startup_should_write_companions_start_the_container_and_load_the_volume() {
    let _g = serial();
    let units = UnitDir::new("e2e-cs1-");
    let apps = Apps::new("e2e-cs1-");
    apps.write_raw(
        "e2e-cs1-app.yaml",
        &app_with(
            "e2e-cs1-app",
            &[
                ("e2e-cs1-tunnel", "container", UNIT),
                ("e2e-cs1-data", "volume", "[Volume]\n"),
            ],
        ),
    );
    let d = start(&apps, &units);
    wait_until(T, "tunnel active", || is_active("e2e-cs1-tunnel.service"));
    assert_eq!(
        units.read("e2e-cs1-tunnel.container").as_deref(),
        Some(UNIT)
    );
    assert_eq!(
        units.read("e2e-cs1-data.volume").as_deref(),
        Some("[Volume]\n")
    );
    let mode = std::fs::metadata(units.file("e2e-cs1-tunnel.container"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o644
    );
    wait_until(T, "the companion's container runs", || {
        container_id("systemd-e2e-cs1-tunnel").is_some()
    });
    assert_eq!(prop("e2e-cs1-data-volume.service", "LoadState"), "loaded");
    assert_eq!(
        prop("e2e-cs1-tunnel.service", "SourcePath"),
        units.file("e2e-cs1-tunnel.container").display().to_string()
    );
    // On this stack a .volume unit cannot start (Quadlet 5.4 vs podman 4.3):
    // reported, and retried after 1 s, then 2 s, …, not in a hot loop.
    let mark = 0;
    d.wait_line(
        mark,
        &["react", "companion/e2e-cs1-data", "FAILED", "retry in 1.0s"],
        T,
    );
    d.wait_line(
        mark,
        &["react", "companion/e2e-cs1-data", "FAILED", "retry in 2.0s"],
        T,
    );
    let attempts = d
        .lines()
        .iter()
        .filter(|l| l.contains("react  companion/e2e-cs1-data") && l.contains("FAILED"))
        .count();
    assert!(
        attempts <= 3,
        "backed off, not a hot loop: {attempts} attempts"
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_deleted_edited_or_renamed_over_unit_file_should_be_restored_without_a_restart() {
    let _g = serial();
    let units = UnitDir::new("e2e-cs2-");
    let apps = Apps::new("e2e-cs2-");
    apps.write_raw(
        "e2e-cs2-app.yaml",
        &app_with("e2e-cs2-app", &[("e2e-cs2-tunnel", "container", UNIT)]),
    );
    let d = start(&apps, &units);
    let svc = "e2e-cs2-tunnel.service";
    let file = "e2e-cs2-tunnel.container";
    wait_until(T, "active", || is_active(svc));
    wait_until(T, "container", || {
        container_id("systemd-e2e-cs2-tunnel").is_some()
    });
    let ctr = container_id("systemd-e2e-cs2-tunnel").unwrap();
    let run = prop(svc, "InvocationID");
    let restored = |what: &str| {
        wait_until(T, &format!("restored after {what}"), || {
            units.read(file).as_deref() == Some(UNIT)
        });
    };

    let mark = d.mark();
    std::fs::remove_file(units.file(file)).unwrap();
    restored("delete");
    d.wait_line(
        mark,
        &[
            "react",
            "companion/e2e-cs2-tunnel",
            "file missing: written",
            "not restarted",
            "ok",
        ],
        T,
    );

    let mark = d.mark();
    let mut edited = UNIT.to_string();
    edited.push_str("Environment=EDITED=by-hand\n");
    std::fs::write(units.file(file), &edited).unwrap();
    restored("edit");
    d.wait_line(
        mark,
        &[
            "react",
            "companion/e2e-cs2-tunnel",
            "file differed: written",
            "ok",
        ],
        T,
    );

    // An editor saves by writing a temporary file and renaming it over.
    let mark = d.mark();
    let tmp = units.file(".e2e-cs2-tunnel.container.swp");
    std::fs::write(&tmp, "[Container]\nImage=localhost/bb:1\n").unwrap();
    std::fs::rename(&tmp, units.file(file)).unwrap();
    restored("rename");
    d.wait_line(
        mark,
        &[
            "event",
            "unit-dir",
            "rename-to",
            file,
            // Queued, merged into a queued run, or one more run after the
            // one in flight (the edit's follow-up may still be running):
            // every verdict but "ignored" names the key.
            "companion/e2e-cs2-tunnel",
        ],
        T,
    );
    d.wait_line(
        mark,
        &["react", "companion/e2e-cs2-tunnel", "written", "ok"],
        T,
    );

    assert!(is_active(svc));
    assert_eq!(
        prop(svc, "InvocationID"),
        run,
        "the service was never restarted"
    );
    assert_eq!(
        container_id("systemd-e2e-cs2-tunnel"),
        Some(ctr),
        "same container"
    );
    assert_eq!(prop(svc, "NeedDaemonReload"), "no");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_killed_companion_container_should_come_back_with_a_new_container() {
    let _g = serial();
    let units = UnitDir::new("e2e-cs3-");
    let apps = Apps::new("e2e-cs3-");
    apps.write_raw(
        "e2e-cs3-app.yaml",
        &app_with("e2e-cs3-app", &[("e2e-cs3-tunnel", "container", UNIT)]),
    );
    let d = start(&apps, &units);
    let svc = "e2e-cs3-tunnel.service";
    wait_until(T, "container", || {
        container_id("systemd-e2e-cs3-tunnel").is_some()
    });
    let before = inspect("systemd-e2e-cs3-tunnel").unwrap();
    let mark = d.mark();
    kill9(before.pid);
    wait_until(T, "a new container runs", || {
        container_id("systemd-e2e-cs3-tunnel").is_some_and(|id| id != before.id)
    });
    wait_until(T, "active", || is_active(svc));
    d.wait_line(
        mark,
        &[
            "event",
            "podman",
            "container died",
            "queue companion/e2e-cs3-tunnel",
        ],
        T,
    );
    d.wait_line(
        mark,
        &["react", "companion/e2e-cs3-tunnel", "start", "ok"],
        T,
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn unmanaged_unit_files_should_be_untouched_and_cost_no_systemd_call() {
    let _g = serial();
    let units = UnitDir::new("e2e-cs4-");
    let apps = Apps::new("e2e-cs4-");
    apps.write_raw(
        "e2e-cs4-app.yaml",
        &app_with("e2e-cs4-app", &[("e2e-cs4-tunnel", "container", UNIT)]),
    );
    let d = start(&apps, &units);
    wait_until(T, "active", || is_active("e2e-cs4-tunnel.service"));
    // Let the start-up batch and its own file events settle.
    std::thread::sleep(Duration::from_millis(500));
    let mark = d.mark();
    let stranger = units.file("e2e-cs4-stranger.container");
    std::fs::write(&stranger, "[Container]\nImage=localhost/bb:1\n").unwrap();
    d.wait_line(
        mark,
        &[
            "unit-dir",
            "create",
            "e2e-cs4-stranger.container",
            "ignored: no companion owns it",
        ],
        T,
    );
    std::fs::write(&stranger, "[Container]\nImage=localhost/bb:2\n").unwrap();
    d.wait_line(
        mark,
        &[
            "unit-dir",
            "modify",
            "e2e-cs4-stranger.container",
            "ignored",
        ],
        T,
    );
    assert_eq!(
        std::fs::read_to_string(&stranger).unwrap(),
        "[Container]\nImage=localhost/bb:2\n",
        "untouched"
    );
    std::fs::remove_file(&stranger).unwrap();
    d.wait_line(
        mark,
        &[
            "unit-dir",
            "remove",
            "e2e-cs4-stranger.container",
            "ignored",
        ],
        T,
    );
    std::thread::sleep(Duration::from_millis(500));
    let since = d.lines_since(mark);
    let reactions: Vec<&String> = since
        .iter()
        .filter(|l| l.contains("react  companion"))
        .collect();
    assert!(reactions.is_empty(), "no systemd call: {reactions:?}");
    assert!(
        since
            .iter()
            .filter(|l| l.contains("e2e-cs4-stranger"))
            .all(|l| l.contains("ignored")),
        "{since:?}"
    );
    assert_eq!(
        prop("e2e-cs4-stranger.service", "LoadState"),
        "not-found",
        "never loaded"
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_removed_and_recreated_unit_directory_should_get_its_companions_back() {
    let _g = serial();
    let units = UnitDir::new("e2e-cs5-");
    let apps = Apps::new("e2e-cs5-");
    apps.write_raw(
        "e2e-cs5-app.yaml",
        &app_with(
            "e2e-cs5-app",
            &[
                ("e2e-cs5-a", "container", UNIT),
                ("e2e-cs5-b", "container", UNIT),
            ],
        ),
    );
    let d = start(&apps, &units);
    wait_until(T, "both active", || {
        is_active("e2e-cs5-a.service") && is_active("e2e-cs5-b.service")
    });
    let mark = d.mark();
    // podkeeper restores deleted files as the directory empties, so removing
    // it can meet a file it just wrote ("Directory not empty"): try again.
    let mut tries = 0;
    while let Err(e) = std::fs::remove_dir_all(&units.path) {
        tries += 1;
        assert!(tries < 100, "cannot remove {}: {e}", units.path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
    // Made aside and renamed into place, so it appears already the stack user's.
    let fresh = units.path.with_extension("new");
    user_dir(&fresh);
    let _ = std::fs::rename(&fresh, &units.path);
    wait_until(T, "files back", || {
        units.read("e2e-cs5-a.container").as_deref() == Some(UNIT)
            && units.read("e2e-cs5-b.container").as_deref() == Some(UNIT)
    });
    d.wait_line(mark, &["event", "unit-dir", "queue 2 companion(s)"], T);
    // Watched again: a later delete is noticed too.
    wait_until(T, "both active again", || {
        is_active("e2e-cs5-a.service") && is_active("e2e-cs5-b.service")
    });
    let mark = d.mark();
    std::fs::remove_file(units.file("e2e-cs5-a.container")).unwrap();
    wait_until(T, "restored again", || {
        units.read("e2e-cs5-a.container").as_deref() == Some(UNIT)
    });
    d.wait_line(
        mark,
        &[
            "event",
            "unit-dir",
            "remove",
            "e2e-cs5-a.container",
            // Queued, or folded into a batch still running (its own
            // rewrites of the files come back as events): either way seen.
            "→ ",
            "companion/e2e-cs5-a",
        ],
        T,
    );
    wait_until(T, "both active at the end", || {
        is_active("e2e-cs5-a.service") && is_active("e2e-cs5-b.service")
    });
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_burst_of_200_rewritten_companion_files_should_be_restored_with_few_daemon_reloads() {
    let _g = serial();
    let mut units = UnitDir::new("e2e-burst-");
    // 200 containers would take minutes to start on 2 cores; this test is
    // about files and reloads, so a test-only drop-in runs `sleep` instead.
    units.dropin(
        "e2e-burst-",
        "[Service]\nType=simple\nExecStartPre=\nExecStart=\nExecStart=/bin/sleep 100000\nExecStop=\nExecStopPost=\nKillMode=control-group\n",
    );
    let apps = Apps::new("e2e-burst-");
    let names: Vec<String> = (0..200).map(|i| format!("e2e-burst-{i:03}")).collect();
    let comps: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "container", UNIT))
        .collect();
    apps.write_raw("e2e-burst-app.yaml", &app_with("e2e-burst-app", &comps));
    let d = start(&apps, &units);
    wait_until(Duration::from_secs(90), "200 services active", || {
        let out = systemctl(&["list-units", "--state=active", "--no-legend", "e2e-burst-*"]);
        String::from_utf8_lossy(&out.stdout).lines().count() == 200
    });
    std::thread::sleep(Duration::from_millis(500));
    let mark = d.mark();
    let started = Instant::now();
    for n in &names {
        std::fs::write(
            units.file(&format!("{n}.container")),
            "[Container]\nImage=localhost/bb:1\n# rewritten\n",
        )
        .unwrap();
    }
    wait_until(T, "every file restored", || {
        names
            .iter()
            .all(|n| units.read(&format!("{n}.container")).as_deref() == Some(UNIT))
    });
    let took = started.elapsed();
    wait_batches_done(&d, mark);
    let since = d.lines_since(mark);
    let reloads = since
        .iter()
        .filter(|l| l.contains("react  companion/*") && l.contains("daemon-reload "))
        .count();
    let restarts = since
        .iter()
        .filter(|l| l.contains("react  companion/") && l.contains("restart "))
        .count();
    println!("BURST: 200 files rewritten → restored in {took:?} with {reloads} daemon-reload(s), {restarts} restart(s)");
    assert!(
        (1..=20).contains(&reloads),
        "{reloads} daemon-reloads for 200 files"
    );
    assert_eq!(restarts, 0, "restored definitions need no restart");
    assert!(names.iter().all(|n| is_active_fast(n)), "all still active");
    assert_eq!(d.stop(), Some(0));
}

/// Wait until at least one companion batch finished after `mark` and no new
/// one for a second (the batch that restores files reports when it is done).
fn wait_batches_done(d: &Daemon, mark: usize) {
    let count = || {
        d.lines_since(mark)
            .iter()
            .filter(|l| l.contains("react  companion/*"))
            .count()
    };
    let (mut last, mut since) = (count(), Instant::now());
    wait_until(T, "companion batches to settle", || {
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        now > 0 && since.elapsed() > Duration::from_secs(1)
    });
}

/// All 200 at once would be 200 calls; one list-units answers for all.
fn is_active_fast(name: &str) -> bool {
    thread_local! {
        static ACTIVE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    }
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let list = a.get_or_insert_with(|| {
            let out = systemctl(&["list-units", "--state=active", "--no-legend", "e2e-burst-*"]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        list.contains(&format!("{name}.service"))
    })
}

#[test]
fn an_app_deleted_should_take_its_companions_and_leave_other_apps_companions() {
    let _g = serial();
    let units = UnitDir::new("e2e-cs7-");
    let apps = Apps::new("e2e-cs7-");
    apps.write_raw(
        "e2e-cs7-gone.yaml",
        &app_with(
            "e2e-cs7-gone",
            &[("e2e-cs7-gone-tunnel", "container", UNIT)],
        ),
    );
    apps.write_raw(
        "e2e-cs7-stays.yaml",
        &app_with(
            "e2e-cs7-stays",
            &[("e2e-cs7-stays-tunnel", "container", UNIT)],
        ),
    );
    let d = start(&apps, &units);
    wait_until(T, "both active", || {
        is_active("e2e-cs7-gone-tunnel.service") && is_active("e2e-cs7-stays-tunnel.service")
    });
    // The services turn active inside the batch that started them, before
    // its line (and its daemon-reload) is printed: the mark comes after
    // every start-up batch is reported, or that reload would count too.
    wait_batches_done(&d, 0);
    let stays_run = prop("e2e-cs7-stays-tunnel.service", "InvocationID");
    let mark = d.mark();
    std::fs::remove_file(apps.path().join("e2e-cs7-gone.yaml")).unwrap();
    wait_until(T, "companion gone", || {
        units.read("e2e-cs7-gone-tunnel.container").is_none()
            && prop("e2e-cs7-gone-tunnel.service", "LoadState") == "not-found"
    });
    wait_until(T, "its container gone", || {
        inspect("systemd-e2e-cs7-gone-tunnel").is_none()
    });
    d.wait_line(
        mark,
        &["react", "companion/e2e-cs7-gone-tunnel", "remove", "ok"],
        T,
    );
    wait_batches_done(&d, mark);
    let reloads = d
        .lines_since(mark)
        .iter()
        .filter(|l| l.contains("react  companion/*") && l.contains("daemon-reload "))
        .count();
    assert_eq!(reloads, 1, "one daemon-reload");
    assert_eq!(
        units.read("e2e-cs7-stays-tunnel.container").as_deref(),
        Some(UNIT)
    );
    assert_eq!(
        prop("e2e-cs7-stays-tunnel.service", "InvocationID"),
        stays_run,
        "untouched"
    );
    assert!(is_active("e2e-cs7-stays-tunnel.service"));
    assert_eq!(d.stop(), Some(0));
}

/// FIFOs made for a test, removed before anything else is cleaned up (the
/// cleanup's own daemon-reload would wedge on them).
struct Fifos(Vec<PathBuf>);

impl Fifos {
    fn make(&mut self, path: PathBuf) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
        self.0.push(path);
    }

    fn remove(&mut self, path: &Path) {
        std::fs::remove_file(path).unwrap();
        self.0.retain(|p| p != path);
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The user manager answers at once (a wedged generator would hold it).
fn user_manager_answers_at_once() {
    let t0 = Instant::now();
    let out = user_command("timeout")
        .args(["10", "systemctl", "--user", "show-environment"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && t0.elapsed() < Duration::from_secs(5),
        "the user manager answers ({:?}, {:?})",
        out.status,
        t0.elapsed()
    );
}

#[test]
fn a_fifo_among_the_unit_files_should_withhold_the_reload_and_never_wedge_the_user_manager() {
    let _g = serial();
    let units = UnitDir::new("e2e-fifo-");
    let mut fifos = Fifos(Vec::new());
    let apps = Apps::new("e2e-fifo-");
    let file = units.file("e2e-fifo-t.container");
    // A FIFO where the companion's own file goes.
    fifos.make(file.clone());
    apps.write_raw(
        "e2e-fifo-app.yaml",
        &app_with("e2e-fifo-app", &[("e2e-fifo-t", "container", UNIT)]),
    );
    let d = start(&apps, &units);
    d.wait_line(
        0,
        &[
            "react",
            "companion/e2e-fifo-t",
            "FAILED",
            "not a regular file",
        ],
        T,
    );
    let batch = d.wait_line(0, &["react", "companion/*", "daemon-reload withheld"], T);
    assert!(batch.contains("e2e-fifo-t.container is a FIFO"), "{batch}");
    user_manager_answers_at_once();
    let reloads = |d: &Daemon| {
        d.lines()
            .iter()
            // In the calls a reaction lists: `[show 12ms, daemon-reload 80ms, …]`.
            .filter(|l| {
                l.rsplit_once(" [")
                    .is_some_and(|(_, calls)| calls.contains("daemon-reload "))
            })
            .count()
    };
    assert_eq!(reloads(&d), 0, "no daemon-reload while the FIFO is there");
    // Gone: the retry writes the file, reloads and starts the service.
    fifos.remove(&file);
    wait_until(T, "the companion up", || is_active("e2e-fifo-t.service"));
    assert_eq!(units.read("e2e-fifo-t.container").as_deref(), Some(UNIT));

    // A FIFO under another Quadlet name holds back a reload just the same:
    // the changed definition waits, the running service is left as it is.
    let stray = units.file("e2e-fifo-stray.volume");
    fifos.make(stray.clone());
    let run = prop("e2e-fifo-t.service", "InvocationID");
    let mark = d.mark();
    let changed = format!("{UNIT}Environment=CHANGED=1\n");
    apps.write_raw(
        "e2e-fifo-app.yaml",
        &app_with("e2e-fifo-app", &[("e2e-fifo-t", "container", &changed)]),
    );
    let failed = d.wait_line(
        mark,
        &[
            "react",
            "companion/e2e-fifo-t",
            "FAILED",
            "daemon-reload withheld",
        ],
        T,
    );
    assert!(
        failed.contains("e2e-fifo-stray.volume is a FIFO"),
        "{failed}"
    );
    user_manager_answers_at_once();
    assert_eq!(
        prop("e2e-fifo-t.service", "InvocationID"),
        run,
        "left running"
    );
    fifos.remove(&stray);
    d.wait_line(mark, &["react", "companion/e2e-fifo-t", "restart", "ok"], T);
    assert_eq!(d.stop(), Some(0));
}
