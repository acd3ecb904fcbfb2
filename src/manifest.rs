//! App manifests: the YAML format, its validation, and the desired state it declares.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One manifest file: `app:` at the top level, nothing else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    app: App,
}

/// An app as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// `[a-z0-9][a-z0-9-]{0,62}`; also the container's name.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub version: Option<String>,
    pub container: ContainerSpec,
    #[serde(default)]
    pub companions: Vec<Companion>,
}

/// The container an app runs. Everything here goes into the spec hash, so any
/// change to it recreates the container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A Quadlet unit an app owns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Companion {
    /// Same rule as app ids; the unit file is `<name>.<kind>`.
    pub name: String,
    #[serde(default)]
    pub kind: CompanionKind,
    /// The Quadlet file's exact contents.
    pub unit: String,
}

/// The Quadlet unit kinds, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompanionKind {
    #[default]
    Container,
    Volume,
    Network,
    Pod,
    Kube,
    Image,
    Build,
}

impl CompanionKind {
    pub const ALL: [CompanionKind; 7] = [
        CompanionKind::Container,
        CompanionKind::Volume,
        CompanionKind::Network,
        CompanionKind::Pod,
        CompanionKind::Kube,
        CompanionKind::Image,
        CompanionKind::Build,
    ];

    /// The unit file's extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            CompanionKind::Container => "container",
            CompanionKind::Volume => "volume",
            CompanionKind::Network => "network",
            CompanionKind::Pod => "pod",
            CompanionKind::Kube => "kube",
            CompanionKind::Image => "image",
            CompanionKind::Build => "build",
        }
    }

    pub fn from_extension(ext: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.extension() == ext)
    }

    /// The suffix Quadlet appends to the unit name for the generated service.
    fn service_suffix(self) -> &'static str {
        match self {
            CompanionKind::Container | CompanionKind::Kube => "",
            CompanionKind::Volume => "-volume",
            CompanionKind::Network => "-network",
            CompanionKind::Pod => "-pod",
            CompanionKind::Image => "-image",
            CompanionKind::Build => "-build",
        }
    }
}

impl Companion {
    /// `web-tunnel.container`
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name, self.kind.extension())
    }

    /// The service Quadlet generates from the file: `web-tunnel.service`,
    /// `data-volume.service`, …
    pub fn service_name(&self) -> String {
        format!("{}{}.service", self.name, self.kind.service_suffix())
    }
}

impl ContainerSpec {
    /// A short, stable hash of the spec. Stored as a label on the container so a
    /// sweep can tell from one list call whether a container matches its manifest.
    pub fn hash(&self) -> String {
        // serde_json of a struct with BTreeMaps is deterministic.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&json);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A manifest that could not be used, with the file and field to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    /// The field path (`app.container.image`), when one is to blame.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}: {}", self.file.display(), field, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ManifestError {}

/// A valid app, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedApp {
    pub file: PathBuf,
    pub app: App,
    /// `app.container.hash()`, computed once.
    pub spec_hash: String,
}

/// Everything the apps directory declares: the valid apps and the errors.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    pub apps: BTreeMap<String, LoadedApp>,
    pub errors: Vec<ManifestError>,
}

impl ManifestSet {
    /// The companion of that name and the app that owns it.
    pub fn companion(&self, name: &str) -> Option<(&LoadedApp, &Companion)> {
        self.apps.values().find_map(|a| {
            a.app
                .companions
                .iter()
                .find(|c| c.name == name)
                .map(|c| (a, c))
        })
    }

    /// Every companion, with its owning app id.
    pub fn companions(&self) -> impl Iterator<Item = (&str, &Companion)> {
        self.apps
            .values()
            .flat_map(|a| a.app.companions.iter().map(move |c| (a.app.id.as_str(), c)))
    }
}

/// Is this a valid app id / companion name? `[a-z0-9][a-z0-9-]{0,62}`
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

const ID_RULE: &str = "allowed: 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit";

