//! `podkeeper export kube` as a process: what it writes, `podman kube play` runs as podkeeper runs the same manifests (real podman), and PyYAML (YAML 1.1) and serde_yaml (1.2) read every output as exactly the objects built.

mod common;
#[path = "../src/export/pyyaml.rs"]
mod pyyaml;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use podkeeper::export::kube::{Kind, Object};
use podkeeper::manifest::{load_declared, load_dir, ManifestSet};
use podkeeper::reconcile::app::labels_for;
use podkeeper::runtime::podman::{PodmanRuntime, Timeouts};
use podkeeper::runtime::{CreateRequest, Podman};
use serde_json::Value;

use common::*;

fn podkeeper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(args)
        .output()
        .expect("run podkeeper")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_apps(dir: &Path, files: &[(&str, String)]) {
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
}

/// The name `podman kube play` gives container `ctr` of Deployment
/// `deployment`'s pod: podman 4 names the pod `<deployment>-pod-0`, podman 5
/// `<deployment>-pod`.
fn deployment_container(deployment: &str, ctr: &str) -> String {
    [
        format!("{deployment}-pod-0-{ctr}"),
        format!("{deployment}-pod-{ctr}"),
    ]
    .into_iter()
    .find(|n| podman(&["container", "exists", n]).status.success())
    .unwrap_or_else(|| panic!("no container {ctr} of Deployment {deployment}"))
}

