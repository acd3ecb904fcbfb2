//! The recorded fixtures in `fixtures/`, replayed against the simulated podman: the exact reactions each pins.
//!
//! No podman needed: everything runs on a paused tokio clock (see `src/replay.rs`).
//! Re-record the fixtures with `scripts/record-fixtures`; if the reactions then
//! differ, read the replay output (`podkeeper replay fixtures/NAME/events.jsonl
//! --apps fixtures/NAME/apps`) before changing what is pinned here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use podkeeper::replay::{replay_to_outcome, Fixture, Outcome};

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn fixture(name: &str) -> Fixture {
    Fixture::load(&dir(name).join("events.jsonl")).expect("fixture reads")
}

/// Replay a fixture, checking it takes well under a second.
fn replay(name: &str) -> Outcome {
    let f = fixture(name);
    let units: Vec<PathBuf> = [dir(name).join("units")]
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    let started = Instant::now();
    let out = replay_to_outcome(&f, &dir(name).join("apps"), &units).expect("replay runs");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{name}: replay took {:?}",
        started.elapsed()
    );
    out
}

fn reactions(out: &Outcome) -> Vec<(String, String)> {
    out.reactions()
}

fn r(key: &str, action: &str) -> (String, String) {
    (key.to_string(), action.to_string())
}

/// The virtual time of a debug line, in ms (`+    1.234s  …`).
fn at_ms(line: &str) -> u64 {
    let stamp = line.trim_start_matches('+').trim_start();
    let secs = stamp.split('s').next().unwrap_or("");
    let (s, ms) = secs.split_once('.').unwrap();
    s.parse::<u64>().unwrap() * 1000 + ms.parse::<u64>().unwrap()
}

fn lines_with<'a>(out: &'a Outcome, needles: &[&str]) -> Vec<&'a str> {
    out.output
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

#[test]
fn replay_should_restart_a_crashed_app_once_per_crash_and_ignore_strangers() {
    let out = replay("crash-repair");
    let a = "app/rec-crash-repair-a";
    // An exit still within its grace is looked at again when the grace is
    // over (a wait, then the start); the first died came after it.
    assert_eq!(
        reactions(&out),
        [
            r("sweep", "none"),
            r(a, "start"),
            r(a, "wait"),
            r(a, "start"),
            r(a, "wait"),
            r(a, "start"),
            r(a, "wait"),
            r(a, "start")
        ],
        "{}",
        out.output
    );
    // Each restart follows its died event by the simulated call time, plus
    // what is left of the exit grace (200 ms from the exit as podman stamped
    // it; the recorded died arrived 30 to 200 ms after that).
    let died = lines_with(&out, &["died (137)", "rec-crash-repair-a "]);
    let starts = lines_with(&out, &["react", a, "start"]);
    for (d, s) in died.iter().zip(&starts) {
        assert!((10..=210).contains(&(at_ms(s) - at_ms(d))), "{d}\n{s}");
    }
    // The other app and the unlabelled container see no call at all.
    assert!(
        out.calls.iter().all(|c| c == "list" || c.ends_with("-a")),
        "{:?}",
        out.calls
    );
    assert_eq!(
        lines_with(&out, &["rec-crash-repair-stranger", "ignored: not managed"]).len(),
        2,
        "died and cleanup of the stranger are ignored"
    );
}

