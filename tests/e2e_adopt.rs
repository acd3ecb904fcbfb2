//! Adoption (issue 23) end to end, on every stack: containers made by a plain `podman run`, one with the manifest's options (adopted by the daemon without a restart: the same id and StartedAt, then kept: killed, it is started again) and one differing in its command and an env value (both differences in `adopt --dry-run` and `check --adopt`, which touch nothing; the daemon replaces it through the update path, keeping it as `<id>.previous`).

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);
const IMAGE: &str = "localhost/bb:1";
/// Ends on SIGINT or SIGTERM.
const WAITS: &str = "trap 'exit 0' INT TERM; sleep 100000 & wait";
/// The differing container's command.
const OTHER: &str = "trap 'exit 0' INT TERM; sleep 99999 & wait";
const SAME: &str = "e2e-adopt-same";
const DIFF: &str = "e2e-adopt-diff";
const VOLUME: &str = "e2e-adopt-vol";

/// The manifest of app `id`, which may adopt, with several fields set.
fn manifest(id: &str) -> String {
    format!(
        "app:\n  id: {id}\n  adopt: true\n  container:\n    image: {IMAGE}\n    \
         command: [\"/bin/sh\", \"-c\", \"{WAITS}\"]\n    network: none\n    \
         env: {{GREETING: hello}}\n    volumes: [\"{VOLUME}:/data\"]\n    \
         tmpfs: [\"/cache:size=1m\"]\n    read_only: true\n    cap_drop: [CHOWN]\n    \
         stop_signal: SIGINT\n    stop_timeout: 20s\n    workdir: /data\n    \
         labels: {{team: a}}\n"
    )
}

/// `podman run` as another orchestrator would, with the manifest's options
/// but `greeting` and `command`.
fn run_by_hand(name: &str, greeting: &str, command: &str) -> String {
    let env = format!("GREETING={greeting}");
    podman_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network=none",
        "-e",
        &env,
        "-v",
        &format!("{VOLUME}:/data"),
        "--tmpfs",
        "/cache:size=1m",
        "--read-only",
        "--cap-drop",
        "CHOWN",
        "--stop-signal",
        "SIGINT",
        "--stop-timeout",
        "20",
        "-w",
        "/data",
        "--label",
        "team=a",
        IMAGE,
        "/bin/sh",
        "-c",
        command,
    ])
}

/// `podkeeper ARGS --apps DIR --socket S`, as the stack's user.
fn podkeeper(args: &[&str], apps: &Apps) -> (Option<i32>, String) {
    let out: Output = user_command(podkeeper_bin())
        .args(args)
        .arg("--apps")
        .arg(apps.path())
        .arg("--socket")
        .arg(socket())
        .output()
        .expect("run podkeeper");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The line of `out` that starts with `name`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .rev()
        .find(|l| l.starts_with(name))
        .unwrap_or("")
}

const DIFF_COMMAND: &str = r#"command: manifest ["/bin/sh", "-c", "trap 'exit 0' INT TERM; sleep 100000 & wait"], container ["/bin/sh", "-c", "trap 'exit 0' INT TERM; sleep 99999 & wait"]"#;
const DIFF_ENV: &str = r#"env GREETING: manifest "hello", container "bye""#;

#[test]
fn a_matching_container_should_be_adopted_as_it_runs_and_a_differing_one_listed() {
    let _g = serial();
    let apps = Apps::new("e2e-adopt-");
    podman(&["volume", "rm", "-f", VOLUME]);
    apps.write_raw(&format!("{SAME}.yaml"), &manifest(SAME));
    apps.write_raw(&format!("{DIFF}.yaml"), &manifest(DIFF));
    run_by_hand(SAME, "hello", WAITS);
    // Another command, which ends on SIGINT too (its replace stops it).
    run_by_hand(DIFF, "bye", OTHER);
    let same = inspect(SAME).expect("same made by hand");
    let diff = inspect(DIFF).expect("diff made by hand");
    assert_eq!(same.labels.get("io.podkeeper.app"), None);

    // Read-only reports, straight from podman.
    let (code, out) = podkeeper(&["adopt", "--dry-run"], &apps);
    assert_eq!(code, Some(1), "not all would be adopted:\n{out}");
    assert!(line(&out, SAME).contains(" adopt "), "{out}");
    assert!(line(&out, SAME).contains(&same.id[..12]), "{out}");
    assert!(line(&out, DIFF).contains(" replace "), "{out}");
    assert!(
        out.contains(DIFF_COMMAND) && out.contains(DIFF_ENV),
        "{out}"
    );
    assert!(
        out.contains(
            "2 of 2 apps have a container podkeeper did not make: 1 adopt, 1 replace, 0 left"
        ),
        "{out}"
    );
    let (code, out) = podkeeper(&["check", "--adopt"], &apps);
    assert_eq!(code, Some(0), "the manifests are valid:\n{out}");
    assert!(line(&out, SAME).contains(" adopt "), "{out}");
    assert!(line(&out, DIFF).contains(" replace "), "{out}");
    assert!(
        out.contains(DIFF_COMMAND) && out.contains(DIFF_ENV),
        "{out}"
    );
    // Nothing was touched by either.
    assert_eq!(inspect(SAME).unwrap().started_at, same.started_at);

    // The daemon adopts the one that matches, without a restart.
    let d = Daemon::start(apps.path(), &[]);
    d.wait_line(0, &["react", &format!("app/{SAME}"), "adopt"], T);
    // The one that differs is replaced through the update path: the
    // differences said, the old container kept (stopped) as the previous.
    let replaced = d.wait_line(0, &["react", &format!("app/{DIFF}"), "recreate"], T);
    assert!(replaced.contains(DIFF_ENV), "{replaced}");
    let previous = inspect(&format!("{DIFF}.previous")).expect("the old one kept");
    assert_eq!(previous.id, diff.id);
    assert_ne!(previous.status, "running");
    let new = inspect(DIFF).expect("the new one");
    assert_ne!(new.id, diff.id);
    assert_eq!(new.status, "running");
    assert_eq!(new.cmd, ["/bin/sh", "-c", WAITS]);
    let now = inspect(SAME).expect("still there");
    assert_eq!(
        (
            now.id.as_str(),
            now.started_at.as_str(),
            now.status.as_str()
        ),
        (same.id.as_str(), same.started_at.as_str(), "running")
    );
    // And keeps it: killed, the same container is started again.
    let mark = d.mark();
    kill9(now.pid);
    wait_until(T, "the adopted container started again", || {
        inspect(SAME).is_some_and(|c| c.status == "running" && c.started_at != same.started_at)
    });
    assert_eq!(inspect(SAME).unwrap().id, same.id);
    assert!(!d.reactions(mark, &format!("app/{SAME}")).is_empty());
    drop(d);
    remove_containers("e2e-adopt-");
    podman(&["volume", "rm", "-f", VOLUME]);
}
