//! Adoption (issue 23): the app reconciler against the simulated podman, with what the reactor remembers passed in.

mod sim;

use podkeeper::manifest::ManifestSet;
use podkeeper::reconcile::adopt::DIFFERS;
use podkeeper::reconcile::app::reconcile_app_among;
use podkeeper::reconcile::updates::UpdateNews;
use podkeeper::reconcile::{Action, Adopted, Reaction, Remembered};
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::runtime::ContainerState;

/// The app as declared, and the same options with another command and env value.
fn web(command: &str, greeting: &str) -> String {
    format!(
        "app:\n  id: web\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"{command}\"]\n    network: none\n    env:\n      GREETING: {greeting}\n    stop_timeout: 20s\n    labels:\n      team: a\n",
        sim::IMAGE
    )
}

fn apps() -> ManifestSet {
    sim::manifests(&[("web.yaml", web("1000", "hello"))])
}

/// `podman run` by another orchestrator, with the options of `text`'s container.
fn foreign(podman: &SimRuntime, text: String) {
    let set = sim::manifests(&[("web.yaml", text)]);
    podman.add_foreign("web", &set.apps["web"].app.container);
}

async fn look(podman: &SimRuntime, apps: &ManifestSet, remembered: &Remembered) -> Reaction {
    reconcile_app_among(
        podman,
        "web",
        Some(apps),
        apps.apps.get("web"),
        false,
        remembered,
    )
    .await
}

fn may_adopt() -> Remembered {
    Remembered {
        may_adopt: true,
        ..Remembered::default()
    }
}

/// An exit is acted on once its grace is over (a stop by hand may be under way).
async fn past_the_exit_grace() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// Calls that would change the container.
fn changes(podman: &SimRuntime) -> Vec<String> {
    podman
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("inspect"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_matching_container_should_be_adopted_without_a_restart() {
    let podman = sim::podman();
    foreign(&podman, web("1000", "hello"));
    let before = podman.container("web").unwrap();
    let apps = apps();
    let r = look(&podman, &apps, &may_adopt()).await;
    assert_eq!(r.action, Action::Adopt, "{r:?}");
    assert!(r.result.is_ok(), "{r:?}");
    let adopted = r.adopted.clone().expect("an adoption to record");
    assert_eq!(
        adopted,
        Adopted {
            container: before.id.clone(),
            spec_hash: apps.apps["web"].spec_hash.clone(),
        }
    );
    assert_eq!(changes(&podman), Vec::<String>::new());
    let after = podman.container("web").unwrap();
    assert_eq!((after.id, after.started_at), (before.id, before.started_at));
}

#[tokio::test(start_paused = true)]
async fn an_adopted_container_should_be_kept_as_podkeepers_own() {
    let podman = sim::podman();
    foreign(&podman, web("1000", "hello"));
    let apps = apps();
    let adopted = look(&podman, &apps, &may_adopt()).await.adopted;
    // What the reactor remembers from then on (and across restarts).
    let remembered = Remembered {
        adopted,
        ..Remembered::default()
    };
    let r = look(&podman, &apps, &remembered).await;
    assert_eq!(
        (r.action, r.why.as_str()),
        (Action::None, "running as declared")
    );
    assert!(r.adopted.is_none());
    // It exits: podkeeper starts it again, the same container.
    podman.crash("web", 137);
    past_the_exit_grace().await;
    let r = look(&podman, &apps, &remembered).await;
    assert_eq!(r.action, Action::Start, "{r:?}");
    assert_eq!(
        podman.container("web").unwrap().state,
        ContainerState::Running
    );
    assert_eq!(changes(&podman), ["start web"]);
}

#[tokio::test(start_paused = true)]
async fn an_exited_matching_container_should_be_adopted_and_started() {
    let podman = sim::podman();
    foreign(&podman, web("1000", "hello"));
    podman.crash("web", 1);
    past_the_exit_grace().await;
    let r = look(&podman, &apps(), &may_adopt()).await;
    assert_eq!(r.action, Action::Start, "{r:?}");
    assert!(r.adopted.is_some());
    assert_eq!(changes(&podman), ["start web"]);
}

#[tokio::test(start_paused = true)]
async fn a_differing_container_should_be_replaced_through_the_gate_and_kept_until_it_passes() {
    let podman = sim::podman();
    foreign(&podman, web("2000", "bye"));
    let old = podman.container("web").unwrap();
    let r = look(&podman, &apps(), &may_adopt()).await;
    assert_eq!(r.action, Action::Recreate, "{r:?}");
    assert!(matches!(r.update, Some(UpdateNews::Gating { .. })), "{r:?}");
    assert!(
        r.why.starts_with(r#"not podkeeper's and differs from the manifest: command: manifest ["/bin/sleep", "1000"], container ["/bin/sleep", "2000"]; env GREETING: manifest "hello", container "bye"; gate: "#),
        "{}",
        r.why
    );
    let adopted = r.adopted.clone().expect("recorded, to be replaced");
    assert_eq!(
        (adopted.container.as_str(), adopted.spec_hash.as_str()),
        (old.id.as_str(), DIFFERS)
    );
    // Kept, stopped, as the previous one; the new one runs the manifest.
    let previous = podman.container("web.previous").expect("the old one kept");
    assert_eq!(previous.id, old.id);
    assert_ne!(previous.state, ContainerState::Running);
    let new = podman.container("web").unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(new.state, ContainerState::Running);
    // What the reactor remembers then: the adoption and the gate under way.
    let remembered = Remembered {
        adopted: Some(adopted),
        may_adopt: true,
        update_under_way: true,
        ..Remembered::default()
    };
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let r = look(&podman, &apps(), &remembered).await;
    assert!(
        matches!(r.update, Some(UpdateNews::Applied { .. })),
        "{r:?}"
    );
    assert!(podman.container("web.previous").is_none());
    assert_eq!(podman.container("web").unwrap().id, new.id);
}

#[tokio::test(start_paused = true)]
async fn without_adopt_or_for_another_container_nothing_should_be_adopted() {
    let podman = sim::podman();
    foreign(&podman, web("1000", "hello"));
    let apps = apps();
    // Neither `run --adopt` nor `adopt: true`: not even compared.
    let r = look(&podman, &apps, &Remembered::default()).await;
    assert_eq!(r.action, Action::Conflict);
    assert!(!podman
        .calls()
        .iter()
        .any(|c| c.starts_with("inspect config")));
    // The adopted container was replaced by hand with another of that name:
    // the record is of the old one.
    let remembered = Remembered {
        adopted: Some(Adopted {
            container: "some-other-id".into(),
            spec_hash: apps.apps["web"].spec_hash.clone(),
        }),
        ..Remembered::default()
    };
    let r = look(&podman, &apps, &remembered).await;
    assert_eq!(r.action, Action::Conflict);
    assert_eq!(changes(&podman), Vec::<String>::new());
}
