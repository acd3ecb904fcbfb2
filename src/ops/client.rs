//! The control socket's client side: send one request, read the reply, and try again for a few seconds while the daemon is busy.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::control::{BUSY, CLIENT_LIMIT, MAX_REPLY};

/// How long a client keeps trying while the daemon is busy.
pub const BUSY_RETRY_FOR: Duration = Duration::from_secs(5);
/// The first pause between two tries; it doubles, up to a second.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Why a client could not get its answer.
#[derive(Debug)]
pub enum AskError {
    /// Nothing listens there: podkeeper is not running.
    NotRunning(String),
    /// The daemon stayed too busy to answer for [`BUSY_RETRY_FOR`].
    Busy(String),
    Other(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::NotRunning(s) | AskError::Busy(s) | AskError::Other(s) => f.write_str(s),
        }
    }
}

/// How one try ended.
enum Try {
    Answer(String),
    /// The daemon said it is busy.
    Busy,
    /// The daemon closed (or reset) the connection without a word.
    Dropped,
    Failed(AskError),
}

/// Send one request to the daemon at `path`, return its reply; a busy
/// daemon is asked again for up to [`BUSY_RETRY_FOR`].
pub async fn ask(path: &Path, request: &str) -> Result<String, AskError> {
    ask_within(path, request, BUSY_RETRY_FOR).await
}

/// [`ask`], trying for `retry_for` while the daemon is busy.
pub async fn ask_within(
    path: &Path,
    request: &str,
    retry_for: Duration,
) -> Result<String, AskError> {
    let shown = path.display();
    let started = tokio::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let answer = tokio::time::timeout(CLIENT_LIMIT, once(path, request)).await;
        let last = match answer {
            Ok(Try::Answer(reply)) => return Ok(reply),
            Ok(Try::Failed(e)) => return Err(e),
            Ok(busy_or_dropped) => busy_or_dropped,
            Err(_) => {
                return Err(AskError::Other(format!(
                    "{shown}: no answer within {}s",
                    CLIENT_LIMIT.as_secs()
                )))
            }
        };
        if started.elapsed() + pause > retry_for {
            let what = match last {
                Try::Busy => "the daemon is too busy to answer (every client slot is taken)",
                _ => "the daemon closed the connection without an answer (overloaded?)",
            };
            return Err(AskError::Busy(format!(
                "{shown}: {what}; tried for {}s, try again later",
                retry_for.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// One connection, one request, one reply.
async fn once(path: &Path, request: &str) -> Try {
    let shown = path.display();
    let mut stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) => {
            return Try::Failed(match e.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => AskError::NotRunning(
                    format!("podkeeper is not running: nothing listens on {shown}"),
                ),
                ErrorKind::PermissionDenied => AskError::Other(format!(
                    "{shown}: permission denied (the control socket is its owner's only)"
                )),
                // Its backlog is full.
                ErrorKind::WouldBlock => return Try::Busy,
                _ => AskError::Other(format!("cannot connect to {shown}: {e}")),
            });
        }
    };
    // A daemon that turned this client away may have closed already: what
    // it said before is still read below.
    let sent = stream.write_all(format!("{request}\n").as_bytes()).await;
    let mut reply = Vec::new();
    let read = stream.take(MAX_REPLY).read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    if reply.is_empty() {
        // Closed, or reset, before a word, whether or not the request got
        // out: a daemon too busy even to say so.
        let _ = (sent, read);
        return Try::Dropped;
    }
    // Read errors after a reply are the daemon closing with part of the
    // request unread (one too long): what it said is still its answer.
    if reply.starts_with(BUSY) {
        return Try::Busy;
    }
    if let Some(e) = reply.strip_prefix("error: ") {
        return Try::Failed(AskError::Other(format!("{shown}: {}", e.trim_end())));
    }
    Try::Answer(reply)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::net::UnixListener;

    use super::*;

    /// A daemon stand-in: the first `busy` clients are told BUSY (and
    /// closed with their request unread), the rest answered `{}`.
    fn fake(path: &Path, busy: usize) -> Arc<AtomicUsize> {
        let listener = UnixListener::bind(path).unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                if count.fetch_add(1, Ordering::SeqCst) < busy {
                    let _ = s
                        .write_all(b"error: busy: every client slot is taken\n")
                        .await;
                } else {
                    let mut line = [0u8; 7];
                    let _ = s.read_exact(&mut line).await;
                    let _ = s.write_all(b"{}\n").await;
                }
            }
        });
        seen
    }

    #[tokio::test]
    async fn a_busy_daemon_should_be_asked_again_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let seen = fake(&path, 3);
        assert_eq!(ask(&path, "status").await.unwrap(), "{}\n");
        assert_eq!(seen.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_daemon_busy_for_too_long_should_be_named_busy_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let seen = fake(&path, usize::MAX);
        let started = tokio::time::Instant::now();
        let e = ask_within(&path, "status", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(e, AskError::Busy(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("the daemon is too busy to answer"), "{e}");
        assert!(e.ends_with("tried for 1s, try again later"), "{e}");
        assert!(!e.contains("os error"), "{e}");
        assert!(seen.load(Ordering::SeqCst) >= 3);
    }
}
