//! A recording read whole and checked: the header, then every line in time order; the first bad line is an error naming it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Number, Value};

use super::format::{FileLine, HeaderLine, Source, StreamLine, FORMAT_VERSION};
use crate::runtime::sim_podman::SimContainer;
use crate::runtime::ContainerState;
use crate::trigger::{ChangeKind, PodmanEvent, StreamStatus};

/// The latest `t` a line may have: 30 days. Virtual time is cheap (the
/// replay jumps over quiet stretches), but beyond this a time is a typo, and
/// far enough beyond it the clock arithmetic would overflow.
pub const MAX_T: Duration = Duration::from_secs(30 * 86400);
/// The latest `started_unix` (and container start/exit second) a header may
/// have: the end of year 9999, as far as RFC 3339 dates go.
pub const MAX_UNIX: i64 = 253_402_300_799;

/// A recording file, read and checked.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub header: Header,
    pub records: Vec<Record>,
}

/// The header line.
#[derive(Debug, Clone)]
pub struct Header {
    pub podman_version: String,
    /// Wall-clock second the recording started (container start times are relative to it).
    pub started_unix: i64,
    /// The moment the recording started, to the millisecond when the header
    /// says (`started`), else `started_unix`: the simulated podman's clock
    /// starts there, so recorded event times compare with it.
    pub started: jiff::Timestamp,
    pub images: Vec<String>,
    pub containers: Vec<SimContainer>,
    /// Container start times as seconds before the recording started, by name.
    pub ages: BTreeMap<String, (Option<i64>, Option<i64>)>,
}

/// One recorded line.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its line number in the file (1 is the header).
    pub line: usize,
    /// Since the recording started.
    pub t: Duration,
    pub what: Recorded,
}

#[derive(Debug, Clone)]
pub enum Recorded {
    Podman(PodmanEvent),
    Stream(StreamStatus),
    AppsDir(FileRecord),
    UnitDir(usize, FileRecord),
}

/// A recorded file change, with the file's contents when they were recorded.
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub path: PathBuf,
    pub kind: ChangeKind,
    pub content: Option<String>,
    /// For a rescan: every file of the directory.
    pub files: Option<BTreeMap<String, String>>,
}

/// What is wrong with a recording, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureError {
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for FixtureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for FixtureError {}

impl Fixture {
    pub fn load(path: &Path) -> anyhow::Result<Fixture> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let text =
            utf8_lines(&bytes).with_context(|| format!("bad recording {}", path.display()))?;
        Fixture::parse(text).with_context(|| format!("bad recording {}", path.display()))
    }

    /// Read a whole recording; the first bad line is an error.
    pub fn parse(text: &str) -> Result<Fixture, FixtureError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let (_, first) = lines.next().ok_or(FixtureError {
            line: 1,
            what: "empty file: no header".into(),
        })?;
        let header = parse_header(first).map_err(|what| FixtureError { line: 1, what })?;
        let mut records = Vec::new();
        let mut last = Duration::ZERO;
        for (line, text) in lines {
            if text.trim().is_empty() {
                continue;
            }
            let record = parse_record(text, header.unit_dir_count)
                .map_err(|what| FixtureError { line, what })?;
            let (t, what) = record;
            if t < last {
                return Err(FixtureError {
                    line,
                    what: format!(
                        "t {} is earlier than the line before ({}): lines must be in time order",
                        t.as_secs_f64(),
                        last.as_secs_f64()
                    ),
                });
            }
            last = t;
            records.push(Record { line, t, what });
        }
        Ok(Fixture {
            header: header.header,
            records,
        })
    }

    /// The offset of the last line.
    pub fn duration(&self) -> Duration {
        self.records.last().map_or(Duration::ZERO, |r| r.t)
    }
}

/// The file as text, or the number of its first line that is not UTF-8.
fn utf8_lines(bytes: &[u8]) -> Result<&str, FixtureError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        FixtureError {
            line: good.iter().filter(|b| **b == b'\n').count() + 1,
            what: format!(
                "not UTF-8 (byte {} of the line)",
                good.len() - good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1
            ),
        }
    })
}

