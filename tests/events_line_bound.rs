//! The events stream holds a bounded amount of memory whatever podman sends: a 16 MiB line without a newline is skipped, and the stream goes on.
//!
//! Alone in its binary: the global allocator below counts every live byte of
//! this process, so the peak it records is the events source's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use podkeeper::sources::podman_events;
use podkeeper::trigger::Trigger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// 16 MiB of one line, no newline, sent in pieces of this size.
const LONG_LINE: usize = 16 << 20;
static PIECE: [u8; 64 * 1024] = [b'x'; 64 * 1024];

const EVENT: &str = r#"{"Type":"container","Action":"died","Actor":{"ID":"abc","Attributes":{"name":"web","io.podkeeper.app":"web"}},"timeNano":1764220000123456789}"#;

/// A fake podman whose events stream sends `LONG_LINE` bytes without a
/// newline, then one event, and stays open.
async fn serve(listener: UnixListener) {
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"GET /v"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let size = format!("{:x}\r\n", PIECE.len());
    for _ in 0..LONG_LINE / PIECE.len() {
        conn.write_all(size.as_bytes()).await.unwrap();
        conn.write_all(&PIECE).await.unwrap();
        conn.write_all(b"\r\n").await.unwrap();
    }
    let tail = format!("\n{EVENT}\n");
    conn.write_all(format!("{:x}\r\n{tail}\r\n", tail.len()).as_bytes())
        .await
        .unwrap();
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_16_mib_events_line_without_a_newline_should_be_skipped_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podman.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(serve(listener));
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let source = tokio::spawn(podman_events::run(socket, tx, cancel.clone()));
    let event = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match rx.recv().await {
                Some(Trigger::Podman(ev)) => return ev,
                Some(Trigger::Stream(s)) => {
                    assert!(
                        matches!(s, podkeeper::trigger::StreamStatus::Connected { .. }),
                        "the stream broke: {s:?}"
                    )
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("the event after the long line arrives");
    let grew = PEAK.load(Ordering::Relaxed) - before;
    eprintln!("peak heap growth while reading: {} KiB", grew >> 10);
    cancel.cancel();
    source.await.unwrap();
    server.abort();
    assert_eq!((event.action.as_str(), event.name()), ("died", "web"));
    // The line cap (64 KiB) plus hyper's read buffer and a chunk or two;
    // reading the whole line into memory would be over 16 MiB.
    assert!(
        grew < 4 << 20,
        "the events source held {} KiB at its peak",
        grew >> 10
    );
}
