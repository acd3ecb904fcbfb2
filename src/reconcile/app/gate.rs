//! An update's gate and its rollback (issue 23): while `<id>.previous` exists, each look at the app judges the new `<id>` (running since `stable_for`, healthy before `healthy_within`), removes the previous once it passes, or puts the previous back under the app's name when it fails.
//!
//! Everything is read from podman on each look (the state, `StartedAt`,
//! the health status podkeeper's checks left), so a podkeeper started
//! anew during a gate goes on counting from the new container's start.

use std::time::Duration;

use jiff::Timestamp;

use super::replace::{remove_role, short};
use super::{sharers, start_exited, Look, CLEANUP_POLL};
use crate::kill_points::kill_point;
use crate::manifest::{DesiredState, LoadedApp, Restart};
use crate::reconcile::updates::{self, UpdateNews, LOG_TAIL_BYTES};
use crate::reconcile::{restart, secrets, Action, CallLog, Failure, Found, Reaction};
use crate::runtime::{ContainerInfo, ContainerState, Podman, StopWith};
use crate::SPEC_HASH_LABEL;

/// The shortest wait between two looks of a gate: a look due "now" on
/// podman's clock may come a hair early on ours.
const MIN_LOOK: Duration = Duration::from_millis(10);

/// What a look at the new container decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not decided yet: look again after `next` (health events and exits
    /// bring it forward); decided `left` from now at the latest.
    Wait { next: Duration, left: Duration },
    /// Passed, in words.
    Pass(String),
    /// Failed: why, and its exit code if it exited.
    Fail { why: String, exit_code: Option<i32> },
}

/// Judge the new container `c` of `app` at `now`.
pub(super) fn judge(app: &LoadedApp, c: &ContainerInfo, now: Timestamp) -> Verdict {
    let policy = app.app.update_policy();
    let (stable_for, healthy_within) = (policy.stable_for(), policy.healthy_within());
    let checked = app.app.container.healthcheck.is_some();
    let secs = crate::duration::secs;
    match c.state {
        ContainerState::Running => {
            let up = c
                .started_at
                .and_then(|t| Duration::try_from(now.duration_since(t)).ok())
                .unwrap_or_default();
            let health = c.health.as_deref();
            if checked && health == Some("unhealthy") {
                return Verdict::Fail {
                    why: format!("unhealthy after {}", secs(up)),
                    exit_code: None,
                };
            }
            let healthy = !checked || health == Some("healthy");
            if up >= stable_for && healthy {
                let and = if checked { " and healthy" } else { "" };
                return Verdict::Pass(format!("running {}{and}", secs(up)));
            }
            if !healthy && up >= healthy_within {
                return Verdict::Fail {
                    why: format!("not healthy within {}", secs(healthy_within)),
                    exit_code: None,
                };
            }
            let end = if checked {
                stable_for.max(healthy_within)
            } else {
                stable_for
            };
            let due = [
                stable_for.checked_sub(up),
                (!healthy).then(|| healthy_within.checked_sub(up)).flatten(),
            ];
            let next = due
                .into_iter()
                .flatten()
                .filter(|d| !d.is_zero())
                .min()
                .unwrap_or(MIN_LOOK)
                .max(MIN_LOOK);
            Verdict::Wait {
                next,
                left: end.saturating_sub(up),
            }
        }
        ContainerState::Exited | ContainerState::Stopped => {
            let one_shot = matches!(app.app.restart, Restart::Never | Restart::OnFailure);
            if one_shot && restart::exited_zero(c) {
                return Verdict::Pass("completed (exit code 0)".into());
            }
            let after = c
                .last_uptime()
                .map(|u| format!(" after {}", secs(u)))
                .unwrap_or_default();
            Verdict::Fail {
                why: format!("exited ({}){after}", restart::code_words(c.exit_code)),
                exit_code: c.exit_code,
            }
        }
        ContainerState::Stopping | ContainerState::Removing => Verdict::Wait {
            next: CLEANUP_POLL,
            left: Duration::ZERO,
        },
        ref other => Verdict::Fail {
            why: other.as_str().to_string(),
            exit_code: None,
        },
    }
}

/// The gate begins (the new container just started): its news, and when
/// to look first.
pub(super) fn begin(app: &LoadedApp, r: &mut Reaction) {
    let policy = app.app.update_policy();
    let checked = app.app.container.healthcheck.is_some();
    let left = if checked {
        policy.stable_for().max(policy.healthy_within())
    } else {
        policy.stable_for()
    };
    let first = if checked {
        policy.stable_for().min(policy.healthy_within())
    } else {
        policy.stable_for()
    };
    r.requeue_after = Some(first.max(MIN_LOOK));
    r.update = Some(UpdateNews::Gating {
        spec_hash: app.spec_hash.clone(),
        left,
    });
    r.why = format!(
        "{}; gate: {} left (previous container kept)",
        r.why,
        crate::duration::secs(left)
    );
}

