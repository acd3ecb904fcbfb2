//! The rules on issue 22's container options: each field parsed with `manifest::options`, bounded, and refused with what is allowed.

use std::collections::BTreeSet;

use super::super::options::{self, NetworkMode};
use super::{count, is_valid_id, no_nul, q, total, ID_RULE};
use crate::manifest::limits::*;
use crate::manifest::{App, ContainerSpec};

type Check = Result<(), (String, String)>;

fn fail(field: impl Into<String>, message: String) -> Check {
    Err((field.into(), message))
}

/// Every rule on the options but the host's (see [`check_on_host`]).
pub(super) fn check_options(app: &App) -> Check {
    let c = &app.container;
    let f = |name: &str| format!("app.container.{name}");
    if let Some(network) = &c.network {
        check_network(&app.id, network)?;
    }
    if let Some(ep) = &c.entrypoint {
        if ep.is_empty() {
            return fail(
                f("entrypoint"),
                "must not be an empty list (leave it out to use the image's entrypoint)".into(),
            );
        }
        count(&f("entrypoint"), ep.len(), MAX_ENTRYPOINT_ARGS)?;
        total(
            &f("entrypoint"),
            ep.iter().map(String::len).sum(),
            MAX_ENTRYPOINT_BYTES,
        )?;
        for (i, arg) in ep.iter().enumerate() {
            no_nul(&format!("app.container.entrypoint[{i}]"), arg)?;
        }
    }
    if let Some(dir) = &c.workdir {
        abs_path(&f("workdir"), dir, "an absolute path such as /data")?;
    }
    if let Some(user) = &c.user {
        total(&f("user"), user.len(), MAX_USER_BYTES)?;
        if options::parse_user(user).is_none() {
            return fail(f("user"), format!("{} is not a user (allowed: uid, uid:gid, name or name:group; letters, digits, '_', '.', '-', no spaces or control characters)", q(user)));
        }
    }
    count(&f("group_add"), c.group_add.len(), MAX_GROUP_ADD)?;
    for (i, g) in c.group_add.iter().enumerate() {
        let field = format!("app.container.group_add[{i}]");
        total(&field, g.len(), MAX_USER_BYTES)?;
        if !options::is_user_name(g) {
            return fail(field, format!("{} is not a group (allowed: a group name or a gid; letters, digits, '_', '.', '-')", q(g)));
        }
    }
    if let Some(h) = &c.hostname {
        if !options::is_hostname(h, MAX_HOSTNAME_BYTES) {
            return fail(f("hostname"), format!("{} is not a host name (allowed: RFC 1123 labels of letters, digits and '-', separated by '.', at most {MAX_HOSTNAME_BYTES} bytes)", q(h)));
        }
    }
    count(&f("dns"), c.dns.len(), MAX_DNS)?;
    for (i, ip) in c.dns.iter().enumerate() {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return fail(
                format!("app.container.dns[{i}]"),
                format!(
                    "{} is not an IP address (allowed: IPv4 or IPv6, e.g. 9.9.9.9)",
                    q(ip)
                ),
            );
        }
    }
    count(&f("extra_hosts"), c.extra_hosts.len(), MAX_EXTRA_HOSTS)?;
    for (i, h) in c.extra_hosts.iter().enumerate() {
        if options::parse_extra_host(h).is_none() {
            return fail(format!("app.container.extra_hosts[{i}]"), format!("{} is not host:ip (allowed: a host name, ':', then an IPv4 or IPv6 address or host-gateway, e.g. db.lan:10.1.2.3)", q(h)));
        }
    }
    count(&f("devices"), c.devices.len(), MAX_DEVICES)?;
    for (i, d) in c.devices.iter().enumerate() {
        if options::parse_device(d).is_none() {
            return fail(format!("app.container.devices[{i}]"), format!("{} is not a device (allowed: /dev/HOST[:/dev/CONTAINER][:PERMISSIONS], permissions a subset of rwm)", q(d)));
        }
    }
    check_caps(c)?;
    count(&f("tmpfs"), c.tmpfs.len(), MAX_TMPFS)?;
    for (i, t) in c.tmpfs.iter().enumerate() {
        let field = format!("app.container.tmpfs[{i}]");
        total(&field, t.len(), MAX_PATH_BYTES)?;
        options::parse_tmpfs(t)
            .map(drop)
            .or_else(|m| fail(&field, format!("{}: {m}", q(t))))?;
    }
    check_resources(c)?;
    count(&f("ulimits"), c.ulimits.len(), MAX_ULIMITS)?;
    for (name, value) in &c.ulimits {
        let field = format!(
            "app.container.ulimits.{}",
            crate::manifest::excerpt::excerpt(name, crate::manifest::excerpt::EXCERPT_CHARS)
        );
        options::parse_ulimit(name, value).map(drop).or_else(|m| {
            if options::ULIMIT_NAMES.contains(&name.as_str()) {
                fail(&field, format!("{} {m}", q(value)))
            } else {
                fail(&field, format!("{} {m}", q(name)))
            }
        })?;
    }
    if let Some(s) = &c.stop_signal {
        if options::parse_signal(s).is_none() {
            return fail(f("stop_signal"), format!("{} is not a signal (allowed: a name with or without SIG such as SIGINT, TERM, RTMIN+3, or a number from 1 to 64)", q(s)));
        }
    }
    if let Some(t) = &c.stop_timeout {
        options::parse_stop_timeout(t)
            .map(drop)
            .or_else(|m| fail(f("stop_timeout"), format!("{} {m}", q(t))))?;
    }
    check_secrets(c)?;
    Ok(())
}