/// The reader's view of a line: `t`, `source` and `event` are checked one by
/// one, so an error names the field.
#[derive(Deserialize)]
struct LineIn {
    #[serde(default)]
    t: Value,
    #[serde(default)]
    source: Value,
    event: Option<Value>,
}

struct ParsedHeader {
    header: Header,
    unit_dir_count: usize,
}

fn parse_header(text: &str) -> Result<ParsedHeader, String> {
    let v: HeaderLine = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("header: {e}"),
        _ => format!("header is not JSON: {e}"),
    })?;
    match v.podkeeper_record {
        Some(FORMAT_VERSION) => {}
        Some(n) => {
            return Err(format!(
                "recording format {n}; this podkeeper reads format {FORMAT_VERSION}"
            ))
        }
        None => {
            return Err(
                "not a podkeeper recording: the header has no \"podkeeper_record\" version".into(),
            )
        }
    }
    let started_unix = v
        .started_unix
        .as_ref()
        .and_then(Number::as_i64)
        .ok_or("header: \"started_unix\" missing or not an integer")?;
    if !(0..=MAX_UNIX).contains(&started_unix) {
        return Err(format!(
            "header: \"started_unix\" {started_unix} is out of range (allowed: 0 to {MAX_UNIX})"
        ));
    }
    let mut containers = Vec::new();
    let mut ages = BTreeMap::new();
    for (i, c) in v.containers.into_iter().enumerate() {
        let name = c
            .names
            .first()
            .ok_or_else(|| format!("header: containers[{i}]: \"Names\" missing"))?;
        // podman says 0 (or a negative year-one value) for "never".
        let when = |f: &str, n: &Option<Number>| -> Result<Option<i64>, String> {
            match n.as_ref().and_then(Number::as_i64).filter(|s| *s > 0) {
                None => Ok(None),
                Some(s) if s <= MAX_UNIX => Ok(Some(started_unix - s)),
                Some(s) => Err(format!(
                    "header: containers[{i}]: \"{f}\" {s} is out of range (allowed: 0 to {MAX_UNIX})"
                )),
            }
        };
        ages.insert(
            name.clone(),
            (
                when("StartedAt", &c.started_at)?,
                when("ExitedAt", &c.exited_at)?,
            ),
        );
        containers.push(SimContainer {
            id: c.id,
            name: name.clone(),
            image: c.image.unwrap_or_default(),
            state: ContainerState::parse(&c.state),
            labels: c.labels.unwrap_or_default(),
            started_at: None,
            finished_at: None,
            exit_code: c.exit_code.map(|n| n as i32),
            stopped_by_user: None,
        });
    }
    Ok(ParsedHeader {
        header: Header {
            podman_version: v.podman.version.unwrap_or_else(|| "unknown".into()),
            started_unix,
            started: v
                .started
                .as_deref()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .or_else(|| jiff::Timestamp::from_second(started_unix).ok())
                .unwrap_or_default(),
            images: v.images,
            containers,
            ages,
        },
        unit_dir_count: v.params.unit_dirs.len(),
    })
}

fn parse_record(text: &str, unit_dirs: usize) -> Result<(Duration, Recorded), String> {
    let v: LineIn = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("not a recorded line: {e}"),
        _ => format!("not JSON: {e}"),
    })?;
    // Bounded: a time of 1e20 s would overflow Duration and the clock.
    let t =
        v.t.as_f64()
            .filter(|t| *t >= 0.0 && t.is_finite())
            .ok_or("\"t\" missing or not a number of seconds >= 0")?;
    let t = Duration::try_from_secs_f64(t)
        .ok()
        .filter(|t| *t <= MAX_T)
        .ok_or_else(|| {
            format!(
                "\"t\" {t} is out of range (allowed: 0 to {} seconds, 30 days)",
                MAX_T.as_secs()
            )
        })?;
    let source = v.source.as_str().ok_or("\"source\" missing")?;
    let event = v.event.ok_or("\"event\" missing")?;
    let source = Source::parse(source).ok_or_else(|| {
        format!("unknown source {source:?} (known: podman, stream, apps-dir, unit-dir)")
    })?;
    let what = match source {
        Source::Podman => Recorded::Podman(
            serde_json::from_value(event).map_err(|e| format!("podman event: {e}"))?,
        ),
        Source::Stream => Recorded::Stream(
            serde_json::from_value::<StreamLine>(event)
                .map_err(|e| format!("stream event: {e}"))?
                .into(),
        ),
        Source::AppsDir => Recorded::AppsDir(file_record(event)?.1),
        Source::UnitDir => {
            let (dir, file) = file_record(event)?;
            let dir = dir.unwrap_or(0);
            if dir >= unit_dirs.max(1) {
                return Err(format!(
                    "unit-dir event: dir {dir}, but the header lists {unit_dirs} unit directories"
                ));
            }
            Recorded::UnitDir(dir, file)
        }
    };
    Ok((t, what))
}

