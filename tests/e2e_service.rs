//! podkeeper as a systemd service, against the real systemd user manager and the real podman: Type=notify readiness after the first sweep, STATUS=, and the watchdog killing a stalled reactor.
//!
//! Every test holds `common::serial()`; the transient unit is stopped and
//! reset when the test ends, also on failure.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A transient `systemd-run --user` unit, stopped and forgotten on drop.
struct Unit(String);

impl Unit {
    fn show(&self, prop: &str) -> String {
        let out = systemctl(&["show", "-p", prop, "--value", &self.0]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        systemctl(&["stop", &self.0]);
        systemctl(&["reset-failed", &self.0]);
    }
}

/// Start `podkeeper run` on `apps` as a Type=notify unit watched every
/// `watchdog`, restarted by systemd on a watchdog timeout, with `env` set.
fn start_unit(apps: &Apps, watchdog: &str, env: &[&str]) -> Unit {
    let unit = Unit(format!("i12-podkeeper-{}.service", std::process::id()));
    systemctl(&["stop", &unit.0]);
    systemctl(&["reset-failed", &unit.0]);
    let mut cmd = user_command("timeout");
    cmd.args(["60", "systemd-run", "--user", "--no-block", "--collect"])
        .arg(format!("--unit={}", unit.0))
        .args([
            "-p",
            "Type=notify",
            "-p",
            &format!("WatchdogSec={watchdog}"),
            "-p",
            "Restart=on-watchdog",
            "-p",
            "RestartSec=500ms",
            // No core dump of the stalled test process on a shared host.
            "-p",
            "WatchdogSignal=SIGKILL",
        ]);
    for e in env {
        cmd.arg(format!("--setenv={e}"));
    }
    let out = cmd
        .arg(podkeeper_bin())
        .args(["run", "--apps"])
        .arg(apps.path())
        .arg("--socket")
        .arg(socket())
        .arg("--user")
        .output()
        .expect("run systemd-run");
    assert!(
        out.status.success(),
        "systemd-run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    unit
}

#[test]
fn the_unit_should_become_active_only_after_the_first_sweep_is_reconciled_and_say_how_it_stands() {
    let _s = serial();
    let apps = Apps::new("i12-ready-");
    apps.write("i12-ready-a", TRAP_CMD);
    apps.write("i12-ready-b", TRAP_CMD);
    let unit = start_unit(&apps, "10s", &[]);
    let start = Instant::now();
    let mut seen_activating = false;
    loop {
        let state = unit.show("ActiveState");
        match state.as_str() {
            "activating" => seen_activating = true,
            "active" => break,
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the unit never became active (last state {state:?}); status: {:?}",
            unit.show("StatusText")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_activating, "the unit was never seen activating");
    let started: u64 = unit
        .show("ExecMainStartTimestampMonotonic")
        .parse()
        .unwrap();
    let active: u64 = unit.show("ActiveEnterTimestampMonotonic").parse().unwrap();
    // READY=1 came after the first sweep and the reconciles it queued: both
    // apps were started (by podkeeper, after the unit's start) before systemd
    // called the unit active.
    let active_ns = realtime_of_monotonic_us(active);
    let started_ns = realtime_of_monotonic_us(started);
    for app in ["i12-ready-a", "i12-ready-b"] {
        assert!(is_running(app), "{app} not running");
        let at: i128 = podman_ok(&["inspect", "-f", "{{.State.StartedAt.UnixNano}}", app])
            .parse()
            .unwrap();
        assert!(
            started_ns < at && at < active_ns,
            "{app} started at {at}, not between the unit's start {started_ns} and READY=1 {active_ns}"
        );
    }
    println!(
        "start to READY=1: {} ms",
        active.saturating_sub(started) / 1000
    );
    let status = unit.show("StatusText");
    assert!(
        status.starts_with("2/2 apps as declared, 0/0 companions as declared, last sweep "),
        "{status}"
    );
    // The summary follows the apps: one killed is brought back, and the
    // status says so again.
    podman_ok(&["kill", "-s", "KILL", "i12-ready-a"]);
    wait_until(Duration::from_secs(20), "app a restarted", || {
        is_running("i12-ready-a")
    });
    let status = unit.show("StatusText");
    assert!(status.starts_with("2/2 apps as declared"), "{status}");
    assert_eq!(unit.show("NRestarts"), "0");
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "the stall hook needs `cargo test --features test-hooks` (scripts/test passes it)"
)]
fn a_stalled_reactor_should_be_killed_by_the_watchdog_and_restarted_by_systemd() {
    let _s = serial();
    let apps = Apps::new("i12-wd-");
    apps.write("i12-wd-a", TRAP_CMD);
    let stall = 6;
    let unit = start_unit(
        &apps,
        "2s",
        &[&format!("PODKEEPER_TEST_STALL_REACTOR_AFTER={stall}")],
    );
    wait_until(Duration::from_secs(30), "the unit active", || {
        unit.show("ActiveState") == "active"
    });
    let pid = unit.show("MainPID");
    // Idle but fed: two watchdog periods pass without a restart.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        unit.show("NRestarts"),
        "0",
        "restarted while the reactor ran"
    );
    assert_eq!(unit.show("MainPID"), pid);
    // The reactor blocks at 6 s; systemd must kill it within a period and start it again.
    wait_until(Duration::from_secs(30), "a restart by the watchdog", || {
        unit.show("NRestarts").parse::<u32>().unwrap_or(0) >= 1
    });
    wait_until(Duration::from_secs(30), "the restarted unit active", || {
        unit.show("ActiveState") == "active"
    });
    assert_ne!(
        unit.show("MainPID"),
        pid,
        "the same process after a restart"
    );
    // The kill cost the app nothing: podkeeper's process is not its parent.
    assert!(is_running("i12-wd-a"));
}

/// A CLOCK_MONOTONIC time in µs (systemd's `…TimestampMonotonic`) as
/// nanoseconds since the epoch (podman's `StartedAt`).
fn realtime_of_monotonic_us(mono_us: u64) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    let mono_now = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    real_now - mono_now + mono_us as i128 * 1000
}