#[test]
fn replay_should_delay_a_crash_loop_by_100ms_doubling() {
    let out = replay("crash-loop");
    let a = "app/rec-crash-loop-a";
    // The first four exits are seen within their grace: a wait, then the
    // start; later ones wait in the crash-loop delay, past the grace.
    let mut expected = vec![r("sweep", "queue"), r(a, "create")];
    for _ in 0..4 {
        expected.extend([r(a, "wait"), r(a, "start")]);
    }
    expected.extend(std::iter::repeat_n(r(a, "start"), 3));
    assert_eq!(reactions(&out), expected, "{}", out.output);
    let starts: Vec<u64> = lines_with(&out, &["react", a, "start"])
        .iter()
        .map(|l| at_ms(l))
        .collect();
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Once the delay outgrows the 0.3 s the app lives, restarts are spaced by
    // the crash-loop delay (800 ms, 1.6 s, 3.2 s) plus the 10 ms of the start itself.
    assert_eq!(&gaps[gaps.len() - 3..], [810, 1610, 3210], "{}", out.output);
    let delayed = lines_with(&out, &["died (3)", "→ queue app/rec-crash-loop-a in "]);
    assert_eq!(delayed.len(), 3, "{}", out.output);
}

#[test]
fn replay_should_repair_a_stop_and_an_rm_by_hand_with_at_most_two_reconciles_each() {
    let out = replay("stop-rm");
    let a = "app/rec-stop-rm-a";
    // The stop: a look within the exit grace, then the start when it is
    // over (the events meanwhile fold into it). The rm: a create and its
    // dirty follow-up (more events for the app arrived while it ran), which
    // finds everything as declared.
    assert_eq!(
        reactions(&out),
        [
            r("sweep", "none"),
            r(a, "wait"),
            r(a, "start"),
            r(a, "create"),
            r(a, "none")
        ],
        "{}",
        out.output
    );
    assert!(out
        .output
        .contains("container stop           rec-stop-rm-a        → queue app/rec-stop-rm-a"));
    assert!(out.output.contains("container remove         rec-stop-rm-a        → app/rec-stop-rm-a running; runs once more after"));
}

#[test]
fn replay_should_recreate_only_the_edited_app() {
    let out = replay("manifest-edit");
    let a = "app/rec-manifest-edit-a";
    assert_eq!(
        reactions(&out),
        [
            r("sweep", "none"),
            r("manifests", "reload"),
            r(a, "recreate"),
            r(a, "wait"),
            r(a, "none"),
            r(a, "none")
        ],
        "{}",
        out.output
    );
    assert!(out
        .output
        .contains("manifest changed         app/rec-manifest-edit-a → queue"));
    assert!(
        !out.calls.iter().any(|c| c.contains("rec-manifest-edit-b")),
        "the other app sees no call: {:?}",
        out.calls
    );
    assert_eq!(
        out.calls,
        [
            // issue 23: created aside while the old one runs, the old one
            // kept during the gate (1 s here), removed once it is passed.
            "list",
            "inspect rec-manifest-edit-a",
            "inspect rec-manifest-edit-a.previous",
            "inspect rec-manifest-edit-a.next",
            "exists localhost/bb:1",
            "create rec-manifest-edit-a.next",
            "stop rec-manifest-edit-a",
            "rename rec-manifest-edit-a rec-manifest-edit-a.previous",
            "rename rec-manifest-edit-a.next rec-manifest-edit-a",
            "start rec-manifest-edit-a",
            "inspect rec-manifest-edit-a",
            "inspect rec-manifest-edit-a.previous",
            "inspect rec-manifest-edit-a.next",
            "inspect rec-manifest-edit-a",
            "inspect rec-manifest-edit-a.previous",
            "inspect rec-manifest-edit-a.next",
            "remove rec-manifest-edit-a.previous",
            "inspect rec-manifest-edit-a"
        ]
    );
}

#[test]
fn replay_should_sweep_after_a_stream_gap_and_repair_what_died_during_it() {
    let out = replay("stream-gap");
    let a = "app/rec-stream-gap-a";
    assert_eq!(
        reactions(&out),
        [r("sweep", "none"), r("sweep", "none"), r(a, "start")],
        "{}",
        out.output
    );
    let lost = lines_with(&out, &["events stream lost"]);
    let resumed = lines_with(&out, &["stream resumed after a gap", "→ queue sweep"]);
    assert_eq!((lost.len(), resumed.len()), (1, 1), "{}", out.output);
    assert!(at_ms(resumed[0]) > at_ms(lost[0]));
    assert_eq!(out.stats.sweeps, 2);
}

