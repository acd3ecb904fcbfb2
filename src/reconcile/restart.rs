//! `app.restart`: whether an exited container of the current spec is started again, or is done (completed, or a failed one-shot).
//!
//! What "it ran once for this spec" means is read from podman, never from
//! memory: the container carries the spec hash as a label, and an `exited`
//! (or `stopped`, before podman's cleanup) container has run, with its exit
//! code. A `created` container never ran (podkeeper was stopped between
//! create and start) and is started whatever the policy. So a podkeeper
//! restart, a host reboot or a sweep all see the same answer.
//!
//! The exit code alone decides, not who caused the exit: a `podman stop` by
//! hand of an `on-failure` app gives 143 (or 137 after the timeout) and is
//! restarted, as `always` restarts it. podkeeper keeps the declared state
//! (`state: stopped` stops an app for good), and podman before 4.7 cannot
//! tell a user's stop from any other signal, so a rule on who stopped it
//! would behave differently on each podman. A job that handles SIGTERM and
//! exits 0 is completed.

use super::Found;
use crate::manifest::{DesiredState, LoadedApp, Restart};
use crate::runtime::{ContainerInfo, ContainerState};

/// The state word of a container done per its app's policy.
pub const COMPLETED: &str = "completed";
/// The state word of a one-shot (`restart: never`) that exited non-zero.
pub const FAILED: &str = "failed";

/// An exited container that is left exited, per its app's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Exited 0 under `on-failure` or `never`.
    Completed,
    /// A one-shot (`never`) that exited non-zero: reported, not restarted.
    Failed { code: Option<i32> },
}

impl Done {
    pub fn state(self) -> &'static str {
        match self {
            Done::Completed => COMPLETED,
            Done::Failed { .. } => FAILED,
        }
    }

    /// Container `c` of app `id`, for a reaction's record: its state word
    /// is the policy's (`completed`, `failed`), with its exit code.
    pub fn found(self, id: &str, c: &ContainerInfo) -> Found {
        Found {
            app: id.to_string(),
            container: Some(c.id.clone()),
            state: self.state().to_string(),
            exit_code: c.exit_code,
        }
    }

    /// In words, for a reconcile's why.
    pub fn describe(self) -> String {
        match self {
            Done::Completed => "completed (exit code 0)".into(),
            Done::Failed { code } => format!(
                "failed ({}); restart: never: not run again until its spec changes or its container is removed",
                code_words(code)
            ),
        }
    }
}

pub fn code_words(code: Option<i32>) -> String {
    code.map_or("exit code unknown".into(), |c| format!("exit code {c}"))
}

/// Whether container `c` ran and exited (as opposed to never started).
fn ran_and_exited(c: &ContainerInfo) -> bool {
    matches!(c.state, ContainerState::Exited | ContainerState::Stopped)
}

/// Whether `c`, the container of `app` *with its current spec hash* (the
/// caller compares), is done per `app.restart`: then it is left exited.
pub fn done(app: &LoadedApp, c: &ContainerInfo) -> Option<Done> {
    if app.app.state != DesiredState::Running || !ran_and_exited(c) {
        return None;
    }
    match (app.app.restart, c.exit_code) {
        (Restart::Always, _) => None,
        (Restart::OnFailure | Restart::Never, Some(0)) => Some(Done::Completed),
        (Restart::OnFailure, _) => None,
        (Restart::Never, code) => Some(Done::Failed { code }),
    }
}

/// The container exited 0: the `completed` dependency condition, whatever
/// the dependency's policy.
pub fn exited_zero(c: &ContainerInfo) -> bool {
    ran_and_exited(c) && c.exit_code == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn app(restart: &str) -> LoadedApp {
        let text = format!(
            "app:\n  id: job\n  restart: {restart}\n  container:\n    image: localhost/bb:1\n"
        );
        let app = crate::manifest::parse_manifest(std::path::Path::new("x.yaml"), &text).unwrap();
        LoadedApp {
            file: "x.yaml".into(),
            spec_hash: app.container.hash(),
            app,
            secrets: Default::default(),
        }
    }

    fn container(state: ContainerState, exit_code: Option<i32>) -> ContainerInfo {
        ContainerInfo {
            id: "x".into(),
            name: "job".into(),
            state,
            labels: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            exit_code,
            health: None,
            stopped_by_user: None,
            pid: None,
            health_log: Vec::new(),
            stop_timeout: None,
            stop_signal: None,
        }
    }

    #[test]
    fn each_policy_should_leave_exactly_its_exits_exited() {
        use ContainerState::{Created, Exited, Running, Stopped};
        let cases = [
            ("always", Exited, Some(0), None),
            ("always", Exited, Some(1), None),
            ("on-failure", Exited, Some(0), Some(Done::Completed)),
            ("on-failure", Stopped, Some(0), Some(Done::Completed)),
            ("on-failure", Exited, Some(143), None),
            ("never", Exited, Some(0), Some(Done::Completed)),
            (
                "never",
                Exited,
                Some(3),
                Some(Done::Failed { code: Some(3) }),
            ),
            // Created, never started (podkeeper killed between create and
            // start): it still has to run once.
            ("never", Created, Some(0), None),
            ("on-failure", Created, None, None),
            ("never", Running, None, None),
        ];
        for (policy, state, code, want) in cases {
            let c = container(state.clone(), code);
            assert_eq!(done(&app(policy), &c), want, "{policy} {state:?} {code:?}");
        }
    }

    #[test]
    fn a_stopped_declaration_should_never_be_done() {
        let mut a = app("never");
        a.app.state = DesiredState::Stopped;
        assert_eq!(done(&a, &container(ContainerState::Exited, Some(0))), None);
    }
}
