//! Health, order and declared state on the simulated podman under paused time: the scenarios of the real-podman tests (tests/e2e_health.rs), pinned to the millisecond.
//!
//! The simulation answers each call after 5 ms of virtual time and keeps
//! podman's health status as podman does (`src/runtime/sim_podman/health.rs`);
//! its events reach the reactor at once. So a check is 15 ms (inspect,
//! healthcheck, inspect of what podman logged), an unhealthy restart 25 ms
//! (… stop, start), a create of a dependent 20 ms (inspect, inspect of its
//! dependency, create, start). Each check's own `health_status` makes the
//! reactor read podman's log once more (one inspect, nothing new: quiet).

mod sim;

use std::path::Path;

use podkeeper::manifest::{assemble, parse_manifest, ManifestSet};
use podkeeper::runtime::ContainerState;
use sim::{Setup, Sim};

const CMD: &str = r#"["/bin/sh", "-c", "touch /tmp/ok; trap 'exit 0' TERM; sleep 100000 & wait"]"#;

/// An app; `check`: its healthcheck's interval and retries; `dep`: the app it
/// waits for to be healthy.
fn app(id: &str, check: Option<(&str, u32)>, dep: Option<&str>) -> String {
    let mut m = format!(
        "app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    command: {CMD}\n    network: none\n"
    );
    if let Some((interval, retries)) = check {
        m += &format!("    healthcheck:\n      command: [\"/bin/test\", \"-e\", \"/tmp/ok\"]\n      interval: {interval}\n      timeout: 2s\n      retries: {retries}\n");
    }
    if let Some(dep) = dep {
        m += &format!("  depends_on:\n    - app: {dep}\n      condition: healthy\n");
    }
    m
}

fn set(manifests: &[String]) -> ManifestSet {
    let parsed = manifests
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let file = format!("{i}.yaml");
            (
                file.clone().into(),
                parse_manifest(Path::new(&file), text).unwrap(),
            )
        })
        .collect();
    let set = assemble(parsed, vec![]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    set
}

/// The reactor on `apps` over a simulated podman whose events reach it,
/// the stream connected at instant 0.
async fn start(apps: ManifestSet) -> Sim {
    let (podman, events) = sim::podman_with_events();
    let h = Setup::fixed(podman, apps).events(events).start();
    h.connect().await;
    h
}

/// The virtual time of a debug line (`+    1.234s  …`), in ms.
fn ms(line: &str) -> u64 {
    let stamp = line.trim_start_matches('+').trim_start();
    let (s, rest) = stamp.split_once('.').unwrap();
    s.parse::<u64>().unwrap() * 1000 + rest[..3].parse::<u64>().unwrap()
}

fn reactions(out: &str, key: &str) -> Vec<(u64, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.split_once("  react  ")?.1;
            let mut words = rest.split_whitespace();
            (words.next()? == key).then(|| (ms(l), words.next().unwrap_or("").to_string()))
        })
        .collect()
}

fn r(ms: u64, action: &str) -> (u64, String) {
    (ms, action.to_string())
}

