//! Case 7: `kill -9` → running while five other apps are in slow health restarts (each stop waits out podman's 10 s timeout), against the same kill with no slow app.
//!
//! The slow apps run busybox `sleep` as PID 1, which ignores SIGTERM, with
//! a healthcheck that always fails (`/bin/false`, interval 1 s, retries 1):
//! podkeeper keeps restarting them, and every stop waits out podman's 10 s
//! stop timeout. Beside them, `BENCH_ROTATE` normal apps (the TRAP command
//! of the recovery case) are killed in turn, each after 10.5 s up (the
//! crash-loop rule), and the time runs from the kill to the new `StartedAt`.
//! The same trials with no slow app come first, in the same run: the
//! normal figure. podkeeper runs with its default `--max-concurrent`.
//!
//! From podkeeper's `--debug` log, per kill: how many slow stops were under
//! way at the kill (each restart's line gives its stop call's duration and
//! its end), when the exit file was seen, the start call, and the time from
//! the exit file to the repair's end spent outside podman calls: a slot
//! waited for and, where the exit grace is a requeue (372ad58 on), the
//! grace; where it is a sleep inside the run (before), the log shows it as
//! a call (`grace`), so it is not in that figure.
//!
//! Knobs: `BENCH_SLOW_TRIALS` (15), `BENCH_SLOW_APPS` (5), `BENCH_ROTATE` (4).

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::knob;
use crate::recovery::{call_ms, has_word, local_ms, stamp_ms, MIN_UPTIME};
use crate::stack::{self, Api, Podkeeper};
use crate::stats::{summarize, Results, PODKEEPER};

pub const CASE: &str = "7 slowstops";
const METRIC: &str = "kill -9 → running";
/// The normal figure: the same kills with no slow app beside them.
const ALONE: &str = "podkeeper, no slow app";
/// The breakdown's subjects: named apart, so its table has no ratio column.
const PATH_LOADED: &str = "podkeeper, slow apps beside";
const PATH_ALONE: &str = "podkeeper, alone";
/// First look after a kill (StartedAt is what is measured, not the look).
const FIRST_LOOK: Duration = Duration::from_millis(300);
/// The target: within this many times the normal figure (median).
const TARGET: f64 = 1.5;

/// A slow app: SIGTERM ignored, every check fails.
fn slow_manifest(id: &str) -> String {
    format!(
        "app:\n  id: {id}\n  container:\n    image: {}\n    command: [\"/bin/sleep\", \"100000\"]\n    network: none\n    healthcheck:\n      command: [\"/bin/false\"]\n      interval: 1s\n      timeout: 2s\n      retries: 1\n",
        stack::IMAGE
    )
}

/// One kill: which container, when, and how long until it ran again.
struct Trial {
    name: String,
    t0: Timestamp,
    latency: f64,
}

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let trials = knob("BENCH_SLOW_TRIALS", 15).max(1) as usize;
    let slow = knob("BENCH_SLOW_APPS", 5) as usize;
    let rot = knob("BENCH_ROTATE", 4).max(1) as usize;
    let normal: Vec<String> = (0..rot).map(|i| format!("bench-ss-{i}")).collect();
    let slow_names: Vec<String> = (0..slow).map(|i| format!("bench-ss-slow-{i}")).collect();

    let alone = phase(results, out, &normal, &[], trials, ALONE, "slowstops-alone").await;
    remove(&normal).await;
    alone?;
    let loaded = phase(
        results,
        out,
        &normal,
        &slow_names,
        trials,
        PODKEEPER,
        "slowstops",
    )
    .await;
    let mut all = normal.clone();
    all.extend(slow_names.iter().cloned());
    remove(&all).await;
    loaded?;

    let (Some(pk), Some(base)) = (
        results.summary(CASE, METRIC, PODKEEPER),
        results.summary(CASE, METRIC, ALONE),
    ) else {
        anyhow::bail!("slowstops: no figures");
    };
    let (rm, rp) = (pk.median / base.median, pk.p90 / base.p90);
    eprintln!(
        "  slowstops: beside {slow} slow restarts {:.0} ms median, {:.0} ms p90; alone {:.0} / {:.0} ms: {rm:.2}× / {rp:.2}×",
        pk.median, pk.p90, base.median, base.p90
    );
    results.target(
        &format!("slowstops: kill -9 → running beside {slow} slow health restarts ≤ {TARGET}× the same with none (median)"),
        format!("{rm:.2}× ({:.0} vs {:.0} ms)", pk.median, base.median),
        Some(rm <= TARGET),
    );
    // A kill queued behind the slow stops shows in the tail, not the median.
    results.target(
        &format!("slowstops: the same at p90 ≤ {TARGET}×"),
        format!("{rp:.2}× ({:.0} vs {:.0} ms)", pk.p90, base.p90),
        Some(rp <= TARGET),
    );
    Ok(())
}

