//! `podkeeper replay`: drive the real reactor with a recording, against the simulated podman, in virtual time.
//!
//! The recording (see [`crate::record`]) is read whole first, so a bad line
//! stops the replay before anything runs, naming the line and what is wrong.
//! Then, on a paused tokio clock, each recorded line is handed to the same
//! [`Reactor`] that `run` uses at its recorded offset, and the reactor acts on
//! a [`SimRuntime`] set up as the real podman was when the recording started
//! (its images and labelled containers, from the header).
//!
//! Two worlds meet here, and the driver keeps them apart:
//!
//! * **The recorded world.** A recorded podman event is applied to the
//!   simulation ([`SimRuntime::observe`]: a `died` leaves the container exited,
//!   a `remove` removes it) and handed to the reactor, as the real stream would.
//!   A lost stream makes the simulation unreachable until it is back.
//! * **The reactor's own doing.** What the reactor asks of the simulation
//!   emits podman's events back to it, every [`STEP`] of virtual time. If a
//!   podkeeper ran while recording, the recording also holds *its* actions'
//!   events (`create`, `init`, `start` of a repair, the `stop`, `died`,
//!   `remove` of a recreate). Those are echoes, not news: a recorded event that
//!   matches one the simulation emitted in the last [`LEDGER_WINDOW`] is
//!   dropped, and a recorded `create`/`init`/`start`/`unpause` of a labelled
//!   container is held back for up to [`ECHO_WINDOW`] in case the reactor is
//!   about to do the same (it is dropped if so; applied late otherwise).
//!
//! With unit directories (`--unit-dir`), companions are reconciled too,
//! against a [`SimSystemd`] whose simulated Quadlet reads the replay's copies
//! of those directories. It starts as systemd was when the recording started:
//! every unit file loaded, and the service of every Quadlet container then
//! running (the header lists them, label `PODMAN_SYSTEMD_UNIT`) active. A
//! recorded `died` of the container a service runs makes its main process
//! exit (the unit fails, or systemd's `Restart=` takes over and the next
//! recorded `start` of its container completes that restart). A `died` of a
//! container from an earlier run (one the replayed reactor already restarted
//! or stopped) is an echo and changes nothing.
//!
//! Everything runs on one thread with tokio's clock paused, so two replays of
//! one file print the same bytes; the debug lines are stamped with the virtual
//! time since the start of the replay.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::manifest;
use crate::reactor::{Reactor, ReactorConfig, Stats, SYSTEMD_UNIT_LABEL};
use crate::record::FORMAT_VERSION;
use crate::report::{Clock, Reporter, SharedBuf};
use crate::runtime::sim::{EventSet, SimContainer, SimRuntime};
use crate::runtime::sim_systemd::SimSystemd;
use crate::runtime::ContainerState;
use crate::trigger::{ChangeKind, FileChange, PodmanEvent, StreamStatus, Trigger};
use crate::APP_LABEL;

/// How often the simulation's own events reach the reactor (podman delivers
/// them late too: 0–250 ms with the file events logger).
pub const STEP: Duration = Duration::from_millis(10);
/// How long a recorded `create`/`init`/`start`/`unpause` of a labelled
/// container waits for the reactor to do the same before it is applied.
pub const ECHO_WINDOW: Duration = Duration::from_secs(2);
/// How long an event the simulation emitted waits for its recorded echo.
/// Long enough for a remove that waits out podman's 10 s stop timeout.
pub const LEDGER_WINDOW: Duration = Duration::from_secs(15);
/// After the last line, the reactor gets this much virtual time to settle.
pub const TAIL: Duration = Duration::from_secs(600);
/// The latest `t` a line may have: 30 days. Virtual time is cheap (the
/// replay jumps over quiet stretches), but beyond this a time is a typo, and
/// far enough beyond it the clock arithmetic would overflow.
pub const MAX_T: Duration = Duration::from_secs(30 * 86400);
/// The latest `started_unix` (and container start/exit second) a header may
/// have: the end of year 9999, as far as RFC 3339 dates go.
pub const MAX_UNIX: i64 = 253_402_300_799;

