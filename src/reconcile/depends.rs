//! Before an app is started: does every dependency meet its condition (`running`, or `healthy` by podman's health status)?

use std::time::Duration;

use super::CallLog;
use crate::manifest::{Condition, LoadedApp};
use crate::runtime::{ContainerState, Podman, RuntimeError};

/// How often an app waiting for a dependency looks again by itself: a
/// safety net only. The reactor queues a waiting app the moment its
/// dependency starts (its reconcile, or podman's `start` event) or passes a
/// check.
pub const DEPENDENCY_POLL: Duration = Duration::from_secs(10);

/// The first dependency of `app` that does not meet its condition: its id
/// and, in words, what is awaited (`db to be healthy (starting)`); `None`
/// when all do. One inspect per dependency; apps without dependencies cost
/// nothing.
pub async fn unmet_dependency<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    log: &mut CallLog,
) -> Result<Option<(String, String)>, RuntimeError> {
    for dep in &app.app.depends_on {
        let found = log.time("inspect", rt.inspect_container(&dep.app)).await?;
        let unmet = |words: String| Ok(Some((dep.app.clone(), words)));
        let Some(c) = found else {
            return unmet(format!("{} (no container yet)", dep.app));
        };
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
