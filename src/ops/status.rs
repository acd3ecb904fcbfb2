//! `podkeeper status` and `podkeeper metrics`: ask the running daemon through its control socket and print the answer for people (or JSON).

use std::path::PathBuf;

use jiff::{tz::TimeZone, Timestamp, Zoned};

use super::client::{ask, AskError};
use super::state::{LastReaction, Status};

/// Exit code when no daemon answers: LSB's "program is not running", as
/// `systemctl status` uses it.
pub const NOT_RUNNING: i32 = 3;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The daemon's control socket [default: /run/podkeeper/control.sock for
    /// root, else $XDG_RUNTIME_DIR/podkeeper/control.sock].
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Print the status as one JSON object (`apps`, `companions`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// The daemon's control socket (as for `status`).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The app (its id) whose update failed its gate.
    #[arg(value_name = "APP")]
    pub app: String,
    /// The daemon's control socket (as for `status`).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
}

fn socket(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone().unwrap_or_else(super::control::default_path)
}

fn fail(e: AskError) -> i32 {
    eprintln!("podkeeper: {e}");
    match e {
        AskError::NotRunning(_) => NOT_RUNNING,
        AskError::Busy(_) | AskError::Other(_) => 1,
    }
}

/// `podkeeper status`: returns the exit code.
pub async fn status(args: &StatusArgs) -> anyhow::Result<i32> {
    let reply = match ask(&socket(&args.control_socket), "status").await {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
    let status: Status = match serde_json::from_str(&reply) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("podkeeper: the daemon's answer is not a status: {e}");
            return Ok(1);
        }
    };
    if args.json {
        crate::report::print_text(&(serde_json::to_string_pretty(&status)? + "\n"));
    } else {
        crate::report::print_text(&table(&status));
    }
    Ok(0)
}

/// `podkeeper metrics`: returns the exit code.
pub async fn metrics(args: &MetricsArgs) -> anyhow::Result<i32> {
    match ask(&socket(&args.control_socket), "metrics").await {
        Ok(text) => {
            crate::report::print_text(&text);
            Ok(0)
        }
        Err(e) => Ok(fail(e)),
    }
}

/// `podkeeper retry APP`: returns the exit code.
pub async fn retry(args: &RetryArgs) -> anyhow::Result<i32> {
    if args.app.contains(char::is_whitespace) || args.app.is_empty() {
        eprintln!("podkeeper: retry: {:?} is not an app id", args.app);
        return Ok(2);
    }
    match ask(
        &socket(&args.control_socket),
        &format!("retry {}", args.app),
    )
    .await
    {
        Ok(text) => {
            crate::report::print_text(&text);
            Ok(0)
        }
        Err(e) => Ok(fail(e)),
    }
}

