//! Tests of `validate`.
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
    assert!(e.message.contains("did you mean `image`?"), "{e}");
    assert!(e.message.contains("docs/manifests.md"), "{e}");
    assert!(e.to_string().len() < 160, "{e}");
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
            "is no network name",
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
    let e = parse("app:\n  id: web\n  name: \"a\\nb\"\n  container:\n    image: x\n").unwrap_err();
    assert!(e.message.contains("one line"), "{e}");
    // YAML 1.1 breaks lines there too: an export's comment would end.
    for (field, sep) in [("name", "\\L"), ("version", "\\P"), ("name", "\\N")] {
        let e = parse(&format!(
            "app:\n  id: web\n  {field}: \"a{sep}b\"\n  container:\n    image: x\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some(format!("app.{field}").as_str()),
            "{e}"
        );
        assert!(
            e.message.ends_with("has control characters or line separators (allowed: one line of text, without control characters, U+2028 or U+2029)"),
            "{e}"
        );
    }
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
    let e = with_container("    healthcheck:\n      command: [/bin/true]\n      interval_s: 3\n");
    assert!(e.message.contains("unknown field `interval_s`"), "{e}");
}

#[test]
fn state_and_depends_on_should_only_take_what_is_allowed() {
    let e = parse("app:\n  id: web\n  state: paused\n  container:\n    image: x\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown variant `paused`, expected `running` or `stopped`"),
        "{e}"
    );
    let e = parse("app:\n  id: web\n  container:\n    image: x\n  depends_on:\n    - app: db\n      condition: started\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("expected one of `running`, `healthy`, `completed`"),
        "{e}"
    );
    let e =
        parse("app:\n  id: web\n  restart: sometimes\n  container:\n    image: x\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("app.restart"), "{e}");
    assert!(
        e.message.contains(
            "unknown variant `sometimes`, expected one of `always`, `on-failure`, `never`"
        ),
        "{e}"
    );
    let e = parse("app:\n  id: web\n  container:\n    image: x\n  depends_on:\n    - app: Db\n")
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
