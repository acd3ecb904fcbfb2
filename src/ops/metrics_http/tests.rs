//! The metrics listener against hostile clients, on 127.0.0.1 with the real serving code.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// One slowloris connection after another: a request line, then one header
/// line a second, never the blank line; a dropped connection is replaced on
/// the next second (as slowloris tools do). Until `stop`.
async fn dribble(addr: SocketAddr, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut line = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for n in 0.. {
            if s.write_all(&line).await.is_err() || stop.is_cancelled() {
                break;
            }
            line = format!("X-Slow-{n}: a\r\n").into_bytes();
            let mut byte = [0u8; 1];
            // A second's pause; the server closing it (EOF or reset) meanwhile
            // ends this connection on that second.
            let tick = tokio::time::Instant::now() + Duration::from_secs(1);
            if tokio::time::timeout_at(tick, s.read(&mut byte))
                .await
                .is_ok()
            {
                tokio::time::sleep_until(tick).await;
                break;
            }
        }
    }
}

/// `GET /metrics`, answered with 200 within 2 s.
async fn scrape(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.ok()?;
        Some(reply.starts_with(b"HTTP/1.1 200 ") || reply.starts_with(b"HTTP/1.0 200 "))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), exchange).await,
        Ok(Some(true))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_should_not_keep_scrapes_from_being_answered() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(serve(listener, Shared::new(), cancel.clone()));
    let stop = CancellationToken::new();
    let attackers: Vec<_> = (0..MAX_CONNECTIONS + 4)
        .map(|_| tokio::spawn(dribble(addr, stop.clone())))
        .collect();
    // Every slot taken before the first scrape.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut answered = 0;
    for _ in 0..20 {
        let next = tokio::time::Instant::now() + Duration::from_millis(500);
        if scrape(addr).await {
            answered += 1;
        }
        tokio::time::sleep_until(next).await;
    }
    stop.cancel();
    for a in attackers {
        let _ = tokio::time::timeout(Duration::from_secs(3), a).await;
    }
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    println!("slowloris: {answered}/20 scrapes answered");
    assert!(answered >= 18, "only {answered}/20 scrapes answered");
}
