//! `app.restart` (always, on-failure, never) and `depends_on` condition `completed`, against the simulated podman under paused time.

mod sim;

use std::sync::Arc;
use std::time::Duration;

use podkeeper::ops::state::{Records, Shared};
use podkeeper::ops::status::table;
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::runtime::ContainerState;
use podkeeper::trigger::{PodmanEvent, Trigger};
use sim::{podman_with_events, settle_until, Setup, Sim};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

/// A job of the test image, under `restart`, with `extra` manifest lines.
fn job(id: &str, restart: &str, extra: &str) -> String {
    format!(
        "app:\n  id: {id}\n  restart: {restart}\n{extra}  container:\n    image: {}\n    command: [\"/bin/sh\", \"-c\", \"sleep 1\"]\n    network: none\n",
        sim::IMAGE
    )
}

/// A server that waits for `migrate` to complete.
fn server() -> String {
    format!(
        "app:\n  id: server\n  depends_on:\n    - app: migrate\n      condition: completed\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n",
        sim::IMAGE
    )
}

/// The reactor over an apps directory of `files`, with status kept.
fn start(
    files: &[(&str, String)],
    podman: SimRuntime,
    events: impl Into<Option<mpsc::UnboundedReceiver<PodmanEvent>>>,
) -> (Sim, Arc<Shared>) {
    let shared = Shared::new();
    let mut setup = Setup::dir(podman, files.iter().cloned());
    if let Some(events) = events.into() {
        setup = setup.events(events);
    }
    let h = setup
        .observer(Box::new(Records::new(shared.clone())))
        .start();
    (h, shared)
}

fn state(h: &Sim, id: &str) -> Option<ContainerState> {
    h.podman.container(id).map(|c| c.state)
}

fn starts(h: &Sim, id: &str) -> usize {
    h.calls_for(id)
        .iter()
        .filter(|c| c.starts_with("start "))
        .count()
}

/// Wait (virtual time, 1 ms at a time, at most `limit`) until `id` runs.
async fn until_running(h: &Sim, id: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while state(h, id) != Some(ContainerState::Running) {
        if Instant::now() >= end {
            return false;
        }
        sleep(Duration::from_millis(1)).await;
    }
    true
}

/// The status row of `id`: (state, why).
fn row(shared: &Shared, id: &str) -> (String, Option<String>) {
    let s = shared.status();
    let a = s.apps.iter().find(|a| a.id == id).unwrap();
    (a.state.clone(), a.why.clone())
}

