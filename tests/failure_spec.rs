//! A failed reconcile's category reaches status and metrics by its type, never by the words of its message.

mod sim;

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use podkeeper::observe::{Observer, Reacted};
use podkeeper::ops::state::{Records, Shared};
use podkeeper::reconcile::app::reconcile_app;
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::runtime::{
    ContainerInfo, CreateRequest, HealthCall, HealthResult, Podman, RuntimeError, RuntimeResult,
    StopWith,
};
use tokio::time::Instant;

/// The simulated podman, except that its pulls find podman gone (the
/// socket closed between the create and the pull).
struct PullUnreachable(SimRuntime);

impl Podman for PullUnreachable {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
    fn inspect_container(
        &self,
        name: &str,
    ) -> impl Future<Output = RuntimeResult<Option<ContainerInfo>>> + Send {
        self.0.inspect_container(name)
    }
    fn list_managed(&self) -> impl Future<Output = RuntimeResult<Vec<ContainerInfo>>> + Send {
        self.0.list_managed()
    }
    fn create_container(
        &self,
        req: &CreateRequest,
    ) -> impl Future<Output = RuntimeResult<String>> + Send {
        self.0.create_container(req)
    }
    fn start_container(&self, name: &str) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.start_container(name)
    }
    fn unpause_container(&self, name: &str) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.unpause_container(name)
    }
    fn run_healthcheck(
        &self,
        name: &str,
        call: HealthCall<'_>,
    ) -> impl Future<Output = RuntimeResult<HealthResult>> + Send {
        self.0.run_healthcheck(name, call)
    }
    fn stop_container(
        &self,
        name: &str,
        with: StopWith,
    ) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.stop_container(name, with)
    }
    fn remove_container(
        &self,
        name: &str,
        with: StopWith,
    ) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.remove_container(name, with)
    }
    async fn pull_image(&self, _image: &str) -> RuntimeResult<()> {
        Err(RuntimeError::Unreachable("connection refused".into()))
    }
    fn image_exists(&self, image: &str) -> impl Future<Output = RuntimeResult<bool>> + Send {
        self.0.image_exists(image)
    }
    fn create_secret(
        &self,
        name: &str,
        value: &podkeeper::manifest::secrets::SecretValue,
    ) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.create_secret(name, value)
    }
    fn list_secrets(
        &self,
        prefix: &str,
    ) -> impl Future<Output = RuntimeResult<Vec<String>>> + Send {
        self.0.list_secrets(prefix)
    }
    fn remove_secret(&self, name: &str) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.remove_secret(name)
    }
    fn rename_container(
        &self,
        name: &str,
        new_name: &str,
    ) -> impl Future<Output = RuntimeResult<()>> + Send {
        self.0.rename_container(name, new_name)
    }
    fn logs_tail(
        &self,
        name: &str,
        max_bytes: usize,
    ) -> impl Future<Output = RuntimeResult<String>> + Send {
        self.0.logs_tail(name, max_bytes)
    }
    fn container_config(
        &self,
        name: &str,
    ) -> impl Future<Output = RuntimeResult<Option<podkeeper::runtime::config::ContainerConfig>>> + Send
    {
        self.0.container_config(name)
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_podman_should_count_as_unreachable_whatever_its_message_begins_with() {
    let image = "localhost/not-here:1";
    let text = format!("app:\n  id: web\n  container:\n    image: {image}\n");
    let set = sim::manifests(&[("web.yaml", text)]);
    let rt = PullUnreachable(SimRuntime::new(&[], None));
    // The create finds no image; the pull then cannot reach podman. The
    // message starts with the pull, not with "podman unreachable".
    let r = reconcile_app(&rt, "web", set.apps.get("web"), false).await;
    assert!(r.result.is_err(), "{r:?}");

    let shared = Shared::new();
    let mut records = Records::new(shared.clone());
    records.declared(&set);
    records.reaction(&Reacted {
        at: Instant::now(),
        reaction: &r,
        retry_in: Some(Duration::from_secs(1)),
        quiet: false,
        held_for: None,
        queued: 0,
    });
    let status = shared.status();
    let why = status.apps[0].why.clone().unwrap_or_default();
    assert!(
        why.starts_with("podman unreachable: pull localhost/not-here:1: "),
        "not an image missing: {why}"
    );
    let metrics = shared.metrics_text();
    assert!(
        metrics.contains(r#"podkeeper_reconcile_failures_total{kind="app",cause="unreachable"} 1"#),
        "{metrics}"
    );
}
