//! Graceful stops (issue 22): every stop and remove podkeeper makes waits out the app's `stop_timeout`, against the simulated runtime under paused time.
//!
//! The simulated process of each app here needs 13 s after its stop signal
//! (`set_stop_needs`): within the stop timeout it exits 0, past it podman
//! SIGKILLs it (137). podman's own default would be 10 s.

mod sim;

use std::time::Duration;

use podkeeper::runtime::sim_podman::{SimRuntime, KILLED};
use podkeeper::runtime::ContainerState;
use podkeeper::trigger::ChangeKind;
use sim::{podman_with_events, settle_until, Setup, Sim};
use tokio::time::{sleep, Instant};

const NEEDS: Duration = Duration::from_secs(13);

fn manifest(id: &str, extra: &str) -> String {
    format!(
        "app:\n  id: {id}\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n{extra}",
        sim::IMAGE
    )
}

fn timeout(t: &str) -> String {
    format!("    stop_timeout: {t}\n")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The reactor over an apps directory of `files`, its apps running.
async fn running(files: &[(&str, String)], prepare: impl FnOnce(&SimRuntime)) -> Sim {
    let (podman, events) = podman_with_events();
    prepare(&podman);
    let h = Setup::dir(podman, files.iter().map(|(f, t)| (*f, t.clone())))
        .events(events)
        .start();
    h.connect().await;
    sleep(secs(1)).await;
    h
}

/// Every stop or remove of `name` so far, with its stop timeout.
fn stops_of(h: &Sim, name: &str) -> Vec<(String, Duration)> {
    h.podman
        .stops()
        .into_iter()
        .filter(|(what, _)| what.ends_with(&format!(" {name}")))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_spec_change_stopped_and_a_deleted_manifest_should_each_wait_out_the_stop_timeout() {
    let files = [
        ("changed.yaml", manifest("changed", &timeout("30s"))),
        ("stopped.yaml", manifest("stopped", &timeout("30s"))),
        ("deleted.yaml", manifest("deleted", &timeout("30s"))),
    ];
    let h = running(&files, |p| {
        for id in ["changed", "stopped", "deleted"] {
            p.set_stop_needs(id, NEEDS);
        }
    })
    .await;
    let t0 = Instant::now();
    let changed = format!(
        "{}    env:\n      V: \"2\"\n",
        manifest("changed", &timeout("30s"))
    );
    h.write_app_file("changed.yaml", &changed).await;
    let stopped = manifest("stopped", &timeout("30s"))
        .replace("  container:", "  state: stopped\n  container:");
    h.write_app_file("stopped.yaml", &stopped).await;
    std::fs::remove_file(h.apps_path("deleted.yaml")).unwrap();
    h.apps_changed("deleted.yaml", ChangeKind::Remove).await;
    settle_until(secs(20), || {
        h.podman.container("deleted").is_none()
            && h.podman
                .container("stopped")
                .is_some_and(|c| c.state == ContainerState::Exited)
            && h.podman.container("changed").is_some_and(|c| {
                c.state == ContainerState::Running
                    && c.started_at.is_some_and(|s| {
                        s > h
                            .podman
                            .container("stopped")
                            .and_then(|c| c.finished_at)
                            .unwrap_or(s)
                    })
            })
    })
    .await;
    assert!(
        t0.elapsed() < secs(16),
        "the three stops ran side by side: {:?}",
        t0.elapsed()
    );
    // The replace path (issue 23) stops the old one and keeps it for the gate.
    assert_eq!(stops_of(&h, "changed"), [("stop changed".into(), secs(30))]);
    assert_eq!(stops_of(&h, "stopped"), [("stop stopped".into(), secs(30))]);
    assert_eq!(
        stops_of(&h, "deleted"),
        [("remove deleted".into(), secs(30))]
    );
    assert_eq!(h.podman.container("stopped").unwrap().exit_code, Some(0));
    let (_, out) = h.stop().await;
    // Each exit as podman reported it: 0, never SIGKILL's 137.
    assert_eq!(sim::count(&out, "died (0)"), 3, "{out}");
    assert_eq!(sim::count(&out, &format!("died ({KILLED})")), 0, "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_container_created_without_a_stop_timeout_should_get_the_manifests_on_a_spec_change() {
    // An older podkeeper created it: podman's 10 s of its own, a spec hash
    // that no longer matches.
    let h = running(&[("db.yaml", manifest("db", &timeout("2m")))], |p| {
        let labels = [
            ("io.podkeeper.app".to_string(), "db".to_string()),
            (
                "io.podkeeper.spec-hash".to_string(),
                "0ld0ld0ld0ld0ld0".to_string(),
            ),
        ];
        p.add_running("db", labels.into_iter().collect());
        p.set_stop_needs("db", NEEDS);
    })
    .await;
    let old = h.podman.container("db").unwrap().id;
    settle_until(secs(20), || {
        h.podman
            .container("db")
            .is_some_and(|c| c.id != old && c.state == ContainerState::Running)
    })
    .await;
    // Stopped and kept for the update's gate (issue 23).
    assert_eq!(stops_of(&h, "db"), [("stop db".into(), secs(120))]);
    let (_, out) = h.stop().await;
    assert_eq!(sim::count(&out, "died (0)"), 1, "{out}");
}

#[tokio::test(start_paused = true)]
async fn without_a_stop_timeout_a_stop_should_name_podmans_10s_and_cut_a_slow_process() {
    let h = running(&[("web.yaml", manifest("web", ""))], |p| {
        p.set_stop_needs("web", NEEDS)
    })
    .await;
    let stopped = manifest("web", "").replace("  container:", "  state: stopped\n  container:");
    h.write_app_file("web.yaml", &stopped).await;
    settle_until(secs(20), || {
        h.podman
            .container("web")
            .is_some_and(|c| c.state == ContainerState::Exited)
    })
    .await;
    assert_eq!(stops_of(&h, "web"), [("stop web".into(), secs(10))]);
    assert_eq!(
        h.podman.container("web").unwrap().exit_code,
        Some(KILLED),
        "today's behaviour without the field"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_health_restart_should_wait_out_the_stop_timeout() {
    let check = "    healthcheck:\n      command: [\"/bin/false\"]\n      interval: 1s\n      timeout: 1s\n      retries: 1\n";
    let h = running(
        &[(
            "web.yaml",
            manifest("web", &format!("{}{check}", timeout("45s"))),
        )],
        |p| {
            p.set_healthy("web", false);
        },
    )
    .await;
    settle_until(secs(10), || !stops_of(&h, "web").is_empty()).await;
    assert_eq!(stops_of(&h, "web")[0], ("stop web".into(), secs(45)));
    let (_, out) = h.stop().await;
    assert!(
        out.contains("react  health/web") && out.contains("restart"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_removed_with_its_manifest_should_get_its_own_stop_timeout() {
    let h = running(&[("web.yaml", manifest("web", &timeout("40s")))], |_| {}).await;
    h.podman.rename_by_hand("web", "web-old");
    h.podman.set_stop_needs("web-old", NEEDS);
    settle_until(secs(5), || h.podman.container("web").is_some()).await;
    std::fs::remove_file(h.apps_path("web.yaml")).unwrap();
    h.apps_changed("web.yaml", ChangeKind::Remove).await;
    settle_until(secs(30), || {
        h.podman.container("web").is_none() && h.podman.container("web-old").is_none()
    })
    .await;
    // The manifest is gone: each container's own, as it was created with.
    assert_eq!(
        stops_of(&h, "web-old"),
        [("remove web-old".into(), secs(40))]
    );
    assert_eq!(stops_of(&h, "web"), [("remove web".into(), secs(40))]);
    let (_, out) = h.stop().await;
    assert_eq!(sim::count(&out, &format!("died ({KILLED})")), 0, "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_two_minute_stop_should_hold_no_other_apps_reconcile_and_shutdown_wait_only_its_drain() {
    let db = manifest("db", &timeout("2m"));
    let h = running(&[("db.yaml", db.clone())], |p| {
        p.set_stop_needs("db", secs(110))
    })
    .await;
    let t0 = Instant::now();
    h.write_app_file(
        "db.yaml",
        &db.replace("  container:", "  state: stopped\n  container:"),
    )
    .await;
    settle_until(secs(2), || !stops_of(&h, "db").is_empty()).await;
    // While db's stop runs (110 s), another app comes and goes at once.
    h.write_app_file("web.yaml", &manifest("web", "")).await;
    settle_until(secs(5), || {
        h.podman
            .container("web")
            .is_some_and(|c| c.state == ContainerState::Running)
    })
    .await;
    assert!(
        t0.elapsed() < secs(3),
        "web waited for db's stop: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        h.podman.container("db").unwrap().state,
        ContainerState::Running,
        "db still stopping"
    );
    // SIGTERM of podkeeper: it waits at most its drain (30 s), then leaves
    // the stop to podman.
    let t1 = Instant::now();
    let (_, out) = h.stop().await;
    assert!(t1.elapsed() <= secs(31), "{:?}", t1.elapsed());
    assert!(
        out.contains("drain timeout: abandoning reconciles in flight"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_container_stopping_for_minutes_should_be_looked_at_once_a_second_and_repaired_at_its_died(
) {
    // Someone's `podman stop` of a database with a long stop timeout (or
    // a stop podkeeper's shutdown left to podman): `stopping` for minutes.
    let h = running(&[("db.yaml", manifest("db", &timeout("2m")))], |_| {}).await;
    h.podman.stop_under_way("db");
    h.send(podkeeper::trigger::Trigger::SweepTick).await;
    sleep(secs(1)).await;
    h.podman.clear_calls();
    sleep(secs(60)).await;
    let looks = h.calls_for("db").len();
    assert!(
        (55..=65).contains(&looks),
        "one look a second, not every 20 ms: {looks}"
    );
    // Its `died` brings the look forward: started again at once.
    h.podman.stop_by_hand("db");
    let t0 = Instant::now();
    settle_until(secs(5), || {
        h.podman
            .container("db")
            .is_some_and(|c| c.state == ContainerState::Running)
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    h.stop().await;
}
