//! Case 6: two hundred apps at once on the real podman: cold start, and all killed together → all running again.
//!
//! Subjects (`BENCH_MASS_SUBJECTS`): podkeeper at each `--max-concurrent` of
//! `BENCH_MASS_CONCURRENCY`, podman (a shell loop of `podman run -d
//! --restart=always`, then its restart policy), Quadlet (one `.container`
//! unit per app with `Restart=always`, `systemctl --user start` of all).
//! Times end at the last container's `start` event (podman stamps it with
//! nanoseconds when the start is done), read from one `podman events`
//! subscription, so no subject is slowed by the bench polling it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::knob;
use crate::recovery::MIN_UPTIME;
use crate::stack::{self, Podkeeper};
use crate::stats::{summarize, Results, PODKEEPER};

pub const CASE: &str = "6 mass";
pub const COLD: &str = "cold start → all running";
pub const KILLED: &str = "all killed at once → all running";
const PEER_PODMAN: &str = "podman";
const PEER_QUADLET: &str = "Quadlet";
/// Longest wait for all apps to run.
const LIMIT: Duration = Duration::from_secs(300);

/// The podkeeper subject's name at one concurrency.
pub fn pk_subject(c: usize) -> String {
    format!("{PODKEEPER} --max-concurrent {c}")
}

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let n = knob("BENCH_MASS_APPS", 200).max(1) as usize;
    let levels: Vec<usize> = std::env::var("BENCH_MASS_CONCURRENCY")
        .unwrap_or_else(|_| "1,4,8,16".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let subjects =
        std::env::var("BENCH_MASS_SUBJECTS").unwrap_or_else(|_| "podkeeper,podman,quadlet".into());
    let events = Starts::subscribe().await?;
    if subjects.contains("podkeeper") {
        for &c in &levels {
            podkeeper(results, out, &events, n, c).await?;
        }
    }
    if subjects.contains("podman") {
        podman(results, &events, n).await?;
    }
    if subjects.contains("quadlet") {
        quadlet(results, &events, n).await?;
    }
    events.stop();
    Ok(())
}

/// podkeeper: `n` manifests, podkeeper started (cold start), then all killed.
async fn podkeeper(
    results: &mut Results,
    out: &Path,
    events: &Starts,
    n: usize,
    c: usize,
) -> anyhow::Result<()> {
    let names = names("bench-m-", n);
    let tmp = tempfile::tempdir()?;
    let apps = tmp.path().join("apps");
    std::fs::create_dir_all(&apps)?;
    for id in &names {
        std::fs::write(apps.join(format!("{id}.yaml")), stack::manifest(id, ""))?;
    }
    let subject = pk_subject(c);
    let log = out.join(format!("mass-podkeeper-{c}.log"));
    let t0 = Timestamp::now();
    let pk = Podkeeper::start(
        &[
            "--apps",
            &apps.to_string_lossy(),
            "--socket",
            &stack::socket().to_string_lossy(),
            "--sweep-interval",
            "1h",
            "--max-concurrent",
            &c.to_string(),
        ],
        &log,
    )
    .await?;
    let run = async {
        let cold = events.wait_all(&names, t0).await?;
        eprintln!("  mass  {subject:<32} cold start {cold:>8.0} ms");
        results.add(CASE, COLD, &subject, "ms", &[cold]);
        let offset = pk.log_text().len();
        let killed = kill_all(events, &names).await?;
        eprintln!("  mass  {subject:<32} all killed {killed:>8.0} ms");
        results.add(CASE, KILLED, &subject, "ms", &[killed]);
        // Give the last reconciles (a `died` read late) time to show.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = pk.log_text();
        let per_app = reconciles(text.get(offset..).unwrap_or(""), &names);
        results.add(
            CASE,
            "reconciles per app, all killed",
            &subject,
            "reconciles",
            &per_app,
        );
        let failed = text.lines().filter(|l| l.contains("FAILED")).count();
        results.add(
            CASE,
            "failed reconciles",
            &subject,
            "reconciles",
            &[failed as f64],
        );
        anyhow::Ok(())
    }
    .await;
    pk.stop().await;
    remove(&names).await;
    run
}

