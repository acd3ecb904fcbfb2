//! End to end against the real podman: podkeeper as a process, real containers, real events.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn startup_should_run_every_app_and_adopt_one_already_running() {
    let _g = serial();
    let apps = Apps::new("e2e-start-");
    apps.write("e2e-start-a", TRAP_CMD);
    let first = Daemon::start(apps.path(), &[]);
    wait_until(T, "a running", || is_running("e2e-start-a"));
    let before = inspect("e2e-start-a").unwrap();
    assert_eq!(first.stop(), Some(0));

    apps.write("e2e-start-b", TRAP_CMD);
    apps.write("e2e-start-c", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    d.wait_ready();
    for id in ["e2e-start-a", "e2e-start-b", "e2e-start-c"] {
        wait_until(T, &format!("{id} running"), || is_running(id));
    }
    let after = inspect("e2e-start-a").unwrap();
    assert_eq!(after.id, before.id, "adopted, not recreated");
    assert_eq!(after.started_at, before.started_at, "not even restarted");
    assert_eq!(after.labels["io.podkeeper.app"], "e2e-start-a");
    let out = d.output();
    assert!(
        !out.contains("react  app/e2e-start-a"),
        "no reconcile of the adopted app:\n{out}"
    );
    assert!(out.contains("0.1.0 starting: 3 apps"), "{out}");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn kill_9_should_be_repaired_and_debug_output_should_show_cause_and_effect() {
    let _g = serial();
    let apps = Apps::new("e2e-kill-");
    apps.write("e2e-kill-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-kill-web"));
    let before = inspect("e2e-kill-web").unwrap();
    let mark = d.mark();
    kill9(before.pid);
    wait_until(T, "restarted", || {
        inspect("e2e-kill-web")
            .is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
    });
    assert_eq!(
        inspect("e2e-kill-web").unwrap().id,
        before.id,
        "started again, not recreated"
    );
    // The cause: conmon's exit file (the accelerator) or the died event, whichever came first.
    let cause = d.wait_line(mark, &["event", "→ queue app/e2e-kill-web"], T);
    assert!(
        cause.contains("exit file") || cause.contains("container died (137)"),
        "{cause}"
    );
    d.wait_line(
        mark,
        &["event", "podman", "container died (137)", "e2e-kill-web"],
        T,
    );
    let reaction = d.wait_line(
        mark,
        &[
            "react",
            "app/e2e-kill-web",
            "start",
            "(code 137)",
            "inspect",
            "start ",
            "ok",
        ],
        T,
    );
    let lines = d.lines_since(mark);
    let pos = |l: &String| lines.iter().position(|x| x == l).unwrap();
    assert!(pos(&cause) < pos(&reaction), "cause before effect");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn podman_stop_and_rm_by_hand_should_be_repaired() {
    let _g = serial();
    let apps = Apps::new("e2e-hand-");
    apps.write("e2e-hand-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-hand-web"));
    let first = inspect("e2e-hand-web").unwrap();

    podman_ok(&["stop", "e2e-hand-web"]);
    wait_until(T, "running again after stop", || {
        inspect("e2e-hand-web")
            .is_some_and(|c| c.status == "running" && c.started_at != first.started_at)
    });

    let mark = d.mark();
    podman_ok(&["rm", "-f", "-t", "0", "e2e-hand-web"]);
    wait_until(T, "recreated after rm -f", || {
        inspect("e2e-hand-web").is_some_and(|c| c.status == "running" && c.id != first.id)
    });
    d.wait_line(
        mark,
        &[
            "react",
            "app/e2e-hand-web",
            "create",
            "container missing",
            "ok",
        ],
        T,
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_manifest_edit_should_recreate_that_app_and_leave_the_others_alone() {
    let _g = serial();
    let apps = Apps::new("e2e-edit-");
    apps.write("e2e-edit-a", TRAP_CMD);
    apps.write("e2e-edit-b", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "both running", || {
        is_running("e2e-edit-a") && is_running("e2e-edit-b")
    });
    let a = inspect("e2e-edit-a").unwrap();
    let b = inspect("e2e-edit-b").unwrap();
    let mark = d.mark();
    let new_cmd = r#"["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 200000 & wait"]"#;
    apps.write("e2e-edit-a", new_cmd);
    wait_until(T, "a recreated with the new command", || {
        inspect("e2e-edit-a")
            .is_some_and(|c| c.status == "running" && c.id != a.id && c.cmd[2].contains("200000"))
    });
    d.wait_line(
        mark,
        &[
            "react",
            "app/e2e-edit-a",
            "recreate",
            "spec changed",
            // issue 23: created aside, the old one stopped and kept for
            // the gate, the new one given the name and started.
            "create",
            "stop",
            "rename",
            "start",
            "ok",
        ],
        T,
    );
    wait_until(
        T,
        "the update's gate passed: the old container removed",
        || inspect("e2e-edit-a.previous").is_none() && inspect(&a.id).is_none(),
    );
    // Let any stray reaction show up before judging.
    std::thread::sleep(Duration::from_millis(500));
    let touched_b: Vec<String> = d
        .lines_since(mark)
        .into_iter()
        .filter(|l| l.contains("react  app/e2e-edit-b"))
        .collect();
    assert!(touched_b.is_empty(), "b saw podman calls: {touched_b:?}");
    assert_eq!(inspect("e2e-edit-b").unwrap(), b, "b untouched");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_manifest_added_or_deleted_while_running_should_create_or_remove_its_container() {
    let _g = serial();
    let apps = Apps::new("e2e-add-");
    apps.write("e2e-add-a", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "a running", || is_running("e2e-add-a"));
    apps.write("e2e-add-new", TRAP_CMD);
    wait_until(T, "new app created", || is_running("e2e-add-new"));
    let mark = d.mark();
    apps.remove("e2e-add-new");
    wait_until(T, "removed", || inspect("e2e-add-new").is_none());
    d.wait_line(
        mark,
        &[
            "react",
            "app/e2e-add-new",
            "remove",
            "manifest deleted",
            "ok",
        ],
        T,
    );
    assert!(is_running("e2e-add-a"));
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_container_without_the_label_should_never_be_touched() {
    let _g = serial();
    let apps = Apps::new("e2e-foreign-");
    apps.write("e2e-foreign-app", TRAP_CMD);
    podman_ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "e2e-foreign-x",
        "localhost/bb:1",
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; sleep 100000 & wait",
    ]);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "app running", || is_running("e2e-foreign-app"));
    let x = inspect("e2e-foreign-x").unwrap();
    let mark = d.mark();
    kill9(x.pid);
    d.wait_line(
        mark,
        &[
            "container died (137)",
            "e2e-foreign-x",
            "ignored: not managed",
        ],
        T,
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = inspect("e2e-foreign-x").unwrap();
    assert_eq!(after.status, "exited", "left dead");
    assert_eq!(after.started_at, x.started_at);
    assert!(!d
        .lines_since(mark)
        .iter()
        .any(|l| l.contains("react  app/e2e-foreign-x")));
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_container_killed_while_the_podman_service_is_down_should_be_repaired_when_it_returns() {
    let _g = serial();
    let apps = Apps::new("e2e-outage-");
    apps.write("e2e-outage-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-outage-web"));
    let before = inspect("e2e-outage-web").unwrap();
    let mark = d.mark();
    let _service = ServiceGuard;
    podman_service("stop");
    d.wait_line(mark, &["events stream lost"], T);
    kill9(before.pid);
    wait_until(T, "exited", || {
        inspect("e2e-outage-web").is_some_and(|c| c.status == "exited")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        inspect("e2e-outage-web").unwrap().status,
        "exited",
        "nobody repaired it without podman"
    );
    podman_service("start");
    wait_until(T, "repaired after the service returned", || {
        inspect("e2e-outage-web")
            .is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
    });
    d.wait_line(mark, &["stream resumed after a gap", "queue sweep"], T);
    d.wait_line(mark, &["react", "app/e2e-outage-web", "start", "ok"], T);
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn invalid_manifests_should_be_named_by_check_and_not_stop_run() {
    let _g = serial();
    let apps = Apps::new("e2e-bad-");
    apps.write("e2e-bad-good", TRAP_CMD);
    apps.write_raw("broken.yaml", "app:\n  id: x\n   container: [\n");
    apps.write_raw(
        "typo.yaml",
        "app:\n  id: e2e-bad-typo\n  container:\n    imag: localhost/bb:1\n",
    );
    apps.write_raw(
        "badid.yaml",
        "app:\n  id: Bad_Id\n  container:\n    image: localhost/bb:1\n",
    );
    apps.write_raw("dup1.yaml", &manifest("e2e-bad-dup", TRAP_CMD));
    apps.write_raw("dup2.yml", &manifest("e2e-bad-dup", TRAP_CMD));

    let check = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["check", "--apps"])
        .arg(apps.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{text}");
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line for {needle}:\n{text}"))
            .to_string()
    };
    assert!(line("e2e-bad-good").starts_with("ok "), "{text}");
    assert!(line("broken.yaml").contains("invalid YAML"), "{text}");
    let typo = line("typo.yaml");
    assert!(
        typo.contains("app.container")
            && typo.contains("unknown field `imag`")
            && typo.contains("image"),
        "{typo}"
    );
    let badid = line("badid.yaml");
    assert!(
        badid.contains("app.id") && badid.contains("Bad_Id") && badid.contains("allowed"),
        "{badid}"
    );
    let dup = line("dup1.yaml");
    assert!(dup.contains("app.id") && dup.contains("dup2.yml"), "{dup}");
    assert!(line("dup2.yml").contains("dup1.yaml"), "{text}");
    assert!(text.contains("1 valid, 5 invalid"), "{text}");

    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "the valid app runs", || is_running("e2e-bad-good"));
    assert!(inspect("e2e-bad-dup").is_none(), "both duplicates refused");
    for f in [
        "broken.yaml",
        "typo.yaml",
        "badid.yaml",
        "dup1.yaml",
        "dup2.yml",
    ] {
        d.wait_line(0, &["WARN", "manifest error", f], T);
    }
    // A bad edit later is reported too; the app keeps its last valid
    // declaration (its container untouched) and the daemon goes on.
    let before = inspect("e2e-bad-good").unwrap();
    let mark = d.mark();
    apps.write_raw(
        "e2e-bad-good.yaml",
        "app:\n  id: e2e-bad-good\n  container:\n    image: localhost/bb:1\n    bogus: 1\n",
    );
    d.wait_line(
        mark,
        &[
            "WARN",
            "manifest error",
            "e2e-bad-good.yaml",
            "bogus",
            "keeps its last valid declaration",
        ],
        T,
    );
    apps.write("e2e-bad-good", TRAP_CMD);
    d.wait_line(mark, &["e2e-bad-good.yaml: valid again"], T);
    assert_eq!(inspect("e2e-bad-good").unwrap().id, before.id);
    assert!(is_running("e2e-bad-good"));
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn sigterm_during_a_reconcile_should_let_it_finish_and_exit_0() {
    let _g = serial();
    let apps = Apps::new("e2e-term-");
    // busybox sleep as PID 1 ignores SIGTERM: removing it waits out podman's
    // 10 s stop timeout, which keeps the recreate in flight long enough.
    apps.write("e2e-term-slow", r#"["/bin/sleep", "100000"]"#);
    let mut d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-term-slow"));
    let old = inspect("e2e-term-slow").unwrap();
    let mark = d.mark();
    apps.write("e2e-term-slow", TRAP_CMD);
    d.wait_line(
        mark,
        &["apps-dir", "manifest changed", "queue app/e2e-term-slow"],
        T,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !d.lines_since(mark)
            .iter()
            .any(|l| l.contains("react  app/e2e-term-slow")),
        "still in flight"
    );
    d.signal("TERM");
    let code = d.wait_exit(Duration::from_secs(40));
    assert_eq!(code, Some(0));
    let out = d.lines_since(mark).join("\n");
    assert!(
        out.contains("waiting for 1 reconcile(s) in flight"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("react  app/e2e-term-slow")
            && l.contains("recreate")
            && l.ends_with("ok")),
        "{out}"
    );
    let new = inspect("e2e-term-slow").unwrap();
    assert!(
        new.id != old.id && new.status == "running",
        "the recreate completed"
    );
}

#[test]
fn a_start_issued_on_the_exit_file_should_never_race_podmans_cleanup() {
    let _g = serial();
    let apps = Apps::new("e2e-race-");
    let ids: Vec<String> = (0..8).map(|i| format!("e2e-race-{i}")).collect();
    for id in &ids {
        apps.write(id, TRAP_CMD);
    }
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "all running", || ids.iter().all(|id| is_running(id)));
    let first: Vec<Ctr> = ids.iter().map(|id| inspect(id).unwrap()).collect();
    let mark = d.mark();
    // Two rounds: all eight killed at once, the second round while podman may
    // still be cleaning up after the first restarts.
    let mut previous = first.clone();
    for round in 0..2 {
        for c in &previous {
            kill9(c.pid);
        }
        wait_until(T, &format!("round {round}: all running again"), || {
            ids.iter().zip(&previous).all(|(id, old)| {
                inspect(id).is_some_and(|c| c.status == "running" && c.started_at != old.started_at)
            })
        });
        previous = ids.iter().map(|id| inspect(id).unwrap()).collect();
    }
    // `podman stop` by hand: podman's own cleanup after the stop must not be
    // raced into an error ("refusing to clean up"): every stop succeeds.
    let stops: Vec<_> = ids.iter().map(|id| podman(&["stop", id])).collect();
    for (id, out) in ids.iter().zip(&stops) {
        assert!(
            out.status.success(),
            "podman stop {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(T, "all running again after podman stop", || {
        ids.iter().zip(&previous).all(|(id, old)| {
            inspect(id).is_some_and(|c| c.status == "running" && c.started_at != old.started_at)
        })
    });
    let last: Vec<Ctr> = ids.iter().map(|id| inspect(id).unwrap()).collect();
    for (old, new) in first.iter().zip(&last) {
        assert_eq!(
            old.id, new.id,
            "the same container, never lost or recreated"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let out = d.lines_since(mark);
    let failed: Vec<&String> = out.iter().filter(|l| l.contains("FAILED")).collect();
    assert!(failed.is_empty(), "no reconcile failed: {failed:?}");
    let early = out
        .iter()
        .filter(|l| l.contains("exit file") && l.contains("→ queue app/e2e-race-"))
        .count();
    assert!(
        early >= 8,
        "the exit files triggered the restarts ({early} of 16):\n{}",
        out.join("\n")
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_second_signal_should_exit_at_once() {
    let _g = serial();
    let apps = Apps::new("e2e-twice-");
    apps.write("e2e-twice-slow", r#"["/bin/sleep", "100000"]"#);
    let mut d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-twice-slow"));
    let mark = d.mark();
    // A recreate that takes ~10 s (busybox sleep ignores SIGTERM).
    apps.write("e2e-twice-slow", TRAP_CMD);
    d.wait_line(mark, &["manifest changed", "queue app/e2e-twice-slow"], T);
    std::thread::sleep(Duration::from_millis(500));
    d.signal("TERM");
    d.wait_line(mark, &["waiting for 1 reconcile(s) in flight"], T);
    let t0 = std::time::Instant::now();
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(3), "exited at once");
}

#[test]
fn the_exit_directory_should_be_the_one_the_podmans_conmon_writes_to() {
    let _g = serial();
    let apps = Apps::new("e2e-exitdir-");
    apps.write("e2e-exitdir-a", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-exitdir-a"));
    // What that container's conmon was told, read apart from podkeeper.
    let conmon = podman_ok(&["inspect", "-f", "{{.State.ConmonPid}}", "e2e-exitdir-a"]);
    let cmdline = std::fs::read(format!("/proc/{conmon}/cmdline")).expect("conmon's command line");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--exit-dir")
        .expect("--exit-dir");
    let dir = &args[at + 1];
    // podkeeper watches it, read off a conmon: at start-up, or once a container ran.
    d.wait_line(
        0,
        &[
            "exit-dir",
            &format!("watching {dir} (--exit-dir of conmon "),
        ],
        T,
    );
    // And hears exits there.
    let pid = inspect("e2e-exitdir-a").unwrap().pid;
    let mark = d.mark();
    kill9(pid);
    // The exit file that queues the app: written (podman 4.7+) or
    // collected (4.3, which ignores the written one).
    let heard = d.wait_line(
        mark,
        &["conmon", "exit file", "→ queue app/e2e-exitdir-a"],
        T,
    );
    assert!(heard.contains("conmon"), "{heard}");
    wait_until(T, "restarted", || is_running("e2e-exitdir-a"));
    assert_eq!(d.stop(), Some(0));
}
