//! Both clients, the typed one and the raw one, against sockets that fail: each fault classified the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::{PodmanRuntime, Timeouts};
use crate::runtime::{Podman, RuntimeError};

/// How a fake podman answers every request.
#[derive(Clone, Copy)]
enum Fault {
    /// Accepts, reads the request, never answers.
    Hung,
    /// Answers bytes that are not HTTP.
    NotHttp,
    /// Answers 200 with a body that is not JSON.
    BadJson,
    /// Answers 200 with JSON of the wrong shape, whose decoding error
    /// quotes it: words no classification may read.
    Quoting,
    /// Answers 500 with a body that is not libpod's error JSON.
    PlainError,
    /// Accepts and hangs up at once.
    HangUp,
}

fn serve(path: &Path, fault: Fault) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut io, _)) = listener.accept().await {
            let answer: &[u8] = match fault {
                Fault::Hung => {
                    held.push(io);
                    continue;
                }
                Fault::HangUp => continue,
                Fault::NotHttp => b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                Fault::BadJson => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",
                Fault::Quoting => {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n\"connection refused\""
                }
                Fault::PlainError => {
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\n\r\nboom!\n"
                }
            };
            tokio::spawn(async move {
                read_head(&mut io).await;
                let _ = io.write_all(answer).await;
                let _ = io.shutdown().await;
            });
        }
    });
}

async fn read_head(io: &mut UnixStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// A failure's kind, and for a timeout which call and after how long.
fn kind(e: &RuntimeError) -> String {
    match e {
        RuntimeError::NotFound(_) => "not found".into(),
        RuntimeError::Timeout { after, .. } => format!("timeout after {after:?}"),
        RuntimeError::Unreachable(_) => "unreachable".into(),
        RuntimeError::Failed(_) => "failed".into(),
        RuntimeError::NameInUse(_) => "name in use".into(),
        RuntimeError::Unmet(_) => "unmet".into(),
    }
}

/// The raw client's inspect and the typed client's list, against `socket`.
async fn both(socket: &Path) -> (String, String) {
    let timeouts = Timeouts {
        quick: Duration::from_secs(15),
        ..Timeouts::default()
    };
    let rt = PodmanRuntime::new(socket, timeouts);
    let raw = rt.inspect_container("web").await.expect_err("raw: a fault");
    let typed = rt.list_managed().await.expect_err("typed: a fault");
    (kind(&raw), kind(&typed))
}

fn dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("podman.sock");
    (d, p)
}

#[tokio::test(start_paused = true)]
async fn both_clients_should_classify_each_socket_fault_the_same() {
    let faults = [
        ("hung", Some(Fault::Hung), "timeout after 15s"),
        ("not http", Some(Fault::NotHttp), "unreachable"),
        ("bad json", Some(Fault::BadJson), "failed"),
        ("quoting json", Some(Fault::Quoting), "failed"),
        ("plain 500", Some(Fault::PlainError), "failed"),
        ("hang-up", Some(Fault::HangUp), "unreachable"),
        ("no socket", None, "unreachable"),
    ];
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (name, fault, expected) in faults {
        let (_d, socket) = dir();
        if let Some(fault) = fault {
            serve(&socket, fault);
        }
        let (raw, typed) = both(&socket).await;
        got.push(format!("{name}: raw {raw}, typed {typed}"));
        want.push(format!("{name}: raw {expected}, typed {expected}"));
    }
    // A socket file nobody listens on: refused.
    let (_d, socket) = dir();
    drop(UnixListener::bind(&socket).unwrap());
    let (raw, typed) = both(&socket).await;
    got.push(format!("refused: raw {raw}, typed {typed}"));
    want.push("refused: raw unreachable, typed unreachable".into());
    assert_eq!(got, want);
}
