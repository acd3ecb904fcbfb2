//! `podkeeper export kube`: the apps (and their Quadlet `.container` companions) as Kubernetes YAML that `podman kube play` and a cluster both run.
//!
//! Read through the project's own loader ([`crate::manifest::load_dir`]),
//! so an invalid manifest is reported as `check` reports it. Each app, and
//! each companion, becomes a [`workload::Workload`] ([`workload`] for apps,
//! [`quadlet`] for units), which [`kube`] maps field by field onto
//! k8s-openapi's types ([`volumes`]: its mounts and claims); the documents
//! are written as one stream by [`yaml`], which quotes every string a YAML
//! 1.1 or 1.2 parser could read as something else, under comments escaped
//! to one printable line each. Whatever does not map goes to
//! stderr as a [`notes::Note`].

pub mod container_unit;
pub mod kube;
mod meta;
pub mod names;
pub(crate) mod notes;
pub(crate) mod options;
#[cfg(test)]
pub(crate) mod pyyaml;
pub(crate) mod quadlet;
pub(crate) mod volumes;
pub(crate) mod workload;
pub(crate) mod yaml;

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
    /// Quadlet units: a `.container` per app, its companions as they are.
    Quadlet(container_unit::QuadletArgs),
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
        ExportFormat::Quadlet(args) => container_unit::export_quadlet(&args),
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
    let set = manifest::load_declared(&args.apps)?;
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
pub(crate) fn plural(n: usize, word: &str) -> String {
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
    let ids = select(set, requested, &mut export.errors);
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

/// The ids asked for (every valid app when none is named), sorted; an
/// unknown one, and then every invalid manifest, goes to `errors`.
pub(crate) fn select<'a>(
    set: &'a ManifestSet,
    requested: &[String],
    errors: &mut Vec<String>,
) -> Vec<&'a String> {
    // Invalid manifests, worded exactly as `check` words them.
    let report_errors = |errors: &mut Vec<String>| {
        for e in &set.errors {
            errors.push(e.to_string());
        }
    };
    if requested.is_empty() {
        report_errors(errors);
        set.apps.keys().collect()
    } else {
        let unknown: Vec<&String> = requested
            .iter()
            .filter(|id| !set.apps.contains_key(*id))
            .collect();
        for id in &unknown {
            errors.push(format!(
                "app {id:?}: no valid manifest declares it{}",
                if set.errors.is_empty() {
                    ""
                } else {
                    " (invalid manifests follow)"
                }
            ));
        }
        if !unknown.is_empty() {
            report_errors(errors);
        }
        let mut ids: Vec<&String> = requested
            .iter()
            .filter_map(|id| set.apps.get_key_value(id).map(|(k, _)| k))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// One YAML stream: `---` before each document, its comments, the object.
pub fn render(documents: &[Document]) -> anyhow::Result<String> {
    let mut out = String::new();
    for d in documents {
        out.push_str("---\n");
        for c in &d.comments {
            // One printable line whatever the manifest (or its file name)
            // held: YAML 1.1 breaks lines at U+0085, U+2028 and U+2029 too,
            // and the next line would be read as YAML.
            out.push_str("# ");
            out.push_str(&crate::manifest::excerpt::escape(c));
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
pub(crate) fn write_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
    use kube::Object;

    const WEB: &str = "app:\n  id: web\n  container:\n    image: localhost/bb:1\n    command: [/bin/sleep, '100']\n    env: {A: b}\n    labels: {tier: front, note: hello world}\n    ports: ['8080:80']\n  companions:\n    - name: web-tunnel\n      unit: |\n        [Container]\n        Image=localhost/bb:1\n        Exec=/bin/sleep 5\n    - name: web-net\n      kind: network\n      unit: \"[Network]\\n\"\n";
    const DB: &str = "app:\n  id: db\n  container:\n    image: localhost/bb:1\n    volumes: ['/srv/db:/conf:ro', 'db-data:/data']\n";

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    fn load(files: &[(&str, &str)]) -> ManifestSet {
        manifest::load_dir(dir(files).path()).unwrap()
    }

    /// An object as JSON, to compare with what a YAML parser read.
    fn json(o: &Object) -> serde_json::Value {
        match o {
            Object::Pod(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
            Object::Job(o) => serde_json::to_value(o),
            Object::Claim(o) => serde_json::to_value(o),
        }
        .unwrap()
    }

    /// Every document of a stream, read back into k8s-openapi's types by its
    /// kind; first PyYAML (YAML 1.1) and serde_yaml (1.2) must both read
    /// exactly `built`.
    fn read_back_both(text: &str, built: &[Object]) -> Vec<Object> {
        let expected: Vec<serde_json::Value> = built.iter().map(json).collect();
        pyyaml::assert_both_read(&[text.to_string()], &[expected]);
        read_back(text)
    }

    /// Every document of a stream, read back into k8s-openapi's types by its kind.
    fn read_back(text: &str) -> Vec<Object> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(text)
            .map(|doc| {
                let value = serde_yaml::Value::deserialize(doc).expect("a YAML document");
                let kind = value["kind"].as_str().expect("a kind").to_string();
                match kind.as_str() {
                    "Pod" => Object::Pod(Box::new(serde_yaml::from_value::<Pod>(value).unwrap())),
                    "Deployment" => Object::Deployment(Box::new(
                        serde_yaml::from_value::<Deployment>(value).unwrap(),
                    )),
                    "Job" => Object::Job(Box::new(
                        serde_yaml::from_value::<k8s_openapi::api::batch::v1::Job>(value).unwrap(),
                    )),
                    "PersistentVolumeClaim" => Object::Claim(Box::new(
                        serde_yaml::from_value::<PersistentVolumeClaim>(value).unwrap(),
                    )),
                    other => panic!("unexpected kind {other}"),
                }
            })
            .collect()
    }

    #[test]
    fn the_stream_should_read_back_into_the_kubernetes_types_it_was_built_from() {
        let set = load(&[("web.yaml", WEB), ("db.yaml", DB)]);
        for kind in [Kind::Pod, Kind::Deployment] {
            let export = build(&set, &[], kind);
            assert!(export.errors.is_empty(), "{:?}", export.errors);
            let text = render(&export.documents).unwrap();
            assert_eq!(text.matches("\n---\n").count() + 1, export.documents.len());
            let built: Vec<Object> = export.documents.iter().map(|d| d.object.clone()).collect();
            let back = read_back_both(&text, &built);
            assert_eq!(back, built, "{text}");
            let described: Vec<String> = built.iter().map(Object::describe).collect();
            let workload = if kind == Kind::Pod {
                "Pod"
            } else {
                "Deployment"
            };
            assert_eq!(
                described,
                vec![
                    "PersistentVolumeClaim db-data".to_string(),
                    format!("{workload} db"),
                    format!("{workload} web"),
                    format!("{workload} web-tunnel"),
                ]
            );
            assert_eq!((export.apps, export.companions), (2, 1));
            // The app's comment heads its first document, the claim.
            assert!(text.starts_with("---\n# app db, from "), "{text}");
            assert!(
                text.contains("/db.yaml\napiVersion: v1\nkind: PersistentVolumeClaim\n"),
                "{text}"
            );
            assert!(
                text.contains("---\n# companion web-tunnel.container of app web\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn other_companion_kinds_and_unmapped_fields_should_be_noted() {
        let set = load(&[("web.yaml", WEB)]);
        let export = build(&set, &[], Kind::Pod);
        let text = export.notes.to_string();
        assert!(
            text.contains("companion/web-net  web-net.network"),
            "{text}"
        );
        assert!(text.contains("label note"), "{text}");
    }

    #[test]
    fn app_should_select_and_an_unknown_app_should_export_nothing() {
        let set = load(&[
            ("web.yaml", WEB),
            ("db.yaml", DB),
            ("bad.yaml", "app:\n  id: bad\n  container:\n    imag: x\n"),
        ]);
        let export = build(&set, &["db".into(), "db".into()], Kind::Pod);
        assert!(
            export.errors.is_empty(),
            "an invalid manifest not asked for does not matter"
        );
        assert_eq!(export.apps, 1);
        assert_eq!(export.documents.len(), 2);
        let export = build(&set, &["db".into(), "nope".into()], Kind::Pod);
        assert_eq!(export.errors.len(), 2, "{:?}", export.errors);
        assert_eq!(
            export.errors[0],
            "app \"nope\": no valid manifest declares it (invalid manifests follow)"
        );
        assert!(export.errors[1].ends_with("bad.yaml: app.container: unknown field `imag`, did you mean `image`? (see docs/manifests.md for the fields) at line 4 column 5"), "{}", export.errors[1]);
        // Without --app every manifest is asked for.
        let export = build(&set, &[], Kind::Pod);
        assert_eq!(export.errors.len(), 1);
        // Worded as `check` words it.
        assert_eq!(
            crate::report::check_report(&set, &[])
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap(),
            format!("error  {}", export.errors[0])
        );
    }

    #[test]
    fn a_name_kubernetes_refuses_should_be_an_error() {
        let set = load(&[("w.yaml", "app:\n  id: web-\n  container:\n    image: x\n")]);
        let export = build(&set, &[], Kind::Pod);
        assert_eq!(export.errors.len(), 1);
        assert!(
            export.errors[0].contains("\"web-\" is not a Kubernetes name"),
            "{:?}",
            export.errors
        );
    }

    #[test]
    fn a_comment_should_stay_one_printable_line() {
        // The manifest layer refuses line breaks, control characters and
        // separators in a name; the export must not depend on that, nor on
        // the file name, to keep its comments on one line: YAML 1.1 breaks
        // lines at U+0085, U+2028 and U+2029 too.
        let inject = "---{sep}apiVersion: v1{sep}kind: PersistentVolumeClaim{sep}metadata: {name: injected}{sep}#";
        for sep in ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let inject = inject.replace("{sep}", sep);
            let mut app: manifest::App =
                serde_yaml::from_str("id: web\ncontainer:\n  image: x\n").unwrap();
            app.name = Some(format!("two{sep}lines"));
            app.version = Some(format!("1{sep}{inject}"));
            let file = format!("apps/x{sep}{inject}.yaml");
            let set = manifest::assemble(vec![(file.into(), app)], vec![]);
            let export = build(&set, &[], Kind::Pod);
            let text = render(&export.documents).unwrap();
            let esc = sep.escape_default().to_string();
            assert!(
                text.starts_with(&format!(
                    "---\n# app web (two{esc}lines 1{esc}---{esc}apiVersion: v1{esc}kind: PersistentVolumeClaim{esc}metadata: {{name: injected}}{esc}#), from apps/x{esc}---"
                )),
                "{text}"
            );
            assert_eq!(
                text.lines().filter(|l| l.starts_with('#')).count(),
                1,
                "{text}"
            );
            assert!(
                !text.contains(['\r', '\u{85}', '\u{2028}', '\u{2029}']),
                "{text}"
            );
            let built: Vec<Object> = export.documents.iter().map(|d| d.object.clone()).collect();
            assert_eq!(read_back_both(&text, &built).len(), 1, "{text}");
        }
    }

    #[test]
    fn out_should_be_written_atomically_and_never_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("apps.yaml");
        write_file(&out, b"one").unwrap();
        write_file(&out, b"two").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");

        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = d.path().join("link.yaml");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write_file(&link, b"evil").unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());

        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = write_file(&fifo, b"x").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = write_file(d.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = write_file(&d.path().join("missing/x.yaml"), b"x").unwrap_err();
        assert!(format!("{e:#}").contains("missing/x.yaml"), "{e:#}");
    }
}
