//! The apps directory as last read: only files that changed are parsed again, and a file that turns invalid keeps its last valid declaration.
//!
//! Each manifest file is remembered by path with a fingerprint (device,
//! inode, size, mtime, ctime) and a keyed hash of its content, the outcome of
//! parsing it, and the last valid [`App`] it declared. On a re-read:
//!
//! * an unchanged file is not opened (one `lstat`);
//! * a file that does not parse or validate (a typo, a half-written save,
//!   a FIFO, a file too large, a secret file it names that breaks the
//!   rules of [`super::secrets`]) is reported, and its last valid declaration
//!   stands: its app and companions stay exactly as they were. It is read
//!   again when it next changes (its secret files on every read: they
//!   change without it);
//! * only a file that is gone (deleted, renamed to another name) takes its
//!   declaration with it, or one that now validly declares another id;
//! * at start-up an invalid file has no last valid declaration: it declares
//!   nothing, and a container it may have declared is an orphan, left alone.
//!
//! Two files declaring one id: the file that declared it before keeps it and
//! the newcomer is refused; with no earlier owner (start-up) both are refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::hash::{BuildHasher, RandomState};

use super::excerpt::file_name;
use super::limits::MAX_FILE_BYTES;
use super::read::{self, Fingerprint};
use super::secrets::{self, Secrets};
use super::validate::parse_manifest;
use super::{is_manifest_file, App, LoadedApp, ManifestError, ManifestSet, Skipped};

/// See the module documentation.
#[derive(Debug)]
pub struct AppsDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// Which file declared each app id, and each companion name, in the last
    /// set: on a clash it keeps its declaration.
    owners: HashMap<String, PathBuf>,
    companion_owners: HashMap<String, PathBuf>,
    /// Keys the content digests: SipHash with this process's random keys
    /// (a tenth of SHA-256's cost here; only this process compares them).
    hasher: RandomState,
    /// Files parsed so far (tests and benchmarks: unchanged files are not).
    parses: u64,
    /// Whether secret files are read (`export` writes references only and
    /// never opens one: see [`super::load_declared`]).
    read_secrets: bool,
}

#[derive(Debug, Default)]
struct FileState {
    /// The version last read, to tell whether it changed since.
    seen: Option<Seen>,
    /// What that version gave.
    outcome: Option<Result<App, ManifestError>>,
    /// The last valid app this file declared, with its secrets' values.
    last_valid: Option<(App, Secrets)>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    fingerprint: Fingerprint,
    read_at_ns: i128,
    digest: u64,
}

impl AppsDir {
    /// A directory never read: every file is read on the first [`AppsDir::read`].
    pub fn new(dir: &Path) -> Self {
        AppsDir {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
            owners: HashMap::new(),
            companion_owners: HashMap::new(),
            hasher: RandomState::new(),
            parses: 0,
            read_secrets: true,
        }
    }

    /// A directory whose secret files are never opened: each app is taken
    /// with no secret values (its spec hash is then not the one it runs
    /// with; only `export` wants this).
    pub fn without_secrets(dir: &Path) -> Self {
        AppsDir {
            read_secrets: false,
            ..AppsDir::new(dir)
        }
    }

    /// How many times a file was parsed since this was made.
    pub fn parses(&self) -> u64 {
        self.parses
    }

    /// Go on from a set read earlier (by [`super::load_dir`]): its apps are
    /// the last valid declarations of their files.
    pub fn resume(dir: &Path, set: &ManifestSet) -> Self {
        let mut this = AppsDir::new(dir);
        for loaded in set.apps.values() {
            this.files.insert(
                loaded.file.clone(),
                FileState {
                    seen: None,
                    outcome: Some(Ok(loaded.app.clone())),
                    last_valid: Some((loaded.app.clone(), loaded.secrets.clone())),
                },
            );
        }
        this.remember_owners(set);
        this
    }

