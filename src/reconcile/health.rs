//! Run one app's healthcheck on podkeeper's own timer, count failures, restart an unhealthy app with the crash-loop backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{CallLog, Reaction};
use crate::backoff::Backoff;
use crate::manifest::{DesiredState, LoadedApp};
use crate::runtime::{ContainerState, Podman, RuntimeError};
use crate::trigger::Key;

/// How long the check call may take beyond the check's own timeout
/// (podman kills the check at its timeout; this bounds a hung podman).
pub const CALL_MARGIN: Duration = Duration::from_secs(5);

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
    pub started_at: Option<DateTime<Utc>>,
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
    /// When the last check call returned, on the runtime's clock (podman's
    /// events' clock): a `health_status` stamped before it is that check's
    /// own (or one it superseded).
    pub checked_at: Option<DateTime<Utc>>,
    /// This run was asked for by a `health_status` of a check someone else
    /// ran (`podman healthcheck run`): if podman's status (which counts
    /// every check run) is `unhealthy` and this check fails too, the app is
    /// unhealthy at once.
    pub asked_by_event: bool,
}

impl HealthState {
    /// `healthy`, `unhealthy`, `starting`: for the status and debug output.
    pub fn describe(&self) -> &'static str {
        match self.healthy {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "starting",
        }
    }
}

