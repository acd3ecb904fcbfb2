//! What flows through the one channel: triggers from the sources, and the keys they map to.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The unit of work the reactor schedules. One key never runs twice at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// Reconcile one app's container.
    App(String),
    /// Reconcile one companion unit.
    Companion(String),
    /// List everything in one call and queue what differs.
    Sweep,
    /// Re-read the apps directory.
    Manifests,
    /// Run one app's healthcheck (its own timer: the key requeues itself).
    Health(String),
}

impl Key {
    /// The app whose container this key acts on (one run per app at a time).
    pub fn app(&self) -> Option<&str> {
        match self {
            Key::App(id) | Key::Health(id) => Some(id),
            Key::Companion(_) | Key::Sweep | Key::Manifests => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        KeyRef::from(self).fmt(f)
    }
}

/// A [`Key`] borrowed: what a record names without copying the name (the
/// reactor's hot path schedules `Key::App(id.to_string())` and words its
/// verdict, if anyone asks, from the event's own `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRef<'a> {
    App(&'a str),
    Companion(&'a str),
    Sweep,
    Manifests,
    Health(&'a str),
}

impl<'a> From<&'a Key> for KeyRef<'a> {
    fn from(key: &'a Key) -> Self {
        match key {
            Key::App(id) => KeyRef::App(id),
            Key::Companion(name) => KeyRef::Companion(name),
            Key::Sweep => KeyRef::Sweep,
            Key::Manifests => KeyRef::Manifests,
            Key::Health(id) => KeyRef::Health(id),
        }
    }
}

impl fmt::Display for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::App(id) => write!(f, "app/{id}"),
            KeyRef::Companion(name) => write!(f, "companion/{name}"),
            KeyRef::Sweep => f.write_str("sweep"),
            KeyRef::Manifests => f.write_str("manifests"),
            KeyRef::Health(id) => write!(f, "health/{id}"),
        }
    }
}

/// A message from a source to the reactor.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// An event from podman's events stream.
    Podman(PodmanEvent),
    /// The podman events stream (dis)connected.
    Stream(StreamStatus),
    /// Something changed in the apps directory.
    AppsDir(FileChange),
    /// Something changed in a Quadlet unit directory.
    UnitDir(FileChange),
    /// The periodic full sweep is due.
    SweepTick,
    /// conmon's exit file of a container changed: its main process just
    /// ended (the events stream says so too, later).
    ContainerExited { id: String, file: ExitFile },
    /// SIGHUP: re-read the manifests and every companion's unit file, and sweep.
    Reload,
    /// `podkeeper retry APP` (through the control socket): forget the
    /// app's failed spec and reconcile it now.
    Retry(String),
}

/// What became of a container's exit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitFile {
    /// conmon wrote it, the instant the process ended; nobody has looked yet.
    Written,
    /// podman read and deleted it: its cleanup of the exit is under way.
    Collected,
}

/// The podman events stream's state, as the events source sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    /// Subscribed. `resumed` is false on the first connection, true after a gap.
    Connected { resumed: bool },
    /// The stream broke (service stopped, socket gone); reconnecting.
    Lost { error: String },
}

/// One change in a watched directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// The watched directory.
    pub dir: PathBuf,
    /// The file, relative to `dir` (empty for the directory itself).
    pub path: PathBuf,
    pub kind: ChangeKind,
}

impl FileChange {
    /// Look at the whole directory again (a missed or unknowable change).
    pub fn rescan(dir: PathBuf) -> Self {
        FileChange {
            dir,
            path: PathBuf::new(),
            kind: ChangeKind::Rescan,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Create,
    Modify,
    Remove,
    RenameFrom,
    RenameTo,
    /// The watcher lost events (inotify queue overflow): assume anything changed.
    Rescan,
}

impl ChangeKind {
    /// The change's name, as the recording format and the debug line write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Modify => "modify",
            ChangeKind::Remove => "remove",
            ChangeKind::RenameFrom => "rename-from",
            ChangeKind::RenameTo => "rename-to",
            ChangeKind::Rescan => "rescan",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A podman event as the libpod events endpoint sends it. The fields the
/// reactor reads are typed; every other field is kept in `rest`, so writing
/// the event back out (record) loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodmanEvent {
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl PodmanEvent {
    /// The container's (or image's) name, from the attributes.
    pub fn name(&self) -> &str {
        self.actor
            .attributes
            .get("name")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// A label of the container; podman copies labels into the attributes.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }

    /// One line of podman's events stream (JSON), as the events source reads
    /// it: bytes that are not UTF-8 replaced, blank lines are None.
    pub fn from_line(line: &[u8]) -> Option<Result<PodmanEvent, serde_json::Error>> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        (!line.is_empty()).then(|| serde_json::from_str(line))
    }

    /// An identity for deduplicating events replayed after a reconnect.
    pub fn identity(&self) -> (i64, &str, &str, &str) {
        (self.time_nano, &self.actor.id, &self.typ, &self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIED: &str = r#"{"status":"died","id":"abc","from":"localhost/bb:1","Type":"container","Action":"died","Actor":{"ID":"abc","Attributes":{"containerExitCode":"137","image":"localhost/bb:1","io.podkeeper.app":"web","name":"web"}},"scope":"local","time":1764220000,"timeNano":1764220000123456789}"#;

    #[test]
    fn podman_event_should_round_trip_every_field() {
        let ev: PodmanEvent = serde_json::from_str(DIED).unwrap();
        assert_eq!(ev.name(), "web");
        assert_eq!(ev.label(crate::APP_LABEL), Some("web"));
        let back: serde_json::Value = serde_json::to_value(&ev).unwrap();
        let orig: serde_json::Value = serde_json::from_str(DIED).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn podman_event_should_require_its_core_fields() {
        let e = serde_json::from_str::<PodmanEvent>(
            r#"{"Type":"container","Actor":{"ID":"x"},"timeNano":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Action"), "{e}");
    }

    #[test]
    fn keys_should_print_as_kind_slash_name() {
        assert_eq!(Key::App("web".into()).to_string(), "app/web");
        assert_eq!(Key::Companion("t".into()).to_string(), "companion/t");
    }
}
