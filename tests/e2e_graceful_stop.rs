//! Graceful stops end to end, on every stack: every stop and remove podkeeper makes (a spec change, `state: stopped`, a deleted manifest) waits out the app's `stop_timeout`, and its `stop_signal` is what the process gets.
//!
//! Each app's process traps its stop signal and needs 13 s to exit 0,
//! longer than podman's 10 s default (before issue 22 podkeeper's stops
//! used that: exit 137, SIGKILL, after 10 s). The exit codes are podman's
//! own, from its `died` events, read after the containers are gone.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const T: Duration = Duration::from_secs(30);

/// Exits 0 13 s after SIGTERM. sh runs a trap only between commands: the
/// loop's short sleeps let it run within a second of the signal.
const SLOW_TERM: &str =
    r#"["/bin/sh", "-c", "trap 'sleep 13; exit 0' TERM; while :; do sleep 1; done"]"#;

/// Exits 3 on SIGINT, 4 on SIGTERM: its exit code says which it got.
const SAYS_SIGNAL: &str =
    r#"["/bin/sh", "-c", "trap 'exit 3' INT; trap 'exit 4' TERM; while :; do sleep 1; done"]"#;

fn app(id: &str, command: &str, container_extra: &str, app_extra: &str) -> String {
    format!("{}{container_extra}{app_extra}", manifest(id, command))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The exit codes of `name`'s `died` events since `since` (unix seconds),
/// as podman recorded them.
fn exit_codes(name: &str, since: u64) -> Vec<String> {
    let since = since.to_string();
    let filter = format!("container={name}");
    let out = podman_ok(&[
        "events",
        "--stream=false",
        "--since",
        &since,
        "--filter",
        "event=died",
        "--filter",
        &filter,
        "--format",
        "{{.ContainerExitCode}}",
    ]);
    out.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn a_spec_change_stopped_and_a_deleted_manifest_should_each_let_the_process_exit_0_within_stop_timeout(
) {
    let _g = serial();
    let apps = Apps::new("i22-gs-");
    let timeout = "    stop_timeout: 30s\n";
    let ids = ["i22-gs-change", "i22-gs-stop", "i22-gs-delete"];
    for id in ids {
        apps.write_raw(&format!("{id}.yaml"), &app(id, SLOW_TERM, timeout, ""));
    }
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "all three running", || {
        ids.iter().all(|id| is_running(id))
    });
    let old = inspect("i22-gs-change").expect("container").id;
    // Let each shell set its trap.
    std::thread::sleep(Duration::from_millis(500));
    let since = now_secs().saturating_sub(1);
    let t0 = Instant::now();
    // The three at once: they run side by side, each in its own reconcile.
    let changed = app(
        "i22-gs-change",
        SLOW_TERM,
        &format!("{timeout}    env:\n      V: \"2\"\n"),
        "",
    );
    apps.write_raw("i22-gs-change.yaml", &changed);
    let stopped = app("i22-gs-stop", SLOW_TERM, timeout, "  state: stopped\n");
    apps.write_raw("i22-gs-stop.yaml", &stopped);
    apps.remove("i22-gs-delete");
    let mut done = [None; 3];
    wait_until(Duration::from_secs(45), "all three stopped", || {
        let now = [
            inspect("i22-gs-change").is_some_and(|c| c.id != old && c.status == "running"),
            inspect("i22-gs-stop").is_some_and(|c| c.status == "exited"),
            inspect("i22-gs-delete").is_none(),
        ];
        for (d, n) in done.iter_mut().zip(now) {
            if n && d.is_none() {
                *d = Some(t0.elapsed());
            }
        }
        now.iter().all(|n| *n)
    });
    println!(
        "stopped after: change {:?}, stop {:?}, delete {:?}",
        done[0], done[1], done[2]
    );
    let out = d.output();
    for id in ids {
        assert_eq!(
            exit_codes(id, since),
            ["0"],
            "{id}: one exit, 0 (not 137):\n{out}"
        );
        // The flush took its 13 s: nothing cut it short.
    }
    for t in done.iter().flatten() {
        assert!(*t >= Duration::from_secs(12), "{done:?}");
    }
    assert!(!out.contains("FAILED"), "{out}");
    d.stop();
}

#[test]
fn stop_signal_should_be_the_signal_the_process_gets() {
    let _g = serial();
    let apps = Apps::new("i22-gs-sig");
    let id = "i22-gs-sig";
    let container = "    stop_signal: SIGINT\n    stop_timeout: 20s\n";
    apps.write_raw(&format!("{id}.yaml"), &app(id, SAYS_SIGNAL, container, ""));
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running(id));
    std::thread::sleep(Duration::from_millis(500));
    let since = now_secs().saturating_sub(1);
    apps.write_raw(
        &format!("{id}.yaml"),
        &app(id, SAYS_SIGNAL, container, "  state: stopped\n"),
    );
    wait_until(T, "stopped", || {
        inspect(id).is_some_and(|c| c.status == "exited")
    });
    assert_eq!(
        exit_codes(id, since),
        ["3"],
        "3: SIGINT (4 would be SIGTERM):\n{}",
        d.output()
    );
    d.stop();
}
