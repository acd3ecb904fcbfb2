//! Exit files, against the simulated podman under paused time: a crash is
//! restarted the moment conmon writes its exit file where podman records a
//! user's stop (4.7 and later); a stop, and every exit on an older podman,
//! waits for podman's cleanup and the exit grace.

mod sim;

use std::time::Duration;

use podkeeper::manifest::ManifestSet;
use podkeeper::reconcile::app::{CLEANUP_POLL, EXIT_GRACE};
use podkeeper::runtime::sim_podman::{EventSet, SimRuntime};
use podkeeper::runtime::ContainerState;
use podkeeper::trigger::{ExitFile, Trigger};
use sim::{count, settle_until, Setup, Sim};
use tokio::time::{sleep, Instant};

fn apps(ids: &[&str]) -> ManifestSet {
    let files: Vec<(String, String)> = ids
        .iter()
        .map(|id| {
            let text = format!("app:\n  id: {id}\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n", sim::IMAGE);
            (format!("{id}.yaml"), text)
        })
        .collect();
    let refs: Vec<(&str, String)> = files.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    sim::manifests(&refs)
}

/// The reactor over a podman of event set `set` (which emits no events:
/// the test sends every trigger), with `web` and `other` created and
/// running; its calls cleared.
async fn running(set: EventSet) -> (Sim, String) {
    let podman = SimRuntime::new(&[sim::IMAGE], None).with_event_set(set);
    let h = Setup::fixed(podman, apps(&["web", "other"])).start();
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    // The sweep that learns which container is whose.
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.podman.container("web").unwrap().state,
        ContainerState::Running
    );
    let id = h.podman.container("web").unwrap().id;
    h.podman.clear_calls();
    (h, id)
}

async fn exit_file(h: &Sim, id: &str, file: ExitFile) {
    h.send(Trigger::ContainerExited {
        id: id.to_string(),
        file,
    })
    .await;
}

/// Wait until `web` runs a process started after `since`; how long that took.
async fn restarted(h: &Sim, since: Instant) -> Duration {
    let before = h.podman.container("web").unwrap().started_at;
    settle_until(Duration::from_secs(5), || {
        let c = h.podman.container("web").unwrap();
        c.state == ContainerState::Running && c.started_at != before
    })
    .await;
    let c = h.podman.container("web").unwrap();
    assert!(
        c.state == ContainerState::Running && c.started_at != before,
        "web restarted"
    );
    since.elapsed()
}

#[tokio::test(start_paused = true)]
async fn on_podman_5_a_crash_should_start_the_moment_its_exit_file_is_written() {
    let (h, id) = running(EventSet::V5).await;
    h.podman.crash("web", 137);
    let t0 = Instant::now();
    exit_file(&h, &id, ExitFile::Written).await;
    let took = restarted(&h, t0).await;
    assert!(took < EXIT_GRACE, "no exit grace for a crash: {took:?}");
    assert_eq!(h.calls_for("web"), ["inspect web", "start web"]);
    // Its deletion (podman's cleanup, or the start itself) is no news, and
    // no other app is looked at.
    exit_file(&h, &id, ExitFile::Collected).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.calls_for("web"), ["inspect web", "start web"]);
    assert!(h.calls_for("other").is_empty());
    let (stats, out) = h.stop().await;
    assert_eq!(count(&out, "exit file written"), 1, "{out}");
    assert_eq!(
        count(&out, "older than the last check of app/web"),
        1,
        "{out}"
    );
    assert!(!out.contains("after the exit grace"), "{out}");
    assert_eq!(stats.failures, 0);
}

#[tokio::test(start_paused = true)]
async fn on_podman_5_a_users_stop_should_still_wait_out_the_exit_grace() {
    let (h, id) = running(EventSet::V5).await;
    h.podman.stop_by_hand("web");
    let t0 = Instant::now();
    exit_file(&h, &id, ExitFile::Written).await;
    let took = restarted(&h, t0).await;
    assert!(took >= EXIT_GRACE, "a stop gets the grace: {took:?}");
    // It looks every CLEANUP_POLL (an rm would be done once it is gone),
    // and starts once the grace is over.
    let calls = h.calls_for("web");
    let looks = EXIT_GRACE.as_millis() / CLEANUP_POLL.as_millis() + 1;
    assert_eq!(
        calls.last().map(String::as_str),
        Some("start web"),
        "{calls:?}"
    );
    assert!(
        calls[..calls.len() - 1].iter().all(|c| c == "inspect web")
            && (calls.len() - 1) as u128 <= looks,
        "{calls:?}"
    );
    let (_, out) = h.stop().await;
    // Each look is a requeue (no slot held); the same wait is said once.
    assert_eq!(
        out.matches("react  app/web                  wait      exited (code 0), within the exit grace: looking again").count(),
        1,
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn on_podman_4_an_exit_file_should_count_only_once_podman_collects_it() {
    let (h, id) = running(EventSet::V4).await;
    h.podman.crash("web", 137);
    let t0 = Instant::now();
    exit_file(&h, &id, ExitFile::Written).await;
    // podman's cleanup collects the exit some 50 ms later.
    sleep(Duration::from_millis(50)).await;
    assert!(
        h.calls_for("web").is_empty(),
        "podman 4.3 cannot tell a crash from `rm -f -t 0` yet: {:?}",
        h.podman.calls()
    );
    exit_file(&h, &id, ExitFile::Collected).await;
    let took = restarted(&h, t0).await;
    assert!(took >= EXIT_GRACE, "every exit gets the grace: {took:?}");
    assert_eq!(
        h.calls_for("web"),
        ["inspect web", "inspect web", "start web"]
    );
    let (_, out) = h.stop().await;
    assert!(out.contains("acting once podman collects it"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn an_exit_file_of_a_container_podkeeper_does_not_manage_should_change_nothing() {
    let (h, _) = running(EventSet::V5).await;
    let stranger = "f".repeat(64);
    exit_file(&h, &stranger, ExitFile::Written).await;
    exit_file(&h, &stranger, ExitFile::Collected).await;
    sleep(Duration::from_secs(1)).await;
    assert!(h.podman.calls().is_empty(), "{:?}", h.podman.calls());
    let (_, out) = h.stop().await;
    assert_eq!(count(&out, "not a container podkeeper manages"), 2, "{out}");
}

#[tokio::test(start_paused = true)]
async fn on_podman_5_a_users_rm_should_be_replaced_as_soon_as_the_container_is_gone() {
    let (h, id) = running(EventSet::V5).await;
    // `podman rm -f`: the stop (StoppedByUser recorded first), the exit
    // file, and the removal once rm has its lock back.
    h.podman.stop_by_hand("web");
    let t0 = Instant::now();
    exit_file(&h, &id, ExitFile::Written).await;
    sleep(Duration::from_millis(30)).await;
    h.podman.remove_by_hand("web");
    settle_until(Duration::from_secs(5), || {
        h.podman
            .container("web")
            .is_some_and(|c| c.state == ContainerState::Running)
    })
    .await;
    let took = t0.elapsed();
    assert!(
        took < EXIT_GRACE,
        "recreated once gone, not after the whole grace: {took:?}"
    );
    let calls = h.calls_for("web");
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("create")).count(),
        1,
        "{calls:?}"
    );
    let (stats, _) = h.stop().await;
    assert_eq!(stats.failures, 0);
}
