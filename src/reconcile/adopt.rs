//! Adoption (issue 23): a container of an app's name made by another orchestrator, without podkeeper's labels, taken over without a restart when its config is what the manifest declares.
//!
//! The app reconciler asks [`judge`] when it finds such a container and
//! the app may adopt (`run --adopt`, `adopt: true`); `check --adopt` and
//! `adopt --dry-run` ask it too, read-only. Once adopted (the reactor
//! remembers the container's id, [`super::Remembered::adopted`]), drift
//! sees the container through [`seen_as_ours`]: as podkeeper's, with the
//! spec hash it matched, so it is kept (started again when it exits) and
//! replaced on a spec change like any other. One that differs is adopted
//! at a spec of its own ([`DIFFERS`]) and so replaced, through the replace
//! path, the moment it is found.

pub mod compare;

pub use compare::{differences, Difference};

use super::{Action, Adopted, CallLog, Failure, Reaction, Remembered};
use crate::manifest::LoadedApp;
use crate::runtime::{ContainerInfo, Podman};
use crate::{APP_LABEL, SPEC_HASH_LABEL};

/// The spec hash an adoption records for a container that differs from its
/// manifest (a real one is 16 hex digits): drift sees a spec change.
pub const DIFFERS: &str = "differs";

/// What adoption makes of an app's container that is not podkeeper's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It is what the manifest declares: taken over as it is.
    Adopt(Adopted),
    /// It differs: each field, `field: manifest X, container Y`.
    Differs(Vec<Difference>),
    /// It carries another app's label, or went away while looked at.
    Left(String),
}

/// Compare app `app`'s container (by its name) with its manifest: one
/// call, podman's inspect of the container and of its image.
pub async fn judge<R: Podman>(
    rt: &R,
    app: &LoadedApp,
    log: &mut CallLog,
) -> Result<Verdict, Failure> {
    let id = &app.app.id;
    let Some(config) = log.time("inspect config", rt.container_config(id)).await? else {
        return Ok(Verdict::Left("no container of that name".into()));
    };
    if let Some(owner) = config.labels.get(APP_LABEL) {
        return Ok(Verdict::Left(format!("labelled for app/{owner}")));
    }
    let diffs = differences(&app.app.container, &config);
    if diffs.is_empty() {
        Ok(Verdict::Adopt(Adopted {
            container: config.id,
            spec_hash: app.spec_hash.clone(),
        }))
    } else {
        Ok(Verdict::Differs(diffs))
    }
}

/// The differences in one line, for a reaction's `why`.
pub fn describe(diffs: &[Difference]) -> String {
    let lines: Vec<String> = diffs.iter().map(Difference::to_string).collect();
    format!(
        "not podkeeper's and differs from the manifest: {}",
        lines.join("; ")
    )
}

/// The container as drift is to see it: one podkeeper adopted (the same
/// container id it remembers) carries the app's label and the adopted
/// spec hash, as if podkeeper had made it; any other is left as it is.
pub fn seen_as_ours(
    actual: Option<ContainerInfo>,
    app_id: &str,
    remembered: &Remembered,
) -> Option<ContainerInfo> {
    let mut c = actual?;
    if let Some(a) = &remembered.adopted {
        if a.container == c.id && c.label(APP_LABEL).is_none() {
            c.labels.insert(APP_LABEL.into(), app_id.to_string());
            c.labels.insert(SPEC_HASH_LABEL.into(), a.spec_hash.clone());
        }
    }
    Some(c)
}

/// Whether an app's container found without podkeeper's labels may be
/// judged for adoption: it carries no podkeeper label at all.
pub fn may_judge(actual: &ContainerInfo, remembered: &Remembered) -> bool {
    remembered.may_adopt && actual.label(APP_LABEL).is_none()
}

/// The app reconciler's adoption, before it compares anything: `actual`,
/// a container of the app's name without podkeeper's labels, where the app
/// may adopt (`run --adopt`, `adopt: true`), is judged. Equal to the
/// manifest: adopted as it is, never restarted (`r.adopted` set, action
/// `adopt`), and seen as podkeeper's from then on, so the reconcile goes on
/// as for its own container (one that exited is started). Different:
/// adopted at a spec of its own ([`DIFFERS`]), the differences in `why`:
/// the drift is then a spec change, which the replace path makes, keeping
/// this container (as `<id>.previous`) until the new one passes its gate;
/// nothing else touches it. Otherwise (no
/// manifest, one of podkeeper's, gone under the look) nothing is done.
pub async fn take_over<R: Podman>(
    rt: &R,
    desired: Option<&LoadedApp>,
    actual: Option<&mut ContainerInfo>,
    remembered: &Remembered,
    log: &mut CallLog,
    r: &mut Reaction,
) -> Result<(), Failure> {
    let (Some(app), Some(c)) = (desired, actual) else {
        return Ok(());
    };
    if !may_judge(c, remembered) {
        return Ok(());
    }
    match judge(rt, app, log).await? {
        Verdict::Adopt(adopted) if adopted.container == c.id => {
            c.labels.insert(APP_LABEL.into(), app.app.id.clone());
            c.labels
                .insert(SPEC_HASH_LABEL.into(), adopted.spec_hash.clone());
            r.adopted = Some(adopted);
            r.action = Action::Adopt;
            Ok(())
        }
        Verdict::Differs(diffs) => {
            // Adopted at a spec that is not the manifest's: a spec change,
            // which the replace path makes (the container is kept, as
            // `<id>.previous`, until the new one passes its gate).
            let adopted = Adopted {
                container: c.id.clone(),
                spec_hash: DIFFERS.into(),
            };
            c.labels.insert(APP_LABEL.into(), app.app.id.clone());
            c.labels.insert(SPEC_HASH_LABEL.into(), DIFFERS.into());
            r.adopted = Some(adopted);
            r.why = describe(&diffs);
            Ok(())
        }
        Verdict::Adopt(_) | Verdict::Left(_) => Ok(()),
    }
}
