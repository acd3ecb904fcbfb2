//! The replace path of a spec change (issue 23): pull first, keep the old container as `<id>.previous`, gate the new one, roll back; and every state a killed podkeeper can leave, built by hand in the simulated podman under paused time.
//!
//! Each test reconciles the app as the reactor does, with what the reactor
//! would remember between looks ([`Memory`]: an update under way from the
//! gate's news, a spec remembered failed after a rollback).

mod sim;

use std::collections::BTreeMap;
use std::time::Duration;

use podkeeper::manifest::LoadedApp;
use podkeeper::reconcile::app::reconcile_app_among;
use podkeeper::reconcile::updates::UpdateNews;
use podkeeper::reconcile::{Reaction, Remembered};
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::runtime::{ContainerState, CreateRequest, Podman};
use podkeeper::{APP_LABEL, SPEC_HASH_LABEL};
use tokio::time::advance;

const OLD: &str = "localhost/bb:1";
const NEW: &str = "localhost/bb:2";

/// App `web` on `image`, with `extra` lines under `app:` and `container:`.
fn web(image: &str, app_extra: &str, container_extra: &str) -> LoadedApp {
    let text = format!(
        "app:\n  id: web\n{app_extra}  container:\n    image: {image}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n{container_extra}"
    );
    sim::manifests(&[("web.yaml", text)]).apps["web"].clone()
}

fn plain(image: &str) -> LoadedApp {
    web(image, "", "")
}

/// What the reactor keeps of the app between two reconciles.
#[derive(Default)]
struct Memory(Remembered);

impl Memory {
    /// One reconcile of `web` (`None`: its manifest deleted), taking in
    /// its news as the reactor does.
    async fn look(&mut self, sim: &SimRuntime, app: Option<&LoadedApp>) -> Reaction {
        let r = reconcile_app_among(sim, "web", None, app, true, &self.0).await;
        match &r.update {
            Some(UpdateNews::Gating { .. }) => self.0.update_under_way = true,
            Some(UpdateNews::RolledBack { failed }) => {
                self.0.update_under_way = false;
                self.0.failed_spec = Some(failed.spec_hash.clone());
            }
            Some(UpdateNews::Applied { .. }) => self.0.update_under_way = false,
            Some(UpdateNews::Failed { .. }) | None => {}
        }
        r
    }
}

fn id_of(sim: &SimRuntime, name: &str) -> Option<String> {
    sim.container(name).map(|c| c.id)
}

fn state_of(sim: &SimRuntime, name: &str) -> Option<ContainerState> {
    sim.container(name).map(|c| c.state)
}

fn spec_of(sim: &SimRuntime, name: &str) -> Option<String> {
    sim.container(name)
        .and_then(|c| c.labels.get(SPEC_HASH_LABEL).cloned())
}

/// `d` is `want`, less the few simulated calls' latency since the start.
fn about(d: Duration, want: Duration) {
    assert!(
        d <= want && d + Duration::from_millis(50) >= want,
        "{d:?} is not about {want:?}"
    );
}

fn news(r: &Reaction) -> &'static str {
    match &r.update {
        None => "none",
        Some(UpdateNews::Gating { .. }) => "gating",
        Some(UpdateNews::Applied { .. }) => "applied",
        Some(UpdateNews::RolledBack { .. }) => "rolled back",
        Some(UpdateNews::Failed { .. }) => "failed",
    }
}

/// `web` running on the old image, created by podkeeper; its container id.
async fn running_old(sim: &SimRuntime, mem: &mut Memory, old: &LoadedApp) -> String {
    let r = mem.look(sim, Some(old)).await;
    assert_eq!(r.action.as_str(), "create", "{r:?}");
    advance(Duration::from_secs(60)).await;
    sim.clear_calls();
    id_of(sim, "web").unwrap()
}

/// A simulated podman with the old image, the new one pullable.
fn podman() -> SimRuntime {
    let sim = SimRuntime::new(&[OLD], None);
    sim.set_pullable(NEW);
    sim
}

