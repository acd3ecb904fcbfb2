//! `scripts/install` into a scratch prefix: binary, units systemd accepts, man page and completions.

use std::path::Path;
use std::process::Command;

fn install(mode: &[&str], root: &Path) -> String {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install"))
        .args(mode)
        .arg("--prefix")
        .arg(root.join("prefix"))
        .arg("--unit-dir")
        .arg(root.join("units"))
        .arg("--apps-dir")
        .arg(root.join("apps"))
        .args(["--bin", env!("CARGO_BIN_EXE_podkeeper"), "--no-reload"])
        .output()
        .expect("run scripts/install");
    assert!(
        out.status.success(),
        "install {mode:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemd-analyze verify`: the unit parses and its ExecStart exists.
fn verify(unit: &Path, user: bool) {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "systemd-analyze", "--man=no"]);
    if user {
        cmd.arg("--user").env("XDG_RUNTIME_DIR", "/run/user/0");
    }
    let out = cmd
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success(),
        "{}: {}",
        unit.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_should_put_binary_units_man_page_and_completions_in_place() {
    for (mode, user) in [(&["--user"][..], true), (&[][..], false)] {
        let root = tempfile::tempdir().unwrap();
        let said = install(mode, root.path());
        assert!(said.contains("enable --now podkeeper.service"), "{said}");
        let bin = root.path().join("prefix/bin/podkeeper");
        let unit = root.path().join("units/podkeeper.service");
        let text = std::fs::read_to_string(&unit).unwrap();
        assert!(text.contains("Type=notify"), "{text}");
        assert!(text.contains("WatchdogSec="), "{text}");
        assert!(text.contains("Restart=on-failure"), "{text}");
        assert!(
            text.contains(&format!("ExecStart={} run --apps ", bin.display())),
            "{text}"
        );
        assert_eq!(text.contains("--user"), user, "{text}");
        verify(&unit, user);
        let share = root.path().join("prefix/share");
        let man = std::fs::read_to_string(share.join("man/man1/podkeeper.1")).unwrap();
        assert!(man.contains(".TH podkeeper 1"));
        let bash = share.join("bash-completion/completions/podkeeper");
        assert!(Command::new("bash")
            .arg("-n")
            .arg(&bash)
            .status()
            .unwrap()
            .success());
        let zsh = std::fs::read_to_string(share.join("zsh/site-functions/_podkeeper")).unwrap();
        assert!(zsh.starts_with("#compdef podkeeper"), "{}", &zsh[..40]);
        let fish = std::fs::read_to_string(share.join("fish/vendor_completions.d/podkeeper.fish"))
            .unwrap();
        assert!(fish.contains("complete -c podkeeper"));
        assert!(root.path().join("apps").is_dir());
    }
}