/// Container actions podkeeper itself causes when it creates or starts.
const CONSTRUCTIVE: &[&str] = &["create", "init", "start", "unpause"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Speed {
    /// As fast as possible (virtual time only).
    Max,
    /// In real time, as recorded.
    #[value(name = "1x")]
    RealTime,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// A recording made by `podkeeper record`.
    #[arg(value_name = "FILE.jsonl")]
    pub file: PathBuf,
    /// The apps directory as it was when the recording started.
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
    /// Unit directories as they were when the recording started (repeatable,
    /// in the order given to `record`).
    #[arg(long = "unit-dir", value_name = "DIR")]
    pub unit_dirs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Speed::Max)]
    pub speed: Speed,
}

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
    pub started: chrono::DateTime<chrono::Utc>,
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

struct ParsedHeader {
    header: Header,
    unit_dir_count: usize,
}

fn parse_header(text: &str) -> Result<ParsedHeader, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("header is not JSON: {e}"))?;
    match v.get("podkeeper_record").and_then(Value::as_u64) {
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
    let started_unix = v["started_unix"]
        .as_i64()
        .ok_or("header: \"started_unix\" missing or not an integer")?;
    if !(0..=MAX_UNIX).contains(&started_unix) {
        return Err(format!(
            "header: \"started_unix\" {started_unix} is out of range (allowed: 0 to {MAX_UNIX})"
        ));
    }
    let images = v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let unit_dir_count = v["params"]["unit_dirs"].as_array().map_or(0, Vec::len);
    let mut containers = Vec::new();
    let mut ages = BTreeMap::new();
    for (i, c) in v["containers"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("header: containers[{i}]: \"{name}\" missing");
        let name = c["Names"][0].as_str().ok_or_else(|| field("Names"))?;
        let id = c["Id"].as_str().ok_or_else(|| field("Id"))?;
        let state = c["State"].as_str().ok_or_else(|| field("State"))?;
        let labels = match &c["Labels"] {
            Value::Null => BTreeMap::new(),
            l => serde_json::from_value(l.clone())
                .map_err(|e| format!("header: containers[{i}]: Labels: {e}"))?,
        };
        // podman says 0 (or a negative year-one value) for "never".
        let when = |f: &str| -> Result<Option<i64>, String> {
            match c[f].as_i64().filter(|s| *s > 0) {
                None => Ok(None),
                Some(s) if s <= MAX_UNIX => Ok(Some(started_unix - s)),
                Some(s) => Err(format!(
                    "header: containers[{i}]: \"{f}\" {s} is out of range (allowed: 0 to {MAX_UNIX})"
                )),
            }
        };
        ages.insert(name.to_string(), (when("StartedAt")?, when("ExitedAt")?));
        containers.push(SimContainer {
            id: id.to_string(),
            name: name.to_string(),
            image: c["Image"].as_str().unwrap_or_default().to_string(),
            state: ContainerState::parse(state),
            labels,
            started_at: None,
            finished_at: None,
            exit_code: c["ExitCode"].as_i64().map(|n| n as i32),
        });
    }
    Ok(ParsedHeader {
        header: Header {
            podman_version: v["podman"]["version"]
                .as_str()
                .unwrap_or("unknown")
                .to_string(),
            started_unix,
            started: v["started"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|| chrono::DateTime::from_timestamp(started_unix, 0))
                .unwrap_or_default(),
            images,
            containers,
            ages,
        },
        unit_dir_count,
    })
}

fn parse_record(text: &str, unit_dirs: usize) -> Result<(Duration, Recorded), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    // Bounded: a time of 1e20 s would overflow Duration and the clock.
    let t = v["t"]
        .as_f64()
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
    let source = v["source"].as_str().ok_or("\"source\" missing")?;
    let event = v.get("event").ok_or("\"event\" missing")?;
    let what = match source {
        "podman" => Recorded::Podman(
            serde_json::from_value(event.clone()).map_err(|e| format!("podman event: {e}"))?,
        ),
        "stream" => Recorded::Stream(match event["status"].as_str() {
            Some("connected") => StreamStatus::Connected {
                resumed: event["resumed"].as_bool().unwrap_or(false),
            },
            Some("lost") => StreamStatus::Lost {
                error: event["error"].as_str().unwrap_or("").to_string(),
            },
            other => {
                return Err(format!(
                    "stream event: status {other:?} is neither \"connected\" nor \"lost\""
                ))
            }
        }),
        "apps-dir" => Recorded::AppsDir(parse_file(event)?),
        "unit-dir" => {
            let dir = event["dir"].as_u64().unwrap_or(0) as usize;
            if dir >= unit_dirs.max(1) {
                return Err(format!(
                    "unit-dir event: dir {dir}, but the header lists {unit_dirs} unit directories"
                ));
            }
            Recorded::UnitDir(dir, parse_file(event)?)
        }
        other => {
            return Err(format!(
                "unknown source {other:?} (known: podman, stream, apps-dir, unit-dir)"
            ))
        }
    };
    Ok((t, what))
}

