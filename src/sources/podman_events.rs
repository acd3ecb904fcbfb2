//! The podman events stream: subscribe, forward every event, reconnect with backoff after a gap.
//!
//! The stream sends nothing while podman is idle, so silence is never taken as
//! death: only a closed connection or an error is. After a reconnect it asks
//! for events since a little before the last one seen (the file events logger
//! can deliver late) and drops the ones it already forwarded; a stream lost
//! before its first event resumes from a little before its first connection
//! was asked for, so the gap's events are never lost.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::body::HttpBody;
use tokio_util::sync::CancellationToken;

use super::TriggerTx;
use crate::backoff::Backoff;
use crate::manifest::excerpt::excerpt;
use crate::runtime::libpod;
use crate::trigger::{PodmanEvent, StreamStatus, Trigger};

/// How far before the last seen event a resumed subscription starts.
const RESUME_OVERLAP: Duration = Duration::from_secs(2);
/// How many forwarded event identities are remembered for de-duplication.
const DEDUP_MEMORY: usize = 4096;
/// Connecting and getting the response headers must not take longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Remembers recently forwarded events so a resumed stream does not repeat them.
#[derive(Default)]
struct Seen {
    order: VecDeque<(i64, String, String, String)>,
    set: HashSet<(i64, String, String, String)>,
    last_time_nano: Option<i64>,
    /// When the first subscription that podman answered was asked for (on
    /// this host's clock, which stamps podman's events).
    first_connect_nano: Option<i64>,
}

impl Seen {
    /// True the first time an event is offered.
    fn first_time(&mut self, ev: &PodmanEvent) -> bool {
        let (t, id, typ, action) = ev.identity();
        let key = (t, id.to_string(), typ.to_string(), action.to_string());
        if self.set.contains(&key) {
            return false;
        }
        self.last_time_nano = Some(self.last_time_nano.map_or(t, |l| l.max(t)));
        self.set.insert(key.clone());
        self.order.push_back(key);
        if self.order.len() > DEDUP_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// A subscription asked for at `asked` (nanoseconds) was answered.
    fn connected(&mut self, asked: i64) {
        self.first_connect_nano.get_or_insert(asked);
    }

    /// The `since` parameter for a resumed subscription: from the last event
    /// seen, else from the first connection (nothing before the first
    /// connection is ours to replay).
    fn since(&self) -> Option<String> {
        let from = self.last_time_nano.or(self.first_connect_nano)?;
        let t = from.saturating_sub(RESUME_OVERLAP.as_nanos() as i64);
        Some(format!(
            "{}.{:09}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000)
        ))
    }
}

/// Subscribe to podman's events on `socket` until cancelled or the channel closes.
pub async fn run(socket: PathBuf, tx: TriggerTx, cancel: CancellationToken) {
    let mut seen = Seen::default();
    let mut failures = 0u32;
    let mut connected_before = false;
    loop {
        let since = seen.since();
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            r = stream_once(&socket, since.as_deref(), &tx, &mut seen, connected_before) => r,
        };
        let error = match outcome {
            StreamEnd::ChannelClosed => return,
            StreamEnd::Broken {
                error,
                was_connected,
            } => {
                if was_connected {
                    connected_before = true;
                    failures = 0;
                }
                error
            }
        };
        failures += 1;
        // Only report the loss once per gap, not once per failed reconnect.
        if failures == 1
            && tx
                .send(Trigger::Stream(StreamStatus::Lost { error }))
                .await
                .is_err()
        {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Backoff::RECONNECT.delay(failures)) => {}
        }
    }
}

enum StreamEnd {
    ChannelClosed,
    Broken { error: String, was_connected: bool },
}

async fn stream_once(
    socket: &Path,
    since: Option<&str>,
    tx: &TriggerTx,
    seen: &mut Seen,
    connected_before: bool,
) -> StreamEnd {
    let broken = |error: String, was_connected| StreamEnd::Broken {
        error,
        was_connected,
    };
    let asked = now_nano();
    let mut body = match tokio::time::timeout(CONNECT_TIMEOUT, open(socket, since)).await {
        Ok(Ok(body)) => {
            seen.connected(asked);
            body
        }
        Ok(Err(e)) => return broken(e, false),
        Err(_) => return broken("events subscription timed out".into(), false),
    };
    let status = StreamStatus::Connected {
        resumed: connected_before,
    };
    if tx.send(Trigger::Stream(status)).await.is_err() {
        return StreamEnd::ChannelClosed;
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match body.data().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return broken(format!("events stream: {e}"), true),
            None => return broken("events stream closed by podman".into(), true),
        };
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Some(decoded) = PodmanEvent::from_line(&line) else {
                continue;
            };
            match decoded {
                Ok(ev) => {
                    if seen.first_time(&ev) && tx.send(Trigger::Podman(ev)).await.is_err() {
                        return StreamEnd::ChannelClosed;
                    }
                }
                Err(e) => {
                    // Event contents are not trusted: quote a short, escaped excerpt.
                    let line = excerpt(&String::from_utf8_lossy(&line), 200);
                    let error = excerpt(&e.to_string(), 200);
                    tracing::warn!(
                        error,
                        line,
                        "podman sent an event podkeeper cannot read; skipped"
                    )
                }
            }
        }
    }
}

/// This host's wall clock in nanoseconds since the epoch (podman's events' clock).
fn now_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Open `GET /libpod/events?stream=true` and return the body once podman answered.
async fn open(socket: &Path, since: Option<&str>) -> Result<hyper::Body, String> {
    let mut uri = libpod::path("/events?stream=true");
    if let Some(since) = since {
        uri.push_str("&since=");
        uri.push_str(since);
    }
    libpod::get(socket, &uri).await.map_err(|e| match e {
        libpod::CallError::Status(..) => format!("events: {e}"),
        _ => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, action: &str) -> PodmanEvent {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": t,
            "Actor": {"ID": "abc", "Attributes": {"name": "web"}}
        }))
        .unwrap()
    }

    #[test]
    fn seen_should_drop_events_repeated_after_a_resume() {
        let mut seen = Seen::default();
        assert!(seen.first_time(&ev(5_000_000_000, "died")));
        assert!(!seen.first_time(&ev(5_000_000_000, "died")));
        assert!(seen.first_time(&ev(5_000_000_000, "cleanup")));
        assert_eq!(seen.since().as_deref(), Some("3.000000000"));
    }

    #[test]
    fn a_stream_lost_before_its_first_event_should_resume_from_its_first_connection() {
        let mut seen = Seen::default();
        assert_eq!(seen.since(), None, "never connected: everything is new");
        seen.connected(10_000_000_000);
        assert_eq!(seen.since().as_deref(), Some("8.000000000"));
        // A later connection does not move it: the gaps since the first count.
        seen.connected(20_000_000_000);
        assert_eq!(seen.since().as_deref(), Some("8.000000000"));
        // Once events came, the last one seen counts.
        assert!(seen.first_time(&ev(15_000_000_000, "died")));
        assert_eq!(seen.since().as_deref(), Some("13.000000000"));
    }

    #[test]
    fn seen_should_forget_the_oldest_beyond_its_memory() {
        let mut seen = Seen::default();
        for t in 0..(DEDUP_MEMORY as i64 + 10) {
            seen.first_time(&ev(t, "died"));
        }
        assert_eq!(seen.set.len(), DEDUP_MEMORY);
        assert!(seen.first_time(&ev(0, "died")), "forgotten, so new again");
    }
}
