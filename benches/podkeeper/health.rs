//! Case `health`: a failing healthcheck → the container running again, podkeeper vs podman's own `--health-on-failure=restart`; the CPU cost of 50 checked apps.
//!
//! Both subjects get the same check (`test -e /tmp/ok`; the container's
//! command creates the file at each start), interval 1 s, retries 2. A trial
//! deletes the file (`podman exec … rm`) and times from just before that to
//! the new `StartedAt`. podman's own checks run from systemd timers
//! (transient `podman healthcheck run` units); where none can be made (no
//! systemd as PID 1) the case says so, with what it saw over the window.
//!
//! Knobs: `BENCH_HEALTH_TRIALS` (5), `BENCH_HEALTH_OWN_SECS` (15, how long
//! podman's own restart is waited for), `BENCH_HEALTH_CPU_SECS` (60, the CPU
//! window of 50 apps checked every 10 s).

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::knob;
use crate::stack::{self, Api, Podkeeper};
use crate::stats::{Results, PODKEEPER};

const CASE: &str = "health";
const OWN: &str = "podman --health-on-failure=restart";
const CHECKED_APPS: usize = 50;
/// The API service's pid (scripts/podman-service).
const SERVICE_PIDFILE: &str = "/run/podman/podkeeper-podman-service.pid";

fn checked_manifest(id: &str, interval: &str) -> String {
    let trap = stack::TRAP.replace('"', "\\\"");
    format!(
        "app:\n  id: {id}\n  container:\n    image: {}\n    command: [\"/bin/sh\", \"-c\", \"touch /tmp/ok; {trap}\"]\n    network: none\n    healthcheck:\n      command: [\"/bin/test\", \"-e\", \"/tmp/ok\"]\n      interval: {interval}\n      timeout: 2s\n      retries: 2\n",
        stack::IMAGE
    )
}

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    podkeeper_restarts(results, out).await?;
    podmans_own(results).await?;
    cpu_of_checks(results, out).await
}

/// Trials of podkeeper: file deleted → running again.
async fn podkeeper_restarts(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let trials = knob("BENCH_HEALTH_TRIALS", 5).max(1);
    let tmp = tempfile::tempdir()?;
    let name = "bench-health-pk";
    std::fs::write(tmp.path().join("a.yaml"), checked_manifest(name, "1s"))?;
    let apps = tmp.path().to_string_lossy().to_string();
    let pk = Podkeeper::start(&["--apps", &apps], &out.join("health-podkeeper.log")).await?;
    let api = Api::new();
    let mut took = Vec::new();
    for trial in 0..trials {
        // Healthy for a while first: the first check of this start passed.
        let c = stack::wait_uptime(&api, name, Duration::from_secs(3)).await?;
        let t0 = Timestamp::now();
        stack::podman(&["exec", name, "rm", "/tmp/ok"]).await?;
        let again = api
            .wait_started(name, c.started_at, Duration::from_secs(30))
            .await?;
        let ms = stack::ms_between(t0, again.started_at);
        eprintln!("  health: podkeeper trial {trial}: {ms:.0} ms");
        took.push(ms);
    }
    pk.stop().await;
    let _ = stack::podman(&["rm", "-f", "-t", "0", name]).await;
    results.add(
        CASE,
        "check file deleted → running again (interval 1 s, retries 2)",
        PODKEEPER,
        "ms",
        &took,
    );
    Ok(())
}

