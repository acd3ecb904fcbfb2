//! End to end against the real podman: health checks that hang or flood are failed checks, killed at their timeout, and a deleted manifest never races a health restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

/// An app whose healthcheck is `check` (JSON list), run every `interval`
/// with a timeout of 1 s, `retries` failures in a row making it unhealthy.
fn with_check(id: &str, command: &str, check: &str, interval: &str, retries: u32) -> String {
    format!(
        "{}    healthcheck:\n      command: {check}\n      interval: {interval}\n      timeout: 1s\n      retries: {retries}\n",
        manifest(id, command)
    )
}

/// The host's processes whose command line contains `marker`, in the pid
/// namespace of the process `pid` (0: in any namespace).
fn processes_with(marker: &str, pid: i64) -> Vec<String> {
    let ns = |p: &str| std::fs::read_link(Path::new("/proc").join(p).join("ns/pid")).ok();
    let want = (pid > 0).then(|| ns(&pid.to_string())).flatten();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) && (want.is_none() || ns(&name) == want) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// A check that never ends (`sleep`) and one that floods its output
/// forever (`yes`): each is a failed check, its processes killed at the
/// check's timeout, never a failed reconcile; the app that fails `retries`
/// of them is restarted. Issue 20: both were counted as failed *reconciles*,
/// backed off up to 5 minutes, never restarted, and 10 hung checks left 10
/// processes in the container.
#[test]
fn checks_that_hang_or_flood_should_fail_at_their_timeout_leave_no_process_and_restart_the_app() {
    let _g = serial();
    let apps = Apps::new("i20-hc-");
    // Never restarted within the test (99 retries): its checks pile up if
    // they are not killed.
    let hang = r#"["/bin/sh", "-c", "sleep 4321"]"#;
    apps.write_raw(
        "i20-hc-pile.yaml",
        &with_check("i20-hc-pile", TRAP_CMD, hang, "1s", 99),
    );
    apps.write_raw(
        "i20-hc-hang.yaml",
        &with_check("i20-hc-hang", TRAP_CMD, hang, "2s", 2),
    );
    let flood = r#"["/bin/sh", "-c", "yes i20-flood"]"#;
    apps.write_raw(
        "i20-hc-flood.yaml",
        &with_check("i20-hc-flood", TRAP_CMD, flood, "2s", 2),
    );
    let d = Daemon::start(apps.path(), &[]);
    for app in ["i20-hc-pile", "i20-hc-hang", "i20-hc-flood"] {
        wait_until(T, &format!("{app} running"), || is_running(app));
    }
    let pile = inspect("i20-hc-pile").unwrap();
    let (hang_before, flood_before) = (
        inspect("i20-hc-hang").unwrap(),
        inspect("i20-hc-flood").unwrap(),
    );
    let t = std::time::Instant::now();
    for app in ["i20-hc-hang", "i20-hc-flood"] {
        let line = d.wait_line(0, &["react", &format!("health/{app}"), "restart"], T);
        assert!(
            line.contains("unhealthy: 2 consecutive failed checks")
                && line.contains("timeout")
                && line.ends_with(" ok"),
            "{line}"
        );
    }
    eprintln!("both restarted {:?} after they ran", t.elapsed());
    for (app, before) in [("i20-hc-hang", hang_before), ("i20-hc-flood", flood_before)] {
        wait_until(T, &format!("{app} restarted"), || {
            inspect(app).is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
        });
    }
    // At least 10 checks of the pile app, each cut at 1 s (podman emits a
    // `health_status` for each).
    wait_until(T, "10 checks of i20-hc-pile", || {
        d.output()
            .lines()
            .filter(|l| l.contains("health_status") && l.contains("i20-hc-pile"))
            .count()
            >= 10
    });
    let out = d.output();
    assert_eq!(d.stop(), Some(0));
    // Stopped: any check in flight was finished (killed) in the drain.
    let left = processes_with("sleep 4321", pile.pid);
    eprintln!(
        "hung checks left in i20-hc-pile after 10 checks: {}",
        left.len()
    );
    assert!(left.is_empty(), "{left:?}");
    let flood_left = processes_with("yes i20-flood", 0);
    assert!(flood_left.is_empty(), "{flood_left:?}");
    assert_eq!(inspect("i20-hc-pile").unwrap().started_at, pile.started_at);
    // A check's verdict is never a failed reconcile.
    let failed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("react  health/") && l.contains("FAILED"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    remove_containers("i20-hc-");
}

/// Issue 20: a manifest deleted about 1.05 s after it was created, while
/// the health key restarted the app, left a container podman no longer
/// listed with its process running (2 times in 14). Twenty deletions spread
/// over the restart's moment: each leaves no container and no process.
#[test]
fn a_manifest_deleted_during_a_health_restart_should_leave_no_container_and_no_process() {
    let _g = serial();
    let apps = Apps::new("i20-race-");
    let d = Daemon::start(apps.path(), &[]);
    for n in 0..20u64 {
        let id = format!("i20-race-{n}");
        let marker = format!("sleep 2020{n:02}");
        let command = format!(r#"["/bin/sh", "-c", "trap 'exit 0' TERM; {marker} & wait"]"#);
        let text = with_check(&id, &command, r#"["/bin/false"]"#, "1s", 1);
        let mark = d.mark();
        apps.write_raw(&format!("{id}.yaml"), &text);
        // The check runs 1 s after the manifest is read; its restart takes
        // a few hundred ms: delete from 0.9 s to 1.5 s after writing.
        std::thread::sleep(Duration::from_millis(900 + n * 30));
        apps.remove(&id);
        d.wait_line(mark, &["react", &format!("app/{id}"), "remove"], T);
        wait_until(T, &format!("{id} gone"), || inspect(&id).is_none());
        wait_until(Duration::from_secs(10), &format!("{marker} ended"), || {
            processes_with(&marker, 0).is_empty()
        });
        let reactions = d.reactions(mark, &format!("health/{id}"));
        eprintln!(
            "{id}: deleted {} ms after writing; health: {reactions:?}",
            900 + n * 30
        );
    }
    let out = d.output();
    assert_eq!(d.stop(), Some(0));
    // Every deletion removed its app; nothing is left labelled.
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("react  app/i20-race-") && l.contains(" remove "))
            .count(),
        20,
        "{out}"
    );
    let left = podman_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.contains("i20-race-"), "{left}");
}