/// Parse and validate one manifest's text. `file` is only used in errors.
pub fn parse_manifest(file: &Path, text: &str) -> Result<App, ManifestError> {
    let err = |field: Option<&str>, message: String| ManifestError {
        file: file.to_path_buf(),
        field: field.map(str::to_string),
        message,
    };
    let parsed: ManifestFile = serde_yaml::from_str(text).map_err(|e| {
        // serde_yaml prefixes the field path ("app.container: unknown field ...").
        let msg = e.to_string();
        match msg.split_once(": ") {
            Some((path, rest)) if path.starts_with("app") && !path.contains(' ') => {
                err(Some(path), rest.to_string())
            }
            _ => err(None, format!("invalid YAML: {msg}")),
        }
    })?;
    let app = parsed.app;
    if !is_valid_id(&app.id) {
        return Err(err(
            Some("app.id"),
            format!("{:?} is not a valid id ({ID_RULE})", app.id),
        ));
    }
    if app.container.image.trim().is_empty() {
        return Err(err(
            Some("app.container.image"),
            "must not be empty (an image reference such as localhost/bb:1)".into(),
        ));
    }
    if let Some(cmd) = &app.container.command {
        if cmd.is_empty() {
            return Err(err(
                Some("app.container.command"),
                "must not be an empty list (leave it out to use the image's command)".into(),
            ));
        }
    }
    for (i, port) in app.container.ports.iter().enumerate() {
        if parse_port(port).is_none() {
            return Err(err(
                Some(&format!("app.container.ports[{i}]")),
                format!("{port:?} is not a port mapping (allowed: HOST:CONTAINER or IP:HOST:CONTAINER, optional /tcp or /udp)"),
            ));
        }
    }
    for (i, vol) in app.container.volumes.iter().enumerate() {
        if parse_volume(vol).is_none() {
            return Err(err(
                Some(&format!("app.container.volumes[{i}]")),
                format!("{vol:?} is not a volume (allowed: /host/path:/container/path[:options] or name:/container/path[:options])"),
            ));
        }
    }
    for key in app.container.labels.keys() {
        if key == crate::APP_LABEL || key == crate::SPEC_HASH_LABEL {
            return Err(err(
                Some(&format!("app.container.labels.{key}")),
                "is reserved for podkeeper".into(),
            ));
        }
    }
    for (i, c) in app.companions.iter().enumerate() {
        if !is_valid_id(&c.name) {
            return Err(err(
                Some(&format!("app.companions[{i}].name")),
                format!("{:?} is not a valid name ({ID_RULE})", c.name),
            ));
        }
        if app.companions[..i].iter().any(|o| o.name == c.name) {
            return Err(err(
                Some(&format!("app.companions[{i}].name")),
                format!("{:?} is used twice in this app", c.name),
            ));
        }
    }
    Ok(app)
}

/// A parsed `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: Option<String>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// `8080:80`, `127.0.0.1:8080:80`, `8080:80/udp`
pub fn parse_port(s: &str) -> Option<PortMapping> {
    let (body, protocol) = match s.rsplit_once('/') {
        Some((b, p @ ("tcp" | "udp" | "sctp"))) => (b, p.to_string()),
        Some(_) => return None,
        None => (s, "tcp".to_string()),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host, ctr) = match parts.as_slice() {
        [h, c] => (None, h, c),
        [ip, h, c] if !ip.is_empty() => (Some(ip.to_string()), h, c),
        _ => return None,
    };
    Some(PortMapping {
        host_ip,
        host_port: host.parse().ok().filter(|p| *p > 0)?,
        container_port: ctr.parse().ok().filter(|p| *p > 0)?,
        protocol,
    })
}

/// A parsed `volumes` entry: a bind mount when the source is absolute, else a named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: String,
    pub dest: String,
    pub options: Vec<String>,
}

impl VolumeMount {
    pub fn is_bind(&self) -> bool {
        self.source.starts_with('/')
    }
}

pub fn parse_volume(s: &str) -> Option<VolumeMount> {
    let mut parts = s.splitn(3, ':');
    let source = parts.next().filter(|p| !p.is_empty())?;
    let dest = parts.next().filter(|p| p.starts_with('/'))?;
    let options = parts
        .next()
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    if !source.starts_with('/') && !is_valid_volume_name(source) {
        return None;
    }
    Some(VolumeMount {
        source: source.to_string(),
        dest: dest.to_string(),
        options,
    })
}

