//! `podkeeper record`: subscribe to everything `run` listens to, act on nothing, write it all down as JSON lines ([`super::format`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use super::format::{
    self, ContainerLine, FileLine, HeaderLine, ParamsLine, PodmanLine, Source, StreamLine,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::host::absolute;
use crate::runtime::libpod;
use crate::runtime::podman::default_socket;
use crate::sources::{dir_watch, podman_events};
use crate::trigger::{ChangeKind, FileChange, Trigger};

/// Unit files bigger than this are recorded without their contents.
const MAX_CONTENT: u64 = 1 << 20;

/// Each REST call the recorder makes (version, info, images, containers) must answer within this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// Where to write the recording (JSON lines).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    /// The apps directory to watch (as `run --apps`).
    #[arg(long, value_name = "DIR")]
    pub apps: Option<PathBuf>,
    /// A Quadlet unit directory to watch (repeatable).
    #[arg(long = "unit-dir", value_name = "DIR")]
    pub unit_dirs: Vec<PathBuf>,
    /// Podman API socket [default: as for `run`].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_duration)]
    pub duration: Option<Duration>,
    /// Keep only containers whose name starts with PREFIX (events and the
    /// header's container list): on a podman shared with others, their
    /// containers would otherwise end up in the recording.
    #[arg(long, value_name = "PREFIX")]
    pub name_prefix: Option<String>,
}

/// `podkeeper record`: returns the process exit code.
pub async fn record(args: RecordArgs) -> anyhow::Result<i32> {
    let socket = args.socket.clone().unwrap_or_else(default_socket);
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let header = header(&args, &socket).await?;
    writeln!(out, "{}", serde_json::to_string(&header)?)?;
    out.flush()?;
    let started = Instant::now();

    let (tx, mut rx) = mpsc::channel(crate::sources::CHANNEL_CAPACITY);
    let cancel = CancellationToken::new();
    tokio::spawn(podman_events::run(
        socket.clone(),
        tx.clone(),
        cancel.child_token(),
    ));
    let apps_dir = args.apps.as_deref().map(absolute);
    if let Some(dir) = &apps_dir {
        let w = dir_watch::spawn(
            vec![dir.clone()],
            dir_watch::Watched::AppsDir,
            tx.clone(),
            cancel.child_token(),
        );
        if !w.all_watched() {
            crate::report::eprint_line(&format!("podkeeper: {}", w.describe()));
        }
    }
    let unit_dirs: Vec<PathBuf> = args.unit_dirs.iter().map(|d| absolute(d)).collect();
    if !unit_dirs.is_empty() {
        let w = dir_watch::spawn(
            unit_dirs.clone(),
            dir_watch::Watched::UnitDir,
            tx.clone(),
            cancel.child_token(),
        );
        if !w.all_watched() {
            crate::report::eprint_line(&format!("podkeeper: {}", w.describe()));
        }
    }
    drop(tx);
    crate::report::eprint_line(&format!(
        "podkeeper: recording to {} ({}); Ctrl-C ends it",
        args.out.display(),
        args.duration
            .map_or("until a signal".to_string(), |d| format!(
                "for {}",
                crate::report::secs(d)
            ))
    ));

    let stop = stop_signal(args.duration);
    tokio::pin!(stop);
    let mut lines = 0u64;
    loop {
        let trigger = tokio::select! {
            _ = &mut stop => break,
            t = rx.recv() => match t { Some(t) => t, None => break },
        };
        let t = started.elapsed();
        let Some(line) = encode(t, &trigger, &args, &unit_dirs) else {
            continue;
        };
        // One line per trigger, flushed at once: a killed recorder loses nothing.
        writeln!(out, "{line}")?;
        out.flush()?;
        lines += 1;
    }
    cancel.cancel();
    out.flush()?;
    crate::report::eprint_line(&format!(
        "podkeeper: recorded {lines} lines in {} to {}",
        crate::report::secs(started.elapsed()),
        args.out.display()
    ));
    Ok(0)
}

/// Ends at the first SIGINT/SIGTERM or after `duration`.
async fn stop_signal(duration: Option<Duration>) {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    match crate::sources::signals::StopSignals::install() {
        Ok(mut signals) => tokio::select! {
            _ = signals.recv() => {}
            _ = timer => {}
        },
        Err(e) => {
            // Without handlers only --duration (or a kill) can end it.
            tracing::error!(error = %e, "cannot install signal handlers");
            timer.await;
        }
    }
}

/// The line for one trigger, or `None` when it is filtered out.
fn encode(
    t: Duration,
    trigger: &Trigger,
    args: &RecordArgs,
    unit_dirs: &[PathBuf],
) -> Option<String> {
    let line = match trigger {
        Trigger::Podman(ev) => {
            if let Some(prefix) = &args.name_prefix {
                if !ev.name().starts_with(prefix.as_str()) {
                    return None;
                }
            }
            format::line(t, Source::Podman, ev)
        }
        Trigger::Stream(status) => format::line(t, Source::Stream, &StreamLine::from(status)),
        Trigger::AppsDir(change) => format::line(t, Source::AppsDir, &file_line(change, None)),
        Trigger::UnitDir(change) => {
            let index = unit_dirs.iter().position(|d| *d == change.dir).unwrap_or(0);
            format::line(t, Source::UnitDir, &file_line(change, Some(index)))
        }
        // Not sources `record` subscribes to.
        Trigger::SweepTick
        | Trigger::ContainerExited { .. }
        | Trigger::Reload
        | Trigger::Retry(_) => return None,
    };
    line.ok()
}

