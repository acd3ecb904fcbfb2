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

    fn row(update: UpdateRow) -> AppRow {
        AppRow {
            declared: "running",
            state: Some("running".into()),
            update: Some(update),
            ..AppRow::default()
        }
    }

    #[test]
    fn status_should_show_a_gate_and_a_rollback_with_its_spec_why_log_and_when() {
        let now = Timestamp::now();
        let mut board = super::super::Board::default();
        board.apps.insert(
            "api".into(),
            row(UpdateRow::Gating {
                spec_hash: "fedcba9876543210".into(),
                ends: now.checked_add(std::time::Duration::from_secs(95)).unwrap(),
            }),
        );
        board.apps.insert(
            "web".into(),
            row(UpdateRow::RolledBack(RememberedFailure {
                failure: crate::reconcile::updates::Failure {
                    spec_hash: "0123456789abcdef".into(),
                    why: "unhealthy after 20s".into(),
                    exit_code: Some(137),
                    log_tail: "listening on :80\nerror: db \x1b[31mdown\x1b[0m\n".into(),
                },
                at: now,
            })),
        );
        let status = board.status(now);
        let t = crate::ops::status::table(&status);
        let line = |app: &str| t.lines().find(|l| l.starts_with(app)).unwrap().to_string();
        assert!(line("api ").contains(" updating (1m35s left) "), "{t}");
        assert!(
            line("api ").ends_with("updating: gate ends in 1m35s"),
            "{t}"
        );
        assert!(line("web ").contains(" rolled back "), "{t}");
        assert!(
            line("web ").ends_with("rolled back: spec 0123456789ab unhealthy after 20s"),
            "{t}"
        );
        assert!(t.contains("0/2 apps as declared"), "{t}");
        let detail = t.split_once("\nweb rolled back at ").expect(&t).1;
        let when = now
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%H:%M:%S")
            .to_string();
        assert_eq!(
            detail,
            format!(
                "{when}: spec 0123456789ab unhealthy after 20s (exit code 137)\n    \
                 listening on :80\n    error: db ?[31mdown?[0m\n    not tried again until \
                 its manifest changes, or `podkeeper retry web`\n"
            )
        );
        // `status --json`: the same, in fields.
        let json = serde_json::to_value(&status).unwrap();
        let web = &json["apps"][1]["update"];
        assert_eq!(web["state"], "rolled back");
        assert_eq!(web["spec_hash"], "0123456789abcdef");
        assert_eq!(web["exit_code"], 137);
        assert_eq!(web["why"], "unhealthy after 20s");
        assert!(web["log_tail"]
            .as_str()
            .unwrap()
            .starts_with("listening on :80\n"));
        assert_eq!(json["apps"][0]["update"]["state"], "updating");
        assert!(json["apps"][0]["update"]["gate_ends"].is_string());
        // An older client reads a status without `update`.
        let mut old = json.clone();
        old["apps"][0].as_object_mut().unwrap().remove("update");
        let back: super::super::Status = serde_json::from_value(old).unwrap();
        assert_eq!(back.apps[0].update, None);
    }
}
