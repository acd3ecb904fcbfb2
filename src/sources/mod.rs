//! Sources: tasks that watch the outside world and push [`Trigger`]s into the one channel.
//!
//! A source decides nothing: it reports what happened and lets the reactor
//! judge. Each runs until its cancellation token fires or the channel closes.

pub(crate) mod dir_watch;
pub(crate) mod exit_watch;
pub mod podman_events;
pub(crate) mod signals;
pub(crate) mod sweep_timer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::Watcher;
use tokio::sync::{mpsc, Notify};

use crate::trigger::Trigger;

/// Capacity of the one channel. Sources wait when it is full (backpressure),
/// which only happens if the reactor falls far behind.
pub const CHANNEL_CAPACITY: usize = 4096;

/// The sending half of the one channel.
pub type TriggerTx = mpsc::Sender<Trigger>;

/// How many raw events wait between notify's thread and the task that
/// reads them. Past that, notify's thread waits (it is its own thread, never
/// the runtime's), and the kernel's inotify queue holds what comes meanwhile
/// (`fs.inotify.max_queued_events`, 16384 by default). When that overflows
/// the kernel says so, and everything watched is rescanned. A larger queue
/// here would buy nothing but memory (an event is about 200 bytes with its
/// path): it only has to cover the moment the task takes to be scheduled.
pub const FS_EVENTS_CAPACITY: usize = 256;

/// What a `notify` watcher reports.
pub type RawFsEvents = mpsc::Receiver<notify::Result<notify::Event>>;

/// A `notify` watcher whose events arrive on a bounded async channel.
///
/// Adding a watch is a round trip to notify's thread, which cannot answer
/// while it waits for room in a full channel that only the caller (busy
/// adding the watch) would empty. So while a watch is being added, notify's
/// thread does not wait: what does not fit is dropped, and
/// [`FsWatcher::take_dropped`] tells the caller to rescan, as after the
/// kernel's own overflow.
pub struct FsWatcher {
    watcher: notify::RecommendedWatcher,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    /// A watch is being added: do not wait for room.
    adding: AtomicBool,
    /// Wakes a wait for room when a watch is being added.
    adding_now: Notify,
    /// Events were dropped (while a watch was being added).
    dropped: AtomicBool,
}

impl FsWatcher {
    /// Watch `path` (see the type's documentation).
    pub fn watch(&mut self, path: &Path, mode: notify::RecursiveMode) -> notify::Result<()> {
        self.gate.adding.store(true, Ordering::SeqCst);
        self.gate.adding_now.notify_waiters();
        let r = self.watcher.watch(path, mode);
        self.gate.adding.store(false, Ordering::SeqCst);
        r
    }

    /// Whether events were dropped since the last call: rescan what is watched.
    pub fn take_dropped(&self) -> bool {
        self.gate.dropped.swap(false, Ordering::SeqCst)
    }
}

/// A [`FsWatcher`] and its events, [`FS_EVENTS_CAPACITY`] at most waiting.
pub fn fs_watcher() -> notify::Result<(FsWatcher, RawFsEvents)> {
    fs_watcher_with(FS_EVENTS_CAPACITY)
}

fn fs_watcher_with(capacity: usize) -> notify::Result<(FsWatcher, RawFsEvents)> {
    let (raw_tx, raw_rx) = mpsc::channel(capacity);
    let gate = Arc::new(Gate::default());
    let on_event = gate.clone();
    let watcher = notify::recommended_watcher(move |res| forward(&raw_tx, &on_event, res))?;
    Ok((FsWatcher { watcher, gate }, raw_rx))
}

