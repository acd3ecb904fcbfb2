//! Updates on the status board: an app in its gate (`updating`, with the time left) or rolled back (the spec that failed, why, its log's tail, when), as the reactor's reactions and memory say.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{rfc3339, AppRow};
use crate::observe::RememberedFailure;
use crate::reconcile::updates::UpdateNews;
use crate::reconcile::Reaction;

/// What status says of an app's update (`status --json`: `update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// `updating` (the new container is in its gate) or `rolled back`.
    pub state: String,
    /// The spec in its gate, or the one that failed it.
    pub spec_hash: String,
    /// `updating`: when the gate ends at the latest (RFC 3339).
    #[serde(default)]
    pub gate_ends: Option<String>,
    /// `rolled back`: why the spec failed, in words.
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// `rolled back`: the failed container's last log lines (≤ 2 KiB).
    #[serde(default)]
    pub log_tail: Option<String>,
    /// `rolled back`: when (RFC 3339).
    #[serde(default)]
    pub at: Option<String>,
}

/// An update as a row keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRow {
    Gating { spec_hash: String, ends: Timestamp },
    RolledBack(RememberedFailure),
}

/// An app reaction's update news, on its row: a gate begun or going on;
/// ended otherwise (a rollback's row comes from the reactor's memory,
/// which says it as it remembers it).
pub(super) fn take_news(row: &mut AppRow, r: &Reaction, at: Timestamp) {
    match &r.update {
        Some(UpdateNews::Gating { spec_hash, left }) => {
            row.update = Some(UpdateRow::Gating {
                spec_hash: spec_hash.clone(),
                ends: at.checked_add(*left).unwrap_or(at),
            });
        }
        Some(UpdateNews::Applied { .. } | UpdateNews::Failed { .. }) => {
            if matches!(row.update, Some(UpdateRow::Gating { .. })) {
                row.update = None;
            }
        }
        // Its memory comes with it (`remembered`).
        Some(UpdateNews::RolledBack { .. }) | None => {}
    }
}

/// The reactor remembers (or forgot) a failed spec of the app.
pub(super) fn remembered(row: &mut AppRow, failed: Option<&RememberedFailure>) {
    match failed {
        Some(f) => row.update = Some(UpdateRow::RolledBack(f.clone())),
        None => {
            if matches!(row.update, Some(UpdateRow::RolledBack(_))) {
                row.update = None;
            }
        }
    }
}

/// The row's update as status shows it, and the app's `why` in words.
pub(super) fn status_of(row: &AppRow, now: Timestamp) -> Option<(UpdateStatus, String)> {
    Some(match row.update.as_ref()? {
        UpdateRow::Gating { spec_hash, ends } => (
            UpdateStatus {
                state: "updating".into(),
                spec_hash: spec_hash.clone(),
                gate_ends: Some(rfc3339(*ends)),
                why: None,
                exit_code: None,
                log_tail: None,
                at: None,
            },
            format!("updating: gate ends in {}", left(*ends, now)),
        ),
        UpdateRow::RolledBack(f) => (
            UpdateStatus {
                state: "rolled back".into(),
                spec_hash: f.failure.spec_hash.clone(),
                gate_ends: None,
                why: Some(f.failure.why.clone()),
                exit_code: f.failure.exit_code,
                log_tail: Some(f.failure.log_tail.clone()),
                at: Some(rfc3339(f.at)),
            },
            format!(
                "rolled back: spec {} {}",
                short(&f.failure.spec_hash),
                f.failure.why
            ),
        ),
    })
}

/// The time left until `ends`, in whole seconds rounded up: `29s`,
/// `4m05s` (`0s` once over).
pub fn left(ends: Timestamp, now: Timestamp) -> String {
    let ms = ends.duration_since(now).as_millis().max(0);
    let secs = (ms + 999) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        _ => format!("{}m{:02}s", secs / 60, secs % 60),
    }
}

/// A spec hash as status shows it.
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_should_be_whole_seconds_rounded_up() {
        let now: Timestamp = "2026-12-08T03:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(left(at("2026-12-08T03:00:29.200Z"), now), "30s");
        assert_eq!(left(at("2026-12-08T03:04:05Z"), now), "4m05s");
        assert_eq!(left(at("2026-12-08T02:59:00Z"), now), "0s");
    }
}
