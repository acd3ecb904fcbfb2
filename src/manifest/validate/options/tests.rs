//! Tests of the option rules: the bad-input list, each with its field path and message, and valid manifests that use every option.
use crate::manifest::{parse_manifest, App, AppsDir, ManifestError};
use std::path::Path;

fn parse(text: &str) -> Result<App, ManifestError> {
    parse_manifest(Path::new("apps/x.yaml"), text)
}

/// The manifest of app `web` with `extra` lines under `container:`.
fn web(extra: &str) -> String {
    format!("app:\n  id: web\n  container:\n    image: x\n{extra}")
}

/// `extra` under `container:` fails on `field` with a message holding `says`.
#[track_caller]
fn refused(extra: &str, field: &str, says: &str) {
    let e = parse(&web(extra)).unwrap_err();
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    assert!(e.message.contains(says), "{e}");
    assert!(e.to_string().starts_with("apps/x.yaml: "), "{e}");
    assert!(e.to_string().len() < 400, "{e}");
}

#[test]
fn every_option_should_parse_when_valid() {
    let host_cpus = std::thread::available_parallelism().unwrap().get();
    let app = parse(&web(&format!(
        "    entrypoint: [/bin/sh, -c]\n    workdir: /data\n    user: \"1000:1000\"\n    group_add: [dialout, \"27\"]\n    init: true\n    hostname: web.lan\n    dns: [9.9.9.9, \"2620:fe::fe\"]\n    extra_hosts: [\"db.lan:10.1.2.3\", \"gw:host-gateway\"]\n    network: pasta\n    devices: [/dev/null, \"/dev/zero:/dev/z:r\"]\n    cap_add: [NET_BIND_SERVICE, cap_chown]\n    cap_drop: [ALL]\n    read_only: true\n    tmpfs: [/tmp, \"/run:size=64m,mode=1777\"]\n    no_new_privileges: true\n    resources: {{memory: 512M, cpus: {host_cpus}, pids: 256, shm_size: 64M}}\n    ulimits: {{nofile: \"1024:4096\", core: 0, nproc: -1}}\n    volumes: [\"/srv/db:/var/lib/db:ro,Z\", \"cache:/cache:U\"]\n    stop_signal: SIGINT\n    stop_timeout: 2m\n    secrets:\n      - {{file: /etc/podkeeper/secrets/db-pass, env: DB_PASSWORD}}\n      - {{file: /etc/podkeeper/secrets/tls, target: /run/secrets/tls.key}}\n"
    )))
    .unwrap();
    let c = &app.container;
    assert_eq!(c.stop_timeout(), Some(std::time::Duration::from_secs(120)));
    assert_eq!(c.stop_signal(), Some(2));
    let r = c.resources.as_ref().unwrap();
    assert_eq!(r.memory_bytes(), Some(512 << 20));
    assert_eq!(r.cpus_nano(), Some(host_cpus as u64 * 1_000_000_000));
    assert_eq!(c.parsed_ulimits().len(), 3);
    assert_eq!(c.cap_add_names(), ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]);
    assert_eq!(c.parsed_devices()[1].container, "/dev/z");
}

#[test]
fn an_unknown_capability_should_be_refused() {
    refused(
        "    cap_add: [NET_BIND_SERVICE, CAP_FLY]\n",
        "app.container.cap_add[1]",
        "\"CAP_FLY\" is not a Linux capability (allowed: ALL or a name such as NET_BIND_SERVICE",
    );
    refused(
        "    cap_drop: [\"\"]\n",
        "app.container.cap_drop[0]",
        "not a Linux capability",
    );
}

#[test]
fn a_missing_or_regular_file_device_should_be_refused() {
    refused("    devices: [/dev/podkeeper-nope]\n", "app.container.devices[0]", "\"/dev/podkeeper-nope\" does not exist on this host (allowed: an existing char or block device)");
    // A regular file under /dev: /dev/shm is a tmpfs anyone may write.
    let file = tempfile::NamedTempFile::new_in("/dev/shm").unwrap();
    let path = file.path().display().to_string();
    refused(
        &format!("    devices: [/dev/null, \"{path}\"]\n"),
        "app.container.devices[1]",
        "is not a device on this host",
    );
    refused(
        "    devices: [/etc/passwd]\n",
        "app.container.devices[0]",
        "is not a device (allowed: /dev/HOST[:/dev/CONTAINER][:PERMISSIONS]",
    );
}