/// Start the update to `new` and check it is gating; the new container's id.
async fn gating(sim: &SimRuntime, mem: &mut Memory, new: &LoadedApp) -> String {
    let r = mem.look(sim, Some(new)).await;
    assert_eq!(
        (r.action.as_str(), news(&r)),
        ("recreate", "gating"),
        "{r:?}"
    );
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(spec_of(sim, "web").as_deref(), Some(new.spec_hash.as_str()));
    assert_eq!(state_of(sim, "web"), Some(ContainerState::Running));
    id_of(sim, "web").unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_good_update_should_be_applied_after_its_gate_and_the_previous_removed() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (plain(OLD), plain(NEW));
    let a = running_old(&sim, &mut mem, &old).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(
        (r.action.as_str(), news(&r)),
        ("recreate", "gating"),
        "{r:?}"
    );
    // Pulled and created while the old one ran; only then stopped, kept.
    assert_eq!(
        sim.calls(),
        [
            "inspect web",
            "inspect web.previous",
            "inspect web.next",
            "exists localhost/bb:2",
            "pull localhost/bb:2",
            "create web.next",
            "stop web",
            "rename web web.previous",
            "rename web.next web",
            "start web",
        ]
    );
    assert_eq!(r.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(id_of(&sim, "web.previous").as_deref(), Some(a.as_str()));
    assert_ne!(
        state_of(&sim, "web.previous"),
        Some(ContainerState::Running)
    );
    let b = id_of(&sim, "web").unwrap();

    advance(Duration::from_secs(4)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!((r.action.as_str(), news(&r)), ("wait", "gating"), "{r:?}");
    about(r.requeue_after.unwrap(), Duration::from_secs(6));

    advance(Duration::from_secs(6)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "applied", "{r:?}");
    assert!(sim.container("web.previous").is_none());
    assert_eq!(id_of(&sim, "web"), Some(b));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));

    // Done: a look at the running app asks nothing more than its inspect.
    sim.clear_calls();
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!((r.action.as_str(), news(&r)), ("none", "none"), "{r:?}");
    assert_eq!(sim.calls(), ["inspect web"]);
}

#[tokio::test(start_paused = true)]
async fn a_pull_failure_should_leave_the_old_container_untouched() {
    let (sim, mut mem) = (podman(), Memory::default());
    let old = plain(OLD);
    let a = running_old(&sim, &mut mem, &old).await;
    let r = mem.look(&sim, Some(&plain("localhost/bb:nope"))).await;
    assert!(r.result.is_err(), "retried with backoff: {r:?}");
    let Some(UpdateNews::Failed { failed }) = &r.update else {
        panic!("{r:?}")
    };
    assert!(
        failed.why.starts_with("pull localhost/bb:nope"),
        "{failed:?}"
    );
    assert_eq!(id_of(&sim, "web"), Some(a));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
    assert!(sim.container("web.next").is_none());
    assert!(!sim.calls().iter().any(|c| c.starts_with("stop")));
}

#[tokio::test(start_paused = true)]
async fn a_new_container_that_exits_at_once_should_be_rolled_back_to_the_old_id() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (plain(OLD), plain(NEW));
    let a = running_old(&sim, &mut mem, &old).await;
    gating(&sim, &mut mem, &new).await;
    sim.set_logs("web", "starting\nboom: no config\n");
    sim.crash("web", 3);
    advance(Duration::from_millis(300)).await;
    let r = mem.look(&sim, Some(&new)).await;
    let Some(UpdateNews::RolledBack { failed }) = &r.update else {
        panic!("{r:?}")
    };
    assert_eq!(failed.spec_hash, new.spec_hash);
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(failed.log_tail, "starting\nboom: no config\n");
    assert!(failed.why.starts_with("exited (exit code 3)"), "{failed:?}");
    assert_eq!(id_of(&sim, "web").as_deref(), Some(a.as_str()));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
    assert!(sim.container("web.previous").is_none());
    assert_eq!(r.found[0].container.as_deref(), Some(a.as_str()));
}

