//! Bad input never costs a running app, against the real podman: typos, half-written, hostile and huge files, symlinks, FIFOs.
//!
//! Each test keeps one app running and checks, by podman's own inspect, that
//! its container is the same one (same id, same start time) afterwards.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// The container's id and start time: unchanged means untouched.
fn identity(name: &str) -> (String, String) {
    let c = inspect(name).unwrap_or_else(|| panic!("{name} exists"));
    assert_eq!(c.status, "running", "{name}");
    (c.id, c.started_at)
}

/// No reconcile of `app` after `mark`.
fn untouched(d: &Daemon, mark: usize, app: &str) {
    let touched: Vec<String> = d
        .lines_since(mark)
        .into_iter()
        .filter(|l| l.contains(&format!("react  app/{app}")) || l.contains("manifest gone"))
        .collect();
    assert!(touched.is_empty(), "{app} was touched: {touched:?}");
}

/// The peak resident memory of a process, in kB (VmHWM).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn check(apps: &Apps) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["check", "--apps"])
        .arg(apps.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_typo_should_leave_the_container_running_with_the_same_id() {
    let _g = serial();
    let apps = Apps::new("e2e-typo-");
    apps.write("e2e-typo-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-typo-web"));
    d.wait_ready();
    let before = identity("e2e-typo-web");
    let mark = d.mark();
    // The mistake of the issue, as a user makes it.
    let file = apps.path().join("e2e-typo-web.yaml");
    let sed = Command::new("sed")
        .args(["-i", "s/network: none/networkk: none/"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(sed.success());
    let error = d.wait_line(mark, &["manifest error", "e2e-typo-web.yaml"], T);
    assert!(
        error.contains("unknown field `networkk`")
            && error.contains("did you mean `network`?")
            && error.contains("app e2e-typo-web keeps its last valid declaration"),
        "{error}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        identity("e2e-typo-web"),
        before,
        "the same container, not restarted"
    );
    untouched(&d, mark, "e2e-typo-web");
    // Fixed: valid again, and still the same container.
    let sed = Command::new("sed")
        .args(["-i", "s/networkk: none/network: none/"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(sed.success());
    d.wait_line(mark, &["e2e-typo-web.yaml: valid again"], T);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(identity("e2e-typo-web"), before);
    untouched(&d, mark, "e2e-typo-web");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_two_step_write_should_leave_the_container_id_unchanged() {
    let _g = serial();
    let apps = Apps::new("e2e-twostep-");
    apps.write("e2e-twostep-web", TRAP_CMD);
    let text = manifest("e2e-twostep-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-twostep-web"));
    d.wait_ready();
    let before = identity("e2e-twostep-web");
    let mark = d.mark();
    // `cat > web.yaml` with a slow writer: the truncation first, read on its
    // own (well past the settle time), then the same content again.
    let path = apps.path().join("e2e-twostep-web.yaml");
    let mut f = std::fs::File::create(&path).unwrap();
    d.wait_line(mark, &["manifest error", "is empty (half-written?"], T);
    f.write_all(text.as_bytes()).unwrap();
    drop(f);
    d.wait_line(mark, &["e2e-twostep-web.yaml: valid again"], T);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(identity("e2e-twostep-web"), before, "the same container");
    untouched(&d, mark, "e2e-twostep-web");
    assert_eq!(d.stop(), Some(0));
}

/// Issue 22's bad container options, each written over a running app's
/// valid manifest: each is a clear error naming the field and what is
/// allowed, and the container stays the same one throughout.
#[test]
fn an_invalid_container_option_should_leave_the_container_running_with_the_same_id() {
    let _g = serial();
    let apps = Apps::new("e2e-opts-");
    let id = "e2e-opts-web";
    let valid = manifest(id, TRAP_CMD);
    apps.write_raw(&format!("{id}.yaml"), &valid);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running(id));
    d.wait_ready();
    let before = identity(id);
    let start = d.mark();
    // A regular file where a device must be (/dev/shm: a tmpfs anyone may write).
    let file = tempfile::NamedTempFile::new_in("/dev/shm").unwrap();
    let regular = file.path().display().to_string();
    let cases = [
        (
            "cap_add: [NET_FLY]",
            "app.container.cap_add[0]",
            "is not a Linux capability".to_string(),
        ),
        (
            "devices: [/dev/podkeeper-nope]",
            "app.container.devices[0]",
            "does not exist on this host".into(),
        ),
        (
            &format!("devices: [\"{regular}\"]"),
            "app.container.devices[0]",
            "is not a device on this host".into(),
        ),
        (
            "resources: {cpus: 0}",
            "app.container.resources.cpus",
            "is not a CPU count".into(),
        ),
        (
            "resources: {cpus: 100000}",
            "app.container.resources.cpus",
            "is more than this host has".into(),
        ),
        (
            "resources: {memory: 12XB}",
            "app.container.resources.memory",
            "is not a size".into(),
        ),
        (
            "ulimits: {nofile: \"9:1\"}",
            "app.container.ulimits.nofile",
            "soft limit above the hard one".into(),
        ),
        (
            "stop_signal: SIGNOPE",
            "app.container.stop_signal",
            "is not a signal".into(),
        ),
        (
            "stop_timeout: 2h",
            "app.container.stop_timeout",
            "is over 1h".into(),
        ),
        (
            "user: \"post\\ngres\"",
            "app.container.user",
            "is not a user".into(),
        ),
    ];
    for (line, field, says) in &cases {
        let mark = d.mark();
        apps.write_raw(&format!("{id}.yaml"), &format!("{valid}    {line}\n"));
        let error = d.wait_line(mark, &["manifest error", field], T);
        assert!(
            error.contains(says.as_str())
                && error.contains("allowed")
                && error.contains(&format!("app {id} keeps its last valid declaration")),
            "{line}: {error}"
        );
    }
    let mark = d.mark();
    apps.write_raw(&format!("{id}.yaml"), &valid);
    d.wait_line(mark, &[&format!("{id}.yaml: valid again")], T);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(identity(id), before, "the same container, never restarted");
    untouched(&d, start, id);
    assert_eq!(d.stop(), Some(0));
}

/// 1 MB anchored string used 500 times: ~500 MB if expanded.
fn alias_bomb(id: &str) -> String {
    let s = "A".repeat(1_000_000);
    format!(
        "app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    command: [&s \"{s}\"{}]\n",
        ", *s".repeat(499)
    )
}

/// 100 KB of `[[[[…]]]]`: 8 s of libyaml before.
fn deep_nesting(id: &str) -> String {
    let n = 50_000;
    format!(
        "app:\n  id: {id}\n  version: {}{}\n  container:\n    image: localhost/bb:1\n",
        "[".repeat(n),
        "]".repeat(n)
    )
}

/// Just within every bound of the YAML pass: 19,000 list items in 900 KB.
fn many_values(id: &str) -> String {
    let item = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
    format!(
        "app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    command: [{}]\n",
        vec![item; 19_000].join(",")
    )
}

#[test]
fn hostile_files_in_a_live_apps_directory_should_be_refused_with_bounded_memory() {
    let _g = serial();
    let apps = Apps::new("e2e-hostile-");
    apps.write("e2e-hostile-web", TRAP_CMD);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-hostile-web"));
    d.wait_ready();
    let before = identity("e2e-hostile-web");
    let rss_before = peak_rss_kb(d.pid());
    let mark = d.mark();
    let started = Instant::now();
    apps.write_raw("bomb.yaml", &alias_bomb("e2e-hostile-bomb"));
    apps.write_raw("deep.yaml", &deep_nesting("e2e-hostile-deep"));
    apps.write_raw("many.yaml", &many_values("e2e-hostile-many"));
    apps.write_raw("huge.yaml", &"#".repeat(50 << 20));
    for (file, why) in [
        ("bomb.yaml", "text values add up to more than 2 MiB"),
        ("deep.yaml", "nested more than 32 levels deep"),
        (
            "many.yaml",
            "app.container.command: 19000 entries (allowed: at most 1024)",
        ),
        ("huge.yaml", "52428800 bytes or more: refused unread"),
    ] {
        d.wait_line(mark, &["manifest error", file, why], T);
    }
    let took = started.elapsed();
    let rss = peak_rss_kb(d.pid());
    println!(
        "HOSTILE: refused in {took:?} (debug build); VmHWM {rss_before} kB before, {rss} kB after"
    );
    // Before: 1 GB and an abort (exit 134). Generous for a debug build.
    assert!(rss < 64 * 1024, "peak RSS {rss} kB");
    for id in ["bomb", "deep", "many"] {
        assert!(
            inspect(&format!("e2e-hostile-{id}")).is_none(),
            "{id} never reached podman"
        );
    }
    assert_eq!(
        identity("e2e-hostile-web"),
        before,
        "the running app stayed up"
    );
    untouched(&d, mark, "e2e-hostile-web");
    // Touching an unrelated manifest re-reads nothing else: the hostile
    // files are refused again at the cost of an lstat (too large) or a read.
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_symlink_to_a_file_outside_should_be_refused_and_its_content_never_shown() {
    let _g = serial();
    let apps = Apps::new("e2e-link-");
    apps.write("e2e-link-web", TRAP_CMD);
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(
        &secret,
        "root:$6$FAKESECRETi8$0123456789abcdefghijklmn:19000:0:99999:7:::\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, apps.path().join("shadow.yaml")).unwrap();
    let (code, text) = check(&apps);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("shadow.yaml: a symlink to")
            && text.contains("outside the directory: refused, never opened"),
        "{text}"
    );
    assert!(!text.contains("FAKESECRET"), "{text}");

    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("e2e-link-web"));
    d.wait_line(0, &["manifest error", "shadow.yaml: a symlink to"], T);
    // A second one, made while podkeeper runs.
    let mark = d.mark();
    std::os::unix::fs::symlink(&secret, apps.path().join("later.yaml")).unwrap();
    d.wait_line(mark, &["manifest error", "later.yaml: a symlink to"], T);
    assert!(!d.output().contains("FAKESECRET"), "{}", d.output());
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_fifo_and_a_directory_named_like_manifests_should_be_refused_and_named_by_check_and_run() {
    let _g = serial();
    let apps = Apps::new("e2e-fifo-");
    apps.write("e2e-fifo-web", TRAP_CMD);
    let fifo = apps.path().join("pipe.yaml");
    let mkfifo = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(mkfifo.success());
    std::fs::create_dir(apps.path().join("dir.yaml")).unwrap();
    std::fs::write(apps.path().join("notes.txt"), "x").unwrap();
    let started = Instant::now();
    let (code, text) = check(&apps);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "check never blocks"
    );
    assert_eq!(code, Some(1), "{text}");
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line for {needle}:\n{text}"))
            .to_string()
    };
    assert!(
        line("pipe.yaml").starts_with("error  ")
            && line("pipe.yaml").contains("a FIFO, not a regular file"),
        "{text}"
    );
    assert!(
        line("dir.yaml").starts_with("error  ")
            && line("dir.yaml").contains("a directory, not a regular file"),
        "{text}"
    );
    assert!(
        line("notes.txt").starts_with("skip   ") && line("notes.txt").contains("not a manifest"),
        "{text}"
    );
    assert!(text.contains("1 valid, 2 invalid, 1 skipped"), "{text}");

    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running despite the FIFO", || is_running("e2e-fifo-web"));
    d.wait_line(0, &["manifest error", "pipe.yaml: a FIFO"], T);
    d.wait_line(0, &["manifest error", "dir.yaml: a directory"], T);
    let before = identity("e2e-fifo-web");
    // The FIFO written to while podkeeper runs: still not read, nothing blocks.
    let mark = d.mark();
    apps.write("e2e-fifo-other", TRAP_CMD);
    wait_until(T, "a new app still deploys", || {
        is_running("e2e-fifo-other")
    });
    assert_eq!(identity("e2e-fifo-web"), before);
    untouched(&d, mark, "e2e-fifo-web");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_world_writable_apps_directory_should_be_refused_at_start_up() {
    let _g = serial();
    let apps = Apps::new("e2e-perm-");
    apps.write("e2e-perm-web", TRAP_CMD);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(apps.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["run", "--apps"])
        .arg(apps.path())
        .arg("--socket")
        .arg(socket())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing to start") && err.contains("writable by every user"),
        "{err}"
    );
    assert!(inspect("e2e-perm-web").is_none(), "nothing ran");
    let (code, text) = check(&apps);
    assert_eq!(code, Some(1));
    assert!(text.contains("the directory is refused"), "{text}");
    std::fs::set_permissions(apps.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let (code, text) = check(&apps);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("warn   apps directory") && text.contains("writable by its group"),
        "{text}"
    );
}