/// `podman inspect` of one container, whole.
fn inspect_json(name: &str) -> Value {
    let out = podman_ok(&["container", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// What podman mounted: (type, bind source or volume name, destination, rw).
fn mounts(c: &Value) -> Vec<(String, String, String, bool)> {
    let mut m: Vec<_> = c["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let typ = m["Type"].as_str().unwrap().to_string();
            let source = if typ == "volume" {
                m["Name"].as_str().unwrap()
            } else {
                m["Source"].as_str().unwrap()
            };
            (
                typ,
                source.to_string(),
                m["Destination"].as_str().unwrap().to_string(),
                m["RW"].as_bool().unwrap(),
            )
        })
        .collect();
    m.sort();
    m
}

fn env_of(c: &Value) -> BTreeMap<String, String> {
    c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

const PREFIX: &str = "kexp-";

/// Removes what the round trip made, even when it fails half way.
struct Cleanup(Vec<std::path::PathBuf>);

impl Cleanup {
    fn run(&self) {
        for yaml in &self.0 {
            let _ = podman(&["kube", "down", yaml.to_str().unwrap()]);
        }
        let names = podman(&["ps", "-a", "--format", "{{.Names}}"]);
        for name in text(&names.stdout)
            .lines()
            .filter(|n| n.starts_with(PREFIX))
        {
            let _ = podman(&["rm", "-f", "-t", "0", name]);
        }
        let pods = podman(&["pod", "ps", "--format", "{{.Name}}"]);
        for pod in text(&pods.stdout).lines().filter(|n| n.starts_with(PREFIX)) {
            let _ = podman(&["pod", "rm", "-f", "-t", "0", pod]);
        }
        let _ = podman(&["volume", "rm", "-f", "kexp-data"]);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

/// Create each app the way `podkeeper run` does (same runtime, same
/// labels), not started, as `kexp-ref-<id>` (podman refuses a container
/// named like a pod): the reference the played containers must match.
fn create_as_podkeeper_does(set: &ManifestSet, ids: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let podman = PodmanRuntime::new(&socket(), Timeouts::default());
    rt.block_on(async {
        for id in ids {
            let app = &set.apps[*id];
            let req = CreateRequest {
                name: format!("kexp-ref-{id}"),
                spec: app.app.container.clone(),
                labels: labels_for(app),
                secrets: vec![],
            };
            podman
                .create_container(&req)
                .await
                .expect("create as podkeeper does");
        }
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const TRAP: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

#[test]
fn exported_apps_should_play_on_podman_as_podkeeper_runs_them() {
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let apps = work.path().join("apps");
    let conf = work.path().join("conf");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("greeting"), "hello from the host\n").unwrap();
    let port = free_port();
    write_apps(
        &apps,
        &[
            (
                "env.yaml",
                format!("app:\n  id: kexp-env\n  name: Env\n  container:\n    image: localhost/bb:1\n    command: [/bin/sh, -c, \"{TRAP}\"]\n    env: {{GREETING: hello world, MODE: prod}}\n    network: none\n    labels: {{tier: front, note: two words}}\n"),
            ),
            (
                "vol.yaml",
                format!("app:\n  id: kexp-vol\n  container:\n    image: localhost/bb:1\n    command: [/bin/sh, -c, \"cat /conf/greeting > /data/copied; {TRAP}\"]\n    network: none\n    volumes: ['{}:/conf:ro', 'kexp-data:/data']\n", conf.display()),
            ),
            (
                "port.yaml",
                format!("app:\n  id: kexp-port\n  container:\n    image: localhost/bb:1\n    command: [/bin/sh, -c, \"trap 'exit 0' TERM; mkdir -p /www; echo served > /www/index.html; httpd -f -p 8080 -h /www & wait\"]\n    network: slirp4netns\n    ports: ['127.0.0.1:{port}:8080']\n"),
            ),
        ],
    );
    let none_yaml = work.path().join("none.yaml");
    let slirp_yaml = work.path().join("slirp.yaml");
    let cleanup = Cleanup(vec![none_yaml.clone(), slirp_yaml.clone()]);
    cleanup.run();

    // Export: two apps for --network none, the one with a port for slirp4netns
    // (on this host's podman 4.3, ports need bridge or slirp4netns, and the
    // bridge's netavark is not installed).
    let apps_arg = apps.to_str().unwrap();
    let out = podkeeper(&[
        "export",
        "kube",
        "--apps",
        apps_arg,
        "--app",
        "kexp-env",
        "--app",
        "kexp-vol",
        "--out",
        none_yaml.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(out.stdout.is_empty(), "--out writes nothing to stdout");
    assert!(
        err.contains("not exported  app/kexp-env  network: none"),
        "{err}"
    );
    assert!(err.contains("`podman kube play --network none`"), "{err}");
    assert!(
        err.contains("changed       app/kexp-env  label note"),
        "{err}"
    );
    assert!(
        err.contains("exported 2 apps, 0 companions: 3 documents to "),
        "{err}"
    );
    let out = podkeeper(&[
        "export",
        "kube",
        "--apps",
        apps_arg,
        "--app",
        "kexp-port",
        "--out",
        slirp_yaml.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--network slirp4netns"));
    pyyaml::assert_both_read(
        &[
            std::fs::read_to_string(&none_yaml).unwrap(),
            std::fs::read_to_string(&slirp_yaml).unwrap(),
        ],
        &[
            built(&apps, &["kexp-env", "kexp-vol"], Kind::Pod),
            built(&apps, &["kexp-port"], Kind::Pod),
        ],
    );

    // Play.
    podman_ok(&[
        "kube",
        "play",
        "--network",
        "none",
        none_yaml.to_str().unwrap(),
    ]);
    podman_ok(&[
        "kube",
        "play",
        "--network",
        "slirp4netns",
        slirp_yaml.to_str().unwrap(),
    ]);
    let set = load_dir(&apps).unwrap();
    assert!(set.errors.is_empty());
    // podkeeper's own containers, for the reference (after the play: podman
    // 4.3 refuses to play a claim whose volume exists already).
    create_as_podkeeper_does(&set, &["kexp-env", "kexp-vol", "kexp-port"]);
    let image = inspect_json_image("localhost/bb:1");

    for (id, loaded) in &set.apps {
        let spec = &loaded.app.container;
        // podman kube play names a pod's container <pod>-<container>.
        let played = inspect_json(&format!("{id}-{id}"));
        let ours = inspect_json(&format!("kexp-ref-{id}"));
        assert_eq!(played["State"]["Status"], "running", "{id}");
        assert_eq!(played["ImageName"], spec.image.as_str(), "{id}");
        assert_eq!(played["Image"], ours["Image"], "{id}: same image id");
        // A command replaces the CMD and keeps the ENTRYPOINT, as podkeeper does.
        assert_eq!(
            strings(&played["Config"]["Cmd"]),
            *spec.command.as_ref().unwrap(),
            "{id}"
        );
        assert_eq!(played["Config"]["Cmd"], ours["Config"]["Cmd"], "{id}");
        assert_eq!(
            strings(&played["Config"]["Entrypoint"]),
            strings(&ours["Config"]["Entrypoint"]),
            "{id}: image entrypoint {}",
            image["Config"]["Entrypoint"]
        );
        let env = env_of(&played);
        for (k, v) in &spec.env {
            assert_eq!(env.get(k), Some(v), "{id}: env {k}");
        }
        // Labels: the manifest's that Kubernetes accepts, plus the app label;
        // the rest arrive as annotations.
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(played["Config"]["Labels"].clone()).unwrap();
        // The image's own labels (the test image's revision) are inherited
        // by every container made from it: not the export's.
        if let Some(own) = image["Config"]["Labels"].as_object() {
            for k in own.keys() {
                if !spec.labels.contains_key(k) {
                    labels.remove(k);
                }
            }
        }
        let mut want: BTreeMap<String, String> = spec
            .labels
            .iter()
            .filter(|(k, v)| podkeeper::export::names::label_problem(k, v).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        want.insert("io.podkeeper.app".into(), id.clone());
        assert_eq!(labels, want, "{id}");
        for (k, v) in &spec.labels {
            if podkeeper::export::names::label_problem(k, v).is_some() {
                assert_eq!(
                    played["Config"]["Annotations"][k],
                    v.as_str(),
                    "{id}: label {k} as an annotation"
                );
            }
        }
        assert_eq!(mounts(&played), mounts(&ours), "{id}: mounts");
    }

    // The details, as podman shows them.
    let vol = inspect_json("kexp-vol-kexp-vol");
    assert_eq!(
        mounts(&vol),
        vec![
            (
                "bind".to_string(),
                conf.display().to_string(),
                "/conf".to_string(),
                false
            ),
            (
                "volume".to_string(),
                "kexp-data".to_string(),
                "/data".to_string(),
                true
            ),
        ]
    );
    wait_until(
        Duration::from_secs(10),
        "the copy through both mounts",
        || {
            podman(&["exec", "kexp-vol-kexp-vol", "cat", "/data/copied"]).stdout
                == b"hello from the host\n"
        },
    );
    let env = inspect_json("kexp-env-kexp-env");
    assert_eq!(env["Config"]["Annotations"]["io.podkeeper.name"], "Env");
    assert_eq!(
        env["HostConfig"]["NetworkMode"]
            .as_str()
            .map(|m| m.starts_with("container:")),
        Some(true),
        "in its pod's namespace"
    );
    let served = inspect_json("kexp-port-kexp-port");
    assert_eq!(
        served["NetworkSettings"]["Ports"]["8080/tcp"][0],
        serde_json::json!({"HostIp": "127.0.0.1", "HostPort": port.to_string()})
    );
    let mut body = String::new();
    wait_until(
        Duration::from_secs(10),
        "the published port answers",
        || {
            body.clear();
            std::net::TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                    s.read_to_string(&mut body)
                })
                .is_ok()
                && body.contains("served")
        },
    );
    drop(cleanup);
    assert!(
        podman(&["volume", "exists", "kexp-data"]).status.code() == Some(1),
        "cleaned up"
    );
}

fn inspect_json_image(name: &str) -> Value {
    let out = podman_ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn an_exported_deployment_should_play_as_one_pod_with_the_same_container() {
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let apps = work.path().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    write_apps(
        &apps,
        &[(
            "dep.yaml",
            format!("app:\n  id: kexp-dep\n  container:\n    image: localhost/bb:1\n    command: [/bin/sh, -c, \"{TRAP}\"]\n    env: {{A: b}}\n    network: none\n    labels: {{tier: back}}\n  companions:\n    - name: kexp-dep-side\n      unit: |\n        [Container]\n        Image=localhost/bb:1\n        Exec=/bin/sh -c 'trap \"exit 0\" TERM; sleep 100000 & wait'\n        Environment=SIDE=car\n        Network=none\n"),
        )],
    );
    let yaml = work.path().join("dep.yaml");
    let cleanup = Cleanup(vec![yaml.clone()]);
    cleanup.run();
    let out = podkeeper(&[
        "export",
        "kube",
        "--apps",
        apps.to_str().unwrap(),
        "--kind",
        "deployment",
        "--out",
        yaml.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    pyyaml::assert_both_read(
        &[std::fs::read_to_string(&yaml).unwrap()],
        &[built(&apps, &[], Kind::Deployment)],
    );
    podman_ok(&["kube", "play", "--network", "none", yaml.to_str().unwrap()]);
    let app = inspect_json(&deployment_container("kexp-dep", "kexp-dep"));
    assert_eq!(app["State"]["Status"], "running");
    assert_eq!(strings(&app["Config"]["Cmd"]), vec!["/bin/sh", "-c", TRAP]);
    assert_eq!(env_of(&app)["A"], "b");
    assert_eq!(app["Config"]["Labels"]["tier"], "back");
    assert_eq!(app["Config"]["Labels"]["io.podkeeper.app"], "kexp-dep");
    let side = inspect_json(&deployment_container("kexp-dep-side", "kexp-dep-side"));
    assert_eq!(side["State"]["Status"], "running");
    assert_eq!(
        strings(&side["Config"]["Cmd"]),
        vec!["/bin/sh", "-c", "trap \"exit 0\" TERM; sleep 100000 & wait"]
    );
    assert_eq!(env_of(&side)["SIDE"], "car");
    assert_eq!(
        side["Config"]["Labels"]["io.podkeeper.companion"],
        "kexp-dep-side"
    );
    assert_eq!(
        side["Config"]["Labels"]["app.kubernetes.io/part-of"],
        "kexp-dep"
    );
    assert!(
        side["Config"]["Labels"]["io.podkeeper.app"].is_null(),
        "a companion is not an app"
    );
}

#[test]
fn an_unknown_or_invalid_app_should_exit_1_and_write_nothing() {
    let work = tempfile::tempdir().unwrap();
    write_apps(
        work.path(),
        &[
            (
                "ok.yaml",
                "app:\n  id: ok\n  container:\n    image: x\n".into(),
            ),
            (
                "typo.yaml",
                "app:\n  id: typo\n  container:\n    imag: x\n".into(),
            ),
        ],
    );
    let dir = work.path().to_str().unwrap();
    let check = podkeeper(&["check", "--apps", dir]);
    let check_error = text(&check.stdout)
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap()
        .to_string();

    let out_file = work.path().join("out.yaml");
    let out = podkeeper(&[
        "export",
        "kube",
        "--apps",
        dir,
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{check_error}\n")),
        "worded as check words it:\n{err}"
    );
    assert!(err.ends_with("nothing exported: 1 error\n"), "{err}");
    assert!(!out_file.exists());

    let out = podkeeper(&[
        "export", "kube", "--apps", dir, "--app", "ok", "--app", "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).starts_with("error  app \"nope\": no valid manifest declares it"),
        "{}",
        text(&out.stderr)
    );

    let out = podkeeper(&["export", "kube", "--apps", dir, "--app", "ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("---\n# app ok, from "),
        "{}",
        text(&out.stdout)
    );
    pyyaml::assert_both_read(
        &[text(&out.stdout)],
        &[built(work.path(), &["ok"], Kind::Pod)],
    );

    let out = podkeeper(&["export", "kube", "--apps", &format!("{dir}/missing")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read apps directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_should_end_the_export_without_a_panic() {
    let work = tempfile::tempdir().unwrap();
    // More than a pipe holds (64 KiB), so the write meets the closed end.
    for i in 0..400 {
        std::fs::write(
            work.path().join(format!("a{i}.yaml")),
            format!("app:\n  id: a{i}\n  container:\n    image: localhost/bb:1\n    command: [/bin/sleep, '1']\n    env: {{A: b}}\n"),
        )
        .unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["export", "kube", "--apps", work.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("podkeeper: stdout: Broken pipe"), "{err}");
}

/// An object of the export as JSON, to compare with what a YAML parser read.
fn object_json(o: &Object) -> Value {
    match o {
        Object::Pod(o) => serde_json::to_value(o),
        Object::Deployment(o) => serde_json::to_value(o),
        Object::Job(o) => serde_json::to_value(o),
        Object::Claim(o) => serde_json::to_value(o),
    }
    .unwrap()
}

/// The objects the export builds from `apps` (the library's own `build`), as JSON.
fn built(apps: &Path, ids: &[&str], kind: Kind) -> Vec<Value> {
    let set = load_declared(apps).unwrap();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let export = podkeeper::export::build(&set, &ids, kind);
    assert!(export.errors.is_empty(), "{:?}", export.errors);
    export
        .documents
        .iter()
        .map(|d| object_json(&d.object))
        .collect()
}

/// A manifest as JSON (which YAML reads as it is) with every non-ASCII
/// character escaped, so the manifest's own reader cannot fold a U+0085.
fn manifest_text(v: &Value) -> String {
    let mut out = String::new();
    for c in serde_json::to_string(v).unwrap().chars() {
        if c.is_ascii() && c != '\x7f' {
            out.push(c);
        } else {
            for u in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// A YAML stream of objects whose comments would end at U+0085, U+2028 or
/// U+2029, or at a line break, were they written raw.
const INJECT: &str = "---{sep}apiVersion: v1{sep}kind: PersistentVolumeClaim{sep}metadata: {name: injected}{sep}spec: {}{sep}---{sep}#";

/// Strings YAML 1.1 or 1.2 could read as something else, written bare.
const AMBIGUOUS: &[&str] = &[
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "N",
    "yEs",
    "true",
    "False",
    "~",
    "null",
    "NULL",
    "",
    "123",
    "-1",
    "+1",
    "1.5",
    ".5",
    "1e3",
    "1_000",
    "0o17",
    "017",
    "0x1F",
    "0b101",
    ".inf",
    "-.Inf",
    ".NaN",
    "1:20",
    "190:20:30",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "<<",
    "=",
    "- x",
    "? x",
    ": x",
    "#x",
    "&a",
    "*a",
    "!tag",
    "|",
    ">",
    "%x",
    "@x",
    "`x",
    "'x",
    "\"x",
    "[a]",
    "{a: b}",
    ",x",
    "a: b",
    "a #b",
    " lead",
    "trail ",
    "---",
    "...",
    "--- x",
    "a\u{2028}b",
    "a\u{2029}b",
    "a\u{85}b",
    "tab\there",
    "two\nlines",
    "\u{1b}[31m",
    "a\u{7f}b",
    "a\u{202e}b",
];

/// App ids (so pod, container and label values) YAML 1.1 reads as something else.
const AMBIGUOUS_IDS: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "false",
    "null",
    "123",
    "017",
    "0o17",
    "0x1f",
    "1e3",
    "0b101",
    "2001-12-14",
];

/// One hostile manifest directory and what the export must make of it.
struct Case {
    what: String,
    files: Vec<(String, String)>,
    /// The hostile string the objects must carry.
    holds: Option<&'static str>,
    /// Refusing it (exit 1, nothing written) is right too.
    may_refuse: bool,
}

fn hostile_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for s in AMBIGUOUS {
        let one_line = !s.contains(|c: char| c.is_control() || "\u{2028}\u{2029}".contains(c));
        let mut labels = serde_json::json!({ "k": s });
        let mut env = serde_json::json!({ "V": s });
        if !s.is_empty() {
            labels[*s] = "v".into();
            if !s.contains(|c: char| c == '=' || c.is_whitespace() || c.is_control()) {
                env[*s] = "v".into();
            }
        }
        let mut app = serde_json::json!({
            "id": "h",
            "container": {
                "image": "localhost/bb:1",
                "command": ["/bin/echo", s],
                "env": env,
                "labels": labels,
            },
        });
        if one_line {
            app["name"] = (*s).into();
            app["version"] = (*s).into();
        }
        cases.push(Case {
            what: format!("strings {s:?}"),
            files: vec![(
                "h.yaml".into(),
                manifest_text(&serde_json::json!({ "app": app })),
            )],
            holds: Some(s),
            may_refuse: false,
        });
    }
    for id in AMBIGUOUS_IDS {
        let app =
            serde_json::json!({ "app": { "id": id, "container": { "image": "localhost/bb:1" } } });
        cases.push(Case {
            what: format!("id {id:?}"),
            files: vec![("a.yaml".into(), manifest_text(&app))],
            holds: Some(id),
            may_refuse: false,
        });
    }
    let unit = "[Container]\nImage=localhost/bb:1\nExec=/bin/echo yes 0o17 1:20\nEnvironment=V=on\nLabel=k=off\n";
    let app = serde_json::json!({ "app": { "id": "on", "container": { "image": "localhost/bb:1" },
        "companions": [{ "name": "off", "unit": unit }] } });
    cases.push(Case {
        what: "a companion \"off\" of app \"on\"".into(),
        files: vec![("a.yaml".into(), manifest_text(&app))],
        holds: Some("0o17"),
        may_refuse: false,
    });
    for sep in ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}", "\u{1b}"] {
        let inject = INJECT.replace("{sep}", sep);
        let app =
            serde_json::json!({ "app": { "id": "f", "container": { "image": "localhost/bb:1" } } });
        cases.push(Case {
            what: format!("a file name with {sep:?}"),
            files: vec![(format!("x{sep}{inject}.yaml"), manifest_text(&app))],
            holds: None,
            may_refuse: false,
        });
        // Within the lengths allowed (256 and 64 bytes).
        let version =
            format!("1{sep}---{sep}{{apiVersion: v1, kind: Secret, metadata: {{name: v}}}}");
        for (field, value) in [("name", format!("x{sep}{inject}")), ("version", version)] {
            let app = serde_json::json!({ "app": { "id": "n", field: value,
                "container": { "image": "localhost/bb:1" } } });
            cases.push(Case {
                what: format!("a {field} with {sep:?}"),
                files: vec![("n.yaml".into(), manifest_text(&app))],
                holds: None,
                may_refuse: true,
            });
        }
    }
    cases
}

#[test]
fn every_string_should_read_back_the_same_string_from_pyyaml_and_serde_yaml() {
    let cases = hostile_cases();
    let mut texts = Vec::new();
    let mut expected = Vec::new();
    // (case, what went wrong)
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut exported: Vec<usize> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let work = tempfile::tempdir().unwrap();
        for (name, body) in &case.files {
            std::fs::write(work.path().join(name), body).unwrap();
        }
        let out = podkeeper(&["export", "kube", "--apps", work.path().to_str().unwrap()]);
        match out.status.code() {
            Some(0) => {}
            Some(1) if case.may_refuse && out.stdout.is_empty() => continue,
            code => {
                failed.push((i, format!("exit {code:?}: {}", text(&out.stderr))));
                continue;
            }
        }
        expected.push(built(work.path(), &[], Kind::Pod));
        texts.push(text(&out.stdout));
        exported.push(i);
    }
    // Each hostile string reached the objects (as a label or an annotation).
    for (k, &i) in exported.iter().enumerate() {
        if let Some(s) = cases[i].holds {
            let all = serde_json::to_string(&expected[k]).unwrap();
            let s = serde_json::to_string(s).unwrap();
            assert!(all.contains(&s), "{s} not exported: {all}");
        }
    }
    let kinds = |docs: &[Value]| -> Vec<String> {
        docs.iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"]
                )
            })
            .collect()
    };
    for (k, read) in pyyaml::read_pyyaml(&texts).into_iter().enumerate() {
        let i = exported[k];
        match read {
            Ok(docs) if docs == expected[k] => {}
            Ok(docs) if kinds(&docs) != kinds(&expected[k]) => failed.push((
                i,
                format!(
                    "PyYAML read {:?}, declared {:?}",
                    kinds(&docs),
                    kinds(&expected[k])
                ),
            )),
            Ok(docs) => failed.push((
                i,
                format!(
                    "PyYAML read another value (a wrong type):\n{}",
                    differences(&Value::from(expected[k].clone()), &Value::from(docs))
                ),
            )),
            Err(e) => failed.push((i, format!("PyYAML cannot read it: {e}"))),
        }
        match pyyaml::read_serde_yaml(&texts[k]) {
            Ok(docs) if docs == expected[k] => {}
            read => failed.push((i, format!("serde_yaml read {read:?}"))),
        }
    }
    let pyyaml_failed: std::collections::BTreeSet<usize> = failed
        .iter()
        .filter(|(_, f)| !f.starts_with("serde_yaml"))
        .map(|(i, _)| *i)
        .collect();
    let any_failed: std::collections::BTreeSet<usize> = failed.iter().map(|(i, _)| *i).collect();
    eprintln!(
        "export parsed by PyYAML: {} of {} hostile cases yielded an undeclared object, a wrong type or no export; by PyYAML or serde_yaml: {}",
        pyyaml_failed.len(),
        cases.len(),
        any_failed.len()
    );
    let report: Vec<String> = failed
        .iter()
        .map(|(i, f)| format!("{}: {f}", cases[*i].what))
        .collect();
    assert!(failed.is_empty(), "{}", report.join("\n"));
}

/// Where two JSON values differ, one line each.
fn differences(want: &Value, got: &Value) -> String {
    fn walk(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
        match (want, got) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in a {
                    match b.get(k) {
                        Some(w) => walk(&format!("{path}.{k}"), v, w, out),
                        None => out.push(format!("{path}.{k}: missing")),
                    }
                }
                for k in b.keys().filter(|k| !a.contains_key(*k)) {
                    out.push(format!("{path}.{k}: undeclared ({})", b[k]));
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (i, (v, w)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{path}[{i}]"), v, w, out);
                }
            }
            _ if want != got => out.push(format!("{path}: declared {want}, read {got}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", want, got, &mut out);
    out.join("\n")
}

#[test]
fn a_name_or_version_with_line_separators_should_be_refused_and_a_file_name_escaped() {
    for (field, sep, escaped) in [
        ("name", "\u{2028}", "\\u{2028}"),
        ("name", "\u{2029}", "\\u{2029}"),
        ("version", "\u{85}", "\\u{85}"),
        ("version", "\u{1b}", "\\u{1b}"),
        ("name", "\t", "\\t"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let app = serde_json::json!({ "app": { "id": "web", field: format!("a{sep}b"),
            "container": { "image": "localhost/bb:1" } } });
        std::fs::write(work.path().join("web.yaml"), manifest_text(&app)).unwrap();
        let dir = work.path().to_str().unwrap();
        let check = podkeeper(&["check", "--apps", dir]);
        assert_ne!(check.status.code(), Some(0));
        let stdout = text(&check.stdout);
        assert!(
            stdout.contains(&format!("error  {dir}/web.yaml: app.{field}: \"a{escaped}b\" has control characters or line separators (allowed: one line of text, without control characters, U+2028 or U+2029)\n")),
            "{stdout}"
        );
        let out = podkeeper(&["export", "kube", "--apps", dir]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }

    // A file name cannot be refused: it is escaped.
    let work = tempfile::tempdir().unwrap();
    let inject = INJECT.replace("{sep}", "\u{2028}");
    std::fs::write(
        work.path().join(format!("x{inject}.yaml")),
        "app:\n  id: web\n  container:\n    image: localhost/bb:1\n",
    )
    .unwrap();
    let dir = work.path().to_str().unwrap();
    let out = podkeeper(&["export", "kube", "--apps", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let comment = format!(
        "---\n# app web, from {dir}/x{}.yaml\napiVersion: v1\nkind: Pod\n",
        inject.replace('\u{2028}', "\\u{2028}")
    );
    assert!(yaml.starts_with(&comment), "{yaml}");
    pyyaml::assert_both_read(&[yaml], &[built(work.path(), &[], Kind::Pod)]);
}

/// A secret's content no export may show: unique, so a grep finds it anywhere.
const SECRET_VALUE: &str = "pk-export-secret-7d3f91c2";

/// Issue 22's fields, every one set; `{secrets}` is a directory holding
/// `db-pass` (the value above) and `tls.key` (a FIFO: opening it to read
/// would block, so an export that read a secret would hang and fail).
fn every_field(secrets: &Path) -> Vec<(&'static str, String)> {
    let s = secrets.display();
    vec![
        (
            "full.yaml",
            format!("app:\n  id: full\n  restart: on-failure\n  container:\n    image: localhost/bb:1\n    entrypoint: [/bin/sh, -c]\n    command: ['echo $HOME 50% done']\n    workdir: /data\n    user: '1000:1001'\n    group_add: ['10', dialout]\n    init: true\n    hostname: fullhost\n    dns: [9.9.9.9]\n    extra_hosts: ['db.lan:10.1.2.3', 'cache.lan:10.1.2.3', 'v6.lan:fd00::1']\n    devices: [/dev/fuse]\n    cap_add: [NET_BIND_SERVICE, cap_chown]\n    cap_drop: [ALL]\n    read_only: true\n    tmpfs: [/tmp, '/run:size=64m,mode=1777']\n    no_new_privileges: true\n    resources: {{memory: 512M, cpus: 1.5, pids: 256, shm_size: 64M}}\n    ulimits: {{nofile: '1024:4096'}}\n    stop_signal: SIGINT\n    stop_timeout: 2m\n    network: mynet\n    secrets:\n      - {{file: {s}/db-pass, env: DB_PASSWORD}}\n      - {{file: {s}/tls.key, target: /run/secrets/tls.key}}\n"),
        ),
        (
            "once.yaml",
            "app:\n  id: once\n  restart: never\n  container:\n    image: localhost/bb:1\n    user: postgres\n    network: app:full\n".to_string(),
        ),
    ]
}

/// A secrets directory as [`every_field`] wants it.
fn secrets_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("db-pass"), SECRET_VALUE).unwrap();
    let fifo = std::ffi::CString::new(dir.join("tls.key").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
}

/// podkeeper with a deadline: a hang (a secret FIFO opened) fails the test.
fn podkeeper_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("podkeeper {args:?} still running after {limit:?}: did it open a secret?");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn every_issue_22_field_should_map_to_kubernetes_or_be_noted_and_no_secret_should_show() {
    let work = tempfile::tempdir().unwrap();
    let (apps, secrets) = (work.path().join("apps"), work.path().join("secrets"));
    std::fs::create_dir_all(&apps).unwrap();
    secrets_dir(&secrets);
    write_apps(&apps, &every_field(&secrets));
    for kind in [Kind::Pod, Kind::Deployment] {
        let kind_arg = if kind == Kind::Pod {
            "pod"
        } else {
            "deployment"
        };
        let out = podkeeper_within(
            &[
                "export",
                "kube",
                "--apps",
                apps.to_str().unwrap(),
                "--kind",
                kind_arg,
            ],
            Duration::from_secs(20),
        );
        let (yaml, err) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(!yaml.contains(SECRET_VALUE) && !err.contains(SECRET_VALUE));
        let built = built(&apps, &["full", "once"], kind);
        pyyaml::assert_both_read(std::slice::from_ref(&yaml), std::slice::from_ref(&built));
        let docs: Vec<Value> = {
            use serde::Deserialize;
            serde_yaml::Deserializer::from_str(&yaml)
                .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
                .collect()
        };
        assert_eq!(docs, built, "serde_yaml reads what was built");
        let (full, once) = (&docs[0], &docs[1]);
        let want_kind = if kind == Kind::Pod { "Pod" } else { "Job" };
        assert_eq!(full["kind"], want_kind, "restart on-failure: {kind_arg}");
        assert_eq!(once["kind"], want_kind, "restart never: {kind_arg}");
        let pod = |d: &Value| -> Value {
            if kind == Kind::Pod {
                d["spec"].clone()
            } else {
                d["spec"]["template"]["spec"].clone()
            }
        };
        if kind == Kind::Deployment {
            assert_eq!(once["spec"]["backoffLimit"], 0, "never: run once");
            assert!(full["spec"].get("backoffLimit").is_none());
        }
        let (p, o) = (pod(full), pod(once));
        assert_eq!(p["restartPolicy"], "OnFailure");
        assert_eq!(o["restartPolicy"], "Never");
        let c = &p["containers"][0];
        assert_eq!(c["command"], serde_json::json!(["/bin/sh", "-c"]));
        assert_eq!(c["args"], serde_json::json!(["echo $HOME 50% done"]));
        assert_eq!(c["workingDir"], "/data");
        assert_eq!(
            c["securityContext"],
            serde_json::json!({
                "runAsUser": 1000, "runAsGroup": 1001,
                "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]},
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
            })
        );
        assert_eq!(
            c["resources"],
            serde_json::json!({"limits": {"memory": "512Mi", "cpu": "1500m"}})
        );
        assert_eq!(
            c["env"],
            serde_json::json!([{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "full-db-pass", "key": "db-pass"}}}])
        );
        assert_eq!(
            c["volumeMounts"],
            serde_json::json!([
                {"name": "shm", "mountPath": "/dev/shm"},
                {"name": "tmpfs-0", "mountPath": "/tmp"},
                {"name": "tmpfs-1", "mountPath": "/run"},
                {"name": "secret-1", "mountPath": "/run/secrets/tls.key", "subPath": "tls.key", "readOnly": true},
            ])
        );
        assert_eq!(
            p["volumes"],
            serde_json::json!([
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "tmpfs-0", "emptyDir": {"medium": "Memory"}},
                {"name": "tmpfs-1", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "secret-1", "secret": {"secretName": "full-tls.key"}},
            ])
        );
        assert_eq!(p["hostname"], "fullhost");
        assert_eq!(p["dnsPolicy"], "None");
        assert_eq!(
            p["dnsConfig"],
            serde_json::json!({"nameservers": ["9.9.9.9"]})
        );
        assert_eq!(
            p["hostAliases"],
            serde_json::json!([
                {"ip": "10.1.2.3", "hostnames": ["db.lan", "cache.lan"]},
                {"ip": "fd00::1", "hostnames": ["v6.lan"]},
            ])
        );
        assert_eq!(
            p["securityContext"],
            serde_json::json!({"supplementalGroups": [10]})
        );
        assert_eq!(p["terminationGracePeriodSeconds"], 120);
        assert!(
            o["containers"][0].get("securityContext").is_none(),
            "a user name has no uid"
        );
        // What has no equivalent is noted, each once.
        for (field, why) in [
            ("devices: /dev/fuse", "no device field"),
            ("ulimits nofile: 1024:4096", "no per-container ulimits"),
            ("resources pids: 256", "podPidsLimit"),
            ("init: true", "shareProcessNamespace"),
            ("stop_signal: SIGINT", "lifecycle.stopSignal"),
            ("group_add: dialout", "numeric gids"),
            ("tmpfs /run mode=1777", "only a size"),
            ("network: mynet", "--network mynet"),
            ("dns", "dnsPolicy: None"),
            ("user: postgres", "numeric uid"),
            ("network: app:full", "only inside one pod"),
        ] {
            assert!(
                err.lines()
                    .any(|l| l.contains(&format!("  {field}  ")) && l.contains(why)),
                "{field}: {why}\n{err}"
            );
        }
        for (name, file) in [("full-db-pass", "db-pass"), ("full-tls.key", "tls.key")] {
            let how = format!(
                "`kubectl create secret generic {name} --from-file={file}={}/{file}`",
                secrets.display()
            );
            assert_eq!(err.matches(&how).count(), 1, "{how}\n{err}");
        }
    }
}

/// `podman kube play|down -` of `yaml` on the stack's podman, through stdin
/// (podman 5 runs in its own mount namespace: a host path may not be there).
fn kube_stdin(verb: &str, extra: &[&str], yaml: &str) -> Output {
    let mut child = user_command("timeout")
        .arg("60")
        .args(&stack().podman)
        .args(["kube", verb])
        .args(extra)
        .arg("-")
        .env_remove("CONTAINER_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run podman");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn exported_options_should_play_on_podman_with_the_effects_declared() {
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let apps = work.path().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let export = |resources: &str| {
        write_apps(
            &apps,
            &[(
                "opts.yaml",
                format!("app:\n  id: kexp-opts\n  restart: on-failure\n  container:\n    image: localhost/bb:1\n    entrypoint: [/bin/sh, -c]\n    command: [\"{TRAP}\"]\n    workdir: /tmp\n    user: '1000:1001'\n    group_add: ['10']\n    hostname: kexphost\n    extra_hosts: ['db.lan:10.1.2.3']\n    cap_add: [NET_BIND_SERVICE]\n    cap_drop: [ALL]\n    read_only: true\n    tmpfs: ['/scratch:size=16m']\n    no_new_privileges: true\n    stop_timeout: 2m\n{resources}"),
            )],
        );
        let out = podkeeper(&["export", "kube", "--apps", apps.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let limits = "    resources: {memory: 512M, cpus: 1.5, shm_size: 64M}\n";
    let mut yaml = export(limits);
    let down = |yaml: &str| kube_stdin("down", &[], yaml);
    let _ = down(&yaml);
    // slirp4netns: podman 4.3 writes hostAliases into /etc/hosts only with a network.
    let mut played = kube_stdin("play", &["--network", "slirp4netns"], &yaml);
    if stack().user.is_some() {
        // This host's rootless podman (cgroup v1, no delegation) cannot
        // apply the limits and says so; the rest is checked without them.
        let err = text(&played.stderr);
        assert!(err.contains("cannot set memory limit"), "{err}");
        let _ = down(&yaml);
        yaml = export("");
        played = kube_stdin("play", &["--network", "slirp4netns"], &yaml);
    }
    let result = std::panic::catch_unwind(|| {
        assert!(played.status.success(), "{}", text(&played.stderr));
        let name = "kexp-opts-kexp-opts";
        let c = inspect_json(name);
        let (cfg, host) = (&c["Config"], &c["HostConfig"]);
        assert_eq!(cfg["User"], "1000:1001");
        assert_eq!(cfg["WorkingDir"], "/tmp");
        assert_eq!(cfg["Hostname"], "kexphost");
        assert_eq!(host["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(
            c["BoundingCaps"],
            serde_json::json!(["CAP_NET_BIND_SERVICE"])
        );
        assert!(host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"));
        if stack().user.is_none() {
            assert_eq!(host["Memory"], 512 << 20);
            assert_eq!(host["NanoCpus"], 1_500_000_000u64);
        }
        let v5 = podman_ok(&["version", "--format", "{{.Client.Version}}"]).starts_with('5');
        // podman 4.3's kube play ignores terminationGracePeriodSeconds and
        // plays an in-memory emptyDir as a volume on disk; podman 5 does both.
        assert_eq!(cfg["StopTimeout"], if v5 { 120 } else { 10 });
        let inside = |cmd: &str| text(&podman(&["exec", name, "sh", "-c", cmd]).stdout);
        assert_eq!(
            inside("id -u; id -g; id -G")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["1000", "1001", "1001", "10"]
        );
        assert!(inside("grep db.lan /etc/hosts").starts_with("10.1.2.3"));
        assert!(
            inside("touch /x 2>&1 || echo refused").contains("refused"),
            "read-only root"
        );
        let scratch = inside("grep ' /scratch ' /proc/mounts");
        assert_eq!(scratch.contains("tmpfs"), v5, "{scratch}");
    });
    let _ = down(&yaml);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
