//! Signals as a source: SIGTERM/SIGINT ask to stop, SIGHUP pushes a reload into the one channel.

use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT, as one stream of requests to stop (`run` and `record`).
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// The signals `run` answers: SIGTERM/SIGINT stop it, SIGHUP reloads.
pub struct DaemonSignals {
    stop: StopSignals,
    hup: tokio::signal::unix::Signal,
}

impl DaemonSignals {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(DaemonSignals {
            stop: StopSignals::install()?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// First SIGTERM/SIGINT: stop taking triggers and drain. Second: exit at
    /// once. SIGHUP, any number of times and never fatal: re-read the
    /// manifests and the unit directories ([`crate::trigger::Trigger::Reload`]).
    /// Nothing here may panic: a panicking signal task would leave a daemon
    /// that no SIGTERM stops.
    pub async fn watch(mut self, cancel: CancellationToken, tx: crate::sources::TriggerTx) {
        loop {
            tokio::select! {
                _ = self.stop.recv() => break,
                _ = self.hup.recv() => {
                    // Never wait here: a full channel means the reactor is
                    // busy with plenty already, and a stop must stay possible.
                    if tx.try_send(crate::trigger::Trigger::Reload).is_err() {
                        tracing::warn!("SIGHUP: the reactor is too busy to take a reload; send it again later");
                    }
                }
            }
        }
        drop(tx);
        tracing::info!("signal received: finishing reconciles in flight (again to exit at once)");
        cancel.cancel();
        loop {
            tokio::select! {
                _ = self.stop.recv() => break,
                // A reload during the drain is moot.
                _ = self.hup.recv() => {}
            }
        }
        crate::report::eprint_line("podkeeper: second signal, exiting now");
        std::process::exit(130);
    }
}
