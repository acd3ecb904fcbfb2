//! Case 3: idle cost of 50 apps and 20 companions: podman API requests, CPU and RSS, vs a 30 s polling loop.
//!
//! podkeeper talks to podman through a counting proxy socket: every HTTP
//! request line that passes is recorded, so "zero requests between sweeps" is
//! counted, not assumed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::knob;
use crate::stack::{self, Api, Podkeeper};
use crate::stats::{Results, PODKEEPER};

const CASE: &str = "3 idle";
const APPS: usize = 50;
const COMPANIONS: usize = 20;
const POLL: &str = "poll 30 s (batched CLI)";

type RequestLog = Arc<Mutex<Vec<String>>>;

pub async fn run(results: &mut Results, out: &Path) -> anyhow::Result<()> {
    let idle = Duration::from_secs(knob("BENCH_IDLE_SECS", 600).max(1));
    let with_companions = stack::podkeeper_has_companions().await;
    let tmp = tempfile::tempdir()?;
    let apps = tmp.path().join("apps");
    std::fs::create_dir_all(&apps)?;
    let unit_dir = stack::user_unit_dir().join("bench");
    let n_comp = if with_companions { COMPANIONS } else { 0 };
    for i in 0..APPS {
        let id = format!("bench-idle-{i}");
        let comp = if i < n_comp {
            crate::companion::companion_yaml(&format!("bench-idlec-{i}"), false)
        } else {
            String::new()
        };
        std::fs::write(apps.join(format!("{id}.yaml")), stack::manifest(&id, &comp))?;
    }
    let requests: RequestLog = Arc::default();
    let proxy_sock = tmp.path().join("podman.sock");
    let cancel = CancellationToken::new();
    let listener = UnixListener::bind(&proxy_sock)?;
    tokio::spawn(proxy(
        listener,
        stack::socket(),
        requests.clone(),
        cancel.clone(),
    ));

    let mut args: Vec<String> = vec![
        "--apps".into(),
        apps.to_string_lossy().into(),
        "--socket".into(),
        proxy_sock.to_string_lossy().into(),
        // Longer than any idle window: no sweep inside it.
        "--sweep-interval".into(),
        format!("{}s", idle.as_secs() * 2 + 3600),
    ];
    if with_companions {
        std::fs::create_dir_all(&unit_dir)?;
        args.extend([
            "--unit-dir".into(),
            unit_dir.to_string_lossy().into(),
            "--user".into(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pk = Podkeeper::start(&args, &out.join("idle-podkeeper.log")).await?;

    // Start-up: every app running, every companion active; then let it settle.
    let api = Api::new();
    for i in 0..APPS {
        api.wait_started(
            &format!("bench-idle-{i}"),
            jiff::Timestamp::MIN,
            Duration::from_secs(120),
        )
        .await?;
    }
    for i in 0..n_comp {
        let unit = format!("bench-idlec-{i}.service");
        let until = tokio::time::Instant::now() + Duration::from_secs(120);
        while stack::unit_props(&unit, "ActiveState")
            .await
            .ok()
            .map(|p| stack::prop(&p, "ActiveState").to_string())
            .as_deref()
            != Some("active")
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < until,
                "{unit} not active after start-up"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The peer polls the same containers and units.
    let count_file = tmp.path().join("poll-commands");
    let mut poller = start_poller(n_comp, &count_file)?;
    let poller_pid = poller.id().map_or(0, |p| p as i32);
    crate::interrupt::register(poller_pid);

    let req0 = requests.lock().map(|r| r.len()).unwrap_or(0);
    let events0 = count_events(&pk.log_text());
    let (cpu0, _, _) = stack::proc_usage(pk.pid()).unwrap_or_default();
    let (pcpu0, _, _) = stack::proc_usage(poller_pid).unwrap_or_default();
    eprintln!(
        "idle: {APPS} apps, {n_comp} companions, {} s",
        idle.as_secs()
    );
    let started = tokio::time::Instant::now();
    while started.elapsed() < idle {
        let left = idle.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        eprintln!("  idle: {:.0} s elapsed", started.elapsed().as_secs_f64());
    }
    let reqs: Vec<String> = requests
        .lock()
        .map(|r| r[req0..].to_vec())
        .unwrap_or_default();
    let (cpu1, rss, hwm) = stack::proc_usage(pk.pid()).unwrap_or_default();
    let (pcpu1, _, _) = stack::proc_usage(poller_pid).unwrap_or_default();
    let events = count_events(&pk.log_text()) - events0;
    let poll_cmds = std::fs::read_to_string(&count_file)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    let _ = poller.kill().await;
    crate::interrupt::unregister(poller_pid);
    pk.stop().await;
    cancel.cancel();

    let per_hour = 3600.0 / idle.as_secs_f64();
    let metric_req = "podman API requests in the window";
    results.add(
        CASE,
        metric_req,
        PODKEEPER,
        "requests",
        &[reqs.len() as f64],
    );
    results.add(
        CASE,
        "podman/systemctl commands in the window",
        POLL,
        "commands",
        &[poll_cmds as f64],
    );
    let metric_cpu = "CPU per hour";
    results.add(
        CASE,
        metric_cpu,
        PODKEEPER,
        "CPU-s/h",
        &[(cpu1 - cpu0) * per_hour],
    );
    results.add(
        CASE,
        metric_cpu,
        POLL,
        "CPU-s/h",
        &[(pcpu1 - pcpu0) * per_hour],
    );
    results.add(CASE, "RSS at the end", PODKEEPER, "MB", &[rss]);
    results.add(
        CASE,
        "events received in the window (others' containers)",
        PODKEEPER,
        "events",
        &[events as f64],
    );
    let cpu_h = (cpu1 - cpu0) * per_hour;
    let what = format!("{APPS} apps, {n_comp} companions, {} s", idle.as_secs());
    results.target(
        "idle: zero podman API requests between sweeps",
        format!(
            "{} ({what}){}",
            reqs.len(),
            if reqs.is_empty() {
                String::new()
            } else {
                format!(": {}", reqs.join("; "))
            }
        ),
        Some(reqs.is_empty()),
    );
    results.target(
        "idle: < 1 CPU-second per hour",
        format!("{cpu_h:.2} CPU-s/h ({what})"),
        Some(cpu_h < 1.0),
    );
    results.target(
        "idle: RSS < 20 MB",
        format!("{rss:.1} MB now, {hwm:.1} MB peak"),
        Some(rss < 20.0),
    );
    if !with_companions {
        results.note("idle ran without companions: this podkeeper build has no --unit-dir (issue 3 not merged)".into());
    }
    Ok(())
}

fn count_events(log: &str) -> usize {
    log.lines().filter(|l| l.contains("  event  ")).count()
}

/// The polling peer: every 30 s one batched `podman inspect` of the apps and
/// one batched `systemctl --user is-active` of the units, starting what is down.
fn start_poller(n_comp: usize, count: &Path) -> anyhow::Result<tokio::process::Child> {
    let names: Vec<String> = (0..APPS).map(|i| format!("bench-idle-{i}")).collect();
    let units: Vec<String> = (0..n_comp)
        .map(|i| format!("bench-idlec-{i}.service"))
        .collect();
    let script = r#"
count=$1; names=$2; units=$3
while :; do
  "$PODMAN" inspect --format '{{.Name}} {{.State.Running}}' $names | awk '$2 != "true" {print $1}' | xargs -r "$PODMAN" start >/dev/null
  echo inspect >> "$count"
  if [ -n "$units" ]; then
    paste <(printf '%s\n' $units) <(systemctl --user is-active $units) | awk '$2 != "active" {print $1}' | xargs -r systemctl --user start
    echo is-active >> "$count"
  fi
  sleep 30
done
"#;
    Ok(tokio::process::Command::new("bash")
        .args(["-c", script, "poller"])
        .arg(count)
        .arg(names.join(" "))
        .arg(units.join(" "))
        .env("PODMAN", stack::cli())
        .env_remove("CONTAINER_HOST")
        .env("XDG_RUNTIME_DIR", "/run/user/0")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// Forward every connection on `listener` to `upstream`, recording request lines.
async fn proxy(
    listener: UnixListener,
    upstream: PathBuf,
    log: RequestLog,
    cancel: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            _ = cancel.cancelled() => return,
            c = listener.accept() => match c { Ok((c, _)) => c, Err(_) => continue },
        };
        let (upstream, log) = (upstream.clone(), log.clone());
        tokio::spawn(async move {
            let Ok(server) = UnixStream::connect(&upstream).await else {
                return;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = async {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    record(&buf[..n], &log);
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            };
            let down = async {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            };
            tokio::join!(up, down);
        });
    }
}

/// Record every HTTP request line in a chunk of client bytes.
fn record(chunk: &[u8], log: &RequestLog) {
    let text = String::from_utf8_lossy(chunk);
    for line in text.split("\r\n") {
        let is_request = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD "]
            .iter()
            .any(|m| line.starts_with(m))
            && line.contains(" HTTP/1.");
        if is_request {
            if let Ok(mut l) = log.lock() {
                l.push(line.trim_end_matches(" HTTP/1.1").to_string());
            }
        }
    }
}