/// `network`: a mode, a podman network name, or `app:<id>` of another app.
fn check_network(id: &str, network: &str) -> Check {
    let field = "app.container.network";
    total(field, network.len(), MAX_NETWORK_BYTES)?;
    match options::parse_network(network) {
        Err(m) => fail(field, format!("{} {m}", q(network))),
        Ok(NetworkMode::App(other)) if !is_valid_id(&other) => fail(
            field,
            format!("{} is not a valid app id ({ID_RULE})", q(&other)),
        ),
        Ok(NetworkMode::App(other)) if other == id => fail(
            field,
            format!(
                "{} is this app itself (allowed: app:<another app's id>)",
                q(network)
            ),
        ),
        Ok(_) => Ok(()),
    }
}

fn check_caps(c: &ContainerSpec) -> Check {
    for (name, list) in [("cap_add", &c.cap_add), ("cap_drop", &c.cap_drop)] {
        count(&format!("app.container.{name}"), list.len(), MAX_CAPS)?;
        for (i, cap) in list.iter().enumerate() {
            if options::parse_capability(cap).is_none() {
                return fail(format!("app.container.{name}[{i}]"), format!("{} is not a Linux capability (allowed: ALL or a name such as NET_BIND_SERVICE or CAP_CHOWN, any case; see capabilities(7))", q(cap)));
            }
        }
    }
    Ok(())
}

fn check_resources(c: &ContainerSpec) -> Check {
    let Some(r) = &c.resources else {
        return Ok(());
    };
    let size_rule = "allowed: bytes, or a number with k, m, g or t, e.g. 512M, 1G, 64k";
    if let Some(m) = &r.memory {
        let field = "app.container.resources.memory";
        match options::parse_size(m) {
            None => return fail(field, format!("{} is not a size ({size_rule})", q(m))),
            Some(b) if b < MIN_MEMORY_BYTES => {
                return fail(
                    field,
                    format!(
                        "{} is below {} (podman refuses less; {size_rule})",
                        q(m),
                        human(MIN_MEMORY_BYTES)
                    ),
                )
            }
            Some(_) => {}
        }
    }
    if let Some(s) = &r.shm_size {
        if options::parse_size(s).is_none_or(|b| b == 0) {
            return fail(
                "app.container.resources.shm_size",
                format!("{} is not a size above zero ({size_rule})", q(s)),
            );
        }
    }
    if let Some(cpus) = &r.cpus {
        let host = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rule = format!("allowed: from {MIN_CPUS} to this host's {host} CPUs, e.g. 1.5");
        let field = "app.container.resources.cpus";
        match cpus.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= MIN_CPUS && n <= host as f64 => {}
            Ok(n) if n.is_finite() && n > host as f64 => {
                return fail(
                    field,
                    format!("{} is more than this host has ({rule})", q(cpus)),
                )
            }
            _ => return fail(field, format!("{} is not a CPU count ({rule})", q(cpus))),
        }
    }
    if let Some(p) = &r.pids {
        if !p.parse::<u64>().is_ok_and(|n| (1..=MAX_PIDS).contains(&n)) {
            return fail(
                "app.container.resources.pids",
                format!("{} is not a process count (allowed: 1 to {MAX_PIDS})", q(p)),
            );
        }
    }
    Ok(())
}

fn check_secrets(c: &ContainerSpec) -> Check {
    count("app.container.secrets", c.secrets.len(), MAX_SECRETS)?;
    let (mut envs, mut targets) = (BTreeSet::new(), BTreeSet::new());
    for (i, s) in c.secrets.iter().enumerate() {
        let field = |name: &str| format!("app.container.secrets[{i}].{name}");
        abs_path(
            &field("file"),
            &s.file,
            "an absolute path to a file only podkeeper's user can read",
        )?;
        match (&s.env, &s.target) {
            (Some(env), None) => {
                if !is_env_name(env) {
                    return fail(field("env"), format!("{} is not a variable name (allowed: a letter or '_', then letters, digits or '_')", q(env)));
                }
                if c.env.contains_key(env) {
                    return fail(
                        field("env"),
                        format!(
                            "{} is also set in app.container.env (allowed: one of the two)",
                            q(env)
                        ),
                    );
                }
                if !envs.insert(env) {
                    return fail(
                        field("env"),
                        format!("{} is given by two secrets", q(env)),
                    );
                }
            }
            (None, Some(target)) => {
                abs_path(&field("target"), target, "an absolute path in the container")?;
                if !targets.insert(target) {
                    return fail(
                        field("target"),
                        format!("{} is given by two secrets", q(target)),
                    );
                }
            }
            _ => {
                return fail(
                    format!("app.container.secrets[{i}]"),
                    "needs exactly one of env and target (allowed: env: NAME for a variable, or target: /path for a file)".into(),
                )
            }
        }
    }
    Ok(())
}

/// POSIX's portable variable names: what every shell can read back.
fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// An absolute path, bounded, without control characters.
fn abs_path(field: &str, s: &str, allowed: &str) -> Check {
    total(field, s.len(), MAX_PATH_BYTES)?;
    if !s.starts_with('/') || s.chars().any(char::is_control) {
        return fail(
            field,
            format!("{} is not an absolute path (allowed: {allowed})", q(s)),
        );
    }
    Ok(())
}

/// The rules that ask the host: each device's host side exists and is a
/// device. Kept apart from the text's rules, since its answer depends on
/// the machine and the moment (a USB stick unplugged).
pub(super) fn check_on_host(c: &ContainerSpec) -> Check {
    for (i, d) in c.devices.iter().enumerate() {
        let Some(d) = options::parse_device(d) else {
            continue; // refused by check_options already
        };
        options::check_device_on_host(&d.host).or_else(|m| {
            fail(
                format!("app.container.devices[{i}]"),
                format!("{} {m}", q(&d.host)),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
