//! The reactor's scheduling semantics, against the simulated runtime under paused tokio time.

mod sim;

use std::time::Duration;

use podkeeper::manifest::ManifestSet;
use podkeeper::reactor::ReactorConfig;
use podkeeper::runtime::sim_podman::{EventSet, SimRuntime};
use podkeeper::runtime::ContainerState;
use podkeeper::trigger::{ChangeKind, StreamStatus, Trigger};
use sim::{podman_with_events, settle_until, Setup, Sim};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

fn manifest(id: &str, image: &str) -> String {
    format!("app:\n  id: {id}\n  container:\n    image: {image}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n")
}

/// Apps `ids` of the test image, their manifests fixed in memory.
fn apps(ids: &[&str]) -> ManifestSet {
    let files: Vec<(String, String)> = ids
        .iter()
        .map(|id| (format!("{id}.yaml"), manifest(id, sim::IMAGE)))
        .collect();
    let refs: Vec<(&str, String)> = files.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    sim::manifests(&refs)
}

/// The reactor over `podman` and `set`, reading what `podman` emits.
fn start(
    set: ManifestSet,
    podman: SimRuntime,
    events: mpsc::UnboundedReceiver<podkeeper::trigger::PodmanEvent>,
) -> Sim {
    Setup::fixed(podman, set).events(events).start()
}

/// The reactor over a real apps directory holding `files` (re-read on change).
fn start_in_dir(
    files: &[(&str, String)],
    podman: SimRuntime,
    events: mpsc::UnboundedReceiver<podkeeper::trigger::PodmanEvent>,
) -> Sim {
    Setup::dir(podman, files.iter().cloned())
        .events(events)
        .start()
}

fn labels_for(set: &ManifestSet, id: &str) -> std::collections::BTreeMap<String, String> {
    podkeeper::reconcile::app::labels_for(&set.apps[id])
}

