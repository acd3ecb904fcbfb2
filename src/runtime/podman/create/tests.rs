//! The create body's JSON shape, field by field, without podman.

use super::*;

fn req(yaml: &str) -> CreateRequest {
    let text = format!("app:\n  id: web\n  container:\n    image: localhost/bb:1\n{yaml}");
    let app = crate::manifest::parse_manifest(std::path::Path::new("web.yaml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut labels = BTreeMap::new();
    labels.insert("io.podkeeper.app".to_string(), "web".to_string());
    CreateRequest {
        name: "web".into(),
        spec: app.container,
        labels,
        secrets: Vec::new(),
    }
}

fn body_of(yaml: &str) -> Value {
    body(&req(yaml))
}

#[test]
fn a_bare_spec_should_send_only_name_image_env_and_labels() {
    let b = body_of("");
    assert_eq!(
        b,
        json!({"name": "web", "image": "localhost/bb:1", "env": {},
               "labels": {"io.podkeeper.app": "web"}})
    );
}

#[test]
fn process_fields_should_be_keyed_as_podmans_spec_generator() {
    let b = body_of(
        "    entrypoint: [/bin/sh, -c]\n    command: [echo hi]\n    workdir: /data\n    user: \"1000:1000\"\n    group_add: [dialout]\n    init: true\n    stop_signal: SIGINT\n    stop_timeout: 2m\n",
    );
    assert_eq!(b["entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(b["command"], json!(["echo hi"]));
    assert_eq!(b["work_dir"], json!("/data"));
    assert_eq!(b["user"], json!("1000:1000"));
    assert_eq!(b["groups"], json!(["dialout"]));
    assert_eq!(b["init"], json!(true));
    assert_eq!(b["stop_signal"], json!(2));
    assert_eq!(b["stop_timeout"], json!(120));
}

#[test]
fn security_fields_should_be_sent_spelt_right() {
    let b = body_of(
        "    cap_add: [NET_BIND_SERVICE]\n    cap_drop: [ALL]\n    read_only: true\n    no_new_privileges: true\n    devices: [\"/dev/fuse\", \"/dev/full:/dev/x:rw\"]\n",
    );
    assert_eq!(b["cap_add"], json!(["CAP_NET_BIND_SERVICE"]));
    assert_eq!(b["cap_drop"], json!(["ALL"]));
    assert_eq!(b["read_only_filesystem"], json!(true));
    // Not podman-api's `no_new_privilages`, which podman ignores.
    assert_eq!(b["no_new_privileges"], json!(true));
    assert!(b.get("no_new_privilages").is_none());
    assert_eq!(
        b["devices"],
        json!([{"path": "/dev/fuse"}, {"path": "/dev/full:/dev/x:rw"}])
    );
}

#[test]
fn host_names_and_dns_should_reach_hostname_dns_server_and_hostadd() {
    let b = body_of(
        "    hostname: box\n    dns: [\"9.9.9.9\"]\n    extra_hosts: [\"db.lan:10.1.2.3\"]\n",
    );
    assert_eq!(b["hostname"], json!("box"));
    assert_eq!(b["dns_server"], json!(["9.9.9.9"]));
    assert_eq!(b["hostadd"], json!(["db.lan:10.1.2.3"]));
}

#[test]
fn resources_and_ulimits_should_be_cgroup_limits_and_rlimits() {
    let b = body_of(
        "    resources: {memory: 512M, cpus: 1.5, pids: 256, shm_size: 64M}\n    ulimits: {nofile: \"1024:4096\", nproc: 64}\n",
    );
    assert_eq!(
        b["resource_limits"],
        json!({"memory": {"limit": 512u64 << 20},
               "cpu": {"quota": 150_000, "period": 100_000},
               "pids": {"limit": 256}})
    );
    assert_eq!(b["shm_size"], json!(64u64 << 20));
    assert_eq!(
        b["r_limits"],
        json!([{"type": "nofile", "soft": 1024, "hard": 4096},
               {"type": "nproc", "soft": 64, "hard": 64}])
    );

    // shm_size alone is no cgroup limit.
    let b = body_of("    resources: {shm_size: 1M}\n");
    assert!(b.get("resource_limits").is_none());
}

#[test]
fn networks_should_be_a_mode_a_named_network_joined_or_another_apps_namespace() {
    let b = body_of("    network: none\n");
    assert_eq!(b["netns"], json!({"nsmode": "none"}));
    assert!(b.get("Networks").is_none());
    // Named: never `bridge` alone (the default network) instead.
    let b = body_of("    network: mynet\n");
    assert_eq!(b["netns"], json!({"nsmode": "bridge"}));
    assert_eq!(b["Networks"], json!({"mynet": {}}));
    let b = body_of("    network: app:db\n");
    assert_eq!(b["netns"], json!({"nsmode": "container", "value": "db"}));
}

#[test]
fn volumes_and_tmpfs_should_keep_their_options_as_given() {
    let b = body_of(
        "    volumes: [\"/srv/db:/var/lib/db:ro,Z\", \"/srv/x:/x\", \"cache:/cache:U\"]\n    tmpfs: [/tmp, \"/run:size=64m,mode=1777\"]\n",
    );
    assert_eq!(
        b["mounts"],
        json!([
            {"destination": "/var/lib/db", "type": "bind", "source": "/srv/db", "options": ["ro", "Z"]},
            {"destination": "/x", "type": "bind", "source": "/srv/x", "options": ["rbind"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["size=64m", "mode=1777"]},
        ])
    );
    assert_eq!(
        b["volumes"],
        json!([{"Name": "cache", "Dest": "/cache", "Options": ["U"]}])
    );
}

#[test]
fn a_device_should_be_a_device_on_this_host() {
    assert_eq!(check_device("/dev/null"), Ok(()));
    let e = check_device("/dev/podkeeper-nope").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("device /dev/podkeeper-nope: does not exist on this host"),
        "{e}"
    );
    let e = check_device("/etc/hostname").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("device /etc/hostname: is not a device on this host"),
        "{e}"
    );
}
