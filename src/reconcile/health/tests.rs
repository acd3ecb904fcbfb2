//! check_health on the simulated podman under paused time.
use super::*;
use crate::runtime::sim_podman::SimRuntime;

fn app(extra: &str) -> LoadedApp {
    let text = format!(
        "app:\n  id: web\n  container:\n    image: localhost/bb:1\n    healthcheck:\n      command: [/bin/true]\n      interval: 10s\n      retries: 3\n{extra}"
    );
    let app = crate::manifest::parse_manifest(std::path::Path::new("x.yaml"), &text).unwrap();
    LoadedApp {
        file: "x.yaml".into(),
        spec_hash: app.container.hash(),
        app,
        secrets: Default::default(),
    }
}

async fn running(sim: &SimRuntime, app: &LoadedApp) {
    let r = super::super::app::reconcile_app(sim, "web", Some(app), false).await;
    assert_eq!(r.result, Ok(()));
    sim.clear_calls();
}

/// One run of `app`'s check, nothing cancelling it.
async fn check(sim: &SimRuntime, app: &LoadedApp, st: HealthState) -> (Reaction, HealthState) {
    check_health(sim, "web", Some(app), st, &CancellationToken::new()).await
}

/// One run when due: the interval passes first.
async fn next(sim: &SimRuntime, app: &LoadedApp, st: HealthState) -> (Reaction, HealthState) {
    tokio::time::advance(Duration::from_secs(10)).await;
    check(sim, app, st).await
}

