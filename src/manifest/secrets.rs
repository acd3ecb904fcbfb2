//! `container.secrets`: each secret file read safely when the apps directory is read, its value kept out of every output, and the spec hash that changes with it.
//!
//! A secret file must be a regular file (never a FIFO or a device: a read
//! never blocks), owned by podkeeper's user, with no permission for its
//! group or others (`chmod 600`), not a symlink leading out of its own
//! directory (a link to `/etc/shadow` is refused before it is opened), not
//! empty, and below podman's own bound (512,000 bytes): a larger one is
//! refused unread. The open (`O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`) and an
//! `fstat` of the opened file check it again, so a file swapped in between
//! is refused too; the read is bounded.
//!
//! A violation is an error that names the manifest, the field and the
//! secret's path and the rule, never a byte of the content; the app's last
//! valid declaration (with its last valid secret values) stands meanwhile.
//!
//! The values live only in memory ([`SecretValue`] prints as its length)
//! and reach podman as podman secrets (`runtime::podman::secrets`).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::excerpt::file_name;
use super::read::kind_of;
use super::{App, ContainerSpec, ManifestError};

/// The largest secret read: podman refuses 512,000 bytes and more ("secret
/// data must be larger than 0 and less than 512000 bytes", 4.3 and 5.x).
pub const MAX_SECRET_BYTES: u64 = 512_000 - 1;

/// The prefix of every podman secret podkeeper makes: what it lists, and
/// the only secrets it ever removes.
pub const PODMAN_PREFIX: &str = "podkeeper.";

/// A secret's content. Its `Debug` shows only its length, so no debug line,
/// panic message or recording can print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Arc<[u8]>);

impl SecretValue {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> Self {
        SecretValue(bytes.into())
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({} bytes, redacted)", self.0.len())
    }
}

/// One `container.secrets` entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedSecret {
    /// Its index in `container.secrets`.
    pub index: usize,
    /// SHA-256 of the content: versions the podman secret and the spec hash.
    pub digest: [u8; 32],
    pub value: SecretValue,
}

impl LoadedSecret {
    /// The podman secret holding this version of it: recognisably
    /// podkeeper's, the app's (app ids hold no `.`), versioned by content:
    /// `podkeeper.web.0.1a2b3c4d5e6f`. A changed file is a new name, so a
    /// create never finds an old value under the name it asks for.
    pub fn podman_name(&self, app: &str) -> String {
        format!(
            "{}{}.{}",
            podman_prefix(app),
            self.index,
            hex(&self.digest[..6])
        )
    }
}

/// `podkeeper.<app>.`: the names of every version of every secret of that app.
pub fn podman_prefix(app: &str) -> String {
    format!("{PODMAN_PREFIX}{app}.")
}

/// The app a podman secret podkeeper made belongs to, by its name.
pub fn app_of(podman_name: &str) -> Option<&str> {
    podman_name
        .strip_prefix(PODMAN_PREFIX)?
        .split_once('.')
        .map(|(app, _)| app)
}

/// Every secret of one app, in `container.secrets` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets(pub Vec<LoadedSecret>);

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The directories holding the secret files of `set`'s apps, each once:
/// what is watched so that a changed secret is read again at once.
pub fn dirs(set: &super::ManifestSet) -> Vec<std::path::PathBuf> {
    let dirs: std::collections::BTreeSet<_> = set
        .apps
        .values()
        .flat_map(|a| &a.app.container.secrets)
        .filter_map(|s| Path::new(&s.file).parent().map(Path::to_path_buf))
        .filter(|d| d.is_absolute())
        .collect();
    dirs.into_iter().collect()
}

