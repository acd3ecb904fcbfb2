//! The real runtime: podman's REST API over its unix socket, every call under a timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use podman_api::models::{ContainerMount, NamedVolume, Namespace, PortMapping};
use podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts, PullOpts,
};
use podman_api::Podman;

use super::{ContainerInfo, ContainerState, CreateRequest, Runtime, RuntimeError, RuntimeResult};
use crate::manifest::{parse_port, parse_volume};

/// How long each kind of call may take before it counts as failed.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// inspect, list, create, start, unpause
    pub quick: Duration,
    /// remove of a running container: podman waits out the stop timeout (10 s)
    pub stop: Duration,
    pub pull: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            quick: Duration::from_secs(15),
            stop: Duration::from_secs(30),
            pull: Duration::from_secs(300),
        }
    }
}

/// Where the podman socket is when `--socket` is not given: `$CONTAINER_HOST`
/// (`unix://…`), else the rootful socket for root, else the user's.
pub fn default_socket() -> PathBuf {
    if let Ok(host) = std::env::var("CONTAINER_HOST") {
        if let Some(path) = host.strip_prefix("unix://") {
            return PathBuf::from(path);
        }
    }
    // SAFETY-free check for root: the effective uid is what matters, and
    // /proc/self is always ours.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/run/podman/podman.sock");
    }
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run/user/1000".into());
    Path::new(&runtime_dir).join("podman/podman.sock")
}

/// See the module documentation.
#[derive(Clone)]
pub struct PodmanRuntime {
    api: Podman,
    socket: PathBuf,
    timeouts: Timeouts,
}

impl PodmanRuntime {
    pub fn new(socket: &Path, timeouts: Timeouts) -> Self {
        PodmanRuntime {
            api: Podman::unix(socket),
            socket: socket.to_path_buf(),
            timeouts,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// podman's version, to check the service answers.
    pub async fn version(&self) -> RuntimeResult<String> {
        let v = with_timeout("version", self.timeouts.quick, self.api.version()).await?;
        Ok(v.version.unwrap_or_default())
    }
}

async fn with_timeout<T>(
    call: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, podman_api::Error>>,
) -> RuntimeResult<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(RuntimeError::Timeout { call, after }),
    }
}

fn classify(e: podman_api::Error) -> RuntimeError {
    if let Some(known) = classify_by_cause(&e) {
        return known;
    }
    match e {
        podman_api::Error::Fault { code, message } if code.as_u16() == 404 => {
            RuntimeError::NotFound(message.trim().to_string())
        }
        podman_api::Error::Fault { message, .. } => {
            RuntimeError::Failed(message.trim().to_string())
        }
        e @ podman_api::Error::IO(_) => RuntimeError::Unreachable(e.to_string()),
        podman_api::Error::Error(containers_api_error) => {
            // Transport-level: could not connect, connection reset, …
            RuntimeError::Unreachable(containers_api_error.to_string())
        }
        other => {
            let text = other.to_string();
            // containers-api wraps connection errors in its own error type.
            if text.contains("connect") || text.contains("No such file") || text.contains("refused")
            {
                RuntimeError::Unreachable(text)
            } else {
                RuntimeError::Failed(text)
            }
        }
    }
}

/// podman's causes (the `cause` of its error body; the crate's message ends
/// with it) that mean the thing is missing, whatever the status code: podman
/// 4.3 answers HTTP 500 for an image it does not know (create) and for a
/// container that `podman rm` is removing right now (inspect: "… does not
/// exist in database: no such container").
const MISSING_CAUSES: &[&str] = &[
    "no such container",
    "no such image",
    "image not known",
    "no such object",
];

/// Causes that mean a create's name is taken: by a container in podman's
/// database ("container already exists"), or, while `podman rm` removes
/// one, still by its storage ("that name is already in use").
const NAME_IN_USE_CAUSES: &[&str] = &["container already exists", "that name is already in use"];

fn classify_by_cause(e: &podman_api::Error) -> Option<RuntimeError> {
    let podman_api::Error::Fault { message, .. } = e else {
        return None;
    };
    let message = message.trim();
    let is = |causes: &[&str]| causes.iter().any(|c| message.ends_with(c));
    if is(MISSING_CAUSES) {
        Some(RuntimeError::NotFound(message.to_string()))
    } else if is(NAME_IN_USE_CAUSES) {
        Some(RuntimeError::NameInUse(message.to_string()))
    } else {
        None
    }
}

