//! Cases 4 and 5 on the simulated podman: calls per event and per sweep at 1,000 and 10,000 apps, reactor throughput, RSS, and a burst.
//!
//! Each size runs in a fresh child process (this binary with
//! `BENCH_SCALE_CHILD=N`) so its peak RSS is that size's alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use podkeeper::manifest::{assemble, parse_manifest, ManifestSet};
use podkeeper::observe::{Observer, Reacted};
use podkeeper::reactor::{Reactor, ReactorConfig};
use podkeeper::reconcile::app::labels_for;
use podkeeper::report::{Clock, Reporter};
use podkeeper::runtime::sim_podman::{EventSet, SimRuntime};
use podkeeper::sources::CHANNEL_CAPACITY;
use podkeeper::trigger::Key;
use podkeeper::trigger::{Actor, PodmanEvent, StreamStatus, Trigger};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::stats::{Results, PODKEEPER};

const SIZES: [usize; 2] = [1_000, 10_000];
const THROUGHPUT_EVENTS: usize = 1_000_000;
const CASE_SCALE: &str = "4 scale (sim)";
const CASE_BURST: &str = "5 burst (sim)";

fn app_set(n: usize, prefix: &str) -> ManifestSet {
    let parsed = (0..n)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let file = PathBuf::from(format!("{id}.yaml"));
            let text = crate::stack::manifest(&id, "");
            let app = parse_manifest(&file, &text).expect("the bench's manifest is valid");
            (file, app)
        })
        .collect();
    assemble(parsed, vec![])
}

fn quiet_reporter() -> Reporter {
    Reporter::new(false, Clock::Wall, Box::new(std::io::sink()))
}

/// A `died` event as podman 4.3 sends it for app `id`.
fn died(id: &str, cid: &str, time_nano: i64) -> PodmanEvent {
    let mut attributes = BTreeMap::new();
    attributes.insert("name".into(), id.to_string());
    attributes.insert("image".into(), crate::stack::IMAGE.into());
    attributes.insert("containerExitCode".into(), "137".into());
    attributes.insert(podkeeper::APP_LABEL.into(), id.to_string());
    PodmanEvent {
        typ: "container".into(),
        action: "died".into(),
        actor: Actor {
            id: cid.to_string(),
            attributes,
        },
        time_nano,
        rest: serde_json::Map::new(),
    }
}

