//! Reading one file of a trusted directory safely: regular files only, symlinks only within the directory, bounded size, never blocking.
//!
//! A FIFO named `x.yaml` would block a reader forever, a device may do
//! anything when opened, and a symlink to `/etc/shadow` would have its content
//! parsed and echoed in errors: all are refused by `lstat`, before any open.
//! The open itself (`O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, close-on-exec) and
//! an `fstat` of the opened file close the race of a file swapped in between.
//! Reads go through `take(limit + 1)`, so a file that grows while read is
//! still refused, never read whole.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::limits::human;

/// What identifies one version of a file without reading it: if none of
/// these changed, neither did the content (but see [`Fingerprint::is_racy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Fingerprint {
    pub fn of(m: &Metadata) -> Self {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether a write in the same clock tick as the read that took this
    /// fingerprint could have left it unchanged (git's "racily clean"
    /// entries): file timestamps are coarse, up to seconds on some file
    /// systems. Such a file's content is compared again on the next read.
    pub fn is_racy(&self, read_at_ns: i128) -> bool {
        const MARGIN_NS: i128 = 2_000_000_000;
        read_at_ns - self.mtime_ns.max(self.ctime_ns) < MARGIN_NS
    }
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A FIFO, directory, device or socket (what it is).
    NotRegular(&'static str),
    /// A symlink that does not resolve to a regular file inside the directory.
    SymlinkOutside(PathBuf),
    SymlinkTo(&'static str),
    TooLarge(u64),
    /// Mode o+w: anyone could change what podkeeper runs.
    WritableByAll(u32),
    NotUtf8,
    Io(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotRegular(what) => {
                write!(f, "{what}, not a regular file: refused, never opened")
            }
            Refusal::SymlinkOutside(target) => write!(
                f,
                "a symlink to {}, outside the directory: refused, never opened",
                super::excerpt::file_name(&target.display().to_string())
            ),
            Refusal::SymlinkTo(what) => {
                write!(f, "a symlink to {what}, not a regular file: refused, never opened")
            }
            Refusal::TooLarge(size) => write!(
                f,
                "{size} bytes or more: refused unread (allowed: at most {})",
                human(super::limits::MAX_FILE_BYTES)
            ),
            Refusal::WritableByAll(mode) => write!(
                f,
                "writable by every user (mode {mode:04o}): refused, anyone could change what runs (chmod o-w)"
            ),
            Refusal::NotUtf8 => write!(f, "not UTF-8 text: refused"),
            Refusal::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

/// What a directory entry is, as errors name it.
pub fn kind_of(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "a regular file"
    }
}

/// The file `path` of the directory `dir` (canonical), followed to the
/// regular file it is or names, with its fingerprint, without opening it.
pub fn locate(dir: &Path, path: &Path) -> Result<(PathBuf, Fingerprint), Refusal> {
    let io = |e: std::io::Error| Refusal::Io(e.to_string());
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let (target, meta) = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(io)?;
        if !target.starts_with(dir) {
            return Err(Refusal::SymlinkOutside(target));
        }
        let meta = std::fs::symlink_metadata(&target).map_err(io)?;
        if !meta.is_file() {
            return Err(Refusal::SymlinkTo(kind_of(&meta)));
        }
        (target, meta)
    } else {
        (path.to_path_buf(), meta)
    };
    if !meta.is_file() {
        return Err(Refusal::NotRegular(kind_of(&meta)));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(Refusal::WritableByAll(meta.mode() & 0o7777));
    }
    if meta.size() > super::limits::MAX_FILE_BYTES {
        return Err(Refusal::TooLarge(meta.size()));
    }
    Ok((target, Fingerprint::of(&meta)))
}

/// Read a regular file (as [`locate`] found it) of at most `limit` bytes.
/// Never blocks (a FIFO swapped in meanwhile is refused by `fstat`), never
/// follows a symlink swapped in, never reads more than `limit + 1` bytes.
pub fn read_bounded(target: &Path, limit: u64) -> Result<(Vec<u8>, Fingerprint), Refusal> {
    let io = |e: std::io::Error| Refusal::Io(e.to_string());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(target)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refusal::NotRegular("a symlink swapped in while reading"),
            _ => io(e),
        })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Refusal::NotRegular(kind_of(&meta)));
    }
    if meta.size() > limit {
        return Err(Refusal::TooLarge(meta.size()));
    }
    let mut bytes = Vec::with_capacity(meta.size() as usize + 1);
    Read::take(&file as &File, limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(Refusal::TooLarge(bytes.len() as u64));
    }
    Ok((bytes, Fingerprint::of(&meta)))
}