/// On notify's thread: queue one event, waiting for room unless a watch is
/// being added. Once the reader is gone (its task ended), return at once:
/// notify's thread then sees the watcher's shutdown.
fn forward(tx: &mpsc::Sender<notify::Result<notify::Event>>, gate: &Gate, res: RawEvent) {
    // Created before `adding` is read, so a watch begun after that read still wakes it.
    let adding_now = gate.adding_now.notified();
    if !gate.adding.load(Ordering::SeqCst) {
        let room = futures::executor::block_on(async {
            tokio::select! {
                permit = tx.reserve() => Some(permit),
                _ = adding_now => None,
            }
        });
        match room {
            Some(Ok(permit)) => return permit.send(res),
            Some(Err(_closed)) => return,
            None => {}
        }
    }
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(res) {
        gate.dropped.store(true, Ordering::SeqCst);
    }
}

type RawEvent = notify::Result<notify::Event>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use notify::RecursiveMode;

    /// Receive the next raw event, failing the test after a long while
    /// rather than hanging it.
    async fn next(rx: &mut RawFsEvents) -> RawEvent {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("an event within a minute")
            .expect("the watcher is alive")
    }

    /// The kernel's queue size: past it, inotify reports an overflow.
    fn max_queued_events() -> usize {
        std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384)
    }

    #[tokio::test]
    async fn a_burst_should_wait_in_the_kernel_and_its_overflow_come_as_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let (mut watcher, mut rx) = fs_watcher().unwrap();
        watcher
            .watch(dir.path(), RecursiveMode::NonRecursive)
            .unwrap();
        // More than this queue and the kernel's together, nobody reading:
        // one event per directory made.
        let burst = FS_EVENTS_CAPACITY + max_queued_events() + 100;
        for i in 0..burst {
            std::fs::create_dir(dir.path().join(i.to_string())).unwrap();
        }
        assert!(
            rx.len() <= FS_EVENTS_CAPACITY,
            "{} events queued in memory",
            rx.len()
        );
        let mut received = 0;
        loop {
            let ev = next(&mut rx).await.unwrap();
            assert!(rx.len() <= FS_EVENTS_CAPACITY);
            if ev.need_rescan() {
                break;
            }
            received += 1;
        }
        assert!(received < burst, "some were lost, and the rescan says so");
    }

    #[test]
    fn adding_a_watch_while_the_queue_is_full_should_not_wait_for_its_reader() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut watcher, mut rx) = fs_watcher_with(4).unwrap();
        watcher
            .watch(a.path(), RecursiveMode::NonRecursive)
            .unwrap();
        for i in 0..64 {
            std::fs::create_dir(a.path().join(i.to_string())).unwrap();
        }
        // The queue fills; notify's thread waits for room with more to tell.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while rx.len() < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue never filled"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Nobody reads meanwhile: without the gate this would never return.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let b_path = b.path().to_path_buf();
        let adder = std::thread::spawn(move || {
            let r = watcher.watch(&b_path, RecursiveMode::NonRecursive);
            done_tx.send(r.is_ok()).unwrap();
            watcher
        });
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(60)), Ok(true));
        let watcher = adder.join().unwrap();
        // Whatever did not fit was dropped, and the watcher says so.
        while rx.try_recv().is_ok() {}
        std::fs::create_dir(b.path().join("x")).unwrap();
        let ev = loop {
            let ev = rx.blocking_recv().unwrap().unwrap();
            if ev.paths.iter().any(|p| p.starts_with(b.path())) {
                break ev;
            }
        };
        assert!(ev.paths[0].ends_with("x"), "the watcher goes on");
        drop(watcher);
    }

    #[tokio::test]
    async fn a_watcher_whose_reader_is_gone_should_not_hold_notify_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut watcher, rx) = fs_watcher_with(1).unwrap();
        watcher
            .watch(dir.path(), RecursiveMode::NonRecursive)
            .unwrap();
        for i in 0..8 {
            std::fs::create_dir(dir.path().join(i.to_string())).unwrap();
        }
        // The reader goes while notify's thread waits for room: the wait
        // ends, and so does the watcher (its drop does not wait either).
        drop(rx);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut watcher = watcher;
            let _ = watcher.watch(dir.path(), RecursiveMode::NonRecursive);
            drop(watcher);
            done_tx.send(()).unwrap();
        });
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(60)), Ok(()));
    }
}