fn file_record(event: Value) -> Result<(Option<usize>, FileRecord), String> {
    let f: FileLine = serde_json::from_value(event).map_err(|e| format!("file event: {e}"))?;
    let path = PathBuf::from(&f.path);
    // A recording must not make the replay write outside its copy of the directory.
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
        || path.components().count() > 1
    {
        return Err(format!(
            "file event: path {path:?} is not a file name inside the watched directory"
        ));
    }
    if let Some(files) = &f.files {
        if let Some(bad) = files.keys().find(|k| k.contains('/') || k.starts_with('.')) {
            return Err(format!(
                "file event: files: {bad:?} is not a plain file name"
            ));
        }
    }
    Ok((
        f.dir,
        FileRecord {
            path,
            kind: f.kind,
            content: f.content,
            files: f.files,
        },
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const HEADER: &str = r#"{"podkeeper_record":1,"started_unix":100,"podman":{"version":"4.3.1"},"params":{"unit_dirs":[]},"images":["localhost/bb:1"],"containers":[]}"#;

    pub(in crate::recording) fn parse(lines: &[&str]) -> Result<Fixture, FixtureError> {
        let mut text = String::from(HEADER);
        for l in lines {
            text.push('\n');
            text.push_str(l);
        }
        Fixture::parse(&text)
    }

    #[test]
    fn a_line_that_is_not_json_should_be_named_with_its_number() {
        let e = parse(&[
            r#"{"t":0,"source":"stream","event":{"status":"connected"}}"#,
            "{oops",
        ])
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.what.starts_with("not JSON"), "{e}");
    }

    #[test]
    fn an_unknown_source_should_be_an_error() {
        let e = parse(&[r#"{"t":0,"source":"kernel","event":{}}"#]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.what.contains("unknown source \"kernel\""), "{e}");
    }

    #[test]
    fn a_podman_event_without_its_action_should_be_an_error() {
        let e = parse(&[
            r#"{"t":0.5,"source":"podman","event":{"Type":"container","Actor":{"ID":"x"},"timeNano":1}}"#,
        ])
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.what.contains("podman event") && e.what.contains("Action"),
            "{e}"
        );
    }

    #[test]
    fn a_time_too_large_for_the_clock_should_be_an_error_not_a_panic() {
        // Found by the `recording` fuzz target: from_secs_f64 panicked.
        for t in ["99999999909999999190.001747", "1e300", "-1"] {
            let e = parse(&[&format!(
                r#"{{"t":{t},"source":"stream","event":{{"status":"connected"}}}}"#
            )])
            .unwrap_err();
            assert_eq!(e.line, 2, "{e}");
            assert!(e.what.contains("\"t\""), "{e}");
        }
    }

    #[test]
    fn absurd_header_times_should_be_an_error_not_a_panic() {
        let e = Fixture::parse(&HEADER.replace(
            "\"started_unix\":100",
            "\"started_unix\":-9223372036854775808",
        ))
        .unwrap_err();
        assert!(e.what.contains("started_unix"), "{e}");
        let header = HEADER.replace(
            "\"containers\":[]",
            r#""containers":[{"Names":["a"],"Id":"1","State":"running","StartedAt":9223372036854775807,"ExitedAt":-5}]"#,
        );
        let e = Fixture::parse(&header).unwrap_err();
        assert!(e.what.contains("\"StartedAt\""), "{e}");
    }

    #[test]
    fn lines_out_of_time_order_should_be_an_error() {
        let e = parse(&[
            r#"{"t":2,"source":"stream","event":{"status":"connected"}}"#,
            r#"{"t":1,"source":"stream","event":{"status":"connected"}}"#,
        ])
        .unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn a_file_event_should_not_escape_the_directory() {
        let e = parse(&[
            r#"{"t":0,"source":"apps-dir","event":{"path":"../x.yaml","kind":"create","content":"x"}}"#,
        ])
        .unwrap_err();
        assert!(e.what.contains("not a file name"), "{e}");
    }

    #[test]
    fn times_beyond_the_documented_maximum_should_be_errors_naming_the_line() {
        for t in ["1e300", "1e19", "1e12", "2592001"] {
            let line = format!(r#"{{"t":{t},"source":"stream","event":{{"status":"connected"}}}}"#);
            let e = parse(&[&line]).unwrap_err();
            assert_eq!(e.line, 2, "{t}");
            assert!(
                e.what.contains("out of range") && e.what.contains("2592000"),
                "{t}: {e}"
            );
        }
    }

    #[test]
    fn a_huge_start_second_should_be_an_error_not_a_panic() {
        let huge = r#"{"podkeeper_record":1,"started_unix":9223372036854775807,"params":{"unit_dirs":[]},"images":[],"containers":[]}"#;
        let e = Fixture::parse(huge).unwrap_err();
        assert!(e.line == 1 && e.what.contains("started_unix"), "{e}");
        let negative = huge.replace("9223372036854775807", "-9223372036854775807");
        assert!(Fixture::parse(&negative).is_err());
        let container = r#"{"podkeeper_record":1,"started_unix":100,"params":{"unit_dirs":[]},"images":[],"containers":[{"Id":"c","Names":["x"],"State":"running","StartedAt":9223372036854775807}]}"#;
        let e = Fixture::parse(container).unwrap_err();
        assert!(
            e.what.contains("StartedAt") && e.what.contains("out of range"),
            "{e}"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_should_be_named() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n{\"t\":0,\"source\":\"stream\",\"event\":{}}\n{\"t\":1,\"source\":\"str\xffeam\"}\n");
        let e = utf8_lines(&bytes).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.what.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn a_file_without_a_header_should_be_refused() {
        let e = Fixture::parse(r#"{"t":0,"source":"podman","event":{}}"#).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.what.contains("not a podkeeper recording"), "{e}");
    }

    #[test]
    fn what_record_writes_should_read_back_as_the_same_trigger() {
        use crate::recording::format::{self, FileLine, Source, StreamLine};
        let lost = StreamStatus::Lost {
            error: "closed".into(),
        };
        let file = FileLine {
            dir: Some(0),
            path: "a.container".into(),
            kind: ChangeKind::RenameTo,
            content: Some("[Container]\n".into()),
            files: None,
        };
        let t = Duration::from_micros(1_234_567);
        let stream = format::line(t, Source::Stream, &StreamLine::from(&lost)).unwrap();
        assert!(
            stream.starts_with(r#"{"t":1.234567,"source":"stream","#),
            "{stream}"
        );
        let unit = format::line(t, Source::UnitDir, &file).unwrap();
        let header = HEADER.replace(r#""unit_dirs":[]"#, r#""unit_dirs":["/u"]"#);
        let fixture = Fixture::parse(&format!("{header}\n{stream}\n{unit}")).unwrap();
        assert_eq!(fixture.records[0].t, t);
        assert!(matches!(&fixture.records[0].what, Recorded::Stream(s) if *s == lost));
        match &fixture.records[1].what {
            Recorded::UnitDir(0, f) => {
                assert_eq!(f.path, PathBuf::from("a.container"));
                assert_eq!(f.kind, ChangeKind::RenameTo);
                assert_eq!(f.content.as_deref(), Some("[Container]\n"));
            }
            other => panic!("{other:?}"),
        }
    }
}