/// podman's own checks and `--health-on-failure=restart` on the same check.
async fn podmans_own(results: &mut Results) -> anyhow::Result<()> {
    let window = Duration::from_secs(knob("BENCH_HEALTH_OWN_SECS", 15).max(3));
    let name = "bench-health-own";
    let _ = stack::podman(&["rm", "-f", "-t", "0", name]).await;
    let trap = format!("touch /tmp/ok; {}", stack::TRAP);
    let run = stack::podman(&[
        "run",
        "-d",
        "--name",
        name,
        "--network=none",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-on-failure=restart",
        stack::IMAGE,
        "/bin/sh",
        "-c",
        &trap,
    ])
    .await;
    if let Err(e) = run {
        results.note(format!("{OWN}: cannot be created here: {e:#}"));
        return Ok(());
    }
    let api = Api::new();
    let c = stack::wait_uptime(&api, name, Duration::from_secs(3)).await?;
    let id = stack::podman(&["inspect", "-f", "{{.Id}}", name]).await?;
    let timers = stack::systemctl(&["list-timers", "--all", "--no-legend"]).await;
    let has_timer = timers.as_deref().is_ok_and(|t| t.contains(id.trim()));
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let t0 = Timestamp::now();
    stack::podman(&["exec", name, "rm", "/tmp/ok"]).await?;
    let again = api.wait_started(name, c.started_at, window).await;
    let log_len = stack::podman(&["inspect", "-f", "{{len .State.Health.Log}}", name])
        .await
        .unwrap_or_default();
    let status = stack::podman(&["inspect", "-f", "{{.State.Health.Status}}", name])
        .await
        .unwrap_or_default();
    let _ = stack::podman(&["rm", "-f", "-t", "0", name]).await;
    match again {
        Ok(c) => {
            let ms = stack::ms_between(t0, c.started_at);
            eprintln!("  health: podman's own restart: {ms:.0} ms");
            results.add(
                CASE,
                "check file deleted → running again (interval 1 s, retries 2)",
                OWN,
                "ms",
                &[ms],
            );
        }
        Err(_) => {
            let why = format!(
                "{OWN} cannot run here: PID 1 is {:?}, not systemd, so podman makes no transient timer for the check (one for this container in root's user manager: {has_timer}); over {} s after the check file was deleted the container was not restarted, its health log held {} entries and its status stayed {:?}",
                pid1.trim(),
                window.as_secs(),
                log_len.trim(),
                status.trim()
            );
            eprintln!("  health: {why}");
            results.note(why);
        }
    }
    Ok(())
}

/// podkeeper's and the podman service's CPU for 50 apps checked every 10 s.
async fn cpu_of_checks(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let window = Duration::from_secs(knob("BENCH_HEALTH_CPU_SECS", 60).max(10));
    let tmp = tempfile::tempdir()?;
    for i in 0..CHECKED_APPS {
        let id = format!("bench-hcpu-{i}");
        std::fs::write(
            tmp.path().join(format!("{id}.yaml")),
            checked_manifest(&id, "10s"),
        )?;
    }
    let apps = tmp.path().to_string_lossy().to_string();
    let pk = Podkeeper::start(
        &["--apps", &apps, "--sweep-interval", "1h"],
        &out.join("health-cpu-podkeeper.log"),
    )
    .await?;
    let api = Api::new();
    for i in 0..CHECKED_APPS {
        api.wait_started(
            &format!("bench-hcpu-{i}"),
            Timestamp::MIN,
            Duration::from_secs(120),
        )
        .await?;
    }
    // Past the start-up and the first round of checks.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let service: i32 = std::fs::read_to_string(SERVICE_PIDFILE)?.trim().parse()?;
    let (cpu0, _, _) = stack::proc_usage(pk.pid()).unwrap_or_default();
    let (scpu0, _, _) = stack::proc_usage(service).unwrap_or_default();
    tokio::time::sleep(window).await;
    let (cpu1, rss, _) = stack::proc_usage(pk.pid()).unwrap_or_default();
    let (scpu1, _, _) = stack::proc_usage(service).unwrap_or_default();
    pk.stop().await;
    stack::cleanup().await;
    let per_hour = 3600.0 / window.as_secs_f64();
    let metric = "CPU per hour, 50 apps checked every 10 s";
    let (pk_h, svc_h) = ((cpu1 - cpu0) * per_hour, (scpu1 - scpu0) * per_hour);
    results.add(CASE, metric, PODKEEPER, "CPU-s/h", &[pk_h]);
    results.add(CASE, metric, "podman API service", "CPU-s/h", &[svc_h]);
    results.add(CASE, "RSS, 50 checked apps", PODKEEPER, "MB", &[rss]);
    results.note(format!(
        "health CPU: a {} s window, {CHECKED_APPS} apps checked every 10 s (about {} checks), extrapolated to an hour: podkeeper {pk_h:.1} CPU-s/h, the podman API service {svc_h:.1} CPU-s/h (its own CPU and that of the children it waited for; the conmon and runc of each check's exec session are not counted)",
        window.as_secs(),
        CHECKED_APPS as u64 * window.as_secs() / 10,
    ));
    eprintln!("  health: CPU podkeeper {pk_h:.1} CPU-s/h, podman service {svc_h:.1} CPU-s/h");
    Ok(())
}