/// podman: a shell loop of `podman run -d --restart=always` (what a user's
/// script does; the policy costs `run` nothing), then its restart policy.
async fn podman(results: &mut Results, events: &Starts, n: usize) -> anyhow::Result<()> {
    let names = names("bench-mr-", n);
    anyhow::ensure!(!crate::interrupt::stopping(), "interrupted");
    let script = format!(
        "for n in \"$@\"; do \"$PODMAN\" run -d --restart=always --name \"$n\" --network=none {} /bin/sh -c '{}' >/dev/null || exit 1; done",
        stack::IMAGE,
        stack::TRAP
    );
    let t0 = Timestamp::now();
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .arg("loop")
        .args(&names)
        .env("PODMAN", stack::cli())
        .env_remove("CONTAINER_HOST")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().map_or(0, |p| p as i32);
    crate::interrupt::register(pid);
    let status = child.wait().await;
    crate::interrupt::unregister(pid);
    let run = async {
        anyhow::ensure!(status?.success(), "the podman run loop failed");
        let cold = events.wait_all(&names, t0).await?;
        eprintln!("  mass  {PEER_PODMAN:<32} cold start {cold:>8.0} ms");
        results.add(CASE, COLD, PEER_PODMAN, "ms", &[cold]);
        let killed = kill_all(events, &names).await?;
        eprintln!("  mass  {PEER_PODMAN:<32} all killed {killed:>8.0} ms");
        results.add(CASE, KILLED, PEER_PODMAN, "ms", &[killed]);
        anyhow::Ok(())
    }
    .await;
    remove(&names).await;
    run
}

