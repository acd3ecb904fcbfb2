//! One container to export as its own pod, whatever declared it: an app's manifest or a companion's Quadlet unit.

use std::collections::BTreeMap;

use crate::manifest::{
    parse_port, parse_volume, App, Condition, DesiredState, HealthCheck, PortMapping, VolumeMount,
};

use super::notes::Notes;
use super::options::Options;

/// The label that selects a companion's pods, as `io.podkeeper.app` does an app's.
pub const COMPANION_LABEL: &str = "io.podkeeper.companion";
/// Kubernetes' recommended label for "belongs to that application".
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// Everything the Kubernetes side needs to know about one container. The
/// app and Quadlet readers fill it; [`super::kube`] maps it, field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    /// `app/web`, `companion/web-tunnel`: whom the notes are about.
    pub subject: String,
    /// The Pod's (or Deployment's) name and its container's.
    pub name: String,
    /// The label that marks and selects this workload's pods (always exported).
    pub identity: (String, String),
    /// The user's labels, not yet checked against Kubernetes' rules.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub image: String,
    /// Replaces the image's ENTRYPOINT (a manifest's `entrypoint`, Quadlet's `Entrypoint=`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD (a manifest's `command`, Quadlet's `Exec=`).
    pub args: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    /// podman's network mode, as written.
    pub network: Option<String>,
    pub ports: Vec<PortMapping>,
    /// Bind mounts (absolute source) and named volumes.
    pub volumes: Vec<VolumeMount>,
    /// `#` lines written above the workload's documents.
    pub comments: Vec<String>,
    /// The manifest's healthcheck: a liveness probe.
    pub healthcheck: Option<HealthCheck>,
    /// Declared `state: stopped`: a Deployment of zero replicas.
    pub stopped: bool,
    /// Issue 22's options (user, capabilities, limits, secrets, …) and the
    /// restart policy; a companion's are the defaults.
    pub options: Options,
}

/// The annotation that carries an app's `depends_on` (`db (healthy), cache`):
/// Kubernetes has no start order between pods, so it is kept for people and tools.
pub const DEPENDS_ON_ANNOTATION: &str = "io.podkeeper.depends-on";
/// The annotation that carries `state: stopped`.
pub const STATE_ANNOTATION: &str = "io.podkeeper.state";

/// An app's container, as its manifest declares it.
pub fn from_app(app: &App, file: &std::path::Path, notes: &mut Notes) -> Workload {
    let subject = format!("app/{}", app.id);
    let c = &app.container;
    let mut w = Workload {
        subject: subject.clone(),
        name: app.id.clone(),
        identity: (crate::APP_LABEL.to_string(), app.id.clone()),
        labels: c.labels.clone(),
        image: c.image.clone(),
        entrypoint: c.entrypoint.clone(),
        args: c.command.clone(),
        env: c.env.clone(),
        working_dir: c.workdir.clone(),
        network: c.network.clone(),
        healthcheck: c.healthcheck.clone(),
        stopped: app.state == DesiredState::Stopped,
        options: Options::from_spec(c, app.restart),
        ..Workload::default()
    };
    let what = match (&app.name, &app.version) {
        (Some(n), Some(v)) => format!(" ({n} {v})"),
        (Some(n), None) => format!(" ({n})"),
        (None, Some(v)) => format!(" ({v})"),
        (None, None) => String::new(),
    };
    w.comments
        .push(format!("app {}{what}, from {}", app.id, file.display()));
    if let Some(name) = &app.name {
        w.annotations
            .insert("io.podkeeper.name".into(), name.clone());
    }
    if let Some(version) = &app.version {
        w.annotations
            .insert("io.podkeeper.version".into(), version.clone());
    }
    if !app.depends_on.is_empty() {
        let deps: Vec<String> = app
            .depends_on
            .iter()
            .map(|d| match d.condition {
                Condition::Running => d.app.clone(),
                Condition::Healthy => format!("{} (healthy)", d.app),
                Condition::Completed => format!("{} (completed)", d.app),
            })
            .collect();
        let deps = deps.join(", ");
        w.comments.push(format!(
            "depends on {deps}: a cluster starts pods independently; the app must retry them"
        ));
        w.annotations.insert(DEPENDS_ON_ANNOTATION.into(), deps);
    }
    if w.stopped {
        w.annotations
            .insert(STATE_ANNOTATION.into(), "stopped".into());
    }
    // `check` has validated both lists; a miss here would be a loader bug,
    // and is still reported rather than dropped.
    for p in &c.ports {
        match parse_port(p) {
            Some(m) => w.ports.push(m),
            None => notes.not_exported(&subject, format!("ports: {p}"), "not a port mapping"),
        }
    }
    for v in &c.volumes {
        match parse_volume(v) {
            Some(m) => w.volumes.push(m),
            None => notes.not_exported(&subject, format!("volumes: {v}"), "not a volume"),
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;
    use std::path::Path;

    #[test]
    fn an_app_should_become_one_workload_with_every_container_field() {
        let app = parse_manifest(
            Path::new("apps/web.yaml"),
            "app:\n  id: web\n  name: Web\n  version: 1.0\n  container:\n    image: localhost/bb:1\n    command: [/bin/sleep, '1']\n    env: {A: b}\n    network: none\n    ports: ['127.0.0.1:8080:80/udp']\n    volumes: ['/srv:/data:ro', 'data:/v']\n    labels: {k: v}\n",
        )
        .unwrap();
        let mut notes = Notes::default();
        let w = from_app(&app, Path::new("apps/web.yaml"), &mut notes);
        assert!(notes.list.is_empty(), "{notes}");
        assert_eq!(w.subject, "app/web");
        assert_eq!(
            w.identity,
            (crate::APP_LABEL.to_string(), "web".to_string())
        );
        assert_eq!(
            w.args.as_deref(),
            Some(&["/bin/sleep".to_string(), "1".to_string()][..])
        );
        assert_eq!(w.entrypoint, None);
        assert_eq!(w.env["A"], "b");
        assert_eq!(w.network.as_deref(), Some("none"));
        assert_eq!(w.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(w.ports[0].protocol, "udp");
        assert_eq!(w.volumes.len(), 2);
        assert_eq!(w.labels["k"], "v");
        assert_eq!(w.annotations["io.podkeeper.name"], "Web");
        assert_eq!(w.annotations["io.podkeeper.version"], "1");
        assert_eq!(w.comments, vec!["app web (Web 1), from apps/web.yaml"]);
        assert!(!w.stopped && w.healthcheck.is_none());
    }

    #[test]
    fn depends_on_and_state_should_become_annotations_and_comments() {
        let app = parse_manifest(
            Path::new("apps/web.yaml"),
            "app:\n  id: web\n  state: stopped\n  container:\n    image: x\n  depends_on:\n    - app: db\n      condition: healthy\n    - app: cache\n",
        )
        .unwrap();
        let mut notes = Notes::default();
        let w = from_app(&app, Path::new("apps/web.yaml"), &mut notes);
        assert_eq!(w.annotations[DEPENDS_ON_ANNOTATION], "db (healthy), cache");
        assert_eq!(w.annotations[STATE_ANNOTATION], "stopped");
        assert!(w.stopped);
        assert!(
            w.comments[1].starts_with("depends on db (healthy), cache: "),
            "{:?}",
            w.comments
        );
    }
}