    /// Read the directory again: parse what changed, keep what did not, and
    /// let the last valid declaration of every invalid file stand. Fails
    /// only when the directory itself cannot be read (then nothing changes).
    pub fn read(&mut self) -> anyhow::Result<ManifestSet> {
        let dir = &self.dir;
        let canonical = std::fs::canonicalize(dir)
            .map_err(|e| anyhow::anyhow!("cannot read apps directory {}: {e}", dir.display()))?;
        let mut skipped = Vec::new();
        let mut listed = Vec::new();
        for entry in std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read apps directory {}: {e}", dir.display()))?
        {
            let entry = entry.map_err(|e| {
                anyhow::anyhow!("cannot read apps directory {}: {e}", dir.display())
            })?;
            let path = dir.join(entry.file_name());
            match why_skipped(&path) {
                Some(why) => skipped.push(Skipped { file: path, why }),
                None => listed.push(path),
            }
        }
        listed.sort();
        skipped.sort_by(|a, b| a.file.cmp(&b.file));
        // Files no longer listed are dropped here, their declarations with them.
        let mut before = std::mem::take(&mut self.files);
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for path in listed {
            let mut state = before.remove(&path).unwrap_or_default();
            if refresh(&canonical, &path, &mut state, &self.hasher) {
                self.parses += 1;
            }
            // The secret files are read again every time: they change
            // without the manifest.
            let declared = match &state.outcome {
                Some(Ok(app)) if !self.read_secrets => Some(Ok((app.clone(), Secrets::default()))),
                Some(Ok(app)) => Some(secrets::load(&path, app).map(|s| (app.clone(), s))),
                Some(Err(e)) => Some(Err(e.clone())),
                None => None,
            };
            match declared {
                Some(Ok((app, secrets))) => {
                    state.last_valid = Some((app.clone(), secrets.clone()));
                    parsed.push((path.clone(), app, secrets));
                }
                Some(Err(mut e)) => {
                    if let Some((app, secrets)) = &state.last_valid {
                        e.stands = Some(app.id.clone());
                        parsed.push((path.clone(), app.clone(), secrets.clone()));
                    }
                    errors.push(e);
                }
                None => {}
            }
            self.files.insert(path, state);
        }
        let mut set = assemble_with_owners(parsed, errors, &self.owners, &self.companion_owners);
        set.skipped = skipped;
        self.remember_owners(&set);
        Ok(set)
    }

    fn remember_owners(&mut self, set: &ManifestSet) {
        self.owners = set
            .apps
            .iter()
            .map(|(id, a)| (id.clone(), a.file.clone()))
            .collect();
        self.companion_owners = set
            .apps
            .values()
            .flat_map(|a| {
                a.app
                    .companions
                    .iter()
                    .map(move |c| (c.name.clone(), a.file.clone()))
            })
            .collect();
    }
}

/// Why a directory entry is no manifest, if it is none by its name.
fn why_skipped(path: &Path) -> Option<String> {
    let name = path.file_name()?;
    let Some(name) = name.to_str() else {
        return Some("its name is not UTF-8".into());
    };
    if name.starts_with('.') {
        return Some("hidden (starts with '.')".into());
    }
    (!is_manifest_file(path)).then(|| "not a manifest (allowed: *.yaml, *.yml)".into())
}