/// A file change: path relative to the watched directory, the kind, and the
/// file's contents now (manifests, unit files) so a replay can write them.
/// A rescan carries the contents of every file in the directory.
fn file_line(change: &FileChange, unit_dir: Option<usize>) -> FileLine {
    let mut line = FileLine {
        dir: unit_dir,
        path: change.path.to_string_lossy().into_owned(),
        kind: change.kind,
        content: None,
        files: None,
    };
    let wanted = |p: &Path| unit_dir.is_some() || crate::manifest::is_manifest_file(p);
    match change.kind {
        ChangeKind::Create | ChangeKind::Modify | ChangeKind::RenameTo
            if !change.path.as_os_str().is_empty() && wanted(&change.path) =>
        {
            line.content = read_small(&change.dir, &change.dir.join(&change.path));
        }
        ChangeKind::Rescan => {
            let mut files = BTreeMap::new();
            if let Ok(entries) = std::fs::read_dir(&change.dir) {
                for entry in entries.flatten() {
                    let name = PathBuf::from(entry.file_name());
                    if !wanted(&name) {
                        continue;
                    }
                    if let Some(text) = read_small(&change.dir, &entry.path()) {
                        files.insert(name.to_string_lossy().into_owned(), text);
                    }
                }
            }
            line.files = Some(files);
        }
        _ => {}
    }
    line
}

/// The content of a regular file of `dir` (a symlink only to one inside
/// it), if small: a FIFO is never waited on, and a symlink to a secret
/// elsewhere never ends up in a recording.
fn read_small(dir: &Path, path: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let (target, _) = crate::manifest::read::locate(&dir, path).ok()?;
    let (bytes, _) = crate::manifest::read::read_bounded(&target, MAX_CONTENT).ok()?;
    String::from_utf8(bytes).ok()
}

/// The first line: what was recorded, where, and the world at the start
/// (podkeeper's containers and those of systemd units).
async fn header(args: &RecordArgs, socket: &Path) -> anyhow::Result<HeaderLine> {
    let engine = crate::runtime::engine::discover(socket, CALL_TIMEOUT)
        .await
        .with_context(|| {
            format!(
                "cannot ask the podman at {} for its version",
                socket.display()
            )
        })?;
    let images = get_json(socket, &libpod::path("/images/json")).await?;
    // Labelled containers, and the containers of systemd units (Quadlet's
    // companions): a replay starts their services as running. Two queries,
    // since podman ANDs or ORs several label filters depending on its version.
    let mut containers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for label in [crate::APP_LABEL, crate::reactor::SYSTEMD_UNIT_LABEL] {
        let filters = libpod::urlencode(&json!({ "label": [label] }).to_string());
        let found = get_json(
            socket,
            &libpod::path(&format!("/containers/json?all=true&filters={filters}")),
        )
        .await?;
        for c in found.as_array().into_iter().flatten() {
            if seen.insert(c["Id"].as_str().unwrap_or_default().to_string()) {
                containers.push(c.clone());
            }
        }
    }
    let image_names: Vec<String> = images
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["RepoTags"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let containers: Vec<ContainerLine> = containers
        .into_iter()
        .filter_map(|c| match serde_json::from_value::<ContainerLine>(c) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "record: a container podman listed lacks what a replay needs; left out");
                None
            }
        })
        .filter(|c| match &args.name_prefix {
            Some(prefix) => c.names.first().is_some_and(|n| n.starts_with(prefix.as_str())),
            None => true,
        })
        .collect();
    let now = jiff::Timestamp::now();
    Ok(HeaderLine {
        podkeeper_record: Some(format::FORMAT_VERSION),
        podkeeper_version: Some(env!("CARGO_PKG_VERSION").into()),
        podman: PodmanLine {
            version: Some(engine.version),
            api_version: Some(engine.api_version),
            rootless: Some(engine.rootless),
        },
        started: Some(format!("{now:.3}")),
        started_unix: Some(now.as_second().into()),
        params: ParamsLine {
            socket: Some(socket.display().to_string()),
            apps: args.apps.as_ref().map(|p| p.display().to_string()),
            unit_dirs: args
                .unit_dirs
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            name_prefix: args.name_prefix.clone(),
        },
        images: image_names,
        containers,
    })
}

/// `GET path` on podman's socket, parsed as JSON, within [`CALL_TIMEOUT`].
async fn get_json(socket: &Path, path: &str) -> anyhow::Result<Value> {
    libpod::get_json(socket, path, CALL_TIMEOUT)
        .await
        .with_context(|| format!("GET {path} on {}", socket.display()))
}
