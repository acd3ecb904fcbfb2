//! Bad input never costs a running app: the reactor against a real apps directory and the simulated podman, under paused time.
//!
//! The same cases against the real podman are in `tests/e2e_bad_input.rs`.

mod sim;

use std::path::Path;
use std::time::Duration;

use podkeeper::manifest::load_dir;
use podkeeper::reactor::ReactorConfig;
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::trigger::ChangeKind;
use sim::{count, Setup, Sim};
use tokio::time::sleep;

fn manifest(id: &str, sleep_for: u32) -> String {
    format!("app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    command: [\"/bin/sleep\", \"{sleep_for}\"]\n    network: none\n")
}

/// A reactor over a real apps directory holding `files`, connected and settled.
async fn start(files: &[(&str, String)], cfg: ReactorConfig, podman: SimRuntime) -> Sim {
    let h = Setup::dir(podman, files.iter().cloned())
        .config(cfg)
        .start();
    h.connect().await;
    sleep(Duration::from_secs(1)).await;
    h
}

#[tokio::test(start_paused = true)]
async fn a_typo_should_leave_the_running_app_as_it_was() {
    let h = start(
        &[("web.yaml", manifest("web", 1000))],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    let id = h.podman.container("web").unwrap().id;
    let calls = h.podman.calls().len();
    h.write_app_file(
        "web.yaml",
        &manifest("web", 1000).replace("network:", "networkk:"),
    )
    .await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.podman.container("web").unwrap().id,
        id,
        "the same container"
    );
    assert_eq!(
        h.podman.calls()[calls..],
        [] as [String; 0],
        "not one podman call"
    );
    let (_, out) = h.stop().await;
    assert_eq!(count(&out, "manifest gone"), 0, "{out}");
    let error = out
        .lines()
        .find(|l| l.contains("manifest error"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        error.contains("web.yaml: app.container: unknown field `networkk`")
            && error.contains("did you mean `network`?")
            && error.contains("(app web keeps its last valid declaration)"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_two_step_write_should_leave_the_container_id_unchanged() {
    let text = manifest("web", 1000);
    let h = start(
        &[("web.yaml", text.clone())],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    let id = h.podman.container("web").unwrap().id;
    let calls = h.podman.calls().len();
    // `cat > web.yaml`: the truncation is read on its own (the writer was slow)…
    h.write_app_file("web.yaml", "").await;
    sleep(Duration::from_millis(200)).await;
    // …then the content, identical to what runs.
    h.write_app_file("web.yaml", &text).await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(h.podman.container("web").unwrap().id, id);
    assert_eq!(h.podman.calls()[calls..], [] as [String; 0]);
    let (_, out) = h.stop().await;
    assert_eq!(
        count(&out, "react  manifests"),
        2,
        "both versions read: {out}"
    );
    assert!(out.contains("is empty (half-written?"), "{out}");
    assert!(out.contains("web.yaml: valid again"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_file_written_twice_within_the_settle_time_should_be_read_once_after_it_settles() {
    let h = start(
        &[("web.yaml", manifest("web", 1000))],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    h.write_app_file("web.yaml", "").await;
    sleep(Duration::from_millis(30)).await;
    h.write_app_file("web.yaml", &manifest("web", 2000)).await;
    sleep(Duration::from_secs(2)).await;
    let (_, out) = h.stop().await;
    let reads: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("react  manifests"))
        .collect();
    assert_eq!(reads.len(), 1, "{out}");
    assert!(
        !out.contains("manifest error"),
        "never saw the half-written file: {out}"
    );
    assert!(out.contains("manifest changed"), "{out}");
    // Read 50 ms after the second write, not after the first.
    assert!(out.contains("already queued (runs in 50ms)"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_deleted_or_renamed_away_file_should_still_remove_its_app() {
    let h = start(
        &[
            ("a.yaml", manifest("a", 1000)),
            ("b.yaml", manifest("b", 1000)),
        ],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    std::fs::remove_file(h.apps_path("a.yaml")).unwrap();
    h.apps_changed("a.yaml", ChangeKind::Remove).await;
    std::fs::rename(h.apps_path("b.yaml"), h.apps_path("b.yaml.bak")).unwrap();
    h.apps_changed("b.yaml", ChangeKind::RenameFrom).await;
    sleep(Duration::from_secs(2)).await;
    assert!(h.podman.container("a").is_none());
    assert!(h.podman.container("b").is_none());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_file_that_now_declares_another_id_should_replace_the_old_app() {
    let h = start(
        &[("a.yaml", manifest("a", 1000))],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    h.write_app_file("a.yaml", &manifest("a2", 1000)).await;
    sleep(Duration::from_secs(2)).await;
    assert!(h.podman.container("a").is_none());
    assert!(h.podman.container("a2").is_some());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_declaring_a_running_apps_id_should_be_refused_not_cost_the_app() {
    let h = start(
        &[("a.yaml", manifest("web", 1000))],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    let id = h.podman.container("web").unwrap().id;
    h.write_app_file("b.yaml", &manifest("web", 2000)).await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(h.podman.container("web").unwrap().id, id);
    let (_, out) = h.stop().await;
    assert!(
        out.contains("b.yaml: app.id: id \"web\" is already declared in"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn prune_orphans_should_wait_while_a_manifest_is_invalid() {
    // A container of app "api", whose manifest has a typo at start-up: with
    // --prune-orphans it would be an orphan; it may be the typo's app.
    let podman = sim::podman();
    let labels = [
        (podkeeper::APP_LABEL.to_string(), "api".to_string()),
        (podkeeper::SPEC_HASH_LABEL.to_string(), "0".to_string()),
    ]
    .into();
    podman.add_running("api", labels);
    let cfg = ReactorConfig {
        prune_orphans: true,
        ..ReactorConfig::default()
    };
    let h = start(
        &[(
            "api.yaml",
            manifest("api", 1000).replace("image:", "imagee:"),
        )],
        cfg,
        podman,
    )
    .await;
    assert!(h.podman.container("api").is_some(), "left alone");
    let (_, out) = h.stop().await;
    assert!(
        out.contains("left alone while a manifest is invalid"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fifo_and_a_directory_named_like_manifests_should_be_refused_and_named() {
    let h = start(
        &[("web.yaml", manifest("web", 1000))],
        ReactorConfig::default(),
        sim::podman(),
    )
    .await;
    let fifo = h.apps_path("pipe.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    h.apps_changed("pipe.yaml", ChangeKind::Create).await;
    std::fs::create_dir(h.apps_path("dir.yaml")).unwrap();
    h.apps_changed("dir.yaml", ChangeKind::Create).await;
    sleep(Duration::from_secs(2)).await;
    assert!(h.podman.container("web").is_some());
    let (_, out) = h.stop().await;
    assert!(
        out.contains("pipe.yaml: a FIFO, not a regular file"),
        "{out}"
    );
    assert!(
        out.contains("dir.yaml: a directory, not a regular file"),
        "{out}"
    );
}

#[test]
fn hostile_files_should_be_refused_quickly() {
    // Timing in a unit test would be flaky; bounds this generous are not.
    let dir = tempfile::tempdir().unwrap();
    let s = "A".repeat(1_000_000);
    let bomb = format!(
        "app:\n  id: bomb\n  container:\n    image: x\n    command: [&s \"{s}\"{}]\n",
        ", *s".repeat(20)
    );
    std::fs::write(dir.path().join("bomb.yaml"), bomb).unwrap();
    let n = 100_000;
    let deep = format!(
        "app:\n  id: deep\n  version: {}{}\n  container:\n    image: x\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    std::fs::write(dir.path().join("deep.yaml"), deep).unwrap();
    std::fs::write(dir.path().join("big.yaml"), vec![b'#'; 2 << 20]).unwrap();
    let started = std::time::Instant::now();
    let set = load_dir(Path::new(dir.path())).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(set.apps.is_empty());
    let errors: Vec<String> = set.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        errors[0].contains("big.yaml: 2097152 bytes or more: refused unread"),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .contains("bomb.yaml: refused before parsing: text values add up to more than 2 MiB"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("deep.yaml: refused before parsing: nested more than 32 levels"),
        "{errors:?}"
    );
}
