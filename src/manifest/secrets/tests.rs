use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;

use super::*;
use crate::manifest::parse_manifest;

const VALUE: &str = "s3cr3t-7f1e0c";

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let canon = std::fs::canonicalize(d.path()).unwrap();
    (d, canon)
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The error, checked never to hold the value.
fn refused(path: &Path) -> String {
    let e = read_secret(path).unwrap_err();
    assert!(!e.contains(VALUE), "{e}");
    e
}

#[test]
fn a_private_regular_file_should_be_read_whole() {
    let (_d, dir) = tmp();
    let f = dir.join("db-pass");
    write(&f, VALUE.as_bytes(), 0o600);
    assert_eq!(read_secret(&f).unwrap(), VALUE.as_bytes());
    write(&f, VALUE.as_bytes(), 0o400);
    assert_eq!(read_secret(&f).unwrap(), VALUE.as_bytes());
}

#[test]
fn a_file_its_group_or_others_may_read_should_be_refused() {
    let (_d, dir) = tmp();
    let f = dir.join("db-pass");
    for mode in [0o644, 0o640, 0o604, 0o606, 0o660] {
        write(&f, VALUE.as_bytes(), mode);
        let e = refused(&f);
        assert!(
            e.contains(&format!("(mode {mode:04o})")) && e.contains("chmod 600"),
            "{e}"
        );
    }
}

#[test]
fn a_file_of_another_user_should_be_refused() {
    let (_d, dir) = tmp();
    let f = dir.join("db-pass");
    write(&f, VALUE.as_bytes(), 0o600);
    let me = crate::host::euid();
    let e = read_secret_as(&f, me + 1).unwrap_err();
    assert!(e.contains(&format!("owned by uid {me}")), "{e}");
}

#[test]
fn a_symlink_out_of_its_directory_should_be_refused_unopened() {
    let (_d, dir) = tmp();
    let link = dir.join("db-pass");
    symlink("/etc/shadow", &link).unwrap();
    let e = refused(&link);
    assert_eq!(
        e,
        "a symlink to /etc/shadow, outside its directory: refused, never opened"
    );
    // Within its directory: followed.
    let (_o, other) = tmp();
    write(&other.join("real"), VALUE.as_bytes(), 0o600);
    symlink(other.join("real"), other.join("link")).unwrap();
    assert_eq!(read_secret(&other.join("link")).unwrap(), VALUE.as_bytes());
}

#[test]
fn a_fifo_or_a_device_should_be_refused_without_blocking() {
    let (_d, dir) = tmp();
    let fifo = dir.join("db-pass");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(refused(&fifo).starts_with("a FIFO, not a regular file"));
    assert!(refused(Path::new("/dev/null")).starts_with("a character device"));
    assert!(refused(&dir).starts_with("a directory"));
}

#[test]
fn a_file_over_podmans_bound_should_be_refused_unread() {
    let (_d, dir) = tmp();
    let f = dir.join("big");
    write(&f, &vec![b'x'; 10 << 20], 0o600);
    let e = refused(&f);
    assert!(
        e.starts_with("10485760 bytes or more: refused unread"),
        "{e}"
    );
    write(&f, &vec![b'x'; MAX_SECRET_BYTES as usize], 0o600);
    assert_eq!(read_secret(&f).unwrap().len() as u64, MAX_SECRET_BYTES);
    write(&f, &vec![b'x'; MAX_SECRET_BYTES as usize + 1], 0o600);
    assert!(refused(&f).contains("at most 511999 bytes"));
}

#[test]
fn an_empty_missing_or_relative_file_should_be_refused() {
    let (_d, dir) = tmp();
    let f = dir.join("empty");
    write(&f, b"", 0o600);
    assert!(refused(&f).starts_with("empty"));
    assert!(refused(&dir.join("gone")).starts_with("cannot read: No such file"));
    assert_eq!(refused(Path::new("db-pass")), "not an absolute path");
}

fn app_with(secret: &Path) -> App {
    let text = format!(
        "app:\n  id: web\n  container:\n    image: x\n    secrets:\n      - file: {}\n        env: DB_PASSWORD\n",
        secret.display()
    );
    parse_manifest(Path::new("web.yaml"), &text).unwrap()
}

#[test]
fn an_error_should_name_manifest_field_and_file_never_the_value() {
    let (_d, dir) = tmp();
    let f = dir.join("db-pass");
    write(&f, VALUE.as_bytes(), 0o644);
    let e = load(Path::new("/apps/web.yaml"), &app_with(&f)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "/apps/web.yaml: app.container.secrets[0].file: {}: open to its group",
            f.display()
        )),
        "{text}"
    );
    assert!(!text.contains(VALUE) && !format!("{e:?}").contains(VALUE));
}

