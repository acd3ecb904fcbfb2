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
    if let Some(network) = &c.network {
        word("app.container.network", network, MAX_NETWORK_BYTES)?;
    }
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
    }
    if let Some(h) = &c.healthcheck {
        h.validate()?;
    }
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
    Ok(())
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

/// Free text on one line: no control characters.
fn one_line(field: &str, s: &str, max: usize) -> Result<(), (String, String)> {
    total(field, s.len(), max)?;
    if s.chars().any(char::is_control) {
        return Err((
            field.into(),
            format!(
                "{} has control characters (allowed: one line of text)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<App, ManifestError> {
        parse_manifest(Path::new("apps/x.yaml"), text)
    }

    /// The error of a manifest with `extra` lines under `container:`.
    fn with_container(extra: &str) -> ManifestError {
        parse(&format!(
            "app:\n  id: web\n  container:\n    image: x\n{extra}"
        ))
        .unwrap_err()
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
        let e = with_container("    imagee: y\n");
        assert_eq!(e.field.as_deref(), Some("app.container"));
        assert!(e.message.contains("unknown field `imagee`"), "{e}");
        assert!(e.message.contains("expected one of `image`"), "{e}");
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
    fn an_empty_file_should_say_it_may_be_half_written() {
        for text in ["", "\n  \n"] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains("half-written"), "{e}");
        }
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
    fn every_field_that_reaches_podman_should_be_bounded() {
        let list = |n: usize, item: &str| format!("[{}]", vec![item; n].join(", "));
        let cases = [
            (
                format!("    command: {}\n", list(MAX_COMMAND_ARGS + 1, "a")),
                "app.container.command",
                "at most 1024",
            ),
            (
                format!("    command: [\"{}\"]\n", "a".repeat(MAX_COMMAND_BYTES + 1)),
                "app.container.command",
                "at most 128 KiB",
            ),
            (
                "    command: [\"a\\0b\"]\n".to_string(),
                "app.container.command[0]",
                "NUL",
            ),
            (
                "    env: {\"A=B\": x}\n".to_string(),
                "app.container.env.A=B",
                "not a variable name",
            ),
            (
                format!("    env: {{A: \"{}\"}}\n", "v".repeat(MAX_ENV_BYTES)),
                "app.container.env",
                "at most 128 KiB",
            ),
            (
                format!(
                    "    labels: {{{}}}\n",
                    (0..=MAX_LABELS)
                        .map(|i| format!("k{i}: v"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "app.container.labels",
                "at most 128",
            ),
            (
                format!("    ports: {}\n", list(MAX_PORTS + 1, "\"80:80\"")),
                "app.container.ports",
                "at most 256",
            ),
            (
                format!("    volumes: [\"/a:/{}\"]\n", "b".repeat(MAX_VOLUME_BYTES)),
                "app.container.volumes[0]",
                "at most 4 KiB",
            ),
            (
                "    network: \"a b\"\n".to_string(),
                "app.container.network",
                "one word",
            ),
        ];
        for (extra, field, allowed) in cases {
            let e = with_container(&extra);
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
            assert!(e.message.contains(allowed), "{e}");
        }
        let e = parse(&format!(
            "app:\n  id: web\n  container:\n    image: \"{}\"\n",
            "i".repeat(MAX_IMAGE_BYTES + 1)
        ))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app.container.image"), "{e}");
        let e =
            parse("app:\n  id: web\n  name: \"a\\nb\"\n  container:\n    image: x\n").unwrap_err();
        assert!(e.message.contains("one line"), "{e}");
        let e = parse(&format!(
            "app:\n  id: web\n  version: \"{}\"\n  container:\n    image: x\n",
            "1".repeat(65)
        ))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app.version"), "{e}");
    }

    #[test]
    fn companions_should_be_bounded_and_have_their_section() {
        let companion = |name: &str, kind: &str, unit: &str| {
            format!("    - name: {name}\n      kind: {kind}\n      unit: {unit:?}\n")
        };
        let app = |companions: String| {
            parse(&format!(
                "app:\n  id: web\n  container:\n    image: x\n  companions:\n{companions}"
            ))
        };
        assert!(app(companion("t", "container", "[Container]\nImage=x\n")).is_ok());
        let e = app(companion("t", "container", "")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app.companions[0].unit"), "{e}");
        assert!(e.message.contains("empty"), "{e}");
        let e = app(companion("t", "volume", "[Container]\n")).unwrap_err();
        assert!(e.message.contains("no [Volume] section"), "{e}");
        let e = app(companion("t", "volume", "[Volume]\n")
            + &companion("t-volume", "container", "[Container]\n"))
        .unwrap_err();
        assert!(
            e.message.contains("would both generate t-volume.service"),
            "{e}"
        );
        let many: String = (0..=MAX_COMPANIONS)
            .map(|i| companion(&format!("c{i}"), "volume", "[Volume]\n"))
            .collect();
        let e = app(many).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app.companions"), "{e}");
    }

    #[test]
    fn a_healthcheck_should_parse_with_its_defaults() {
        let app = parse("app:\n  id: web\n  state: stopped\n  container:\n    image: x\n    healthcheck:\n      command: [/bin/sh, -c, \"test -e /ready\"]\n      interval: 10s\n      start_period: 0s\n  depends_on:\n    - app: db\n      condition: healthy\n    - app: cache\n").unwrap();
        let h = app.container.healthcheck.as_ref().unwrap();
        assert_eq!(h.interval(), Duration::from_secs(10));
        assert_eq!(h.timeout(), Duration::from_secs(5));
        assert_eq!(h.retries(), 3);
        assert_eq!(app.state, crate::manifest::DesiredState::Stopped);
        assert_eq!(
            app.depends_on[0].condition,
            crate::manifest::Condition::Healthy
        );
        assert_eq!(
            app.depends_on[1].condition,
            crate::manifest::Condition::Running
        );
    }

    #[test]
    fn healthcheck_durations_that_do_not_parse_or_are_zero_should_be_refused() {
        for (line, field) in [
            ("interval: 10", "interval"),
            ("interval: 0s", "interval"),
            ("timeout: 1.5s", "timeout"),
            ("timeout: 0ms", "timeout"),
            ("start_period: soon", "start_period"),
            ("interval: 25h", "interval"),
        ] {
            let e = with_container(&format!(
                "    healthcheck:\n      command: [/bin/true]\n      {line}\n"
            ));
            assert_eq!(
                e.field.as_deref(),
                Some(format!("app.container.healthcheck.{field}").as_str()),
                "{e}"
            );
            assert!(
                e.message
                    .contains("not a valid duration (allowed: a number with a unit"),
                "{e}"
            );
            assert!(
                e.to_string()
                    .starts_with("apps/x.yaml: app.container.healthcheck."),
                "{e}"
            );
        }
        let e = with_container("    healthcheck:\n      command: []\n");
        assert_eq!(
            e.field.as_deref(),
            Some("app.container.healthcheck.command"),
            "{e}"
        );
        let e = with_container("    healthcheck:\n      command: [/bin/true]\n      retries: 0\n");
        assert_eq!(
            e.field.as_deref(),
            Some("app.container.healthcheck.retries"),
            "{e}"
        );
        let e =
            with_container("    healthcheck:\n      command: [/bin/true]\n      interval_s: 3\n");
        assert!(e.message.contains("unknown field `interval_s`"), "{e}");
    }

    #[test]
    fn state_and_depends_on_should_only_take_what_is_allowed() {
        let e =
            parse("app:\n  id: web\n  state: paused\n  container:\n    image: x\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown variant `paused`, expected `running` or `stopped`"),
            "{e}"
        );
        let e = parse("app:\n  id: web\n  container:\n    image: x\n  depends_on:\n    - app: db\n      condition: started\n").unwrap_err();
        assert!(
            e.to_string().contains("expected `running` or `healthy`"),
            "{e}"
        );
        let e =
            parse("app:\n  id: web\n  container:\n    image: x\n  depends_on:\n    - app: Db\n")
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app.depends_on[0].app"), "{e}");
        let e = parse("app:\n  id: web\n  container:\n    image: x\n  depends_on:\n    - app: db\n    - app: db\n").unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        let e = parse("app:\n  id: web\n  container:\n    image: x\n  depends_on:\n    - app: db\n      when: now\n").unwrap_err();
        assert!(e.message.contains("unknown field `when`"), "{e}");
    }

    #[test]
    fn an_alias_bomb_should_be_refused_before_it_expands() {
        let s = "A".repeat(100_000);
        let text = format!(
            "app:\n  id: bomb\n  container:\n    image: x\n    command: [&s \"{s}\"{}]\n",
            ", *s".repeat(499)
        );
        let e = parse(&text).unwrap_err();
        assert!(
            e.message
                .starts_with("refused before parsing: text values add up to more than 2 MiB"),
            "{e}"
        );
        let e = parse("app: &a\n  id: x\n  container: {image: x, command: *a}\n").unwrap_err();
        assert!(e.message.contains("endless"), "{e}");
    }

    #[test]
    fn deep_nesting_should_be_refused_before_serde_sees_it() {
        let n = 50_000;
        let text = format!(
            "app:\n  id: deep\n  version: {}{}\n  container:\n    image: x\n",
            "[".repeat(n),
            "]".repeat(n)
        );
        let e = parse(&text).unwrap_err();
        assert!(
            e.message
                .contains("nested more than 32 levels deep at line 3"),
            "{e}"
        );
    }

    #[test]
    fn content_should_be_quoted_short_whatever_the_error() {
        let line = "root:$6$rounds=5000$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ:19000:0:99999:7:::";
        for text in [
            format!("{line}\n{line}\n"),
            format!("app:\n  {line}: 1\n"),
            format!("app:\n  id: web\n  container:\n    image: x\n    {line}: 1\n"),
            format!("app:\n  id: \"{line}\"\n  container:\n    image: x\n"),
            format!("app:\n  id: web\n  container:\n    image: x\n    env: {{\"{line}=\": 1}}\n"),
            format!("app:\n  id: web\n  container:\n    image: x\n    ports: [\"{line}\"]\n"),
        ] {
            let e = parse(&text).unwrap_err().to_string();
            assert!(!e.contains("abcdefghijklmnop"), "{e}");
            assert!(e.len() < 400, "{e}");
        }
    }
}
