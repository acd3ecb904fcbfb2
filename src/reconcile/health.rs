//! One app's healthcheck: podkeeper's own runs on its timer, every run podman logged counted once, an unhealthy app restarted with the crash-loop backoff.
//!
//! The verdict is folded from podman's health log (`State.Health.Log`), not
//! from who ran what: podkeeper's own run and a user's `podman healthcheck
//! run` are both entries there, told apart by their start time, so each is
//! counted exactly once whatever they overlap, and entries from before the
//! container's current start are never counted (podman 4.3 keeps its failing
//! streak across a restart). A `health_status` event only makes podkeeper
//! look at the log at once; its own run is due on its timer.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Action, CallLog, Failure, Reaction};
use crate::backoff::Backoff;
use crate::manifest::{ContainerSpec, DesiredState, HealthCheck, LoadedApp};
use crate::runtime::{
    ContainerInfo, ContainerState, HealthCall, HealthLogEntry, HealthResult, Podman, RuntimeError,
    StopWith,
};
use crate::trigger::Key;

/// Healthy for this long after an unhealthy restart: the restart backoff
/// is forgotten, the next unhealthy verdict restarts at once.
pub const HEALTHY_RESET: Duration = Duration::from_secs(60);

/// Restarts of an app that keeps failing its checks: the crash-loop backoff.
pub const RESTART_BACKOFF: Backoff = Backoff::CRASH_LOOP;

/// What the reactor keeps of one app's checks between two runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthState {
    /// The `StartedAt` of the container the streak is about: a new start
    /// (a crash's repair, a restart by hand) begins a new streak.
    pub started_at: Option<Timestamp>,
    /// Consecutive failed checks after the start period.
    pub streak: u32,
    /// The last verdict: `None` before the first check of this start.
    pub healthy: Option<bool>,
    /// Since when the checks pass.
    pub healthy_since: Option<Instant>,
    /// Unhealthy restarts since the app was last healthy for [`HEALTHY_RESET`].
    pub restarts: u32,
    /// No unhealthy restart before this.
    pub hold_until: Option<Instant>,
    /// The starts of the entries of podman's health log as last read: those
    /// are counted (the log holds a few, so this does too).
    pub counted: Vec<Timestamp>,
    /// When podkeeper's own next run is due (`None`: at once). A run asked
    /// for earlier (a `health_status` event) only reads the log.
    pub next_check: Option<Instant>,
    /// Set by the reactor for one run when an update of the app may be
    /// under way (issue 23): only then is an unhealthy restart preceded by
    /// a look for `<id>.previous` (a gate decides instead). Never kept.
    pub update_under_way: bool,
}

impl HealthState {
    /// `healthy`, `unhealthy`, `starting` (the tests' reading; status keeps
    /// its own word from the reactions).
    #[cfg(test)]
    pub fn describe(&self) -> &'static str {
        match self.healthy {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "starting",
        }
    }
}

/// What the log entries not counted before said.
#[derive(Debug, Default)]
struct Fold {
    /// The verdict of the newest of them.
    last_passed: Option<bool>,
    /// Why the newest failed one failed.
    output: Option<String>,
    /// A failure began a streak (the first failure of a healthy app is news).
    from_zero: bool,
}

/// Check the app `id`: read podman's health log, run the check when it is
/// due, and act on the streak. The reaction's `requeue_after` is the next
/// due run; `None` when the app has no healthcheck (any more), which ends
/// its checks. Action `none` means nothing changed (the reactor does not
/// print it).
pub async fn check_health<R: Podman>(
    rt: &R,
    id: &str,
    desired: Option<&LoadedApp>,
    mut st: HealthState,
    cancel: &CancellationToken,
) -> (Reaction, HealthState) {
    let mut r = Reaction::new(Key::Health(id.to_string()));
    let mut log = CallLog::default();
    let Some((spec, h)) = desired
        .filter(|a| a.app.state == DesiredState::Running)
        .and_then(|a| Some((&a.app.container, a.app.container.healthcheck.as_ref()?)))
    else {
        r.why = "no healthcheck declared: checks end".into();
        return (r, HealthState::default());
    };
    let gate = std::mem::take(&mut st.update_under_way);
    let now = Instant::now();
    let due = st.next_check.is_none_or(|t| t <= now);
    if due {
        st.next_check = Some(now + h.interval());
    }
    let result = look_and_act(rt, id, spec, (due, gate), &mut st, &mut log, &mut r, cancel).await;
    // The next due run, or the end of the backoff holding an unhealthy
    // app's restart back, whichever comes first.
    let now = Instant::now();
    let mut next = st
        .next_check
        .map_or(h.interval(), |t| t.saturating_duration_since(now));
    if let Some(hold) = st.hold_until.filter(|_| st.healthy == Some(false)) {
        next = next.min(hold.saturating_duration_since(now));
    }
    r.requeue_after = Some(next);
    r.calls = log.calls;
    r.result = result.map_err(Failure::from);
    (r, st)
}

