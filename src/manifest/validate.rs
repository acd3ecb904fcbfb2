//! From a manifest's text to a valid [`App`]: bounded YAML first, then serde, then one rule per field, each error naming the field and what is allowed.

use std::path::Path;

use serde::Deserialize;

use super::excerpt::{excerpt, serde_message, EXCERPT_CHARS};
use super::limits::*;
use super::unit::check_unit;
use super::yaml_budget::{self, Budget};
use super::{App, ManifestError};

/// One manifest file: `app:` at the top level, nothing else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    app: App,
}

const BUDGET: Budget = Budget {
    max_depth: MAX_DEPTH,
    max_nodes: MAX_NODES,
    max_bytes: MAX_EXPANDED_BYTES,
};

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

/// A value as an error quotes it: short, escaped, in double quotes.
fn q(s: &str) -> String {
    format!("\"{}\"", excerpt(s, EXCERPT_CHARS))
}

/// Parse and validate one manifest's text. `file` is only used in errors.
/// Costs at most a few times the text's size in memory and time linear in
/// it, whatever the text (see [`yaml_budget`]).
pub fn parse_manifest(file: &Path, text: &str) -> Result<App, ManifestError> {
    let err = |field: Option<&str>, message: String| ManifestError {
        file: file.to_path_buf(),
        field: field.map(str::to_string),
        message,
        stands: None,
    };
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(err(
            None,
            format!(
                "{} bytes (allowed: at most {})",
                text.len(),
                human(MAX_FILE_BYTES)
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(err(
            None,
            "is empty (half-written? allowed: a manifest starting with `app:`)".into(),
        ));
    }
    yaml_budget::check(text, &BUDGET)
        .map_err(|e| err(None, format!("refused before parsing: {e}")))?;
    let parsed: ManifestFile = serde_yaml::from_str(text).map_err(|e| {
        // serde_yaml prefixes the field path ("app.container: unknown field ...").
        let msg = e.to_string();
        match msg.split_once(": ") {
            Some((path, rest)) if path.starts_with("app") && !path.contains(' ') => {
                err(Some(&excerpt(path, 120)), serde_message(rest))
            }
            _ => err(None, format!("invalid YAML: {}", serde_message(&msg))),
        }
    })?;
    let app = parsed.app;
    validate(&app).map_err(|(field, message)| err(Some(&field), message))?;
    Ok(app)
}

/// Every rule on the fields of a parsed app: `(field, what is wrong)`.
fn validate(app: &App) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    if !is_valid_id(&app.id) {
        return fail(
            "app.id",
            format!("{} is not a valid id ({ID_RULE})", q(&app.id)),
        );
    }
    if let Some(name) = &app.name {
        one_line("app.name", name, MAX_NAME_BYTES)?;
    }
    if let Some(version) = &app.version {
        one_line("app.version", version, MAX_VERSION_BYTES)?;
    }
    let c = &app.container;
    if c.image.trim().is_empty() {
        return fail(
            "app.container.image",
            "must not be empty (an image reference such as localhost/bb:1)".into(),
        );
    }
    word("app.container.image", &c.image, MAX_IMAGE_BYTES)?;
    if let Some(cmd) = &c.command {
        if cmd.is_empty() {
            return fail(
                "app.container.command",
                "must not be an empty list (leave it out to use the image's command)".into(),
            );
        }
        count("app.container.command", cmd.len(), MAX_COMMAND_ARGS)?;
        total(
            "app.container.command",
            cmd.iter().map(String::len).sum(),
            MAX_COMMAND_BYTES,
        )?;
        for (i, arg) in cmd.iter().enumerate() {
            no_nul(&format!("app.container.command[{i}]"), arg)?;
        }
    }
    count("app.container.env", c.env.len(), MAX_ENV)?;
    total(
        "app.container.env",
        c.env.iter().map(|(k, v)| k.len() + v.len()).sum(),
        MAX_ENV_BYTES,
    )?;
    for (key, value) in &c.env {
        let field = format!("app.container.env.{}", excerpt(key, EXCERPT_CHARS));
        if key.is_empty() || key.contains(['=', '\0']) || key.chars().any(char::is_whitespace) {
            return fail(
                &field,
                format!(
                    "{} is not a variable name (allowed: no '=', space or NUL)",
                    q(key)
                ),
            );
        }
        no_nul(&field, value)?;
    }
    count("app.container.labels", c.labels.len(), MAX_LABELS)?;
    total(
        "app.container.labels",
        c.labels.iter().map(|(k, v)| k.len() + v.len()).sum(),
        MAX_LABEL_BYTES,
    )?;
    for (key, value) in &c.labels {
        let field = format!("app.container.labels.{}", excerpt(key, EXCERPT_CHARS));
        if key == crate::APP_LABEL || key == crate::SPEC_HASH_LABEL {
            return fail(&field, "is reserved for podkeeper".into());
        }
        if key.is_empty() {
            return fail(&field, "an empty key (allowed: a non-empty key)".into());
        }
        no_nul(&field, key)?;
        no_nul(&field, value)?;
    }
    count("app.container.ports", c.ports.len(), MAX_PORTS)?;
    for (i, port) in c.ports.iter().enumerate() {
        if parse_port(port).is_none() {
            return fail(
                &format!("app.container.ports[{i}]"),
                format!("{} is not a port mapping (allowed: HOST:CONTAINER or IP:HOST:CONTAINER, optional /tcp or /udp)", q(port)),
            );
        }
    }
    count("app.container.volumes", c.volumes.len(), MAX_VOLUMES)?;
    for (i, vol) in c.volumes.iter().enumerate() {
        let field = format!("app.container.volumes[{i}]");
        total(&field, vol.len(), MAX_VOLUME_BYTES)?;
        if vol.contains('\0') || parse_volume(vol).is_none() {
            return fail(
                &field,
                format!("{} is not a volume (allowed: /host/path:/container/path[:options] or name:/container/path[:options])", q(vol)),
            );
        }
        if let Some(v) = parse_volume(vol) {
            super::options::check_volume_options(&v.options).or_else(|m| fail(&field, m))?;
        }
    }
    if let Some(h) = &c.healthcheck {
        h.validate()?;
    }
    options::check_options(app)?;
    count("app.depends_on", app.depends_on.len(), MAX_DEPENDS_ON)?;
    for (i, dep) in app.depends_on.iter().enumerate() {
        if !is_valid_id(&dep.app) {
            return fail(
                &format!("app.depends_on[{i}].app"),
                format!("{} is not a valid app id ({ID_RULE})", q(&dep.app)),
            );
        }
        if app.depends_on[..i].iter().any(|o| o.app == dep.app) {
            return fail(
                &format!("app.depends_on[{i}].app"),
                format!("{} is listed twice", q(&dep.app)),
            );
        }
    }
    if let Some(u) = &app.update {
        u.validate()?;
    }
    count("app.companions", app.companions.len(), MAX_COMPANIONS)?;
    for (i, comp) in app.companions.iter().enumerate() {
        if !is_valid_id(&comp.name) {
            return fail(
                &format!("app.companions[{i}].name"),
                format!("{} is not a valid name ({ID_RULE})", q(&comp.name)),
            );
        }
        if app.companions[..i].iter().any(|o| o.name == comp.name) {
            return fail(
                &format!("app.companions[{i}].name"),
                format!("{} is used twice in this app", q(&comp.name)),
            );
        }
        if let Some(o) = app.companions[..i]
            .iter()
            .find(|o| o.service_name() == comp.service_name())
        {
            return fail(
                &format!("app.companions[{i}].name"),
                format!(
                    "{} and {} would both generate {}",
                    q(&comp.file_name()),
                    q(&o.file_name()),
                    comp.service_name()
                ),
            );
        }
        check_unit(comp.kind, &comp.unit)
            .or_else(|m| fail(&format!("app.companions[{i}].unit"), m))?;
    }
    // Last, once the text is known good: what the host has.
    options::check_on_host(c)
}

fn count(field: &str, n: usize, max: usize) -> Result<(), (String, String)> {
    if n > max {
        return Err((
            field.into(),
            format!("{n} entries (allowed: at most {max})"),
        ));
    }
    Ok(())
}

fn total(field: &str, bytes: usize, max: usize) -> Result<(), (String, String)> {
    if bytes > max {
        return Err((
            field.into(),
            format!("{bytes} bytes (allowed: at most {})", human(max as u64)),
        ));
    }
    Ok(())
}

fn no_nul(field: &str, s: &str) -> Result<(), (String, String)> {
    if s.contains('\0') {
        return Err((field.into(), "contains a NUL byte (allowed: text)".into()));
    }
    Ok(())
}

/// Free text on one line: no control characters (U+0085 is one), no line
/// or paragraph separator (U+2028, U+2029: YAML 1.1 breaks lines there).
fn one_line(field: &str, s: &str, max: usize) -> Result<(), (String, String)> {
    total(field, s.len(), max)?;
    if s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err((
            field.into(),
            format!(
                "{} has control characters or line separators (allowed: one line of text, without control characters, U+2028 or U+2029)",
                q(s)
            ),
        ));
    }
    Ok(())
}

/// A single word: no spaces or control characters.
fn word(field: &str, s: &str, max: usize) -> Result<(), (String, String)> {
    total(field, s.len(), max)?;
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            field.into(),
            format!(
                "{} has spaces or control characters (allowed: one word)",
                q(s)
            ),
        ));
    }
    Ok(())
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

/// `version: 1.0` in YAML is a float; accept numbers as version strings.
pub(super) fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
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

mod options;

#[cfg(test)]
mod tests;