#[test]
fn a_value_should_never_print() {
    let (_d, dir) = tmp();
    let f = dir.join("db-pass");
    write(&f, VALUE.as_bytes(), 0o600);
    let s = load(Path::new("web.yaml"), &app_with(&f)).unwrap();
    let debug = format!("{s:?} {s:#?}");
    assert!(!debug.contains(VALUE), "{debug}");
    assert!(debug.contains("SecretValue(13 bytes, redacted)"), "{debug}");
    assert_eq!(s.0[0].value.bytes(), VALUE.as_bytes());
}

#[test]
fn the_spec_hash_should_change_with_the_content_and_stay_without_secrets() {
    let (_d, dir) = tmp();
    let f = dir.join("db-pass");
    write(&f, VALUE.as_bytes(), 0o600);
    let app = app_with(&f);
    let plain = parse_manifest(
        Path::new("web.yaml"),
        "app:\n  id: web\n  container:\n    image: x\n",
    )
    .unwrap();
    assert_eq!(
        spec_hash(&plain.container, &Secrets::default()),
        plain.container.hash()
    );
    let a = spec_hash(&app.container, &load(Path::new("w"), &app).unwrap());
    write(&f, b"another value", 0o600);
    let s = load(Path::new("w"), &app).unwrap();
    let b = spec_hash(&app.container, &s);
    assert_ne!(a, b);
    assert_ne!(a, app.container.hash());
    assert_eq!(b.len(), 16);
    let name = s.0[0].podman_name("web");
    assert!(
        name.starts_with("podkeeper.web.0.") && name.len() == "podkeeper.web.0.".len() + 12,
        "{name}"
    );
    assert_eq!(app_of(&name), Some("web"));
    assert_eq!(app_of("other.web.0.x"), None);
}

#[test]
fn a_broken_secret_should_leave_the_last_valid_declaration_standing_until_fixed() {
    let (_d, apps) = tmp();
    let (_s, dir) = tmp();
    let secret = dir.join("db-pass");
    write(&secret, VALUE.as_bytes(), 0o600);
    let text = format!(
        "app:\n  id: web\n  container:\n    image: x\n    secrets:\n      - file: {}\n        env: DB_PASSWORD\n",
        secret.display()
    );
    std::fs::write(apps.join("web.yaml"), text).unwrap();
    let mut d = crate::manifest::AppsDir::new(&apps);
    let first = d.read().unwrap();
    let hash = first.apps["web"].spec_hash.clone();
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    // World-readable, deleted, a link to /etc/shadow: the declaration stands.
    let breaks: [&dyn Fn(); 3] = [
        &|| write(&secret, b"new", 0o644),
        &|| {}, // deleted
        &|| symlink("/etc/shadow", &secret).unwrap(),
    ];
    for broken in breaks {
        let _ = std::fs::remove_file(&secret);
        broken();
        let set = d.read().unwrap();
        assert_eq!(set.apps["web"].spec_hash, hash);
        assert_eq!(set.apps["web"].secrets, first.apps["web"].secrets);
        assert_eq!(set.errors.len(), 1);
        let e = set.errors[0].to_string();
        assert!(
            e.contains("web.yaml: app.container.secrets[0].file: ")
                && e.contains(&secret.display().to_string())
                && e.ends_with("(app web keeps its last valid declaration)")
                && !e.contains(VALUE),
            "{e}"
        );
    }
    let _ = std::fs::remove_file(&secret);
    write(&secret, b"the next value", 0o600);
    let set = d.read().unwrap();
    assert!(set.errors.is_empty());
    assert_ne!(set.apps["web"].spec_hash, hash, "a new value is drift");
    assert_eq!(
        set.apps["web"].secrets.0[0].value.bytes(),
        b"the next value"
    );
}

#[test]
fn the_directories_of_every_secret_should_be_watched_once() {
    let (_d, apps) = tmp();
    let (_s, dir) = tmp();
    for (id, file) in [("a", "one"), ("b", "two")] {
        write(&dir.join(file), VALUE.as_bytes(), 0o600);
        let text = format!(
            "app:\n  id: {id}\n  container:\n    image: x\n    secrets:\n      - file: {}\n        target: /run/secrets/x\n",
            dir.join(file).display()
        );
        std::fs::write(apps.join(format!("{id}.yaml")), text).unwrap();
    }
    let set = crate::manifest::load_dir(&apps).unwrap();
    assert_eq!(dirs(&set), [dir]);
}
