//! Case 1: `kill -9` of an app's main process → running again, podkeeper vs podman, Quadlet/systemd and polling.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::knob;
use crate::stack::{self, Api, Podkeeper};
use crate::stats::{summarize, Results, PODKEEPER};

pub const CASE: &str = "1 recovery";
pub const METRIC: &str = "kill -9 → running";
/// A `podman rm -f` by hand: podkeeper creates and starts the app again.
pub const RM_METRIC: &str = "podman rm -f → running";
const PEER_PODMAN: &str = "podman --restart=always";
const PEER_QUADLET: &str = "Quadlet + systemd Restart=always";
/// A container must have run this long before it is killed again (podkeeper's
/// crash-loop rule is 10 s; systemd allows 5 starts in 10 s).
pub const MIN_UPTIME: Duration = Duration::from_millis(10_500);
/// First look after a kill: every subject takes longer than this in practice,
/// and looking earlier would only load the machine while it recovers.
const FIRST_LOOK: Duration = Duration::from_millis(700);
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A killed podkeeper container: which, and when (for reading its debug log).
struct PkTrial {
    name: String,
    t0: Timestamp,
    latency: f64,
}

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let trials = knob("BENCH_TRIALS", 30) as usize;
    let rot = knob("BENCH_ROTATE", 4).max(1) as usize;
    let api = Api::new();
    let tmp = tempfile::tempdir()?;
    let apps = tmp.path().join("apps");
    std::fs::create_dir_all(&apps)?;

    // The three subjects, `rot` identical containers each, and podkeeper's
    // apps that are removed by hand.
    for i in 0..rot {
        for id in [format!("bench-pk-{i}"), format!("bench-pkr-{i}")] {
            std::fs::write(apps.join(format!("{id}.yaml")), stack::manifest(&id, ""))?;
        }
    }
    let sock = stack::socket();
    let pk = Podkeeper::start(
        &[
            "--apps",
            &apps.to_string_lossy(),
            "--socket",
            &sock.to_string_lossy(),
            "--sweep-interval",
            "1h",
        ],
        &out.join("recovery-podkeeper.log"),
    )
    .await?;
    for i in 0..rot {
        stack::run_container(&format!("bench-pr-{i}"), &["--restart=always"]).await?;
    }
    // Quadlet's units run the podman of root's user manager: a peer only
    // where that is the podman under test.
    let quadlet = stack::has_quadlet();
    if quadlet {
        let unit_dir = stack::user_unit_dir();
        stack::start_quadlet_peers(&unit_dir, "bench-q-", rot).await?;
    } else {
        eprintln!(
            "recovery: skipping the {PEER_QUADLET} peer on stack {}: root's systemd user manager runs the host's podman there",
            stack::name()
        );
        results.note(format!(
            "recovery on stack {}: no {PEER_QUADLET} peer (its units would run the host's podman, not this one)",
            stack::name()
        ));
    }
    exit_dir_check(results, &api, &pk).await?;

    let subjects: Vec<(&str, &str, &str)> = [
        (PODKEEPER, "bench-pk-", METRIC),
        (PEER_PODMAN, "bench-pr-", METRIC),
        (PEER_QUADLET, "bench-q-", METRIC),
        (PODKEEPER, "bench-pkr-", RM_METRIC),
    ]
    .into_iter()
    .filter(|(subject, _, _)| quadlet || *subject != PEER_QUADLET)
    .collect();
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut pk_trials = Vec::new();
    eprintln!(
        "recovery: {trials} rounds of {} subjects, {rot} containers each",
        subjects.len()
    );
    for r in 0..trials {
        // Rotate the order too, so no subject always follows the same one.
        for k in 0..subjects.len() {
            let s = (r + k) % subjects.len();
            let (subject, prefix, metric) = subjects[s];
            let name = format!("{prefix}{}", r % rot);
            let c = stack::wait_uptime(&api, &name, MIN_UPTIME).await?;
            let t0 = if metric == RM_METRIC {
                let t0 = Timestamp::now();
                stack::podman(&["rm", "-f", "-t", "0", &name]).await?;
                t0
            } else {
                stack::kill9(c.pid)?
            };
            tokio::time::sleep(FIRST_LOOK).await;
            let n = api.wait_started(&name, t0, Duration::from_secs(60)).await?;
            let ms = stack::ms_between(t0, n.started_at);
            lat[s].push(ms);
            if subject == PODKEEPER && metric == METRIC {
                pk_trials.push(PkTrial {
                    name: name.clone(),
                    t0,
                    latency: ms,
                });
            }
            eprintln!("  round {r:>2}  {subject:<34} {name:<12} {ms:>8.1} ms ({metric})");
        }
    }
    for (s, (subject, _, metric)) in subjects.iter().enumerate() {
        results.add(CASE, metric, subject, "ms", &lat[s]);
    }
    let log = pk.log_text();
    pk.stop().await;
    breakdown(results, &log, &pk_trials);

    poll(results, &api).await?;

    // Targets.
    let pk = results.summary(CASE, METRIC, PODKEEPER);
    let pm = results.summary(CASE, METRIC, PEER_PODMAN);
    if let (Some(pk), Some(pm)) = (pk, pm) {
        let (rm, rp) = (pk.median / pm.median, pk.p90 / pm.p90);
        results.target(
            "recovery: median ratio vs podman --restart=always ≤ 1.0",
            format!("{rm:.2} ({:.0} vs {:.0} ms)", pk.median, pm.median),
            Some(rm <= 1.0),
        );
        results.target(
            "recovery: p90 ratio vs podman --restart=always ≤ 1.2",
            format!("{rp:.2} ({:.0} vs {:.0} ms)", pk.p90, pm.p90),
            Some(rp <= 1.2),
        );
    }
    if let (Some(kill), Some(rm)) = (pk, results.summary(CASE, RM_METRIC, PODKEEPER)) {
        let x = rm.median / kill.median;
        results.target(
            "rm -f by hand: median ≤ 2× podkeeper's kill -9 median",
            format!("{x:.2}× ({:.0} vs {:.0} ms)", rm.median, kill.median),
            Some(x <= 2.0),
        );
    }
    if let (Some(pk), Some(poll)) = (pk, results.summary(CASE, METRIC, "poll 30 s (model)")) {
        let x = poll.mean / pk.median;
        results.target(
            "recovery: ≥ 50× faster than a 30 s poll's mean",
            format!(
                "{x:.0}× ({:.0} ms vs mean {:.1} s)",
                pk.median,
                poll.mean / 1000.0
            ),
            Some(x >= 50.0),
        );
    }
    Ok(())
}

