//! Issue 22's container options and restart policy as the exports read them, with the small parsers both targets share (sizes, CPUs, durations, `user`).
//!
//! The parsers are the manifest's own (`crate::manifest::options`), which
//! validated these fields; a value they cannot read is noted by the caller,
//! never a panic, and nothing here reads a secret file.

use std::collections::BTreeMap;

use crate::manifest::{ContainerSpec, Resources, Restart, SecretRef};

/// Everything of `app.container` added by issue 22, plus `app.restart`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub user: Option<String>,
    pub group_add: Vec<String>,
    pub init: bool,
    pub hostname: Option<String>,
    pub dns: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub devices: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    pub tmpfs: Vec<String>,
    pub no_new_privileges: bool,
    pub resources: Resources,
    pub ulimits: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<String>,
    /// References only: the files are never opened by an export.
    pub secrets: Vec<SecretRef>,
    pub restart: Restart,
}

impl Options {
    pub fn from_spec(c: &ContainerSpec, restart: Restart) -> Self {
        Options {
            user: c.user.clone(),
            group_add: c.group_add.clone(),
            init: c.init,
            hostname: c.hostname.clone(),
            dns: c.dns.clone(),
            extra_hosts: c.extra_hosts.clone(),
            devices: c.devices.clone(),
            cap_add: c.cap_add.clone(),
            cap_drop: c.cap_drop.clone(),
            read_only: c.read_only,
            tmpfs: c.tmpfs.clone(),
            no_new_privileges: c.no_new_privileges,
            resources: c.resources.clone().unwrap_or_default(),
            ulimits: c.ulimits.clone(),
            stop_signal: c.stop_signal.clone(),
            stop_timeout: c.stop_timeout.clone(),
            secrets: c.secrets.clone(),
            restart,
        }
    }
}

/// podman's size (`512M`, `64m`, `1.5GiB`, `1048576`): the manifest's own parser.
pub fn size_bytes(text: &str) -> Option<u64> {
    crate::manifest::options::parse_size(text)
}

/// Bytes as a Kubernetes quantity in the largest binary unit that divides
/// them (`536870912` → `512Mi`): exact, and what a person would write.
pub fn quantity(bytes: u64) -> String {
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// `1.5` CPUs → 1500 millicores (at least 1); `None` for what does not parse.
pub fn millicpus(text: &str) -> Option<u64> {
    let nano = crate::manifest::options::parse_cpus(text)?;
    Some(nano.div_ceil(1_000_000).max(1))
}

/// `stop_timeout` in whole seconds, as the manifest reads it (`2m`, `30s`, `45`).
pub fn timeout_secs(text: &str) -> Option<u64> {
    crate::manifest::options::parse_stop_timeout(text)
        .ok()
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// `user` split into user and group, each a number or a name.
pub fn split_user(user: &str) -> (&str, Option<&str>) {
    crate::manifest::options::parse_user(user).unwrap_or((user, None))
}

/// A capability as Kubernetes writes it: upper case, without `CAP_`.
pub fn kube_capability(cap: &str) -> String {
    let up = crate::manifest::options::parse_capability(cap)
        .unwrap_or_else(|| cap.trim().to_ascii_uppercase());
    up.strip_prefix("CAP_").unwrap_or(&up).to_string()
}

/// `/run:size=64m,mode=1777` → (`/run`, [`size=64m`, `mode=1777`]).
pub fn split_tmpfs(entry: &str) -> (&str, Vec<&str>) {
    match entry.split_once(':') {
        Some((path, opts)) => (path, opts.split(',').filter(|o| !o.is_empty()).collect()),
        None => (entry, Vec::new()),
    }
}

/// `db.lan:10.1.2.3` → (`db.lan`, `10.1.2.3`), as the manifest reads it.
pub fn split_host(entry: &str) -> Option<(&str, &str)> {
    crate::manifest::options::parse_extra_host(entry)
}

/// The last path component of a secret file (`/etc/s/db-pass` → `db-pass`).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').find(|p| !p.is_empty()).unwrap_or(path)
}

/// `<workload>-<file name>` as a DNS-1123 name, and the file name as a key
/// (`[-._a-zA-Z0-9]`); a name two files would share gets the entry's index.
pub fn secret_name(
    workload: &str,
    file: &str,
    index: usize,
    used: &mut BTreeMap<String, String>,
) -> (String, String) {
    let base = file_name(file);
    let key: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let key = if key.is_empty() || key == "." || key == ".." {
        "value".to_string()
    } else {
        key
    };
    let mut name = super::names::to_dns1123_subdomain(&format!("{workload}-{base}"))
        .unwrap_or_else(|| format!("{workload}-secret-{index}"));
    if used.get(&name).is_some_and(|f| f != file) {
        name = format!("{name}-{index}");
    }
    used.insert(name.clone(), file.to_string());
    (name, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_should_read_as_podman_reads_them() {
        assert_eq!(size_bytes("512M"), Some(512 << 20));
        assert_eq!(size_bytes("64m"), Some(64 << 20));
        assert_eq!(size_bytes("1g"), Some(1 << 30));
        assert_eq!(size_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(size_bytes("1048576"), Some(1 << 20));
        assert_eq!(size_bytes("100kb"), Some(100 << 10));
        for bad in ["", "M", "1x", "1.2.3", "-1", "99999999999999999999", "1.5Q"] {
            assert_eq!(size_bytes(bad), None, "{bad}");
        }
        assert_eq!(size_bytes("99999999999P"), None, "overflow");
        assert_eq!(quantity(512 << 20), "512Mi");
        assert_eq!(quantity(3 << 29), "1536Mi");
        assert_eq!(quantity(1 << 30), "1Gi");
        assert_eq!(quantity(1000), "1000");
    }

    #[test]
    fn cpus_durations_users_and_capabilities_should_parse() {
        assert_eq!(millicpus("1.5"), Some(1500));
        assert_eq!(millicpus("0.0001"), Some(1));
        assert_eq!(millicpus("0"), None);
        assert_eq!(millicpus("NaN"), None);
        assert_eq!(timeout_secs("2m"), Some(120));
        assert_eq!(timeout_secs("45"), Some(45));
        assert_eq!(timeout_secs("1500ms"), None, "whole seconds only");
        assert_eq!(timeout_secs("soon"), None);
        assert_eq!(split_user("1000:100"), ("1000", Some("100")));
        assert_eq!(split_user("postgres"), ("postgres", None));
        assert_eq!(kube_capability("cap_net_admin"), "NET_ADMIN");
        assert_eq!(kube_capability("ALL"), "ALL");
        assert_eq!(
            split_tmpfs("/run:size=64m,mode=1777"),
            ("/run", vec!["size=64m", "mode=1777"])
        );
        assert_eq!(split_host("h:fd00::1"), Some(("h", "fd00::1")));
        assert_eq!(split_host("nohost"), None);
        assert_eq!(file_name("/etc/s/db-pass"), "db-pass");
    }
}
