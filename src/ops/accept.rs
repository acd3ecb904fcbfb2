//! One bounded accept loop for podkeeper's listeners (control socket, metrics): so many clients at once, each on its own task under a time limit.
//!
//! A client is never served on the reactor's task, so a slow, silent or
//! hostile one costs at most one slot, for at most `head_limit` until its
//! request is in and `limit` in all. A failing accept (out of descriptors)
//! is logged and retried after a pause instead of spinning.
//!
//! When every slot is taken, the client that has been sending its request
//! the longest is dropped to make room for the new one. A well-behaved
//! client (Prometheus, `podkeeper status`) sends its whole request at once,
//! so the one still sending after the others is the slowest, and the
//! likeliest to dribble on purpose (slowloris). This is nginx's answer to
//! running out of connections (it closes idle keep-alive ones first), and
//! it keeps working where the alternatives do not: a header timeout alone
//! still lets 16 dribblers that reconnect keep every slot, and slots
//! reserved "for fresh clients" are taken by the next dribblers just the
//! same, since nobody can tell them apart at accept. A client whose request
//! is in is never dropped for another: when every slot is answering one,
//! the newcomer gets the listener's busy answer (if it has one) and is
//! closed.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long the loop waits for a dropped client's slot to be freed.
const MAKE_ROOM_WAIT: Duration = Duration::from_millis(500);

/// A listener the loop can take connections from.
pub trait Listener: Sync {
    type Stream: Send + 'static;
    fn take(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Write `bytes` to `stream` if it can be done at once (never waits).
    fn say(stream: &Self::Stream, bytes: &[u8]);
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn take(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
    fn say(stream: &UnixStream, bytes: &[u8]) {
        let _ = stream.try_write(bytes);
    }
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn take(&self) -> io::Result<TcpStream> {
        self.accept().await.map(|(s, _)| s)
    }
    fn say(stream: &TcpStream, bytes: &[u8]) {
        let _ = stream.try_write(bytes);
    }
}

/// How a listener serves its clients.
pub struct Bounds {
    /// Its name in a log line: `control socket`, `metrics listener`.
    pub what: &'static str,
    /// How many clients at once.
    pub max: usize,
    /// How long one client may take to send its request, from its accept.
    pub head_limit: Duration,
    /// How long one client may take in all, from its accept.
    pub limit: Duration,
    /// What a client turned away because every slot is answering a request
    /// is told before it is closed (`None`: nothing).
    pub busy: Option<&'static [u8]>,
}

/// One client, as the loop and its task share it.
#[derive(Default)]
struct Client {
    /// Its request is in: it is never dropped for another.
    request_in: AtomicBool,
    /// Its task has ended.
    gone: AtomicBool,
    /// Dropped to make room.
    dropped: CancellationToken,
}

/// Handed to each client's handler, which calls [`Request::arrived`] once
/// the client's whole request is in.
#[derive(Clone)]
pub struct Request(Arc<Client>);

impl Request {
    pub fn arrived(&self) {
        self.0.request_in.store(true, Ordering::Release);
    }

    fn is_in(&self) -> bool {
        self.0.request_in.load(Ordering::Acquire)
    }
}

/// Accept on `listener` until `cancel` fires, handing each client to
/// `handle` on a task of its own, within `bounds`.
pub async fn serve<L, F, Fut>(listener: &L, bounds: Bounds, cancel: CancellationToken, handle: F)
where
    L: Listener,
    F: Fn(L::Stream, Request) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(bounds.max));
    // Every client with a slot, oldest first (at most `max`, and those
    // gone since the last accept).
    let mut clients: VecDeque<Arc<Client>> = VecDeque::with_capacity(bounds.max + 1);
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
        clients.retain(|c| !c.gone.load(Ordering::Acquire));
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => make_room(&slots, &clients, bounds.what).await,
        };
        let Some(slot) = slot else {
            // Every slot answers a request: this one is turned away.
            if let Some(busy) = bounds.busy {
                L::say(&stream, busy);
            }
            continue;
        };
        let client = Arc::new(Client::default());
        clients.push_back(client.clone());
        let request = Request(client.clone());
        let served = handle(stream, request.clone());
        let (what, head_limit, limit) = (bounds.what, bounds.head_limit, bounds.limit);
        tokio::spawn(async move {
            let _slot = slot;
            let slow = async {
                tokio::time::sleep(head_limit).await;
                if request.is_in() {
                    std::future::pending::<()>().await;
                }
            };
            let bounded = async {
                tokio::select! {
                    _ = served => {}
                    _ = slow => tracing::debug!("{what}: no whole request within {head_limit:?}; closed"),
                    _ = client.dropped.cancelled() => tracing::debug!("{what}: every slot taken; the slowest client closed for a new one"),
                }
            };
            let _ = tokio::time::timeout(limit, bounded).await;
            client.gone.store(true, Ordering::Release);
        });
    }
}

/// Every slot is taken: drop the client that has been sending its request
/// the longest, and take its slot. `None` when every client's request is in.
async fn make_room(
    slots: &Arc<Semaphore>,
    clients: &VecDeque<Arc<Client>>,
    what: &str,
) -> Option<OwnedSemaphorePermit> {
    let slowest = clients.iter().find(|c| {
        !c.request_in.load(Ordering::Acquire)
            && !c.gone.load(Ordering::Acquire)
            && !c.dropped.is_cancelled()
    })?;
    slowest.dropped.cancel();
    match tokio::time::timeout(MAKE_ROOM_WAIT, slots.clone().acquire_owned()).await {
        Ok(Ok(slot)) => Some(slot),
        _ => {
            tracing::debug!("{what}: a dropped client's slot was not freed in time");
            None
        }
    }
}

#[cfg(test)]
mod tests;