/// podkeeper must be watching the exit directory of the podman under test
/// (it reads it off a conmon through the API): else its figures are of the
/// events stream alone, and a podman in another root would go unnoticed.
async fn exit_dir_check(results: &mut Results, api: &Api, pk: &Podkeeper) -> anyhow::Result<()> {
    let want = api.conmon_exit_dir("bench-pr-0").await?;
    let (dir, line) = pk.watched_exit_dir(Duration::from_secs(40)).await?;
    anyhow::ensure!(
        dir == want,
        "podkeeper watches {}, but this podman's conmon writes exit files to {} (its log: {line})",
        dir.display(),
        want.display()
    );
    eprintln!("recovery: podkeeper watches podman's exit directory: {line}");
    results.analysis_text(format!(
        "**Exit directory**: podkeeper watched `{}`, read off a running container's conmon \
         through the API (its log: `{line}`), the `--exit-dir` podman gave the peer's conmon.",
        dir.display()
    ));
    Ok(())
}

/// Where podkeeper's time goes, from its `--debug` log: exit file seen, `died`
/// event seen, reconcile done, and the inspect and start calls.
fn breakdown(results: &mut Results, log: &str, trials: &[PkTrial]) {
    let lines: Vec<(u64, &str)> = log
        .lines()
        .filter_map(|l| Some((stamp_ms(l)?, l)))
        .collect();
    let (mut exit, mut died, mut done, mut inspect, mut start, mut started) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut grace = vec![];
    let mut per_kill = vec![];
    let mut failures = 0;
    for t in trials {
        let t0 = local_ms(t.t0);
        let key = format!("app/{}", t.name);
        // Log stamps are truncated to the millisecond: allow 1 ms before t0.
        let after = |pred: &dyn Fn(&str) -> bool| {
            lines
                .iter()
                .find(|(ms, l)| *ms + 1 >= t0 && *ms < t0 + 30_000 && pred(l))
                .map(|(ms, l)| (*ms as f64 - t0 as f64, *l))
        };
        // Does the events stream queue a second reconcile after the exit file's?
        let reacts = lines
            .iter()
            .filter(|(ms, l)| {
                *ms + 1 >= t0 && *ms < t0 + 3_000 && l.contains(" react ") && has_word(l, &key)
            })
            .count();
        per_kill.push(reacts as f64);
        if let Some((d, _)) = after(&|l| l.contains("exit file") && has_word(l, &key)) {
            exit.push(d);
        }
        if let Some((d, _)) = after(&|l| l.contains("container died") && has_word(l, &t.name)) {
            died.push(d);
        }
        if let Some((d, l)) =
            after(&|l| l.contains(" react ") && has_word(l, &key) && l.contains(" start "))
        {
            done.push(d);
            started.push(t.latency);
            if let Some(v) = call_ms(l, "inspect") {
                inspect.push(v);
            }
            if let Some(v) = call_ms(l, "start") {
                start.push(v);
            }
            grace.push(call_ms(l, "grace").unwrap_or(0.0));
        }
    }
    for (_, l) in &lines {
        if l.contains("FAILED") && (l.contains("app/bench-pk-") || l.contains("app/bench-pkr-")) {
            failures += 1;
        }
    }
    let case = "1b podkeeper's path";
    results.add(
        case,
        "reconciles per kill (3 s)",
        PODKEEPER,
        "reconciles",
        &per_kill,
    );
    for (metric, v) in [
        ("kill → exit file seen", &exit),
        ("kill → died event seen", &died),
        ("inspect call", &inspect),
        ("start call", &start),
        ("exit grace waited", &grace),
        ("kill → reconcile done", &done),
    ] {
        results.add(case, metric, PODKEEPER, "ms", v);
    }
    let med = |v: &[f64]| summarize(v).map_or(f64::NAN, |s| s.median);
    results.analysis_text(format!(
        "**Where podkeeper's recovery time goes** (medians over {} trials, from its `--debug` log, \
         millisecond stamps): the exit file is seen {:.0} ms after the kill (podman's `died` event \
         only {:.0} ms after it); the inspect takes {:.1} ms, the exit grace {:.0} ms and the start \
         call {:.0} ms; the \
         reconcile is done {:.0} ms after the kill, and StartedAt is {:.0} ms after it. \
         Reconciles that failed during the run (a start racing podman's cleanup would show here): \
         {failures}.",
        trials.len(),
        med(&exit),
        med(&died),
        med(&inspect),
        med(&grace),
        med(&start),
        med(&done),
        med(&started),
    ));
    results.target(
        "recovery: no failed reconcile (kill -9 and rm -f by hand)",
        format!(
            "{failures} failed reconciles in {} kill -9 trials and as many rm -f",
            trials.len()
        ),
        Some(failures == 0),
    );
}

