//! Planning: what each companion's service needs, from the state systemd reports and the definition its run was started from.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{RunningDef, StartedFrom};
use crate::manifest::Companion;
use crate::runtime::systemd::UnitState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    Keep(String),
    Start { reset: bool, why: String },
    Restart(String),
    Leave(String),
    Wait(String),
    Fail(String),
}

/// Decide what a companion's service needs, from its state after any reload.
pub(super) async fn plan(
    unit_dir: &Path,
    c: &Companion,
    st: &UnitState,
    started_from: &StartedFrom,
) -> Plan {
    let svc = c.service_name();
    if !st.is_loaded() {
        return Plan::Fail(format!(
            "{svc} is {} after daemon-reload: Quadlet generated nothing from {} (check the unit: /usr/libexec/podman/quadlet -dryrun)",
            st.load_state,
            c.file_name()
        ));
    }
    if let Some(other) = shadowed_by(unit_dir, c, st) {
        return Plan::Fail(format!(
            "{svc} is generated from {other}, not from podkeeper's {}: another unit file of that name shadows it",
            c.file_name()
        ));
    }
    if st.is_active() {
        let loaded = definition_hash(&st.fragment_path).await;
        return match (started_from.get(&svc), loaded) {
            (Some(run), Some(loaded)) if run.invocation == st.invocation_id => {
                if run.definition == loaded {
                    Plan::Keep("running the declared definition".into())
                } else {
                    Plan::Restart("definition changed since it started".into())
                }
            }
            _ => Plan::Keep("running; started before podkeeper could see its definition".into()),
        };
    }
    if st.is_auto_restarting() {
        return Plan::Leave(format!(
            "systemd is restarting it (Restart={}, {} restarts): left to systemd until it gives up",
            st.restart, st.n_restarts
        ));
    }
    match st.active_state.as_str() {
        "failed" => Plan::Start {
            reset: true,
            why: format!("failed ({})", st.result),
        },
        "inactive" => Plan::Start {
            reset: false,
            why: format!("inactive ({})", st.sub_state),
        },
        _ => Plan::Wait(format!("{}, looking again shortly", st.describe())),
    }
}

/// The other file the unit is generated from, if it is not ours.
fn shadowed_by(unit_dir: &Path, c: &Companion, st: &UnitState) -> Option<String> {
    if st.source_path.is_empty() {
        return None;
    }
    let ours = unit_dir.join(c.file_name());
    let theirs = Path::new(&st.source_path);
    let same = match (std::fs::canonicalize(&ours), std::fs::canonicalize(theirs)) {
        (Ok(a), Ok(b)) => a == b,
        _ => ours == theirs,
    };
    (!same).then(|| st.source_path.clone())
}

/// Remember the definition of a run not seen before (read before any reload).
pub(super) async fn learn_definition(started_from: &mut StartedFrom, st: &UnitState) {
    if !st.is_active() || st.invocation_id.is_empty() {
        return;
    }
    if started_from
        .get(&st.id)
        .is_some_and(|r| r.invocation == st.invocation_id)
    {
        return;
    }
    if let Some(definition) = definition_hash(&st.fragment_path).await {
        started_from.insert(
            st.id.clone(),
            RunningDef {
                invocation: st.invocation_id.clone(),
                definition,
            },
        );
    }
}

/// Hash of a loaded unit definition (the generated file; small, on tmpfs).
/// Read on tokio's blocking pool: the batch runs among the reactor's tasks,
/// and a read that hangs (a wedged filesystem) must not hold a worker.
async fn definition_hash(fragment: &str) -> Option<String> {
    if fragment.is_empty() {
        return None;
    }
    let text = tokio::fs::read(fragment).await.ok()?;
    let digest = Sha256::digest(&text);
    Some(digest[..12].iter().map(|b| format!("{b:02x}")).collect())
}

pub(super) fn by_id(states: Vec<UnitState>) -> HashMap<String, UnitState> {
    states.into_iter().map(|s| (s.id.clone(), s)).collect()
}
