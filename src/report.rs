//! What podkeeper tells people: one aligned line per event and per reaction in `--debug`, tracing otherwise, and `check`'s report.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;

use crate::manifest::{self, ManifestSet};
use crate::observe::{EventSeen, Observer, Reacted};
use crate::reconcile::app::Drift;
use crate::reconcile::{Action, Failure, Reaction};
use crate::trust::Finding;

/// Durations for people, as every line words them.
pub use crate::duration::{ms, secs};

/// Where line timestamps come from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Local wall-clock time (`run`).
    Wall,
    /// Time since `start` on tokio's clock (`replay`: virtual, so deterministic).
    SinceStart(Instant),
}

/// Prints the debug lines, or logs through `tracing` when not in debug mode.
pub struct Reporter {
    debug: bool,
    clock: Clock,
    out: Box<dyn Write + Send>,
}

impl Reporter {
    pub fn new(debug: bool, clock: Clock, out: Box<dyn Write + Send>) -> Self {
        Reporter { debug, clock, out }
    }

    /// A reporter that prints debug lines to standard output, through a
    /// queue that never blocks (a full pipe drops lines, not reconciles).
    pub fn stdout(debug: bool) -> Self {
        Self::new(debug, Clock::Wall, Box::new(crate::output::stdout()))
    }

    fn stamp(&self) -> String {
        match self.clock {
            Clock::Wall => jiff::Zoned::now().strftime("%H:%M:%S%.3f").to_string(),
            Clock::SinceStart(start) => {
                let d = start.elapsed();
                format!("+{:>5}.{:03}s", d.as_secs(), d.subsec_millis())
            }
        }
    }

    fn line(&mut self, kind: &str, text: &str) {
        let line = format!("{}  {kind:<5}  {text}", self.stamp());
        let _ = writeln!(self.out, "{}", line.trim_end());
        let _ = self.out.flush();
    }

    /// An event received from a source, and what the reactor made of it.
    /// Only here is a record put into words, and only when someone reads
    /// them: `--debug`, or tracing's debug level (whose macro words its
    /// fields only when enabled).
    pub fn event(&mut self, e: &EventSeen<'_>) {
        if self.debug {
            let (source, what, subject) = (e.source.as_str(), e.what.to_string(), e.subject);
            let text = format!(
                "{source:<8} {what:<24} {:<20} → {}",
                subject.to_string(),
                e.verdict
            );
            self.line("event", &text);
        } else {
            tracing::debug!(
                source = e.source.as_str(),
                kind = e.kind,
                what = %e.what,
                subject = %e.subject,
                verdict = %e.verdict,
                "event"
            );
        }
    }

    /// A finished reconcile. `retry_in` is set when it failed and will be retried.
    pub fn reaction(&mut self, r: &Reaction, retry_in: Option<Duration>) {
        let calls = r
            .calls
            .iter()
            .map(|c| format!("{} {}", c.name, ms(c.took)))
            .collect::<Vec<_>>()
            .join(", ");
        let result = match (&r.result, retry_in) {
            (Ok(()), _) => "ok".to_string(),
            (Err(e), Some(d)) => format!("FAILED: {e} (retry in {})", secs(d)),
            (Err(e), None) => format!("FAILED: {e}"),
        };
        if self.debug {
            let key = r.key.to_string();
            self.line(
                "react",
                &format!(
                    "{key:<24} {:<9} {:<36} [{calls}] {result}",
                    r.action.as_str(),
                    r.why
                ),
            );
        } else if r.result.is_err() {
            tracing::warn!(key = %r.key, action = r.action.as_str(), why = %r.why, calls = %calls, "{result}");
        } else if r.action != Action::None {
            tracing::info!(key = %r.key, action = r.action.as_str(), why = %r.why, calls = %calls, "ok");
        } else {
            tracing::debug!(key = %r.key, why = %r.why, calls = %calls, "nothing to do");
        }
    }