#[tokio::test(start_paused = true)]
async fn an_on_failure_app_that_exited_0_should_be_completed_and_left_exited_by_sweeps() {
    let (podman, erx) = podman_with_events();
    let (h, shared) = start(
        &[("migrate.yaml", job("migrate", "on-failure", ""))],
        podman,
        erx,
    );
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Running));
    h.podman.crash("migrate", 0);
    sleep(Duration::from_secs(1)).await;
    for _ in 0..3 {
        h.send(Trigger::SweepTick).await;
        sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Exited));
    assert_eq!(starts(&h, "migrate"), 1, "{:?}", h.podman.calls());
    assert_eq!(row(&shared, "migrate"), ("completed".into(), None));
    let shown = table(&shared.status());
    assert!(shown.contains("1/1 apps as declared"), "{shown}");
    let metrics = shared.metrics_text();
    assert!(
        metrics.contains(r#"podkeeper_apps{state="completed"} 1"#),
        "{metrics}"
    );
    let (_, out) = h.stop().await;
    assert!(out.contains("completed (exit code 0)"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn an_on_failure_app_that_fails_should_restart_with_the_crash_loop_backoff() {
    let (podman, erx) = podman_with_events();
    let (h, _) = start(
        &[("migrate.yaml", job("migrate", "on-failure", ""))],
        podman,
        erx,
    );
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    let mut restarts = Vec::new();
    for _ in 0..5 {
        let died = Instant::now();
        h.podman.crash("migrate", 1);
        assert!(
            until_running(&h, "migrate", Duration::from_secs(10)).await,
            "restarted"
        );
        restarts.push(died.elapsed().as_millis());
    }
    // As `always` (tests/reactor_spec.rs): after the exit grace, then the
    // crash loop's 100 ms doubling holds each next restart.
    assert!((200..260).contains(&restarts[0]), "{restarts:?}");
    assert!(
        restarts[2] >= 200 && restarts[3] >= 400 && restarts[4] >= 800,
        "{restarts:?}"
    );
    // Then it succeeds: completed, not restarted.
    h.podman.crash("migrate", 0);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Exited));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_that_fails_should_be_reported_failed_with_its_code_and_not_restarted() {
    let (podman, erx) = podman_with_events();
    let (h, shared) = start(
        &[("migrate.yaml", job("migrate", "never", ""))],
        podman,
        erx,
    );
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.crash("migrate", 3);
    sleep(Duration::from_secs(1)).await;
    h.send(Trigger::SweepTick).await;
    sleep(Duration::from_secs(30)).await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Exited));
    assert_eq!(starts(&h, "migrate"), 1, "{:?}", h.podman.calls());
    let (shown, why) = row(&shared, "migrate");
    assert_eq!(shown, "failed");
    let why = why.unwrap();
    assert!(why.contains("exit code 3"), "{why}");
    assert!(
        why.contains("spec changes or its container is removed"),
        "{why}"
    );
    assert!(shared
        .metrics_text()
        .contains(r#"podkeeper_apps{state="failed"} 1"#));
    // Removing its container runs it again.
    h.podman.remove_by_hand("migrate");
    settle_until(Duration::from_secs(2), || {
        h.podman
            .container("migrate")
            .is_some_and(|c| c.state == ContainerState::Running)
    })
    .await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Running));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_should_run_again_when_its_spec_changes() {
    let (podman, erx) = podman_with_events();
    let (h, _) = start(
        &[("migrate.yaml", job("migrate", "never", ""))],
        podman,
        erx,
    );
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.crash("migrate", 0);
    sleep(Duration::from_secs(1)).await;
    let first = h.podman.container("migrate").unwrap().id;
    let changed = job("migrate", "never", "").replace("sleep 1", "sleep 2");
    h.write_app_file("migrate.yaml", &changed).await;
    settle_until(Duration::from_secs(2), || {
        h.podman
            .container("migrate")
            .is_some_and(|c| c.id != first && c.state == ContainerState::Running)
    })
    .await;
    let c = h.podman.container("migrate").unwrap();
    assert_ne!(c.id, first, "recreated");
    assert_eq!(c.state, ContainerState::Running);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dependent_should_start_the_moment_its_dependency_completed() {
    let (podman, erx) = podman_with_events();
    let files = [
        ("migrate.yaml", job("migrate", "never", "")),
        ("server.yaml", server()),
    ];
    let (h, shared) = start(&files, podman, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Running));
    assert_eq!(state(&h, "server"), None, "waits while migrate runs");
    let (_, why) = row(&shared, "server");
    let why = why.unwrap();
    assert!(
        why.starts_with("waiting for migrate to complete ("),
        "{why}"
    );
    let exited = Instant::now();
    h.podman.crash("migrate", 0);
    assert!(
        until_running(&h, "server", Duration::from_secs(20)).await,
        "server started"
    );
    // Woken by migrate's exit, not by the 10 s safety poll.
    assert!(
        exited.elapsed() < Duration::from_millis(100),
        "{:?}",
        exited.elapsed()
    );
    assert_eq!(row(&shared, "server"), ("running".into(), None));
    assert_eq!(row(&shared, "migrate").0, "completed");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dependent_of_a_failed_one_shot_should_keep_waiting_and_say_why() {
    let (podman, erx) = podman_with_events();
    let files = [
        ("migrate.yaml", job("migrate", "never", "")),
        ("server.yaml", server()),
    ];
    let (h, shared) = start(&files, podman, erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h.podman.crash("migrate", 2);
    sleep(Duration::from_secs(1)).await;
    let (_, why) = row(&shared, "server");
    assert_eq!(
        why.as_deref(),
        Some("waiting for migrate to complete (it failed with exit code 2 and is not run again (restart: never): fix it, then change its spec or remove its container)"),
        "told at once, not at the next poll"
    );
    sleep(Duration::from_secs(30)).await;
    assert_eq!(state(&h, "server"), None);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_podkeeper_should_read_completion_from_podman_and_start_a_never_started_job() {
    let (podman, erx) = podman_with_events();
    // First run: `state: stopped` creates migrate and never starts it, as a
    // podkeeper killed between podman's create and start leaves it.
    let stopped = job("migrate", "never", "  state: stopped\n");
    let files = [("migrate.yaml", stopped), ("server.yaml", server())];
    let (h, _) = start(&files, podman.clone(), erx);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Created));
    h.stop().await;

    // Second run, declared running (the same spec hash): the created job
    // runs once; server waits for it.
    // (Its events went with the first reactor: the start-up sweep finds all.)
    let files = [
        ("migrate.yaml", job("migrate", "never", "")),
        ("server.yaml", server()),
    ];
    let (h, _) = start(&files, podman.clone(), None);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Running));
    assert_eq!(starts(&h, "migrate"), 1);
    assert_eq!(state(&h, "server"), None);
    h.stop().await;

    // It completes while no podkeeper runs; the third finds it so: server
    // starts, migrate is not run again.
    podman.crash("migrate", 0);
    podman.clear_calls();
    let (h, shared) = start(&files, podman, None);
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&h, "server"), Some(ContainerState::Running));
    assert_eq!(state(&h, "migrate"), Some(ContainerState::Exited));
    assert_eq!(starts(&h, "migrate"), 0, "{:?}", h.podman.calls());
    assert_eq!(row(&shared, "migrate").0, "completed");
    h.stop().await;
}
