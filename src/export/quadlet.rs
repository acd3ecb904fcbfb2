//! A companion's Quadlet `.container` unit read into a [`Workload`]; every key that does not map, and every other kind, noted with the reason.

use crate::manifest::{parse_port, parse_volume, App, Companion, CompanionKind};

use super::notes::Notes;
use super::workload::{Workload, COMPANION_LABEL, PART_OF_LABEL};

/// One `Key=Value` of a unit file, with its section.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    section: String,
    key: String,
    value: String,
    line: usize,
}

/// systemd's unit syntax: `[Section]`, `Key=Value`, `#`/`;` comments, a
/// trailing backslash continuing the line. Lines that are none of these are
/// returned as errors (systemd would ignore them with a warning).
fn entries(text: &str) -> (Vec<Entry>, Vec<(usize, String)>) {
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    let mut section = String::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (line_no, line) = match pending.take() {
            Some((n, mut acc)) => {
                acc.push(' ');
                acc.push_str(raw.trim());
                (n, acc)
            }
            None => (i + 1, raw.trim().to_string()),
        };
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_suffix('\\') {
            pending = Some((line_no, rest.trim_end().to_string()));
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push(Entry {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                line: line_no,
            });
        } else {
            bad.push((line_no, line));
        }
    }
    if let Some((n, line)) = pending {
        bad.push((n, line));
    }
    (out, bad)
}

/// `%%` becomes `%`; any other specifier (`%h`, `%t`, …) is systemd's to
/// expand at start and is returned so it can be noted.
fn unescape_specifiers(s: &str) -> (String, Vec<String>) {
    let (mut out, mut found) = (String::new(), Vec::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(x) => {
                found.push(format!("%{x}"));
                out.push('%');
                out.push(x);
            }
            None => out.push('%'),
        }
    }
    (out, found)
}

/// The value of `key` in `[section]` of another companion of the same app
/// (`data.volume`'s `VolumeName=`), the last one winning as in systemd.
fn sibling_value(owner: &App, file: &str, section: &str, key: &str) -> Option<String> {
    let c = owner.companions.iter().find(|c| c.file_name() == file)?;
    entries(&c.unit)
        .0
        .into_iter()
        .rev()
        .find(|e| e.section == section && e.key == key)
        .map(|e| e.value)
        .filter(|v| !v.is_empty())
}

/// systemd's booleans.
fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "yes" | "true" | "on")
}

/// Why a Quadlet `[Container]` key has no place in the export.
fn unmapped_reason(key: &str) -> &'static str {
    match key {
        k if k.starts_with("Health") => "health checks are not exported (Kubernetes' equivalent is a livenessProbe; write one by hand)",
        "UserNS" | "UIDMap" | "GIDMap" | "SubUIDMap" | "SubGIDMap" => "user namespace settings: Kubernetes maps users per node (hostUsers), not per container",
        "SeccompProfile" | "ReadOnlyTmpfs" | "Mask" | "Unmask" | "SecurityLabelDisable" | "SecurityLabelType" | "SecurityLabelLevel" | "SecurityLabelFileType" | "SecurityLabelNested" => "security settings: set the container's securityContext by hand",
        "Pod" => "membership of a Quadlet pod: every container is exported as its own pod",
        "Secret" => "podman secrets are not exported: create a Kubernetes Secret and mount it",
        "EnvironmentFile" | "EnvironmentHost" => "read from this host at start: put the variables in Environment=",
        "ExposeHostPort" => "every port of a pod is reachable on the pod network",
        "AutoUpdate" => "podman auto-update has no Kubernetes equivalent",
        "Notify" | "Timezone" | "LogDriver" | "LogOpt" => "a podman runtime setting with no Kubernetes field",
        "Mount" => "only Volume= and Tmpfs= are exported; write the mount as Volume= or by hand",
        "DNSOption" | "DNSSearch" | "IP" | "IP6" => "network settings the pod network decides",
        _ => "no Kubernetes mapping in podkeeper's export",
    }
}

