//! `container.secrets` against the real podman: the container gets each value (an env variable, a file at its target), `podman inspect` and every podkeeper output never do, a changed file recreates the container, a broken one leaves it untouched, a deleted app's podman secrets go.
//!
//! podman before 5.3 shows an env secret's value in `podman inspect`
//! (`Config.Env`): there podkeeper refuses the env secret with an error that
//! says so, and this test asserts that error instead.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A value no output could hold by chance.
fn unique(tag: &str) -> String {
    let mut b = [0u8; 12];
    getrandom(&mut b);
    let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
    format!("pk-{tag}-{hex}")
}

fn getrandom(buf: &mut [u8]) {
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, buf).unwrap();
}

/// Write a secret file as its owner would: the stack's user's, mode 0600,
/// renamed into place.
fn write_secret(path: &Path, bytes: &[u8], mode: u32) {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(u) = &stack().user {
        std::os::unix::fs::chown(&tmp, Some(u.uid), Some(u.gid)).unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}

fn manifest(id: &str, secrets: &str) -> String {
    format!(
        "app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    command: {TRAP_CMD}\n    network: none\n    secrets:\n{secrets}"
    )
}

/// Whether this podman masks env secrets in inspect (5.3 and later).
fn masks_env_secrets() -> bool {
    let v = podman_ok(&["version", "--format", "{{.Client.Version}}"]);
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (5, 3)
}

fn podkeeper_secrets(app: &str) -> Vec<String> {
    podman_ok(&["secret", "ls", "--format", "{{.Name}}"])
        .lines()
        .filter(|n| n.starts_with(&format!("podkeeper.{app}.")))
        .map(String::from)
        .collect()
}

fn exec(name: &str, script: &str) -> String {
    podman_ok(&["exec", name, "sh", "-c", script])
}

fn id_of(name: &str) -> String {
    let c = inspect(name).unwrap_or_else(|| panic!("{name} exists"));
    assert_eq!(c.status, "running", "{name}");
    c.id
}

/// Every output of podkeeper's that could show a value: its debug lines,
/// `status`, `metrics`, `export kube`, and `podman inspect` of its containers.
fn everything_shown(d: &Daemon, ctl: &Path, apps: &Path, names: &[&str]) -> String {
    let mut all = d.output();
    for args in [&["status", "--json"][..], &["metrics"][..]] {
        let out = user_command(podkeeper_bin())
            .args(args)
            .arg("--control-socket")
            .arg(ctl)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        all += &String::from_utf8_lossy(&out.stdout);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["export", "kube", "--apps"])
        .arg(apps)
        .output()
        .unwrap();
    all += &String::from_utf8_lossy(&out.stdout);
    all += &String::from_utf8_lossy(&out.stderr);
    for n in names {
        all += &String::from_utf8_lossy(&podman(&["container", "inspect", n]).stdout);
    }
    all
}

#[test]
fn secrets_should_reach_the_container_and_nothing_else() {
    let _g = serial();
    // What a run of this test that failed half-way left behind.
    for app in ["e2e-sec-file", "e2e-sec-env"] {
        for name in podkeeper_secrets(app) {
            podman(&["secret", "rm", &name]);
        }
    }
    let apps = Apps::new("e2e-sec-");
    let dir = tempfile::tempdir().unwrap();
    let sec: PathBuf = std::fs::canonicalize(dir.path()).unwrap();
    if let Some(u) = &stack().user {
        std::os::unix::fs::chown(&sec, Some(u.uid), Some(u.gid)).unwrap();
    }
    let (file_v1, file_v2, file_v3, env_v) = (
        unique("file1"),
        unique("file2"),
        unique("file3"),
        unique("env"),
    );
    let key = sec.join("tls.key");
    let pass = sec.join("db-pass");
    write_secret(&key, file_v1.as_bytes(), 0o600);
    write_secret(&pass, env_v.as_bytes(), 0o400);
    apps.write_raw(
        "e2e-sec-file.yaml",
        &manifest(
            "e2e-sec-file",
            &format!(
                "      - file: {}\n        target: /etc/app/tls.key\n",
                key.display()
            ),
        ),
    );
    apps.write_raw(
        "e2e-sec-env.yaml",
        &manifest(
            "e2e-sec-env",
            &format!(
                "      - file: {}\n        env: DB_PASSWORD\n",
                pass.display()
            ),
        ),
    );
    let ctl = PathBuf::from(format!("/tmp/e2e-sec-{}/control.sock", std::process::id()));
    let _ = std::fs::remove_dir_all(ctl.parent().unwrap());
    let d = Daemon::start(apps.path(), &["--control-socket", ctl.to_str().unwrap()]);
    d.wait_ready();

    // A file secret: at its target, the content whole, read-only for root.
    wait_until(T, "e2e-sec-file running", || is_running("e2e-sec-file"));
    assert_eq!(exec("e2e-sec-file", "cat /etc/app/tls.key"), file_v1);
    assert_eq!(
        exec("e2e-sec-file", "stat -c '%a %u' /etc/app/tls.key"),
        "400 0"
    );

    // An env secret: in the process's env, never in `podman inspect`.
    if masks_env_secrets() {
        wait_until(T, "e2e-sec-env running", || is_running("e2e-sec-env"));
        assert_eq!(exec("e2e-sec-env", "echo \"$DB_PASSWORD\""), env_v);
    } else {
        let e = d.wait_line(
            0,
            &["e2e-sec-env", "shows an env secret's value in clear"],
            T,
        );
        assert!(
            e.contains("app.container.secrets[0].env") && e.contains("target:"),
            "{e}"
        );
        assert!(inspect("e2e-sec-env").is_none(), "never created");
    }
    assert_eq!(podkeeper_secrets("e2e-sec-file").len(), 1);

    // A changed file: the container is recreated with the new value, and
    // the old podman secret goes.
    let first = id_of("e2e-sec-file");
    write_secret(&key, file_v2.as_bytes(), 0o600);
    wait_until(T, "recreated with the new value", || {
        inspect("e2e-sec-file").is_some_and(|c| c.id != first && c.status == "running")
    });
    assert_eq!(exec("e2e-sec-file", "cat /etc/app/tls.key"), file_v2);
    // issue 23: the old version stays while the previous container is kept
    // for a rollback, and goes once the new one passes its gate (10 s).
    wait_until(T, "the old version removed after the gate", || {
        podkeeper_secrets("e2e-sec-file").len() == 1 && inspect("e2e-sec-file.previous").is_none()
    });

    // Broken secret files: a clear error naming the file, nothing echoed,
    // the running container untouched.
    let running = id_of("e2e-sec-file");
    let shown = key.display().to_string();
    type Break = Box<dyn Fn()>;
    let breaks: Vec<(&str, Break)> = vec![
        ("open to its group or others (mode 0644)", {
            let k = key.clone();
            Box::new(move || {
                std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap()
            })
        }),
        ("a symlink to /etc/shadow, outside its directory", {
            let k = key.clone();
            Box::new(move || {
                std::fs::remove_file(&k).unwrap();
                symlink("/etc/shadow", &k).unwrap();
            })
        }),
        ("10485760 bytes or more: refused unread", {
            let k = key.clone();
            Box::new(move || write_secret(&k, &vec![b'x'; 10 << 20], 0o600))
        }),
        ("cannot read: No such file", {
            let k = key.clone();
            Box::new(move || std::fs::remove_file(&k).unwrap())
        }),
    ];
    for (rule, broken) in breaks {
        let mark = d.mark();
        broken();
        let e = d.wait_line(
            mark,
            &["e2e-sec-file.yaml", "app.container.secrets[0].file", rule],
            T,
        );
        assert!(
            e.contains(&shown) && e.contains("app e2e-sec-file keeps its last valid declaration"),
            "{e}"
        );
        assert_eq!(id_of("e2e-sec-file"), running, "untouched by: {rule}");
        let _ = std::fs::remove_file(&key);
        write_secret(&key, file_v2.as_bytes(), 0o600);
    }
    assert_eq!(id_of("e2e-sec-file"), running);

    // Fixed with a new value: applied.
    write_secret(&key, file_v3.as_bytes(), 0o600);
    wait_until(T, "the fixed secret applied", || {
        inspect("e2e-sec-file").is_some_and(|c| c.id != running && c.status == "running")
    });
    assert_eq!(exec("e2e-sec-file", "cat /etc/app/tls.key"), file_v3);

    // No value anywhere podkeeper or podman inspect shows things.
    let all = everything_shown(&d, &ctl, apps.path(), &["e2e-sec-file", "e2e-sec-env"]);
    for v in [&file_v1, &file_v2, &file_v3, &env_v] {
        assert!(!all.contains(v.as_str()), "a secret value was shown");
    }

    // Deleted apps: their containers and podman secrets go.
    apps.remove("e2e-sec-file");
    apps.remove("e2e-sec-env");
    wait_until(T, "the deleted apps' podman secrets removed", || {
        inspect("e2e-sec-file").is_none()
            && inspect("e2e-sec-env").is_none()
            && podkeeper_secrets("e2e-sec-file").is_empty()
            && podkeeper_secrets("e2e-sec-env").is_empty()
    });
    d.stop();
    let _ = std::fs::remove_dir_all(ctl.parent().unwrap());
}
