//! The summary: a finished batch turned into one reaction per companion and one for the batch.

use super::plan::Plan;
use super::unit_files::FileOutcome;
use super::{BatchReactions, StartedFrom, Work, AUTO_RESTART_RECHECK, TRANSIENT_RECHECK};
use crate::reconcile::{Action, CallLog, Failure, Reaction};
use crate::trigger::Key;

/// Turn the work into reactions; `shared_error` fails every companion.
pub(super) fn finish(
    mut summary: Reaction,
    slog: CallLog,
    works: Vec<Work>,
    started_from: StartedFrom,
    shared_error: Option<Failure>,
) -> BatchReactions {
    summary.calls = slog.calls;
    let mut tally = Tally::default();
    let items: Vec<Reaction> = works
        .into_iter()
        .map(|mut w| {
            if let Some(e) = &shared_error {
                w.fail(e.clone());
            }
            companion_reaction(w, &mut tally)
        })
        .collect();
    summary.why = tally.line(items.len(), std::mem::take(&mut summary.why));
    if let Some(e) = shared_error {
        summary.result = Err(e);
    }
    BatchReactions {
        summary,
        items,
        started_from,
        removed: tally.removed,
    }
}

/// What the batch did, counted for its summary line.
#[derive(Default)]
struct Tally {
    written: usize,
    started: usize,
    restarted: usize,
    failed: usize,
    /// Companions removed for good.
    removed: Vec<String>,
    /// Companions found as declared.
    kept: Vec<String>,
}

impl Tally {
    /// `3 companion(s), 1 written, …, as declared: a, b`, then `extra`.
    fn line(&self, items: usize, extra: String) -> String {
        let mut parts = vec![format!("{items} companion(s)")];
        let counts = [
            (self.written, "written"),
            (self.started, "start(s) asked"),
            (self.restarted, "restart(s) asked"),
            (self.removed.len(), "removed"),
            (self.failed, "failed"),
        ];
        for (n, what) in counts {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if !self.kept.is_empty() {
            parts.push(if self.kept.len() <= 4 {
                format!("as declared: {}", self.kept.join(", "))
            } else {
                format!("{} as declared", self.kept.len())
            });
        }
        if !extra.is_empty() {
            parts.push(extra);
        }
        parts.join(", ")
    }
}

/// One companion's reaction: its files, what its plan did, its error.
fn companion_reaction(mut w: Work, tally: &mut Tally) -> Reaction {
    let mut r = Reaction::new(Key::Companion(w.name.clone()));
    let mut why = Vec::new();
    let wrote = matches!(&w.file, Some(FileOutcome::Written(_)));
    if let Some(FileOutcome::Written(how)) = &w.file {
        tally.written += 1;
        why.push(format!("file {how}: written"));
    }
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
    r.action = planned_action(&mut w, wrote, gone, tally, &mut why, &mut r.requeue_after);
    why.extend(w.notes.iter().cloned());
    r.why = why.join("; ");
    r.calls = w.log.calls;
    r.restarted_after = w.restarted_after;
    if let Some(e) = w.error {
        tally.failed += 1;
        r.result = Err(e);
        r.requeue_after = None;
    }
    r
}

/// The action a companion's plan (and file) amounts to, its reason added to
/// `why`, and when to look again.
fn planned_action(
    w: &mut Work,
    wrote: bool,
    gone: bool,
    tally: &mut Tally,
    why: &mut Vec<String>,
    requeue_after: &mut Option<std::time::Duration>,
) -> Action {
    let unless_wrote = |a: Action, written: Action| if wrote { written } else { a };
    match &w.plan {
        Some(Plan::Restart(m)) => {
            tally.restarted += 1;
            why.push(m.clone());
            unless_wrote(Action::Restart, Action::WriteRestart)
        }
        Some(Plan::Start { why: m, reset }) => {
            tally.started += 1;
            why.push(if *reset {
                format!("{m}: reset-failed + start")
            } else {
                format!("{m}: start")
            });
            unless_wrote(Action::Start, Action::WriteStart)
        }
        Some(Plan::Keep(m)) if wrote => {
            why.push(format!("{m}: not restarted"));
            Action::Write
        }
        Some(Plan::Keep(m)) => {
            why.push(m.clone());
            if gone {
                Action::Remove
            } else {
                tally.kept.push(w.name.clone());
                Action::None
            }
        }
        Some(Plan::Leave(m)) => {
            why.push(m.clone());
            *requeue_after = Some(AUTO_RESTART_RECHECK);
            Action::Leave
        }
        Some(Plan::Wait(m)) => {
            why.push(m.clone());
            *requeue_after = Some(TRANSIENT_RECHECK);
            Action::Wait
        }
        Some(Plan::Fail(m)) => {
            let m = m.clone();
            w.fail(Failure::Companion(m));
            unless_wrote(Action::None, Action::Write)
        }
        None if w.desired.is_none() => {
            if w.error.is_none() {
                tally.removed.push(w.name.clone());
            }
            if w.going.is_empty() {
                why.push("not declared and nothing of it known: nothing to do".into());
                Action::None
            } else {
                Action::Remove
            }
        }
        None => unless_wrote(Action::None, Action::Write),
    }
}