/// [`locate`] and [`read_bounded`] as text: the tests' shorthand (the apps
/// directory reads bytes, to fingerprint them first).
#[cfg(test)]
pub fn read_text(dir: &Path, path: &Path) -> Result<(String, Fingerprint), Refusal> {
    let (target, _) = locate(dir, path)?;
    let (bytes, fp) = read_bounded(&target, super::limits::MAX_FILE_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| Refusal::NotUtf8)?;
    Ok((text, fp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let canon = std::fs::canonicalize(d.path()).unwrap();
        (d, canon)
    }

    #[test]
    fn a_fifo_should_be_refused_without_blocking() {
        let (_d, dir) = tmp();
        let fifo = dir.join("x.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(read_text(&dir, &fifo), Err(Refusal::NotRegular("a FIFO")));
        // Even when asked to read it directly: the non-blocking open and fstat refuse it.
        assert_eq!(
            read_bounded(&fifo, 10).unwrap_err(),
            Refusal::NotRegular("a FIFO")
        );
    }

    #[test]
    fn a_directory_should_be_refused() {
        let (_d, dir) = tmp();
        std::fs::create_dir(dir.join("x.yaml")).unwrap();
        let e = read_text(&dir, &dir.join("x.yaml")).unwrap_err();
        assert_eq!(e, Refusal::NotRegular("a directory"));
        assert_eq!(
            e.to_string(),
            "a directory, not a regular file: refused, never opened"
        );
    }

    #[test]
    fn a_symlink_should_be_followed_only_inside_the_directory() {
        let (_d, dir) = tmp();
        let (_o, outside) = tmp();
        std::fs::write(outside.join("secret"), "root:secret\n").unwrap();
        symlink(outside.join("secret"), dir.join("x.yaml")).unwrap();
        let e = read_text(&dir, &dir.join("x.yaml")).unwrap_err();
        assert!(matches!(e, Refusal::SymlinkOutside(_)), "{e:?}");
        assert!(!e.to_string().contains("root:secret"));
        std::fs::write(dir.join("real.yaml"), "app: {}\n").unwrap();
        symlink("real.yaml", dir.join("link.yaml")).unwrap();
        assert_eq!(
            read_text(&dir, &dir.join("link.yaml")).unwrap().0,
            "app: {}\n"
        );
        symlink(".", dir.join("loop.yaml")).unwrap();
        assert_eq!(
            read_text(&dir, &dir.join("loop.yaml")).unwrap_err(),
            Refusal::SymlinkTo("a directory")
        );
    }

    #[test]
    fn a_large_file_should_be_refused_unread_and_a_growing_one_cut() {
        let (_d, dir) = tmp();
        let big = dir.join("big.yaml");
        std::fs::write(&big, vec![b'x'; 1 << 20 | 1]).unwrap();
        assert_eq!(read_text(&dir, &big), Err(Refusal::TooLarge((1 << 20) + 1)));
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        assert_eq!(read_bounded(&big, 99).unwrap_err(), Refusal::TooLarge(100));
        assert_eq!(read_bounded(&big, 100).unwrap().0.len(), 100);
    }

    #[test]
    fn a_file_everyone_may_write_should_be_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, dir) = tmp();
        let f = dir.join("a.yaml");
        std::fs::write(&f, "app: {}\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(read_text(&dir, &f), Err(Refusal::WritableByAll(0o666)));
    }

    #[test]
    fn a_changed_file_should_change_its_fingerprint() {
        let (_d, dir) = tmp();
        let f = dir.join("a.yaml");
        std::fs::write(&f, "one").unwrap();
        let (_, a) = locate(&dir, &f).unwrap();
        std::fs::write(&f, "two!").unwrap();
        let (_, b) = locate(&dir, &f).unwrap();
        assert_ne!(a, b);
        assert!(b.is_racy(b.mtime_ns + 1), "just written");
        assert!(!b.is_racy(b.mtime_ns + 3_000_000_000));
    }
}
