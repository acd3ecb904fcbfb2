//! Case `update`: downtime during an update (no running container of the app, sampled every 10 ms), podkeeper's replace path vs 589375d's remove-then-create, `podman auto-update` on Quadlet and a plain stop + start.
//!
//! One sampler per trial inspects the app's container by name over the API
//! socket every 10 ms (one raw HTTP call, no fork: its own cost stays far
//! under the period) and keeps (time of the answer, running, id). The
//! downtime is the longest stretch of "not running" looks, from the midpoint
//! between the last running look and the first stopped one to the midpoint
//! between the last stopped one and the first running again; a trial ends
//! once a new container (another id, or another StartedAt) runs.
//!
//! Subjects, in the same run, taking turns round by round:
//! - podkeeper (this build): the manifest's env changed (image present), and
//!   its image switched to one only in the local registry (pulled during the
//!   update; a 20 MB layer of its own, removed from the store before each
//!   trial), `update.stable_for: 1s` so the next round does not land in a gate;
//! - podkeeper at 589375d (`PODKEEPER_BASELINE_BIN`, built by
//!   `scripts/bench-baseline`): the same two updates, removed then created;
//! - `podman auto-update` of a Quadlet `.container` unit with
//!   `AutoUpdate=registry`: the other image pushed under the unit's tag;
//! - `podman stop` + `podman start` of the same container over the API: the
//!   floor every row is divided by.
//!
//! Knobs: `BENCH_UPDATE_TRIALS` (5).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use podkeeper::runtime::libpod;
use tokio::time::Instant;

use crate::knob;
use crate::sampler::{trial, Gaps, PERIOD};
use crate::stack::{self, Podkeeper};
use crate::stats::{summarize, Results, PODKEEPER};

const CASE: &str = "8 update";
const PRESENT: &str = "downtime of an update, image present";
const PULLED: &str = "downtime of an update, image pulled from the registry";
const STOP_START: &str = "podman stop + start (API)";
const BASELINE: &str = "podkeeper 589375d (remove, then create)";
const AUTO: &str = "podman auto-update (Quadlet, AutoUpdate=registry)";
const PULL: &str = "podman pull of the update's image";
/// The registry images: `:a` and `:b` (each a 20 MB layer of its own over
/// the test image) and `:auto`, the Quadlet unit's tag.
const REGISTRY: &str = "127.0.0.1:5000/bench/upd";
const LAYER_BYTES: usize = 20 << 20;
/// The label of those images: what [`drop_images`] removes, dangling ones too.
const IMAGE_LABEL: &str = "io.podkeeper.bench=update";
const STOP_TIMEOUT_S: u32 = 2;

/// An app manifest of the update case: `env` and `image` are what trials change.
fn manifest(id: &str, image: &str, round: usize) -> String {
    let trap = stack::TRAP.replace('"', "\\\"");
    format!(
        "app:\n  id: {id}\n  update:\n    stable_for: 1s\n  container:\n    image: {image}\n    command: [\"/bin/sh\", \"-c\", \"{trap}\"]\n    network: none\n    stop_timeout: {STOP_TIMEOUT_S}s\n    env:\n      BENCH_ROUND: \"{round}\"\n"
    )
}

/// Write a manifest as an editor's save does: a new file renamed over the old.
fn write_manifest(dir: &Path, id: &str, text: &str) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{id}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(format!("{id}.yaml")))?;
    Ok(())
}

fn reg(tag: &str) -> String {
    format!("{REGISTRY}:{tag}")
}