/// Bring one file's state up to date: nothing when it is unchanged, a
/// digest comparison when its fingerprint cannot be trusted, a parse when
/// its content changed. Whether it parsed.
fn refresh(dir: &Path, path: &Path, state: &mut FileState, hasher: &RandomState) -> bool {
    let refuse = |r: read::Refusal| {
        Some(Err(ManifestError {
            file: path.to_path_buf(),
            field: None,
            message: r.to_string(),
            stands: None,
        }))
    };
    let (target, fingerprint) = match read::locate(dir, path) {
        Ok(found) => found,
        Err(r) => {
            state.seen = None;
            state.outcome = refuse(r);
            return false;
        }
    };
    if let (Some(seen), Some(_)) = (&state.seen, &state.outcome) {
        if seen.fingerprint == fingerprint && !fingerprint.is_racy(seen.read_at_ns) {
            return false;
        }
    }
    let read_at_ns = now_ns();
    let (bytes, fingerprint) = match read::read_bounded(&target, MAX_FILE_BYTES) {
        Ok(read) => read,
        Err(r) => {
            state.seen = None;
            state.outcome = refuse(r);
            return false;
        }
    };
    let digest = hasher.hash_one(&bytes);
    let same = state.seen.is_some_and(|s| s.digest == digest) && state.outcome.is_some();
    state.seen = Some(Seen {
        fingerprint,
        read_at_ns,
        digest,
    });
    if same {
        return false;
    }
    state.outcome = match String::from_utf8(bytes) {
        Ok(text) => Some(parse_manifest(path, &text)),
        Err(_) => refuse(read::Refusal::NotUtf8),
    };
    true
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Build a set from parsed apps (their secret files read now: one that
/// breaks the rules refuses its app), refusing every app involved in a
/// clash of ids or companions (no file declared any of them before).
pub fn assemble(parsed: Vec<(PathBuf, App)>, mut errors: Vec<ManifestError>) -> ManifestSet {
    let parsed = parsed
        .into_iter()
        .filter_map(|(file, app)| match secrets::load(&file, &app) {
            Ok(s) => Some((file, app, s)),
            Err(e) => {
                errors.push(e);
                None
            }
        })
        .collect();
    assemble_with_owners(parsed, errors, &HashMap::new(), &HashMap::new())
}

/// Build a set from parsed apps, refusing apps whose id or companions clash:
/// the file that owned the name before keeps it, others are refused; with
/// no earlier owner every file involved is refused.
fn assemble_with_owners(
    parsed: Vec<(PathBuf, App, Secrets)>,
    mut errors: Vec<ManifestError>,
    owners: &HashMap<String, PathBuf>,
    companion_owners: &HashMap<String, PathBuf>,
) -> ManifestSet {
    let mut by_id: HashMap<&str, Vec<&Path>> = HashMap::new();
    let mut by_companion: HashMap<&str, Vec<&Path>> = HashMap::new();
    let mut by_service: HashMap<String, Vec<&Path>> = HashMap::new();
    for (file, app, _) in &parsed {
        by_id.entry(&app.id).or_default().push(file);
        for c in &app.companions {
            by_companion.entry(&c.name).or_default().push(file);
            by_service.entry(c.service_name()).or_default().push(file);
        }
    }
    let clash =
        |what: &str, files: &[&Path], owner: Option<&PathBuf>, file: &Path| -> Option<String> {
            if files.len() < 2 {
                return None;
            }
            let others = files
                .iter()
                .filter(|f| **f != file)
                .map(|f| file_name(&f.display().to_string()))
                .collect::<Vec<_>>()
                .join(", ");
            match owner.filter(|o| files.contains(&o.as_path())) {
                Some(o) if o == file => None,
                Some(o) => Some(format!(
                    "{what} is already declared in {}, which keeps it; this file is refused",
                    file_name(&o.display().to_string())
                )),
                None => Some(format!(
                    "{what} is also declared in {others}; both are refused"
                )),
            }
        };
    let mut refused: Vec<(PathBuf, String, String)> = Vec::new();
    for (file, app, _) in &parsed {
        if let Some(m) = clash(
            &format!("id {:?}", app.id),
            &by_id[app.id.as_str()],
            owners.get(&app.id),
            file,
        ) {
            refused.push((file.clone(), "app.id".into(), m));
            continue;
        }
        let companion_clash = app.companions.iter().find_map(|c| {
            clash(
                &format!("companion {:?}", c.name),
                &by_companion[c.name.as_str()],
                companion_owners.get(&c.name),
                file,
            )
            .or_else(|| {
                clash(
                    &format!("service {}", c.service_name()),
                    &by_service[&c.service_name()],
                    companion_owners.get(&c.name),
                    file,
                )
            })
        });
        if let Some(m) = companion_clash {
            refused.push((file.clone(), "app.companions.name".into(), m));
        }
    }
    let mut set = ManifestSet::default();
    for (file, field, message) in &refused {
        errors.push(ManifestError {
            file: file.clone(),
            field: Some(field.clone()),
            message: message.clone(),
            stands: None,
        });
    }
    for (file, app, secrets) in parsed {
        if refused.iter().any(|(f, _, _)| *f == file) {
            continue;
        }
        set.apps
            .insert(app.id.clone(), LoadedApp::new(file, app, secrets));
    }
    errors.extend(super::depends::check_dependencies(&mut set.apps));
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    set.errors = errors;
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, cmd: &str) -> String {
        format!("app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    command: [{cmd}]\n")
    }

    struct Dir {
        tmp: tempfile::TempDir,
        apps: AppsDir,
    }

    impl Dir {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let apps = AppsDir::new(tmp.path());
            Dir { tmp, apps }
        }
        fn write(&self, file: &str, text: &str) {
            std::fs::write(self.tmp.path().join(file), text).unwrap();
        }
        fn read(&mut self) -> ManifestSet {
            self.apps.read().unwrap()
        }
    }

    fn cmd(set: &ManifestSet, id: &str) -> Vec<String> {
        set.apps[id].app.container.command.clone().unwrap()
    }

    #[test]
    fn a_typo_should_leave_the_last_valid_declaration_standing() {
        let mut d = Dir::new();
        d.write("web.yaml", &manifest("web", "a"));
        assert_eq!(cmd(&d.read(), "web"), ["a"]);
        d.write("web.yaml", &manifest("web", "b").replace("image:", "imag:"));
        let set = d.read();
        assert_eq!(cmd(&set, "web"), ["a"], "the last valid declaration stands");
        assert_eq!(set.errors.len(), 1);
        assert_eq!(set.errors[0].stands.as_deref(), Some("web"));
        assert!(
            set.errors[0].to_string().contains("unknown field `imag`"),
            "{}",
            set.errors[0]
        );
        d.write("web.yaml", &manifest("web", "b"));
        let set = d.read();
        assert_eq!(cmd(&set, "web"), ["b"]);
        assert!(set.errors.is_empty());
    }

    #[test]
    fn a_half_written_file_should_change_nothing_until_it_is_complete() {
        let mut d = Dir::new();
        let full = manifest("web", "a");
        d.write("web.yaml", &full);
        let first = d.read();
        for part in ["", &full[..full.len() / 2]] {
            d.write("web.yaml", part);
            let set = d.read();
            assert_eq!(set.apps["web"].app, first.apps["web"].app, "{part:?}");
        }
        d.write("web.yaml", &full);
        let set = d.read();
        assert_eq!(set.apps["web"].app, first.apps["web"].app);
        assert!(set.errors.is_empty());
    }

    #[test]
    fn a_file_replaced_by_something_unreadable_should_leave_its_app_standing() {
        let mut d = Dir::new();
        d.write("web.yaml", &manifest("web", "a"));
        d.read();
        std::fs::remove_file(d.tmp.path().join("web.yaml")).unwrap();
        std::fs::create_dir(d.tmp.path().join("web.yaml")).unwrap();
        let set = d.read();
        assert_eq!(cmd(&set, "web"), ["a"]);
        assert!(
            set.errors[0].message.contains("a directory"),
            "{}",
            set.errors[0]
        );
    }

    #[test]
    fn only_a_file_gone_or_declaring_another_id_should_take_its_app() {
        let mut d = Dir::new();
        d.write("a.yaml", &manifest("web", "a"));
        d.write("b.yaml", &manifest("api", "a"));
        assert_eq!(d.read().apps.len(), 2);
        d.write("a.yaml", &manifest("web2", "a"));
        std::fs::rename(d.tmp.path().join("b.yaml"), d.tmp.path().join("b.yaml.bak")).unwrap();
        let set = d.read();
        assert_eq!(set.apps.keys().collect::<Vec<_>>(), ["web2"]);
        assert_eq!(set.skipped.len(), 1);
        assert!(
            set.skipped[0].why.starts_with("not a manifest"),
            "{:?}",
            set.skipped
        );
    }

    #[test]
    fn an_invalid_file_at_start_up_should_declare_nothing() {
        let mut d = Dir::new();
        d.write("web.yaml", &manifest("web", "a").replace("image:", "imag:"));
        let set = d.read();
        assert!(set.apps.is_empty());
        assert_eq!(set.errors[0].stands, None);
    }

    #[test]
    fn unchanged_files_should_not_be_parsed_again() {
        let mut d = Dir::new();
        for i in 0..10 {
            d.write(&format!("a{i}.yaml"), &manifest(&format!("a{i}"), "x"));
        }
        d.read();
        assert_eq!(d.apps.parses(), 10);
        // Just written: their timestamps cannot be trusted yet, their digests can.
        d.read();
        assert_eq!(d.apps.parses(), 10);
        d.write("a3.yaml", &manifest("a3", "y"));
        let set = d.read();
        assert_eq!(d.apps.parses(), 11);
        assert_eq!(cmd(&set, "a3"), ["y"]);
    }

    #[test]
    fn a_newcomer_should_not_take_an_id_that_is_declared_already() {
        let mut d = Dir::new();
        d.write("a.yaml", &manifest("web", "a"));
        d.read();
        d.write("b.yaml", &manifest("web", "b"));
        let set = d.read();
        assert_eq!(cmd(&set, "web"), ["a"], "the owner keeps it");
        assert_eq!(set.errors.len(), 1);
        let e = set.errors[0].to_string();
        assert!(
            e.contains("b.yaml")
                && e.contains("already declared in")
                && e.contains("a.yaml, which keeps it"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_ids_at_start_up_should_refuse_both_files_naming_each_other() {
        let app = parse_manifest(Path::new("a.yaml"), &manifest("web", "a")).unwrap();
        let set = assemble(
            vec![("a.yaml".into(), app.clone()), ("b.yaml".into(), app)],
            vec![],
        );
        assert!(set.apps.is_empty());
        assert_eq!(set.errors.len(), 2);
        assert!(set.errors[0].to_string().contains("b.yaml"));
        assert!(set.errors[1].to_string().contains("a.yaml"));
    }

    #[test]
    fn resume_should_take_a_set_as_the_last_valid_declarations() {
        let d = Dir::new();
        d.write("web.yaml", &manifest("web", "a"));
        let set = load_dir_for_test(d.tmp.path());
        let mut apps = AppsDir::resume(d.tmp.path(), &set);
        d.write("web.yaml", "app: [\n");
        let set = apps.read().unwrap();
        assert_eq!(cmd(&set, "web"), ["a"]);
    }

    fn load_dir_for_test(dir: &Path) -> ManifestSet {
        super::super::load_dir(dir).unwrap()
    }

    #[test]
    fn every_entry_skipped_should_be_listed_with_why() {
        let mut d = Dir::new();
        d.write("README.md", "x");
        d.write(".web.yaml.swp", "x");
        let set = d.read();
        let why: Vec<_> = set.skipped.iter().map(|s| s.why.as_str()).collect();
        assert_eq!(
            why,
            [
                "hidden (starts with '.')",
                "not a manifest (allowed: *.yaml, *.yml)"
            ]
        );
    }
}
