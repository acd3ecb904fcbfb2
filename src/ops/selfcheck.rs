//! The start-up self-check: settings that silently defeat an event-driven keeper, each warned about once.
//!
//! podkeeper hears of a dead container through podman's events (and conmon's
//! exit files). Events podman does not keep (`events_logger = "none"`), that
//! journald drops (`MaxLevelStore` below `info`: podman logs them at info),
//! or a podman older than any podkeeper was tested with, leave only the slow
//! sweep. None of this stops `run`: each is one warning, then the keeper
//! carries on with what it has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::report::Reporter;
use crate::runtime::libpod;

/// The oldest podman podkeeper is tested with (scripts/test: 4.3.1).
pub const OLDEST_TESTED: (u32, u32) = (4, 3);

/// journald's level names, by syslog priority.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
/// The priority podman writes its events to the journal at.
const INFO: usize = 6;

/// What the self-check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// podman's version, e.g. `4.3.1`.
    pub version: Option<String>,
    /// podman's `host.eventLogger`: `file`, `journald` or `none`.
    pub events_logger: Option<String>,
    /// journald's `MaxLevelStore` as configured (None: its default, debug).
    pub max_level_store: Option<String>,
    /// The exit directory podkeeper watches, if any.
    pub exit_dir: Option<PathBuf>,
    pub exit_dir_exists: bool,
}

/// One line per setting that defeats an event-driven keeper.
pub fn findings(f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    match f.events_logger.as_deref() {
        Some("none") => out.push(
            "podman's events_logger is \"none\": podman keeps no events, so podkeeper sees a dead container only at the next sweep; set events_logger = \"file\" (or \"journald\") in containers.conf [engine]".to_string(),
        ),
        Some("journald") => {
            if let Some(level) = f.max_level_store.as_deref() {
                match level_priority(level) {
                    Some(p) if p < INFO => out.push(format!(
                        "podman logs events to journald, whose MaxLevelStore={level} drops them (podman writes them at info): set MaxLevelStore=info or higher in journald.conf, or events_logger = \"file\" in containers.conf"
                    )),
                    Some(_) => {}
                    None => out.push(format!(
                        "journald's MaxLevelStore={level} is not a level journald knows; podman's events may not be kept"
                    )),
                }
            }
        }
        _ => {}
    }
    if let Some(v) = f.version.as_deref() {
        match major_minor(v) {
            Some(mm) if mm < OLDEST_TESTED => out.push(format!(
                "podman {v} is older than {}.{}, the oldest podkeeper is tested with: its events may lack what podkeeper relies on",
                OLDEST_TESTED.0, OLDEST_TESTED.1
            )),
            _ => {}
        }
    }
    if let (Some(dir), false) = (&f.exit_dir, f.exit_dir_exists) {
        out.push(format!(
            "the exit directory {} does not exist: exits are seen through the events stream only (check --exit-dir, or podman's tmp_dir)",
            dir.display()
        ));
    }
    out
}

/// `4.3.1` → (4, 3); `5.4.2-dev` → (5, 4).
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split(['.', '-', '+', '~']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A journald level (`info`, `6`, `warning`) as its syslog priority.
pub fn level_priority(level: &str) -> Option<usize> {
    let level = level.trim().to_ascii_lowercase();
    if let Ok(n) = level.parse::<usize>() {
        return (n < LEVELS.len()).then_some(n);
    }
    let level = match level.as_str() {
        "emergency" => "emerg",
        "critical" => "crit",
        "error" => "err",
        "warn" => "warning",
        other => other,
    };
    LEVELS.iter().position(|l| *l == level)
}

/// The `MaxLevelStore=` journald uses: journald.conf, then its drop-ins in
/// name order (a later one wins; /etc's hides /usr/lib's of the same name).
pub fn journald_max_level_store(root: &Path) -> Option<String> {
    let mut files = vec![root.join("etc/systemd/journald.conf")];
    let mut dropins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
    for dir in [
        "usr/lib/systemd/journald.conf.d",
        "run/systemd/journald.conf.d",
        "etc/systemd/journald.conf.d",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().ends_with(".conf") {
                dropins.insert(name, e.path());
            }
        }
    }
    files.extend(dropins.into_values());
    let mut level = None;
    for file in files {
        // At most 1 MiB of each: a huge file is not a journald.conf.
        let mut text = String::new();
        let Ok(f) = std::fs::File::open(&file) else {
            continue;
        };
        if std::io::Read::read_to_string(&mut std::io::Read::take(f, 1 << 20), &mut text).is_err() {
            continue;
        }
        let mut in_journal = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_journal = line == "[Journal]";
            } else if let Some(v) = line.strip_prefix("MaxLevelStore=") {
                if in_journal {
                    level = Some(v.trim().to_string());
                }
            }
        }
    }
    level
}

#[derive(Deserialize)]
struct Info {
    host: InfoHost,
}

