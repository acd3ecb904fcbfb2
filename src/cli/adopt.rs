//! `podkeeper adopt --dry-run` and `check --adopt` (issue 23): for each app whose container podkeeper did not make, whether it would be adopted, replaced (with the differences, field by field) or left; read-only, straight from podman.

use std::path::PathBuf;

use crate::manifest::{self, ManifestSet};
use crate::reconcile::adopt::{judge, Verdict};
use crate::reconcile::CallLog;
use crate::runtime::podman::{default_socket, PodmanRuntime, Timeouts};
use crate::runtime::Podman;
use crate::APP_LABEL;

#[derive(Debug, clap::Args)]
pub struct AdoptArgs {
    /// Directory of app manifests (*.yaml, *.yml).
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
    /// Only say what would be done (adoption itself is `run`'s, with
    /// `--adopt` or an app's `adopt: true`).
    #[arg(long)]
    pub dry_run: bool,
    /// Podman API socket [default: as `run`'s].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// What adoption would make of one app's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It matches its manifest: taken over as it runs.
    Adopt,
    /// It differs (each line `field: manifest X, container Y`): replaced
    /// through the update path, the old one kept until the new one passes.
    Replace(Vec<String>),
    /// Neither: why (another app's label, podman's error).
    Left(String),
}

/// One app whose container is not podkeeper's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub app: String,
    /// The container id's start.
    pub container: String,
    pub fate: Fate,
}

/// `podkeeper adopt --dry-run --apps DIR`: exit 0 when every container
/// found that is not podkeeper's would be adopted, 1 otherwise.
pub fn adopt(args: &AdoptArgs) -> anyhow::Result<i32> {
    if !args.dry_run {
        anyhow::bail!(
            "adopt only reports (--dry-run); podkeeper adopts while it runs: `podkeeper run --adopt`, or `adopt: true` in an app's manifest"
        );
    }
    let set = manifest::load_dir(&args.apps)?;
    for e in &set.errors {
        crate::report::eprint_line(&format!("podkeeper: {e}"));
    }
    let socket = args.socket.clone().unwrap_or_else(default_socket);
    let rows = survey_blocking(&socket, &set)?;
    crate::report::print_text(&render(&rows, set.apps.len()));
    let all_adopted = rows.iter().all(|r| r.fate == Fate::Adopt);
    Ok(if all_adopted { 0 } else { 1 })
}

/// [`survey`] on a runtime of its own (`check` is synchronous).
pub fn survey_blocking(socket: &std::path::Path, set: &ManifestSet) -> anyhow::Result<Vec<Row>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let podman = PodmanRuntime::new(socket, Timeouts::default());
    rt.block_on(survey(&podman, set))
}

/// Every declared app's container that podkeeper did not make, judged:
/// inspects only, nothing changed.
pub async fn survey<R: Podman>(rt: &R, set: &ManifestSet) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (id, app) in &set.apps {
        let found = rt
            .inspect_container(id)
            .await
            .map_err(|e| anyhow::anyhow!("inspect {id}: {e}"))?;
        let Some(c) = found else { continue };
        let container = c.id.get(..12).unwrap_or(&c.id).to_string();
        let fate = match c.label(APP_LABEL) {
            Some(owner) if owner == id.as_str() => continue,
            Some(owner) => Fate::Left(format!("labelled for app/{owner}")),
            None => match judge(rt, app, &mut CallLog::default()).await {
                Ok(Verdict::Adopt(_)) => Fate::Adopt,
                Ok(Verdict::Differs(d)) => Fate::Replace(d.iter().map(|d| d.to_string()).collect()),
                Ok(Verdict::Left(why)) => Fate::Left(why),
                Err(e) => Fate::Left(e.to_string()),
            },
        };
        rows.push(Row {
            app: id.clone(),
            container,
            fate,
        });
    }
    Ok(rows)
}

/// The rows, aligned, each difference on a line of its own, and a total.
pub fn render(rows: &[Row], apps: usize) -> String {
    let width = rows.iter().map(|r| r.app.len()).max().unwrap_or(0);
    let mut out = String::new();
    let (mut adopt, mut replace, mut left) = (0, 0, 0);
    for r in rows {
        let (word, lines) = match &r.fate {
            Fate::Adopt => {
                adopt += 1;
                ("adopt", vec!["matches its manifest".to_string()])
            }
            Fate::Replace(d) => {
                replace += 1;
                ("replace", d.clone())
            }
            Fate::Left(why) => {
                left += 1;
                ("left", vec![why.clone()])
            }
        };
        let head = format!("{:width$}  {word:7}  {}", r.app, r.container);
        let indent = " ".repeat(head.len() + 2);
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{head}  {line}\n"));
            } else {
                out.push_str(&format!("{indent}{line}\n"));
            }
        }
    }
    out.push_str(&format!(
        "{} of {apps} apps have a container podkeeper did not make: {adopt} adopt, {replace} replace, {left} left\n",
        rows.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_should_align_with_one_difference_a_line() {
        let rows = vec![
            Row {
                app: "web".into(),
                container: "3f2a1b9c0d12".into(),
                fate: Fate::Adopt,
            },
            Row {
                app: "api-2".into(),
                container: "0123456789ab".into(),
                fate: Fate::Replace(vec![
                    "command: manifest [\"a\"], container [\"b\"]".into(),
                    "env X: manifest \"1\", container \"2\"".into(),
                ]),
            },
        ];
        assert_eq!(
            render(&rows, 3),
            "web    adopt    3f2a1b9c0d12  matches its manifest\n\
             api-2  replace  0123456789ab  command: manifest [\"a\"], container [\"b\"]\n\
             \x20                             env X: manifest \"1\", container \"2\"\n\
             2 of 3 apps have a container podkeeper did not make: 1 adopt, 1 replace, 0 left\n"
        );
    }
}