#[tokio::test(start_paused = true)]
async fn retries_consecutive_failures_should_restart_and_the_next_restart_wait_for_the_backoff() {
    let sim = SimRuntime::new(&["localhost/bb:1"], None);
    let app = app("");
    running(&sim, &app).await;
    let (r, st) = check(&sim, &app, HealthState::default()).await;
    assert_eq!((r.action.as_str(), st.describe()), ("healthy", "healthy"));
    // Due an interval after this run began (its calls took a few ms).
    let due = r.requeue_after.unwrap();
    assert!(
        due > Duration::from_millis(9_900) && due < Duration::from_secs(10),
        "{due:?}"
    );
    sim.set_healthy("web", false);
    let (r, st) = next(&sim, &app, st).await;
    assert_eq!(
        (r.action.as_str(), r.why.as_str()),
        ("failing", "check failed (1/3): exit code 1")
    );
    let (r, st) = next(&sim, &app, st).await;
    assert_eq!((r.action.as_str(), st.streak), ("none", 2));
    tokio::time::advance(Duration::from_secs(20)).await;
    sim.clear_calls();
    let (r, st) = next(&sim, &app, st).await;
    assert_eq!(r.action.as_str(), "restart", "{r:?}");
    assert!(
        r.why
            .starts_with("unhealthy: 3 consecutive failed checks: exit code 1 (restart #1"),
        "{}",
        r.why
    );
    assert_eq!(
        sim.calls(),
        [
            "inspect web",
            "healthcheck web",
            "inspect web",
            "stop web",
            "start web"
        ]
    );
    assert_eq!(
        st.hold_until,
        Some(Instant::now() + Duration::from_millis(100))
    );

    // Still failing: three more failures, then the second restart.
    let mut st = st;
    for _ in 0..3 {
        st = next(&sim, &app, st).await.1;
    }
    assert_eq!(st.restarts, 2);
    assert_eq!(
        st.hold_until,
        Some(Instant::now() + Duration::from_millis(200))
    );

    // A hold longer than the checks: the restart waits for it.
    st.hold_until = Some(Instant::now() + Duration::from_secs(40));
    for _ in 0..3 {
        let (r, after) = next(&sim, &app, st).await;
        st = after;
        if st.streak == 3 {
            assert_eq!(r.action.as_str(), "wait", "{r:?}");
            // The next due run comes before the hold ends.
            let left = r.requeue_after.unwrap();
            assert!(
                left > Duration::from_millis(9_900) && left <= Duration::from_secs(10),
                "{left:?}"
            );
        }
    }
    assert_eq!(st.restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn failures_in_the_start_period_should_not_count_and_a_stopped_container_is_not_checked() {
    let sim = SimRuntime::new(&["localhost/bb:1"], None);
    let app = app("      start_period: 1m\n");
    running(&sim, &app).await;
    sim.set_healthy("web", false);
    let mut st = HealthState::default();
    for _ in 0..5 {
        let (r, next) = check(&sim, &app, st).await;
        assert!(r.why.contains("start period"), "{}", r.why);
        st = next;
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    assert_eq!(st.streak, 0);
    sim.stop_by_hand("web");
    sim.clear_calls();
    let (r, _) = check(&sim, &app, st).await;
    assert_eq!(r.why, "exited: not checked");
    assert_eq!(sim.calls(), ["inspect web"]);
    // No healthcheck (any more): the checks end.
    let (r, st) = check_health(
        &sim,
        "web",
        None,
        HealthState::default(),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!((r.requeue_after, st), (None, HealthState::default()));
}

#[tokio::test(start_paused = true)]
async fn a_users_runs_should_count_once_each_and_runs_before_a_restart_never() {
    let sim = SimRuntime::new(&["localhost/bb:1"], None);
    let app = app("");
    running(&sim, &app).await;
    let (_, st) = check(&sim, &app, HealthState::default()).await;
    assert_eq!(st.describe(), "healthy");
    sim.set_healthy("web", false);
    // Two runs by hand, then a look (a health_status event): 2 of 3.
    sim.check_now("web").unwrap();
    sim.check_now("web").unwrap();
    let (r, st) = check(&sim, &app, st).await;
    assert_eq!((r.action.as_str(), st.streak), ("failing", 2), "{r:?}");
    // The same log read again counts nothing more.
    let (r, st) = check(&sim, &app, st).await;
    assert_eq!(
        (r.action.as_str(), r.why.as_str(), st.streak),
        ("none", "no new check run", 2)
    );
    // Its own run, due now, is the third: restart.
    tokio::time::advance(Duration::from_secs(10)).await;
    let (r, st) = check(&sim, &app, st).await;
    assert_eq!(r.action.as_str(), "restart", "{r:?}");
    // podman keeps the log (and 4.3 its streak) across the start: the three
    // failures before it never count for the new start.
    sim.set_healthy("web", true);
    sim.check_now("web").unwrap();
    let (r, st) = check(&sim, &app, st).await;
    assert_eq!((r.action.as_str(), st.streak), ("healthy", 0), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restart_decided_on_a_manifest_that_changed_should_be_called_off() {
    let sim = SimRuntime::new(&["localhost/bb:1"], None);
    let app = app("");
    running(&sim, &app).await;
    sim.set_healthy("web", false);
    let st = HealthState {
        streak: 2,
        healthy: Some(true),
        started_at: sim.container("web").unwrap().started_at,
        ..HealthState::default()
    };
    let cancel = CancellationToken::new();
    cancel.cancel();
    sim.clear_calls();
    let (r, _) = check_health(&sim, "web", Some(&app), st, &cancel).await;
    assert_eq!(r.action.as_str(), "none", "{r:?}");
    assert!(r.why.contains("restart called off"), "{}", r.why);
    assert!(
        !sim.calls().iter().any(|c| c.starts_with("stop")),
        "{:?}",
        sim.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_container_on_its_update_gate_should_not_be_restarted() {
    let sim = SimRuntime::new(&["localhost/bb:1"], None);
    let app = app("");
    running(&sim, &app).await;
    sim.add_running("web.previous", Default::default());
    sim.set_healthy("web", false);
    let st = HealthState {
        streak: 2,
        healthy: Some(true),
        started_at: sim.container("web").unwrap().started_at,
        update_under_way: true,
        ..HealthState::default()
    };
    sim.clear_calls();
    let (r, st) = check(&sim, &app, st).await;
    assert_eq!(r.action.as_str(), "none", "{r:?}");
    assert!(r.why.ends_with("the gate decides"), "{}", r.why);
    assert!(!st.update_under_way, "never kept");
    assert!(
        !sim.calls().iter().any(|c| c.starts_with("stop")),
        "{:?}",
        sim.calls()
    );
}
