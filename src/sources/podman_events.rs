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

use futures::{Stream, StreamExt};
use tokio_util::bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};
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
/// The longest events line read. podman's events are a few hundred bytes (a
/// few KiB with many labels); a longer line is reported once and skipped, so
/// a stream that never sends a newline holds no more than this.
const MAX_LINE: usize = 64 * 1024;
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
    let body = match open(socket, since).await {
        Ok(body) => {
            seen.connected(asked);
            body
        }
        Err(e) => return broken(e, false),
    };
    let status = StreamStatus::Connected {
        resumed: connected_before,
    };
    if tx.send(Trigger::Stream(status)).await.is_err() {
        return StreamEnd::ChannelClosed;
    }
    forward_lines(body, tx, seen).await
}

/// Read the events stream line by line and forward each new event, until the
/// stream breaks or the channel closes. `chunks`: the response body.
async fn forward_lines<S, E>(mut chunks: S, tx: &TriggerTx, seen: &mut Seen) -> StreamEnd
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let broken = |error: String| StreamEnd::Broken {
        error,
        was_connected: true,
    };
    let mut lines = Lines::default();
    loop {
        let chunk = match chunks.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return broken(format!("events stream: {e}")),
            None => return broken("events stream closed by podman".into()),
        };
        lines.push(&chunk);
        while let Some(line) = lines.next_line() {
            let line = match line {
                Ok(line) => line,
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    // Reported here, once; the codec drops the rest of the
                    // line as it comes, up to its newline.
                    tracing::warn!(
                        max_bytes = MAX_LINE,
                        "podman sent an events line longer than {} KiB; skipped",
                        MAX_LINE / 1024
                    );
                    continue;
                }
                Err(LinesCodecError::Io(e)) => {
                    let error = excerpt(&e.to_string(), 200);
                    tracing::warn!(
                        error,
                        "podman sent an events line that is not UTF-8; skipped"
                    );
                    continue;
                }
            };
            let Some(decoded) = PodmanEvent::from_line(line.as_bytes()) else {
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
                    let line = excerpt(&line, 200);
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

/// The events stream cut into lines, holding at most [`MAX_LINE`] bytes of
/// a line not yet complete (plus the chunk just read). Each byte is looked at
/// once: the codec remembers how far it searched for a newline.
struct Lines {
    codec: LinesCodec,
    buf: BytesMut,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            codec: LinesCodec::new_with_max_length(MAX_LINE),
            buf: BytesMut::new(),
        }
    }
}

impl Lines {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, if one is buffered. A line longer than
    /// [`MAX_LINE`] is one `MaxLineLengthExceeded`, then dropped as it comes
    /// up to its newline; reading goes on with the next line.
    fn next_line(&mut self) -> Option<Result<String, LinesCodecError>> {
        self.codec.decode(&mut self.buf).transpose()
    }

    /// Bytes held (tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.len()
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
    // The one timeout path every podman call takes (runtime/libpod.rs).
    libpod::within(CONNECT_TIMEOUT, libpod::get(socket, &uri))
        .await
        .map_err(|e| match e {
            libpod::CallError::Status(..) => format!("events: {e}"),
            libpod::CallError::Timeout => "events subscription timed out".into(),
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

    const EVENT: &str = r#"{"Type":"container","Action":"died","Actor":{"ID":"abc","Attributes":{"name":"web"}},"timeNano":7}"#;

    #[test]
    fn a_line_longer_than_the_cap_should_be_reported_once_and_dropped_as_it_comes() {
        let mut lines = Lines::default();
        let piece = vec![b'x'; 64 * 1024];
        let mut too_long = 0;
        for _ in 0..(16 << 20) / piece.len() {
            lines.push(&piece);
            while let Some(line) = lines.next_line() {
                assert!(matches!(line, Err(LinesCodecError::MaxLineLengthExceeded)));
                too_long += 1;
            }
            assert!(lines.held() <= MAX_LINE + 1, "held {}", lines.held());
        }
        assert_eq!(too_long, 1, "reported once");
        lines.push(format!("xxx\n{EVENT}\n").as_bytes());
        assert_eq!(
            lines.next_line().unwrap().unwrap(),
            EVENT,
            "read on after it"
        );
        assert!(lines.next_line().is_none());
        assert_eq!(lines.held(), 0);
    }

    #[test]
    fn lines_split_across_chunks_should_be_whole() {
        let mut lines = Lines::default();
        let (a, b) = EVENT.split_at(20);
        lines.push(a.as_bytes());
        assert!(lines.next_line().is_none());
        lines.push(format!("{b}\r\n\n").as_bytes());
        assert_eq!(lines.next_line().unwrap().unwrap(), EVENT);
        assert_eq!(lines.next_line().unwrap().unwrap(), "", "a blank line");
        assert!(lines.next_line().is_none());
    }

    #[tokio::test]
    async fn the_stream_should_go_on_after_an_over_long_line() {
        let mut chunks: Vec<Result<Bytes, std::io::Error>> = (0..256)
            .map(|_| Ok(Bytes::from(vec![b'x'; 64 * 1024])))
            .collect();
        chunks.push(Ok(Bytes::from(format!("\n{EVENT}\nnot json\n"))));
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let mut seen = Seen::default();
        let end = forward_lines(futures::stream::iter(chunks), &tx, &mut seen).await;
        assert!(matches!(
            end,
            StreamEnd::Broken {
                was_connected: true,
                ..
            }
        ));
        match rx.try_recv() {
            Ok(Trigger::Podman(ev)) => assert_eq!(ev.action, "died"),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err(), "the bad line was skipped");
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
