//! Samples, their summaries, the one table, the targets, the CSV and BENCHMARKS.md.
//!
//! A sample belongs to a case (recovery, idle, …), a metric within it and a
//! subject (podkeeper or a peer). The table shows one row per (case, metric,
//! subject) and podkeeper's ratio to every peer of the same case and metric:
//! this machine is noisy, so only ratios within one run mean anything.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub case: String,
    pub metric: String,
    pub subject: String,
    pub trial: usize,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    // Nearest rank: the smallest value with at least 90 % of samples at or below it.
    let p90 = v[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Summary {
        n,
        median,
        p90,
        max: v[n - 1],
        mean: v.iter().sum::<f64>() / n as f64,
    })
}

/// One target of the issue and whether this run met it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    /// When the case was measured (a part's stamp; empty for a merge).
    #[serde(default)]
    pub when: String,
    /// The stack it was measured on (`scripts/env.sh`'s; empty in parts
    /// written before stacks were told apart: `root`).
    #[serde(default)]
    pub stack: String,
    /// The podman it was measured on, for people (empty: a simulated case,
    /// or not recorded).
    #[serde(default)]
    pub podman: String,
    samples: Vec<Sample>,
    notes: Vec<String>,
    analysis: Vec<String>,
    targets: Vec<Target>,
}

/// The subject every peer is compared with.
pub const PODKEEPER: &str = "podkeeper";

impl Results {
    pub fn add(&mut self, case: &str, metric: &str, subject: &str, unit: &str, values: &[f64]) {
        for (trial, value) in values.iter().enumerate() {
            self.samples.push(Sample {
                case: case.into(),
                metric: metric.into(),
                subject: subject.into(),
                trial,
                value: *value,
                unit: unit.into(),
            });
        }
    }

    pub fn values(&self, case: &str, metric: &str, subject: &str) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|s| s.case == case && s.metric == metric && s.subject == subject)
            .map(|s| s.value)
            .collect()
    }

    pub fn summary(&self, case: &str, metric: &str, subject: &str) -> Option<Summary> {
        summarize(&self.values(case, metric, subject))
    }

    /// One case's results, saved so that cases run apart (each under the
    /// host-wide lock for a few minutes) make one table.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string(self)?)?;
        Ok(())
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }

    /// Append another part's samples, targets, notes and analysis.
    pub fn merge(&mut self, other: Results) {
        self.samples.extend(other.samples);
        self.notes.extend(other.notes);
        self.analysis.extend(other.analysis);
        self.targets.extend(other.targets);
    }

    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    /// A paragraph (markdown) for the analysis section.
    pub fn analysis_text(&mut self, text: String) {
        self.analysis.push(text);
    }

    pub fn target(&mut self, what: &str, measured: String, met: Option<bool>) {
        self.targets.push(Target {
            what: what.into(),
            measured,
            met,
        });
    }

    /// (case, metric, subject) groups in the order they were first added.
    fn groups(&self) -> Vec<(String, String, String, String)> {
        let mut out: Vec<(String, String, String, String)> = Vec::new();
        for s in &self.samples {
            let g = (
                s.case.clone(),
                s.metric.clone(),
                s.subject.clone(),
                s.unit.clone(),
            );
            if !out.iter().any(|o| o.0 == g.0 && o.1 == g.1 && o.2 == g.2) {
                out.push(g);
            }
        }
        out
    }

    pub fn table(&self) -> String {
        let mut t = String::from(
            "| case | metric | subject | n | median | p90 | max | unit | podkeeper ÷ subject (median, p90) |\n|---|---|---|---:|---:|---:|---:|---|---|\n",
        );
        for (case, metric, subject, unit) in self.groups() {
            let Some(s) = self.summary(&case, &metric, &subject) else {
                continue;
            };
            let ratio = if subject == PODKEEPER {
                "—".to_string()
            } else {
                match self.summary(&case, &metric, PODKEEPER) {
                    Some(pk) if s.median > 0.0 && s.p90 > 0.0 => {
                        format!(
                            "{} , {}",
                            ratio(pk.median / s.median),
                            ratio(pk.p90 / s.p90)
                        )
                    }
                    Some(_) => "(peer is 0)".into(),
                    None => "—".into(),
                }
            };
            let (p90, max) = if s.n > 1 {
                (num(s.p90), num(s.max))
            } else {
                ("—".into(), "—".into())
            };
            let _ = writeln!(
                t,
                "| {case} | {metric} | {subject} | {} | {} | {p90} | {max} | {unit} | {ratio} |",
                s.n,
                num(s.median)
            );
        }
        t
    }

    pub fn targets(&self) -> String {
        let mut t = String::from("| target | measured | met |\n|---|---|---|\n");
        for g in &self.targets {
            let met = match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(t, "| {} | {} | {met} |", g.what, g.measured);
        }
        for n in &self.notes {
            let _ = writeln!(t, "\nNote: {n}");
        }
        t
    }

    pub fn analysis(&self) -> String {
        self.analysis.join("\n\n")
    }

    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut s = String::from("case,metric,subject,trial,value,unit\n");
        for x in &self.samples {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{}",
                csv(&x.case),
                csv(&x.metric),
                csv(&x.subject),
                x.trial,
                x.value,
                csv(&x.unit)
            );
        }
        std::fs::write(path, s)
    }

    /// `runs`: which part was measured when; `elsewhere`: the tables of
    /// the other stacks' runs, already in Markdown (empty when none).
    pub fn benchmarks_md(&self, out: &Path, runs: &str, elsewhere: &str) -> String {
        let out = out.display();
        format!(
            "# Benchmarks\n\n\
             podkeeper against podman's own `--restart=always`, systemd's `Restart=always` \
             (through Quadlet), a shell loop of `podman run` and polling, measured side by side \
             on the same machine (issues 5 and 14). This machine is a noisy 2-vCPU VM shared \
             with other work: compare only the ratios within one case's run, never absolute \
             numbers across runs.\n\n\
             ```sh\nflock /tmp/podkeeper-e2e.lock bash scripts/bench   # everything (about 25 minutes, 10 of them idle)\n\
             BENCH_CASES=recovery bash scripts/bench      # one case; its part joins the others in {out}/parts\n\
             BENCH_STACK=podman5 BENCH_CASES=recovery bash scripts/bench   # on podman 5.4; results in {out}/podman5\n\
             BENCH_CASES=mass BENCH_MASS_SUBJECTS=podman,quadlet BENCH_PART=-peers bash scripts/bench\n\
             BENCH_IDLE_SECS=60 bash scripts/bench        # a quicker idle case\n\
             bash scripts/bench-interrupt-check INT       # an interrupted bench leaves nothing named bench-…\n```\n\n\
             Raw samples: `{out}/latest.csv`; the podkeeper logs of the run: `{out}/*.log` (on the machine that ran it; not in git).\n\n\
             Measured (each case's part, its start): {runs}\n\n\
             ![latency distributions]({out}/latest.png)\n\n\
             ![mass recovery against --max-concurrent]({out}/mass.png)\n\n\
             ## Results\n\n{}\n\
             ## Targets\n\n{}\n\
             {elsewhere}\
             ## Analysis\n\n{}\n\n\
             ## How each case is measured\n\n{}",
            self.table(),
            self.targets(),
            self.analysis(),
            METHOD
        )
    }
}