/// `web` with a healthcheck (retries 2) and `update` lines.
fn checked(image: &str, update: &str) -> LoadedApp {
    web(
        image,
        update,
        "    healthcheck:\n      command: [\"/bin/true\"]\n      interval: 5s\n      retries: 2\n",
    )
}

#[tokio::test(start_paused = true)]
async fn a_new_container_that_turns_unhealthy_should_be_rolled_back() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (checked(OLD, ""), checked(NEW, ""));
    let a = running_old(&sim, &mut mem, &old).await;
    gating(&sim, &mut mem, &new).await;
    sim.set_healthy("web", true);
    sim.check_now("web").unwrap();
    advance(Duration::from_secs(5)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "gating", "healthy, not yet stable: {r:?}");
    // Unhealthy inside the gate (podkeeper's checks, podman's status).
    sim.set_healthy("web", false);
    sim.check_now("web").unwrap();
    sim.check_now("web").unwrap();
    let r = mem.look(&sim, Some(&new)).await;
    let Some(UpdateNews::RolledBack { failed }) = &r.update else {
        panic!("{r:?}")
    };
    assert!(failed.why.starts_with("unhealthy"), "{failed:?}");
    assert_eq!(id_of(&sim, "web"), Some(a));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
}

#[tokio::test(start_paused = true)]
async fn a_new_container_not_healthy_by_the_deadline_should_be_rolled_back() {
    let (sim, mut mem) = (podman(), Memory::default());
    let update = "  update:\n    healthy_within: 30s\n";
    let (old, new) = (checked(OLD, update), checked(NEW, update));
    let a = running_old(&sim, &mut mem, &old).await;
    gating(&sim, &mut mem, &new).await;
    advance(Duration::from_secs(10)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "gating", "{r:?}");
    about(r.requeue_after.unwrap(), Duration::from_secs(20));
    advance(Duration::from_secs(20)).await;
    let r = mem.look(&sim, Some(&new)).await;
    let Some(UpdateNews::RolledBack { failed }) = &r.update else {
        panic!("{r:?}")
    };
    assert_eq!(failed.why, "not healthy within 30.0s");
    assert_eq!(id_of(&sim, "web"), Some(a));
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_that_exits_zero_in_its_gate_should_pass() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (
        web(OLD, "  restart: on-failure\n", ""),
        web(NEW, "  restart: on-failure\n", ""),
    );
    running_old(&sim, &mut mem, &old).await;
    let b = gating(&sim, &mut mem, &new).await;
    sim.crash("web", 0);
    advance(Duration::from_millis(300)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "applied", "{r:?}");
    assert!(sim.container("web.previous").is_none());
    assert_eq!(id_of(&sim, "web"), Some(b));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Exited));
}

#[tokio::test(start_paused = true)]
async fn rollback_false_should_remove_the_old_container_and_apply_at_start() {
    let (sim, mut mem) = (podman(), Memory::default());
    let no = "  update:\n    rollback: false\n";
    let (old, new) = (web(OLD, no, ""), web(NEW, no, ""));
    running_old(&sim, &mut mem, &old).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(
        (r.action.as_str(), news(&r)),
        ("recreate", "applied"),
        "{r:?}"
    );
    assert!(
        sim.calls().contains(&"remove web".to_string()),
        "{:?}",
        sim.calls()
    );
    assert!(sim.container("web.previous").is_none());
    let b = id_of(&sim, "web").unwrap();
    // It crashes: restarted as any app, never rolled back.
    sim.crash("web", 1);
    advance(Duration::from_millis(300)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!((r.action.as_str(), news(&r)), ("start", "none"), "{r:?}");
    assert!(
        r.restarted_after.is_some(),
        "the crash-loop backoff applies"
    );
    assert_eq!(id_of(&sim, "web"), Some(b));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_app_should_get_its_new_container_created_the_old_removed() {
    let (sim, mut mem) = (podman(), Memory::default());
    let stopped = "  state: stopped\n";
    let (old, new) = (web(OLD, stopped, ""), web(NEW, stopped, ""));
    running_old(&sim, &mut mem, &old).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(
        (r.action.as_str(), news(&r)),
        ("recreate", "applied"),
        "{r:?}"
    );
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Created));
    assert_eq!(
        spec_of(&sim, "web").as_deref(),
        Some(new.spec_hash.as_str())
    );
    assert!(sim.container("web.previous").is_none());
    assert!(!sim.calls().iter().any(|c| c.starts_with("start")));
}