/// Why a whole companion of another kind is not exported.
fn kind_reason(kind: CompanionKind) -> &'static str {
    match kind {
        CompanionKind::Container => "",
        CompanionKind::Volume => "a .volume unit only creates a podman volume: every container that mounts it gets a claim of the volume's name instead",
        CompanionKind::Network => "a cluster has one pod network, not named ones",
        CompanionKind::Pod => "a .pod unit groups containers into a podman pod; each .container is exported as its own pod",
        CompanionKind::Kube => "a .kube unit already plays Kubernetes YAML: use its Yaml= file as it is",
        CompanionKind::Image => "a .image unit pulls an image on this host; a cluster pulls what a pod names",
        CompanionKind::Build => "a .build unit builds an image on this host; a cluster runs only images from a registry: build, push and name it",
    }
}

/// The companion as a workload, or `None` (with notes) when it is not a
/// `.container` or its unit names no image.
pub fn workload(owner: &App, companion: &Companion, notes: &mut Notes) -> Option<Workload> {
    let subject = format!("companion/{}", companion.name);
    if companion.kind != CompanionKind::Container {
        notes.not_exported(&subject, companion.file_name(), kind_reason(companion.kind));
        return None;
    }
    let mut w = Workload {
        subject: subject.clone(),
        name: companion.name.clone(),
        identity: (COMPANION_LABEL.to_string(), companion.name.clone()),
        comments: vec![format!(
            "companion {} of app {}",
            companion.file_name(),
            owner.id
        )],
        ..Workload::default()
    };
    w.labels.insert(PART_OF_LABEL.into(), owner.id.clone());
    let (list, bad) = entries(&companion.unit);
    for (line, text) in bad {
        notes.not_exported(
            &subject,
            format!("line {line}"),
            format!("{text:?} is not KEY=VALUE nor [Section]"),
        );
    }
    let mut other_sections: Vec<(String, Vec<String>)> = Vec::new();
    for e in list {
        if e.section != "Container" {
            match other_sections.iter_mut().find(|(s, _)| *s == e.section) {
                Some((_, keys)) if !keys.contains(&e.key) => keys.push(e.key),
                Some(_) => {}
                None => other_sections.push((e.section, vec![e.key])),
            }
            continue;
        }
        let field = format!("{}={}", e.key, e.value);
        let (value, specifiers) = unescape_specifiers(&e.value);
        if !specifiers.is_empty() {
            notes.note(
                &subject,
                &field,
                format!(
                    "systemd expands {} when it starts the unit; exported as written",
                    specifiers.join(" ")
                ),
            );
        }
        container_key(owner, &mut w, &e.key, &value, &field, notes);
    }
    for (section, keys) in other_sections {
        let why = match section.as_str() {
            "Unit" => "systemd unit settings (description, ordering)",
            "Service" => "systemd service settings: a pod restarts by its restartPolicy (Always)",
            "Install" => "systemd enablement: a cluster runs every pod it is given",
            "Quadlet" => "settings of the Quadlet generator",
            _ => "not a section of a .container unit",
        };
        notes.not_exported(&subject, format!("[{section}] {}", keys.join(" ")), why);
    }
    if w.image.is_empty() {
        notes.not_exported(
            &subject,
            companion.file_name(),
            "its [Container] section names no Image=",
        );
        return None;
    }
    Some(w)
}

