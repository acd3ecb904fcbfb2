//! `podkeeper export quadlet`: an app as a Quadlet `.container` unit that Quadlet 4.7 and later all accept; what has no key is noted.
//!
//! Quadlet refuses a whole unit over one key it does not know, so a key is
//! written only where Quadlet 4.7 has it; the options whose key came later
//! (`Entrypoint=` 5.0, `GroupAdd=` 5.1, `AddHost=` 5.3, `Memory=` 5.5,
//! `StopTimeout=` 5.0, `StopSignal=` 5.2; CPUs have none) go through
//! `PodmanArgs=`, which every Quadlet passes on as it is. Every value ends
//! up in `ExecStart=`, where systemd expands `%` and `$`: both are doubled.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use crate::manifest::{self, App, Condition, DesiredState, Restart};

use super::notes::{self, Notes};
use super::options::{self as opt, Options};

#[derive(Debug, clap::Args)]
pub struct QuadletArgs {
    /// Directory of app manifests (*.yaml, *.yml).
    #[arg(long, value_name = "DIR")]
    pub apps: PathBuf,
    /// Export only this app (repeatable) [default: every app].
    #[arg(long = "app", value_name = "ID")]
    pub app_ids: Vec<String>,
    /// Write each unit into DIR (atomically; never through a symlink)
    /// instead of to stdout, each after a `# ==> NAME <==` line.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What one export produced.
#[derive(Debug, Default)]
pub struct Export {
    pub files: Vec<UnitFile>,
    pub notes: Notes,
    pub errors: Vec<String>,
    pub apps: usize,
}

/// The unit files of the requested apps (every valid app when none is
/// named), in id order, each app followed by its companions.
pub fn build(set: &manifest::ManifestSet, requested: &[String]) -> Export {
    let mut export = Export::default();
    for id in super::select(set, requested, &mut export.errors) {
        let loaded = &set.apps[id];
        export
            .files
            .extend(files(&loaded.app, &loaded.file, &mut export.notes));
        export.apps += 1;
    }
    export
}

/// `podkeeper export quadlet`: all or nothing, as `export kube`.
pub fn export_quadlet(args: &QuadletArgs) -> anyhow::Result<i32> {
    let set = manifest::load_declared(&args.apps)?;
    let export = build(&set, &args.app_ids);
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{}", export.notes);
    if !export.errors.is_empty() {
        for e in &export.errors {
            let _ = writeln!(stderr, "error  {e}");
        }
        let _ = writeln!(
            stderr,
            "nothing exported: {}",
            super::plural(export.errors.len(), "error")
        );
        return Ok(1);
    }
    let target = match &args.out {
        Some(dir) => {
            for f in &export.files {
                super::write_file(&dir.join(&f.name), f.text.as_bytes())
                    .with_context(|| format!("--out {}", dir.display()))?;
            }
            dir.display().to_string()
        }
        None => {
            let mut text = String::new();
            for f in &export.files {
                let _ = writeln!(text, "# ==> {} <==", f.name);
                text.push_str(&f.text);
            }
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
        "exported {}: {} to {target}; {} not exported, {} changed",
        super::plural(export.apps, "app"),
        super::plural(export.files.len(), "unit file"),
        export.notes.count(notes::Verdict::NotExported),
        export.notes.count(notes::Verdict::Changed),
    );
    Ok(0)
}

/// One file of the export: its name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    pub text: String,
}

/// The app's `.container` unit, then each companion's file as it is.
pub fn files(app: &App, file: &std::path::Path, notes: &mut Notes) -> Vec<UnitFile> {
    let mut out = vec![UnitFile {
        name: format!("{}.container", app.id),
        text: container_unit(app, file, notes),
    }];
    for c in &app.companions {
        out.push(UnitFile {
            name: c.file_name(),
            text: c.unit.clone(),
        });
    }
    out
}

/// A word as systemd and Quadlet read it back: quoted when it holds a space,
/// a quote, a backslash or a control character; `%` and `$` doubled.
pub fn word(s: &str) -> String {
    let mut escaped = String::new();
    let mut quote = s.is_empty();
    for c in s.chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '$' => escaped.push_str("$$"),
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(escaped, "\\u{:04x}", c as u32);
            }
            c => escaped.push(c),
        }
        quote |= c.is_whitespace() || c.is_control() || "\"'\\".contains(c);
    }
    if quote {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

fn words<S: AsRef<str>>(list: &[S]) -> String {
    list.iter()
        .map(|w| word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value Quadlet takes as it is (`Image=`, `Volume=`, `DNS=`, …: it does
/// not unquote them): only `%` and `$` doubled for `ExecStart=`. `None`
/// when it holds a line break or control character no such value can.
pub fn raw(s: &str) -> Option<String> {
    (!s.contains(char::is_control)).then(|| s.replace('%', "%%").replace('$', "$$"))
}

/// `Key=value` lines of one section, in order, and the keys whose value
/// could not be written.
#[derive(Default)]
struct Section(Vec<String>, Vec<String>);

impl Section {
    /// A key whose value is already written as Quadlet reads it.
    fn set(&mut self, key: &str, value: impl AsRef<str>) {
        self.0.push(format!("{key}={}", value.as_ref()));
    }
    /// A key Quadlet reads raw.
    fn raw(&mut self, key: &str, value: &str) {
        match raw(value) {
            Some(v) => self.set(key, v),
            None => self.1.push(format!("{key}={value}")),
        }
    }
    /// A podman option Quadlet 4.7 has no key for.
    fn podman_arg(&mut self, flag: &str, value: &str) {
        self.set("PodmanArgs", word(&format!("{flag}={value}")));
    }
}

fn container_unit(app: &App, file: &std::path::Path, notes: &mut Notes) -> String {
    let s = format!("app/{}", app.id);
    let c = &app.container;
    let o = Options::from_spec(c, app.restart);
    let (mut unit, mut ctr, mut svc) = (Section::default(), Section::default(), Section::default());
    unit.raw("Description", &format!("podkeeper app {}", app.id));
    ctr.raw("Image", &c.image);
    // A fixed name: what `app:<id>` networks and `podman` commands refer to.
    ctr.raw("ContainerName", &app.id);
    if let Some(e) = &c.entrypoint {
        let json = serde_json::to_string(e).unwrap_or_default();
        ctr.podman_arg("--entrypoint", &json);
    }
    if let Some(cmd) = &c.command {
        ctr.set("Exec", words(cmd));
    }
    if let Some(d) = &c.workdir {
        ctr.raw("WorkingDir", d);
    }
    for (k, v) in &c.env {
        ctr.set("Environment", word(&format!("{k}={v}")));
    }
    for (k, v) in &c.labels {
        ctr.set("Label", word(&format!("{k}={v}")));
    }
    network(app, &s, &mut unit, &mut ctr, notes);
    for p in &c.ports {
        ctr.raw("PublishPort", p);
    }
    for v in &c.volumes {
        ctr.raw("Volume", v);
    }
    if let Some(h) = &c.healthcheck {
        ctr.raw(
            "HealthCmd",
            &serde_json::to_string(&h.command).unwrap_or_default(),
        );
        for (key, value) in [
            ("HealthInterval", &h.interval),
            ("HealthTimeout", &h.timeout),
            ("HealthStartPeriod", &h.start_period),
        ] {
            if let Some(v) = value {
                ctr.raw(key, v);
            }
        }
        if let Some(r) = h.retries {
            ctr.set("HealthRetries", r.to_string());
        }
    }
    options(&o, &s, &mut ctr, notes);
    for dep in &app.depends_on {
        let service = format!("{}.service", dep.app);
        unit.raw("Requires", &service);
        unit.raw("After", &service);
        if dep.condition == Condition::Healthy {
            notes.note(&s, format!("depends_on {} (healthy)", dep.app), format!("After= waits for {service} to start; it waits for healthy when that unit has Notify=healthy (Quadlet 5.0 and later)"));
        }
    }
    // The restart policy; a one-shot app is a oneshot service, active once
    // it has completed, so units that require it start after it.
    svc.set(
        "Restart",
        match o.restart {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "no",
        },
    );
    if o.restart != Restart::Always {
        svc.set("Type", "oneshot");
        svc.set("RemainAfterExit", "yes");
    }
    if let Some(secs) = o.stop_timeout.as_deref().and_then(opt::timeout_secs) {
        // systemd's own stop timeout (90 s) must outlast podman's.
        svc.set("TimeoutStopSec", (secs + 30).to_string());
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# app {}, from {}: written by `podkeeper export quadlet` for Quadlet 4.7 and later",
        app.id,
        file.display()
    );
    for (name, section) in [("Unit", &unit), ("Container", &ctr), ("Service", &svc)] {
        let _ = writeln!(text, "\n[{name}]");
        for l in &section.0 {
            let _ = writeln!(text, "{l}");
        }
    }
    for bad in unit.1.iter().chain(&ctr.1) {
        notes.not_exported(
            &s,
            bad,
            "a line break or control character: Quadlet takes this value as it is",
        );
    }
    if app.state == DesiredState::Stopped {
        notes.changed(
            &s,
            "state: stopped",
            "no [Install] section: the unit is not started at boot (start it with systemctl start)",
        );
    } else {
        text.push_str("\n[Install]\nWantedBy=default.target\n");
    }
    // One printable line per comment: the id and file name came from outside.
    let first = text.find('\n').unwrap_or(0);
    let head = crate::manifest::excerpt::escape(&text[..first]);
    format!("{head}{}", &text[first..])
}

/// `network`: a podman mode or a named network as it is; `app:<id>` that
/// app's container's namespace, started after it.
fn network(app: &App, s: &str, unit: &mut Section, ctr: &mut Section, notes: &mut Notes) {
    let Some(net) = app.container.network.as_deref() else {
        return;
    };
    match net.strip_prefix("app:") {
        Some(other) => {
            ctr.raw("Network", &format!("container:{other}"));
            let service = format!("{other}.service");
            unit.raw("Requires", &service);
            unit.raw("After", &service);
            notes.changed(s, format!("network: {net}"), format!("Network=container:{other}: the container of {other}.container (exported with ContainerName={other}), started after it"));
        }
        None => {
            ctr.raw("Network", net);
            if !matches!(
                net,
                "none" | "host" | "bridge" | "private" | "slirp4netns" | "pasta"
            ) {
                notes.note(s, format!("network: {net}"), format!("the podman network {net} must exist: `podman network create {net}` or a {net}.network unit (then Network={net}.network)"));
            }
        }
    }
}

/// Issue 22's options as keys (or `PodmanArgs=`), secrets as references.
fn options(o: &Options, s: &str, ctr: &mut Section, notes: &mut Notes) {
    if let Some(user) = &o.user {
        let (u, g) = opt::split_user(user);
        ctr.raw("User", u);
        if let Some(g) = g {
            ctr.raw("Group", g);
        }
    }
    for g in &o.group_add {
        ctr.podman_arg("--group-add", g);
    }
    if o.init {
        ctr.set("RunInit", "true");
    }
    if let Some(h) = &o.hostname {
        ctr.raw("HostName", h);
    }
    for d in &o.dns {
        ctr.raw("DNS", d);
    }
    for h in &o.extra_hosts {
        ctr.podman_arg("--add-host", h);
    }
    for d in &o.devices {
        ctr.raw("AddDevice", d);
    }
    for cap in &o.cap_add {
        ctr.raw("AddCapability", cap);
    }
    for cap in &o.cap_drop {
        ctr.raw("DropCapability", cap);
    }
    if o.read_only {
        ctr.set("ReadOnly", "true");
    }
    for t in &o.tmpfs {
        ctr.raw("Tmpfs", t);
    }
    if o.no_new_privileges {
        ctr.set("NoNewPrivileges", "true");
    }
    let r = &o.resources;
    if let Some(m) = &r.memory {
        ctr.podman_arg("--memory", m);
    }
    if let Some(c) = &r.cpus {
        ctr.podman_arg("--cpus", c);
    }
    if let Some(p) = &r.pids {
        ctr.raw("PidsLimit", p);
    }
    if let Some(shm) = &r.shm_size {
        ctr.raw("ShmSize", shm);
    }
    for (name, value) in &o.ulimits {
        ctr.raw("Ulimit", &format!("{name}={value}"));
    }
    if let Some(t) = &o.stop_timeout {
        match opt::timeout_secs(t) {
            Some(secs) => ctr.podman_arg("--stop-timeout", &secs.to_string()),
            None => notes.not_exported(s, format!("stop_timeout: {t}"), "not a duration"),
        }
    }
    if let Some(sig) = &o.stop_signal {
        ctr.podman_arg("--stop-signal", sig);
    }
    let app = s.trim_start_matches("app/");
    let mut used = Default::default();
    let mut noted: Vec<String> = Vec::new();
    for (i, sec) in o.secrets.iter().enumerate() {
        let (name, _) = opt::secret_name(app, &sec.file, i, &mut used);
        if let Some(var) = &sec.env {
            ctr.set("Secret", word(&format!("{name},type=env,target={var}")));
        }
        if let Some(target) = &sec.target {
            ctr.set(
                "Secret",
                word(&format!("{name},type=mount,target={target}")),
            );
        }
        // One note per podman secret, however many entries use its file.
        if noted.contains(&name) {
            continue;
        }
        noted.push(name.clone());
        notes.note(
            s,
            format!("secrets {}", sec.file),
            format!("a reference to the podman secret {name}, content not exported: create it with `podman secret create {name} {}`", sec.file),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_should_read_back_as_systemd_splits_them() {
        assert_eq!(word("plain"), "plain");
        assert_eq!(word("two words"), "\"two words\"");
        assert_eq!(word(""), "\"\"");
        assert_eq!(word("50%"), "50%%");
        assert_eq!(word("$HOME"), "$$HOME");
        assert_eq!(word("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(word("l1\nl2"), "\"l1\\nl2\"");
        assert_eq!(words(&["sh", "-c", "echo hi"]), "sh -c \"echo hi\"");
    }
}