fn is_valid_volume_name(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Is this file a manifest by its name? (`*.yaml`, `*.yml`, not hidden, not an editor's temp file)
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Read every manifest in `dir`. Errors are collected, never fatal: a bad file
/// is reported and the valid apps keep running. Two files with the same app id
/// (or the same companion name) are both refused.
pub fn load_dir(dir: &Path) -> anyhow::Result<ManifestSet> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read apps directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_manifest_file(p) && p.is_file())
        .collect();
    files.sort();
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse_manifest(&file, &text) {
                Ok(app) => parsed.push((file, app)),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(ManifestError {
                file: file.clone(),
                field: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    Ok(assemble(parsed, errors))
}

/// Build a set from parsed apps, refusing every app involved in a clash.
pub fn assemble(parsed: Vec<(PathBuf, App)>, mut errors: Vec<ManifestError>) -> ManifestSet {
    let mut by_id: HashMap<&str, Vec<&Path>> = HashMap::new();
    let mut by_companion: HashMap<&str, Vec<&Path>> = HashMap::new();
    for (file, app) in &parsed {
        by_id.entry(&app.id).or_default().push(file);
        for c in &app.companions {
            by_companion.entry(&c.name).or_default().push(file);
        }
    }
    let mut refused: Vec<(PathBuf, String, String)> = Vec::new();
    for (file, app) in &parsed {
        let others = |files: &Vec<&Path>| -> String {
            files
                .iter()
                .filter(|f| **f != file.as_path())
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if by_id[app.id.as_str()].len() > 1 {
            refused.push((
                file.clone(),
                "app.id".into(),
                format!(
                    "id {:?} is also declared in {}; both are refused",
                    app.id,
                    others(&by_id[app.id.as_str()])
                ),
            ));
            continue;
        }
        if let Some(c) = app
            .companions
            .iter()
            .find(|c| by_companion[c.name.as_str()].len() > 1)
        {
            refused.push((
                file.clone(),
                "app.companions.name".into(),
                format!(
                    "companion {:?} is also declared in {}; both are refused",
                    c.name,
                    others(&by_companion[c.name.as_str()])
                ),
            ));
        }
    }
    let mut set = ManifestSet::default();
    for (file, field, message) in &refused {
        errors.push(ManifestError {
            file: file.clone(),
            field: Some(field.clone()),
            message: message.clone(),
        });
    }
    for (file, app) in parsed {
        if refused.iter().any(|(f, _, _)| *f == file) {
            continue;
        }
        let spec_hash = app.container.hash();
        set.apps.insert(
            app.id.clone(),
            LoadedApp {
                file,
                app,
                spec_hash,
            },
        );
    }
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    set.errors = errors;
    set
}

/// `version: 1.0` in YAML is a float; accept numbers as version strings.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(Option::<V>::deserialize(d)?.map(|v| match v {
        V::S(s) => s,
        V::I(i) => i.to_string(),
        V::F(f) => f.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<App, ManifestError> {
        parse_manifest(Path::new("apps/x.yaml"), text)
    }

    const GOOD: &str = "app:\n  id: web\n  name: Web\n  version: 1.0.0\n  container:\n    image: localhost/bb:1\n    command: [\"/bin/sleep\", \"1\"]\n    env: {A: b}\n    network: none\n    ports: [\"8080:80\"]\n    volumes: [\"/srv/web:/data\", \"named:/v:ro\"]\n    labels: {k: v}\n";

    #[test]
    fn manifest_should_parse_every_documented_field() {
        let app = parse(GOOD).unwrap();
        assert_eq!(app.id, "web");
        assert_eq!(app.container.command.as_ref().unwrap().len(), 2);
        assert_eq!(app.container.env["A"], "b");
        assert_eq!(app.container.ports, vec!["8080:80"]);
    }

    #[test]
    fn manifest_should_name_the_unknown_field() {
        let e = parse("app:\n  id: web\n  container:\n    image: x\n    imagee: y\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app.container"));
        assert!(e.message.contains("unknown field `imagee`"), "{e}");
        assert!(
            e.to_string().starts_with("apps/x.yaml: app.container: "),
            "{e}"
        );
    }

    #[test]
    fn manifest_should_refuse_bad_ids() {
        for id in ["Web", "-web", "", "a_b", &"a".repeat(64)] {
            let e = parse(&format!(
                "app:\n  id: \"{id}\"\n  container:\n    image: x\n"
            ))
            .unwrap_err();
            assert_eq!(e.field.as_deref(), Some("app.id"), "{id}: {e}");
        }
        assert!(parse(&format!(
            "app:\n  id: {}\n  container:\n    image: x\n",
            "a".repeat(63)
        ))
        .is_ok());
    }

    #[test]
    fn manifest_should_report_bad_yaml_without_field() {
        let e = parse("app:\n  id: web\n   container: x\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        assert!(e.message.contains("line 3"), "{e}");
        let e = parse("app: [\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app"), "{e}");
    }

    #[test]
    fn manifest_should_refuse_missing_image() {
        let e = parse("app:\n  id: web\n  container: {}\n").unwrap_err();
        assert!(e.to_string().contains("image"), "{e}");
    }

    #[test]
    fn spec_hash_should_change_with_the_spec_only() {
        let a = parse(GOOD).unwrap();
        let mut b = a.clone();
        b.name = Some("Other".into());
        assert_eq!(a.container.hash(), b.container.hash());
        b.container.command = Some(vec!["/bin/true".into()]);
        assert_ne!(a.container.hash(), b.container.hash());
        assert_eq!(a.container.hash().len(), 16);
    }

    #[test]
    fn duplicate_ids_should_refuse_both_files_naming_each_other() {
        let app = parse(GOOD).unwrap();
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
    fn ports_and_volumes_should_parse() {
        assert_eq!(parse_port("127.0.0.1:8080:80/udp").unwrap().protocol, "udp");
        assert!(parse_port("80").is_none());
        assert!(parse_port("x:80").is_none());
        assert!(parse_volume("/a:/b").unwrap().is_bind());
        assert!(!parse_volume("data:/b:ro").unwrap().is_bind());
        assert!(parse_volume("data:rel").is_none());
    }

    #[test]
    fn companion_service_names_should_follow_quadlet() {
        let c = |kind| Companion {
            name: "x".into(),
            kind,
            unit: String::new(),
        };
        assert_eq!(c(CompanionKind::Container).service_name(), "x.service");
        assert_eq!(c(CompanionKind::Volume).service_name(), "x-volume.service");
        assert_eq!(c(CompanionKind::Kube).service_name(), "x.service");
        assert_eq!(c(CompanionKind::Build).file_name(), "x.build");
    }
}
