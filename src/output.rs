//! Standard output and standard error through bounded queues, each written by its own thread, so a slow or stalled reader never blocks the reactor.
//!
//! `podkeeper run --debug | sleep 1000` leaves stdout a pipe that is full
//! and open: a plain write blocks, and when the reactor is the writer it
//! stops reconciling until the watchdog kills it. A stalled journald does
//! the same to stderr, through tracing. So every line is handed to a queue
//! (bounded in bytes) that one writer thread per stream empties; when the
//! queue is full the line is dropped and counted, and once the writer gets
//! through again it says how many were lost. Write errors (a reader that
//! closed: EPIPE) are ignored: a lost line never ends or wedges the daemon.
//! [`finish`] waits, bounded, for both queues to drain before the process
//! exits, so a normal exit loses nothing.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How much output may wait for a reader, per stream. The reactor never
/// waits for it; beyond it, lines are dropped.
pub const QUEUE_BYTES: usize = 1 << 20;

/// Which stream a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One stream's queue and its writer thread.
struct Lane {
    stream: Stream,
    state: Mutex<State>,
    /// The writer waits on it for lines.
    more: Condvar,
    /// [`finish`] waits on it for the queue to be written.
    written: Condvar,
    dropped_total: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Dropped since the writer last said so.
    dropped: u64,
    /// The writer holds lines it took and has not written yet.
    writing: bool,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `line`, or drop it when the queue is full. Never blocks on the reader.
    fn push(&self, line: Vec<u8>) {
        if line.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.bytes + line.len() > QUEUE_BYTES {
            st.dropped += 1;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.bytes += line.len();
        st.queue.push_back(line);
        drop(st);
        self.more.notify_one();
    }

    /// The writer thread: take what is queued, write it outside the lock,
    /// then say how many lines were dropped meanwhile.
    fn write_forever(&self) {
        loop {
            let (lines, dropped) = {
                let mut st = self.lock();
                while st.queue.is_empty() && st.dropped == 0 {
                    st = self.more.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                st.bytes = 0;
                st.writing = true;
                (
                    std::mem::take(&mut st.queue),
                    std::mem::take(&mut st.dropped),
                )
            };
            let mut out: Box<dyn Write> = match self.stream {
                Stream::Stdout => Box::new(std::io::stdout().lock()),
                Stream::Stderr => Box::new(std::io::stderr().lock()),
            };
            for line in lines {
                let _ = out.write_all(&line);
            }
            if dropped > 0 {
                let _ = writeln!(
                    out,
                    "podkeeper: {dropped} output line(s) dropped: the reader did not keep up"
                );
            }
            let _ = out.flush();
            drop(out);
            self.lock().writing = false;
            self.written.notify_all();
        }
    }

    /// Wait until everything queued is written, or `deadline`.
    fn drain(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        while !st.queue.is_empty() || st.dropped > 0 || st.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .written
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Where the stream's lane is, once started.
fn cell(stream: Stream) -> &'static OnceLock<&'static Lane> {
    static OUT: OnceLock<&'static Lane> = OnceLock::new();
    static ERR: OnceLock<&'static Lane> = OnceLock::new();
    match stream {
        Stream::Stdout => &OUT,
        Stream::Stderr => &ERR,
    }
}

/// The stream's lane, its writer thread started on first use.
fn lane(stream: Stream) -> &'static Lane {
    cell(stream).get_or_init(|| {
        let lane: &'static Lane = Box::leak(Box::new(Lane {
            stream,
            state: Mutex::new(State::default()),
            more: Condvar::new(),
            written: Condvar::new(),
            dropped_total: AtomicU64::new(0),
        }));
        let name = match stream {
            Stream::Stdout => "podkeeper-stdout",
            Stream::Stderr => "podkeeper-stderr",
        };
        // Without its thread the lane would only fill up and drop: say so once.
        if let Err(e) = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || lane.write_forever())
        {
            let _ = writeln!(std::io::stderr(), "podkeeper: no {name} writer: {e}");
        }
        lane
    })
}

/// A writer into a stream's queue: what is written is kept until `flush`
/// (or drop), then queued as one piece, so lines of different writers never
/// interleave. tracing makes one per event; the reporter flushes per line.
pub struct Queued {
    stream: Stream,
    buf: Vec<u8>,
}

impl Write for Queued {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Bounded as the queue is: a piece larger than the queue is lost anyway.
        if self.buf.len() + buf.len() <= QUEUE_BYTES {
            self.buf.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            lane(self.stream).push(std::mem::take(&mut self.buf));
        }
        Ok(())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A writer to standard output that never blocks (see the module doc).
pub fn stdout() -> Queued {
    Queued {
        stream: Stream::Stdout,
        buf: Vec::new(),
    }
}

/// A writer to standard error that never blocks; tracing writes through it.
pub fn stderr() -> Queued {
    Queued {
        stream: Stream::Stderr,
        buf: Vec::new(),
    }
}

/// How many lines `stream` dropped since the process started.
pub fn dropped(stream: Stream) -> u64 {
    cell(stream)
        .get()
        .map_or(0, |l| l.dropped_total.load(Ordering::Relaxed))
}

/// Before the process exits: wait up to `limit` for both queues to be
/// written. A reader that never reads costs `limit`, not the exit.
pub fn finish(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    // Only lanes in use: finishing starts no writer.
    [Stream::Stdout, Stream::Stderr]
        .into_iter()
        .filter_map(|s| cell(s).get())
        .all(|l| l.drain(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_should_drop_and_count_instead_of_blocking() {
        let lane = Lane {
            stream: Stream::Stdout,
            state: Mutex::new(State::default()),
            more: Condvar::new(),
            written: Condvar::new(),
            dropped_total: AtomicU64::new(0),
        };
        // No writer thread: nothing is ever taken, as with a reader that never reads.
        let line = vec![b'x'; 1024];
        let t0 = Instant::now();
        for _ in 0..(QUEUE_BYTES / 1024 + 10) {
            lane.push(line.clone());
        }
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(lane.dropped_total.load(Ordering::Relaxed), 10);
        assert_eq!(lane.lock().bytes, QUEUE_BYTES);
        assert!(!lane.drain(Instant::now() + Duration::from_millis(10)));
    }
}
