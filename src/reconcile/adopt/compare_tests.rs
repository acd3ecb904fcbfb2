//! The comparison against configs as podman 4.3.1 and 5.4.2 showed them for
//! one `podman run` (checked by hand on this project's stacks, 2026-12-08):
//!
//! ```text
//! podman run -d --name x --network=none -e FOO=bar -v /tmp:/data:ro,z -v pkvol:/vol
//!   --tmpfs /run:size=1m --cap-add NET_ADMIN --cap-drop CHOWN --read-only
//!   --stop-signal SIGINT --stop-timeout 20 --init --hostname hh --user 1000:1000
//!   -w /tmp --ulimit nofile=1024:2048 --pids-limit 50 --memory 64m --cpus 1.5
//!   --shm-size 32m --security-opt no-new-privileges --label a=b
//!   --add-host foo:1.2.3.4 --group-add 10 --health-cmd true localhost/bb:1 sleep 1000
//! ```

use super::*;
use crate::runtime::config::ImageConfig;

fn spec(yaml: &str) -> ContainerSpec {
    let body: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!("app:\n  id: x\n  container:\n{body}");
    crate::manifest::validate::parse_manifest(std::path::Path::new("x.yaml"), &text)
        .expect("a valid manifest")
        .container
}

const MANY: &str = r#"
  image: localhost/bb:1
  command: [sleep, "1000"]
  network: none
  env: {FOO: bar}
  volumes: ["/tmp:/data:ro,z", "pkvol:/vol"]
  tmpfs: ["/run:size=1m"]
  cap_add: [NET_ADMIN]
  cap_drop: [CHOWN]
  read_only: true
  stop_signal: SIGINT
  stop_timeout: 20s
  init: true
  hostname: hh
  user: "1000:1000"
  workdir: /tmp
  ulimits: {nofile: "1024:2048"}
  resources: {pids: 50, memory: 64M, cpus: 1.5, shm_size: 32M}
  no_new_privileges: true
  labels: {a: b}
  extra_hosts: ["foo:1.2.3.4"]
  group_add: ["10"]
  healthcheck: {command: [/bin/sh, -c, "true"]}
"#;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn image() -> ImageConfig {
    ImageConfig {
        env: [("PATH".into(), "/bin".into())].into(),
        command: strings(&["/bin/sh"]),
        labels: [("org.podkeeper-tests.image-rev".into(), "2".into())].into(),
        ..ImageConfig::default()
    }
}

/// podman 4.3.1's inspect of that `podman run`.
fn podman_4_3() -> ContainerConfig {
    ContainerConfig {
        id: "b943faadbcabffba21fa".into(),
        image: "localhost/bb:1".into(),
        command: strings(&["sleep", "1000"]),
        entrypoint: vec![],
        env: crate::runtime::config::env_map(&strings(&[
            "TERM=xterm",
            "container=podman",
            "FOO=bar",
            "PATH=/bin",
            "HOSTNAME=hh",
        ])),
        ports: vec![],
        mounts: vec![
            Mount {
                source: "/tmp".into(),
                dest: "/data".into(),
                read_only: true,
            },
            Mount {
                source: "pkvol".into(),
                dest: "/vol".into(),
                read_only: false,
            },
        ],
        tmpfs: [
            (
                "/run".into(),
                "size=1m,rw,rprivate,nosuid,nodev,tmpcopyup".into(),
            ),
            ("/tmp".into(), "rw,rprivate,nosuid,nodev,tmpcopyup".into()),
            (
                "/var/tmp".into(),
                "rw,rprivate,nosuid,nodev,tmpcopyup".into(),
            ),
        ]
        .into(),
        network_mode: "none".into(),
        networks: vec![],
        user: "1000:1000".into(),
        workdir: "/tmp".into(),
        hostname: "hh".into(),
        cap_add: strings(&["CAP_NET_ADMIN"]),
        cap_drop: strings(&["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_MKNOD", "CAP_NET_RAW"]),
        read_only: true,
        init: true,
        no_new_privileges: true,
        devices: vec![],
        ulimits: [
            ("nofile".into(), (1024, 2048)),
            ("nproc".into(), (4096, 4096)),
        ]
        .into(),
        memory: Some(67_108_864),
        nano_cpus: Some(1_500_000_000),
        pids_limit: Some(50),
        shm_size: Some(33_554_432),
        stop_signal: Some(2),
        stop_timeout: Some(20),
        dns: vec![],
        extra_hosts: strings(&["foo:1.2.3.4"]),
        group_add: strings(&["10"]),
        healthcheck: Some(strings(&["CMD-SHELL", "true"])),
        labels: [
            ("a".into(), "b".into()),
            ("org.podkeeper-tests.image-rev".into(), "2".into()),
        ]
        .into(),
        image_config: image(),
    }
}

