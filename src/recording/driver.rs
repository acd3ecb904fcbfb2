//! The replay driver: hands each recorded line to the reactor at its offset, and keeps the recorded world apart from the reactor's own doing (see [`super::replay`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::fixture::{Record, Recorded};
use super::workspace::{self, Workspace};
use crate::reactor::{Reactor, SYSTEMD_UNIT_LABEL};
use crate::runtime::sim_podman::SimRuntime;
use crate::runtime::sim_systemd::SimSystemd;
use crate::trigger::{FileChange, PodmanEvent, StreamStatus, Trigger};
use crate::APP_LABEL;

/// How fast a replay runs (`podkeeper replay --speed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Speed {
    /// As fast as possible (virtual time only).
    Max,
    /// In real time, as recorded.
    #[value(name = "1x")]
    RealTime,
}

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

/// Container actions podkeeper itself causes when it creates or starts.
const CONSTRUCTIVE: &[&str] = &["create", "init", "start", "unpause"];

pub(super) struct Driver {
    pub reactor: Reactor<SimRuntime>,
    pub sim: SimRuntime,
    /// The simulated systemd, when companions are replayed.
    pub systemd: Option<SimSystemd>,
    /// Quadlet container id → the invocation of its service it was started in.
    pub unit_runs: HashMap<String, String>,
    pub sim_events: mpsc::UnboundedReceiver<PodmanEvent>,
    /// Events the simulation emitted, awaiting their recorded echo: (name, action, until).
    pub ledger: VecDeque<(String, String, Instant)>,
    /// Recorded constructive events awaiting the simulation's own: (event, until).
    pub held: VecDeque<(PodmanEvent, Instant)>,
    pub work: Workspace,
    pub real_start: std::time::Instant,
    pub speed: Speed,
    pub start: Instant,
}

impl Driver {
    pub async fn run(&mut self, records: &[Record]) {
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
                workspace::write(&dir, f, true);
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
                workspace::write(&dir, f, false);
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
}
