//! The accept loop on a real unix socket: slow clients make room, a busy listener says so, a silent client is closed.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;

const BUSY: &[u8] = b"error: busy\n";

/// Serve `path` with two slots: each client's line is answered `ok` after
/// `hold` (its request counts as in once the line is read).
fn served(path: &Path, head_limit: Duration, hold: Duration) -> CancellationToken {
    let listener = UnixListener::bind(path).unwrap();
    let cancel = CancellationToken::new();
    let bounds = Bounds {
        what: "test",
        max: 2,
        head_limit,
        limit: Duration::from_secs(10),
        busy: Some(BUSY),
    };
    let stop = cancel.clone();
    tokio::spawn(async move {
        serve(&listener, bounds, stop, move |stream, request| async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let _ = BufReader::new(read).read_line(&mut line).await;
            request.arrived();
            tokio::time::sleep(hold).await;
            let _ = write.write_all(b"ok\n").await;
        })
        .await
    });
    cancel
}

async fn ask(path: &Path) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(b"hi\n").await.unwrap();
    let mut reply = Vec::new();
    // The busy answer is followed by a close that may reset the connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn a_client_still_sending_its_request_should_make_room_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let cancel = served(&path, Duration::from_secs(5), Duration::ZERO);
    let mut oldest = UnixStream::connect(&path).await.unwrap();
    oldest.write_all(b"partial").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _second = UnixStream::connect(&path).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    assert_eq!(ask(&path).await, "ok\n");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The oldest was the one dropped: closed unanswered.
    let mut reply = Vec::new();
    let _ = oldest.read_to_end(&mut reply).await;
    assert!(reply.is_empty());
    cancel.cancel();
}

#[tokio::test]
async fn every_slot_answering_should_turn_a_newcomer_away_with_the_busy_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let cancel = served(&path, Duration::from_secs(5), Duration::from_secs(2));
    let (p1, p2) = (path.clone(), path.clone());
    let first = tokio::spawn(async move { ask(&p1).await });
    let second = tokio::spawn(async move { ask(&p2).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ask(&path).await, "error: busy\n");
    assert_eq!(first.await.unwrap(), "ok\n");
    assert_eq!(second.await.unwrap(), "ok\n");
    cancel.cancel();
}

#[tokio::test]
async fn a_request_not_in_within_the_head_limit_should_be_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let cancel = served(&path, Duration::from_millis(200), Duration::ZERO);
    let mut silent = UnixStream::connect(&path).await.unwrap();
    let started = std::time::Instant::now();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "still open after 5 s");
    assert!(reply.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    cancel.cancel();
}