/// Check the app `id` once. The reaction's `requeue_after` is the next
/// check; `None` when the app has no healthcheck (any more), which ends its
/// checks. Action `none` means nothing changed (the reactor does not print it).
pub async fn check_health<R: Podman>(
    rt: &R,
    id: &str,
    desired: Option<&LoadedApp>,
    mut st: HealthState,
) -> (Reaction, HealthState) {
    let mut r = Reaction::new(Key::Health(id.to_string()));
    let mut log = CallLog::default();
    let Some(h) = desired
        .filter(|a| a.app.state == DesiredState::Running)
        .and_then(|a| a.app.container.healthcheck.as_ref())
    else {
        r.why = "no healthcheck declared: checks end".into();
        return (r, HealthState::default());
    };
    r.requeue_after = Some(h.interval());
    let result = async {
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
        let up = c
            .started_at
            .and_then(|t| (rt.now() - t).to_std().ok())
            .unwrap_or_default();
        let in_start_period = up < h.start_period();
        // Only when asked by a user's check: podman 4.3 keeps its failing
        // streak across a restart, so its status alone would count the
        // failures before podkeeper's last restart.
        let podman_unhealthy =
            std::mem::take(&mut st.asked_by_event) && c.health.as_deref() == Some("unhealthy");
        let check = log
            .time(
                "healthcheck",
                rt.run_healthcheck(id, h.timeout() + CALL_MARGIN),
            )
            .await?;
        st.checked_at = Some(rt.now());
        let now = Instant::now();
        if check.passed {
            st.streak = 0;
            if st.healthy != Some(true) {
                r.action = "healthy";
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
        let output = if check.output.is_empty() {
            String::new()
        } else {
            format!(": {}", crate::manifest::excerpt::excerpt(&check.output, 80))
        };
        if in_start_period {
            r.why = format!("check failed in the start period (not counted){output}");
            return Ok(());
        }
        st.streak += 1;
        if podman_unhealthy {
            // podman counted the checks run outside podkeeper too.
            st.streak = st.streak.max(h.retries());
        }
        st.healthy_since = None;
        r.why = format!("check failed ({}/{}){output}", st.streak, h.retries());
        if st.streak < h.retries() {
            // The first failure of a healthy app is news; the next ones are not.
            if st.streak == 1 && st.healthy == Some(true) {
                r.action = "failing";
            }
            return Ok(());
        }
        st.healthy = Some(false);
        if let Some(hold) = st.hold_until.filter(|t| *t > now) {
            let left = hold - now;
            r.action = "wait";
            r.why = format!(
                "unhealthy ({} failed checks); restart #{} held by the backoff for {}",
                st.streak,
                st.restarts + 1,
                crate::duration::secs(left)
            );
            r.requeue_after = Some(left);
            return Ok(());
        }
        r.action = "restart";
        st.restarts += 1;
        let failed = if podman_unhealthy {
            "podman's status unhealthy (checks run outside podkeeper) and this check failed".into()
        } else {
            format!("{} consecutive failed checks", st.streak)
        };
        r.why = format!(
            "unhealthy: {failed}{output} (restart #{}, after {} up)",
            st.restarts,
            crate::duration::secs(up)
        );
        log.time("stop", rt.stop_container(id)).await?;
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
        Ok::<(), RuntimeError>(())
    }
    .await;
    r.calls = log.calls;
    r.result = result.map_err(|e| e.to_string());
    (r, st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::sim_podman::SimRuntime;

    fn app(extra: &str) -> LoadedApp {
        let text = format!(
            "app:\n  id: web\n  container:\n    image: localhost/bb:1\n    healthcheck:\n      command: [/bin/true]\n      interval: 10s\n      retries: 3\n{extra}"
        );
        let app = crate::manifest::parse_manifest(std::path::Path::new("x.yaml"), &text).unwrap();
        LoadedApp {
            file: "x.yaml".into(),
            spec_hash: app.container.hash(),
            app,
        }
    }

    async fn running(sim: &SimRuntime, app: &LoadedApp) {
        let r = super::super::app::reconcile_app(sim, "web", Some(app), false).await;
        assert_eq!(r.result, Ok(()));
        sim.clear_calls();
    }

    #[tokio::test(start_paused = true)]
    async fn retries_consecutive_failures_should_restart_and_the_next_restart_wait_for_the_backoff()
    {
        let sim = SimRuntime::new(&["localhost/bb:1"], None);
        let app = app("");
        running(&sim, &app).await;
        let (r, st) = check_health(&sim, "web", Some(&app), HealthState::default()).await;
        assert_eq!((r.action, st.describe()), ("healthy", "healthy"));
        assert_eq!(r.requeue_after, Some(Duration::from_secs(10)));
        sim.set_healthy("web", false);
        let (r, st) = check_health(&sim, "web", Some(&app), st).await;
        assert_eq!(
            (r.action, r.why.as_str()),
            ("failing", "check failed (1/3)")
        );
        let (r, st) = check_health(&sim, "web", Some(&app), st).await;
        assert_eq!((r.action, st.streak), ("none", 2));
        tokio::time::advance(Duration::from_secs(30)).await;
        sim.clear_calls();
        let (r, st) = check_health(&sim, "web", Some(&app), st).await;
        assert_eq!(r.action, "restart", "{r:?}");
        assert!(
            r.why
                .starts_with("unhealthy: 3 consecutive failed checks (restart #1"),
            "{}",
            r.why
        );
        assert_eq!(
            sim.calls(),
            ["inspect web", "healthcheck web", "stop web", "start web"]
        );
        assert_eq!(
            st.hold_until,
            Some(Instant::now() + Duration::from_millis(100))
        );

        // Still failing: three more failures, then the second restart.
        let mut st = st;
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(10)).await;
            st = check_health(&sim, "web", Some(&app), st).await.1;
        }
        assert_eq!(st.restarts, 2);
        assert_eq!(
            st.hold_until,
            Some(Instant::now() + Duration::from_millis(200))
        );

        // A hold longer than the checks: the restart waits for it.
        st.hold_until = Some(Instant::now() + Duration::from_secs(40));
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(10)).await;
            let (r, next) = check_health(&sim, "web", Some(&app), st).await;
            st = next;
            if st.streak == 3 {
                assert_eq!(r.action, "wait", "{r:?}");
                // What is left of the hold (the sim's calls take a few ms).
                let left = r.requeue_after.unwrap();
                assert!(
                    left > Duration::from_millis(9_900) && left <= Duration::from_secs(10),
                    "{left:?}"
                );
            }
        }
        assert_eq!(st.restarts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_in_the_start_period_should_not_count_and_a_stopped_container_is_not_checked()
    {
        let sim = SimRuntime::new(&["localhost/bb:1"], None);
        let app = app("      start_period: 1m\n");
        running(&sim, &app).await;
        sim.set_healthy("web", false);
        let mut st = HealthState::default();
        for _ in 0..5 {
            let (r, next) = check_health(&sim, "web", Some(&app), st).await;
            assert!(r.why.contains("start period"), "{}", r.why);
            st = next;
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert_eq!(st.streak, 0);
        sim.stop_by_hand("web");
        sim.clear_calls();
        let (r, _) = check_health(&sim, "web", Some(&app), st).await;
        assert_eq!(r.why, "exited: not checked");
        assert_eq!(sim.calls(), ["inspect web"]);
        // No healthcheck (any more): the checks end.
        let (r, st) = check_health(&sim, "web", None, HealthState::default()).await;
        assert_eq!((r.requeue_after, st), (None, HealthState::default()));
    }
}