#[test]
fn cpus_of_zero_or_more_than_the_host_has_should_be_refused() {
    let host = std::thread::available_parallelism().unwrap().get();
    let rule = format!("(allowed: from 0.01 to this host's {host} CPUs, e.g. 1.5)");
    refused(
        "    resources: {cpus: 0}\n",
        "app.container.resources.cpus",
        &format!("\"0\" is not a CPU count {rule}"),
    );
    refused(
        &format!("    resources: {{cpus: {}}}\n", host + 1),
        "app.container.resources.cpus",
        &format!("is more than this host has {rule}"),
    );
    refused(
        "    resources: {cpus: lots}\n",
        "app.container.resources.cpus",
        "not a CPU count",
    );
}

#[test]
fn a_malformed_or_too_small_memory_should_be_refused() {
    refused("    resources: {memory: 512Q}\n", "app.container.resources.memory", "\"512Q\" is not a size (allowed: bytes, or a number with k, m, g or t, e.g. 512M, 1G, 64k)");
    refused(
        "    resources: {memory: 4M}\n",
        "app.container.resources.memory",
        "\"4M\" is below 6 MiB (podman refuses less",
    );
    refused(
        "    resources: {shm_size: 0}\n",
        "app.container.resources.shm_size",
        "not a size above zero",
    );
    refused(
        "    resources: {pids: 0}\n",
        "app.container.resources.pids",
        "(allowed: 1 to 4194304)",
    );
    refused(
        "    resources: {mem: 1G}\n",
        "app.container.resources",
        "unknown field `mem`",
    );
}

#[test]
fn a_malformed_ulimit_should_be_refused() {
    refused("    ulimits: {nofile: \"4096:1024\"}\n", "app.container.ulimits.nofile", "\"4096:1024\" has its soft limit above the hard one (allowed: N, soft:hard with soft at most hard, -1 for unlimited)");
    refused(
        "    ulimits: {nofile: many}\n",
        "app.container.ulimits.nofile",
        "is not a limit",
    );
    refused(
        "    ulimits: {files: 10}\n",
        "app.container.ulimits.files",
        "\"files\" is no limit podman knows (allowed: core, cpu,",
    );
}

#[test]
fn an_unknown_signal_should_be_refused() {
    refused("    stop_signal: SIGFOO\n", "app.container.stop_signal", "\"SIGFOO\" is not a signal (allowed: a name with or without SIG such as SIGINT, TERM, RTMIN+3, or a number from 1 to 64)");
    refused(
        "    stop_signal: 65\n",
        "app.container.stop_signal",
        "is not a signal",
    );
}

#[test]
fn a_stop_timeout_over_an_hour_should_be_refused() {
    refused(
        "    stop_timeout: 61m\n",
        "app.container.stop_timeout",
        "\"61m\" is over 1h (allowed: 0, or whole seconds up to 1h, e.g. 30s, 2m)",
    );
    refused(
        "    stop_timeout: 1.5s\n",
        "app.container.stop_timeout",
        "is not whole seconds",
    );
    refused(
        "    stop_timeout: soon\n",
        "app.container.stop_timeout",
        "is not a duration",
    );
    assert!(parse(&web("    stop_timeout: 0\n")).is_ok());
    assert!(parse(&web("    stop_timeout: 1h\n")).is_ok());
}

#[test]
fn a_user_name_with_a_newline_should_be_refused() {
    refused(
        "    user: \"post\\ngres\"\n",
        "app.container.user",
        "\"post\\ngres\" is not a user (allowed: uid, uid:gid, name or name:group;",
    );
    refused("    user: \"a b\"\n", "app.container.user", "is not a user");
    refused(
        "    group_add: [\"wheel\\n\"]\n",
        "app.container.group_add[0]",
        "is not a group",
    );
}

#[test]
fn networks_should_be_a_mode_a_name_or_another_app() {
    for ok in [
        "none",
        "host",
        "bridge",
        "slirp4netns",
        "pasta",
        "private",
        "mynet",
        "app:db",
    ] {
        assert!(
            parse(&web(&format!("    network: \"{ok}\"\n"))).is_ok(),
            "{ok}"
        );
    }
    refused(
        "    network: app:web\n",
        "app.container.network",
        "\"app:web\" is this app itself",
    );
    refused(
        "    network: app:Db\n",
        "app.container.network",
        "not a valid app id",
    );
    refused(
        "    network: container:abc\n",
        "app.container.network",
        "\"container:abc\" is podman's container: or ns: mode, not for manifests",
    );
    refused(
        "    network: ns:/proc/1/ns/net\n",
        "app.container.network",
        "allowed: app:<id>",
    );
    refused(
        "    network: \"slirp4netns:port_handler=slirp4netns\"\n",
        "app.container.network",
        "has options after ':', not supported",
    );
    refused(
        "    network: _x\n",
        "app.container.network",
        "is no network name",
    );
}