#[derive(Deserialize)]
struct InfoHost {
    #[serde(rename = "eventLogger", default)]
    event_logger: String,
}

/// Ask podman for its events logger (one `info`, at start-up only), look at
/// journald and the exit directory, and report: one note when all is well,
/// one warning per finding otherwise.
pub async fn run(
    socket: PathBuf,
    version: Option<String>,
    exit_dir: Option<PathBuf>,
    limit: Duration,
    mut report: Reporter,
) {
    let events_logger = match libpod::get_json::<Info>(&socket, &libpod::path("/info"), limit).await
    {
        Ok(info) => Some(info.host.event_logger),
        Err(e) => {
            report.note(
                "self-check",
                &format!("cannot ask podman for its events logger: {e}"),
                true,
            );
            None
        }
    };
    let max_level_store = match events_logger.as_deref() {
        Some("journald") => journald_max_level_store(Path::new("/")),
        _ => None,
    };
    let facts = Facts {
        exit_dir_exists: exit_dir.as_deref().is_some_and(Path::is_dir),
        version,
        events_logger,
        max_level_store,
        exit_dir,
    };
    let found = findings(&facts);
    for f in &found {
        report.note("self-check", f, true);
    }
    if found.is_empty() {
        report.note(
            "self-check",
            &format!(
                "ok: podman {}, events logger {}{}",
                facts.version.as_deref().unwrap_or("?"),
                facts.events_logger.as_deref().unwrap_or("?"),
                facts
                    .exit_dir
                    .as_deref()
                    .map(|d| format!(", exit directory {}", d.display()))
                    .unwrap_or_default()
            ),
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            version: Some("4.3.1".into()),
            events_logger: Some("file".into()),
            max_level_store: None,
            exit_dir: Some("/run/libpod/exits".into()),
            exit_dir_exists: true,
        }
    }

    #[test]
    fn a_sound_setup_should_have_no_findings() {
        assert!(findings(&facts()).is_empty());
        let f = Facts {
            events_logger: Some("journald".into()),
            max_level_store: Some("info".into()),
            version: Some("5.4.2".into()),
            ..facts()
        };
        assert!(findings(&f).is_empty());
    }

    #[test]
    fn each_setting_that_defeats_events_should_be_named() {
        let none = Facts {
            events_logger: Some("none".into()),
            ..facts()
        };
        assert!(findings(&none)[0].contains("events_logger is \"none\""));
        for level in ["notice", "warning", "3", "ERR"] {
            let f = Facts {
                events_logger: Some("journald".into()),
                max_level_store: Some(level.into()),
                ..facts()
            };
            let found = findings(&f);
            assert_eq!(found.len(), 1, "{level}: {found:?}");
            assert!(
                found[0].contains(&format!("MaxLevelStore={level}")),
                "{found:?}"
            );
        }
        let old = Facts {
            version: Some("4.2.9".into()),
            ..facts()
        };
        assert!(findings(&old)[0].contains("podman 4.2.9 is older than 4.3"));
        let gone = Facts {
            exit_dir_exists: false,
            ..facts()
        };
        assert!(findings(&gone)[0].contains("/run/libpod/exits does not exist"));
    }

    #[test]
    fn journald_drop_ins_should_override_in_name_order() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc/systemd");
        std::fs::create_dir_all(etc.join("journald.conf.d")).unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/systemd/journald.conf.d")).unwrap();
        assert_eq!(journald_max_level_store(root.path()), None);
        std::fs::write(
            etc.join("journald.conf"),
            "[Journal]\n#MaxLevelStore=debug\nMaxLevelStore=debug\n",
        )
        .unwrap();
        assert_eq!(
            journald_max_level_store(root.path()).as_deref(),
            Some("debug")
        );
        std::fs::write(
            root.path()
                .join("usr/lib/systemd/journald.conf.d/10-quiet.conf"),
            "[Journal]\nMaxLevelStore=notice\n",
        )
        .unwrap();
        assert_eq!(
            journald_max_level_store(root.path()).as_deref(),
            Some("notice")
        );
        std::fs::write(
            etc.join("journald.conf.d/20-keep.conf"),
            "[Other]\nMaxLevelStore=err\n[Journal]\nMaxLevelStore=info\n",
        )
        .unwrap();
        assert_eq!(
            journald_max_level_store(root.path()).as_deref(),
            Some("info")
        );
    }

    #[test]
    fn versions_and_levels_should_parse_without_panicking() {
        assert_eq!(major_minor("4.3.1"), Some((4, 3)));
        assert_eq!(major_minor("5.4.2-dev"), Some((5, 4)));
        assert_eq!(major_minor("garbage"), None);
        assert_eq!(level_priority("info"), Some(6));
        assert_eq!(level_priority("7"), Some(7));
        assert_eq!(level_priority("99"), None);
        assert_eq!(level_priority("warn"), Some(4));
    }
}