#[test]
fn replay_should_reconcile_each_app_at_most_twice_per_crash_in_a_burst() {
    let f = fixture("burst");
    assert!(f.records.len() >= 1000, "{} lines", f.records.len());
    let out = replay("burst");
    let mut per_app: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, action) in reactions(&out) {
        if key.starts_with("app/") {
            per_app.entry(key).or_default().push(action);
        }
    }
    assert_eq!(per_app.len(), 50);
    for (app, actions) in &per_app {
        // Four rounds of kill/died/cleanup: one start each, and at most one
        // follow-up per round.
        assert_eq!(
            actions.iter().filter(|a| *a == "start").count(),
            4,
            "{app}: {actions:?}"
        );
        assert!(actions.len() <= 8, "{app}: {actions:?}");
    }
    assert_eq!(out.stats.failures, 0);
}

#[test]
fn replay_should_leave_an_unmanaged_unit_file_alone_through_an_editor_save() {
    let out = replay("unit-editor-save");
    assert_eq!(reactions(&out), [r("sweep", "none")], "{}", out.output);
    assert_eq!(out.calls, ["list"]);
    // Companions are replayed (the fixture has a unit directory), but no
    // manifest owns the file: not one systemd call.
    assert!(out.systemd_calls.is_empty(), "{:?}", out.systemd_calls);
    let unit_lines = lines_with(&out, &["event  unit-dir"]);
    assert_eq!(unit_lines.len(), 9, "{}", out.output);
    assert!(unit_lines
        .iter()
        .all(|l| l.contains("→ ignored: no companion owns it")));
}

#[test]
fn replay_should_restore_a_deleted_companion_file_with_one_reload_and_no_restart() {
    let out = replay("companion-restore");
    let c = "companion/rec-comp-tunnel";
    let batch = r("companion/*", "batch");
    assert_eq!(
        reactions(&out),
        [
            // Start-up: the service runs the file's definition; nothing to do.
            batch.clone(),
            r("sweep", "none"),
            // The file deleted: written back, one reload, the service kept.
            batch.clone(),
            r(c, "write"),
            // The echo of the recorded podkeeper's own rename: finds it as declared.
            batch.clone(),
            // The container killed: the service failed; reset and started.
            batch.clone(),
            r(c, "start"),
            // podman's remove (--rm) of the dead container: as declared.
            batch,
        ],
        "{}",
        out.output
    );
    let write = lines_with(&out, &["react", c, "write"]);
    assert!(
        write[0].contains("file missing: written; running the declared definition: not restarted"),
        "{}",
        write[0]
    );
    let start = lines_with(&out, &["react", c, " start "]);
    assert!(
        start[0].contains("failed (exit-code): reset-failed + start"),
        "{}",
        start[0]
    );
    let svc = "rec-comp-tunnel.service";
    let show = format!("show {svc}");
    assert_eq!(
        out.systemd_calls,
        [
            show.clone(), // start-up
            show.clone(), // the deleted file: before writing it
            "daemon-reload".into(),
            show.clone(), // after the reload: still running, same definition
            show.clone(), // the echo
            show.clone(), // died
            format!("reset-failed {svc}"),
            format!("start {svc}"),
            show.clone(), // which definition the new run was started from
            show,         // remove
        ],
        "{}",
        out.output
    );
    assert!(
        !out.systemd_calls.iter().any(|c| c.starts_with("restart")),
        "a restored file needs no restart"
    );
    // Delete → written back: the 30 ms unit-dir settle, show, reload (50 ms), show.
    let removed = lines_with(&out, &["unit-dir remove", "rec-comp-tunnel.container"]);
    assert_eq!(at_ms(write[0]) - at_ms(removed[0]), 90, "{}", out.output);
    // Died → started: show, reset-failed, start, show (5 ms each), no settle.
    let died = lines_with(&out, &["container died (137)", "rec-comp-tunnel "]);
    assert!(died[0].contains("→ queue companion/rec-comp-tunnel"));
    assert_eq!(at_ms(start[0]) - at_ms(died[0]), 20, "{}", out.output);
    // podkeeper's own temporary file is no trigger; the app itself sees no call.
    assert_eq!(
        lines_with(
            &out,
            &[".podkeeper-tmp", "ignored: podkeeper's own temporary file"]
        )
        .len(),
        4
    );
    assert_eq!(out.calls, ["list"]);
    assert_eq!(out.stats.failures, 0);
}

