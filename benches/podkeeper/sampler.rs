//! The downtime sampler of the `update` case: the app's container inspected by name every 10 ms over the API socket, and the longest stretch with it not running.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use podkeeper::runtime::libpod::{self, CallError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stack;

/// The sampling period the issue asks for.
pub const PERIOD: Duration = Duration::from_millis(10);
/// A sampler never keeps more than this many samples (10 minutes at 10 ms).
const MAX_SAMPLES: usize = 60_000;

/// One look at the container: when (its answer), and whether it ran.
#[derive(Debug, Clone)]
struct Look {
    at: Instant,
    /// How long the call took (the note reports the longest).
    took: Duration,
    running: bool,
    /// Id and StartedAt: another pair running means the update is through.
    run: String,
}

/// Inspect `name` every [`PERIOD`] until cancelled.
struct Sampler {
    looks: Arc<Mutex<Vec<Look>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(name: &str) -> Self {
        let looks = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (l, s) = (looks.clone(), stop.clone());
        let sock = stack::socket();
        let path = libpod::path(&format!("/containers/{}/json", libpod::urlencode(name)));
        let task = tokio::spawn(async move {
            while !s.is_cancelled() {
                let sent = Instant::now();
                let got =
                    libpod::get_json::<serde_json::Value>(&sock, &path, Duration::from_secs(2))
                        .await;
                // Stamped at the answer: a look that waits for the
                // container's lock (a stop, a remove) reads the state after it.
                let at = Instant::now();
                let took = at - sent;
                let look = match got {
                    Ok(v) => Some(Look {
                        at,
                        took,
                        running: v["State"]["Running"].as_bool().unwrap_or(false),
                        run: format!(
                            "{} {}",
                            v["Id"].as_str().unwrap_or(""),
                            v["State"]["StartedAt"].as_str().unwrap_or("")
                        ),
                    }),
                    // No container by that name (404), or removed while the
                    // look waited (500): nothing of the app runs.
                    Err(CallError::Status(..)) => Some(Look {
                        at,
                        took,
                        running: false,
                        run: String::new(),
                    }),
                    // No answer: unknown, not "down".
                    Err(_) => None,
                };
                if let (Some(look), Ok(mut v)) = (look, l.lock()) {
                    if v.len() >= MAX_SAMPLES {
                        break;
                    }
                    v.push(look);
                }
                tokio::time::sleep_until(sent + PERIOD).await;
            }
        });
        Sampler { looks, stop, task }
    }

    fn snapshot(&self) -> Vec<Look> {
        self.looks.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Wait until a look satisfies `pred`, within `limit`.
    async fn wait(&self, limit: Duration, pred: impl Fn(&[Look]) -> bool) -> anyhow::Result<()> {
        let until = Instant::now() + limit;
        loop {
            if pred(&self.snapshot()) {
                return Ok(());
            }
            if Instant::now() > until || self.task.is_finished() {
                bail!("not seen within {limit:?}");
            }
            tokio::time::sleep(PERIOD).await;
        }
    }

    async fn finish(self) -> Vec<Look> {
        self.stop.cancel();
        let looks = self.looks.clone();
        let _ = self.task.await;
        let v = looks.lock().map(|v| v.clone()).unwrap_or_default();
        v
    }
}

/// The longest time with the container not running, in ms (0 when no look
/// saw it down); an error if it was not running at the end.
fn downtime(looks: &[Look]) -> anyhow::Result<f64> {
    let mid = |a: Instant, b: Instant| a + (b - a) / 2;
    let mut longest = Duration::ZERO;
    let mut last_up: Option<Instant> = None;
    // The first "down" look of the current stretch, and the last one.
    let mut down: Option<(Instant, Instant)> = None;
    for l in looks {
        match (l.running, down) {
            (false, None) => down = Some((l.at, l.at)),
            (false, Some((first, _))) => down = Some((first, l.at)),
            (true, Some((first, last))) => {
                // A stretch before the first running look is not a gap.
                if let Some(up) = last_up {
                    longest = longest.max(mid(last, l.at) - mid(up, first));
                }
                down = None;
                last_up = Some(l.at);
            }
            (true, None) => last_up = Some(l.at),
        }
    }
    anyhow::ensure!(down.is_none(), "the container was not running at the end");
    Ok(longest.as_secs_f64() * 1000.0)
}

/// Spacing of consecutive looks, and each look's own time, in ms (for the
/// note: whether the sampler kept its period).
fn spacing(looks: &[Look], gaps: &mut Gaps) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    gaps.0
        .extend(looks.windows(2).map(|w| ms(w[1].at - w[0].at)));
    gaps.1.extend(looks.iter().map(|l| ms(l.took)));
}

/// The sampler's spacing and call times over every trial, in ms.
pub type Gaps = (Vec<f64>, Vec<f64>);

/// One trial: sample `name`, run `act` once it is seen running, and end once
/// another container (or the same one started again) runs under the name.
pub async fn trial<F>(name: &str, act: F, gaps: &mut Gaps) -> anyhow::Result<f64>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let s = Sampler::start(name);
    s.wait(Duration::from_secs(30), |l| l.iter().any(|l| l.running))
        .await
        .with_context(|| format!("{name} running before the update"))?;
    let before = s
        .snapshot()
        .iter()
        .rev()
        .find(|l| l.running)
        .map(|l| l.run.clone())
        .unwrap_or_default();
    if let Err(e) = act.await {
        s.finish().await;
        return Err(e);
    }
    let changed = s
        .wait(Duration::from_secs(90), |l| {
            l.iter().any(|l| l.running && l.run != before)
        })
        .await;
    // A little more: a second blip right after counts too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let looks = s.finish().await;
    changed.with_context(|| format!("a new {name} running after the update"))?;
    spacing(&looks, gaps);
    downtime(&looks)
}