/// Run every size in its own process and collect what they print.
pub fn scale(results: &mut Results) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    for n in SIZES {
        eprintln!("scale: {n} apps (child process)");
        let out = std::process::Command::new(&exe)
            .env("BENCH_SCALE_CHILD", n.to_string())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "scale child {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let sim_rss = std::process::Command::new(&exe)
            .env("BENCH_SCALE_CHILD", n.to_string())
            .env("BENCH_SCALE_SIM_ONLY", "1")
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v["rss_mb"].as_f64())
            .unwrap_or(f64::NAN);
        let get = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let tag = |m: &str| format!("{m} @ {n} apps");
        results.add(
            CASE_SCALE,
            &tag("podman calls per kill -9 (podman 4 events)"),
            PODKEEPER,
            "calls",
            &[get("calls_per_event")],
        );
        results.add(
            CASE_SCALE,
            &tag("podman calls per kill -9 (podman 5 events)"),
            PODKEEPER,
            "calls",
            &[get("calls_per_event_v5")],
        );
        results.add(
            CASE_SCALE,
            &tag("sweep calls (1 % stopped)"),
            PODKEEPER,
            "calls",
            &[get("sweep_calls")],
        );
        results.add(
            CASE_SCALE,
            &tag("sweep list calls"),
            PODKEEPER,
            "calls",
            &[get("sweep_lists")],
        );
        results.add(
            CASE_SCALE,
            &tag("reactor throughput"),
            PODKEEPER,
            "events/s",
            &[get("events_per_sec")],
        );
        results.add(
            CASE_SCALE,
            &tag("peak RSS, whole bench process"),
            PODKEEPER,
            "MB",
            &[get("rss_mb")],
        );
        results.add(
            CASE_SCALE,
            &tag("peak RSS, simulated podman alone"),
            "sim runtime",
            "MB",
            &[sim_rss],
        );
        let pk_rss = get("rss_mb") - sim_rss;
        results.add(
            CASE_SCALE,
            &tag("RSS: podkeeper's share (whole − sim)"),
            PODKEEPER,
            "MB",
            &[pk_rss],
        );
        let repairs = get("repairs");
        let (calls, lists, eps, rss) = (
            get("calls_per_event"),
            get("sweep_lists"),
            get("events_per_sec"),
            get("rss_mb"),
        );
        // podman 4.3 cannot tell a crash from a stop by hand: the exit grace
        // looks twice (inspect, grace, inspect, start); podman 5 says which
        // it was, and a crash is started after one look.
        let calls_v5 = get("calls_per_event_v5");
        results.target(
            &format!("scale: ≤ 2 podman calls per event @ {n} apps, podman 5"),
            format!("{calls_v5}"),
            Some(calls_v5 <= 2.0),
        );
        results.target(
            &format!("scale: ≤ 2 podman calls per event @ {n} apps, podman 4.3"),
            format!("{calls} (the exit grace looks twice: inspect, grace, inspect, start)"),
            Some(calls <= 2.0),
        );
        results.target(
            &format!("scale: sweep = 1 list + repairs @ {n} apps"),
            format!(
                "{} calls: {lists} list + {repairs} stopped apps × 2 (inspect, start)",
                get("sweep_calls")
            ),
            Some(lists == 1.0 && get("sweep_calls") == 1.0 + 2.0 * repairs),
        );
        results.target(
            &format!("scale: reactor ≥ 200,000 events/s @ {n} apps"),
            format!("{eps:.0}"),
            Some(eps >= 200_000.0),
        );
        if n == 10_000 {
            results.target(
                "scale: RSS < 30 MB @ 10,000 apps",
                format!("{pk_rss:.1} MB = {rss:.1} MB peak of the whole process − {sim_rss:.1} MB for the simulated podman alone"),
                Some(pk_rss < 30.0),
            );
        }
    }
    Ok(())
}

/// Only the simulated podman of `n` running apps (and the events the
/// throughput phase sends), to subtract its memory from the whole process's.
fn sim_only(n: usize) -> anyhow::Result<()> {
    let sim = SimRuntime::new(&[crate::stack::IMAGE], None);
    for i in 0..n {
        // One manifest at a time, so none is alive at the end.
        let id = format!("app-{i}");
        let set = app_set_one(&id);
        sim.add_running(&id, labels_for(&set.apps[&id]));
    }
    let templates: Vec<PodmanEvent> = sim
        .containers()
        .iter()
        .map(|c| died(&c.name, &c.id, 0))
        .collect();
    let rss_mb = crate::stack::proc_usage(std::process::id() as i32).map_or(f64::NAN, |u| u.2);
    println!(
        "{}",
        serde_json::json!({"n": n, "rss_mb": rss_mb, "events": templates.len()})
    );
    Ok(())
}

fn app_set_one(id: &str) -> ManifestSet {
    let file = PathBuf::from(format!("{id}.yaml"));
    let text = crate::stack::manifest(id, "");
    let app = parse_manifest(&file, &text).expect("the bench's manifest is valid");
    assemble(vec![(file, app)], vec![])
}

/// One size, in this (child) process: prints one JSON object.
pub fn scale_child(n: usize) -> anyhow::Result<()> {
    if std::env::var("BENCH_SCALE_SIM_ONLY").is_ok() {
        return sim_only(n);
    }
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let (calls_per_event, sweep_calls, sweep_lists, repairs) =
        paused.block_on(calls(n, EventSet::V4))?;
    let (calls_per_event_v5, ..) = paused.block_on(calls(n, EventSet::V5))?;
    drop(paused);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let events_per_sec = rt.block_on(throughput(n))?;
    let rss_mb = crate::stack::proc_usage(std::process::id() as i32).map_or(f64::NAN, |u| u.2);
    println!(
        "{}",
        serde_json::json!({
            "n": n, "calls_per_event": calls_per_event,
            "calls_per_event_v5": calls_per_event_v5, "sweep_calls": sweep_calls,
            "sweep_lists": sweep_lists, "repairs": repairs,
            "events_per_sec": events_per_sec, "rss_mb": rss_mb,
        })
    );
    Ok(())
}