#[allow(clippy::too_many_arguments)]
async fn look_and_act<R: Podman>(
    rt: &R,
    id: &str,
    spec: &ContainerSpec,
    (due, gate): (bool, bool),
    st: &mut HealthState,
    log: &mut CallLog,
    r: &mut Reaction,
    cancel: &CancellationToken,
) -> Result<(), RuntimeError> {
    let Some(h) = spec.healthcheck.as_ref() else {
        return Ok(());
    };
    let Some(c) = log.time("inspect", rt.inspect_container(id)).await? else {
        r.why = "no container: not checked".into();
        return Ok(());
    };
    if c.state != ContainerState::Running {
        r.why = format!("{}: not checked", c.state.as_str());
        st.streak = 0;
        return Ok(());
    }
    if c.started_at != st.started_at {
        // A new start: a new streak, a new start period.
        st.started_at = c.started_at;
        st.streak = 0;
        st.healthy = None;
    }
    let mut fold = fold_log(st, &c, h.start_period());
    let mut own: Option<HealthResult> = None;
    if due {
        let began = rt.now();
        let call = HealthCall {
            timeout: h.timeout(),
            command: &h.command,
            pid: c.pid,
        };
        let result = log
            .time("healthcheck", rt.run_healthcheck(id, call))
            .await?;
        // What podman logged of it (and of any run beside it).
        let after = log.time("inspect", rt.inspect_container(id)).await?;
        let Some(after) = after.filter(|a| a.started_at == c.started_at) else {
            // Stopped, removed or started anew meanwhile: this run says
            // nothing of the container there is now.
            r.why = "container gone or started anew during the check: not counted".into();
            return Ok(());
        };
        fold.merge(fold_log(st, &after, h.start_period()));
        if !after.health_log.iter().any(|e| e.start >= began) {
            // podman logged nothing of this run (it could not start it):
            // its answer is the verdict.
            let early = c.started_at.is_some_and(|s| {
                Duration::try_from(began.duration_since(s)).unwrap_or_default() < h.start_period()
            });
            fold.merge(st.count(result.passed, &result.output, early));
        }
        own = Some(result);
    }
    // A restart's stop: the manifest's stop timeout (or the container's own, if longer).
    let stop = StopWith::for_app(Some(spec), Some(&c));
    verdict(rt, id, (h, stop, gate), &c, st, fold, own, log, r, cancel).await
}

impl Fold {
    fn merge(&mut self, later: Fold) {
        self.from_zero |= later.from_zero;
        if later.last_passed.is_some() {
            self.last_passed = later.last_passed;
        }
        if later.output.is_some() {
            self.output = later.output;
        }
    }
}

impl HealthState {
    /// Count one run's verdict into the streak.
    fn count(&mut self, passed: bool, output: &str, early: bool) -> Fold {
        let mut f = Fold {
            last_passed: Some(passed),
            ..Fold::default()
        };
        if passed {
            self.streak = 0;
        } else if early {
            // In the start period: not counted.
        } else {
            f.from_zero = self.streak == 0;
            self.streak += 1;
            f.output = Some(output.to_string());
        }
        f
    }
}

/// Count the entries of `c`'s health log not counted before, oldest first;
/// entries from before its current start are skipped.
fn fold_log(st: &mut HealthState, c: &ContainerInfo, start_period: Duration) -> Fold {
    let mut fold = Fold::default();
    for e in &c.health_log {
        if st.counted.contains(&e.start) || c.started_at.is_some_and(|s| e.start < s) {
            continue;
        }
        let early = c.started_at.is_some_and(|s| {
            Duration::try_from(e.start.duration_since(s)).unwrap_or_default() < start_period
        });
        fold.merge(st.count(e.passed(), &entry_output(e), early));
    }
    st.counted = c.health_log.iter().map(|e| e.start).collect();
    fold
}