/// One look while `<id>.previous` exists: start the new one if a killed
/// podkeeper left it created, else judge it and act on the verdict.
pub(super) async fn look<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    app: &LoadedApp,
    c: &ContainerInfo,
    prev: &ContainerInfo,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    kill_point("update:gating");
    let id = look.id;
    if matches!(
        c.state,
        ContainerState::Created | ContainerState::Configured
    ) {
        r.action = Action::Start;
        r.why = "update interrupted before the new container started: starting it".into();
        if let Err(e) = log.time("start", rt.start_container(id)).await {
            let why = format!("its start failed: {e}");
            return fail(rt, look, app, Some(c), prev, (why, None), log, r).await;
        }
        begin(app, r);
        return Ok(());
    }
    match judge(app, c, rt.now()) {
        Verdict::Wait { next, left } => {
            r.action = Action::Wait;
            r.why = format!(
                "updating to spec {}: gate, {} left",
                short(&app.spec_hash),
                crate::duration::secs(left)
            );
            r.requeue_after = Some(next);
            r.update = Some(UpdateNews::Gating {
                spec_hash: app.spec_hash.clone(),
                left,
            });
            Ok(())
        }
        Verdict::Pass(words) => {
            kill_point("update:passed");
            remove_role(rt, prev, log).await?;
            secrets::after_recreate(rt, app, Some(prev), &Some(c.id.clone()), log).await;
            r.why = format!(
                "update to spec {} applied: {words}; previous container removed",
                short(&app.spec_hash)
            );
            r.update = Some(UpdateNews::Applied {
                spec_hash: app.spec_hash.clone(),
            });
            Ok(())
        }
        Verdict::Fail { why, exit_code } => {
            fail(rt, look, app, Some(c), prev, (why, exit_code), log, r).await
        }
    }
}

/// An update the reactor knows of, but no previous container (removed by
/// hand): nothing to go back to. The gate is still judged, for the news;
/// a failure is `Failed` and the app is repaired as any (the crash-loop
/// backoff). `Ok(false)`: the usual drift handling follows.
pub(super) async fn without_previous<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    app: &LoadedApp,
    c: &ContainerInfo,
    _log: &mut CallLog,
    r: &mut Reaction,
) -> Result<bool, Failure> {
    let _ = look;
    match judge(app, c, rt.now()) {
        Verdict::Wait { next, left } => {
            r.why = format!(
                "updating to spec {}: gate, {} left (no previous container to go back to)",
                short(&app.spec_hash),
                crate::duration::secs(left)
            );
            r.requeue_after = Some(next);
            r.update = Some(UpdateNews::Gating {
                spec_hash: app.spec_hash.clone(),
                left,
            });
            Ok(true)
        }
        Verdict::Pass(_) => {
            r.update = Some(UpdateNews::Applied {
                spec_hash: app.spec_hash.clone(),
            });
            Ok(false)
        }
        Verdict::Fail { why, exit_code } => {
            r.update = Some(UpdateNews::Failed {
                failed: failure(app, c, why, exit_code, String::new()),
            });
            Ok(false)
        }
    }
}

/// The gate failed: roll back when the policy says so, else keep the new
/// spec (the previous removed; an exited one restarted with the crash-loop
/// backoff).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fail<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    app: &LoadedApp,
    c: Option<&ContainerInfo>,
    prev: &ContainerInfo,
    (why, exit_code): (String, Option<i32>),
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    if app.app.update_policy().rollback() {
        return rollback(rt, look, app, c, prev, (why, exit_code), log, r).await;
    }
    let tail = tail(rt, look.id, c, log).await;
    r.update = Some(UpdateNews::Failed {
        failed: failure_of(app, c, why.clone(), exit_code, tail),
    });
    remove_role(rt, prev, log).await?;
    r.why = format!(
        "update to spec {} failed its gate ({why}); rollback: false: it stays",
        short(&app.spec_hash)
    );
    match c {
        Some(c) if c.state != ContainerState::Running => {
            start_exited(rt, look.id, Some(c), log, r).await
        }
        _ => Ok(()),
    }
}

