//! An app's podman secrets (made by the runtime's create, before the container): which a create names, and their removal once no manifest wants them and no container uses them.
//!
//! Names are versioned by content (`podkeeper.<app>.<index>.<digest>`), so
//! a changed secret file is a new podman secret, the old one stays as long
//! as the old container may use it, and goes after the recreate (or the
//! removal of a deleted app's container). A failed removal is only logged:
//! the next create or removal of that app tries again.

use crate::manifest::secrets::podman_prefix;
use crate::manifest::LoadedApp;
use crate::reconcile::CallLog;
use crate::runtime::{ContainerInfo, CreateRequest, Podman, SecretUse};

/// The label on a container made with secrets (their count): what tells,
/// without a call, that removing or replacing it may leave podman secrets
/// behind. Apps without secrets never carry it, and never cost a call.
pub const SECRETS_LABEL: &str = "io.podkeeper.secrets";

/// Mark a create that names secrets.
pub fn label(req: &mut CreateRequest) {
    if !req.secrets.is_empty() {
        let n = req.secrets.len().to_string();
        req.labels.insert(SECRETS_LABEL.into(), n);
    }
}

fn had_secrets(c: Option<&ContainerInfo>) -> bool {
    c.is_some_and(|c| c.label(SECRETS_LABEL).is_some())
}

/// After a recreate (`old` removed, a container `created`): the versions
/// the new one does not name are stale.
pub async fn after_recreate<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    old: Option<&ContainerInfo>,
    created: &Option<String>,
    log: &mut CallLog,
) {
    if created.is_some() && (!app.secrets.is_empty() || had_secrets(old)) {
        prune(rt, &app.app.id, &uses(app), log).await;
    }
}

/// After the removal of an app's container no manifest wants: its secrets go.
pub async fn after_remove<R: Podman>(
    rt: &R,
    id: &str,
    old: Option<&ContainerInfo>,
    log: &mut CallLog,
) {
    if had_secrets(old) {
        prune(rt, id, &[], log).await;
    }
}

/// The secrets a create of this app's container references.
pub fn uses(app: &LoadedApp) -> Vec<SecretUse> {
    let declared = &app.app.container.secrets;
    app.secrets
        .0
        .iter()
        .filter_map(|s| {
            let r = declared.get(s.index)?;
            Some(SecretUse {
                name: s.podman_name(&app.app.id),
                env: r.env.clone(),
                target: r.target.clone(),
                value: s.value.clone(),
            })
        })
        .collect()
}

/// Remove the podman secrets of app `id` other than `keep`: called once
/// its container uses only `keep` (after a create), or none (after its
/// removal: `keep` empty).
async fn prune<R: Podman>(rt: &R, id: &str, keep: &[SecretUse], log: &mut CallLog) {
    let names = match log
        .time("secrets", rt.list_secrets(&podman_prefix(id)))
        .await
    {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(app = id, "listing podman secrets failed: {e}");
            return;
        }
    };
    for name in names {
        if keep.iter().any(|k| k.name == name) {
            continue;
        }
        if let Err(e) = log.time("secret rm", rt.remove_secret(&name)).await {
            tracing::warn!(
                app = id,
                secret = name,
                "removing a stale podman secret failed: {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::AppsDir;
    use crate::reconcile::app::{reconcile_app, reconcile_app_among};
    use crate::runtime::sim_podman::SimRuntime;
    use std::os::unix::fs::PermissionsExt;

    fn write_secret(path: &std::path::Path, value: &str) {
        std::fs::write(path, value).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_secret_should_recreate_and_leave_only_the_new_podman_secret() {
        let apps = tempfile::tempdir().unwrap();
        let secret = apps.path().join("pass");
        write_secret(&secret, "one");
        let text = format!(
            "app:\n  id: web\n  container:\n    image: localhost/bb:1\n    secrets:\n      - file: {}\n        target: /run/secrets/pass\n",
            secret.display()
        );
        std::fs::write(apps.path().join("web.yaml"), text).unwrap();
        let mut dir = AppsDir::new(apps.path());
        let sim = SimRuntime::new(&["localhost/bb:1"], None);
        let set = dir.read().unwrap();
        let r = reconcile_app(&sim, "web", set.apps.get("web"), false).await;
        assert!(r.result.is_ok(), "{r:?}");
        let first = sim.secrets();
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("podkeeper.web.0."), "{first:?}");
        let id = sim.container("web").unwrap().id;

        write_secret(&secret, "two");
        let set = dir.read().unwrap();
        let r = reconcile_app(&sim, "web", set.apps.get("web"), false).await;
        assert!(r.result.is_ok(), "{r:?}");
        assert_ne!(sim.container("web").unwrap().id, id, "recreated");
        // The previous container (kept for the update's gate) may be
        // started again: its version stays until the gate is passed.
        assert_eq!(sim.secrets().len(), 2);
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        let gating = crate::reconcile::Remembered {
            update_under_way: true,
            ..Default::default()
        };
        let app = set.apps.get("web");
        let r = reconcile_app_among(&sim, "web", None, app, false, &gating).await;
        assert!(r.result.is_ok(), "{r:?}");
        assert!(sim.container("web.previous").is_none(), "{r:?}");
        let second = sim.secrets();
        assert_eq!(second.len(), 1);
        assert_ne!(second, first, "the stale version is gone");

        // The manifest deleted: the container and its secrets go.
        let r = reconcile_app(&sim, "web", None, true).await;
        assert!(r.result.is_ok(), "{r:?}");
        assert!(sim.container("web").is_none());
        assert_eq!(sim.secrets(), Vec::<String>::new());
    }
}
