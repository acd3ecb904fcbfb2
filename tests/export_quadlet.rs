//! `podkeeper export quadlet` as a process: every issue 22 field as its Quadlet key (or `PodmanArgs=` where Quadlet 4.7 has none), read back by the host's real Quadlet generator, and no secret's content anywhere.

mod common;

use std::process::{Command, Output};

/// The host's Quadlet (5.4.2 from Debian 13, installed by scripts/setup-host:
/// Debian 12's podman 4.3 ships none; Quadlet first shipped with podman 4.4).
const QUADLET: &str = "/usr/libexec/podman/quadlet";
const SECRET_VALUE: &str = "pk-quadlet-secret-51b0e7aa";

fn podkeeper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(args)
        .output()
        .expect("run podkeeper")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `[Section]` and `Key=value` lines of a unit, in order.
fn keys(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for l in unit.lines() {
        if let Some(s) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            if !l.starts_with('#') {
                out.push((section.clone(), k.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_issue_22_field_should_become_a_key_quadlet_accepts_and_no_secret_should_show() {
    let work = tempfile::tempdir().unwrap();
    let (apps, secrets, units) = (
        work.path().join("apps"),
        work.path().join("secrets"),
        work.path().join("units"),
    );
    for d in [&apps, &secrets, &units] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(secrets.join("db-pass"), SECRET_VALUE).unwrap();
    let s = secrets.display();
    std::fs::write(apps.join("full.yaml"), format!("app:\n  id: full\n  restart: on-failure\n  depends_on:\n    - app: once\n      condition: completed\n  container:\n    image: localhost/bb:1\n    entrypoint: [/bin/sh, -c]\n    command: ['echo $HOME 50% done']\n    workdir: /data\n    user: '1000:1001'\n    group_add: ['10', dialout]\n    init: true\n    hostname: fullhost\n    dns: [9.9.9.9]\n    extra_hosts: ['db.lan:10.1.2.3']\n    devices: [/dev/fuse]\n    cap_add: [NET_BIND_SERVICE]\n    cap_drop: [ALL]\n    read_only: true\n    tmpfs: [/tmp, '/run:size=64m,mode=1777']\n    no_new_privileges: true\n    resources: {{memory: 512M, cpus: 1.5, pids: 256, shm_size: 64M}}\n    ulimits: {{nofile: '1024:4096'}}\n    stop_signal: SIGINT\n    stop_timeout: 2m\n    network: mynet\n    secrets:\n      - {{file: {s}/db-pass, env: DB_PASSWORD}}\n      - {{file: {s}/db-pass, target: /run/secrets/db.pass}}\n")).unwrap();
    std::fs::write(
        apps.join("once.yaml"),
        "app:\n  id: once\n  restart: never\n  state: stopped\n  container:\n    image: localhost/bb:1\n    user: postgres\n    network: app:full\n",
    )
    .unwrap();

    let out = podkeeper(&[
        "export",
        "quadlet",
        "--apps",
        apps.to_str().unwrap(),
        "--out",
        units.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.ends_with(&format!(
            "exported 2 apps: 2 unit files to {}; 0 not exported, 2 changed\n",
            units.display()
        )),
        "{err}"
    );
    let full = std::fs::read_to_string(units.join("full.container")).unwrap();
    let once = std::fs::read_to_string(units.join("once.container")).unwrap();
    for t in [&full, &once, &err] {
        assert!(!t.contains(SECRET_VALUE), "{t}");
    }
    let k = |sec: &str, key: &str, unit: &str| -> Vec<String> {
        keys(unit)
            .into_iter()
            .filter(|(s, k, _)| s == sec && k == key)
            .map(|(_, _, v)| v)
            .collect()
    };
    let c = |key: &str| k("Container", key, &full);
    assert_eq!(c("Image"), ["localhost/bb:1"]);
    assert_eq!(c("ContainerName"), ["full"]);
    assert_eq!(c("Exec"), ["\"echo $$HOME 50%% done\""]);
    assert_eq!(c("WorkingDir"), ["/data"]);
    assert_eq!(
        (c("User"), c("Group")),
        (vec!["1000".to_string()], vec!["1001".to_string()])
    );
    assert_eq!(c("RunInit"), ["true"]);
    assert_eq!(c("HostName"), ["fullhost"]);
    assert_eq!(c("DNS"), ["9.9.9.9"]);
    assert_eq!(c("AddDevice"), ["/dev/fuse"]);
    assert_eq!(c("AddCapability"), ["NET_BIND_SERVICE"]);
    assert_eq!(c("DropCapability"), ["ALL"]);
    assert_eq!(c("ReadOnly"), ["true"]);
    assert_eq!(c("Tmpfs"), ["/tmp", "/run:size=64m,mode=1777"]);
    assert_eq!(c("NoNewPrivileges"), ["true"]);
    assert_eq!(c("PidsLimit"), ["256"]);
    assert_eq!(c("ShmSize"), ["64M"]);
    assert_eq!(c("Ulimit"), ["nofile=1024:4096"]);
    assert_eq!(c("Network"), ["mynet"]);
    assert_eq!(
        c("Secret"),
        [
            "full-db-pass,type=env,target=DB_PASSWORD",
            "full-db-pass,type=mount,target=/run/secrets/db.pass"
        ]
    );
    // Keys newer than Quadlet 4.7 are podman options.
    assert_eq!(
        c("PodmanArgs"),
        [
            "\"--entrypoint=[\\\"/bin/sh\\\",\\\"-c\\\"]\"",
            "--group-add=10",
            "--group-add=dialout",
            "--add-host=db.lan:10.1.2.3",
            "--memory=512M",
            "--cpus=1.5",
            "--stop-timeout=120",
            "--stop-signal=SIGINT",
        ]
    );
    for key in [
        "Entrypoint",
        "GroupAdd",
        "AddHost",
        "Memory",
        "StopTimeout",
        "StopSignal",
    ] {
        assert!(c(key).is_empty(), "{key}= is newer than Quadlet 4.7");
    }
    let svc = |key: &str, unit: &str| k("Service", key, unit);
    assert_eq!(svc("Restart", &full), ["on-failure"]);
    assert_eq!(svc("Type", &full), ["oneshot"]);
    assert_eq!(svc("TimeoutStopSec", &full), ["150"]);
    assert_eq!(svc("Restart", &once), ["no"]);
    assert_eq!(k("Unit", "Requires", &full), ["once.service"]);
    assert_eq!(k("Unit", "After", &once), ["full.service"]);
    assert_eq!(k("Container", "Network", &once), ["container:full"]);
    assert_eq!(k("Container", "User", &once), ["postgres"]);
    assert_eq!(k("Install", "WantedBy", &full), ["default.target"]);
    assert!(
        !once.contains("[Install]"),
        "state: stopped: not started at boot"
    );
    assert_eq!(
        err.matches(&format!("`podman secret create full-db-pass {s}/db-pass`"))
            .count(),
        1,
        "{err}"
    );

    // The host's real Quadlet generator accepts every key and hands each
    // value to podman unchanged.
    let gen = Command::new(QUADLET)
        .args(["-dryrun", "-no-kmsg-log"])
        .env("QUADLET_UNIT_DIRS", &units)
        .output()
        .expect("run the host's Quadlet (scripts/setup-host installs it)");
    let (generated, gen_err) = (text(&gen.stdout), text(&gen.stderr));
    assert!(gen.status.success(), "{gen_err}");
    assert!(
        !gen_err.contains("unsupported") && !gen_err.contains("rror"),
        "{gen_err}"
    );
    let exec_start = |unit: &str| -> String {
        let body = generated
            .split(&format!("---{unit}.service---"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {unit}.service in\n{generated}{gen_err}"));
        body.lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap()
            .to_string()
    };
    let start = exec_start("full");
    for flag in [
        "--name full",
        "--user 1000:1001",
        "--init",
        "--hostname fullhost",
        "--dns 9.9.9.9",
        "--device /dev/fuse",
        "--cap-drop all",
        "--cap-add net_bind_service",
        "--read-only",
        "--tmpfs /tmp",
        "--tmpfs /run:size=64m,mode=1777",
        "--security-opt=no-new-privileges",
        "--pids-limit 256",
        "--shm-size 64M",
        "--ulimit nofile=1024:4096",
        "--network mynet",
        "--workdir /data",
        "--secret full-db-pass,type=env,target=DB_PASSWORD",
        "--secret full-db-pass,type=mount,target=/run/secrets/db.pass",
        "\"--entrypoint=[\\\"/bin/sh\\\",\\\"-c\\\"]\"",
        "--group-add=10",
        "--group-add=dialout",
        "--add-host=db.lan:10.1.2.3",
        "--memory=512M",
        "--cpus=1.5",
        "--stop-timeout=120",
        "--stop-signal=SIGINT",
        "localhost/bb:1 \"echo $$HOME 50%% done\"",
    ] {
        assert!(start.contains(flag), "{flag} in {start}");
    }
    assert!(exec_start("once").contains("--network container:full"));
    assert!(!generated.contains(SECRET_VALUE));
}

/// `ExecStart=`'s words as systemd hands them to podman: quotes and
/// backslashes undone, `$$` and `%%` single again.
fn exec_words(line: &str) -> Vec<String> {
    shlex::split(line)
        .expect("ExecStart= splits")
        .into_iter()
        .map(|w| w.replace("$$", "$").replace("%%", "%"))
        .collect()
}

/// Quadlet's `podman run` as a `podman create` the test can run outside
/// systemd: without the cid file (`%t/%N.cid`), `--rm`, `--cgroups=split`
/// (a systemd unit's cgroup), `-d` and sd-notify.
fn as_create(words: &[String]) -> Vec<String> {
    assert_eq!(words[1], "run", "{words:?}");
    let mut out = vec!["create".to_string()];
    for w in &words[2..] {
        if w.starts_with("--cidfile=")
            || w.starts_with("--sdnotify")
            || ["--rm", "--cgroups=split", "-d"].contains(&w.as_str())
        {
            continue;
        }
        out.push(w.clone());
    }
    out
}

#[test]
fn an_exported_unit_should_give_podman_every_option_as_podkeeper_declares_it() {
    let _g = common::serial();
    // Created, never started: slirp4netns because podman refuses --dns and
    // --add-host with --network none.
    let work = tempfile::tempdir().unwrap();
    let (apps, secrets, units) = (
        work.path().join("apps"),
        work.path().join("secrets"),
        work.path().join("units"),
    );
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::create_dir_all(&units).unwrap();
    // The stack's podman (maybe a user) reads the secret file to create the
    // podman secret; podkeeper's export never does.
    common::user_dir(&secrets);
    let secret = secrets.join("db-pass");
    std::fs::write(&secret, SECRET_VALUE).unwrap();
    if let Some(u) = &common::stack().user {
        std::os::unix::fs::chown(&secret, Some(u.uid), Some(u.gid)).unwrap();
    }
    let s = secrets.display();
    std::fs::write(apps.join("full.yaml"), format!("app:\n  id: qexp-full\n  restart: on-failure\n  container:\n    image: localhost/bb:1\n    entrypoint: [/bin/sh, -c]\n    command: ['echo $HOME 50% done; id -u']\n    workdir: /tmp\n    user: '1000:1001'\n    group_add: ['10']\n    init: true\n    hostname: qexphost\n    dns: [9.9.9.9]\n    extra_hosts: ['db.lan:10.1.2.3']\n    cap_add: [NET_BIND_SERVICE]\n    cap_drop: [ALL]\n    read_only: true\n    tmpfs: ['/run:size=64m,mode=1777']\n    no_new_privileges: true\n    resources: {{memory: 512M, cpus: 1.5, pids: 256, shm_size: 64M}}\n    ulimits: {{nofile: '1024:4096'}}\n    stop_signal: SIGINT\n    stop_timeout: 2m\n    network: slirp4netns\n    secrets:\n      - {{file: {s}/db-pass, env: DB_PASSWORD}}\n      - {{file: {s}/db-pass, target: /run/secrets/db.pass}}\n")).unwrap();
    let out = podkeeper(&[
        "export",
        "quadlet",
        "--apps",
        apps.to_str().unwrap(),
        "--out",
        units.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let gen = Command::new(QUADLET)
        .args(["-dryrun", "-no-kmsg-log"])
        .env("QUADLET_UNIT_DIRS", &units)
        .output()
        .expect("run the host's Quadlet");
    assert!(gen.status.success(), "{}", text(&gen.stderr));
    let generated = text(&gen.stdout);
    let start = generated
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in\n{generated}"));
    let args = as_create(&exec_words(start));

    let cleanup = || {
        let _ = common::podman(&["rm", "-f", "-t", "0", "qexp-full"]);
        let _ = common::podman(&["secret", "rm", "qexp-full-db-pass"]);
    };
    cleanup();
    // As the export's note says.
    common::podman_ok(&[
        "secret",
        "create",
        "qexp-full-db-pass",
        secret.to_str().unwrap(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let created = common::podman(&args);
    let result = std::panic::catch_unwind(|| {
        assert!(
            created.status.success(),
            "podman {args:?} ({}): {}",
            common::stack().name,
            text(&created.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_str(&common::podman_ok(&["container", "inspect", "qexp-full"]))
                .unwrap();
        let c = &json[0];
        let (cfg, host) = (&c["Config"], &c["HostConfig"]);
        assert!(
            !json.to_string().contains(SECRET_VALUE),
            "no secret in inspect"
        );
        // podman 4 shows the entrypoint as one string, podman 5 as a list.
        let entrypoint: Vec<String> = match &cfg["Entrypoint"] {
            serde_json::Value::String(s) => s.split(' ').map(String::from).collect(),
            v => serde_json::from_value(v.clone()).unwrap(),
        };
        assert_eq!(entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(
            cfg["Cmd"],
            serde_json::json!(["echo $HOME 50% done; id -u"])
        );
        assert_eq!(cfg["WorkingDir"], "/tmp");
        assert_eq!(cfg["User"], "1000:1001");
        assert_eq!(cfg["Hostname"], "qexphost");
        assert_eq!(cfg["StopTimeout"], 120);
        assert!(
            ["SIGINT", "2"].contains(&cfg["StopSignal"].to_string().trim_matches('"')),
            "{}",
            cfg["StopSignal"]
        );
        assert_eq!(host["Init"], true);
        assert_eq!(host["ReadonlyRootfs"], true);
        if common::stack().user.is_some() {
            // This host's rootless podman (cgroup v1) says it ignores them.
            let err = text(&created.stderr);
            assert!(
                err.contains("Resource limits are not supported and ignored"),
                "{err}"
            );
            assert_eq!(
                (&host["Memory"], &host["NanoCpus"], &host["PidsLimit"]),
                (&0.into(), &0.into(), &0.into())
            );
        } else {
            assert_eq!(host["Memory"], 512 << 20);
            assert_eq!(host["NanoCpus"], 1_500_000_000u64);
            assert_eq!(host["PidsLimit"], 256);
        }
        assert_eq!(host["ShmSize"], 64 << 20);
        assert_eq!(host["Dns"], serde_json::json!(["9.9.9.9"]));
        assert_eq!(host["ExtraHosts"], serde_json::json!(["db.lan:10.1.2.3"]));
        assert_eq!(host["GroupAdd"], serde_json::json!(["10"]));
        let tmpfs = host["Tmpfs"]["/run"].as_str().unwrap_or_default();
        assert!(tmpfs.starts_with("size=64m,mode=1777"), "{tmpfs}");
        assert_eq!(host["Ulimits"][0]["Name"], "RLIMIT_NOFILE");
        assert_eq!(
            (
                host["Ulimits"][0]["Soft"].as_u64(),
                host["Ulimits"][0]["Hard"].as_u64()
            ),
            (Some(1024), Some(4096))
        );
        assert!(
            host["SecurityOpt"]
                .to_string()
                .contains("no-new-privileges"),
            "{}",
            host["SecurityOpt"]
        );
        // ALL dropped, one added back: the bounding set is that one.
        assert_eq!(
            c["BoundingCaps"],
            serde_json::json!(["CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(host["NetworkMode"], "slirp4netns");
    });
    cleanup();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
