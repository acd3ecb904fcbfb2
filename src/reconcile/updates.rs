//! What a spec change (an update) is made of, as podman shows it and as a reaction reports it: the names of the new and previous containers, and the news of a gate.
//!
//! An update's state lives in podman, by name, so a podkeeper killed at
//! any step finds it again (issue 23):
//!
//! * `<app>.next`: the new container, created while the old one still runs;
//! * `<app>.previous`: the old container, stopped, kept until the new one
//!   passes its gate (then removed) or fails it (then started again under
//!   the app's name: a rollback).
//!
//! App ids never contain a dot, so neither name can be an app's own.

use std::time::Duration;

/// A container's part in an update, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `<app>.next`
    Next,
    /// `<app>.previous`
    Previous,
}

impl Role {
    pub fn suffix(self) -> &'static str {
        match self {
            Role::Next => ".next",
            Role::Previous => ".previous",
        }
    }

    /// The container name this role has for app `id`.
    pub fn name(self, id: &str) -> String {
        format!("{id}{}", self.suffix())
    }
}

/// `(app id, role)` when `name` is an update's container.
pub fn role_of(name: &str) -> Option<(&str, Role)> {
    [Role::Next, Role::Previous]
        .into_iter()
        .find_map(|r| Some((name.strip_suffix(r.suffix())?, r)))
        .filter(|(id, _)| crate::manifest::is_valid_id(id))
}

/// What became of an update, reported by the reconcile that decided it.
/// The reactor remembers a failed spec from it (and writes it down), status
/// shows it, metrics count it (`podkeeper_updates_total{app,result}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateNews {
    /// The new container runs under the app's name; the previous one is
    /// kept until the gate is passed, `left` from now at the latest.
    Gating { spec_hash: String, left: Duration },
    /// The new container passed its gate (or the app has no gate:
    /// `rollback: false`, declared `stopped`): the previous one is gone.
    Applied { spec_hash: String },
    /// The new container failed its gate; the previous one runs again.
    /// This spec is remembered and not tried again until the manifest
    /// changes or `podkeeper retry`.
    RolledBack { failed: Failure },
    /// The update could not be made (pull, create, a gate failed with no
    /// previous container to go back to). The old container, if any, is
    /// untouched.
    Failed { failed: Failure },
}

/// A spec that failed: which, why, and what the container said last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub spec_hash: String,
    /// In words: "exited (code 1) after 0.4s", "unhealthy", "not healthy
    /// within 5m", "pull localhost/bb:nope: …".
    pub why: String,
    pub exit_code: Option<i32>,
    /// The last lines of the failed container's log, at most
    /// [`LOG_TAIL_BYTES`].
    pub log_tail: String,
}

/// The most of a failed container's log that is kept and shown.
pub const LOG_TAIL_BYTES: usize = 2048;

impl UpdateNews {
    /// The `result` label of `podkeeper_updates_total`, for news that ends
    /// an update.
    pub fn result(&self) -> Option<&'static str> {
        match self {
            UpdateNews::Gating { .. } => None,
            UpdateNews::Applied { .. } => Some("applied"),
            UpdateNews::RolledBack { .. } => Some("rolled_back"),
            UpdateNews::Failed { .. } => Some("failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_should_be_told_by_name_and_never_match_an_app_id() {
        assert_eq!(role_of("web.previous"), Some(("web", Role::Previous)));
        assert_eq!(role_of("web.next"), Some(("web", Role::Next)));
        assert_eq!(role_of("web"), None);
        assert_eq!(role_of(".next"), None);
        assert_eq!(role_of("Web.next"), None);
        assert_eq!(Role::Previous.name("db"), "db.previous");
    }
}