#[tokio::test(start_paused = true)]
async fn a_check_file_deleted_should_restart_after_retries_failed_checks_and_a_healthy_app_be_left_alone(
) {
    let h = start(set(&[app("web", Some(("10s", 3)), None)])).await;
    h.at(15_000).await;
    // The file the check reads is deleted.
    h.podman.set_healthy("web", false);
    let before = h.podman.container("web").unwrap();
    h.at(41_000).await;
    // The restart made it again (the app's command touches it).
    h.podman.set_healthy("web", true);
    h.at(120_000).await;
    // Checks every 10 s: 3 failures (20, 30, 40 s, the first one news, the
    // second not), the restart in the third's run, 25 s after the file
    // went: within interval × retries + interval.
    assert_eq!(
        reactions(&h.output(), "health/web"),
        [
            r(10_015, "healthy"),
            r(20_015, "failing"),
            r(40_025, "restart"),
            r(50_040, "healthy")
        ],
        "{}",
        h.output()
    );
    let after = h.podman.container("web").unwrap();
    assert_eq!(after.id, before.id, "restarted, not recreated");
    assert_eq!(after.state, ContainerState::Running);
    let (_, out) = h.stop().await;
    assert!(
        out.contains("react  health/web               restart   unhealthy: 3 consecutive failed checks: exit code 1 (restart #1, after 40.0s up) [inspect 5.0ms, healthcheck 5.0ms, inspect 5.0ms, stop 5.0ms, start 5.0ms] ok"),
        "{out}"
    );
    // The restart's own stop woke the app key, which ran once the health
    // key was done (one run per app at a time) and found it running.
    assert_eq!(
        reactions(&out, "app/web"),
        [r(20, "create"), r(40_035, "none")]
    );
    // podman's event of podkeeper's own check makes one more read of the
    // log, which finds nothing new and prints nothing.
    assert!(
        out.contains("container health_status (healthy) web                  → health/web running; runs once more after"),
        "{out}"
    );
    assert_eq!(out.matches("react  health/web").count(), 4, "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_check_that_always_fails_should_restart_spaced_by_the_crash_loop_backoff() {
    let h = start(set(&[app("web", Some(("1s", 2)), None)])).await;
    h.podman.set_healthy("web", false);
    h.at(60_000).await;
    let restarts: Vec<u64> = reactions(&h.output(), "health/web")
        .into_iter()
        .filter(|(_, a)| a == "restart")
        .map(|(t, _)| t)
        .collect();
    let gaps: Vec<u64> = restarts.windows(2).map(|w| w[1] - w[0]).collect();
    // Two failed checks 1 s apart (the first at 1 s) and the 25 ms of the
    // restart's run make 2,025 ms, while the backoff (100 ms doubling from
    // restart #1) is shorter; from restart #6 on, its 3.2 s, 6.4 s, 12.8 s
    // hold the next restart back: it comes the moment the hold ends (+ the
    // 15 ms of the restart itself).
    assert_eq!(restarts[0], 2_025, "{}", h.output());
    assert_eq!(
        gaps,
        [2_025, 2_025, 2_025, 2_025, 2_025, 3_215, 6_415, 12_815],
        "{}",
        h.output()
    );
    let (_, out) = h.stop().await;
    assert!(
        out.contains("react  health/web               wait      unhealthy (2 failed checks); restart #7 held by the backoff for 1.2s"),
        "{out}"
    );
    for n in 1..=9 {
        assert!(out.contains(&format!("(restart #{n}, after ")), "{out}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_chain_should_start_in_order_each_dependent_in_the_instant_its_dependency_turns_healthy()
{
    let h = start(set(&[
        app("db", Some(("1s", 3)), None),
        app("api", Some(("1s", 3)), Some("db")),
        app("web", None, Some("api")),
    ]))
    .await;
    h.at(10_000).await;
    // db is created at once; its first check (1 s after start-up) passes,
    // and api is created in that instant (+ its 4 calls), not at its next
    // look; api's first check after that passes, and web follows the same way.
    let out = h.output();
    assert_eq!(reactions(&out, "app/db"), [r(20, "create")], "{out}");
    assert_eq!(reactions(&out, "health/db"), [r(1_015, "healthy")], "{out}");
    assert_eq!(
        reactions(&out, "app/api"),
        [r(15, "wait"), r(1_035, "create")],
        "{out}"
    );
    assert_eq!(
        reactions(&out, "health/api"),
        [r(2_015, "healthy")],
        "{out}"
    );
    assert_eq!(
        reactions(&h.output(), "app/web"),
        [r(15, "wait"), r(2_035, "create")],
        "{}",
        h.output()
    );
    assert!(h.output().contains(
        "react  app/web                  wait      container missing; waiting for api (no container yet)"
    ));

    // web killed: looked at within the exit grace (a wait), started once
    // it is over, its dependency looked at once and found healthy: no wait
    // for it.
    h.podman.crash("web", 137);
    h.at(12_000).await;
    let (_, out) = h.stop().await;
    assert_eq!(
        reactions(&out, "app/web"),
        [
            r(15, "wait"),
            r(2_035, "create"),
            r(10_005, "wait"),
            r(10_215, "start")
        ],
        "{out}"
    );
    assert!(
        out.contains("react  app/web                  start     exited (code 137)                    [inspect 5.0ms, inspect 5.0ms, start 5.0ms] ok"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_users_failing_healthcheck_run_should_be_acted_on_without_waiting_for_the_timer() {
    let h = start(set(&[app("web", Some(("1m", 3)), None)])).await;
    h.at(61_000).await;
    h.podman.set_healthy("web", false);
    for t in [62_000, 62_500, 62_800] {
        h.at(t).await;
        // `podman healthcheck run web`, by hand.
        h.podman.check_now("web").unwrap();
    }
    h.at(62_900).await;
    // The restart made the file again; the user checks once more.
    h.podman.set_healthy("web", true);
    h.at(63_000).await;
    h.podman.check_now("web").unwrap();
    h.at(64_000).await;
    let (_, out) = h.stop().await;
    // Each run by hand is logged by podman, and its event makes podkeeper
    // read the log at once (its own check is due at 120 s): 1/3, 2/3, then
    // the third failure in a row restarts, 5 ms (an inspect) after the run
    // plus the stop and start. The fourth, passing, is healthy again.
    assert_eq!(
        reactions(&out, "health/web"),
        [
            r(60_015, "healthy"),
            r(62_005, "failing"),
            r(62_815, "restart"),
            r(63_005, "healthy")
        ],
        "{out}"
    );
    for line in [
        // podman 4.3's event says the status from before the check.
        "+   62.000s  event  podman   container health_status (healthy) web                  → health/web already queued",
        "+   62.815s  react  health/web               restart   unhealthy: 3 consecutive failed checks: exit code 1 (restart #1, after 62.8s up) [inspect 5.0ms, stop 5.0ms, start 5.0ms] ok",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    // Only runs logged after the restart count: the one passing run.
    assert_eq!(h_streak_line(&out), None, "{out}");
}

/// A failure counted after the last restart, if any was printed.
fn h_streak_line(out: &str) -> Option<&str> {
    out.lines()
        .filter(|l| l.contains("react  health/web") && ms(l) > 62_815)
        .find(|l| l.contains("check failed"))
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_podman_should_never_count_as_a_failed_check_nor_restart_the_app() {
    let h = start(set(&[app("web", Some(("1s", 2)), None)])).await;
    h.at(1_500).await;
    let before = h.podman.container("web").unwrap();
    // podman stops answering for 10 s: ten check intervals, five times the
    // retries. A check that cannot ask podman has no verdict on the app.
    h.podman.set_unreachable(true);
    h.at(11_500).await;
    h.podman.set_unreachable(false);
    h.at(30_000).await;
    let after = h.podman.container("web").unwrap();
    let (_, out) = h.stop().await;
    let actions: Vec<String> = reactions(&out, "health/web")
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert!(
        !actions.iter().any(|a| a == "restart" || a == "failing"),
        "{out}"
    );
    // The calls failed, and were retried with the backoff.
    assert!(
        out.lines()
            .any(|l| l.contains("react  health/web") && l.contains("FAILED")),
        "{out}"
    );
    // Once podman answers, the checks run again and pass (a check that
    // finds the app as healthy as before prints no reaction, only podman's
    // event of it).
    assert!(
        out.lines()
            .filter(|l| l.contains("health_status (healthy) web"))
            .any(|l| ms(l) > 11_500),
        "{out}"
    );
    assert_eq!(after.id, before.id);
    assert_eq!(after.state, ContainerState::Running);
    assert_eq!(after.started_at, before.started_at, "never restarted");
}

#[tokio::test(start_paused = true)]
async fn a_dependent_should_be_woken_once_when_its_dependency_starts() {
    let api = app("api", None, None) + "  depends_on:\n    - app: db\n      condition: running\n";
    let h = start(set(&[app("db", None, None), api])).await;
    h.at(5_000).await;
    // db's start is heard twice (podkeeper's own reaction and podman's
    // `start` event): api waits, then is created once, with no second look.
    let (_, out) = h.stop().await;
    assert_eq!(reactions(&out, "app/db"), [r(20, "create")], "{out}");
    assert_eq!(
        reactions(&out, "app/api"),
        [r(15, "wait"), r(40, "create")],
        "{out}"
    );
}

/// The app of [`app`] with a healthcheck that always fails (interval 1 s,
/// one retry): podkeeper restarts it every run.
fn failing(id: &str) -> String {
    app(id, Some(("1s", 1)), None).replace("/bin/test\", \"-e\", \"/tmp/ok", "/bin/false")
}

#[tokio::test(start_paused = true)]
async fn a_deleted_manifest_should_never_race_a_health_restart() {
    // Issue 20: `health/web restart … start ok` at .920 and `app/web remove
    // … ok` at .925 left a container podman no longer listed, its process
    // running. The deletion lands at every ms around the restart (the
    // check at 1 s, its restart 15 to 25 ms later; the manifest re-read 50
    // ms after the deletion).
    for i in 0..100u64 {
        let (podman, events) = sim::podman_with_events();
        podman.set_healthy("web", false);
        let h = Setup::dir(podman, [("web.yaml", failing("web"))])
            .events(events)
            .start();
        h.connect().await;
        let delete_at = 900 + i;
        h.at(delete_at).await;
        std::fs::remove_file(h.apps_path("web.yaml")).unwrap();
        h.apps_changed("web.yaml", podkeeper::trigger::ChangeKind::Remove)
            .await;
        h.at(5_000).await;
        let overlaps = h.podman.overlaps();
        let left = h.podman.container("web");
        let (_, out) = h.stop().await;
        assert!(
            overlaps.is_empty(),
            "deleted at {delete_at} ms: calls on one container at once: {overlaps:?}\n{out}"
        );
        assert!(left.is_none(), "deleted at {delete_at} ms: {left:?}\n{out}");
        // Nothing acts on the app after its removal.
        let removed = out
            .lines()
            .find(|l| l.contains("react  app/web") && l.contains("remove"))
            .map(ms)
            .unwrap_or_else(|| panic!("deleted at {delete_at} ms: no removal\n{out}"));
        assert!(
            !out.lines().any(|l| l.contains("react  health/web")
                && l.contains("restart")
                && ms(l) > removed),
            "deleted at {delete_at} ms: a restart after the removal\n{out}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_kill_should_be_repaired_at_once_while_slow_health_restarts_hold_every_slot() {
    // Five apps whose process ignores SIGTERM (each stop waits out 10 s)
    // and whose check always fails: their restarts hold the four general
    // slots for 10 s at a time. A kill of another app is repaired from the
    // slots kept for repairs, at the end of its exit grace.
    let mut manifests: Vec<String> = (1..=5).map(|n| failing(&format!("slow{n}"))).collect();
    manifests.push(app("web", None, None));
    let (podman, events) = sim::podman_with_events();
    for n in 1..=5 {
        podman.set_healthy(&format!("slow{n}"), false);
        podman.set_stop_takes(&format!("slow{n}"), std::time::Duration::from_secs(10));
    }
    let h = Setup::fixed(podman, set(&manifests)).events(events).start();
    h.connect().await;
    h.at(3_000).await;
    assert!(
        h.output().matches("react  health/slow").count() == 0,
        "the slow restarts are still under way (10 s each): {}",
        h.output()
    );
    h.podman.crash("web", 137);
    h.at(4_000).await;
    let (_, out) = h.stop().await;
    let start = reactions(&out, "app/web")
        .into_iter()
        .find(|(_, a)| a == "start")
        .map(|(t, _)| t);
    // 200 ms of grace from the exit, then the inspect and the start.
    assert_eq!(start, Some(3_210), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_check_that_hangs_should_fail_at_its_timeout_and_restart_the_app() {
    let hung = app("web", Some(("2s", 2)), None).replace("timeout: 2s", "timeout: 1s");
    let (podman, events) = sim::podman_with_events();
    podman.set_check_hangs("web", true);
    let h = Setup::fixed(podman, set(&[hung])).events(events).start();
    h.connect().await;
    h.at(6_000).await;
    let (_, out) = h.stop().await;
    // Checks at 2 s and 4 s, each cut at its 1 s timeout: two failures,
    // the restart in the second's run. Never a failed reconcile.
    assert_eq!(
        reactions(&out, "health/web"),
        [r(5_025, "restart")],
        "{out}"
    );
    assert!(
        out.contains("unhealthy: 2 consecutive failed checks: no result within its timeout of 1.0s: killed (1 process(es)) (restart #1"),
        "{out}"
    );
    assert!(!out.contains("FAILED"), "{out}");
}
