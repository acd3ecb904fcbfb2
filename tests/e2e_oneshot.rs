//! One-shot jobs on the real podman, on every stack: `restart: never` and `on-failure`, and `depends_on` condition `completed` (a migration before its server).
//!
//! One daemon, one app set: `migrate` (never) writes a marker into a bind
//! mount and exits 0; `server` waits for it to complete and records whether
//! the marker was there when it started; `flaky` (on-failure) fails four
//! times at once, then succeeds; `broken` (never) exits 3.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A control socket in a directory podkeeper creates, removed afterwards.
struct Ctl(PathBuf);

impl Ctl {
    fn new() -> Ctl {
        let dir = PathBuf::from(format!("/tmp/oneshot-ctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Ctl(dir.join("control.sock"))
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn client(&self, args: &[&str]) -> Output {
        user_command("timeout")
            .arg("30")
            .arg(podkeeper_bin())
            .args(args)
            .args(["--control-socket", self.arg()])
            .output()
            .expect("run podkeeper")
    }

    /// `status --json`'s row of app `id`.
    fn app(&self, id: &str) -> serde_json::Value {
        let out = self.client(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        s["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {s}"))
            .clone()
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A directory the containers write into (the stack's user's on rootless,
/// where the container's root is that user).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(u) = &stack().user {
        std::os::unix::fs::chown(dir.path(), Some(u.uid), Some(u.gid)).expect("chown");
    }
    dir
}

/// An app of the test image under `restart`, running `script`, with the
/// data directory at /data and `extra` app-level lines.
fn app(id: &str, restart: &str, extra: &str, script: &str, data: &Path) -> String {
    format!(
        "app:\n  id: {id}\n  restart: {restart}\n{extra}  container:\n    image: localhost/bb:1\n    command: [\"/bin/sh\", \"-c\", {script:?}]\n    network: none\n    volumes: [\"{}:/data\"]\n",
        data.display()
    )
}

/// A podman inspect field by Go template.
fn field(name: &str, template: &str) -> String {
    podman_ok(&["container", "inspect", "--format", template, name])
        .trim()
        .to_string()
}

fn read(data: &Path, file: &str) -> String {
    std::fs::read_to_string(data.join(file)).unwrap_or_default()
}

/// The time of a debug line (`HH:MM:SS.mmm …`), in seconds.
fn stamp(line: &str) -> f64 {
    let t = line.split_whitespace().next().unwrap_or("");
    t.split(':')
        .map(|p| p.parse::<f64>().unwrap_or(0.0))
        .fold(0.0, |acc, p| acc * 60.0 + p)
}

const MIGRATE: &str = "sleep 1; echo ran >> /data/marker";
const SERVER: &str = "if [ -f /data/marker ]; then echo yes; else echo no; fi > /data/seen; trap 'exit 0' TERM; sleep 100000 & wait";
const FLAKY: &str =
    "n=$(cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/count; [ $n -ge 5 ]";

#[test]
fn a_migration_should_complete_before_its_server_starts_and_never_run_again_until_its_spec_changes()
{
    let _g = serial();
    let apps = Apps::new("e2e-oneshot-");
    let data = data_dir();
    let d = data.path();
    let (migrate, server, flaky, broken) = (
        "e2e-oneshot-migrate",
        "e2e-oneshot-server",
        "e2e-oneshot-flaky",
        "e2e-oneshot-broken",
    );
    let needs = format!("  depends_on:\n    - app: {migrate}\n      condition: completed\n");
    apps.write_raw(
        &format!("{migrate}.yaml"),
        &app(migrate, "never", "", MIGRATE, d),
    );
    apps.write_raw(
        &format!("{server}.yaml"),
        &app(server, "always", &needs, SERVER, d),
    );
    apps.write_raw(
        &format!("{flaky}.yaml"),
        &app(flaky, "on-failure", "", FLAKY, d),
    );
    apps.write_raw(
        &format!("{broken}.yaml"),
        &app(broken, "never", "", "exit 3", d),
    );
    let ctl = Ctl::new();
    let daemon = Daemon::start(
        apps.path(),
        &["--sweep-interval", "1s", "--control-socket", ctl.arg()],
    );

    // The server starts only once migrate has exited 0, and saw its marker.
    wait_until(T, "server running", || is_running(server));
    assert_eq!(read(d, "seen").trim(), "yes");
    assert_eq!(
        field(migrate, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    let finished: i64 = field(migrate, "{{.State.FinishedAt.UnixNano}}")
        .parse()
        .unwrap();
    let started: i64 = field(server, "{{.State.StartedAt.UnixNano}}")
        .parse()
        .unwrap();
    assert!(
        started > finished,
        "server started {started}, migrate finished {finished}"
    );
    let migrate_started = field(migrate, "{{.State.StartedAt}}");

    // flaky: four failures restarted with the crash-loop backoff, then done.
    wait_until(T, "flaky completed", || {
        field(flaky, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
            && read(d, "count").trim() == "5"
    });
    let starts: Vec<f64> = daemon
        .reactions(0, &format!("app/{flaky}"))
        .iter()
        .filter(|l| (l.contains(" start ") || l.contains(" create ")) && l.ends_with("ok"))
        .map(|l| stamp(l))
        .collect();
    assert_eq!(starts.len(), 5, "{}", daemon.output());
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // The crash-loop delay doubles from 0.1 s, counted from the end of the
    // run that restarted it: the fourth restart waits 0.4 s at least.
    assert!(gaps[3] >= 0.39, "restarts at {gaps:?}");

    // Sweeps every second leave the completed and the failed alone.
    let mark = daemon.mark();
    for n in 1..=3 {
        wait_until(T, &format!("sweep {n}"), || {
            daemon.reactions(mark, "sweep").len() >= n
        });
    }
    assert_eq!(read(d, "marker"), "ran\n", "migrate ran once");
    assert_eq!(field(migrate, "{{.State.StartedAt}}"), migrate_started);
    assert_eq!(read(d, "count").trim(), "5", "flaky not run again");
    assert_eq!(
        field(broken, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );
    for id in [migrate, flaky, broken] {
        let acts = daemon.reactions(mark, &format!("app/{id}"));
        assert!(
            !acts
                .iter()
                .any(|l| l.contains(" start ") || l.contains("create ")),
            "{id} left alone: {acts:?}"
        );
    }

    // status: completed, and the failed one-shot with its code.
    for id in [migrate, flaky] {
        let row = ctl.app(id);
        assert_eq!(row["state"], "completed", "{row}");
        assert!(row["why"].is_null(), "{row}");
    }
    let row = ctl.app(broken);
    assert_eq!(row["state"], "failed", "{row}");
    assert!(
        row["why"].as_str().unwrap().contains("exit code 3"),
        "{row}"
    );
    let table = String::from_utf8(ctl.client(&["status"]).stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(migrate) && l.contains("completed")),
        "{table}"
    );

    // A changed spec runs migrate again; the running server is left alone.
    let server_id = field(server, "{{.Id}}");
    let again = MIGRATE.replace("echo ran", "echo ran again");
    apps.write_raw(
        &format!("{migrate}.yaml"),
        &app(migrate, "never", "", &again, d),
    );
    wait_until(T, "migrate ran again", || {
        read(d, "marker") == "ran\nran again\n"
    });
    wait_until(T, "migrate completed again", || {
        field(migrate, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    });
    assert_eq!(field(server, "{{.Id}}"), server_id);
    assert!(is_running(server));
    let out = daemon.output();
    assert!(!out.contains("FAILED"), "{out}");
    assert_eq!(daemon.stop(), Some(0));
}
