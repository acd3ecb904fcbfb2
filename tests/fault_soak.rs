//! The fault soak: the podman API service SIGKILLed and restarted again and again while the containers of several apps are killed; every kill repaired exactly once.
//!
//! Short by default (60 s); `PODKEEPER_SOAK_SECS=600 cargo test --test
//! fault_soak -- --nocapture` soaks longer. Judged from both sides:
//!
//! * podman's: over the soak, each app's container has exactly one `start`
//!   event and one `died` per kill, and no `create` (never recreated, never
//!   created twice);
//! * podkeeper's `--debug` output: exactly one successful `start` reaction
//!   per kill of that app, no `create` after start-up;
//! * the host's: one conmon per app at the end (no container process left
//!   running outside podman).
//!
//! Each app is killed only after 10 s of uptime: a quicker exit is a crash
//! loop, whose restart is delayed on purpose.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use jiff::Timestamp;

const APPS: usize = 5;
const PREFIX: &str = "e2e-soak-";
/// A container killed sooner than 10 s after its start counts as a crash
/// loop (its restart is delayed on purpose): each app is killed only after
/// it has run this long, so every repair is immediate.
const MIN_UPTIME: Duration = Duration::from_secs(11);

fn soak_time() -> Duration {
    let secs = std::env::var("PODKEEPER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// PIDs of `podman system service … unix://<socket>` processes.
fn service_pids() -> Vec<i32> {
    let want = format!("unix://{}", socket().display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_podman = argv.first().is_some_and(|a| a.ends_with("podman"));
        let joined = argv.join(" ");
        if is_podman && joined.contains(" system service ") && joined.contains(&want) {
            pids.push(pid);
        }
    }
    pids
}

/// One podman event: (container name, action, when).
type Ev = (String, String, Timestamp);

/// podman's container events from `since` to `until`, read from its events
/// log by `podman events` (no service needed). podman 4.3's `--until` ends
/// the read early on this log, so the end is cut here.
fn podman_events(since: Timestamp, until: Timestamp) -> Vec<Ev> {
    let out = podman_ok(&[
        "events",
        "--stream=false",
        "--since",
        &since.as_second().to_string(),
        "--format",
        "json",
    ]);
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let time = v["Time"].as_str()?.parse::<Timestamp>().ok()?;
            Some((
                v["Name"].as_str()?.to_string(),
                v["Status"].as_str()?.to_string(),
                time,
            ))
        })
        .filter(|(_, _, t)| *t >= since && *t <= until)
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn kills_of_containers_and_of_the_podman_service_should_each_be_repaired_exactly_once() {
    let _g = serial();
    let _service = ServiceGuard;
    let apps = Apps::new(PREFIX);
    let ids: Vec<String> = (0..APPS).map(|i| format!("{PREFIX}{i}")).collect();
    for id in &ids {
        apps.write(id, TRAP_CMD);
    }
    let d = Daemon::start(apps.path(), &[]);
    wait_until(Duration::from_secs(60), "all running", || {
        ids.iter().all(|id| is_running(id))
    });
    let first: BTreeMap<&String, Ctr> = ids.iter().map(|id| (id, inspect(id).unwrap())).collect();
    let mut up_since: BTreeMap<&String, Instant> =
        ids.iter().map(|id| (id, Instant::now())).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let since = Timestamp::now();
    let mark = d.mark();

    let soak = soak_time();
    let t0 = Instant::now();
    let mut kills: Vec<(String, Timestamp, bool)> = Vec::new();
    let mut service_kills = 0;
    let mut cycle = 0usize;
    while t0.elapsed() < soak {
        let ready: Vec<&String> = ids
            .iter()
            .filter(|id| up_since[id].elapsed() >= MIN_UPTIME)
            .collect();
        if ready.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        cycle += 1;
        // 1, 2 or 3 of the apps that have run long enough.
        let victims: Vec<&String> = ready.into_iter().take(1 + cycle % 3).collect();
        let before: Vec<Ctr> = victims.iter().map(|id| inspect(id).unwrap()).collect();
        // Every third cycle the service is SIGKILLed too: before the kills
        // (they happen while podman is away) or right after (mid-repair).
        let outage = cycle % 3 == 0;
        let kill_service = || {
            for pid in service_pids() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        };
        if outage && cycle % 2 == 0 {
            kill_service();
            service_kills += 1;
        }
        for (id, c) in victims.iter().zip(&before) {
            kills.push((id.to_string(), Timestamp::now(), outage));
            kill9(c.pid);
        }
        if outage && cycle % 2 == 1 {
            std::thread::sleep(Duration::from_millis(50));
            kill_service();
            service_kills += 1;
        }
        if outage {
            std::thread::sleep(Duration::from_millis(1000));
            podman_service("start");
        }
        for (id, old) in victims.iter().zip(&before) {
            wait_until(Duration::from_secs(60), &format!("{id} repaired"), || {
                inspect(id).is_some_and(|c| c.status == "running" && c.started_at != old.started_at)
            });
            up_since.insert(id, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    // podman delivers events up to 250 ms late; let every echo land.
    std::thread::sleep(Duration::from_secs(2));
    let until = Timestamp::now();
    let out = d.lines_since(mark);
    assert_eq!(d.stop(), Some(0));

    let events = podman_events(since, until);
    // Repair time from podman's view: the kill to the next `start` event.
    let (mut quick, mut outages) = (Vec::new(), Vec::new());
    for (id, at, outage) in &kills {
        let started = events
            .iter()
            .filter(|(n, a, t)| n == id && a == "start" && t > at)
            .map(|(_, _, t)| *t)
            .min();
        if let Some(t) = started {
            let secs = t.duration_since(*at).as_secs_f64();
            if *outage {
                outages.push(secs)
            } else {
                quick.push(secs)
            }
        }
    }
    quick.sort_by(f64::total_cmp);
    outages.sort_by(f64::total_cmp);
    println!(
        "soak {}s: {cycle} cycles, {} container kills, {service_kills} podman service SIGKILLs",
        soak.as_secs(),
        kills.len()
    );
    println!(
        "kill -> start event, podman up: n={} median {:.3}s p90 {:.3}s max {:.3}s; with the service killed: n={} median {:.3}s max {:.3}s",
        quick.len(),
        percentile(&quick, 0.5),
        percentile(&quick, 0.9),
        percentile(&quick, 1.0),
        outages.len(),
        percentile(&outages, 0.5),
        percentile(&outages, 1.0),
    );
    assert!(
        service_kills >= 2 && kills.len() >= 6,
        "the soak did something"
    );
    let mut problems = Vec::new();
    for id in &ids {
        let k = kills.iter().filter(|(n, _, _)| n == id).count();
        let count = |action: &str| {
            events
                .iter()
                .filter(|(n, a, _)| n == id && a == action)
                .count()
        };
        let reacted = |action: &str| {
            out.iter()
                .filter(|l| {
                    l.contains(&format!("react  app/{id} "))
                        && l.contains(&format!(" {action} "))
                        && l.ends_with("ok")
                })
                .count()
        };
        let line = format!(
            "{id}: {k} kills; podman: {} died, {} start, {} create; podkeeper: {} start, {} create",
            count("died"),
            count("start"),
            count("create"),
            reacted("start"),
            reacted("create"),
        );
        println!("{line}");
        let podman_ok = count("died") == k && count("start") == k && count("create") == 0;
        let podkeeper_ok = reacted("start") == k && reacted("create") == 0;
        if !podman_ok || !podkeeper_ok {
            problems.push(line);
        }
        assert_eq!(
            inspect(id).unwrap().id,
            first[id].id,
            "{id}: the same container all along"
        );
    }
    // Each app's one container has one conmon: no process was left behind.
    for id in &ids {
        let conmons = Command::new("pgrep")
            .args(["-f", &format!("conmon .* -n {id} ")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0);
        if conmons != 1 {
            problems.push(format!("{id}: {conmons} conmon processes, not 1"));
        }
    }
    assert!(
        problems.is_empty(),
        "every kill repaired exactly once:\n{}\n--- podkeeper:\n{}",
        problems.join("\n"),
        out.join("\n")
    );
}