/// Read every secret file `app` names (its manifest is `file`).
pub fn load(file: &Path, app: &App) -> Result<Secrets, ManifestError> {
    let mut out = Vec::with_capacity(app.container.secrets.len());
    for (index, s) in app.container.secrets.iter().enumerate() {
        let bytes = read_secret(Path::new(&s.file)).map_err(|why| ManifestError {
            file: file.to_path_buf(),
            field: Some(format!("app.container.secrets[{index}].file")),
            message: format!("{}: {why}", file_name(&s.file)),
            stands: None,
        })?;
        out.push(LoadedSecret {
            index,
            digest: Sha256::digest(&bytes).into(),
            value: SecretValue(bytes.into()),
        });
    }
    Ok(Secrets(out))
}

/// The spec hash of a container with these secret values: exactly
/// [`ContainerSpec::hash`] without secrets (no manifest valid before
/// secrets existed changes hash), else a hash over the same JSON and each
/// secret's SHA-256 digest, so a changed file is drift.
///
/// The value is never in it in clear. A digest of a short, guessable secret
/// could still be tested against, guess by guess, by whoever sees the hash
/// and knows the rest of the manifest: the hash is on the container's label
/// and in podkeeper's debug lines. That is no leak worth a keyed hash: the
/// label and the podman secret names are visible only to podman's user,
/// who can read every secret in clear in podman's own secret store anyway;
/// and a keyed hash would need a key kept stable across restarts (or every
/// restart recreates every app with a secret), which podkeeper has no
/// private place for. A secret worth the name is not guessable.
pub fn spec_hash(container: &ContainerSpec, secrets: &Secrets) -> String {
    if secrets.is_empty() {
        return container.hash();
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(container).unwrap_or_default());
    for s in &secrets.0 {
        h.update(s.digest);
    }
    hex(&h.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read one secret file under the rules of the module documentation; the
/// error says which rule, never what the file holds.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    read_secret_as(path, crate::host::euid())
}

fn read_secret_as(path: &Path, euid: u32) -> Result<Vec<u8>, String> {
    if !path.is_absolute() {
        return Err("not an absolute path".into());
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    let target = if meta.file_type().is_symlink() {
        let dir = path
            .parent()
            .and_then(|d| std::fs::canonicalize(d).ok())
            .ok_or("its directory cannot be read")?;
        let target = std::fs::canonicalize(path).map_err(|e| format!("cannot read: {e}"))?;
        if !target.starts_with(&dir) {
            return Err(format!(
                "a symlink to {}, outside its directory: refused, never opened",
                file_name(&target.display().to_string())
            ));
        }
        target
    } else {
        path.to_path_buf()
    };
    let meta = std::fs::symlink_metadata(&target).map_err(|e| format!("cannot read: {e}"))?;
    check(&meta, euid, "never opened")?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&target)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "a symlink swapped in while reading: refused".to_string(),
            _ => format!("cannot read: {e}"),
        })?;
    // Again on what was opened: a file swapped in since the lstat.
    check(
        &file.metadata().map_err(|e| format!("cannot read: {e}"))?,
        euid,
        "not read",
    )?;
    let mut bytes = Vec::new();
    Read::take(&file as &File, MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    if bytes.is_empty() {
        return Err("empty: a secret needs at least one byte".into());
    }
    Ok(bytes)
}

/// The rules a secret file's metadata must pass.
fn check(meta: &std::fs::Metadata, euid: u32, refused: &str) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!(
            "{}, not a regular file: refused, {refused}",
            kind_of(meta)
        ));
    }
    if meta.uid() != euid {
        return Err(format!(
            "owned by uid {}, not by podkeeper's user (uid {euid}): refused, {refused} (chown it)",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "open to its group or others (mode {mode:04o}): refused, {refused} (chmod 600)"
        ));
    }
    if meta.size() > MAX_SECRET_BYTES {
        return Err(too_large(meta.size()));
    }
    Ok(())
}

fn too_large(size: u64) -> String {
    format!(
        "{size} bytes or more: refused unread (allowed: at most {MAX_SECRET_BYTES} bytes, podman's bound)"
    )
}

#[cfg(test)]
mod tests;