#[test]
fn replay_should_reread_the_manifests_after_an_inotify_overflow() {
    let out = replay("overflow");
    let apps: Vec<_> = reactions(&out)
        .into_iter()
        .filter(|(k, _)| k.starts_with("app/"))
        .collect();
    // The manifest added during the overflow is found by a rescan; the app
    // that was there all along is not touched.
    assert_eq!(apps, [r("app/rec-overflow-b", "create")], "{}", out.output);
    assert!(!lines_with(&out, &["apps-dir rescan", "→ queue manifests"]).is_empty());
    assert!(out
        .output
        .contains("manifest added           app/rec-overflow-b"));
}

#[test]
fn podman5_replay_should_restart_a_crashed_app_once_per_crash_and_ignore_strangers() {
    let out = replay("podman5-crash-repair");
    assert!(
        out.output.contains("recorded with podman 5.4.2"),
        "{}",
        out.output
    );
    let a = "app/rec-podman5-crash-repair-a";
    // Replay's podman records no stop intent (the recording cannot say):
    // as on podman 4, an exit within its grace is a wait, then the start.
    assert_eq!(
        reactions(&out),
        [
            r("sweep", "none"),
            r(a, "wait"),
            r(a, "start"),
            r(a, "wait"),
            r(a, "start"),
            r(a, "start"),
            r(a, "wait"),
            r(a, "start")
        ],
        "{}",
        out.output
    );
    let died = lines_with(&out, &["died (137)", "rec-podman5-crash-repair-a "]);
    let starts = lines_with(&out, &["react", a, "start"]);
    assert_eq!(died.len(), 4, "{}", out.output);
    // As on podman 4: the call time plus what is left of the exit grace.
    for (d, s) in died.iter().zip(&starts) {
        assert!((10..=210).contains(&(at_ms(s) - at_ms(d))), "{d}\n{s}");
    }
    assert!(
        out.calls.iter().all(|c| c == "list" || c.ends_with("-a")),
        "{:?}",
        out.calls
    );
    assert_eq!(
        lines_with(
            &out,
            &["rec-podman5-crash-repair-stranger", "ignored: not managed"]
        )
        .len(),
        2
    );
}

#[test]
fn podman5_replay_should_repair_a_stop_that_sends_no_stop_event_and_an_rm() {
    let out = replay("podman5-stop-rm");
    let a = "app/rec-podman5-stop-rm-a";
    // podman 5's `podman stop` is `died (0)`, `cleanup`: a look that gives
    // the stop the rest of the exit grace, then the start; `rm -f` is
    // `died (0)`, `remove`: a create and its dirty follow-up.
    assert_eq!(
        reactions(&out),
        [
            r("sweep", "none"),
            r(a, "wait"),
            r(a, "start"),
            r(a, "create"),
            r(a, "none")
        ],
        "{}",
        out.output
    );
    assert!(!out.output.contains("container stop "), "{}", out.output);
    let wait = lines_with(&out, &["react", a, "wait"]);
    assert!(
        wait[0].contains("exited (code 0), within the exit grace: looking again"),
        "{}",
        wait[0]
    );
    assert!(out.output.contains(
        "container died (0)       rec-podman5-stop-rm-a → queue app/rec-podman5-stop-rm-a"
    ));
    assert_eq!(out.stats.failures, 0);
}