#[test]
fn the_self_check_should_read_the_real_podman_and_warn_once_of_a_missing_exit_directory() {
    let _s = serial();
    let apps = Apps::new("i12-check-");
    // This host's podman keeps its events in a file: all is well.
    let d = Daemon::start(apps.path(), &[]);
    let ok = d.wait_line(0, &["self-check", "ok: podman "], Duration::from_secs(30));
    assert!(ok.contains("events logger file"), "{ok}");
    assert!(!d.output().contains("WARN  self-check"), "{}", d.output());
    d.stop();
    // An exit directory that does not exist: one warning naming it.
    let missing = "/tmp/i12-no-such-exit-dir";
    let d = Daemon::start(apps.path(), &["--exit-dir", missing]);
    d.wait_line(
        0,
        &["WARN", "self-check", missing, "does not exist"],
        Duration::from_secs(30),
    );
    d.wait_ready();
    std::thread::sleep(Duration::from_secs(1));
    let warnings = d
        .lines()
        .into_iter()
        .filter(|l| l.contains("self-check"))
        .count();
    assert_eq!(warnings, 1, "{}", d.output());
    d.stop();
}

#[test]
fn sigterm_should_tell_systemd_stopping_before_the_drain() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let _s = serial();
    let apps = Apps::new("i12-stop-");
    apps.write("i12-stop-a", TRAP_CMD);
    // Stand in for systemd: a datagram socket the daemon's user may write to.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = user_command(podkeeper_bin())
        .args(["run", "--no-control-socket", "--apps"])
        .arg(apps.path())
        .arg("--socket")
        .arg(socket())
        .env("NOTIFY_SOCKET", &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read = |got: &mut Vec<String>| {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    };
    while !got.iter().any(|m| m.contains("READY=1")) {
        read(&mut got);
    }
    assert!(is_running("i12-stop-a"));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    while !got.iter().any(|m| m.contains("STOPPING=1")) {
        read(&mut got);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{got:?}");
    let stopping = got.iter().find(|m| m.contains("STOPPING=1")).unwrap();
    assert!(stopping.contains("STATUS=stopping"), "{got:?}");
    // Nothing after STOPPING claims readiness again.
    let after = got.iter().skip_while(|m| !m.contains("STOPPING=1")).skip(1);
    assert!(after.clone().all(|m| !m.contains("READY=1")), "{got:?}");
}
