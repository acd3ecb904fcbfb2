//! Apps created and deleted leave nothing behind in the reactor (client-go's `Forget`), against the simulated runtime under paused tokio time.

mod sim;

use std::time::Duration;

use podkeeper::reactor::Reactor;
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::trigger::{ChangeKind, FileChange, PodmanEvent, Trigger};
use sim::{podman_with_events, Setup};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// App `i`: every tenth has a healthcheck (which fails: see the test), the
/// next one waits for it to be healthy, which it never is, so health and
/// wait state is made too.
fn manifest(i: usize) -> String {
    let mut m = format!(
        "app:\n  id: app{i}\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n",
        sim::IMAGE
    );
    if i % 10 == 0 {
        m += "    healthcheck:\n      command: [\"/bin/true\"]\n      interval: 1s\n      timeout: 1s\n      retries: 3\n";
    }
    if i % 10 == 1 {
        m += &format!(
            "  depends_on:\n    - app: app{}\n      condition: healthy\n",
            i - 1
        );
    }
    m
}

/// Run the reactor for `span` of virtual time, feeding it what the
/// simulated podman emits, as the events stream would.
async fn run_for(
    reactor: &mut Reactor<SimRuntime>,
    events: &mut mpsc::UnboundedReceiver<PodmanEvent>,
    span: Duration,
) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        reactor
            .step_until(Instant::now() + Duration::from_millis(100))
            .await;
        while let Ok(ev) = events.try_recv() {
            reactor.handle(Trigger::Podman(ev));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_apps_created_and_deleted_should_leave_every_map_at_its_starting_size() {
    let (podman, mut events) = podman_with_events();
    let (mut reactor, sim) = Setup::dir(podman, Vec::<(String, String)>::new())
        .quiet()
        .build();
    let start = reactor.map_sizes();
    let changed = |file: &str| {
        Trigger::AppsDir(FileChange {
            dir: sim.apps_dir().to_path_buf(),
            path: file.into(),
            kind: ChangeKind::Modify,
        })
    };
    const ROUNDS: usize = 100;
    const PER_ROUND: usize = 100;
    for round in 0..ROUNDS {
        let ids: Vec<usize> = (round * PER_ROUND..(round + 1) * PER_ROUND).collect();
        for &i in &ids {
            sim.podman.set_healthy(&format!("app{i}"), false);
            std::fs::write(sim.apps_path(&format!("app{i}.yaml")), manifest(i)).unwrap();
        }
        reactor.handle(changed("app.yaml"));
        run_for(&mut reactor, &mut events, Duration::from_secs(3)).await;
        assert_eq!(
            sim.podman.containers().len(),
            PER_ROUND - PER_ROUND / 10,
            "round {round}: every app created but those waiting"
        );
        if round == 0 {
            let grown = reactor.map_sizes();
            assert!(grown.had_manifest >= PER_ROUND, "{grown:?}");
            assert!(grown.checks > 0 && grown.exits_looked > 0, "{grown:?}");
            assert!(grown.waiting > 0 && grown.waits_said > 0, "{grown:?}");
            assert!(grown.health > 0, "{grown:?}");
        }
        for &i in &ids {
            std::fs::remove_file(sim.apps_path(&format!("app{i}.yaml"))).unwrap();
        }
        reactor.handle(changed("app.yaml"));
        run_for(&mut reactor, &mut events, Duration::from_secs(3)).await;
        assert!(
            sim.podman.containers().is_empty(),
            "round {round}: every container removed"
        );
    }
    assert_eq!(reactor.map_sizes(), start);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_app_should_be_forgotten_once_a_sweep_finds_its_duplicates_gone() {
    // podman's events of the deletion are lost (a stream gap): the
    // duplicate's `remove` is never heard, so only a sweep tells it is gone.
    let (podman, mut events) = podman_with_events();
    let (mut reactor, sim) = Setup::dir(podman, [("web.yaml", manifest(2))])
        .quiet()
        .build();
    let start = reactor.map_sizes();
    assert_eq!(start.had_manifest, 1);
    // A second container of app2 (as `podman rename` leaves one), learnt by a sweep.
    let set = podkeeper::manifest::load_dir(sim.apps_dir()).unwrap();
    let labels = podkeeper::reconcile::app::labels_for(&set.apps["app2"]);
    sim.podman.add_running("app2-old", labels);
    reactor.handle(Trigger::SweepTick);
    run_for(&mut reactor, &mut events, Duration::from_secs(1)).await;
    assert_eq!(reactor.map_sizes().duplicates, 1);
    assert!(
        sim.podman.container("app2").is_some(),
        "the sweep created it"
    );
    // The manifest goes: both containers go with it.
    std::fs::remove_file(sim.apps_path("web.yaml")).unwrap();
    reactor.handle(Trigger::AppsDir(FileChange {
        dir: sim.apps_dir().to_path_buf(),
        path: "web.yaml".into(),
        kind: ChangeKind::Remove,
    }));
    reactor
        .step_until(Instant::now() + Duration::from_secs(2))
        .await;
    while events.try_recv().is_ok() {}
    assert!(sim.podman.containers().is_empty());
    assert_eq!(
        reactor.map_sizes().had_manifest,
        1,
        "kept for its duplicate"
    );
    // Kept while its duplicate was known (its removal needed it), then
    // forgotten by the next sweep, which finds no container of it.
    reactor.handle(Trigger::SweepTick);
    run_for(&mut reactor, &mut events, Duration::from_secs(1)).await;
    let end = reactor.map_sizes();
    assert_eq!(
        end,
        podkeeper::reactor::MapSizes {
            had_manifest: 0,
            ..start
        }
    );
}