#[tokio::test(start_paused = true)]
async fn startup_sweep_should_create_missing_apps_and_adopt_running_ones() {
    let set = apps(&["a", "b", "c"]);
    let (sim, erx) = podman_with_events();
    sim.add_running("a", labels_for(&set, "a"));
    let a_id = sim.container("a").unwrap().id;
    let h = start(set, sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    for id in ["a", "b", "c"] {
        assert_eq!(
            h.podman.container(id).unwrap().state,
            ContainerState::Running,
            "{id}"
        );
    }
    assert_eq!(
        h.podman.container("a").unwrap().id,
        a_id,
        "adopted, not recreated"
    );
    assert!(
        h.calls_for("a").is_empty(),
        "a matched: no call beyond the list: {:?}",
        h.podman.calls()
    );
    assert_eq!(h.calls_for("b"), ["inspect b", "create b", "start b"]);
    assert_eq!(h.podman.calls().iter().filter(|c| *c == "list").count(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reactor_should_restart_a_crashed_app_with_at_most_two_reconciles() {
    let (sim, erx) = podman_with_events();
    let h = start(apps(&["web", "other"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    h.podman.crash("web", 137);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.podman.container("web").unwrap().state,
        ContainerState::Running
    );
    let inspects = h
        .calls_for("web")
        .iter()
        .filter(|c| c.starts_with("inspect"))
        .count();
    assert!((1..=2).contains(&inspects), "{:?}", h.podman.calls());
    assert!(h.calls_for("other").is_empty(), "other apps see no call");
    let (_, out) = h.stop().await;
    assert!(out.contains("container died (137)"), "{out}");
    assert!(
        out.contains("app/web                  start     exited (code 137)"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_events_for_one_app_should_give_at_most_two_reconciles() {
    let (sim, erx) = podman_with_events();
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    for _ in 0..200 {
        h.podman.stop_by_hand("web");
    }
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.podman.container("web").unwrap().state,
        ContainerState::Running
    );
    // One look finds the exit within its grace and asks to look again when
    // the grace is over (a requeue: no slot is held meanwhile); the events
    // that came while it looked fold into one follow-up look; then the
    // start. One start, three inspects, three reactions at most.
    let calls = h.podman.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("start")).count(),
        1,
        "{calls:?}"
    );
    assert!(
        calls.iter().filter(|c| c.starts_with("inspect")).count() <= 3,
        "{calls:?}"
    );
    let (_, out) = h.stop().await;
    let reconciles = out
        .lines()
        .filter(|l| l.contains("react  app/web") && !l.contains("container missing"))
        .count();
    assert!(
        (1..=3).contains(&reconciles),
        "{reconciles} reconciles:\n{out}"
    );
    assert!(
        out.contains("within the exit grace: looking again"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn events_of_unmanaged_containers_should_cause_no_call() {
    let (sim, erx) = podman_with_events();
    sim.add_running("stranger", Default::default());
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    h.podman.crash("stranger", 137);
    h.podman.remove_by_hand("stranger");
    sleep(Duration::from_secs(1)).await;
    assert!(h.podman.calls().is_empty(), "{:?}", h.podman.calls());
    let (_, out) = h.stop().await;
    assert!(out.contains("ignored: not managed"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn failures_should_back_off_exponentially_and_triggers_should_not_shorten_it() {
    let set = sim::manifests(&[("web.yaml", manifest("web", "localhost/missing:1"))]);
    let (sim, erx) = podman_with_events();
    let h = start(set, sim, erx);
    h.connect().await;
    let t0 = Instant::now();
    // Sweep ticks every 300 ms try to hurry the retries; they must not.
    for _ in 0..60 {
        sleep(Duration::from_millis(300)).await;
        h.send(Trigger::SweepTick).await;
    }
    // 18 s: attempts at ~0, 1, 3, 7, 15 s (1 s doubling).
    let pulls = h
        .podman
        .calls()
        .iter()
        .filter(|c| c.starts_with("pull"))
        .count();
    assert_eq!(pulls, 5, "{:?}", h.podman.calls());
    assert!(t0.elapsed() >= Duration::from_secs(18));
    let (stats, out) = h.stop().await;
    assert_eq!(stats.failures, 5);
    assert!(out.contains("FAILED: pull localhost/missing:1"), "{out}");
    assert!(out.contains("(retry in 8.0s)"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn sweep_should_queue_only_the_apps_that_differ() {
    let (sim, erx) = podman_with_events();
    // A runtime whose events never reach the reactor: only the sweep can notice.
    drop(erx);
    let h = Setup::fixed(sim, apps(&["a", "b", "c", "d"])).start();
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.crash("c", 1);
    // Past the exit grace, so that one inspect decides.
    sleep(Duration::from_millis(300)).await;
    h.podman.clear_calls();
    h.send(Trigger::SweepTick).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.podman.calls(), ["list", "inspect c", "start c"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_should_be_delayed_like_dockers_restart_manager() {
    let (sim, erx) = podman_with_events();
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    let mut restarts = Vec::new();
    for _ in 0..5 {
        let died = Instant::now();
        h.podman.crash("web", 1);
        while h.podman.container("web").unwrap().state != ContainerState::Running {
            sleep(Duration::from_millis(1)).await;
        }
        restarts.push(died.elapsed().as_millis() / 10 * 10);
    }
    // The first restart after the exit grace (200 ms from the exit, plus
    // call latency), then 100 ms doubling, never sooner than the grace.
    assert!((200..260).contains(&restarts[0]), "{restarts:?}");
    assert!(
        restarts[1] >= 200 && restarts[2] >= 200 && restarts[3] >= 400 && restarts[4] >= 800,
        "{restarts:?}"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_gap_should_queue_a_full_sweep() {
    let (sim, erx) = podman_with_events();
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    h.send(Trigger::Stream(StreamStatus::Lost {
        error: "gone".into(),
    }))
    .await;
    h.send(Trigger::Stream(StreamStatus::Connected { resumed: true }))
        .await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.podman.calls(), ["list"]);
    let (_, out) = h.stop().await;
    assert!(out.contains("stream resumed after a gap"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_deleted_manifest_should_remove_its_container_and_orphans_should_stay() {
    let (sim, erx) = podman_with_events();
    let orphan_labels = [(podkeeper::APP_LABEL.to_string(), "old".to_string())].into();
    sim.add_running("old", orphan_labels);
    let h = start_in_dir(&[("web.yaml", manifest("web", sim::IMAGE))], sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert!(h.podman.container("web").is_some());
    std::fs::remove_file(h.apps_path("web.yaml")).unwrap();
    h.apps_changed("web.yaml", ChangeKind::Remove).await;
    sleep(Duration::from_secs(1)).await;
    assert!(
        h.podman.container("web").is_none(),
        "removed with its manifest"
    );
    assert!(
        h.podman.container("old").is_some(),
        "orphans are left alone"
    );
    let (_, out) = h.stop().await;
    assert!(
        out.contains("old (old): labelled io.podkeeper.app but no manifest; left alone"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn more_ready_apps_than_slots_should_wait_for_a_slot_not_spin() {
    // Ten apps missing, four slots: the six that wait must not make the
    // reactor spin on their passed deadline (under paused time a spinning
    // reactor never lets the clock advance, so this test would hang).
    let ids: Vec<String> = (0..10).map(|i| format!("app{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (sim, erx) = podman_with_events();
    let h = start(apps(&refs), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(2)).await;
    for id in &ids {
        assert_eq!(
            h.podman.container(id).unwrap().state,
            ContainerState::Running,
            "{id}"
        );
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_died_event_older_than_the_last_successful_reconcile_should_be_ignored() {
    // The simulated stream is in the spec's hands: it delivers late.
    let (sim, mut stream) = podman_with_events();
    let h = Setup::fixed(sim, apps(&["web"])).start();
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    h.podman.crash("web", 137);
    // Half a second later a sweep finds web exited and restarts it; only
    // then does the stream deliver the crash's died, and deliver it again.
    sleep(Duration::from_millis(500)).await;
    h.send(Trigger::SweepTick).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.calls_for("web"), ["inspect web", "start web"]);
    h.podman.clear_calls();
    let mut late = Vec::new();
    while let Ok(ev) = stream.try_recv() {
        if ev.action == "died" {
            late.push(ev);
        }
    }
    let died = late.first().expect("the crash's died").clone();
    for _ in 0..3 {
        h.send(Trigger::Podman(died.clone())).await;
    }
    sleep(Duration::from_secs(1)).await;
    assert!(h.podman.calls().is_empty(), "{:?}", h.podman.calls());
    let (_, out) = h.stop().await;
    let ignored = out
        .lines()
        .filter(|l| l.contains("died (137)"))
        .filter(|l| l.ends_with("→ ignored: older than the last check of app/web"))
        .count();
    assert_eq!(ignored, 3, "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_new_crash_right_after_a_restart_should_still_be_acted_on() {
    let (sim, erx) = podman_with_events();
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.crash("web", 137);
    // Crash again the moment podkeeper's restart is done: the new died is
    // stamped after the inspect that preceded that restart, however soon.
    while h.podman.container("web").unwrap().state != ContainerState::Running {
        sleep(Duration::from_millis(1)).await;
    }
    h.podman.clear_calls();
    h.podman.crash("web", 1);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.podman.container("web").unwrap().state,
        ContainerState::Running
    );
    // Looked at, the exit grace waited out, looked at again, started.
    assert_eq!(
        h.calls_for("web")[..3],
        ["inspect web", "inspect web", "start web"]
    );
    let (_, out) = h.stop().await;
    let died: Vec<&str> = out.lines().filter(|l| l.contains("died (1)")).collect();
    assert_eq!(died.len(), 1, "{out}");
    assert!(died[0].contains("→ queue app/web"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_fix_should_not_wait_out_the_backoff() {
    // An image nobody has: create fails, the pull fails, the backoff grows.
    let (sim, erx) = podman_with_events();
    let h = start_in_dir(
        &[("web.yaml", manifest("web", "localhost/nope:1"))],
        sim,
        erx,
    );
    h.connect().await;
    // Failures at 0, 1, 3, 7, 15, 31 s: the next retry is at 63 s.
    sleep(Duration::from_secs(40)).await;
    assert!(h.podman.container("web").is_none());
    std::fs::write(h.apps_path("web.yaml"), manifest("web", sim::IMAGE)).unwrap();
    h.apps_changed("web.yaml", ChangeKind::RenameTo).await;
    settle_until(Duration::from_secs(1), || {
        h.podman.container("web").is_some()
    })
    .await;
    assert_eq!(
        h.podman.container("web").map(|c| c.state),
        Some(ContainerState::Running),
        "the fix ran at once"
    );
    let (_, out) = h.stop().await;
    let line = out
        .lines()
        .find(|l| l.contains("manifest changed") && l.contains("app/web"))
        .unwrap_or_default();
    assert!(
        line.ends_with("→ app/web already queued"),
        "moved to now from the retry 23 s away:\n{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_renamed_container_should_be_replaced_reported_once_and_removed_with_the_manifest() {
    let (sim, erx) = podman_with_events();
    let h = start_in_dir(&[("web.yaml", manifest("web", sim::IMAGE))], sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    let first = h.podman.container("web").unwrap().id;
    h.podman.rename_by_hand("web", "web-old");
    sleep(Duration::from_secs(1)).await;
    assert_ne!(h.podman.container("web").unwrap().id, first, "a new web");
    assert_eq!(
        h.podman.container("web-old").unwrap().id,
        first,
        "left alone"
    );
    // Sweeps see it again: reported once all the same.
    h.send(Trigger::SweepTick).await;
    sleep(Duration::from_secs(1)).await;
    std::fs::remove_file(h.apps_path("web.yaml")).unwrap();
    h.apps_changed("web.yaml", ChangeKind::RenameTo).await;
    settle_until(Duration::from_secs(2), || {
        h.podman.container("web").is_none() && h.podman.container("web-old").is_none()
    })
    .await;
    assert!(h.podman.container("web").is_none());
    assert!(
        h.podman.container("web-old").is_none(),
        "gone with the manifest"
    );
    let (_, out) = h.stop().await;
    let reports = out
        .lines()
        .filter(|l| l.contains("WARN   duplicate"))
        .count();
    assert_eq!(reports, 1, "{out}");
    assert!(out.contains("react  app/web-old"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_reload_should_reread_the_manifests_and_sweep() {
    let (sim, erx) = podman_with_events();
    let h = start_in_dir(&[], sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    // Written where no watcher saw it: only the reload finds it.
    std::fs::write(h.apps_path("web.yaml"), manifest("web", sim::IMAGE)).unwrap();
    h.send(Trigger::Reload).await;
    settle_until(Duration::from_secs(2), || {
        h.podman.container("web").is_some()
    })
    .await;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.podman.container("web").map(|c| c.state),
        Some(ContainerState::Running)
    );
    let (_, out) = h.stop().await;
    assert!(out.contains("SIGHUP: re-reading the manifests"), "{out}");
    assert!(out.contains("manifest added"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_podman_that_does_not_answer_should_be_reported_once_and_its_return_too() {
    let (sim, erx) = podman_with_events();
    sim.set_unreachable(true);
    drop(erx);
    // No stream ever connects: the start-up sweep runs all the same.
    let h = Setup::fixed(sim, apps(&["web"]))
        .startup_sweep(Duration::from_secs(2))
        .start();
    sleep(Duration::from_secs(20)).await;
    assert!(h.podman.container("web").is_none());
    h.podman.set_unreachable(false);
    // The stream connects once podman answers.
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.podman.container("web").map(|c| c.state),
        Some(ContainerState::Running)
    );
    let (_, out) = h.stop().await;
    let said = out
        .lines()
        .filter(|l| l.contains("podman is unreachable"))
        .count();
    assert_eq!(said, 1, "once per outage:\n{out}");
    assert!(out.contains("podman answers again"), "{out}");
    assert!(
        out.contains("sweep                    none") || out.contains("react  sweep"),
        "{out}"
    );
}
/// A podman 5: no `stop` event for a `podman stop`, `containerExitCode` only
/// on `died` and `remove`.
fn sim5() -> (
    SimRuntime,
    mpsc::UnboundedReceiver<podkeeper::trigger::PodmanEvent>,
) {
    let (sim, erx) = podman_with_events();
    (sim.with_event_set(EventSet::V5), erx)
}

#[tokio::test(start_paused = true)]
async fn a_podman_stop_on_podman_5_should_be_repaired_from_its_died_event_alone() {
    let (sim, erx) = sim5();
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    h.podman.stop_by_hand("web");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.podman.container("web").unwrap().state,
        ContainerState::Running
    );
    assert_eq!(
        h.calls_for("web")
            .iter()
            .filter(|c| c.starts_with("start"))
            .count(),
        1,
        "{:?}",
        h.podman.calls()
    );
    let (_, out) = h.stop().await;
    assert!(
        !out.contains("container stop "),
        "podman 5 sends none: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("container died (0)") && l.contains("→ queue app/web")),
        "{out}"
    );
}

/// A container event of app `web` as podman 5.4 sends it.
fn event5(action: &str, extra: serde_json::Value) -> podkeeper::trigger::PodmanEvent {
    let mut ev = serde_json::json!({
        "status": action, "id": "c0ffee", "from": "localhost/bb:1",
        "Type": "container", "Action": action, "scope": "local",
        "Actor": {"ID": "c0ffee", "Attributes": {
            "image": "localhost/bb:1", "name": "web", "podId": "",
            "io.podkeeper.app": "web"}},
        "time": 1_764_000_001, "timeNano": 1_764_000_001_000_000_000_i64,
    });
    if let (Some(ev), Some(extra)) = (ev.as_object_mut(), extra.as_object()) {
        ev.extend(extra.clone());
    }
    serde_json::from_value(ev).unwrap()
}

#[tokio::test(start_paused = true)]
async fn restart_health_status_and_image_pull_events_should_cost_no_reconcile() {
    let (sim, erx) = sim5();
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.clear_calls();
    let image_pull: podkeeper::trigger::PodmanEvent = serde_json::from_value(serde_json::json!({
        "status": "pull", "id": "localhost/bb:1", "Type": "image", "Action": "pull",
        "Actor": {"ID": "localhost/bb:1", "Attributes": {"name": "localhost/bb:1"}},
        "scope": "local", "time": 1_764_000_001, "timeNano": 1_764_000_001_000_000_000_i64,
    }))
    .unwrap();
    for ev in [
        image_pull,
        event5("restart", serde_json::json!({})),
        event5(
            "health_status",
            serde_json::json!({"HealthStatus": "unhealthy"}),
        ),
        event5("exec_died", serde_json::json!({})),
    ] {
        h.send(Trigger::Podman(ev)).await;
    }
    sleep(Duration::from_secs(1)).await;
    assert!(h.podman.calls().is_empty(), "{:?}", h.podman.calls());
    let (_, out) = h.stop().await;
    for line in [
        "image pull               localhost/bb:1       → ignored: image events do not change an app",
        "container restart        web                  → ignored: restart does not leave the declared state",
        "container health_status (unhealthy) web                  → ignored: no healthcheck declared, podkeeper runs none",
        "container exec_died      web                  → ignored: exec_died does not leave the declared state",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_should_report_what_is_in_flight_and_start_nothing_new() {
    let (mut sim, erx) = podman_with_events();
    sim.latency = Duration::from_secs(2);
    let h = start(apps(&["web"]), sim, erx);
    h.connect().await;
    // The sweep's list is in flight (2 s): shut down now.
    sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let podman = h.podman.clone();
    let (_, out) = h.stop().await;
    // The sweep found web missing; the drain reports it but starts nothing.
    assert_eq!(podman.calls(), ["list"]);
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        out.contains("waiting for 1 reconcile(s) in flight"),
        "{out}"
    );
    assert!(out.contains("react  sweep"), "{out}");
    assert!(!out.contains("drain timeout"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_should_abandon_what_outlasts_the_drain_timeout() {
    let (mut sim, erx) = podman_with_events();
    sim.latency = Duration::from_secs(600);
    let cfg = ReactorConfig {
        drain_timeout: Duration::from_secs(5),
        ..ReactorConfig::default()
    };
    let h = Setup::fixed(sim, apps(&["web"]))
        .events(erx)
        .config(cfg)
        .start();
    h.connect().await;
    sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let (_, out) = h.stop().await;
    let took = t0.elapsed();
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(6)).contains(&took),
        "{took:?}"
    );
    assert!(
        out.contains("drain timeout: abandoning reconciles in flight"),
        "{out}"
    );
    assert!(!out.contains("react  sweep"), "{out}");
}

/// Counts its heartbeats.
struct Beats(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl podkeeper::observe::Observer for Beats {
    fn heartbeat_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }
    fn heartbeat(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(start_paused = true)]
async fn an_observers_heartbeat_should_beat_from_the_loop_through_a_storm_of_events() {
    let beats = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (sim, erx) = podman_with_events();
    let h = Setup::fixed(sim, apps(&["web"]))
        .events(erx)
        .observer(Box::new(Beats(beats.clone())))
        .quiet()
        .start();
    h.connect().await;
    // Ten seconds of events, a hundred every 10 ms, none of them news.
    for _ in 0..1000 {
        for i in 0..100 {
            let ev = sim::container_event("exec_died", &format!("x{i}"), &[("name", "stranger")]);
            h.send(Trigger::Podman(ev)).await;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let n = beats.load(std::sync::atomic::Ordering::Relaxed);
    // One at once, then one a second.
    assert!((10..=12).contains(&n), "{n} heartbeats in 10 s");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_that_panics_should_fail_back_off_and_run_again() {
    let set = apps(&["web"]);
    let (sim, erx) = podman_with_events();
    let h = start(set, sim, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    // A bug in the start path: the task dies mid-reconcile. Its key must
    // not stay "running" for ever (every later trigger only marking it
    // dirty, the app never repaired again).
    h.podman.panic_once("start web");
    h.podman.crash("web", 137);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.podman.container("web").unwrap().state,
        ContainerState::Running
    );
    let (stats, out) = h.stop().await;
    assert_eq!(stats.panics, 1, "{out}");
    let failed = out
        .lines()
        .find(|l| l.contains("react  app/web") && l.contains("FAILED: the reconcile panicked"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(failed.contains("(retry in 1.0s)"), "{failed}");
    assert!(
        out.lines()
            .any(|l| l.contains("react  app/web") && l.contains(" start ") && l.ends_with(" ok")),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_should_be_counted_in_metrics_and_shown_by_status() {
    use podkeeper::ops::state::{Records, Shared};
    use podkeeper::ops::status::table;
    let set = apps(&["web"]);
    let (sim, erx) = podman_with_events();
    let shared = Shared::new();
    let h = Setup::fixed(sim, set)
        .events(erx)
        .observer(Box::new(Records::new(shared.clone())))
        .start();
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert!(
        !table(&shared.status()).contains("panicked"),
        "no line while none did"
    );
    h.podman.panic_once("start web");
    h.podman.crash("web", 137);
    sleep(Duration::from_secs(5)).await;
    let metrics = shared.metrics_text();
    assert!(
        metrics.contains("podkeeper_reconcile_panics_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"podkeeper_reconcile_failures_total{kind="app",cause="panicked"} 1"#),
        "{metrics}"
    );
    let shown = table(&shared.status());
    assert!(
        shown.contains("1 reconcile(s) panicked (settled as failed and retried; see the log)"),
        "{shown}"
    );
    h.stop().await;
}
