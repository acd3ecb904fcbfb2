//! One bounded accept loop for podkeeper's listeners (control socket, metrics): so many clients at once, each on its own task under a time limit.
//!
//! A client is never served on the reactor's task, so a slow, silent or
//! hostile one costs at most one slot for at most `limit`; one over the
//! bound is closed unanswered, and a failing accept (out of descriptors)
//! is logged and retried after a pause instead of spinning.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A listener the loop can take connections from.
pub trait Listener: Sync {
    type Stream: Send + 'static;
    fn take(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn take(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn take(&self) -> io::Result<TcpStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// How a listener serves its clients.
pub struct Bounds {
    /// Its name in a log line: `control socket`, `metrics listener`.
    pub what: &'static str,
    /// How many clients at once.
    pub max: usize,
    /// How long one client may take, from its accept.
    pub limit: Duration,
}

/// Accept on `listener` until `cancel` fires, handing each client to
/// `handle` on a task of its own, within `bounds`.
pub async fn serve<L, F, Fut>(listener: &L, bounds: Bounds, cancel: CancellationToken, handle: F)
where
    L: Listener,
    F: Fn(L::Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(bounds.max));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.take() => a,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, most likely: do not spin.
                tracing::warn!(error = %e, "{}: accept failed", bounds.what);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // Too many at once: this one is closed unanswered.
        };
        let served = handle(stream);
        let limit = bounds.limit;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(limit, served).await;
        });
    }
}
