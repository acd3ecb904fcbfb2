//! Before an app is started: does every dependency meet its condition (`running`, `healthy` by podman's health status, or `completed`: exited 0 with its current spec)?

use std::time::Duration;

use super::updates::Role;
use super::{restart, CallLog};
use crate::manifest::options::NetworkMode;
use crate::manifest::{Condition, Dependency, LoadedApp, ManifestSet, Restart};
use crate::runtime::{ContainerInfo, ContainerState, Podman, RuntimeError};
use crate::SPEC_HASH_LABEL;

/// How often an app waiting for a dependency looks again by itself: a
/// safety net only. The reactor queues a waiting app the moment its
/// dependency starts (its reconcile, or podman's `start` event), passes a
/// check, or is found completed.
pub const DEPENDENCY_POLL: Duration = Duration::from_secs(10);

/// The first dependency of `app` that does not meet its condition: its id
/// and, in words, what is awaited (`db to be healthy (starting)`); `None`
/// when all do. One inspect per dependency; apps without dependencies cost
/// nothing. `apps` is the declared set, for a `completed` dependency's
/// current spec hash and policy; without it (one app reconciled alone, in
/// tests) any spec's exit 0 counts.
pub async fn unmet_dependency<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    apps: Option<&ManifestSet>,
    log: &mut CallLog,
) -> Result<Option<(String, String)>, RuntimeError> {
    // issue 22 (create): `network: app:<id>` waits for <id> to run, as a
    // `depends_on` with condition running would.
    let net_dep = network_dependency(app).map(|id| Dependency {
        app: id,
        condition: Condition::Running,
    });
    for dep in net_dep.iter().chain(&app.app.depends_on) {
        // Its update's previous container asked beside it (one round trip):
        // while it exists the dependency's new container is on its gate
        // (issue 23), and may yet be rolled back.
        let previous = Role::Previous.name(&dep.app);
        let (found, gating) = log
            .time("inspect", async {
                tokio::join!(
                    rt.inspect_container(&dep.app),
                    rt.inspect_container(&previous)
                )
            })
            .await;
        let (found, gating) = (found?, gating?.is_some());
        let unmet = |words: String| Ok(Some((dep.app.clone(), words)));
        if gating {
            return unmet(format!("{} to pass its update's gate", dep.app));
        }
        let Some(c) = found else {
            let what = match dep.condition {
                Condition::Completed => "to complete ",
                _ => "",
            };
            return unmet(format!("{} {what}(no container yet)", dep.app));
        };
        if dep.condition == Condition::Completed {
            let declared = apps.and_then(|s| s.apps.get(&dep.app));
            match incomplete(declared, &c) {
                Some(why) => return unmet(format!("{} to complete ({why})", dep.app)),
                None => continue,
            }
        }
        if c.state != ContainerState::Running {
            return unmet(format!("{} ({})", dep.app, c.state.as_str()));
        }
        if dep.condition == Condition::Healthy && c.health.as_deref() != Some("healthy") {
            let status = c.health.as_deref().unwrap_or("not checked yet");
            return unmet(format!("{} to be healthy ({status})", dep.app));
        }
    }
    Ok(None)
}

/// Why a `completed` dependency's container `c` is not (yet) done, in
/// words; `None` once it exited 0 from its current spec.
fn incomplete(declared: Option<&LoadedApp>, c: &ContainerInfo) -> Option<String> {
    if let Some(d) = declared {
        if c.label(SPEC_HASH_LABEL) != Some(d.spec_hash.as_str()) {
            return Some("its spec changed: not run yet".into());
        }
    }
    if restart::exited_zero(c) {
        return None;
    }
    let ran = matches!(c.state, ContainerState::Exited | ContainerState::Stopped);
    if !ran {
        return Some(c.state.as_str().to_string());
    }
    let code = restart::code_words(c.exit_code);
    Some(match declared.map(|d| d.app.restart) {
        Some(Restart::Never) => format!(
            "it failed with {code} and is not run again (restart: never): fix it, then change its spec or remove its container"
        ),
        _ => format!("it failed with {code}"),
    })
}

/// The app whose network namespace `app` shares (`network: app:<id>`):
/// a dependency on it running, whether `depends_on` lists it or not.
pub fn network_dependency(app: &LoadedApp) -> Option<String> {
    match app.app.container.network_mode()? {
        NetworkMode::App(id) => Some(id),
        _ => None,
    }
}

/// Whether `app` waits for another before it starts.
pub fn has_dependencies(app: &LoadedApp) -> bool {
    !app.app.depends_on.is_empty() || network_dependency(app).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::app::reconcile_app;
    use crate::runtime::sim_podman::SimRuntime;

    fn loaded(id: &str, deps: &str) -> LoadedApp {
        let text = format!("app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n{deps}");
        let app = crate::manifest::parse_manifest(std::path::Path::new("x.yaml"), &text).unwrap();
        LoadedApp {
            file: "x.yaml".into(),
            spec_hash: app.container.hash(),
            app,
            secrets: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dependent_should_wait_until_its_dependency_runs_and_again_after_it_crashed() {
        let sim = SimRuntime::new(&["localhost/bb:1"], None);
        let db = loaded("db", "");
        let web = loaded("web", "  depends_on:\n    - app: db\n");
        let r = reconcile_app(&sim, "web", Some(&web), false).await;
        assert_eq!(r.action.as_str(), "wait");
        assert_eq!(
            r.why,
            "container missing; waiting for db (no container yet)"
        );
        assert_eq!(r.requeue_after, Some(DEPENDENCY_POLL));
        assert!(sim.container("web").is_none());
        reconcile_app(&sim, "db", Some(&db), false).await;
        let r = reconcile_app(&sim, "web", Some(&web), false).await;
        assert_eq!(r.action.as_str(), "create", "{r:?}");
        // db down, web crashes: web waits for db again.
        sim.crash("db", 1);
        sim.crash("web", 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = reconcile_app(&sim, "web", Some(&web), false).await;
        assert_eq!(r.action.as_str(), "wait", "{r:?}");
        assert!(r.why.ends_with("waiting for db (exited)"), "{}", r.why);
        // A healthy condition is not met by podman's silence.
        let web = loaded(
            "web",
            "  depends_on:\n    - app: db\n      condition: healthy\n",
        );
        reconcile_app(&sim, "db", Some(&db), false).await;
        let r = reconcile_app(&sim, "web", Some(&web), false).await;
        assert!(
            r.why
                .ends_with("waiting for db to be healthy (not checked yet)"),
            "{}",
            r.why
        );
    }
}
