//! The simulation's container configs (adoption): a container's spec as podman's inspect would show it, and containers made "by hand" from a spec, without podkeeper's labels.

use super::*;
use crate::manifest::ContainerSpec;
use crate::runtime::config::{ContainerConfig, ImageConfig, Mount};

/// The simulated image's own config (as `localhost/bb:1` has it: busybox,
/// `PATH=/bin`, `CMD /bin/sh`).
pub fn sim_image_config() -> ImageConfig {
    ImageConfig {
        env: [("PATH".to_string(), "/bin".to_string())].into(),
        command: vec!["/bin/sh".into()],
        ..ImageConfig::default()
    }
}

impl SimRuntime {
    /// A running container made as `podman run` with the options of
    /// `spec` would make it, named `name`, with none of podkeeper's labels
    /// (made by another orchestrator).
    pub fn add_foreign(&self, name: &str, spec: &ContainerSpec) {
        self.add_running(name, spec.labels.clone());
        let mut st = self.lock();
        st.images.insert(spec.image.clone());
        st.specs.insert(name.to_string(), spec.clone());
        if let Some(c) = st.containers.get_mut(name) {
            c.image = spec.image.clone();
        }
    }

    pub(super) async fn config(&self, name: &str) -> RuntimeResult<Option<ContainerConfig>> {
        self.call(format!("inspect config {name}")).await?;
        let st = self.lock();
        let Some(c) = st.containers.get(name) else {
            return Ok(None);
        };
        let spec = match st.specs.get(name) {
            Some(spec) => spec.clone(),
            // Added without a spec (`add_running`): its image, nothing else.
            None => match serde_json::from_value(serde_json::json!({ "image": c.image })) {
                Ok(spec) => spec,
                Err(_) => return Ok(None),
            },
        };
        Ok(Some(as_podman_shows(c, &spec, self.events_of)))
    }
}

/// What podman's inspect says of a container made from `spec`: podman's
/// and the image's defaults filled in as podman 4.3 (`V4`) or 5 fills them.
pub fn as_podman_shows(c: &SimContainer, spec: &ContainerSpec, set: EventSet) -> ContainerConfig {
    let image = sim_image_config();
    let hostname = spec
        .hostname
        .clone()
        .unwrap_or_else(|| c.id.get(..12).unwrap_or(&c.id).to_string());
    let mut env = image.env.clone();
    env.insert("container".into(), "podman".into());
    if set == EventSet::V4 {
        env.insert("TERM".into(), "xterm".into());
    }
    env.insert("HOSTNAME".into(), hostname.clone());
    env.extend(spec.env.clone());
    let mut labels = image.labels.clone();
    labels.extend(c.labels.clone());
    let ports = spec
        .ports
        .iter()
        .filter_map(|p| crate::manifest::parse_port(p))
        .map(|p| {
            crate::runtime::config::port_line(
                p.host_ip.as_deref().unwrap_or(""),
                &p.host_port.to_string(),
                &p.container_port.to_string(),
                &p.protocol,
            )
        })
        .collect();
    let mounts = spec
        .volumes
        .iter()
        .filter_map(|v| crate::manifest::parse_volume(v))
        .map(|v| Mount {
            read_only: v.options.iter().any(|o| o == "ro"),
            source: v.source,
            dest: v.dest,
        })
        .collect();
    let r = spec.resources.clone().unwrap_or_default();
    ContainerConfig {
        id: c.id.clone(),
        image: spec.image.clone(),
        command: spec
            .command
            .clone()
            .unwrap_or_else(|| image.command.clone()),
        entrypoint: spec.entrypoint.clone().unwrap_or_default(),
        env,
        ports,
        mounts,
        tmpfs: spec
            .parsed_tmpfs()
            .into_iter()
            .map(|t| (t.path, t.options.join(",")))
            .collect(),
        network_mode: spec.network.clone().unwrap_or_else(|| "bridge".into()),
        networks: Vec::new(),
        user: spec.user.clone().unwrap_or_default(),
        workdir: spec.workdir.clone().unwrap_or_else(|| "/".into()),
        hostname,
        cap_add: spec.cap_add_names(),
        cap_drop: spec.cap_drop_names(),
        read_only: spec.read_only,
        init: spec.init,
        no_new_privileges: spec.no_new_privileges,
        devices: Vec::new(),
        ulimits: spec
            .parsed_ulimits()
            .into_iter()
            .map(|u| (u.name.to_string(), (u.soft, u.hard)))
            .collect(),
        memory: r.memory_bytes(),
        nano_cpus: r.cpus_nano(),
        pids_limit: r.pids_limit().or(Some(2048)),
        shm_size: r.shm_size_bytes().or(Some(65_536_000)),
        stop_signal: spec.stop_signal().or(Some(15)),
        stop_timeout: Some(spec.stop_timeout().map_or(10, |t| t.as_secs())),
        dns: spec.dns.clone(),
        extra_hosts: spec.extra_hosts.clone(),
        group_add: spec.group_add.clone(),
        healthcheck: spec.healthcheck.as_ref().map(|h| {
            let mut t = vec!["CMD".to_string()];
            t.extend(h.command.iter().cloned());
            t
        }),
        labels,
        image_config: image,
    }
}