#[test]
fn the_other_options_should_say_what_is_allowed() {
    refused(
        "    entrypoint: []\n",
        "app.container.entrypoint",
        "must not be an empty list",
    );
    refused(
        "    entrypoint: [\"a\\0\"]\n",
        "app.container.entrypoint[0]",
        "NUL",
    );
    refused(
        "    workdir: data\n",
        "app.container.workdir",
        "not an absolute path",
    );
    refused(
        &format!("    hostname: {}\n", "a".repeat(65)),
        "app.container.hostname",
        "at most 64 bytes",
    );
    refused(
        "    hostname: -web\n",
        "app.container.hostname",
        "not a host name",
    );
    refused(
        "    dns: [9.9.9]\n",
        "app.container.dns[0]",
        "not an IP address",
    );
    refused(
        &format!("    dns: [{}]\n", vec!["1.1.1.1"; 17].join(", ")),
        "app.container.dns",
        "at most 16",
    );
    refused(
        "    extra_hosts: [\"db.lan=10.1.2.3\"]\n",
        "app.container.extra_hosts[0]",
        "is not host:ip",
    );
    refused(
        "    tmpfs: [\"/run:size=huge\"]\n",
        "app.container.tmpfs[0]",
        "option \"size=huge\" is not one tmpfs takes",
    );
    refused(
        "    tmpfs: [run]\n",
        "app.container.tmpfs[0]",
        "not /absolute/path",
    );
    refused(
        "    volumes: [\"/a:/b:ro,rw\"]\n",
        "app.container.volumes[0]",
        "contradict or repeat",
    );
    refused(
        "    volumes: [\"/a:/b:cached\"]\n",
        "app.container.volumes[0]",
        "option \"cached\" is not one podman takes",
    );
    refused(
        "    init: yes please\n",
        "app.container.init",
        "invalid type",
    );
}

#[test]
fn secrets_should_name_one_destination_each() {
    let s = |e: &str| format!("    secrets:\n{e}");
    refused(
        &s("      - {file: rel, env: A}\n"),
        "app.container.secrets[0].file",
        "not an absolute path",
    );
    refused(
        &s("      - {file: /s}\n"),
        "app.container.secrets[0]",
        "needs exactly one of env and target",
    );
    refused(
        &s("      - {file: /s, env: A, target: /t}\n"),
        "app.container.secrets[0]",
        "exactly one",
    );
    refused(
        &s("      - {file: /s, env: 1A}\n"),
        "app.container.secrets[0].env",
        "not a variable name",
    );
    refused(
        &s("      - {file: /s, target: t}\n"),
        "app.container.secrets[0].target",
        "not an absolute path",
    );
    refused(
        &s("      - {file: /s, env: A}\n      - {file: /t, env: A}\n"),
        "app.container.secrets[1].env",
        "\"A\" is given by two secrets",
    );
    refused(
        &s("      - {file: /s, target: /t}\n      - {file: /u, target: /t}\n"),
        "app.container.secrets[1].target",
        "given by two secrets",
    );
    refused(
        &format!("    env: {{A: b}}\n{}", s("      - {file: /s, env: A}\n")),
        "app.container.secrets[0].env",
        "also set in app.container.env",
    );
    refused(
        &s(&"      - {file: /s, target: /t}\n".repeat(65)),
        "app.container.secrets",
        "at most 64",
    );
}

#[test]
fn an_edit_to_an_invalid_option_should_leave_the_last_valid_declaration_standing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("web.yaml");
    let mut dir = AppsDir::new(tmp.path());
    std::fs::write(
        &file,
        web("    stop_timeout: 30s\n    cap_add: [NET_ADMIN]\n"),
    )
    .unwrap();
    let set = dir.read().unwrap();
    let hash = set.apps["web"].spec_hash.clone();
    for bad in [
        "    stop_timeout: 2h\n    cap_add: [NET_ADMIN]\n",
        "    stop_timeout: 30s\n    cap_add: [NET_ADMINS]\n",
        "    stop_timeout: 30s\n    devices: [/dev/podkeeper-nope]\n",
        "    stop_timeout: 30s\n    resources: {cpus: 0}\n",
    ] {
        std::fs::write(&file, web(bad)).unwrap();
        let set = dir.read().unwrap();
        assert_eq!(set.errors.len(), 1, "{bad}");
        assert_eq!(
            set.errors[0].stands.as_deref(),
            Some("web"),
            "{}",
            set.errors[0]
        );
        let app = &set.apps["web"];
        assert_eq!(app.spec_hash, hash, "{bad}");
        assert_eq!(
            app.app.container.stop_timeout(),
            Some(std::time::Duration::from_secs(30))
        );
    }
}
