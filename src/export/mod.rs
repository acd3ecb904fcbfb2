//! `podkeeper export kube`: the apps (and their Quadlet `.container` companions) as Kubernetes YAML that `podman kube play` and a cluster both run.
//!
//! Read through the project's own loader ([`crate::manifest::load_dir`]),
//! so an invalid manifest is reported as `check` reports it. Each app, and
//! each companion, becomes a [`workload::Workload`] ([`workload`] for apps,
//! [`quadlet`] for units), which [`kube`] maps field by field onto
//! k8s-openapi's types; the documents are written with serde_yaml as one
//! stream. Whatever does not map goes to stderr as a [`notes::Note`].

pub mod kube;
pub mod names;
pub mod notes;
pub mod quadlet;
pub mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::manifest::{self, ManifestSet};

use kube::{Document, Exporter, Kind};
use notes::Notes;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub format: ExportFormat,
}

#[derive(Debug, clap::Subcommand)]
pub enum ExportFormat {
    /// Kubernetes YAML: a Pod (or Deployment) per app and per `.container`
    /// companion, a PersistentVolumeClaim per named volume.
    Kube(KubeArgs),
}

#[derive(Debug, clap::Args)]
pub struct KubeArgs {
    /// Directory of app manifests (*.yaml, *.yml).
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
    /// Export only this app (repeatable) [default: every app].
    #[arg(long = "app", value_name = "ID")]
    pub app_ids: Vec<String>,
    /// What each app becomes.
    #[arg(long, value_enum, default_value_t = Kind::Pod)]
    pub kind: Kind,
    /// Write the YAML to FILE (atomically; never through a symlink) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `podkeeper export …`: returns the process exit code.
pub fn main(args: ExportArgs) -> anyhow::Result<i32> {
    match args.format {
        ExportFormat::Kube(args) => export_kube(&args),
    }
}

/// What one export produced.
#[derive(Debug, Default)]
pub struct Export {
    pub documents: Vec<Document>,
    pub notes: Notes,
    /// Requested apps that cannot be exported, one line each.
    pub errors: Vec<String>,
    pub apps: usize,
    pub companions: usize,
}

/// `podkeeper export kube`. All or nothing: when a requested app is
/// unknown or invalid (every app is requested without `--app`), nothing is
/// written and the exit code is 1.
pub fn export_kube(args: &KubeArgs) -> anyhow::Result<i32> {
    let set = manifest::load_dir(&args.apps)?;
    let export = build(&set, &args.app_ids, args.kind);
    let mut stderr = std::io::stderr().lock();
    // stderr gone is no reason to fail, nor to panic.
    let _ = write!(stderr, "{}", export.notes);
    if !export.errors.is_empty() {
        for e in &export.errors {
            let _ = writeln!(stderr, "error  {e}");
        }
        let _ = writeln!(
            stderr,
            "nothing exported: {}",
            plural(export.errors.len(), "error")
        );
        return Ok(1);
    }
    let text = render(&export.documents)?;
    let target = match &args.out {
        Some(path) => {
            write_file(path, text.as_bytes())?;
            path.display().to_string()
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                let _ = writeln!(stderr, "podkeeper: stdout: {e}; the export is incomplete");
                return Ok(1);
            }
            "stdout".into()
        }
    };
    let _ = writeln!(
        stderr,
        "exported {}, {}: {} to {target}; {} not exported, {} changed",
        plural(export.apps, "app"),
        plural(export.companions, "companion"),
        plural(export.documents.len(), "document"),
        export.notes.count(notes::Verdict::NotExported),
        export.notes.count(notes::Verdict::Changed),
    );
    Ok(0)
}

/// `1 app`, `3 apps`
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The documents for the requested apps (every valid app when none is
/// named), in id order, each app followed by its companions.
pub fn build(set: &ManifestSet, requested: &[String], kind: Kind) -> Export {
    let mut export = Export::default();
    // Invalid manifests, worded exactly as `check` words them.
    let report_errors = |export: &mut Export| {
        for e in &set.errors {
            export.errors.push(e.to_string());
        }
    };
    let ids: Vec<&String> = if requested.is_empty() {
        report_errors(&mut export);
        set.apps.keys().collect()
    } else {
        let unknown: Vec<&String> = requested
            .iter()
            .filter(|id| !set.apps.contains_key(*id))
            .collect();
        for id in &unknown {
            export.errors.push(format!(
                "app {id:?}: no valid manifest declares it{}",
                if set.errors.is_empty() {
                    ""
                } else {
                    " (invalid manifests follow)"
                }
            ));
        }
        if !unknown.is_empty() {
            report_errors(&mut export);
        }
        let mut ids: Vec<&String> = requested
            .iter()
            .filter(|id| set.apps.contains_key(*id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let mut exporter = Exporter::new(kind);
    for id in ids {
        let loaded = &set.apps[id];
        let app = &loaded.app;
        // Ids may end in '-'; Kubernetes names may not.
        for name in std::iter::once(&app.id).chain(
            app.companions
                .iter()
                .filter(|c| c.kind == crate::manifest::CompanionKind::Container)
                .map(|c| &c.name),
        ) {
            if !names::is_dns1123_label(name) {
                export.errors.push(format!(
                    "{}: {name:?} is not a Kubernetes name (it must end with a letter or digit); rename it to export it",
                    loaded.file.display()
                ));
            }
        }
        let w = workload::from_app(app, &loaded.file, &mut export.notes);
        export
            .documents
            .extend(exporter.documents(&w, &mut export.notes));
        export.apps += 1;
        for c in &app.companions {
            if let Some(w) = quadlet::workload(app, c, &mut export.notes) {
                export
                    .documents
                    .extend(exporter.documents(&w, &mut export.notes));
                export.companions += 1;
            }
        }
    }
    export
}

/// One YAML stream: `---` before each document, its comments, the object.
pub fn render(documents: &[Document]) -> anyhow::Result<String> {
    let mut out = String::new();
    for d in documents {
        out.push_str("---\n");
        for c in &d.comments {
            // A comment is one line whatever the manifest held.
            out.push_str("# ");
            out.push_str(&c.replace(['\n', '\r'], " "));
            out.push('\n');
        }
        out.push_str(
            &d.object
                .to_yaml()
                .with_context(|| format!("cannot write {}", d.object.describe()))?,
        );
    }
    Ok(out)
}

/// Atomically (temporary file, fsync, rename), and never through a
/// symlink: an existing `path` must be a regular file.
fn write_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
        bail!("--out {}: not a file name", path.display());
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => bail!(
            "--out {}: is a symlink; refusing to replace it (name the file it points to)",
            path.display()
        ),
        Ok(m) if !m.is_file() => bail!(
            "--out {}: exists and is not a regular file; refusing to replace it",
            path.display()
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("--out {}: {e}", path.display()),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::reconcile::companion::write_atomic(dir, file, content)
        .with_context(|| format!("cannot write {}", path.display()))
}