    /// Anything else worth a line: start-up, manifest errors, orphans, stream state.
    pub fn note(&mut self, subject: &str, text: &str, warn: bool) {
        if self.debug {
            self.line(
                if warn { "WARN" } else { "note" },
                &format!("{subject:<24} {text}"),
            );
        } else if warn {
            tracing::warn!(subject, "{text}");
        } else {
            tracing::info!(subject, "{text}");
        }
    }
}

/// The debug printer reads the reactor's records like any observer.
impl Observer for Reporter {
    fn event(&mut self, e: &EventSeen<'_>) {
        Reporter::event(self, e);
    }

    fn reaction(&mut self, r: &Reacted<'_>) {
        if !r.quiet {
            Reporter::reaction(self, r.reaction, r.retry_in);
        }
    }
}

/// A failure in words: the runtime's message with what the reconciler was
/// doing. The one place a [`Failure`] becomes text (the debug line,
/// tracing, status's last reaction and its cause).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Podman(e) | Failure::Image(e) => write!(f, "{e}"),
            Failure::Pull { image, error } => write!(f, "pull {image}: {error}"),
            Failure::NameHeld { name, after, error } => write!(
                f,
                "the name {name:?} is still in use after {}s: {error}",
                after.as_secs()
            ),
            Failure::NotOurs => f.write_str(&Drift::NotOurs.describe()),
            Failure::Systemd(e) => write!(f, "{e}"),
            Failure::Companion(e) | Failure::Manifests(e) => f.write_str(e),
            Failure::Panicked(e) => write!(f, "the reconcile panicked: {e}"),
        }
    }
}

/// `podkeeper check`'s report: one line per valid app, then one per error, one per directory entry
/// skipped and one per finding about the directory itself.
pub fn check_report(set: &ManifestSet, trust: &[Finding]) -> String {
    let mut out = String::new();
    let width = set.apps.keys().map(|k| k.len()).max().unwrap_or(0).max(4);
    for (id, app) in &set.apps {
        let file = app
            .file
            .file_name()
            .map(|f| manifest::excerpt::file_name(&f.to_string_lossy()))
            .unwrap_or_default();
        let companions = match app.app.companions.len() {
            0 => String::new(),
            1 => ", 1 companion".into(),
            n => format!(", {n} companions"),
        };
        out.push_str(&format!(
            "ok     {id:<width$}  {file}  ({}{companions})\n",
            manifest::excerpt::excerpt(&app.app.container.image, 80)
        ));
    }
    for e in &set.errors {
        out.push_str(&format!("error  {e}\n"));
    }
    for s in &set.skipped {
        let file = manifest::excerpt::file_name(&s.file.display().to_string());
        out.push_str(&format!("skip   {file}: {}\n", s.why));
    }
    for f in trust {
        let tag = if f.is_refusal() { "error" } else { "warn " };
        out.push_str(&format!("{tag}  {}\n", f.text()));
    }
    let refused = trust.iter().filter(|f| f.is_refusal()).count();
    out.push_str(&format!(
        "{} valid, {} invalid{}{}\n",
        set.apps.len(),
        set.errors.len(),
        match set.skipped.len() {
            0 => String::new(),
            n => format!(", {n} skipped"),
        },
        match refused {
            0 => String::new(),
            _ => ", the directory is refused".to_string(),
        }
    ));
    out
}

/// A writer whose bytes can be read back (tests and replay).
#[derive(Clone, Default)]
pub struct SharedBuf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Standard error that never fails. `eprintln!` panics when it cannot write
/// (a closed pipe: `podkeeper run 2>&1 | head`), and a panic in the log
/// writer or the signal task would end or wedge the daemon; a lost log line
/// never must. It blocks on a full pipe, so only the last words before an
/// exit use it; tracing and the debug lines go through [`crate::output`].
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// One line to standard error, never panicking (see [`QuietStderr`]).
pub fn eprint_line(text: &str) {
    let _ = writeln!(QuietStderr, "{text}");
}

/// Text to standard output, never panicking; false when it could not be written.
pub fn print_text(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_ok()
}