/// One `[Container]` key into the workload, or a note saying why not.
fn container_key(
    owner: &App,
    w: &mut Workload,
    key: &str,
    value: &str,
    field: &str,
    notes: &mut Notes,
) {
    let subject = w.subject.clone();
    let words = |notes: &mut Notes| -> Option<Vec<String>> {
        let split = shlex::split(value);
        if split.is_none() {
            notes.not_exported(&subject, field, "unbalanced quotes");
        }
        split
    };
    match key {
        "Image" => match value.rsplit_once('.') {
            Some((unit, ext @ ("image" | "build"))) => {
                let (section, tag) = if ext == "image" { ("Image", "Image") } else { ("Build", "ImageTag") };
                match sibling_value(owner, value, section, tag) {
                    Some(image) => {
                        notes.changed(&subject, field, format!("the image {image} that {value} provides"));
                        w.image = image;
                    }
                    None => notes.not_exported(&subject, field, format!("refers to the Quadlet unit {unit}.{ext}, which this app does not declare with {tag}=")),
                }
            }
            _ => w.image = value.to_string(),
        },
        "Exec" => w.args = words(notes),
        "Entrypoint" => {
            // podman takes a JSON array or one string.
            w.entrypoint = match serde_json::from_str::<Vec<String>>(value) {
                Ok(list) => Some(list),
                Err(_) => Some(vec![value.to_string()]),
            }
        }
        "Environment" | "Label" | "Annotation" => {
            let map = match key {
                "Environment" => &mut w.env,
                "Label" => &mut w.labels,
                _ => &mut w.annotations,
            };
            if value.is_empty() {
                // systemd: an empty assignment resets the list.
                map.clear();
                return;
            }
            for word in words(notes).unwrap_or_default() {
                match word.split_once('=') {
                    Some((k, v)) => {
                        map.insert(k.to_string(), v.to_string());
                    }
                    None => notes.not_exported(&subject, field, format!("{word:?} is not KEY=VALUE")),
                }
            }
        }
        "PublishPort" => match parse_port(value) {
            Some(p) => w.ports.push(p),
            None => notes.not_exported(&subject, field, "only [IP:]HOST:CONTAINER[/PROTOCOL] maps to a hostPort (a random host port or a range does not)"),
        },
        "Volume" => {
            let mut parts = value.splitn(2, ':');
            let source = parts.next().unwrap_or_default();
            let rest = parts.next();
            let Some(rest) = rest else {
                notes.not_exported(&subject, field, "an anonymous volume: podman deletes it with the container (a cluster's nearest is an emptyDir; write one by hand)");
                return;
            };
            let source = match source.strip_suffix(".volume") {
                Some(unit) => {
                    let name = sibling_value(owner, source, "Volume", "VolumeName").unwrap_or_else(|| format!("systemd-{unit}"));
                    notes.changed(&subject, field, format!("{source} is the podman volume {name}: claimed by that name"));
                    name
                }
                None => source.to_string(),
            };
            match parse_volume(&format!("{source}:{rest}")) {
                Some(v) => w.volumes.push(v),
                None => notes.not_exported(&subject, field, "only /host/path:/dest[:options] and name:/dest[:options] map"),
            }
        }
        "ContainerName" => notes.changed(&subject, field, format!("exported as pod and container {0}; podman kube play names the container {0}-{0}", w.name)),
        "Network" => match value.strip_suffix(".network") {
            Some(unit) => {
                let name = sibling_value(owner, value, "Network", "NetworkName").unwrap_or_else(|| format!("systemd-{unit}"));
                w.network = Some(name);
            }
            None => w.network = Some(value.to_string()),
        },
        "WorkingDir" => w.working_dir = Some(value.to_string()),
        // The keys of issue 22's options: the same mapping as a manifest's.
        "User" | "Group" => {
            // Split by hand: a Group= before User= leaves an empty user.
            let current = w.options.user.clone().unwrap_or_default();
            let (u, g) = match current.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (current.as_str(), None),
            };
            let (u, g) = if key == "User" { (value, g) } else { (u, Some(value)) };
            w.options.user = Some(match g {
                Some(g) => format!("{u}:{g}"),
                None => u.to_string(),
            });
        }
        "AddCapability" | "DropCapability" => {
            let list = if key == "AddCapability" { &mut w.options.cap_add } else { &mut w.options.cap_drop };
            list.extend(value.split_whitespace().map(String::from));
        }
        "ReadOnly" => w.options.read_only = is_true(value),
        "NoNewPrivileges" => w.options.no_new_privileges = is_true(value),
        "RunInit" => w.options.init = is_true(value),
        "HostName" => w.options.hostname = Some(value.to_string()),
        "DNS" => w.options.dns.push(value.to_string()),
        "AddHost" => w.options.extra_hosts.push(value.to_string()),
        "AddDevice" => w.options.devices.push(value.to_string()),
        "Tmpfs" => w.options.tmpfs.push(value.to_string()),
        "ShmSize" => w.options.resources.shm_size = Some(value.to_string()),
        "Memory" => w.options.resources.memory = Some(value.to_string()),
        "PidsLimit" => w.options.resources.pids = Some(value.to_string()),
        "StopTimeout" => w.options.stop_timeout = Some(value.to_string()),
        "StopSignal" => w.options.stop_signal = Some(value.to_string()),
        _ => notes.not_exported(&subject, field, unmapped_reason(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;
    use std::path::Path;

    fn app_with(units: &[(&str, &str, &str)]) -> App {
        let mut yaml = String::from(
            "app:\n  id: web\n  container:\n    image: localhost/bb:1\n  companions:\n",
        );
        for (name, kind, unit) in units {
            yaml.push_str(&format!(
                "    - name: {name}\n      kind: {kind}\n      unit: |\n"
            ));
            for l in unit.lines() {
                yaml.push_str(&format!("        {l}\n"));
            }
        }
        parse_manifest(Path::new("apps/web.yaml"), &yaml).unwrap()
    }

    fn export(units: &[(&str, &str, &str)]) -> (Option<Workload>, Notes) {
        let app = app_with(units);
        let mut notes = Notes::default();
        let w = workload(&app, &app.companions[0], &mut notes);
        (w, notes)
    }

    fn fields(notes: &Notes) -> Vec<(String, String)> {
        notes
            .list
            .iter()
            .map(|n| (n.field.clone(), n.why.clone()))
            .collect()
    }

    #[test]
    fn unit_syntax_should_follow_systemd() {
        let (list, bad) = entries("# c\n; c\n[Container]\nImage = x\nExec=/bin/sh -c \\\n  'echo hi'\nnonsense\n[Service]\nRestart=always\n");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].key, "Image");
        assert_eq!(list[0].value, "x");
        assert_eq!(list[1].value, "/bin/sh -c 'echo hi'");
        assert_eq!(list[1].line, 5);
        assert_eq!(list[2].section, "Service");
        assert_eq!(bad, vec![(7, "nonsense".to_string())]);
    }

    #[test]
    fn container_keys_should_map_to_the_workload() {
        let (w, notes) = export(&[(
            "tunnel",
            "container",
            "[Container]\nImage=localhost/bb:1\nExec=/bin/sh -c 'trap \"exit 0\" TERM; sleep 100000 & wait'\nEnvironment=A=b \"C=d e\"\nLabel=tier=edge\nAnnotation=note=x\nPublishPort=127.0.0.1:8080:80\nVolume=/srv:/data:ro\nNetwork=none\nWorkingDir=/tmp\nEntrypoint=[\"/bin/env\"]\n",
        )]);
        let w = w.unwrap();
        assert!(notes.list.is_empty(), "{notes}");
        assert_eq!(w.subject, "companion/tunnel");
        assert_eq!(w.identity, (COMPANION_LABEL.into(), "tunnel".into()));
        assert_eq!(w.image, "localhost/bb:1");
        assert_eq!(
            w.args.unwrap(),
            vec!["/bin/sh", "-c", "trap \"exit 0\" TERM; sleep 100000 & wait"]
        );
        assert_eq!(w.entrypoint.unwrap(), vec!["/bin/env"]);
        assert_eq!(w.env["A"], "b");
        assert_eq!(w.env["C"], "d e");
        assert_eq!(w.labels["tier"], "edge");
        assert_eq!(w.labels[PART_OF_LABEL], "web");
        assert_eq!(w.annotations["note"], "x");
        assert_eq!(w.ports[0].host_port, 8080);
        assert_eq!(w.volumes[0].options, vec!["ro"]);
        assert_eq!(w.network.as_deref(), Some("none"));
        assert_eq!(w.working_dir.as_deref(), Some("/tmp"));
    }

    #[test]
    fn unmapped_keys_and_sections_should_be_noted_never_dropped() {
        let (w, notes) = export(&[(
            "tunnel",
            "container",
            "[Unit]\nDescription=x\n[Container]\nImage=localhost/bb:1\nUserNS=keep-id\nHealthCmd=true\nPublishPort=80\nVolume=/scratch\nFrobnicate=yes\nContainerName=tun\n[Service]\nRestart=always\nTimeoutStartSec=900\n",
        )]);
        assert!(w.is_some());
        let f = fields(&notes);
        let has = |field: &str, why: &str| {
            assert!(
                f.iter().any(|(a, b)| a == field && b.contains(why)),
                "{field}: {why}\n{notes}"
            )
        };
        has("UserNS=keep-id", "hostUsers");
        has("HealthCmd=true", "livenessProbe");
        has("PublishPort=80", "random host port");
        has("Volume=/scratch", "anonymous");
        has("Frobnicate=yes", "no Kubernetes mapping");
        has("ContainerName=tun", "tunnel-tunnel");
        has("[Unit] Description", "systemd unit");
        has("[Service] Restart TimeoutStartSec", "restartPolicy");
        assert_eq!(notes.list.len(), 8, "{notes}");
    }

    #[test]
    fn issue_22_keys_should_map_as_a_manifest_s_fields_do() {
        let (w, notes) = export(&[(
            "tunnel",
            "container",
            "[Container]\nImage=bb\nGroup=1001\nUser=1000\nAddCapability=NET_ADMIN CHOWN\nDropCapability=ALL\nReadOnly=true\nNoNewPrivileges=yes\nRunInit=true\nHostName=t\nDNS=9.9.9.9\nAddHost=db:10.0.0.1\nAddDevice=/dev/fuse\nTmpfs=/tmp\nShmSize=64m\nMemory=1g\nPidsLimit=100\nStopTimeout=30\nStopSignal=SIGINT\n",
        )]);
        assert!(notes.list.is_empty(), "{notes}");
        let o = w.unwrap().options;
        assert_eq!(o.user.as_deref(), Some("1000:1001"));
        assert_eq!(o.cap_add, ["NET_ADMIN", "CHOWN"]);
        assert_eq!(o.cap_drop, ["ALL"]);
        assert!(o.read_only && o.no_new_privileges && o.init);
        assert_eq!(o.hostname.as_deref(), Some("t"));
        assert_eq!(
            (o.dns, o.extra_hosts, o.devices, o.tmpfs),
            (
                vec!["9.9.9.9".to_string()],
                vec!["db:10.0.0.1".to_string()],
                vec!["/dev/fuse".to_string()],
                vec!["/tmp".to_string()]
            )
        );
        assert_eq!(o.resources.shm_size.as_deref(), Some("64m"));
        assert_eq!(o.resources.memory.as_deref(), Some("1g"));
        assert_eq!(o.resources.pids.as_deref(), Some("100"));
        assert_eq!(o.stop_timeout.as_deref(), Some("30"));
        assert_eq!(o.stop_signal.as_deref(), Some("SIGINT"));
    }

    #[test]
    fn other_kinds_should_be_listed_as_not_exported_with_the_reason() {
        for (kind, why) in [
            ("volume", "claim"),
            ("network", "pod network"),
            ("pod", "own pod"),
            ("kube", "Yaml="),
            ("image", "pulls"),
            ("build", "registry"),
        ] {
            let section = format!("[{}{}]\n", kind[..1].to_uppercase(), &kind[1..]);
            let (w, notes) = export(&[("x", kind, &section)]);
            assert!(w.is_none());
            assert_eq!(notes.list.len(), 1);
            assert_eq!(notes.list[0].field, format!("x.{kind}"));
            assert!(notes.list[0].why.contains(why), "{kind}: {notes}");
        }
    }

    #[test]
    fn quadlet_references_should_resolve_to_what_podman_names() {
        let (w, notes) = export(&[
            (
                "tunnel",
                "container",
                "[Container]\nImage=app.build\nVolume=data.volume:/data\nVolume=cache.volume:/cache\nNetwork=lan.network\n",
            ),
            ("data", "volume", "[Volume]\nVolumeName=web-data\n"),
            ("app", "build", "[Build]\nImageTag=localhost/app:2\n"),
        ]);
        let w = w.unwrap();
        assert_eq!(w.image, "localhost/app:2");
        assert_eq!(w.volumes[0].source, "web-data");
        assert_eq!(w.volumes[1].source, "systemd-cache");
        assert_eq!(w.network.as_deref(), Some("systemd-lan"));
        assert_eq!(notes.list.len(), 3, "{notes}");
    }

    #[test]
    fn a_unit_without_image_or_with_bad_quotes_should_be_noted() {
        let (w, notes) = export(&[("x", "container", "[Container]\nExec=sh -c 'oops\n")]);
        assert!(w.is_none());
        let f = fields(&notes);
        assert!(
            f.iter().any(|(_, why)| why == "unbalanced quotes"),
            "{notes}"
        );
        assert!(
            f.iter().any(|(_, why)| why.contains("no Image=")),
            "{notes}"
        );
    }

    #[test]
    fn specifiers_should_be_unescaped_and_noted() {
        assert_eq!(unescape_specifiers("a%%b"), ("a%b".to_string(), vec![]));
        assert_eq!(
            unescape_specifiers("%h/x%"),
            ("%h/x%".to_string(), vec!["%h".to_string()])
        );
        let (w, notes) = export(&[(
            "x",
            "container",
            "[Container]\nImage=bb\nVolume=%h/data:/d\n",
        )]);
        assert!(w.is_some());
        assert!(notes.to_string().contains("systemd expands %h"), "{notes}");
    }
}
