//! Named networks and `app:<id>` networks against the simulated podman, under paused time: a missing network is a clear failure that the network's appearance ends at once; an app sharing another's namespace waits for it and rejoins when it is recreated.

mod sim;

use std::time::Duration;

use podkeeper::runtime::ContainerState;
use podkeeper::trigger::ChangeKind;
use sim::{podman_with_events, settle_until, Setup};
use tokio::time::{sleep, Instant};

fn manifest(id: &str, network: &str, extra: &str) -> String {
    format!("app:\n  id: {id}\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: \"{network}\"\n{extra}", sim::IMAGE)
}

fn running(h: &sim::Sim, id: &str) -> bool {
    h.podman
        .container(id)
        .is_some_and(|c| c.state == ContainerState::Running)
}

#[tokio::test(start_paused = true)]
async fn a_missing_network_should_fail_clearly_and_the_app_start_the_moment_it_appears() {
    let (podman, erx) = podman_with_events();
    let h = Setup::dir(podman, [("web.yaml", manifest("web", "mynet", ""))])
        .events(erx)
        .start();
    h.connect().await;
    // Failures at 0, 1, 3, 7, 15 s: the next retry is 31 s in.
    sleep(Duration::from_secs(20)).await;
    assert!(h.podman.container("web").is_none(), "never bridge instead");
    let t0 = Instant::now();
    h.podman.add_network("mynet");
    settle_until(Duration::from_secs(1), || running(&h, "web")).await;
    assert!(running(&h, "web"), "started on the network's create event");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(
        h.podman.spec_of("web").and_then(|s| s.network),
        Some("mynet".into())
    );
    let (_, out) = h.stop().await;
    assert!(
        out.contains("network \"mynet\" does not exist: create it (`podman network create mynet`"),
        "{out}"
    );
    assert!(out.contains("queue 1 app(s)"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn an_app_on_anothers_network_should_wait_for_it_and_rejoin_when_it_is_recreated() {
    let (podman, erx) = podman_with_events();
    let h = Setup::dir(
        podman,
        [
            ("db.yaml", manifest("db", "none", "")),
            ("web.yaml", manifest("web", "app:db", "")),
        ],
    )
    .events(erx)
    .start();
    h.connect().await;
    settle_until(Duration::from_secs(2), || running(&h, "web")).await;
    assert!(running(&h, "db") && running(&h, "web"));
    let calls = h.podman.calls();
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    assert!(pos("start db") < pos("create web"), "{calls:?}");
    let web_before = h.podman.container("web").unwrap().id;

    // db's spec changes: podman refuses to remove it while web shares it,
    // so web goes first, and is created again in db's new namespace once
    // db's new container passed its update gate (issue 23: 10 s; a
    // dependent is held meanwhile).
    h.write_app_file("db.yaml", &manifest("db", "none", "    env: {V: \"2\"}\n"))
        .await;
    h.apps_changed("db.yaml", ChangeKind::Modify).await;
    settle_until(Duration::from_secs(15), || {
        running(&h, "web")
            && h.podman
                .container("web")
                .is_some_and(|c| c.id != web_before)
    })
    .await;
    let web = h.podman.container("web").unwrap();
    assert_ne!(web.id, web_before, "{:?}", h.podman.calls());
    assert_eq!(web.state, ContainerState::Running);
    assert!(running(&h, "db"));
    let (stats, out) = h.stop().await;
    assert_eq!(stats.failures, 0, "{out}");
}