#[tokio::test(start_paused = true)]
async fn a_second_edit_during_a_gate_should_win_and_keep_the_last_good_previous() {
    let (sim, mut mem) = (podman(), Memory::default());
    sim.set_pullable("localhost/bb:3");
    let old = plain(OLD);
    let a = running_old(&sim, &mut mem, &old).await;
    let b = gating(&sim, &mut mem, &plain(NEW)).await;
    advance(Duration::from_secs(3)).await;
    sim.clear_calls();
    let third = plain("localhost/bb:3");
    let c = gating(&sim, &mut mem, &third).await;
    // C pulled and created while B ran; B then removed, never kept.
    let calls = sim.calls();
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap();
    assert!(at("create web.next") < at("remove web"), "{calls:?}");
    assert!(!calls.contains(&"rename web web.previous".to_string()));
    assert_eq!(id_of(&sim, "web.previous").as_deref(), Some(a.as_str()));
    assert!(sim.containers().iter().all(|x| x.id != b), "B is gone");
    advance(Duration::from_secs(10)).await;
    let r = mem.look(&sim, Some(&third)).await;
    assert_eq!(news(&r), "applied", "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(c));
    assert!(sim.container("web.previous").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_manifest_deleted_during_a_gate_should_remove_every_container_of_the_app() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (plain(OLD), plain(NEW));
    running_old(&sim, &mut mem, &old).await;
    gating(&sim, &mut mem, &new).await;
    sim.add_running("web.next", labels(&new));
    let r = mem.look(&sim, None).await;
    assert_eq!(r.action.as_str(), "remove", "{r:?}");
    assert!(r.result.is_ok(), "{r:?}");
    for name in ["web", "web.previous", "web.next"] {
        assert!(sim.container(name).is_none(), "{name}: {:?}", sim.calls());
    }
}

// Crash resume: every state a SIGKILL can leave, built by hand.

/// podkeeper's labels of a container of `app`.
fn labels(app: &LoadedApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.to_string(), "web".to_string()),
        (SPEC_HASH_LABEL.to_string(), app.spec_hash.clone()),
    ])
}

/// A container of `app` named `name`, created (never started).
async fn created(sim: &SimRuntime, name: &str, app: &LoadedApp) -> String {
    let req = CreateRequest {
        name: name.into(),
        spec: app.app.container.clone(),
        labels: labels(app),
        secrets: vec![],
    };
    sim.add_image(&app.app.container.image);
    sim.create_container(&req).await.unwrap()
}

/// A container of `app` named `name`, exited (stopped by podkeeper's update).
async fn stopped(sim: &SimRuntime, name: &str, app: &LoadedApp) -> String {
    let id = created(sim, name, app).await;
    sim.start_container(name).await.unwrap();
    sim.stop_by_hand(name);
    id
}

/// The sim, what a new podkeeper knows (its first sweep listed the
/// update's containers: an update under way) and both manifests.
async fn world() -> (SimRuntime, Memory, LoadedApp, LoadedApp) {
    let (sim, mut mem) = (podman(), Memory::default());
    mem.0.update_under_way = true;
    (sim, mem, plain(OLD), plain(NEW))
}