fn parse_file(event: &Value) -> Result<FileRecord, String> {
    let path = PathBuf::from(
        event["path"]
            .as_str()
            .ok_or("file event: \"path\" missing")?,
    );
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
    let kind: ChangeKind = serde_json::from_value(event["kind"].clone())
        .map_err(|e| format!("file event: kind: {e}"))?;
    let files = match event.get("files") {
        None | Some(Value::Null) => None,
        Some(f) => {
            let files: BTreeMap<String, String> =
                serde_json::from_value(f.clone()).map_err(|e| format!("file event: files: {e}"))?;
            if let Some(bad) = files.keys().find(|k| k.contains('/') || k.starts_with('.')) {
                return Err(format!(
                    "file event: files: {bad:?} is not a plain file name"
                ));
            }
            Some(files)
        }
    };
    Ok(FileRecord {
        path,
        kind,
        content: event["content"].as_str().map(String::from),
        files,
    })
}

/// What a replay did: the debug output, every call the reactor made, its counters.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub output: String,
    /// Calls to the simulated podman.
    pub calls: Vec<String>,
    /// Calls to the simulated systemd (none without unit directories).
    pub systemd_calls: Vec<String>,
    pub stats: Stats,
}

/// What [`replay`] hands back besides its output.
#[derive(Debug, Clone)]
pub struct Ended {
    pub stats: Stats,
    pub calls: Vec<String>,
    pub systemd_calls: Vec<String>,
}

impl Outcome {
    /// The reactions, in order: (key, action), e.g. `("app/web", "start")`.
    pub fn reactions(&self) -> Vec<(String, String)> {
        self.output
            .lines()
            .filter_map(|l| {
                let rest = l.split_once("  react  ")?.1;
                let mut words = rest.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect()
    }
}

/// `podkeeper replay`: print the reactions to standard output.
pub fn main(args: ReplayArgs) -> anyhow::Result<i32> {
    let fixture = Fixture::load(&args.file)?;
    let out = Box::new(std::io::stdout());
    paused_runtime()?.block_on(replay(
        &fixture,
        &args.apps,
        &args.unit_dirs,
        args.speed,
        out,
    ))?;
    Ok(0)
}

/// Replay as fast as possible and capture everything (tests).
pub fn replay_to_outcome(
    fixture: &Fixture,
    apps: &Path,
    unit_dirs: &[PathBuf],
) -> anyhow::Result<Outcome> {
    let buf = SharedBuf::default();
    let ended = paused_runtime()?.block_on(replay(
        fixture,
        apps,
        unit_dirs,
        Speed::Max,
        Box::new(buf.clone()),
    ))?;
    Ok(Outcome {
        output: buf.contents(),
        calls: ended.calls,
        systemd_calls: ended.systemd_calls,
        stats: ended.stats,
    })
}

/// One thread, tokio's clock paused: virtual time jumps to the next timer
/// whenever everything waits, and the order of events is always the same.
fn paused_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?)
}

