//! The summary: a finished batch turned into one reaction per companion and one for the batch.

use super::plan::Plan;
use super::unit_files::FileOutcome;
use super::{BatchReactions, StartedFrom, Work, AUTO_RESTART_RECHECK, TRANSIENT_RECHECK};
use crate::reconcile::{CallLog, Reaction};
use crate::trigger::Key;

/// Turn the work into reactions; `shared_error` fails every companion.
pub(super) fn finish(
    mut summary: Reaction,
    slog: CallLog,
    works: Vec<Work>,
    started_from: StartedFrom,
    shared_error: Option<String>,
) -> BatchReactions {
    summary.calls = slog.calls;
    let mut items = Vec::new();
    let mut removed = Vec::new();
    let (mut written, mut started, mut restarted, mut kept) = (0, 0, 0, Vec::new());
    let mut failed = 0;
    for mut w in works {
        if let Some(e) = &shared_error {
            w.fail(e.clone());
        }
        let mut r = Reaction::new(Key::Companion(w.name.clone()));
        let mut why = Vec::new();
        let wrote = match &w.file {
            Some(FileOutcome::Written(how)) => {
                written += 1;
                why.push(format!("file {how}: written"));
                true
            }
            _ => false,
        };
        let gone = w
            .removed_files
            .iter()
            .any(|f| matches!(f, FileOutcome::Removed | FileOutcome::Absent));
        if !w.going.is_empty() && gone {
            why.push(match &w.desired {
                None => "no manifest declares it any more: service stopped, file removed".into(),
                Some(_) => "kind changed: old service stopped, old file removed".into(),
            });
        }
        r.action = match (&w.plan, wrote) {
            (Some(Plan::Restart(m)), _) => {
                restarted += 1;
                why.push(m.clone());
                if wrote {
                    "write+restart"
                } else {
                    "restart"
                }
            }
            (Some(Plan::Start { why: m, reset }), _) => {
                started += 1;
                why.push(if *reset {
                    format!("{m}: reset-failed + start")
                } else {
                    format!("{m}: start")
                });
                if wrote {
                    "write+start"
                } else {
                    "start"
                }
            }
            (Some(Plan::Keep(m)), true) => {
                why.push(format!("{m}: not restarted"));
                "write"
            }
            (Some(Plan::Keep(m)), false) => {
                why.push(m.clone());
                if !gone {
                    kept.push(w.name.clone());
                }
                if gone {
                    "remove"
                } else {
                    "none"
                }
            }
            (Some(Plan::Leave(m)), _) => {
                why.push(m.clone());
                r.requeue_after = Some(AUTO_RESTART_RECHECK);
                "leave"
            }
            (Some(Plan::Wait(m)), _) => {
                why.push(m.clone());
                r.requeue_after = Some(TRANSIENT_RECHECK);
                "wait"
            }
            (Some(Plan::Fail(m)), _) => {
                w.fail(m.clone());
                if wrote {
                    "write"
                } else {
                    "none"
                }
            }
            (None, _) if w.desired.is_none() => {
                if w.error.is_none() {
                    removed.push(w.name.clone());
                }
                if w.going.is_empty() {
                    why.push("not declared and nothing of it known: nothing to do".into());
                    "none"
                } else {
                    "remove"
                }
            }
            (None, true) => "write",
            (None, false) => "none",
        };
        why.extend(w.notes.iter().cloned());
        r.why = why.join("; ");
        r.calls = w.log.calls;
        r.restarted_after = w.restarted_after;
        if let Some(e) = w.error {
            failed += 1;
            r.result = Err(e);
            r.requeue_after = None;
        }
        items.push(r);
    }
    let mut parts = vec![format!("{} companion(s)", items.len())];
    if written > 0 {
        parts.push(format!("{written} written"));
    }
    if started > 0 {
        parts.push(format!("{started} start(s) asked"));
    }
    if restarted > 0 {
        parts.push(format!("{restarted} restart(s) asked"));
    }
    if !removed.is_empty() {
        parts.push(format!("{} removed", removed.len()));
    }
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    if !kept.is_empty() {
        parts.push(if kept.len() <= 4 {
            format!("as declared: {}", kept.join(", "))
        } else {
            format!("{} as declared", kept.len())
        });
    }
    if !summary.why.is_empty() {
        parts.push(std::mem::take(&mut summary.why));
    }
    summary.why = parts.join(", ");
    if let Some(e) = shared_error {
        summary.result = Err(e);
    }
    BatchReactions {
        summary,
        items,
        started_from,
        removed,
    }
}