fn ratio(r: f64) -> String {
    if r < 0.01 {
        format!("{r:.4}")
    } else {
        format!("{r:.2}")
    }
}

fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const METHOD: &str = "\
1. **Recovery of a crashed app.** Identical containers (`localhost/bb:1`, `--network=none`, \
`sh -c 'trap \"exit 0\" TERM; sleep 100000 & wait'`) under podkeeper (release build, `--debug`, \
sweep every hour), under podman's `--restart=always`, and as Quadlet units with `Restart=always`. \
A trial reads the container's main PID, takes t0 from the wall clock and sends SIGKILL with a \
direct `kill(2)`; the latency is the new container's `State.StartedAt` − t0 (podman sets StartedAt \
when the OCI start returned). The subjects take turns trial by trial (the order rotates), so the \
machine's noise hits all alike; each subject rotates over several containers so that every \
container has run at least 10.5 s before it is killed again (podkeeper treats an exit within 10 s \
of a start as a crash loop and delays the restart; systemd limits a unit to 5 starts in 10 s). \
The 30 s polling loop is a model: the kill lands uniformly in the interval, then one `podman \
inspect` and one `podman start` (both measured, as CLI commands, in the real 2 s loop). A real \
polling loop at a 2 s interval, killed at random phases, checks the model.\n\
2. **Companion recovery.** A Quadlet `.container` companion owned by a podkeeper app \
(`--unit-dir`, `--user`): (a) its unit file deleted → the file restored, systemd reloaded and the \
service active (end = the later of systemd's last `UnitsLoadFinishTimestamp` and the service's \
`ActiveEnterTimestamp`); (b) its container's main process killed → the service active again \
(`ActiveEnterTimestampMonotonic` − t0 on the monotonic clock). Peer for (b): the same unit plus \
`[Service] Restart=always`, not managed by podkeeper.\n\
3. **Idle cost.** 50 apps and 20 companions under podkeeper, which talks to podman through a \
counting proxy socket (every HTTP request line is counted); the sweep interval is longer than the \
idle window. After start-up settles, the window (`BENCH_IDLE_SECS`, default 600 s) counts API \
requests, podkeeper's CPU time (utime+stime+cutime+cstime from `/proc/<pid>/stat`) and its RSS. \
Peer: a shell loop polling the same containers and units every 30 s with one batched `podman \
inspect` and one batched `systemctl --user is-active` (the kindest polling there is), its CPU \
measured the same way (its children included).\n\
4. **Scale** (simulated podman, `SimRuntime`, 5 ms per call). For 1,000 and 10,000 apps, each \
size in a fresh process: podman calls caused by one `kill -9` (its `died` and `cleanup` events), \
with podman 4's and podman 5's events and answers (4.3 cannot tell a crash from a stop by hand, \
so the exit grace looks twice; 5 says which it was); \
calls of one full sweep with 1 % of the apps stopped behind podkeeper's back; reactor throughput: \
1,000,000 `died` events round-robin over the apps through the channel (capacity 4096) into a \
running reactor, timed until the channel is drained; the process's peak RSS (VmHWM; it includes \
the simulated podman's own state, so it is an upper bound).\n\
5. **Burst** (simulated, paused tokio time): 10,000 `died` events for 100 crashed apps spread \
over one second, and all at once, with podman 4's and podman 5's events; reconciles per app (each \
reaction of the app's key, counted by an observer) and the time from the last event \
until the reactor is idle.\n\
6. **Mass** (real podman, `BENCH_MASS_APPS`, default 200 identical containers per subject). \
Cold start: no container exists; podkeeper is started on 200 manifests (once per \
`--max-concurrent` of 1, 4, 8, 16), against a shell loop of `podman run -d --restart=always` \
(what a user's script does) and against 200 Quadlet `.container` units with `Restart=always` \
(`systemctl --user daemon-reload`, timed apart, then one `systemctl --user start --no-block` \
of all). Then, once every container has run 10.5 s, all 200 main processes are killed in one \
loop of `kill(2)`, and the time runs to the last container running again, under podkeeper, \
under podman's restart policy and under systemd. Every time ends at the last container's \
`start` event, stamped by podman in nanoseconds and read from one `podman events` \
subscription, so no subject is slowed by the bench polling it. Reconciles per app: podkeeper's \
`react` lines per app after the kill.\n\
7. **Kill beside slow stops** (`slowstops`). Five apps whose main process ignores SIGTERM \
(busybox `sleep` as PID 1) with a healthcheck that always fails (`/bin/false`, interval 1 s, \
retries 1): podkeeper (default `--max-concurrent`) keeps restarting them, each stop waiting out \
podman's 10 s timeout. Beside them, `BENCH_ROTATE` apps of the recovery case's command are \
killed in turn (`kill(2)` of the main PID, each after 10.5 s up), `BENCH_SLOW_TRIALS` times; \
the latency is the new `StartedAt` − t0. The same kills with no slow app, in the same run, are \
the normal figure; the target is the median within 1.5× of it. From podkeeper's `--debug` log, \
per kill: the slow stops under way at the kill, the exit file seen, the start call, and the \
time from the exit file to the repair's end spent outside podman calls (a slot waited for, the \
exit grace).\n\
8. **Downtime of an update** (`update`, issue 23). The time with no running container of the \
app: a sampler inspects the app's container by name over the API socket every 10 ms (one HTTP \
call, no fork) and the downtime runs from the midpoint between the last running look and the \
first stopped one to the midpoint between the last stopped look and the first running one. \
Apps of the recovery case's command (it exits on SIGTERM), `stop_timeout: 2s`, \
`update.stable_for: 1s`. Updates: the manifest's env changed (image present), and its image \
switched to one only in the local registry (`127.0.0.1:5000`, the test image plus a 20 MB \
incompressible layer, removed from the store before each trial), under this podkeeper and \
under podkeeper at 589375d (remove, then create: `scripts/bench-baseline`); a Quadlet \
`.container` unit with `AutoUpdate=registry`, the other image pushed under its tag, then \
`podman auto-update` (in a mount namespace where root's user manager is `/run/systemd`: the \
host has no system manager). The floor, in turns with every subject: `podman stop` (timeout 2 \
s) then `start` of one container over the API, sampled the same way. Target: podkeeper within \
1.2× the floor, with the image present and pulled alike.\n\
\n\
An interrupted bench (SIGINT, SIGTERM) kills the processes it started, removes every \
container, Quadlet unit file and unit named `bench-…` and reloads systemd \
(`scripts/bench-interrupt-check` checks it).\n";