/// podkeeper on the `normal` apps and the `slow` ones; `trials` kills of
/// the normal ones in turn, recorded as `subject`; the breakdown from its log.
async fn phase(
    results: &mut Results,
    out: &Path,
    normal: &[String],
    slow: &[String],
    trials: usize,
    subject: &str,
    log: &str,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    for id in normal {
        std::fs::write(
            tmp.path().join(format!("{id}.yaml")),
            stack::manifest(id, ""),
        )?;
    }
    for id in slow {
        std::fs::write(tmp.path().join(format!("{id}.yaml")), slow_manifest(id))?;
    }
    let pk = Podkeeper::start(
        &[
            "--apps",
            &tmp.path().to_string_lossy(),
            "--socket",
            &stack::socket().to_string_lossy(),
            "--sweep-interval",
            "1h",
        ],
        &out.join(format!("{log}-podkeeper.log")),
    )
    .await?;
    let api = Api::new();
    let run = async {
        for id in slow {
            api.wait_started(id, Timestamp::MIN, Duration::from_secs(60))
                .await?;
        }
        eprintln!(
            "slowstops: {trials} kills of {} apps in turn, {} slow apps beside them ({subject})",
            normal.len(),
            slow.len()
        );
        let mut done = Vec::new();
        for r in 0..trials {
            let name = &normal[r % normal.len()];
            let c = stack::wait_uptime(&api, name, MIN_UPTIME).await?;
            let t0 = stack::kill9(c.pid)?;
            tokio::time::sleep(FIRST_LOOK).await;
            let n = api.wait_started(name, t0, Duration::from_secs(60)).await?;
            let ms = stack::ms_between(t0, n.started_at);
            eprintln!("  round {r:>2}  {subject:<24} {name:<12} {ms:>8.1} ms");
            done.push(Trial {
                name: name.clone(),
                t0,
                latency: ms,
            });
        }
        anyhow::Ok(done)
    }
    .await;
    // The log once podkeeper is done: a restart under way at the last kill has its line.
    let log_path = pk.log.clone();
    pk.stop().await;
    let done = run?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lat: Vec<f64> = done.iter().map(|t| t.latency).collect();
    results.add(CASE, METRIC, subject, "ms", &lat);
    breakdown(results, &log, &done, slow);
    Ok(())
}

/// A slow app's health restart: its stop call's span in log milliseconds.
struct SlowStop {
    from: u64,
    to: u64,
}