/// A real polling loop at 2 s (one `podman inspect`, a `podman start` when
/// not running), and from its measured step times the 30 s model.
async fn poll(results: &mut Results, api: &Api) -> anyhow::Result<()> {
    let n = knob("BENCH_POLL_TRIALS", 6) as usize;
    let name = "bench-poll-0";
    stack::run_container(name, &[]).await?;
    let inspects = Arc::new(Mutex::new(Vec::<f64>::new()));
    let starts = Arc::new(Mutex::new(Vec::<f64>::new()));
    let stop = CancellationToken::new();
    let looper = {
        let (inspects, starts, stop) = (inspects.clone(), starts.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let t = Instant::now();
                let running = stack::podman(&["inspect", "--format", "{{.State.Running}}", name])
                    .await
                    .map(|s| s == "true");
                push(&inspects, t.elapsed());
                if let Ok(false) = running {
                    let t = Instant::now();
                    if stack::podman(&["start", name]).await.is_ok() {
                        push(&starts, t.elapsed());
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
        })
    };
    let mut lat = Vec::new();
    let mut seed = Timestamp::now().subsec_nanosecond() as u64 | 1;
    for t in 0..n {
        // A random phase within the interval.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(seed % 2000)).await;
        let c = api
            .wait_started(name, Timestamp::MIN, Duration::from_secs(60))
            .await?;
        let t0 = stack::kill9(c.pid)?;
        tokio::time::sleep(FIRST_LOOK).await;
        let c = api.wait_started(name, t0, Duration::from_secs(60)).await?;
        let ms = stack::ms_between(t0, c.started_at);
        eprintln!("  poll trial {t}  {ms:>8.1} ms");
        lat.push(ms);
    }
    stop.cancel();
    let _ = looper.await;
    let inspects = inspects.lock().map(|v| v.clone()).unwrap_or_default();
    let starts = starts.lock().map(|v| v.clone()).unwrap_or_default();
    let (Some(i), Some(s)) = (summarize(&inspects), summarize(&starts)) else {
        anyhow::bail!("the polling loop measured no inspect or no start");
    };
    results.add(CASE, METRIC, "poll 2 s (real)", "ms", &lat);
    // The kill lands uniformly within one period (interval + the inspect); the
    // loop then inspects and starts. Samples spread evenly from best to worst.
    let model = |interval: f64, k: usize| -> Vec<f64> {
        (0..k)
            .map(|j| {
                let phase = (interval + i.median) * j as f64 / (k - 1) as f64;
                if j + 1 == k {
                    phase + i.max + s.max
                } else {
                    phase + i.median + s.median
                }
            })
            .collect()
    };
    results.add(CASE, METRIC, "poll 2 s (model)", "ms", &model(2000.0, 21));
    results.add(
        CASE,
        METRIC,
        "poll 30 s (model)",
        "ms",
        &model(30_000.0, 21),
    );
    results.add(
        CASE,
        "poll step: podman inspect (CLI)",
        "poll loop",
        "ms",
        &inspects,
    );
    results.add(
        CASE,
        "poll step: podman start (CLI)",
        "poll loop",
        "ms",
        &starts,
    );
    let real = summarize(&lat).map_or(f64::NAN, |x| x.mean);
    let modelled = 1000.0 + 1.5 * i.median + s.median;
    results.analysis_text(format!(
        "**Polling model check**: a real 2 s loop measured a mean of {real:.0} ms over {n} kills; \
         the model (half of interval + inspect, then inspect and start: {:.0} + {:.0} ms) \
         predicts {modelled:.0} ms. The 30 s model's mean is {:.1} s and its worst case {:.1} s.",
        i.median,
        s.median,
        (15_000.0 + 1.5 * i.median + s.median) / 1000.0,
        (30_000.0 + i.median + i.max + s.max) / 1000.0,
    ));
    Ok(())
}

fn push(v: &Mutex<Vec<f64>>, d: Duration) {
    if let Ok(mut v) = v.lock() {
        v.push(d.as_secs_f64() * 1000.0);
    }
}

/// `HH:MM:SS.mmm` at the start of a debug line → milliseconds since midnight.
pub fn stamp_ms(line: &str) -> Option<u64> {
    let s = line.get(..12)?;
    let (h, m, sec, ms) = (
        s.get(0..2)?.parse::<u64>().ok()?,
        s.get(3..5)?.parse::<u64>().ok()?,
        s.get(6..8)?.parse::<u64>().ok()?,
        s.get(9..12)?.parse::<u64>().ok()?,
    );
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

pub fn local_ms(t: Timestamp) -> u64 {
    let l = t.to_zoned(jiff::tz::TimeZone::system());
    let (h, m, s) = (l.hour() as u64, l.minute() as u64, l.second() as u64);
    ((h * 60 + m) * 60 + s) * 1000 + l.millisecond() as u64
}

/// `word` occurs in `line` not followed by more of a name (`bench-pk-1` ≠ `bench-pk-10`).
pub fn has_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        line[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-'))
    })
}

/// The duration of call `name` in a react line's `[inspect 7.9ms, start 76ms]`.
pub fn call_ms(line: &str, name: &str) -> Option<f64> {
    let calls = &line[line.find('[')? + 1..line.find(']')?];
    calls.split(", ").find_map(|c| {
        let v = c.strip_prefix(name)?.trim().strip_suffix("ms")?;
        v.parse().ok()
    })
}
