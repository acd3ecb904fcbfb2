//! An interrupted bench cleans up: on SIGINT or SIGTERM it kills what it started and removes everything named `bench-…`.
//!
//! Without this, a bench stopped half-way leaves its podkeeper processes (which
//! would recreate their apps), its Quadlet `Restart=always` units and their
//! containers running. Once a signal came, [`stopping`] turns every new podman
//! or systemctl command of the bench into an error, so the case under way
//! stops creating things while the cleanup [`install`] is given removes them.
//! (It is given the cleanup, not calling `stack`'s itself: `stack` asks this
//! module whether to stop, and the two must not import each other.)

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

static STOPPING: AtomicBool = AtomicBool::new(false);
/// Processes the bench started and has not reaped yet (podkeeper, the polling loop).
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Whether a signal asked the bench to stop.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// A process to kill if the bench is interrupted.
pub fn register(pid: i32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

/// A process the bench has stopped itself.
pub fn unregister(pid: i32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|p| *p != pid);
    }
}

/// Listen for SIGINT and SIGTERM on `rt`; on either, run `cleanup` (which
/// removes everything named `prefix…`) and exit with 128 + the signal's number.
pub fn install<F, Fut>(
    rt: &tokio::runtime::Runtime,
    prefix: &'static str,
    cleanup: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let _guard = rt.enter();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    rt.spawn(async move {
        let signo = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        };
        STOPPING.store(true, Ordering::SeqCst);
        eprintln!("!! bench: interrupted, removing everything named {prefix}…");
        let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
        for pid in children {
            // SAFETY: kill(2) on a child of ours; a reaped pid yields ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // A command started just before the signal may still create
        // something: look twice.
        cleanup().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        cleanup().await;
        eprintln!("!! bench: cleaned up");
        std::process::exit(128 + signo);
    });
    Ok(())
}