#[tokio::test(start_paused = true)]
async fn killed_after_the_create_with_the_old_running_should_start_over() {
    let (sim, mut mem, old, new) = world().await;
    let a = running_old(&sim, &mut mem, &old).await;
    let stale = created(&sim, "web.next", &new).await;
    gating(&sim, &mut mem, &new).await;
    assert!(sim.calls().contains(&"remove web.next".to_string()));
    assert!(sim.containers().iter().all(|x| x.id != stale));
    assert_eq!(id_of(&sim, "web.previous"), Some(a));
}

#[tokio::test(start_paused = true)]
async fn killed_after_the_stop_should_continue_at_the_keep() {
    let (sim, mut mem, old, new) = world().await;
    let a = stopped(&sim, "web", &old).await;
    let next = created(&sim, "web.next", &new).await;
    advance(Duration::from_secs(1)).await;
    sim.clear_calls();
    let b = gating(&sim, &mut mem, &new).await;
    assert_eq!(b, next, "the new container made before the kill");
    assert!(!sim
        .calls()
        .iter()
        .any(|c| c.starts_with("create") || c.starts_with("pull")));
    assert_eq!(id_of(&sim, "web.previous"), Some(a));
}

#[tokio::test(start_paused = true)]
async fn killed_after_the_keep_should_switch_to_the_new_container() {
    let (sim, mut mem, old, new) = world().await;
    let a = stopped(&sim, "web.previous", &old).await;
    let next = created(&sim, "web.next", &new).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "gating", "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(next));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
    assert_eq!(id_of(&sim, "web.previous"), Some(a));
}