/// `14:03:07` for today, `2026-11-30 14:03:07` before.
fn local(at: &str) -> String {
    let Ok(t) = at.parse::<Timestamp>() else {
        return at.to_string();
    };
    let t = t.to_zoned(TimeZone::system());
    if t.date() == Zoned::now().date() {
        t.strftime("%H:%M:%S").to_string()
    } else {
        t.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

fn last(r: &Option<LastReaction>) -> String {
    match r {
        None => "-".into(),
        Some(r) => {
            let result = if r.result == "ok" { "" } else { " FAILED" };
            format!("{} {}{result}", local(&r.at), r.action)
        }
    }
}

/// The time left until an RFC 3339 instant (`0s` once over).
fn left(at: &str) -> String {
    match at.parse::<Timestamp>() {
        Ok(t) => super::state::updates::left(t, Timestamp::now()),
        Err(_) => at.to_string(),
    }
}

/// Each rolled-back app in full: the spec that failed, when, why, and its
/// log's tail, indented.
fn rolled_back(s: &Status) -> String {
    let mut out = String::new();
    for a in &s.apps {
        let Some(u) = a.update.as_ref().filter(|u| u.state == "rolled back") else {
            continue;
        };
        out.push_str(&format!(
            "\n{} rolled back at {}: spec {} {}{}\n",
            a.id,
            u.at.as_deref().map_or("-".into(), local),
            super::state::updates::short(&u.spec_hash),
            u.why.as_deref().unwrap_or("failed its gate"),
            match u.exit_code {
                Some(code) if !u.why.as_deref().unwrap_or("").contains("code") => {
                    format!(" (exit code {code})")
                }
                _ => String::new(),
            }
        ));
        let tail = u.log_tail.as_deref().unwrap_or("").trim_end();
        if tail.is_empty() {
            out.push_str("    (its log said nothing)\n");
        }
        for line in tail.lines() {
            // A terminal's control characters are shown, not obeyed.
            let line: String = line
                .chars()
                .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
                .collect();
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str(&format!(
            "    not tried again until its manifest changes, or `podkeeper retry {}`\n",
            a.id
        ));
    }
    out
}

/// Columns padded to their widest cell; the last one as it is.
fn aligned(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The people's view: a header line, then apps, then companions.
pub fn table(s: &Status) -> String {
    let mut out = format!(
        "podkeeper {} (pid {}), up since {}, last sweep {}{}\n",
        s.version,
        s.pid,
        s.started.as_deref().map_or("-".into(), local),
        s.last_sweep.as_deref().map_or("not yet".into(), local),
        match &s.podman_error {
            Some(e) => format!("; podman: {e}"),
            None => String::new(),
        }
    );
    if s.reconcile_panics > 0 {
        out.push_str(&format!(
            "{} reconcile(s) panicked (settled as failed and retried; see the log)\n",
            s.reconcile_panics
        ));
    }
    let ok = s.apps.iter().filter(|a| a.why.is_none()).count();
    out.push_str(&format!("\n{ok}/{} apps as declared\n", s.apps.len()));
    let mut rows = vec![[
        "APP",
        "STATE",
        "CONTAINER",
        "RESTARTS",
        "HEALTH",
        "LAST REACTION",
        "WHY",
    ]
    .map(String::from)
    .to_vec()];
    for a in &s.apps {
        let mut state = if a.declared == "stopped" {
            format!("{} (declared stopped)", a.state)
        } else {
            a.state.clone()
        };
        match &a.update {
            Some(u) if u.state == "updating" => {
                state = match u.gate_ends.as_deref().map(left) {
                    Some(l) => format!("updating ({l} left)"),
                    None => "updating".into(),
                };
            }
            Some(u) if a.state == "running" => state = u.state.clone(),
            Some(u) => state = format!("{state}, {}", u.state),
            None => {}
        }
        let mut why = a
            .why
            .as_deref()
            .map_or("-".into(), |w| crate::manifest::excerpt::excerpt(w, 90));
        if let (Some(t), Some(_)) = (&a.backoff_until, &a.why) {
            if !why.contains("not before") {
                why.push_str(&format!(" (held until {})", local(t)));
            }
        }
        rows.push(vec![
            a.id.clone(),
            state,
            a.container
                .as_deref()
                .map_or("-".into(), |c| c.chars().take(12).collect()),
            a.restarts.to_string(),
            a.health.clone().unwrap_or_else(|| "-".into()),
            last(&a.last_reaction),
            why,
        ]);
    }
    out.push_str(&aligned(&rows));
    out.push_str(&rolled_back(s));
    if !s.companions.is_empty() {
        let ok = s.companions.iter().filter(|c| c.why.is_none()).count();
        out.push_str(&format!(
            "\n{ok}/{} companions as declared\n",
            s.companions.len()
        ));
        let mut rows = vec![
            ["COMPANION", "APP", "KIND", "STATE", "LAST REACTION", "WHY"]
                .map(String::from)
                .to_vec(),
        ];
        for c in &s.companions {
            let mut why = c.why.clone().unwrap_or_else(|| "-".into());
            if let Some(t) = &c.backoff_until {
                why.push_str(&format!(" (retry at {})", local(t)));
            }
            rows.push(vec![
                c.name.clone(),
                c.app.clone(),
                c.kind.clone(),
                c.state.clone(),
                last(&c.last_reaction),
                why,
            ]);
        }
        out.push_str(&aligned(&rows));
    }
    out
}