/// What a failed entry says: its output, or that it timed out.
fn entry_output(e: &HealthLogEntry) -> String {
    match (e.exit_code, e.output.trim()) {
        (-1, "") => "no result within its timeout".into(),
        (code, "") => format!("exit code {code}"),
        (_, out) => out.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn verdict<R: Podman>(
    rt: &R,
    id: &str,
    (h, stop, gate): (&HealthCheck, StopWith, bool),
    c: &ContainerInfo,
    st: &mut HealthState,
    fold: Fold,
    own: Option<HealthResult>,
    log: &mut CallLog,
    r: &mut Reaction,
    cancel: &CancellationToken,
) -> Result<(), RuntimeError> {
    let now = Instant::now();
    let up = c
        .started_at
        .and_then(|t| Duration::try_from(rt.now().duration_since(t)).ok())
        .unwrap_or_default();
    let output = own
        .filter(|o| !o.passed && !o.output.is_empty())
        .map(|o| o.output)
        .or(fold.output)
        .map(|o| format!(": {}", crate::manifest::excerpt::excerpt(&o, 80)))
        .unwrap_or_default();
    match fold.last_passed {
        // Still unhealthy, its restart held by the backoff, which is over now.
        None if st.healthy == Some(false)
            && st.streak >= h.retries()
            && st.hold_until.is_none_or(|t| t <= now) => {}
        None => {
            r.why = "no new check run".into();
            return Ok(());
        }
        Some(true) => {
            if st.healthy != Some(true) {
                r.action = Action::Healthy;
                st.healthy_since = Some(now);
            }
            st.healthy = Some(true);
            r.why = "check passed".into();
            if st.restarts > 0
                && st
                    .healthy_since
                    .is_some_and(|t| now.duration_since(t) >= HEALTHY_RESET)
            {
                st.restarts = 0;
                st.hold_until = None;
            }
            return Ok(());
        }
        Some(false) if st.streak == 0 => {
            r.why = format!("check failed in the start period (not counted){output}");
            return Ok(());
        }
        Some(false) => {}
    }
    st.healthy_since = None;
    r.why = format!("check failed ({}/{}){output}", st.streak, h.retries());
    if st.streak < h.retries() {
        // The first failure of a healthy app is news; the next ones are not.
        if fold.from_zero && st.healthy == Some(true) {
            r.action = Action::Failing;
        }
        return Ok(());
    }
    st.healthy = Some(false);
    if let Some(hold) = st.hold_until.filter(|t| *t > now) {
        r.action = Action::Wait;
        r.why = format!(
            "unhealthy ({} failed checks); restart #{} held by the backoff for {}",
            st.streak,
            st.restarts + 1,
            crate::duration::secs(hold - now)
        );
        return Ok(());
    }
    if cancel.is_cancelled() {
        // Its manifest changed (or went) while this run looked: the app
        // key acts on the new declaration; no restart on the old one.
        r.why = format!(
            "unhealthy ({} failed checks); restart called off: the manifest changed",
            st.streak
        );
        return Ok(());
    }
    let previous = crate::reconcile::updates::Role::Previous.name(id);
    if gate
        && log
            .time("inspect", rt.inspect_container(&previous))
            .await?
            .is_some()
    {
        // issue 23: a new container on its update's gate; the gate (the
        // app's reconcile) rolls it back, a restart would only hide it.
        r.why = format!(
            "unhealthy ({} failed checks); on its update's gate: the gate decides",
            st.streak
        );
        return Ok(());
    }
    r.action = Action::Restart;
    st.restarts += 1;
    r.why = format!(
        "unhealthy: {} consecutive failed checks{output} (restart #{}, after {} up)",
        st.streak,
        st.restarts,
        crate::duration::secs(up)
    );
    log.time("stop", rt.stop_container(id, stop)).await?;
    if let Err(e) = log.time("start", rt.start_container(id)).await {
        // The app reconciler (woken by the stop's `died`) may have
        // started it first: that is what was wanted.
        let now_running = log
            .time("inspect", rt.inspect_container(id))
            .await?
            .is_some_and(|c| c.state == ContainerState::Running);
        if !now_running {
            return Err(e);
        }
    }
    st.hold_until = Some(Instant::now() + RESTART_BACKOFF.delay(st.restarts));
    st.streak = 0;
    st.healthy = None;
    st.started_at = None;
    st.next_check = Some(Instant::now() + h.interval());
    Ok(())
}

#[cfg(test)]
mod tests;
