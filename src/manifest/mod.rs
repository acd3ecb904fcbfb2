//! App manifests: the YAML format, its bounds and validation, and the desired state the apps directory declares.
//!
//! * [`validate`]: text → [`App`], every field checked; [`limits`]: every bound;
//!   [`container`]: the `container:` block and its option types;
//!   [`options`]: issue 22's container options parsed, for validation,
//!   the runtime and export alike;
//!   [`yaml_budget`]: the YAML's cost bounded before serde_yaml runs;
//!   [`unit`](mod@unit): what a companion's unit file needs; [`excerpt`]: content
//!   quoted in errors, short and sanitized.
//! * [`read`]: one file read safely (regular files only, bounded, never blocking);
//!   [`secrets`]: the secret files `container.secrets` names, read as strictly.
//! * [`apps_dir`]: the directory as last read, where the last valid
//!   declaration of an invalid file stands.

pub(crate) mod apps_dir;
pub(crate) mod container;
pub(crate) mod depends;
pub mod excerpt;
pub(crate) mod health;
pub(crate) mod limits;
pub mod options;
pub(crate) mod read;
pub mod secrets;
pub(crate) mod unit;
pub mod update;
pub(crate) mod validate;
pub(crate) mod yaml_budget;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use apps_dir::{assemble, AppsDir};
pub use container::{ContainerSpec, Resources, Restart, SecretRef};
pub use depends::{Condition, Dependency, DesiredState};
pub use health::HealthCheck;
pub use secrets::Secrets;
pub use update::UpdatePolicy;
pub use validate::{
    is_valid_id, parse_manifest, parse_port, parse_volume, PortMapping, VolumeMount,
};

/// An app as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// `[a-z0-9][a-z0-9-]{0,62}`; also the container's name.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "validate::string_or_number")]
    pub version: Option<String>,
    pub container: ContainerSpec,
    #[serde(default)]
    pub companions: Vec<Companion>,
    /// Apps that must be running (or healthy) before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// `running` (default) or `stopped`: not in the spec hash, a change
    /// starts or stops the container, never recreates it.
    #[serde(default)]
    pub state: DesiredState,
    /// When an exited container is started again: `always` (default),
    /// `on-failure` (an exit 0 is *completed*), `never` (a one-shot job,
    /// run once per spec). Not in the spec hash.
    #[serde(default)]
    pub restart: Restart,
    /// How a spec change is applied: the new container's gate and the
    /// rollback (issue 23). Not in the spec hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdatePolicy>,
    /// Take over a container of this app's name that podkeeper did not
    /// create (another orchestrator's), if it matches the manifest, without
    /// restarting it (issue 23). Not in the spec hash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

impl App {
    /// `app.update`, or every default.
    pub fn update_policy(&self) -> UpdatePolicy {
        self.update.clone().unwrap_or_default()
    }
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

/// A manifest that could not be used, with the file and field to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    /// The field path (`app.container.image`), when one is to blame.
    pub field: Option<String>,
    pub message: String,
    /// The app whose last valid declaration (from this file) stands meanwhile.
    pub stands: Option<String>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = excerpt::file_name(&self.file.display().to_string());
        match &self.field {
            Some(field) => write!(f, "{file}: {field}: {}", self.message)?,
            None => write!(f, "{file}: {}", self.message)?,
        }
        match &self.stands {
            Some(id) => write!(f, " (app {id} keeps its last valid declaration)"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ManifestError {}

/// A valid app, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedApp {
    pub file: PathBuf,
    pub app: App,
    /// `app.container.hash()`, with the secrets' digests when it has any
    /// ([`secrets::spec_hash`]), computed once.
    pub spec_hash: String,
    /// The values of `container.secrets`, as last validly read.
    pub secrets: Secrets,
}

impl LoadedApp {
    /// The one place the spec hash is computed.
    pub fn new(file: PathBuf, app: App, secrets: Secrets) -> Self {
        let spec_hash = secrets::spec_hash(&app.container, &secrets);
        LoadedApp {
            file,
            app,
            spec_hash,
            secrets,
        }
    }
}

/// A directory entry that is no manifest, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    pub why: String,
}

/// Everything the apps directory declares: the valid apps (and those whose
/// last valid declaration stands), the errors, and the entries skipped.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    pub apps: BTreeMap<String, LoadedApp>,
    pub errors: Vec<ManifestError>,
    pub skipped: Vec<Skipped>,
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

/// Is this file a manifest by its name? (`*.yaml`, `*.yml`, not hidden, not an editor's temp file)
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Read every manifest in `dir` once (`check`, start-up). Errors are
/// collected, never fatal: a bad file is reported and the valid apps keep
/// running. Two files with the same app id (or companion) are both refused.
pub fn load_dir(dir: &Path) -> anyhow::Result<ManifestSet> {
    AppsDir::new(dir).read()
}

/// [`load_dir`] without opening any secret file: what `export` needs (it
/// writes references to secrets, never their content).
pub fn load_declared(dir: &Path) -> anyhow::Result<ManifestSet> {
    AppsDir::without_secrets(dir).read()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hash_should_change_with_the_spec_only() {
        let a = parse_manifest(
            Path::new("x.yaml"),
            "app:\n  id: web\n  name: Web\n  container:\n    image: x\n",
        )
        .unwrap();
        let mut b = a.clone();
        b.name = Some("Other".into());
        assert_eq!(a.container.hash(), b.container.hash());
        b.container.command = Some(vec!["/bin/true".into()]);
        assert_ne!(a.container.hash(), b.container.hash());
        assert_eq!(a.container.hash().len(), 16);
        // A healthcheck edit recreates; the declared state does not.
        let before = b.container.hash();
        b.state = DesiredState::Stopped;
        assert_eq!(b.container.hash(), before);
        b.container.healthcheck = Some(HealthCheck {
            command: vec!["/bin/true".into()],
            interval: Some("10s".into()),
            timeout: None,
            retries: None,
            start_period: None,
        });
        let with = b.container.hash();
        assert_ne!(with, before);
        b.container.healthcheck.as_mut().unwrap().interval = Some("11s".into());
        assert_ne!(b.container.hash(), with);
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

    #[test]
    fn errors_should_print_file_field_and_what_stands() {
        let mut e = ManifestError {
            file: "apps/we\nb.yaml".into(),
            field: Some("app.container".into()),
            message: "unknown field `imag`".into(),
            stands: None,
        };
        assert_eq!(
            e.to_string(),
            "apps/we\\nb.yaml: app.container: unknown field `imag`"
        );
        e.stands = Some("web".into());
        assert!(e
            .to_string()
            .ends_with("`imag` (app web keeps its last valid declaration)"));
    }
}