/// Quadlet: `n` `.container` units with `Restart=always`; the reload is
/// timed apart, the cold start is `systemctl --user start` of all.
async fn quadlet(results: &mut Results, events: &Starts, n: usize) -> anyhow::Result<()> {
    let names = names("bench-mq-", n);
    let dir = stack::user_unit_dir();
    std::fs::create_dir_all(&dir)?;
    for name in &names {
        std::fs::write(
            dir.join(format!("{name}.container")),
            stack::quadlet_unit(name, true),
        )?;
    }
    let run = async {
        let t = std::time::Instant::now();
        stack::systemctl(&["daemon-reload"]).await?;
        let reload = t.elapsed().as_secs_f64() * 1000.0;
        results.add(
            CASE,
            "daemon-reload before the start",
            PEER_QUADLET,
            "ms",
            &[reload],
        );
        let units: Vec<String> = names.iter().map(|n| format!("{n}.service")).collect();
        let mut args = vec!["start", "--no-block"];
        args.extend(units.iter().map(String::as_str));
        let t0 = Timestamp::now();
        stack::systemctl(&args).await?;
        let cold = events.wait_all(&names, t0).await?;
        eprintln!("  mass  {PEER_QUADLET:<32} cold start {cold:>8.0} ms (+ reload {reload:.0} ms)");
        results.add(CASE, COLD, PEER_QUADLET, "ms", &[cold]);
        let killed = kill_all(events, &names).await?;
        eprintln!("  mass  {PEER_QUADLET:<32} all killed {killed:>8.0} ms");
        results.add(CASE, KILLED, PEER_QUADLET, "ms", &[killed]);
        anyhow::Ok(())
    }
    .await;
    // Stops the units, removes their files, reloads.
    stack::cleanup().await;
    run
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Wait until every container has run `MIN_UPTIME` (podkeeper's crash-loop
/// rule; systemd's start limit), kill all main processes in one loop of
/// `kill(2)`, and time until the last one started again.
async fn kill_all(events: &Starts, names: &[String]) -> anyhow::Result<f64> {
    let last = events.last_start(names).context("no start seen")?;
    let up = Duration::try_from(Timestamp::now().duration_since(last)).unwrap_or_default();
    if up < MIN_UPTIME {
        tokio::time::sleep(MIN_UPTIME - up).await;
    }
    let mut args = vec!["inspect", "--format", "{{.State.Pid}}"];
    args.extend(names.iter().map(String::as_str));
    let pids: Vec<i32> = stack::podman(&args)
        .await?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    anyhow::ensure!(
        pids.len() == names.len() && pids.iter().all(|p| *p > 1),
        "not all {} containers run ({} pids)",
        names.len(),
        pids.iter().filter(|p| **p > 1).count()
    );
    let t0 = Timestamp::now();
    for pid in pids {
        // SAFETY: kill(2) has no memory effects; a stale pid only yields ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    events.wait_all(names, t0).await
}

/// `podman rm -f` of the containers (a subject's, between subjects).
async fn remove(names: &[String]) {
    let mut args = vec!["rm", "-f", "-t", "0", "--ignore"];
    args.extend(names.iter().map(String::as_str));
    if let Err(e) = stack::podman(&args).await {
        eprintln!("!! mass: {e:#}");
    }
}

/// Reconciles (react lines) per app in a piece of podkeeper's debug log.
fn reconciles(log: &str, names: &[String]) -> Vec<f64> {
    let mut count: BTreeMap<&str, f64> = names.iter().map(|n| (n.as_str(), 0.0)).collect();
    for l in log.lines().filter(|l| l.contains(" react ")) {
        if let Some(key) = l.split_whitespace().find_map(|w| w.strip_prefix("app/")) {
            if let Some(c) = count.get_mut(key) {
                *c += 1.0;
            }
        }
    }
    count.into_values().collect()
}

/// A container's name and the time of one of its `start` events.
type Start = (String, Timestamp);

/// Every container `start` event since the subscription.
struct Starts {
    seen: Arc<Mutex<Vec<Start>>>,
    child: Mutex<Option<tokio::process::Child>>,
}

impl Starts {
    async fn subscribe() -> anyhow::Result<Self> {
        anyhow::ensure!(!crate::interrupt::stopping(), "interrupted");
        let mut child = tokio::process::Command::new(stack::cli())
            .args([
                "events",
                "--filter",
                "type=container",
                "--filter",
                "event=start",
            ])
            .args(["--format", "json"])
            .env_remove("CONTAINER_HOST")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("{} events", stack::cli()))?;
        if let Some(pid) = child.id() {
            crate::interrupt::register(pid as i32);
        }
        let stdout = child.stdout.take().context("no stdout")?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) else {
                    continue;
                };
                let (Some(name), Some(time)) = (v["Name"].as_str(), v["Time"].as_str()) else {
                    continue;
                };
                if let Ok(t) = time.parse::<Timestamp>() {
                    if let Ok(mut s) = into.lock() {
                        s.push((name.to_string(), t));
                    }
                }
            }
        });
        // The subscription reads the events log from when it starts.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Starts {
            seen,
            child: Mutex::new(Some(child)),
        })
    }

    /// The latest start among `names`.
    fn last_start(&self, names: &[String]) -> Option<Timestamp> {
        let want: HashSet<&str> = names.iter().map(String::as_str).collect();
        let seen = self.seen.lock().ok()?;
        seen.iter()
            .filter(|(n, _)| want.contains(n.as_str()))
            .map(|(_, t)| *t)
            .max()
    }

    /// Milliseconds from `t0` to the last of `names` to start after `t0`.
    async fn wait_all(&self, names: &[String], t0: Timestamp) -> anyhow::Result<f64> {
        let want: HashSet<&str> = names.iter().map(String::as_str).collect();
        let until = tokio::time::Instant::now() + LIMIT;
        loop {
            let (count, last) = {
                let seen = self.seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                let mut started: BTreeMap<&str, Timestamp> = BTreeMap::new();
                for (n, t) in seen
                    .iter()
                    .filter(|(n, t)| *t > t0 && want.contains(n.as_str()))
                {
                    let e = started.entry(n.as_str()).or_insert(*t);
                    *e = (*e).min(*t);
                }
                (started.len(), started.values().max().copied())
            };
            if count == names.len() {
                return Ok(stack::ms_between(t0, last.unwrap_or(t0)));
            }
            if tokio::time::Instant::now() > until || crate::interrupt::stopping() {
                bail!("only {count} of {} started within {LIMIT:?}", names.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn stop(&self) {
        if let Some(mut c) = self.child.lock().ok().and_then(|mut c| c.take()) {
            if let Some(pid) = c.id() {
                crate::interrupt::unregister(pid as i32);
            }
            let _ = c.start_kill();
        }
    }
}

/// podkeeper's default `--max-concurrent`, as its `run --help` says.
async fn default_concurrency() -> Option<usize> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["run", "--help"])
        .output()
        .await
        .ok()?;
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let at = help.find("--max-concurrent")?;
    let rest = &help[at..];
    let d = &rest[rest.find("[default: ")? + "[default: ".len()..];
    d[..d.find(']')?].trim().parse().ok()
}

/// The targets for this case, from every part measured (the
/// subjects may have been run apart): called once all parts are merged.
pub async fn targets(results: &mut Results) {
    let n = knob("BENCH_MASS_APPS", 200) as usize;
    let one = |r: &Results, metric: &str, subject: &str| {
        summarize(&r.values(CASE, metric, subject)).map(|s| s.median)
    };
    let levels: Vec<(usize, f64)> = [1, 2, 4, 8, 16, 32]
        .into_iter()
        .filter_map(|c| Some((c, one(results, KILLED, &pk_subject(c))?)))
        .collect();
    let Some(default) = default_concurrency().await else {
        results.note("mass: podkeeper's default --max-concurrent not found in its help".into());
        return;
    };
    let pk_killed = one(results, KILLED, &pk_subject(default));
    if let (Some(pk), Some(pm)) = (pk_killed, one(results, KILLED, PEER_PODMAN)) {
        results.target(
            &format!("mass: {n} killed at once, podkeeper (default --max-concurrent {default}) ≤ 1.0× podman's restart policy"),
            format!("{:.2}× ({:.0} vs {:.0} ms)", pk / pm, pk, pm),
            Some(pk <= pm),
        );
    }
    let max = levels
        .iter()
        .filter_map(|(c, _)| {
            let v = results.values(CASE, "reconciles per app, all killed", &pk_subject(*c));
            v.into_iter().reduce(f64::max)
        })
        .reduce(f64::max);
    if let Some(max) = max {
        results.target(
            "mass: ≤ 2 reconciles per app",
            format!("max {max:.0} over every --max-concurrent"),
            Some(max <= 2.0),
        );
    }
    if let Some(pk) = one(results, COLD, &pk_subject(default)) {
        for peer in [PEER_PODMAN, PEER_QUADLET] {
            if let Some(p) = one(results, COLD, peer) {
                results.target(
                    &format!("cold start of {n}: podkeeper faster than {peer}"),
                    format!("{:.2}× ({:.0} vs {:.0} ms)", pk / p, pk, p),
                    Some(pk < p),
                );
            }
        }
    }
    if !levels.is_empty() {
        let list: Vec<String> = levels
            .iter()
            .map(|(c, ms)| format!("{c}: {:.1} s", ms / 1000.0))
            .collect();
        results.analysis_text(format!(
            "**Mass recovery against `--max-concurrent`** ({n} apps killed at once, time to the \
             last one running): {}.",
            list.join(", ")
        ));
    }
}
