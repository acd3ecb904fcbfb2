//! What the binary writes to a file: plain text, never a terminal's colour codes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `podkeeper run ... 2>file` (as under journald or a redirect): the log
/// lines carry no ANSI escape codes. The podman socket does not exist, so
/// nothing on the host is touched; the daemon logs its start and its
/// unreachable podman, and is killed.
#[test]
fn log_lines_to_a_file_should_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    let units = dir.path().join("units");
    std::fs::create_dir(&apps).unwrap();
    std::fs::create_dir(&units).unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .arg("run")
        .arg("--apps")
        .arg(&apps)
        .arg("--unit-dir")
        .arg(&units)
        .arg("--socket")
        .arg(dir.path().join("no-podman.sock"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Wait for the start-up lines, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("unreachable") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(text.contains("starting"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(!text.contains('\x1b'), "escape codes in:\n{text}");
}