/// Put the previous container back under the app's name: the failed new
/// one (`c`, `None` when gone) removed, the previous renamed and started.
#[allow(clippy::too_many_arguments)]
pub(super) async fn rollback<R: Podman>(
    rt: &R,
    look: &Look<'_>,
    app: &LoadedApp,
    c: Option<&ContainerInfo>,
    prev: &ContainerInfo,
    (why, exit_code): (String, Option<i32>),
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    let id = look.id;
    let tail = tail(rt, id, c, log).await;
    let failed = failure_of(app, c, why.clone(), exit_code, tail);
    r.why = format!(
        "update to spec {} failed its gate ({why}): rolled back to the previous container",
        short(&failed.spec_hash)
    );
    // Told before the steps: a step that fails leaves podman in a state the
    // next look finishes (the rollback, or starting the previous one).
    r.update = Some(UpdateNews::RolledBack { failed });
    r.action = Action::Start;
    r.restarted_after = None;
    if let Some(c) = c {
        let with = StopWith::for_app(Some(&app.app.container), Some(c));
        sharers::remove_with_sharers(rt, id, with, log).await?;
    }
    log.time("rename", rt.rename_container(&prev.name, id))
        .await?;
    r.found = vec![Found {
        app: id.to_string(),
        container: Some(prev.id.clone()),
        state: prev.state.as_str().to_string(),
        exit_code: None,
    }];
    if app.app.state == DesiredState::Running {
        log.time("start", rt.start_container(id)).await?;
    }
    Ok(())
}

/// What the failed container said last (nothing when it is gone, or podman
/// would not say: the rollback never waits on it).
async fn tail<R: Podman>(rt: &R, id: &str, c: Option<&ContainerInfo>, log: &mut CallLog) -> String {
    if c.is_none() {
        return String::new();
    }
    match log.time("logs", rt.logs_tail(id, LOG_TAIL_BYTES)).await {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(app = id, "reading the failed container's log: {e}");
            String::new()
        }
    }
}

fn failure_of(
    app: &LoadedApp,
    c: Option<&ContainerInfo>,
    why: String,
    exit_code: Option<i32>,
    log_tail: String,
) -> updates::Failure {
    match c {
        Some(c) => failure(app, c, why, exit_code, log_tail),
        None => updates::Failure {
            spec_hash: app.spec_hash.clone(),
            why,
            exit_code,
            log_tail,
        },
    }
}

/// The failed spec is the new container's own (its label), whatever the
/// manifest says by now.
fn failure(
    app: &LoadedApp,
    c: &ContainerInfo,
    why: String,
    exit_code: Option<i32>,
    log_tail: String,
) -> updates::Failure {
    updates::Failure {
        spec_hash: c
            .label(SPEC_HASH_LABEL)
            .unwrap_or(&app.spec_hash)
            .to_string(),
        why,
        exit_code,
        log_tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedApp {
        let app = crate::manifest::parse_manifest(std::path::Path::new("x.yaml"), text).unwrap();
        LoadedApp {
            file: "x.yaml".into(),
            spec_hash: app.container.hash(),
            app,
            secrets: Default::default(),
        }
    }

    fn running(up: i64, health: Option<&str>) -> (ContainerInfo, Timestamp) {
        let start = Timestamp::from_second(1_000_000).unwrap();
        let c = ContainerInfo {
            id: "b".into(),
            name: "web".into(),
            state: ContainerState::Running,
            labels: Default::default(),
            started_at: Some(start),
            finished_at: None,
            exit_code: None,
            health: health.map(str::to_string),
            stopped_by_user: None,
            pid: None,
            health_log: Vec::new(),
            stop_timeout: None,
            stop_signal: None,
        };
        (c, Timestamp::from_second(1_000_000 + up).unwrap())
    }

    #[test]
    fn a_gate_should_wait_for_stable_for_and_health_and_fail_at_the_deadline() {
        let plain = loaded("app:\n  id: web\n  container:\n    image: localhost/bb:1\n");
        let (c, now) = running(4, None);
        assert_eq!(
            judge(&plain, &c, now),
            Verdict::Wait {
                next: Duration::from_secs(6),
                left: Duration::from_secs(6)
            }
        );
        let (c, now) = running(10, None);
        assert!(matches!(judge(&plain, &c, now), Verdict::Pass(_)));

        let checked = loaded("app:\n  id: web\n  update:\n    healthy_within: 30s\n  container:\n    image: localhost/bb:1\n    healthcheck:\n      command: [\"true\"]\n");
        let (c, now) = running(12, Some("starting"));
        assert_eq!(
            judge(&checked, &c, now),
            Verdict::Wait {
                next: Duration::from_secs(18),
                left: Duration::from_secs(18)
            }
        );
        let (c, now) = running(12, Some("healthy"));
        assert!(matches!(judge(&checked, &c, now), Verdict::Pass(_)));
        let (c, now) = running(30, Some("starting"));
        let v = judge(&checked, &c, now);
        assert!(
            matches!(v, Verdict::Fail { ref why, .. } if why == "not healthy within 30.0s"),
            "{v:?}"
        );
        let (c, now) = running(2, Some("unhealthy"));
        assert!(matches!(judge(&checked, &c, now), Verdict::Fail { .. }));
    }
}