/// Drive a reactor with `fixture`. Must run on a paused clock (see [`main`]).
pub async fn replay(
    fixture: &Fixture,
    apps: &Path,
    unit_dirs: &[PathBuf],
    speed: Speed,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<Ended> {
    let work = Workspace::copy(apps, unit_dirs)?;
    // Debug lines name manifest and unit files: show the user's directories,
    // not our copies (whose names change from one replay to the next).
    let mut renames: Vec<(String, String)> = std::iter::once((&work.apps, apps))
        .chain(
            work.unit_dirs
                .iter()
                .zip(unit_dirs.iter().map(PathBuf::as_path)),
        )
        .map(|(copy, user)| (copy.display().to_string(), user.display().to_string()))
        .collect();
    // Longest first, so units-1 does not eat into units-10.
    renames.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    renames.push((work.root.display().to_string(), "<replay>".into()));
    let out = Box::new(Rewrite {
        renames,
        pending: Vec::new(),
        out,
    });
    let start = Instant::now();
    let (etx, erx) = mpsc::unbounded_channel();
    // The simulation answers the reactor in the events of the recorded podman.
    let sim = SimRuntime::new(&[], Some(etx))
        .with_epoch(fixture.header.started)
        .with_event_set(EventSet::for_version(&fixture.header.podman_version));
    for image in &fixture.header.images {
        sim.add_image(image);
    }
    let now = sim.now_utc();
    for c in &fixture.header.containers {
        let mut c = c.clone();
        if let Some((started, exited)) = fixture.header.ages.get(&c.name) {
            let ago = |s: i64| now - chrono::Duration::seconds(s);
            c.started_at = started.map(ago);
            c.finished_at = exited.map(ago);
        }
        sim.insert(c);
    }
    let manifests = manifest::load_dir(&work.apps)?;
    // Companions: systemd as it was when the recording started (see the module doc).
    let systemd = (!work.unit_dirs.is_empty())
        .then(|| SimSystemd::new(&work.unit_dirs, &work.root.join("generator")));
    let mut unit_runs = HashMap::new();
    if let Some(sd) = &systemd {
        sd.assume_loaded();
        for c in &fixture.header.containers {
            let Some(unit) = c.labels.get(SYSTEMD_UNIT_LABEL) else {
                continue;
            };
            if c.state == ContainerState::Running && sd.assume_running(unit) {
                unit_runs.insert(c.id.clone(), sd.unit(unit).invocation_id);
            }
        }
    }
    // The reactor reads no channel here: the driver hands it triggers itself.
    let (_tx, rx) = mpsc::channel(1);
    let mut report = Reporter::new(true, Clock::SinceStart(start), out);
    report.note(
        "replay",
        &format!(
            "{} lines over {} recorded with podman {}; {} apps, {} containers at the start",
            fixture.records.len(),
            crate::report::secs(fixture.duration()),
            fixture.header.podman_version,
            manifests.apps.len(),
            fixture.header.containers.len(),
        ),
        false,
    );
    let cfg = ReactorConfig {
        apps_dir: Some(work.apps.clone()),
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::new(Arc::new(sim.clone()), rx, manifests, cfg, report);
    if let Some(sd) = &systemd {
        reactor = reactor.with_companions(Arc::new(sd.clone()), work.unit_dirs.clone());
    }
    let mut driver = Driver {
        reactor,
        sim: sim.clone(),
        systemd: systemd.clone(),
        unit_runs,
        sim_events: erx,
        ledger: VecDeque::new(),
        held: VecDeque::new(),
        work,
        real_start: std::time::Instant::now(),
        speed,
        start,
    };
    driver.run(&fixture.records).await;
    let Driver { mut reactor, .. } = driver;
    let stats = reactor.stats().clone();
    reactor.report_mut().note(
        "replay",
        &format!(
            "done: {} triggers, {} reconciles, {} sweeps, {} failures",
            stats.triggers, stats.reconciles, stats.sweeps, stats.failures
        ),
        false,
    );
    Ok(Ended {
        stats,
        calls: sim.calls(),
        systemd_calls: systemd.map(|sd| sd.calls()).unwrap_or_default(),
    })
}

struct Driver {
    reactor: Reactor<SimRuntime>,
    sim: SimRuntime,
    /// The simulated systemd, when companions are replayed.
    systemd: Option<SimSystemd>,
    /// Quadlet container id → the invocation of its service it was started in.
    unit_runs: HashMap<String, String>,
    sim_events: mpsc::UnboundedReceiver<PodmanEvent>,
    /// Events the simulation emitted, awaiting their recorded echo: (name, action, until).
    ledger: VecDeque<(String, String, Instant)>,
    /// Recorded constructive events awaiting the simulation's own: (event, until).
    held: VecDeque<(PodmanEvent, Instant)>,
    work: Workspace,
    real_start: std::time::Instant,
    speed: Speed,
    start: Instant,
}

impl Driver {
    async fn run(&mut self, records: &[Record]) {
        let mut next_record = 0;
        let tail_end = self.start + records.last().map_or(Duration::ZERO, |r| r.t) + TAIL;
        loop {
            let now = Instant::now();
            self.deliver_sim_events(now);
            self.release_held(now);
            while let Some(r) = records.get(next_record) {
                if self.start + r.t > now {
                    break;
                }
                self.apply(r, now);
                next_record += 1;
            }
            // While a reconcile runs, the simulation's events reach the
            // reactor every STEP; otherwise nothing happens before the
            // reactor's next deadline or the next line: jump there.
            let mut next = match self.reactor.next_wake() {
                Some(t) if t <= now => now + STEP,
                Some(t) => t,
                None => tail_end,
            };
            if !self.sim_events.is_empty() {
                next = now;
            }
            if let Some(r) = records.get(next_record) {
                next = next.min(self.start + r.t);
            }
            if let Some((_, until)) = self.held.front() {
                next = next.min(*until);
            }
            self.pace(next);
            if next_record < records.len() {
                self.reactor.step_until(next).await;
                continue;
            }
            // Every line is in: let the reactor settle, still passing it the
            // simulation's events every STEP.
            if now >= tail_end {
                self.reactor.report_mut().note(
                    "replay",
                    &format!(
                        "still busy {} after the last line; stopping",
                        crate::report::secs(TAIL)
                    ),
                    true,
                );
                return;
            }
            let idle = tokio::time::timeout_at(next, self.reactor.run_until_idle())
                .await
                .is_ok();
            if idle && self.sim_events.is_empty() {
                if self.held.is_empty() {
                    return;
                }
                tokio::time::sleep_until(next).await;
            }
        }
    }

    /// `--speed 1x`: do not get ahead of the wall clock.
    fn pace(&self, next: Instant) {
        if self.speed == Speed::RealTime {
            let virtual_elapsed = next - self.start;
            if let Some(wait) = virtual_elapsed.checked_sub(self.real_start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Hand the simulation's own events to the reactor; each cancels a held
    /// recorded echo or waits in the ledger for one.
    fn deliver_sim_events(&mut self, now: Instant) {
        self.ledger.retain(|(_, _, until)| *until > now);
        while let Ok(ev) = self.sim_events.try_recv() {
            let same = |h: &PodmanEvent| h.name() == ev.name() && h.action == ev.action;
            if let Some(i) = self.held.iter().position(|(h, _)| same(h)) {
                self.held.remove(i);
            } else {
                self.ledger.push_back((
                    ev.name().to_string(),
                    ev.action.clone(),
                    now + LEDGER_WINDOW,
                ));
            }
            self.reactor.handle(Trigger::Podman(ev));
        }
    }

    /// Recorded events held for an echo that did not come: they were news.
    fn release_held(&mut self, now: Instant) {
        while self.held.front().is_some_and(|(_, until)| *until <= now) {
            if let Some((ev, _)) = self.held.pop_front() {
                self.sim.observe(&ev);
                self.reactor.handle(Trigger::Podman(ev));
            }
        }
    }

    fn apply(&mut self, record: &Record, now: Instant) {
        match &record.what {
            Recorded::Podman(ev) => self.recorded_event(ev.clone(), now),
            Recorded::Stream(status) => {
                // A lost stream means podman is away until it is back.
                self.sim
                    .set_unreachable(matches!(status, StreamStatus::Lost { .. }));
                self.reactor.handle(Trigger::Stream(status.clone()));
            }
            Recorded::AppsDir(f) => {
                let dir = self.work.apps.clone();
                self.write(&dir, f, true);
                self.reactor.handle(Trigger::AppsDir(FileChange {
                    dir,
                    path: f.path.clone(),
                    kind: f.kind,
                }));
            }
            Recorded::UnitDir(i, f) => {
                let Some(dir) = self.work.unit_dirs.get(*i).cloned() else {
                    return;
                };
                self.write(&dir, f, false);
                self.reactor.handle(Trigger::UnitDir(FileChange {
                    dir,
                    path: f.path.clone(),
                    kind: f.kind,
                }));
            }
        }
    }

    fn recorded_event(&mut self, ev: PodmanEvent, now: Instant) {
        if ev.typ == "container" {
            let same = |(n, a, _): &(String, String, Instant)| n == ev.name() && *a == ev.action;
            if let Some(i) = self.ledger.iter().position(same) {
                // The echo of something the reactor already did in the simulation.
                self.ledger.remove(i);
                return;
            }
            if CONSTRUCTIVE.contains(&ev.action.as_str()) && ev.label(APP_LABEL).is_some() {
                self.held.push_back((ev, now + ECHO_WINDOW));
                return;
            }
        }
        self.unit_container_event(&ev);
        self.sim.observe(&ev);
        self.reactor.handle(Trigger::Podman(ev));
    }

    /// What a recorded event of a systemd unit's container means for that
    /// unit: its container started (the run it belongs to; systemd's own
    /// restart done), or the container of its current run died.
    fn unit_container_event(&mut self, ev: &PodmanEvent) {
        let (Some(sd), Some(unit)) = (&self.systemd, ev.label(SYSTEMD_UNIT_LABEL)) else {
            return;
        };
        if ev.typ != "container" {
            return;
        }
        match ev.action.as_str() {
            "start" => {
                sd.auto_restart_done(unit);
                let run = sd.unit(unit).invocation_id;
                self.unit_runs.insert(ev.actor.id.clone(), run);
            }
            "died" => {
                // Only the container of the run systemd has now: the others
                // belong to runs the replayed reactor already replaced.
                let current = sd.unit(unit).invocation_id;
                if self.unit_runs.get(&ev.actor.id) == Some(&current) {
                    let code = ev
                        .label("containerExitCode")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1);
                    sd.main_exited(unit, code);
                }
            }
            _ => {}
        }
    }

    /// Make our copy of a watched directory look as it did after the change.
    fn write(&self, dir: &Path, f: &FileRecord, manifests_only: bool) {
        let wanted = |p: &Path| !manifests_only || manifest::is_manifest_file(p);
        let result = match (&f.kind, &f.content, &f.files) {
            (ChangeKind::Rescan, _, Some(files)) => sync_dir(dir, files, &wanted),
            (_, Some(text), _) if wanted(&f.path) => std::fs::write(dir.join(&f.path), text),
            (ChangeKind::Remove | ChangeKind::RenameFrom, _, _)
                if !f.path.as_os_str().is_empty() =>
            {
                match std::fs::remove_file(dir.join(&f.path)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, path = %f.path.display(), "replay: cannot update the directory copy");
        }
    }
}

/// Make `dir`'s wanted files exactly `files`.
fn sync_dir(
    dir: &Path,
    files: &BTreeMap<String, String>,
    wanted: &dyn Fn(&Path) -> bool,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if wanted(Path::new(&name)) && !files.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Private copies of the apps and unit directories, which the replay edits as
/// the recording says; removed when dropped.
/// The root is a fresh directory with an unpredictable name, created 0700 by
/// `mkdir` (which never follows a symlink planted in its place).
struct Workspace {
    root: PathBuf,
    apps: PathBuf,
    unit_dirs: Vec<PathBuf>,
    /// Removes the root when dropped.
    _dir: tempfile::TempDir,
}

impl Workspace {
    fn copy(apps: &Path, unit_dirs: &[PathBuf]) -> anyhow::Result<Workspace> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("podkeeper-replay-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("cannot create the replay's private directory")?;
        let root = dir.path().to_path_buf();
        let ws = Workspace {
            _dir: dir,
            apps: root.join("apps"),
            unit_dirs: (0..unit_dirs.len())
                .map(|i| root.join(format!("units-{i}")))
                .collect(),
            root,
        };
        copy_dir(apps, &ws.apps)
            .with_context(|| format!("cannot copy the apps directory {}", apps.display()))?;
        for (from, to) in unit_dirs.iter().zip(&ws.unit_dirs) {
            copy_dir(from, to)
                .with_context(|| format!("cannot copy the unit directory {}", from.display()))?;
        }
        Ok(ws)
    }
}

/// Copy the regular files of `from` (not recursively) into a new `to`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)?.flatten() {
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// A writer that makes each (from, to) replacement, in order, in every line it passes on.
struct Rewrite {
    renames: Vec<(String, String)>,
    pending: Vec<u8>,
    out: Box<dyn Write + Send>,
}

impl Write for Rewrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let mut line = String::from_utf8_lossy(&line).into_owned();
            for (from, to) in &self.renames {
                line = line.replace(from, to);
            }
            self.out.write_all(line.as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"podkeeper_record":1,"started_unix":100,"podman":{"version":"4.3.1"},"params":{"unit_dirs":[]},"images":["localhost/bb:1"],"containers":[]}"#;

    fn parse(lines: &[&str]) -> Result<Fixture, FixtureError> {
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
    fn a_long_quiet_recording_should_replay_in_a_moment() {
        let apps = tempfile::tempdir().unwrap();
        // 29 days between two lines: virtual time jumps over the quiet.
        let fixture = parse(&[
            r#"{"t":0,"source":"stream","event":{"status":"connected"}}"#,
            r#"{"t":2505600,"source":"stream","event":{"status":"connected","resumed":true}}"#,
        ])
        .unwrap();
        let started = std::time::Instant::now();
        let out = replay_to_outcome(&fixture, apps.path(), &[]).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(out.output.contains("stream resumed"), "{}", out.output);
    }

    #[test]
    fn the_workspace_should_be_private_and_never_follow_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let apps = tempfile::tempdir().unwrap();
        std::fs::write(
            apps.path().join("a.yaml"),
            "app:\n  id: a\n  container:\n    image: localhost/bb:1\n",
        )
        .unwrap();
        let victim = tempfile::tempdir().unwrap();
        // Where earlier versions put it: /tmp/podkeeper-replay-<pid>-<n>.
        let planted: Vec<PathBuf> = (0..4)
            .map(|n| {
                std::env::temp_dir().join(format!("podkeeper-replay-{}-{n}", std::process::id()))
            })
            .collect();
        for p in &planted {
            let _ = std::os::unix::fs::symlink(victim.path(), p);
        }
        let ws = Workspace::copy(apps.path(), &[]).unwrap();
        assert!(!planted.contains(&ws.root));
        let mode = std::fs::metadata(&ws.root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(ws.apps.join("a.yaml").is_file());
        let root = ws.root.clone();
        drop(ws);
        assert!(!root.exists(), "removed when done");
        assert_eq!(
            std::fs::read_dir(victim.path()).unwrap().count(),
            0,
            "nothing written through"
        );
        for p in &planted {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn a_recorded_rename_should_leave_the_app_without_its_container() {
        let apps = tempfile::tempdir().unwrap();
        std::fs::write(
            apps.path().join("web.yaml"),
            "app:\n  id: web\n  container:\n    image: localhost/bb:1\n",
        )
        .unwrap();
        let set = manifest::load_dir(apps.path()).unwrap();
        let labels =
            serde_json::to_string(&crate::reconcile::app::labels_for(&set.apps["web"])).unwrap();
        let header = format!(
            r#"{{"podkeeper_record":1,"started_unix":100,"params":{{"unit_dirs":[]}},"images":["localhost/bb:1"],"containers":[{{"Id":"c1","Names":["web"],"State":"running","Labels":{labels}}}]}}"#
        );
        // As podman 4.3 records `podman rename web web-old`: the new name only.
        let rename = format!(
            r#"{{"t":1,"source":"podman","event":{{"Type":"container","Action":"rename","Actor":{{"ID":"c1","Attributes":{}}},"timeNano":101000000000}}}}"#,
            labels.replacen('{', r#"{"name":"web-old","image":"localhost/bb:1","#, 1)
        );
        let fixture = Fixture::parse(&format!("{header}\n{rename}")).unwrap();
        let out = replay_to_outcome(&fixture, apps.path(), &[]).unwrap();
        assert!(
            out.reactions()
                .contains(&("app/web".into(), "create".into())),
            "{}",
            out.output
        );
        assert!(out.output.contains("WARN   duplicate"), "{}", out.output);
        assert!(
            out.calls.contains(&"create web".to_string()),
            "{:?}",
            out.calls
        );
    }

    #[test]
    fn a_file_without_a_header_should_be_refused() {
        let e = Fixture::parse(r#"{"t":0,"source":"podman","event":{}}"#).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.what.contains("not a podkeeper recording"), "{e}");
    }

    #[test]
    fn the_simulation_should_answer_in_the_events_of_the_recorded_podman() {
        for (version, stop_event) in [("4.3.1", true), ("5.4.2", false)] {
            let tmp = tempfile::tempdir().unwrap();
            let apps = tmp.path().join("apps");
            std::fs::create_dir_all(&apps).unwrap();
            std::fs::write(
                apps.join("a.yaml"),
                "app:\n  id: a\n  container:\n    image: localhost/bb:1\n",
            )
            .unwrap();
            let header = format!(
                r#"{{"podkeeper_record":1,"started_unix":100,"podman":{{"version":"{version}"}},"params":{{"unit_dirs":[]}},"images":["localhost/bb:1"],"containers":[{{"Id":"c1","Names":["a"],"State":"running","Labels":{{"io.podkeeper.app":"a"}}}}]}}"#
            );
            // The manifest deleted: podkeeper removes the running container.
            let text = format!(
                "{header}\n{}",
                r#"{"t":0.5,"source":"apps-dir","event":{"path":"a.yaml","kind":"remove"}}"#
            );
            let out = replay_to_outcome(&Fixture::parse(&text).unwrap(), &apps, &[]).unwrap();
            assert!(
                out.calls.contains(&"remove a".to_string()),
                "{}",
                out.output
            );
            assert!(out.output.contains("container died (0)"), "{}", out.output);
            assert!(out.output.contains("container remove"), "{}", out.output);
            assert_eq!(
                out.output.contains("container stop "),
                stop_event,
                "podman {version}:\n{}",
                out.output
            );
        }
    }

    /// A podman event of the Quadlet container `id` of `t.service`.
    fn unit_event(t: f64, action: &str, id: &str, code: u32) -> String {
        format!(
            r#"{{"t":{t},"source":"podman","event":{{"Type":"container","Action":"{action}","Actor":{{"ID":"{id}","Attributes":{{"name":"t","PODMAN_SYSTEMD_UNIT":"t.service","containerExitCode":"{code}"}}}},"timeNano":1}}}}"#
        )
    }

    #[test]
    fn a_companion_that_systemd_restarts_should_be_left_to_systemd_and_old_runs_ignored() {
        let unit = "[Container]\nImage=localhost/bb:1\n[Service]\nRestart=always\n";
        let tmp = tempfile::tempdir().unwrap();
        let (apps, units) = (tmp.path().join("apps"), tmp.path().join("units"));
        std::fs::create_dir_all(&apps).unwrap();
        std::fs::create_dir_all(&units).unwrap();
        let indented: String = unit.lines().map(|l| format!("        {l}\n")).collect();
        std::fs::write(
            apps.join("a.yaml"),
            format!("app:\n  id: a\n  container:\n    image: localhost/bb:1\n  companions:\n    - name: t\n      unit: |\n{indented}"),
        )
        .unwrap();
        std::fs::write(units.join("t.container"), unit).unwrap();
        let header = r#"{"podkeeper_record":1,"started_unix":100,"params":{"unit_dirs":["u"]},"images":["localhost/bb:1"],"containers":[{"Id":"c1","Names":["t"],"State":"running","Labels":{"PODMAN_SYSTEMD_UNIT":"t.service"}}]}"#;
        let text = [
            header.to_string(),
            // The container of the running service dies: systemd's Restart= takes over.
            unit_event(1.0, "died", "c1", 137),
            // systemd's restart is up.
            unit_event(1.5, "start", "c2", 0),
            // A late died of the first run's container: that run is over.
            unit_event(3.0, "died", "c1", 137),
        ]
        .join("\n");
        let fixture = Fixture::parse(&text).unwrap();
        let out = replay_to_outcome(&fixture, &apps, &[units]).unwrap();
        assert!(
            out.output.contains("left to systemd until it gives up"),
            "{}",
            out.output
        );
        // podkeeper never starts what systemd is restarting, and the echo of
        // the old run finds the service as declared.
        assert!(
            out.systemd_calls
                .iter()
                .all(|c| c.starts_with("show ") || c == "daemon-reload"),
            "{:?}",
            out.systemd_calls
        );
        let last = out
            .output
            .lines()
            .rfind(|l| l.contains("react  companion/"))
            .unwrap_or_default();
        assert!(last.contains("as declared: t"), "{}", out.output);
    }
}
