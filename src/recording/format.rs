//! The recording format: the header and the lines, as `record` writes them and `replay` reads them.
//!
//! The file starts with a header (format version, podman's version, the
//! parameters, the images, and the containers that existed: podkeeper's and
//! those of systemd units), then has one line per thing received:
//!
//! ```text
//! {"t":1.234567,"source":"podman","event":{…the event as podman sent it…}}
//! {"t":1.300000,"source":"apps-dir","event":{"path":"web.yaml","kind":"rename-to","content":"app: …"}}
//! {"t":2.000000,"source":"unit-dir","event":{"dir":0,"path":"a.container","kind":"remove"}}
//! {"t":5.000000,"source":"stream","event":{"status":"lost","error":"events stream closed by podman"}}
//! ```
//!
//! `t` is seconds since the recording started, as the recorder received it
//! (so podman's delivery lag is in the file, as podkeeper would see it).
//! Manifest files carry their new contents, so a replay can reproduce an edit.
//! The serde types below are the format: [`super::record`] writes them,
//! [`super::fixture::Fixture::parse`] reads them back and checks what serde cannot (bounds,
//! time order, file names that stay inside their directory).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::trigger::{ChangeKind, StreamStatus};

/// The version of the file format, in the header's `podkeeper_record` field.
pub const FORMAT_VERSION: u64 = 1;

/// The header line, as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeaderLine {
    /// [`FORMAT_VERSION`]; without it the file is not a recording.
    #[serde(default)]
    pub podkeeper_record: Option<u64>,
    #[serde(default)]
    pub podkeeper_version: Option<String>,
    #[serde(default)]
    pub podman: PodmanLine,
    /// RFC 3339, to the millisecond.
    #[serde(default)]
    pub started: Option<String>,
    /// A number, checked by the reader (an integer within [`super::fixture::MAX_UNIX`]).
    #[serde(default)]
    pub started_unix: Option<Number>,
    #[serde(default)]
    pub params: ParamsLine,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub containers: Vec<ContainerLine>,
}

/// The podman that was recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodmanLine {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub rootless: Option<bool>,
}

/// `record`'s command line, for people reading the file; the reader needs
/// only the number of unit directories.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParamsLine {
    #[serde(default)]
    pub socket: Option<String>,
    #[serde(default)]
    pub apps: Option<String>,
    #[serde(default)]
    pub unit_dirs: Vec<String>,
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub name_prefix: Option<String>,
}

/// What the simulation needs of a container, in podman's own field names
/// (so `record` reads podman's container list straight into it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerLine {
    pub id: String,
    pub names: Vec<String>,
    #[serde(default)]
    pub image: Option<String>,
    pub state: String,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Unix seconds; 0 (or a negative year-one value) means never.
    #[serde(default)]
    pub started_at: Option<Number>,
    #[serde(default)]
    pub exited_at: Option<Number>,
    #[serde(default)]
    pub exit_code: Option<i64>,
}

/// Where a line came from: its `source` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Podman,
    Stream,
    AppsDir,
    UnitDir,
}

impl Source {
    pub const fn name(self) -> &'static str {
        match self {
            Source::Podman => "podman",
            Source::Stream => "stream",
            Source::AppsDir => "apps-dir",
            Source::UnitDir => "unit-dir",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        [
            Source::Podman,
            Source::Stream,
            Source::AppsDir,
            Source::UnitDir,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// The `event` of a `stream` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum StreamLine {
    Connected {
        #[serde(default)]
        resumed: bool,
    },
    Lost {
        #[serde(default)]
        error: String,
    },
}

impl From<&StreamStatus> for StreamLine {
    fn from(s: &StreamStatus) -> Self {
        match s {
            StreamStatus::Connected { resumed } => StreamLine::Connected { resumed: *resumed },
            StreamStatus::Lost { error } => StreamLine::Lost {
                error: error.clone(),
            },
        }
    }
}

impl From<StreamLine> for StreamStatus {
    fn from(s: StreamLine) -> Self {
        match s {
            StreamLine::Connected { resumed } => StreamStatus::Connected { resumed },
            StreamLine::Lost { error } => StreamStatus::Lost { error },
        }
    }
}

/// The `event` of an `apps-dir` or `unit-dir` line: the path relative to the
/// watched directory, the kind, and the file's contents (every file's, for a
/// rescan) when they were small enough to record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileLine {
    /// Which `--unit-dir`, by position (unit-dir lines only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<usize>,
    pub path: String,
    pub kind: ChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, String>>,
}

/// One line after the header: `t` as seconds with microseconds (exact in
/// JSON, and the same on every read), the source, the event.
pub fn line(t: Duration, source: Source, event: &impl Serialize) -> serde_json::Result<String> {
    Ok(format!(
        "{{\"t\":{}.{:06},\"source\":\"{}\",\"event\":{}}}",
        t.as_secs(),
        t.subsec_micros(),
        source.name(),
        serde_json::to_string(event)?
    ))
}