/// podman 5.4.2's: `HOME`, no `TERM`, only the asked drop, its own nproc
/// rlimit, no tmpfs beyond the declared one.
fn podman_5_4() -> ContainerConfig {
    let mut c = podman_4_3();
    c.env.remove("TERM");
    c.env.insert("HOME".into(), "/tmp".into());
    c.cap_drop = strings(&["CAP_CHOWN"]);
    c.ulimits.insert("nproc".into(), (1024, 1024));
    c.tmpfs.retain(|k, _| k == "/run");
    c
}

#[test]
fn a_plain_podman_run_with_the_manifests_options_should_match_on_4_3_and_5_4() {
    let s = spec(MANY);
    assert_eq!(differences(&s, &podman_4_3()), vec![]);
    assert_eq!(differences(&s, &podman_5_4()), vec![]);
}

#[test]
fn each_difference_should_be_one_line_naming_the_field() {
    let s = spec(MANY);
    let mut c = podman_5_4();
    c.command = strings(&["sleep", "2000"]);
    c.env.insert("FOO".into(), "baz".into());
    let lines: Vec<String> = differences(&s, &c).iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        [
            r#"command: manifest ["sleep", "1000"], container ["sleep", "2000"]"#,
            r#"env FOO: manifest "bar", container "baz""#,
        ]
    );
}

#[test]
fn what_the_manifest_leaves_out_should_be_podmans_and_the_images_defaults() {
    let s = spec("  image: localhost/bb:1\n");
    let c = ContainerConfig {
        id: "e1d004899b6f0000".into(),
        image: "localhost/bb:1".into(),
        command: strings(&["/bin/sh"]),
        env: crate::runtime::config::env_map(&strings(&[
            "PATH=/bin",
            "TERM=xterm",
            "container=podman",
            "HOME=/root",
            "HOSTNAME=e1d004899b6f",
        ])),
        network_mode: "bridge".into(),
        networks: strings(&["podman"]),
        workdir: "/".into(),
        hostname: "e1d004899b6f".into(),
        cap_drop: strings(&["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW"]),
        pids_limit: Some(2048),
        shm_size: Some(65_536_000),
        stop_signal: Some(15),
        stop_timeout: Some(10),
        labels: image().labels,
        image_config: image(),
        ..ContainerConfig::default()
    };
    assert_eq!(differences(&s, &c), vec![]);
    // What a manifest without them cannot have made.
    let mut other = c.clone();
    other.command = strings(&["sleep", "1000"]);
    other.env.insert("EXTRA".into(), "1".into());
    other.network_mode = "host".into();
    other.tmpfs.insert("/cache".into(), "rw".into());
    other.stop_timeout = Some(30);
    let fields: Vec<String> = differences(&s, &other)
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(
        fields,
        [
            "command",
            "env EXTRA",
            "tmpfs /cache",
            "network",
            "stop_timeout"
        ]
    );
}

#[test]
fn the_simulations_foreign_container_should_match_its_own_spec_only() {
    use crate::runtime::sim_podman::{as_podman_shows, EventSet, SimContainer};
    let s = spec(MANY);
    let c = SimContainer {
        id: "0123456789abcdef".into(),
        name: "x".into(),
        image: s.image.clone(),
        state: crate::runtime::ContainerState::Running,
        labels: s.labels.clone(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        stopped_by_user: None,
    };
    for set in [EventSet::V4, EventSet::V5] {
        assert_eq!(differences(&s, &as_podman_shows(&c, &s, set)), vec![]);
    }
    let bare = spec("  image: localhost/bb:1\n");
    assert_eq!(
        differences(&bare, &as_podman_shows(&c, &bare, EventSet::V4)),
        vec![]
    );
    assert!(!differences(&bare, &as_podman_shows(&c, &s, EventSet::V4)).is_empty());
}
