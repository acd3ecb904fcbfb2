//! `podkeeper replay`: drive the real reactor with a recording, against the simulated podman, in virtual time.
//!
//! The recording (see [`super::format`]) is read whole first, so a bad line
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

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::driver::Driver;
pub use super::driver::{Speed, ECHO_WINDOW, LEDGER_WINDOW, STEP, TAIL};
pub use super::fixture::{FileRecord, Fixture, FixtureError, Header, Record, Recorded};
use super::workspace::Workspace;
use crate::manifest;
use crate::reactor::{Reactor, ReactorConfig, Stats, SYSTEMD_UNIT_LABEL};
use crate::report::{Clock, Reporter, SharedBuf};
use crate::runtime::sim_podman::{EventSet, SimRuntime};
use crate::runtime::sim_systemd::SimSystemd;
use crate::runtime::ContainerState;

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

/// What a replay did: the debug output, every call the reactor made, its counters.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The debug lines, when captured ([`replay_to_outcome`]); empty when
    /// they went to an output of the caller's ([`replay`]).
    pub output: String,
    /// Calls to the simulated podman.
    pub calls: Vec<String>,
    /// Calls to the simulated systemd (none without unit directories).
    pub systemd_calls: Vec<String>,
    pub stats: Stats,
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
    let outcome = paused_runtime()?.block_on(replay(
        fixture,
        apps,
        unit_dirs,
        Speed::Max,
        Box::new(buf.clone()),
    ))?;
    Ok(Outcome {
        output: buf.contents(),
        ..outcome
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
) -> anyhow::Result<Outcome> {
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
            let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
            c.started_at = started.map(ago);
            c.finished_at = exited.map(ago);
        }
        sim.insert(c);
    }
    let manifests = manifest::load_dir(&work.apps)?;
    // The containers podkeeper made carry their manifest's healthcheck.
    for app in manifests.apps.values() {
        if let Some(h) = &app.app.container.healthcheck {
            if sim.container(&app.app.id).is_some() {
                sim.declare_healthcheck(&app.app.id, h.retries());
            }
        }
    }
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
    Ok(Outcome {
        output: String::new(),
        stats,
        calls: sim.calls(),
        systemd_calls: systemd.map(|sd| sd.calls()).unwrap_or_default(),
    })
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
    use crate::recording::fixture::tests::parse;
    use std::time::Duration;

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
