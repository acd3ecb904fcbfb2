//! Exits end to end, on every stack: a crash is restarted from the first exit file podman lets podkeeper trust, and a `podman rm -f` by hand never races a start into a leaked process.
//!
//! podman 4.7 and later record a user's stop before they signal, so
//! podkeeper starts a crashed container the moment conmon writes its exit
//! file; an older podman (4.3) cannot tell a crash from `rm -f -t 0`, so
//! podkeeper waits until podman has collected the exit, and the exit grace.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// The podman version the daemon reported at start-up (`note podman podman 5.4.2 (…`).
fn podman_version(d: &Daemon) -> (u32, u32) {
    let line = d.wait_line(0, &["note", "podman ", "(libpod API"], T);
    // "… podman 5.4.2 (libpod API …": the word before the parenthesis.
    let version = line
        .split(" (libpod API")
        .next()
        .and_then(|head| head.split_whitespace().last())
        .unwrap_or_else(|| panic!("no version in {line:?}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_crash_should_be_restarted_from_the_first_exit_file_this_podman_lets_podkeeper_trust() {
    let _g = serial();
    let apps = Apps::new("e2e-exit-");
    apps.write("e2e-exit-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-exit-web"));
    let records_stops = podman_version(&d) >= (4, 7);
    // The exit directory is known once a container runs.
    d.wait_line(0, &["exit-dir", "--exit-dir of conmon"], T);
    std::thread::sleep(Duration::from_millis(500));
    let mark = d.mark();
    let mut took = Vec::new();
    for _ in 0..3 {
        took.push(kill_and_wait("e2e-exit-web"));
        std::thread::sleep(Duration::from_millis(800));
    }
    println!("kill -9 -> running: {took:?} (podman records stops: {records_stops})");
    let lines = d.lines_since(mark);
    let out = lines.join("\n");
    assert!(!out.contains("FAILED"), "{out}");
    let written = lines
        .iter()
        .filter(|l| l.contains("exit file written"))
        .collect::<Vec<_>>();
    assert_eq!(written.len(), 3, "one trigger per exit written:\n{out}");
    let starts = d.reactions(mark, "app/e2e-exit-web");
    let starts: Vec<&String> = starts.iter().filter(|l| l.contains(" start ")).collect();
    assert_eq!(starts.len(), 3, "one start per kill:\n{out}");
    if records_stops {
        for l in &written {
            assert!(
                l.contains("→ queue app/e2e-exit-web"),
                "acted on at once: {l}"
            );
        }
        for l in &starts {
            assert!(
                !l.contains("after the exit grace"),
                "a crash needs no grace where podman records stops: {l}"
            );
        }
    } else {
        for l in &written {
            assert!(l.contains("acting once podman collects it"), "{l}");
        }
        let collected = lines
            .iter()
            .filter(|l| l.contains("exit file ") && l.contains("→ queue app/e2e-exit-web"))
            .count();
        assert!(collected >= 1, "the collected exit file queues:\n{out}");
    }
    assert_eq!(d.stop(), Some(0));
}

/// conmon processes still watching a container with this id (a container
/// podman removed must have none: a leftover is a leaked container process).
fn conmons_of(id: &str) -> Vec<i32> {
    let needle = format!("-c\0{id}\0");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline);
            let program = text.split('\0').next()?;
            (program.ends_with("/conmon") && text.contains(&needle)).then_some(pid)
        })
        .collect()
}

#[test]
fn podman_rm_f_by_hand_should_be_repaired_with_no_failure_and_no_leaked_process() {
    let _g = serial();
    let apps = Apps::new("e2e-rmf-");
    apps.write("e2e-rmf-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-rmf-web"));
    std::thread::sleep(Duration::from_millis(500));
    let mark = d.mark();
    let (mut kill, mut rm) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        kill.push(kill_and_wait("e2e-rmf-web"));
        std::thread::sleep(Duration::from_millis(800));
    }
    let mut removed = Vec::new();
    for _ in 0..6 {
        let c = inspect("e2e-rmf-web").unwrap();
        let t0 = Instant::now();
        podman_ok(&["rm", "-f", "-t", "0", "e2e-rmf-web"]);
        wait_until(T, "recreated", || {
            inspect("e2e-rmf-web").is_some_and(|n| n.status == "running" && n.id != c.id)
        });
        rm.push(t0.elapsed());
        removed.push(c.id);
        std::thread::sleep(Duration::from_millis(800));
    }
    println!("kill -9 -> running: {kill:?}; rm -f -> running: {rm:?}");
    let failed: Vec<String> = d
        .lines_since(mark)
        .into_iter()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert!(failed.is_empty(), "no reconcile failed: {failed:#?}");
    let creates = d
        .reactions(mark, "app/e2e-rmf-web")
        .into_iter()
        .filter(|l| l.contains(" create ") && l.ends_with("ok"))
        .count();
    assert_eq!(creates, 6, "one create per rm -f:\n{}", d.output());
    // A start that slipped in while `podman rm` had the container's lock
    // released would have left the started process running after rm
    // removed the container: podman 4.3 does not look again.
    let leaked: Vec<(String, Vec<i32>)> = removed
        .iter()
        .map(|id| (id.clone(), conmons_of(id)))
        .filter(|(_, pids)| !pids.is_empty())
        .collect();
    assert!(
        leaked.is_empty(),
        "container processes left running by rm -f: {leaked:?}"
    );
    assert_eq!(d.stop(), Some(0));
}