/// Remove `image` from the store, so that the next update must pull it;
/// waits (up to 30 s) for a kept previous container that still uses it.
async fn absent(image: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match stack::podman(&["rmi", image]).await {
            Ok(_) => return Ok(()),
            Err(e) if format!("{e:#}").contains("image not known") => return Ok(()),
            Err(e) if Instant::now() > until => {
                return Err(e.context(format!("{image} must be absent before the update")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Wait (up to 60 s) until neither `<id>.next` nor `<id>.previous` exists:
/// the update is through its gate, the next may start.
async fn settled(id: &str) -> anyhow::Result<()> {
    let sock = stack::socket();
    let until = Instant::now() + Duration::from_secs(60);
    for role in ["next", "previous"] {
        let path = libpod::path(&format!("/containers/{id}.{role}/exists"));
        while libpod::exists(&sock, &path, Duration::from_secs(5))
            .await
            .unwrap_or(true)
        {
            anyhow::ensure!(Instant::now() < until, "{id}.{role} still there after 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The two registry images, each the test image plus a 20 MB layer of its
/// own (the same bytes every run: the registry keeps one copy), pushed and
/// then removed from the store; one pull of `:a` timed for the table.
async fn registry_images(results: &mut Results) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("bash")
        .args(["scripts/registry-service", "start"])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "the local registry does not start: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    for (i, tag) in ["a", "b"].into_iter().enumerate() {
        let ctx = tempfile::tempdir()?;
        // xorshift: incompressible, so the pull moves all 20 MB.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
        let mut bytes = Vec::with_capacity(LAYER_BYTES);
        while bytes.len() < LAYER_BYTES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let file = std::fs::File::create(ctx.path().join("payload"))?;
        std::io::Write::write_all(&mut &file, &bytes)?;
        file.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30))?;
        std::fs::write(
            ctx.path().join("Containerfile"),
            format!(
                "FROM {}\nLABEL {IMAGE_LABEL}\nCOPY payload /payload-{tag}\n",
                stack::IMAGE
            ),
        )?;
        let dir = ctx.path().to_string_lossy().to_string();
        let image = reg(tag);
        stack::podman(&["build", "-q", "--network=none", "-t", &image, &dir]).await?;
        stack::podman(&["push", "-q", &image]).await?;
        absent(&image).await?;
    }
    let t0 = Instant::now();
    stack::podman(&["pull", "-q", &reg("a")]).await?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    eprintln!("  update: podman pull of {}: {ms:.0} ms", reg("a"));
    results.add(CASE, PULL, "podman pull (CLI)", "ms", &[ms]);
    absent(&reg("a")).await
}

/// A floor trial: `podman stop` then `podman start` of the stop + start
/// container, over the API as podkeeper calls them.
async fn stop_start(name: &str) -> anyhow::Result<()> {
    let sock = stack::socket();
    let limit = Duration::from_secs(30);
    let stop = libpod::path(&format!("/containers/{name}/stop?timeout={STOP_TIMEOUT_S}"));
    libpod::post(&sock, &stop, limit)
        .await
        .map_err(|e| anyhow::anyhow!("stop {name}: {e:?}"))?;
    let start = libpod::path(&format!("/containers/{name}/start"));
    libpod::post(&sock, &start, limit)
        .await
        .map_err(|e| anyhow::anyhow!("start {name}: {e:?}"))
}

/// Whether `bin run --help` lists `flag`.
async fn has_flag(bin: &Path, flag: &str) -> bool {
    tokio::process::Command::new(bin)
        .args(["run", "--help"])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}

/// Samples of one phase: (metric, subject, ms).
type Rows = Vec<(&'static str, &'static str, f64)>;

/// A podkeeper binary's two updates (`prefix` names its apps), with stop +
/// start trials between them, `trials` rounds.
async fn podkeeper_phase(
    bin: &Path,
    subject: &'static str,
    prefix: &str,
    out: &Path,
    trials: usize,
    gaps: &mut Gaps,
    rows: &mut Rows,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let apps = tmp.path().join("apps");
    std::fs::create_dir_all(&apps)?;
    let (present, pulled) = (prefix.to_string(), format!("{prefix}r"));
    write_manifest(&apps, &present, &manifest(&present, stack::IMAGE, 0))?;
    write_manifest(&apps, &pulled, &manifest(&pulled, &reg("a"), 0))?;
    let sock = stack::socket().to_string_lossy().to_string();
    let apps_s = apps.to_string_lossy().to_string();
    let state = tmp.path().join("state.json").to_string_lossy().to_string();
    let mut args = vec![
        "--apps",
        &apps_s,
        "--socket",
        &sock,
        "--sweep-interval",
        "1h",
    ];
    // A build with a state file keeps it out of /var/lib/podkeeper.
    if has_flag(bin, "--state-file").await {
        args.extend(["--state-file", &state]);
    }
    let log = out.join(format!("update-{prefix}.log"));
    let pk = Podkeeper::start_bin(bin, &args, &log).await?;
    let run = async {
        let ss = "bench-upd-ss";
        for r in 1..=trials {
            for k in 0..3 {
                let (metric, name, ms) = match (r + k) % 3 {
                    0 => {
                        let text = manifest(&present, stack::IMAGE, r);
                        let ms = trial(
                            &present,
                            async { write_manifest(&apps, &present, &text) },
                            gaps,
                        )
                        .await?;
                        settled(&present).await?;
                        (PRESENT, present.as_str(), ms)
                    }
                    1 => {
                        // Rounds alternate :b and :a; the one to pull is not in the store.
                        let image = reg(if r % 2 == 1 { "b" } else { "a" });
                        absent(&image).await?;
                        let text = manifest(&pulled, &image, r);
                        let ms = trial(
                            &pulled,
                            async { write_manifest(&apps, &pulled, &text) },
                            gaps,
                        )
                        .await?;
                        settled(&pulled).await?;
                        (PULLED, pulled.as_str(), ms)
                    }
                    _ => {
                        let ms = trial(ss, stop_start(ss), gaps).await?;
                        rows.push((PULLED, STOP_START, ms));
                        (PRESENT, ss, ms)
                    }
                };
                let who = if name == ss { STOP_START } else { subject };
                eprintln!("  round {r:>2}  {who:<42} {name:<16} {ms:>7.1} ms down");
                rows.push((metric, who, ms));
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    pk.stop().await;
    let _ = stack::podman(&["rm", "-f", "-t", "0", &present, &pulled]).await;
    for role in ["next", "previous"] {
        let _ = stack::podman(&["rm", "-f", "-i", "-t", "0", &format!("{present}.{role}")]).await;
        let _ = stack::podman(&["rm", "-f", "-i", "-t", "0", &format!("{pulled}.{role}")]).await;
    }
    run
}

/// `podman auto-update` of a Quadlet unit on `:auto`, with stop + start
/// trials between, `trials` rounds.
async fn auto_update_phase(trials: usize, gaps: &mut Gaps, rows: &mut Rows) -> anyhow::Result<()> {
    let name = "bench-upd-au";
    let auto = reg("auto");
    // The unit's first image: :a's content under :auto, not in the store.
    retag(&reg("a"), &auto).await?;
    let dir = stack::user_unit_dir();
    std::fs::create_dir_all(&dir)?;
    let unit = format!(
        "[Container]\nImage={auto}\nContainerName={name}\nNetwork=none\nAutoUpdate=registry\nExec=/bin/sh -c '{}'\n",
        stack::TRAP
    );
    std::fs::write(dir.join(format!("{name}.container")), unit)?;
    stack::systemctl(&["daemon-reload"]).await?;
    stack::systemctl(&["start", &format!("{name}.service")]).await?;
    let ss = "bench-upd-ss";
    for r in 1..=trials {
        for k in 0..2 {
            if (r + k) % 2 == 0 {
                // The other content under :auto in the registry, not in the store.
                retag(&reg(if r % 2 == 1 { "b" } else { "a" }), &auto).await?;
                let old = stack::podman(&["inspect", "-f", "{{.Image}}", name]).await?;
                let ms = trial(name, auto_update(), gaps).await?;
                // The image it ran before, now unused and untagged: out of the store.
                let _ = stack::podman(&["rmi", old.trim()]).await;
                eprintln!("  round {r:>2}  {AUTO:<42} {name:<16} {ms:>7.1} ms down");
                rows.push((PULLED, AUTO, ms));
            } else {
                let ms = trial(ss, stop_start(ss), gaps).await?;
                eprintln!("  round {r:>2}  {STOP_START:<42} {ss:<16} {ms:>7.1} ms down");
                rows.push((PULLED, STOP_START, ms));
                rows.push((PRESENT, STOP_START, ms));
            }
        }
    }
    Ok(())
}

/// Point the registry's `to` at `from`'s image, and leave `from` out of the
/// store: the update's pull then moves its 20 MB layer.
async fn retag(from: &str, to: &str) -> anyhow::Result<()> {
    stack::podman(&["pull", "-q", from]).await?;
    stack::podman(&["push", "-q", from, to]).await?;
    absent(from).await
}

/// `podman auto-update` as root talks to the system manager's private
/// socket (/run/systemd/private), which this host lacks: the Quadlet units
/// run under root's user manager. In a mount namespace of its own, the
/// user manager's directory is mounted there, so it restarts the unit there.
async fn auto_update() -> anyhow::Result<()> {
    let runtime = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run/user/0".into());
    let script = format!(
        "mount --bind {runtime}/systemd /run/systemd && exec timeout 120 {} auto-update",
        stack::cli()
    );
    let out = tokio::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env_remove("CONTAINER_HOST")
        .output()
        .await
        .context("run podman auto-update")?;
    anyhow::ensure!(
        out.status.success(),
        "podman auto-update: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let trials = knob("BENCH_UPDATE_TRIALS", 5).max(1) as usize;
    // An interrupted run's images would make the pulls cheap.
    drop_images().await;
    registry_images(results).await?;
    stack::run_container(
        "bench-upd-ss",
        &["--stop-timeout", &STOP_TIMEOUT_S.to_string()],
    )
    .await?;
    let mut gaps = Gaps::default();
    let mut rows = Rows::new();
    let this = PathBuf::from(env!("CARGO_BIN_EXE_podkeeper"));
    let baseline = std::env::var("PODKEEPER_BASELINE_BIN")
        .ok()
        .filter(|b| !b.is_empty());
    if baseline.is_none() {
        results.note(format!(
            "update: no {BASELINE} row: PODKEEPER_BASELINE_BIN is unset (scripts/bench sets it from scripts/bench-baseline)"
        ));
    }
    // One subject failing keeps the others' rows (and its own so far).
    eprintln!("update: {trials} rounds of podkeeper (this build), each update and a stop + start");
    let (g, r) = (&mut gaps, &mut rows);
    let pk = podkeeper_phase(&this, PODKEEPER, "bench-upd-pk", out, trials, g, r).await;
    failed(results, PODKEEPER, pk);
    if let Some(bin) = baseline {
        eprintln!("update: {trials} rounds of {BASELINE} ({bin})");
        let bin = Path::new(&bin);
        let (g, r) = (&mut gaps, &mut rows);
        let bl = podkeeper_phase(bin, BASELINE, "bench-upd-bl", out, trials, g, r).await;
        failed(results, BASELINE, bl);
    }
    if stack::has_quadlet() {
        eprintln!("update: {trials} rounds of {AUTO}");
        let au = auto_update_phase(trials, &mut gaps, &mut rows).await;
        failed(results, AUTO, au);
    }
    for metric in [PRESENT, PULLED] {
        for subject in [PODKEEPER, BASELINE, AUTO, STOP_START] {
            let v: Vec<f64> = rows
                .iter()
                .filter(|(m, s, _)| *m == metric && *s == subject)
                .map(|r| r.2)
                .collect();
            if !v.is_empty() {
                results.add(CASE, metric, subject, "ms", &v);
            }
        }
    }
    ratios(results, &gaps);
    // The Quadlet unit and its container first: they hold an image.
    stack::cleanup().await;
    drop_images().await;
    Ok(())
}

/// A subject's failure, said and noted; the case goes on.
fn failed(results: &mut Results, subject: &str, phase: anyhow::Result<()>) {
    if let Err(e) = phase {
        eprintln!("!! update: {subject} failed: {e:#}");
        results.note(format!("update: {subject} failed: {e:#}"));
    }
}

/// Every image this case built or pulled, by its label, untagged ones
/// included (a layer left in the store would make a "pulled" trial cheap).
async fn drop_images() {
    let filter = format!("label={IMAGE_LABEL}");
    let ids = stack::podman(&["images", "-a", "-q", "--filter", &filter])
        .await
        .unwrap_or_default();
    let mut ids: Vec<&str> = ids
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        let mut args = vec!["rmi", "-f", "-i"];
        args.extend(ids);
        if let Err(e) = stack::podman(&args).await {
            eprintln!("  update: removing its images: {e:#}");
        }
    }
}

/// Every row as a multiple of stop + start, the targets, and the sampler's spacing.
fn ratios(results: &mut Results, gaps: &Gaps) {
    let mut lines = Vec::new();
    for metric in [PRESENT, PULLED] {
        let Some(floor) = results.summary(CASE, metric, STOP_START) else {
            continue;
        };
        for subject in [PODKEEPER, BASELINE, AUTO] {
            let Some(s) = results.summary(CASE, metric, subject) else {
                continue;
            };
            let x = s.median / floor.median;
            lines.push(format!(
                "{metric}: {subject} {:.0} ms = {x:.2}× stop + start ({:.0} ms)",
                s.median, floor.median
            ));
            if subject == PODKEEPER {
                results.target(
                    &format!("update ({metric}): podkeeper's median ≤ 1.2× stop + start"),
                    format!("{x:.2}× ({:.0} vs {:.0} ms)", s.median, floor.median),
                    Some(x <= 1.2),
                );
            }
        }
    }
    let (present, pulled) = (
        results.summary(CASE, PRESENT, PODKEEPER),
        results.summary(CASE, PULLED, PODKEEPER),
    );
    if let (Some(a), Some(b), Some(pull)) = (
        present,
        pulled,
        results.summary(CASE, PULL, "podman pull (CLI)"),
    ) {
        let x = b.median / a.median;
        results.target(
            "update: podkeeper's downtime independent of pull time (pulled ÷ present ≤ 1.2)",
            format!(
                "{x:.2}× ({:.0} vs {:.0} ms; the pull alone {:.0} ms)",
                b.median, a.median, pull.median
            ),
            Some(x <= 1.2),
        );
    }
    for l in &lines {
        eprintln!("  update: {l}");
    }
    if let (Some(g), Some(t)) = (summarize(&gaps.0), summarize(&gaps.1)) {
        results.note(format!(
            "update: the sampler inspected the app's container every {:.1} ms (median; p90 {:.1}, max {:.1}) for a period of {} ms; a look took {:.1} ms (median; max {:.0}: a look waits while podman holds the container's lock, and is stamped at its answer). Every row as a multiple of stop + start (same run, medians): {}. The stop + start samples are listed under both metrics: the same floor.",
            g.median,
            g.p90,
            g.max,
            PERIOD.as_millis(),
            t.median,
            t.max,
            lines.join("; ")
        ));
    }
}