#[test]
fn podman5_replay_should_leave_health_status_and_restart_policy_containers_alone() {
    let out = replay("podman5-health");
    assert_eq!(reactions(&out), [r("sweep", "none")], "{}", out.output);
    assert_eq!(out.calls, ["list"]);
    let health = lines_with(
        &out,
        &[
            "container health_status (unhealthy) rec-podman5-health-sick",
            "→ ignored: not managed",
        ],
    );
    assert_eq!(health.len(), 3, "{}", out.output);
    assert_eq!(
        lines_with(
            &out,
            &["container restart", "rec-podman5-health-policy", "ignored"]
        )
        .len(),
        1,
        "{}",
        out.output
    );
}

#[test]
fn replay_should_act_on_a_users_healthcheck_runs_and_end_with_the_recording() {
    let out = replay("health-restart");
    let a = "rec-health-restart-a";
    let (app, health) = (format!("app/{a}"), format!("health/{a}"));
    // The first run by hand (a failure podman logged) makes podkeeper read
    // the log at once: its first check is due too, and fails: 2 of 2,
    // restart, in that instant plus the 5 calls. The recorded checks after
    // that (the recording podkeeper's, which had restarted nothing yet)
    // fail on the restarted container too: 2 of 2 again, restart #2 (the
    // backoff's 100 ms are long over). Each restart's stop wakes the app
    // key, which runs after the health key (one run per app) and finds it
    // running. The last run by hand passes: healthy.
    assert_eq!(
        reactions(&out),
        [
            r("sweep", "none"),
            r(&health, "restart"),
            r(&app, "none"),
            r(&health, "restart"),
            r(&app, "none"),
            r(&app, "none"),
            r(&health, "healthy")
        ],
        "{}",
        out.output
    );
    let first_run = lines_with(&out, &["health_status (starting)", "already queued"]);
    let restart = lines_with(&out, &["react", &health, "restart"]);
    assert_eq!(
        at_ms(restart[0]) - at_ms(first_run[0]),
        25,
        "{}",
        out.output
    );
    assert!(
        restart[0].contains("unhealthy: 2 consecutive failed checks: exit code 1 (restart #1"),
        "{}",
        out.output
    );
    assert!(restart[1].contains("(restart #2"), "{}", out.output);
    // The recording podkeeper's restart (stop, died, start) is an echo: the
    // app key never starts anything itself.
    assert_eq!(
        out.calls.iter().filter(|c| c.starts_with("start ")).count(),
        2,
        "{:?}",
        out.calls
    );
    // The check timers (a minute away) do not keep the replay going: it
    // ends with the recording (6.0 s), not 600 s of checks later.
    let done = lines_with(&out, &["replay", "done:"]);
    assert!(at_ms(done[0]) < 7_000, "{}", out.output);
}

#[test]
fn two_replays_of_a_fixture_should_print_the_same_bytes() {
    for name in [
        "crash-repair",
        "crash-loop",
        "stop-rm",
        "manifest-edit",
        "stream-gap",
        "burst",
        "unit-editor-save",
        "overflow",
        "companion-restore",
        "podman5-crash-repair",
        "podman5-stop-rm",
        "podman5-health",
        "health-restart",
    ] {
        let (a, b) = (replay(name), replay(name));
        assert_eq!(a.output, b.output, "{name}");
        assert_eq!(a.calls, b.calls, "{name}");
    }
}

#[test]
fn a_damaged_fixture_should_stop_the_replay_at_its_line() {
    let text = std::fs::read_to_string(dir("crash-repair").join("events.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replacen("\"Action\":", "\"Act\":", 1);
    let err = Fixture::parse(&lines.join("\n")).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(err.to_string().contains("missing field `Action`"), "{err}");
}