#[tokio::test(start_paused = true)]
async fn killed_after_the_switch_before_the_start_should_start_and_gate() {
    let (sim, mut mem, old, new) = world().await;
    stopped(&sim, "web.previous", &old).await;
    let b = created(&sim, "web", &new).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!((r.action.as_str(), news(&r)), ("start", "gating"), "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(b));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
}

#[tokio::test(start_paused = true)]
async fn killed_during_the_gate_should_go_on_counting_from_the_new_start() {
    let (sim, mut mem, old, new) = world().await;
    stopped(&sim, "web.previous", &old).await;
    let b = created(&sim, "web", &new).await;
    sim.start_container("web").await.unwrap();
    advance(Duration::from_secs(8)).await;
    let r = mem.look(&sim, Some(&new)).await;
    let Some(UpdateNews::Gating { left, .. }) = r.update else {
        panic!("{r:?}")
    };
    about(left, Duration::from_secs(2));
    advance(Duration::from_secs(2)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "applied", "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(b));
    assert!(sim.container("web.previous").is_none());
}

#[tokio::test(start_paused = true)]
async fn killed_during_a_rollback_should_finish_it() {
    let (sim, mut mem, old, new) = world().await;
    let a = stopped(&sim, "web.previous", &old).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "rolled back", "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(a));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
    assert!(sim.container("web.previous").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_old_container_not_running_with_the_new_spec_failed_should_be_started() {
    let (sim, mut mem, old, new) = world().await;
    let a = stopped(&sim, "web", &old).await;
    advance(Duration::from_secs(1)).await;
    mem.0.failed_spec = Some(new.spec_hash.clone());
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(r.action.as_str(), "start", "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(a));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
    assert_eq!(spec_of(&sim, "web"), Some(old.spec_hash.clone()));
}

#[tokio::test(start_paused = true)]
async fn a_previous_removed_by_hand_should_make_a_failed_gate_failed_and_restart_with_backoff() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (plain(OLD), plain(NEW));
    running_old(&sim, &mut mem, &old).await;
    let b = gating(&sim, &mut mem, &new).await;
    sim.remove_by_hand("web.previous");
    sim.crash("web", 1);
    advance(Duration::from_millis(300)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!((r.action.as_str(), news(&r)), ("start", "failed"), "{r:?}");
    assert!(
        r.restarted_after.is_some(),
        "the crash-loop backoff applies"
    );
    assert_eq!(id_of(&sim, "web"), Some(b));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
}

#[tokio::test(start_paused = true)]
async fn a_spec_that_failed_its_gate_should_be_held_and_the_old_container_kept_running() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (plain(OLD), plain(NEW));
    let a = running_old(&sim, &mut mem, &old).await;
    gating(&sim, &mut mem, &new).await;
    sim.crash("web", 1);
    advance(Duration::from_millis(300)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(news(&r), "rolled back", "{r:?}");
    assert_eq!(mem.0.failed_spec.as_deref(), Some(new.spec_hash.as_str()));
    // Held: the old one runs, the new spec is not tried.
    sim.clear_calls();
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(r.action.as_str(), "none", "{r:?}");
    assert!(r.why.contains("held after a rollback"), "{}", r.why);
    assert!(!sim.calls().iter().any(|c| c.starts_with("create")));
    // It exits: started again, as any app, on the old spec.
    sim.crash("web", 137);
    advance(Duration::from_millis(300)).await;
    let r = mem.look(&sim, Some(&new)).await;
    assert_eq!(r.action.as_str(), "start", "{r:?}");
    assert_eq!(id_of(&sim, "web"), Some(a));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
}

#[tokio::test(start_paused = true)]
async fn a_dependent_should_wait_while_its_dependency_is_on_its_gate() {
    let (sim, mut mem) = (podman(), Memory::default());
    let (old, new) = (plain(OLD), plain(NEW));
    running_old(&sim, &mut mem, &old).await;
    gating(&sim, &mut mem, &new).await;
    let text = format!(
        "app:\n  id: api\n  depends_on:\n    - app: web\n  container:\n    image: {OLD}\n    network: none\n"
    );
    let web_text = format!("app:\n  id: web\n  container:\n    image: {NEW}\n");
    let set = sim::manifests(&[("api.yaml", text), ("web.yaml", web_text)]);
    let api = set.apps["api"].clone();
    assert_eq!(api.app.depends_on.len(), 1);
    let none = Remembered::default();
    let r = reconcile_app_among(&sim, "api", None, Some(&api), false, &none).await;
    assert_eq!(r.action.as_str(), "wait", "{r:?}");
    assert!(
        r.why.ends_with("waiting for web to pass its update's gate"),
        "{}",
        r.why
    );
    assert_eq!(r.waits_for.as_deref(), Some("web"));
    assert!(sim.container("api").is_none());
    advance(Duration::from_secs(10)).await;
    assert_eq!(news(&mem.look(&sim, Some(&new)).await), "applied");
    let r = reconcile_app_among(&sim, "api", None, Some(&api), false, &none).await;
    assert_eq!(r.action.as_str(), "create", "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_podkeeper_should_find_a_gate_by_its_sweep_and_finish_it() {
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let sim = SimRuntime::new(&[OLD], Some(events_tx));
    let (old, new) = (plain(OLD), plain(NEW));
    stopped(&sim, "web.previous", &old).await;
    let b = created(&sim, "web", &new).await;
    sim.start_container("web").await.unwrap();
    let set = sim::manifests(&[(
        "web.yaml",
        format!(
            "app:\n  id: web\n  container:\n    image: {NEW}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n"
        ),
    )]);
    let h = sim::Setup::fixed(sim.clone(), set)
        .events(events)
        .startup_sweep(Duration::from_millis(100))
        .start();
    sim::settle_until(Duration::from_secs(30), || {
        sim.container("web.previous").is_none()
    })
    .await;
    assert_eq!(id_of(&sim, "web"), Some(b));
    assert_eq!(state_of(&sim, "web"), Some(ContainerState::Running));
    let (_, out) = h.stop().await;
    assert!(out.contains("update in progress"), "{out}");
    assert!(out.contains("applied: running 10"), "{out}");
    assert!(!out.contains("duplicate"), "{out}");
}