fn labels_of(map: Option<std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

impl Runtime for PodmanRuntime {
    /// podman runs on this host: its events carry this host's wall clock.
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn inspect_container(&self, name: &str) -> RuntimeResult<Option<ContainerInfo>> {
        let c = self.api.containers().get(name);
        match with_timeout("inspect", self.timeouts.quick, c.inspect()).await {
            Ok(r) => {
                let zero = |d: Option<chrono::DateTime<Utc>>| d.filter(|d| d.timestamp() > 0);
                let state = r.state;
                let status = state
                    .as_ref()
                    .and_then(|s| s.status.as_deref())
                    .unwrap_or("unknown");
                Ok(Some(ContainerInfo {
                    id: r.id.unwrap_or_default(),
                    name: r.name.unwrap_or_default(),
                    state: ContainerState::parse(status),
                    labels: labels_of(r.config.and_then(|c| c.labels)),
                    started_at: zero(state.as_ref().and_then(|s| s.started_at)),
                    finished_at: zero(state.as_ref().and_then(|s| s.finished_at)),
                    exit_code: state.as_ref().and_then(|s| s.exit_code),
                }))
            }
            Err(RuntimeError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_managed(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKey(crate::APP_LABEL.to_string())])
            .build();
        let list = with_timeout(
            "list",
            self.timeouts.quick,
            self.api.containers().list(&opts),
        )
        .await?;
        let ts = |secs: Option<i64>| {
            secs.filter(|s| *s > 0)
                .and_then(|s| Utc.timestamp_opt(s, 0).single())
        };
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default(),
                state: ContainerState::parse(c.state.as_deref().unwrap_or("unknown")),
                labels: labels_of(c.labels),
                started_at: ts(c.started_at),
                finished_at: ts(c.exited_at),
                exit_code: c.exit_code,
            })
            .collect())
    }

    async fn create_container(&self, req: &CreateRequest) -> RuntimeResult<String> {
        let spec = &req.spec;
        let mut opts = ContainerCreateOpts::builder()
            .name(&req.name)
            .image(&spec.image)
            .env(spec.env.iter())
            .labels(req.labels.iter());
        if let Some(cmd) = &spec.command {
            opts = opts.command(cmd.iter());
        }
        if let Some(net) = &spec.network {
            let known = ["none", "host", "bridge", "slirp4netns", "private", "pasta"];
            let nsmode = if known.contains(&net.as_str()) {
                net.as_str()
            } else {
                "bridge"
            };
            opts = opts.net_namespace(Namespace {
                nsmode: Some(nsmode.to_string()),
                value: None,
            });
        }
        let ports: Vec<PortMapping> = spec
            .ports
            .iter()
            .filter_map(|p| parse_port(p))
            .map(|p| PortMapping {
                container_port: Some(p.container_port),
                host_ip: p.host_ip,
                host_port: Some(p.host_port),
                protocol: Some(p.protocol),
                range: None,
            })
            .collect();
        if !ports.is_empty() {
            opts = opts.portmappings(ports);
        }
        let (binds, named): (Vec<_>, Vec<_>) = spec
            .volumes
            .iter()
            .filter_map(|v| parse_volume(v))
            .partition(|v| v.is_bind());
        if !binds.is_empty() {
            opts = opts.mounts(binds.into_iter().map(|v| ContainerMount {
                destination: Some(v.dest),
                options: Some(if v.options.is_empty() {
                    vec!["rbind".into()]
                } else {
                    v.options
                }),
                source: Some(v.source),
                _type: Some("bind".into()),
                uid_mappings: None,
                gid_mappings: None,
            }));
        }
        if !named.is_empty() {
            opts = opts.volumes(named.into_iter().map(|v| NamedVolume {
                dest: Some(v.dest),
                is_anonymous: None,
                name: Some(v.source),
                options: Some(v.options),
            }));
        }
        let created = with_timeout(
            "create",
            self.timeouts.quick,
            self.api.containers().create(&opts.build()),
        )
        .await?;
        Ok(created.id)
    }

    async fn start_container(&self, name: &str) -> RuntimeResult<()> {
        let c = self.api.containers().get(name);
        with_timeout("start", self.timeouts.quick, c.start(None)).await
    }

    async fn unpause_container(&self, name: &str) -> RuntimeResult<()> {
        let c = self.api.containers().get(name);
        with_timeout("unpause", self.timeouts.quick, c.unpause()).await
    }

    async fn remove_container(&self, name: &str) -> RuntimeResult<()> {
        let c = self.api.containers().get(name);
        let opts = ContainerDeleteOpts::builder().force(true).build();
        match with_timeout("remove", self.timeouts.stop, c.delete(&opts)).await {
            Err(RuntimeError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn pull_image(&self, image: &str) -> RuntimeResult<()> {
        use futures::StreamExt;
        let opts = PullOpts::builder().reference(image).quiet(true).build();
        let images = self.api.images();
        let pull = async {
            let mut stream = images.pull(&opts);
            while let Some(report) = stream.next().await {
                // podman's own words ("reading manifest … manifest unknown").
                if let Some(err) = report?.error {
                    return Ok(Some(err));
                }
            }
            Ok(None)
        };
        match with_timeout("pull", self.timeouts.pull, pull).await? {
            Some(err) => Err(RuntimeError::Failed(err.trim().to_string())),
            None => Ok(()),
        }
    }

    async fn image_exists(&self, image: &str) -> RuntimeResult<bool> {
        let img = self.api.images().get(image);
        with_timeout("exists", self.timeouts.quick, img.exists()).await
    }
}

#[cfg(test)]
mod cause_tests {
    use super::*;

    fn fault(code: u16, message: &str) -> podman_api::Error {
        podman_api::Error::Fault {
            code: hyper::StatusCode::from_u16(code).unwrap(),
            message: message.into(),
        }
    }

    #[test]
    fn podman_4_3s_500s_for_missing_things_should_be_not_found() {
        // As podman 4.3.1 answers (the crate joins message and cause with ": ").
        let image = fault(500, "127.0.0.1:5000/x:1: image not known: image not known");
        assert!(matches!(classify(image), RuntimeError::NotFound(_)));
        let removing = fault(
            500,
            "container 0c0f… does not exist in database: no such container: no such container",
        );
        assert!(matches!(classify(removing), RuntimeError::NotFound(_)));
        let other = fault(500, "crun: something broke: OCI runtime error");
        assert!(matches!(classify(other), RuntimeError::Failed(_)));
    }

    #[test]
    fn a_name_still_taken_should_be_name_in_use() {
        let storage = fault(500, "creating container storage: the container name \"a\" is already in use by 5076…. You have to remove that container to be able to reuse that name: that name is already in use: that name is already in use");
        assert!(matches!(classify(storage), RuntimeError::NameInUse(_)));
        let db = fault(
            500,
            "name \"a\" is in use: container already exists: container already exists",
        );
        assert!(matches!(classify(db), RuntimeError::NameInUse(_)));
    }
}
