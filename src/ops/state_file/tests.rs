use std::os::unix::fs::PermissionsExt;

use super::*;

fn one_failure() -> StateFile {
    let mut s = StateFile::default();
    s.failed.insert(
        "web".into(),
        FailedSpec {
            spec_hash: "b".repeat(16),
            why: "exited (code 1) after 0.4s".into(),
            exit_code: Some(1),
            log_tail: "boom\n".into(),
            at: "2026-12-08T03:00:00.000Z".into(),
        },
    );
    s.adopted.insert(
        "c0ffee".into(),
        AdoptedContainer {
            app: "db".into(),
            spec_hash: "a".repeat(16),
            at: "2026-12-08T03:00:00.000Z".into(),
        },
    );
    s
}

/// A fresh start with a warning naming the file and saying `what`.
fn assert_fresh(loaded: &Loaded, path: &Path, what: &str) {
    assert_eq!(loaded.state, StateFile::default());
    let w = loaded.warning.as_deref().expect("a warning");
    assert!(w.contains(&path.display().to_string()), "{w}");
    assert!(w.contains(what), "{w}");
    assert!(w.contains("starting fresh"), "{w}");
}

#[test]
fn a_saved_state_should_load_as_it_was_in_the_designed_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/podkeeper/state.json");
    save(&path, &one_failure()).unwrap();
    let loaded = load(&path);
    assert_eq!(loaded.warning, None);
    assert_eq!(loaded.state, one_failure());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["failed"]["web"]["exit_code"], 1);
    assert_eq!(json["adopted"]["c0ffee"]["app"], "db");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["state.json"]);
}

#[test]
fn a_missing_file_should_be_a_fresh_start_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&dir.path().join("state.json"));
    assert_eq!(loaded.warning, None);
    assert_eq!(loaded.state, StateFile::default());
}

#[test]
fn unknown_fields_should_survive_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(
        &path,
        r#"{"version":1,"failed":{},"bad_digests":{"web":["sha256:x"]}}"#,
    )
    .unwrap();
    let loaded = load(&path);
    assert_eq!(loaded.warning, None);
    save(&path, &loaded.state).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["bad_digests"]["web"][0], "sha256:x");
}

#[test]
fn a_truncated_file_should_be_set_aside_and_podkeeper_start_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    save(&path, &one_failure()).unwrap();
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let loaded = load(&path);
    assert_fresh(&loaded, &path, "is truncated");
    assert!(loaded.warning.unwrap().contains("state.json.bad"));
    assert_eq!(
        std::fs::read(dir.path().join("state.json.bad")).unwrap(),
        full[..full.len() / 2]
    );
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_json_should_be_set_aside_and_podkeeper_start_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, "version = 1\n").unwrap();
    assert_fresh(&load(&path), &path, "is not a podkeeper state file");
    assert!(bad_path(&path).exists());
}

#[test]
fn json_of_another_shape_should_be_set_aside_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, r#"{"version":1,"failed":{"web":"no"}}"#).unwrap();
    assert_fresh(&load(&path), &path, "is not a podkeeper state file");
    std::fs::write(&path, "[1, 2]").unwrap();
    assert_fresh(&load(&path), &path, "is not a podkeeper state file");
}

#[test]
fn an_unknown_version_should_be_set_aside_and_podkeeper_start_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, r#"{"version":2,"failed":{}}"#).unwrap();
    assert_fresh(
        &load(&path),
        &path,
        "has version 2 (this podkeeper reads version 1)",
    );
    assert!(bad_path(&path).exists());
}

#[test]
fn a_100_mib_file_should_be_refused_after_reading_at_most_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    // Sparse: 100 MiB of zeroes that cost no disk.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(100 << 20).unwrap();
    drop(f);
    assert_fresh(&load(&path), &path, "is larger than 1024 KiB");
    assert_eq!(std::fs::metadata(bad_path(&path)).unwrap().len(), 100 << 20);
}

#[test]
fn a_symlink_should_not_be_followed_nor_moved() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere.json");
    save(&target, &one_failure()).unwrap();
    let path = dir.path().join("state.json");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert_fresh(&load(&path), &path, "is a symlink: not followed");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    // The next write replaces the link, never writes through it.
    save(&path, &StateFile::default()).unwrap();
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(load(&target).state, one_failure());
}

#[test]
fn a_fifo_should_not_block_nor_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Nobody writes into it: a blocking open would never return.
    assert_fresh(&load(&path), &path, "is not a regular file");
    assert!(!bad_path(&path).exists());
}

#[test]
fn a_directory_at_the_path_should_be_a_fresh_start_and_a_failed_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::create_dir(&path).unwrap();
    assert_fresh(&load(&path), &path, "is not a regular file");
    let e = save(&path, &one_failure()).unwrap_err();
    assert!(
        e.starts_with(&format!("cannot write state file {}", path.display())),
        "{e}"
    );
}

#[test]
fn a_write_into_a_read_only_directory_should_fail_in_words() {
    // procfs refuses new files to root too; a plain 0500 directory would not.
    let e = save(Path::new("/proc/self/podkeeper-state.json"), &one_failure()).unwrap_err();
    assert!(
        e.starts_with(
            "cannot write state file /proc/self/podkeeper-state.json: create a temporary file:"
        ),
        "{e}"
    );
    // For a user, a 0500 directory refuses as well (root passes it by).
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    let written = save(&ro.join("state.json"), &one_failure());
    assert_eq!(written.is_ok(), crate::host::euid() == 0, "{written:?}");
}

#[test]
fn a_state_path_under_a_regular_file_should_fail_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let e = save(&file.join("podkeeper/state.json"), &one_failure()).unwrap_err();
    assert!(e.contains("cannot create"), "{e}");
}

#[test]
fn the_bad_file_should_sit_beside_the_file_it_was() {
    assert_eq!(
        bad_path(Path::new("/var/lib/podkeeper/state.json")),
        Path::new("/var/lib/podkeeper/state.json.bad")
    );
}
