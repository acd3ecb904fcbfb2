//! The app reconciler's own tests (declared stopped, exit stamps).

use super::*;
use crate::runtime::sim_podman::SimRuntime;

fn loaded(text: &str) -> LoadedApp {
    let app = crate::manifest::parse_manifest(std::path::Path::new("x.yaml"), text).unwrap();
    LoadedApp {
        file: "x.yaml".into(),
        spec_hash: app.container.hash(),
        app,
        secrets: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_app_should_be_created_never_started_and_stopped_when_started() {
    let sim = SimRuntime::new(&["localhost/bb:1"], None);
    let running = "app:\n  id: web\n  container:\n    image: localhost/bb:1\n";
    let stopped = loaded(&running.replace("  container:", "  state: stopped\n  container:"));
    let r = reconcile_app(&sim, "web", Some(&stopped), false).await;
    assert_eq!(
        (r.action.as_str(), r.result.clone()),
        ("create", Ok(())),
        "{r:?}"
    );
    assert_eq!(sim.calls(), ["inspect web", "create web"]);
    let r = reconcile_app(&sim, "web", Some(&stopped), false).await;
    assert_eq!(
        (r.action.as_str(), r.why.as_str()),
        ("none", "stopped as declared")
    );

    // Someone starts it: stopped again.
    sim.start_container("web").await.unwrap();
    sim.clear_calls();
    let r = reconcile_app(&sim, "web", Some(&stopped), false).await;
    assert_eq!(
        (r.action.as_str(), r.why.as_str()),
        ("stop", "running, but declared stopped")
    );
    assert_eq!(sim.calls(), ["inspect web", "stop web"]);
    assert_ne!(sim.container("web").unwrap().state, ContainerState::Running);

    // Switched back: started, the same container, once the exit grace is
    // over (the first look asks to look again then: no sleep in a slot).
    sim.clear_calls();
    let r = reconcile_app(&sim, "web", Some(&loaded(running)), false).await;
    assert_eq!(r.action.as_str(), "wait", "{r:?}");
    tokio::time::advance(r.requeue_after.unwrap()).await;
    let r = reconcile_app(&sim, "web", Some(&loaded(running)), false).await;
    assert_eq!(r.action.as_str(), "start", "{r:?}");
    assert_eq!(sim.container("web").unwrap().state, ContainerState::Running);
}

#[test]
fn an_exit_stamped_before_its_start_should_be_uptime_zero() {
    let started = "2026-11-30T17:30:04.974929120Z"
        .parse::<Timestamp>()
        .unwrap();
    let finished = "2026-11-30T17:30:04.969647358Z"
        .parse::<Timestamp>()
        .unwrap();
    let c = ContainerInfo {
        id: "x".into(),
        name: "x".into(),
        state: ContainerState::Exited,
        labels: BTreeMap::new(),
        started_at: Some(started),
        finished_at: Some(finished),
        exit_code: Some(1),
        health: None,
        stopped_by_user: None,
        pid: None,
        health_log: Vec::new(),
        stop_timeout: None,
        stop_signal: None,
    };
    assert_eq!(c.last_uptime(), Some(Duration::ZERO));
}