/// Where each kill's time went, from podkeeper's `--debug` log.
fn breakdown(results: &mut Results, log: &str, trials: &[Trial], slow: &[String]) {
    let lines: Vec<(u64, &str)> = log
        .lines()
        .filter_map(|l| Some((stamp_ms(l)?, l)))
        .collect();
    // Every restart of a slow app: the stop ran before the start call,
    // which ended when the line was written.
    let mut stops = Vec::new();
    let mut stop_ms = Vec::new();
    for (ms, l) in &lines {
        let slow_key = slow.iter().any(|s| has_word(l, &format!("health/{s}")));
        if !(slow_key && l.contains(" react ")) {
            continue;
        }
        if let Some(stop) = call_ms(l, "stop") {
            let start = call_ms(l, "start").unwrap_or(0.0);
            let to = ms.saturating_sub(start as u64);
            stops.push(SlowStop {
                from: to.saturating_sub(stop as u64),
                to,
            });
            stop_ms.push(stop);
        }
    }
    let (mut under_way, mut exit, mut done, mut start, mut outside) =
        (vec![], vec![], vec![], vec![], vec![]);
    for t in trials {
        let t0 = local_ms(t.t0);
        let key = format!("app/{}", t.name);
        under_way.push(stops.iter().filter(|s| s.from <= t0 && t0 < s.to).count() as f64);
        let window = |ms: u64| ms + 1 >= t0 && ms < t0 + 60_000;
        let seen = lines
            .iter()
            .find(|(ms, l)| window(*ms) && l.contains("exit file") && has_word(l, &key))
            .map(|(ms, _)| *ms);
        let repaired = lines.iter().find(|(ms, l)| {
            window(*ms) && l.contains(" react ") && has_word(l, &key) && l.contains(" start ")
        });
        if let Some(s) = seen {
            exit.push(s as f64 - t0 as f64);
        }
        let Some((end, l)) = repaired else { continue };
        done.push(*end as f64 - t0 as f64);
        if let Some(v) = call_ms(l, "start") {
            start.push(v);
        }
        if let Some(s) = seen {
            // Every podman call of the key's runs between the exit file and
            // the repair's end (a look within the exit grace is one too).
            let calls: f64 = lines
                .iter()
                .filter(|(ms, l)| {
                    *ms >= s && *ms <= *end && l.contains(" react ") && has_word(l, &key)
                })
                .filter_map(|(_, l)| calls_total(l))
                .sum();
            outside.push((*end as f64 - s as f64 - calls).max(0.0));
        }
    }
    let failures = lines
        .iter()
        .filter(|(_, l)| l.contains("FAILED") && l.contains("app/bench-ss-"))
        .count();
    let case = "7b slowstops: podkeeper's path";
    let subject = if slow.is_empty() {
        PATH_ALONE
    } else {
        PATH_LOADED
    };
    for (metric, unit, v) in [
        ("slow stops under way at the kill", "stops", &under_way),
        ("kill → exit file seen", "ms", &exit),
        ("start call", "ms", &start),
        (
            "exit file → repaired, outside podman calls (slot, grace)",
            "ms",
            &outside,
        ),
        ("kill → reconcile done", "ms", &done),
    ] {
        results.add(case, metric, subject, unit, v);
    }
    if !slow.is_empty() {
        results.add(case, "slow apps' stop call", subject, "ms", &stop_ms);
    }
    results.add(
        case,
        "failed reconciles of the killed apps",
        subject,
        "reconciles",
        &[failures as f64],
    );
    let med = |v: &[f64]| summarize(v).map_or(f64::NAN, |s| s.median);
    let beside = if slow.is_empty() {
        "no slow app beside them".to_string()
    } else {
        format!(
            "{} of {} slow apps' stops under way at the kill ({} restarts of them, their stop \
             call {:.0} ms)",
            med(&under_way),
            slow.len(),
            stop_ms.len(),
            med(&stop_ms)
        )
    };
    results.analysis_text(format!(
        "**slowstops, {subject}** (medians over {} kills, from its `--debug` log): {beside}; the \
         exit file seen {:.0} ms after the kill; {:.0} ms from it to the repair's end outside \
         podman calls (a slot waited for, the exit grace where it is a requeue); the start call \
         {:.0} ms; the reconcile done {:.0} ms after the kill; failed reconciles of the killed \
         apps: {failures}.",
        trials.len(),
        med(&exit),
        med(&outside),
        med(&start),
        med(&done),
    ));
}

/// The sum of a react line's call durations (`[inspect 7.9ms, start 76ms]`).
fn calls_total(line: &str) -> Option<f64> {
    let calls = &line[line.find('[')? + 1..line.find(']')?];
    Some(
        calls
            .split(", ")
            .filter_map(|c| {
                c.rsplit_once(' ')?
                    .1
                    .strip_suffix("ms")?
                    .parse::<f64>()
                    .ok()
            })
            .sum(),
    )
}

/// `podman rm -f` of the case's containers.
async fn remove(names: &[String]) {
    let mut args = vec!["rm", "-f", "-t", "0", "--ignore"];
    args.extend(names.iter().map(String::as_str));
    if let Err(e) = stack::podman(&args).await {
        eprintln!("!! slowstops: {e:#}");
    }
}