/// Calls caused by one crash, and by one sweep with 1 % of the apps
/// stopped silently, on a podman of event set `events`.
async fn calls(n: usize, events: EventSet) -> anyhow::Result<(usize, usize, usize, usize)> {
    let set = app_set(n, "app-");
    let (etx, mut erx) = mpsc::unbounded_channel();
    let sim = SimRuntime::new(&[crate::stack::IMAGE], Some(etx)).with_event_set(events);
    for id in set.apps.keys() {
        sim.add_running(id, labels_for(&set.apps[id]));
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let reactor = Reactor::new(
        Arc::new(sim.clone()),
        rx,
        set,
        ReactorConfig::default(),
        quiet_reporter(),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(reactor.run(cancel.clone()));
    // The simulated events stream; `mute` drops events (changes behind podkeeper's back).
    let mute = Arc::new(AtomicBool::new(false));
    let fwd = {
        let (tx, mute) = (tx.clone(), mute.clone());
        tokio::spawn(async move {
            while let Some(ev) = erx.recv().await {
                if !mute.load(Ordering::SeqCst) && tx.send(Trigger::Podman(ev)).await.is_err() {
                    return;
                }
            }
        })
    };
    tx.send(Trigger::Stream(StreamStatus::Connected { resumed: false }))
        .await?;
    // Long enough that no container counts as a crash loop.
    tokio::time::sleep(Duration::from_secs(60)).await;

    sim.clear_calls();
    sim.crash(&format!("app-{}", n / 2), 137);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let per_event = sim.calls().len();

    mute.store(true, Ordering::SeqCst);
    let repairs = n / 100;
    for i in 0..repairs {
        sim.crash(&format!("app-{}", i * 100 + 1), 137);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    mute.store(false, Ordering::SeqCst);
    sim.clear_calls();
    tx.send(Trigger::SweepTick).await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = sim.calls();
    let lists = calls.iter().filter(|c| *c == "list").count();
    cancel.cancel();
    let _ = task.await;
    fwd.abort();
    Ok((per_event, calls.len(), lists, repairs))
}

/// Events per second through the channel into a running reactor (real time).
async fn throughput(n: usize) -> anyhow::Result<f64> {
    let set = app_set(n, "app-");
    let sim = SimRuntime::new(&[crate::stack::IMAGE], None);
    for id in set.apps.keys() {
        sim.add_running(id, labels_for(&set.apps[id]));
    }
    let templates: Vec<PodmanEvent> = sim
        .containers()
        .iter()
        .map(|c| died(&c.name, &c.id, 0))
        .collect();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let reactor = Reactor::new(
        Arc::new(sim),
        rx,
        set,
        ReactorConfig::default(),
        quiet_reporter(),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(reactor.run(cancel.clone()));
    // Warm up: the start-up sweep teaches the reactor every container.
    tx.send(Trigger::Stream(StreamStatus::Connected { resumed: false }))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = std::time::Instant::now();
    for i in 0..THROUGHPUT_EVENTS {
        let mut ev = templates[i % n].clone();
        ev.time_nano = i as i64;
        tx.send(Trigger::Podman(ev)).await?;
    }
    // Every event sent has been taken out of the channel.
    while tx.capacity() < tx.max_capacity() {
        tokio::task::yield_now().await;
    }
    let secs = start.elapsed().as_secs_f64();
    cancel.cancel();
    let stats = task.await?;
    anyhow::ensure!(
        stats.triggers as usize > THROUGHPUT_EVENTS,
        "the reactor saw {} triggers",
        stats.triggers
    );
    Ok(THROUGHPUT_EVENTS as f64 / secs)
}

/// Case 5: 10,000 `died` events for 100 crashed apps over one second.
pub fn burst(results: &mut Results) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    for (label, spread, events) in [
        ("spread over 1 s", Duration::from_secs(1), EventSet::V4),
        ("all at once", Duration::ZERO, EventSet::V4),
        (
            "spread over 1 s, podman 5",
            Duration::from_secs(1),
            EventSet::V5,
        ),
        ("all at once, podman 5", Duration::ZERO, EventSet::V5),
    ] {
        let (per_app, idle_after) = rt.block_on(burst_once(spread, events))?;
        let max = per_app.iter().copied().fold(0.0, f64::max);
        results.add(
            CASE_BURST,
            &format!("reconciles per app, {label}"),
            PODKEEPER,
            "reconciles",
            &per_app,
        );
        results.add(
            CASE_BURST,
            &format!("last event → idle, {label}"),
            PODKEEPER,
            "ms (sim time)",
            &[idle_after],
        );
        results.target(
            &format!("burst: ≤ 2 reconciles per app ({label})"),
            format!(
                "max {max}, mean {:.2}",
                per_app.iter().sum::<f64>() / per_app.len() as f64
            ),
            Some(max <= 2.0),
        );
    }
    Ok(())
}

/// Counts the reconciles of each app (its reactions), for the burst.
#[derive(Clone, Default)]
struct Reconciles(Arc<std::sync::Mutex<BTreeMap<String, usize>>>);

impl Observer for Reconciles {
    fn reaction(&mut self, r: &Reacted<'_>) {
        if let Key::App(id) = &r.reaction.key {
            let mut per_app = self.0.lock().unwrap_or_else(|p| p.into_inner());
            *per_app.entry(id.clone()).or_default() += 1;
        }
    }
}

async fn burst_once(spread: Duration, events: EventSet) -> anyhow::Result<(Vec<f64>, f64)> {
    const APPS: usize = 100;
    const EVENTS: usize = 10_000;
    let set = app_set(APPS, "burst-");
    let (etx, mut erx) = mpsc::unbounded_channel();
    let sim = SimRuntime::new(&[crate::stack::IMAGE], Some(etx)).with_event_set(events);
    for id in set.apps.keys() {
        sim.add_running(id, labels_for(&set.apps[id]));
    }
    let (_tx, rx) = mpsc::channel(1);
    let reconciles = Reconciles::default();
    let mut reactor = Reactor::new(
        Arc::new(sim.clone()),
        rx,
        set,
        ReactorConfig::default(),
        quiet_reporter(),
    )
    .with_observer(Box::new(reconciles.clone()));
    reactor.handle(Trigger::Stream(StreamStatus::Connected { resumed: false }));
    reactor.run_until_idle().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    while erx.try_recv().is_ok() {}

    // Every app really crashed; the burst is its events and many repeats.
    let ids: Vec<(String, String)> = sim
        .containers()
        .iter()
        .map(|c| (c.name.clone(), c.id.clone()))
        .collect();
    for (name, _) in &ids {
        sim.crash(name, 137);
    }
    while erx.try_recv().is_ok() {}
    sim.clear_calls();
    reconciles
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let start = tokio::time::Instant::now();
    let step = spread / EVENTS as u32;
    for i in 0..EVENTS {
        let at = start + step * i as u32;
        if at > tokio::time::Instant::now() {
            reactor.step_until(at).await;
        }
        let (name, cid) = &ids[i % APPS];
        reactor.handle(Trigger::Podman(died(name, cid, i as i64)));
        // What podman emits in reply to podkeeper's own starts reaches it too.
        while let Ok(ev) = erx.try_recv() {
            reactor.handle(Trigger::Podman(ev));
        }
    }
    let last = tokio::time::Instant::now();
    loop {
        reactor.run_until_idle().await;
        let mut more = false;
        while let Ok(ev) = erx.try_recv() {
            reactor.handle(Trigger::Podman(ev));
            more = true;
        }
        if !more {
            break;
        }
    }
    let idle_after = (tokio::time::Instant::now() - last).as_secs_f64() * 1000.0;
    // The reconciles since the burst began (the start-up sweep's are cleared).
    let per_app = {
        let counted = reconciles.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .map(|(name, _)| counted.get(name).copied().unwrap_or(0) as f64)
            .collect()
    };
    Ok((per_app, idle_after))
}
