//! Case 2: companion recovery (unit file deleted; its container killed) vs systemd's `Restart=always` on the same unit.
//!
//! Needs podkeeper's companions (issue 3: `run --unit-dir DIR --user`); without
//! them the case reports itself as not measured.

use std::path::Path;
use std::time::Duration;

use crate::knob;
use crate::recovery::MIN_UPTIME;
use crate::stack::{self, Api, Podkeeper};
use crate::stats::{Results, PODKEEPER};

const CASE: &str = "2 companion";
const KILL: &str = "container killed → service active";
const DELETE: &str = "unit file deleted → restored, reloaded, active";
const PEER: &str = "systemd Restart=always";

/// A manifest's `companions:` block with one Quadlet `.container` (YAML, indented for `app:`).
pub fn companion_yaml(name: &str, restart: bool) -> String {
    let unit = stack::quadlet_unit(name, restart);
    let body: String = unit
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("        {l}\n")
            }
        })
        .collect();
    format!("  companions:\n    - name: {name}\n      kind: container\n      unit: |\n{body}")
}

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    if !stack::podkeeper_has_companions().await {
        results.target(
            "companion: median faster than systemd Restart=always",
            "this podkeeper build has no `run --unit-dir` (issue 3 not merged yet)".into(),
            None,
        );
        return Ok(());
    }
    let trials = knob("BENCH_TRIALS", 20) as usize;
    let rot = knob("BENCH_ROTATE", 4).max(1) as usize;
    let api = Api::new();
    let tmp = tempfile::tempdir()?;
    let apps = tmp.path().join("apps");
    std::fs::create_dir_all(&apps)?;
    let unit_dir = stack::user_unit_dir().join("bench");
    std::fs::create_dir_all(&unit_dir)?;
    for i in 0..rot {
        let id = format!("bench-capp-{i}");
        let comp = companion_yaml(&format!("bench-comp-{i}"), false);
        std::fs::write(apps.join(format!("{id}.yaml")), stack::manifest(&id, &comp))?;
    }
    // The peer: the same unit plus Restart=always, not podkeeper's.
    stack::start_quadlet_peers(&stack::user_unit_dir(), "bench-sd-", rot).await?;
    let sock = stack::socket();
    let pk = Podkeeper::start(
        &[
            "--apps",
            &apps.to_string_lossy(),
            "--socket",
            &sock.to_string_lossy(),
            "--sweep-interval",
            "1h",
            "--unit-dir",
            &unit_dir.to_string_lossy(),
            "--user",
        ],
        &out.join("companion-podkeeper.log"),
    )
    .await?;
    for i in 0..rot {
        wait_active(
            &format!("bench-comp-{i}.service"),
            0,
            Duration::from_secs(120),
        )
        .await?;
    }

    let (mut pk_kill, mut sd_kill, mut pk_delete) = (vec![], vec![], vec![]);
    for r in 0..trials {
        let i = r % rot;
        for k in 0..3 {
            match (r + k) % 3 {
                0 => {
                    let ms = kill_trial(&api, &format!("bench-comp-{i}")).await?;
                    eprintln!("  round {r:>2}  podkeeper kill     {ms:>8.1} ms");
                    pk_kill.push(ms);
                }
                1 => {
                    let ms = kill_trial(&api, &format!("bench-sd-{i}")).await?;
                    eprintln!("  round {r:>2}  systemd kill       {ms:>8.1} ms");
                    sd_kill.push(ms);
                }
                _ => {
                    let name = format!("bench-comp-{i}");
                    let file = unit_dir.join(format!("{name}.container"));
                    let ms = delete_trial(&file, &name).await?;
                    eprintln!("  round {r:>2}  podkeeper delete   {ms:>8.1} ms");
                    pk_delete.push(ms);
                }
            }
        }
    }
    pk.stop().await;
    results.add(CASE, KILL, PODKEEPER, "ms", &pk_kill);
    results.add(CASE, KILL, PEER, "ms", &sd_kill);
    results.add(CASE, DELETE, PODKEEPER, "ms", &pk_delete);
    if let (Some(p), Some(s)) = (
        results.summary(CASE, KILL, PODKEEPER),
        results.summary(CASE, KILL, PEER),
    ) {
        results.target(
            "companion: median faster than systemd Restart=always",
            format!(
                "{:.0} vs {:.0} ms (ratio {:.2})",
                p.median,
                s.median,
                p.median / s.median
            ),
            Some(p.median < s.median),
        );
    }
    Ok(())
}

/// Wait until `unit` is active and entered that state after `after_us` (monotonic).
async fn wait_active(unit: &str, after_us: u64, limit: Duration) -> anyhow::Result<u64> {
    let until = tokio::time::Instant::now() + limit;
    loop {
        let p = stack::unit_props(unit, "ActiveState,ActiveEnterTimestampMonotonic").await?;
        let at: u64 = stack::prop(&p, "ActiveEnterTimestampMonotonic")
            .parse()
            .unwrap_or(0);
        if stack::prop(&p, "ActiveState") == "active" && at > after_us {
            return Ok(at);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "{unit} not active again within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kill the unit's container; ms until systemd says the service entered `active` again.
async fn kill_trial(api: &Api, name: &str) -> anyhow::Result<f64> {
    let c = stack::wait_uptime(api, name, MIN_UPTIME).await?;
    let t0 = stack::monotonic_us();
    stack::kill9(c.pid)?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let at = wait_active(&format!("{name}.service"), t0, Duration::from_secs(60)).await?;
    Ok((at - t0) as f64 / 1000.0)
}

/// Delete the unit file; ms until it is back with its contents, systemd has
/// reloaded it and the service is active (polled every 20 ms).
async fn delete_trial(file: &Path, name: &str) -> anyhow::Result<f64> {
    let want = std::fs::read_to_string(file)?;
    let unit = format!("{name}.service");
    let t0 = stack::monotonic_us();
    std::fs::remove_file(file)?;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::read_to_string(file).ok().as_deref() == Some(want.as_str()) {
            let p = stack::unit_props(&unit, "ActiveState,LoadState,NeedDaemonReload").await?;
            if stack::prop(&p, "ActiveState") == "active"
                && stack::prop(&p, "LoadState") == "loaded"
                && stack::prop(&p, "NeedDaemonReload") == "no"
            {
                return Ok((stack::monotonic_us() - t0) as f64 / 1000.0);
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "{name} not restored within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
