//! The container options of issue 22 parsed from their manifest text, in one place: validation checks with these, the runtime and export map what they return.
//!
//! Each parser is total and bounded (never panics, work linear in its input).
//! Validation (`validate/options.rs`) calls them and words the error; the
//! runtime and export call them on a validated spec, so what reaches podman
//! is exactly what was checked. Accepted forms follow podman's own parsers
//! (named in each function), and never go wider.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::limits::{MAX_STOP_TIMEOUT, MIN_MEMORY_BYTES};

/// `container.network`, as podman's `--network` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Host,
    Bridge,
    Slirp4netns,
    Pasta,
    Private,
    /// A podman network by name (`podman network create NAME`).
    Named(String),
    /// `app:<id>`: another app's network namespace (`container:<id>` for podman).
    App(String),
}

/// podman's network name rule (libnetwork's `NameRegex`).
pub fn is_network_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= super::limits::MAX_NETWORK_BYTES
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `none`, `host`, … or a network name, or `app:<id>` (the id is not
/// checked here: validation does it, with the app's own id).
pub fn parse_network(s: &str) -> Result<NetworkMode, String> {
    Ok(match s {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        "bridge" => NetworkMode::Bridge,
        "slirp4netns" => NetworkMode::Slirp4netns,
        "pasta" => NetworkMode::Pasta,
        "private" => NetworkMode::Private,
        _ => {
            if let Some(id) = s.strip_prefix("app:") {
                return Ok(NetworkMode::App(id.to_string()));
            }
            if s.starts_with("container:") || s.starts_with("ns:") {
                return Err("podman's container: and ns: modes are not for manifests (allowed: app:<id> to share another app's network)".into());
            }
            if s.contains(':') {
                return Err("network options after ':' are not supported (allowed: none, host, bridge, slirp4netns, pasta, private, a network name, app:<id>)".into());
            }
            if !is_network_name(s) {
                return Err("is no network name (allowed: none, host, bridge, slirp4netns, pasta, private, app:<id>, or a podman network name: a letter or digit, then letters, digits, '_', '.', '-', at most 255)".into());
            }
            NetworkMode::Named(s.to_string())
        }
    })
}

/// A size as podman's `--memory` / `--shm-size` take it (go-units'
/// `RAMInBytes`): a number, an optional unit b, k, m, g, t (powers of
/// 1024, any case), an optional trailing `b`/`ib`: `512M`, `1g`, `64KiB`,
/// `1048576`, `1.5G`. `None` when malformed or beyond `i64`.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 24 || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let bytes = n * mult as f64;
    (bytes.is_finite() && bytes < i64::MAX as f64).then_some(bytes as u64)
}

/// A parsed `devices` entry (podman's `ParseDevice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub container: String,
    /// A non-empty subset of `rwm`; `rwm` when not written.
    pub permissions: String,
}

/// `/dev/x`, `/dev/x:/dev/y`, `/dev/x:rw`, `/dev/x:/dev/y:rwm`.
pub fn parse_device(s: &str) -> Option<Device> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_permissions(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return None,
    };
    let path_ok = |p: &str| p.starts_with("/dev/") && p.len() > 5 && !has_bad_char(p);
    (path_ok(host) && path_ok(container) && is_permissions(perms)).then(|| Device {
        host: host.into(),
        container: container.into(),
        permissions: perms.into(),
    })
}

fn is_permissions(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 3
        && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && !p.chars().enumerate().any(|(i, c)| p[..i].contains(c))
}

/// The host side of a device must be there and be a device: a char or
/// block device, or a directory of them (podman adds every device under
/// it, as for `/dev/dri`). Reads the host (one `stat`): validation calls
/// it last, and the answer is what the host says at load time.
pub fn check_device_on_host(path: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(Path::new(path)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("does not exist on this host (allowed: an existing char or block device)".into())
        }
        Err(e) => Err(format!(
            "cannot be read on this host: {} (allowed: an existing char or block device)",
            e.kind()
        )),
        Ok(m) => {
            let t = m.file_type();
            if t.is_char_device() || t.is_block_device() || t.is_dir() {
                Ok(())
            } else {
                Err("is not a device on this host (allowed: a char or block device, or a directory of them)".into())
            }
        }
    }
}

/// A parsed `tmpfs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub path: String,
    /// As written (`size=64m`, `mode=1777`, `noexec`), podman passes them to mount.
    pub options: Vec<String>,
}

/// The flags podman's `--tmpfs` passes on to mount(8) for tmpfs.
const TMPFS_FLAGS: &[&str] = &[
    "ro",
    "rw",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "tmpcopyup",
    "notmpcopyup",
    "U",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// `/path` or `/path:opt,opt`: `size=` (bytes, a unit k/m/g or a `%`),
/// `mode=` (octal), `uid=`, `gid=`, `nr_inodes=`, `nr_blocks=`, and
/// [`TMPFS_FLAGS`].
pub fn parse_tmpfs(s: &str) -> Result<Tmpfs, String> {
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    if !path.starts_with('/') || has_bad_char(path) {
        return Err("is not /absolute/path[:options]".into());
    }
    let mut options = Vec::new();
    for opt in opts.split(',').filter(|_| !opts.is_empty()) {
        let ok = match opt.split_once('=') {
            Some(("size", v)) => {
                v.strip_suffix('%').map_or(false, |p| {
                    p.parse::<u8>().is_ok_and(|p| (1..=100).contains(&p))
                }) || tmpfs_number(v)
            }
            Some(("mode", v)) => {
                !v.is_empty() && v.len() <= 4 && v.chars().all(|c| ('0'..='7').contains(&c))
            }
            Some(("uid" | "gid", v)) => v.parse::<u32>().is_ok(),
            Some(("nr_inodes" | "nr_blocks", v)) => tmpfs_number(v),
            Some(_) => false,
            None => TMPFS_FLAGS.contains(&opt),
        };
        if !ok {
            return Err(format!("option {:?} is not one tmpfs takes (allowed: size=64m or 50%, mode=1777, uid=N, gid=N, nr_inodes=N, nr_blocks=N, {})",
                super::excerpt::excerpt(opt, super::excerpt::EXCERPT_CHARS),
                TMPFS_FLAGS.join(", ")));
        }
        options.push(opt.to_string());
    }
    Ok(Tmpfs {
        path: path.into(),
        options,
    })
}

/// mount's tmpfs numbers: digits with an optional k, m or g.
fn tmpfs_number(v: &str) -> bool {
    let digits = v.strip_suffix(['k', 'm', 'g', 'K', 'M', 'G']).unwrap_or(v);
    !digits.is_empty() && digits.len() <= 19 && digits.chars().all(|c| c.is_ascii_digit())
}

/// One `ulimits` entry. `u64::MAX` is unlimited (`RLIM_INFINITY`, written -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// As podman names it: `nofile`.
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    /// The OCI name: `RLIMIT_NOFILE`.
    pub fn rlimit_type(&self) -> String {
        format!("RLIMIT_{}", self.name.to_ascii_uppercase())
    }
}

/// The rlimits podman's `--ulimit` takes (go-units' `ulimitNameMapping`).
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `nofile: 1024` (soft and hard), `"1024:4096"` (soft:hard, soft ≤ hard),
/// `-1` (unlimited, either side).
pub fn parse_ulimit(name: &str, value: &str) -> Result<Ulimit, String> {
    let Some(name) = ULIMIT_NAMES.iter().copied().find(|n| *n == name) else {
        return Err(format!(
            "is no limit podman knows (allowed: {})",
            ULIMIT_NAMES.join(", ")
        ));
    };
    let one = |v: &str| -> Option<u64> {
        match v.parse::<i64>().ok()? {
            -1 => Some(u64::MAX),
            n if n >= 0 => Some(n as u64),
            _ => None,
        }
    };
    let rule = "(allowed: N, soft:hard with soft at most hard, -1 for unlimited)";
    let (soft, hard) = match value.split_once(':') {
        Some((s, h)) => (one(s), one(h)),
        None => (one(value), one(value)),
    };
    match (soft, hard) {
        (Some(soft), Some(hard)) if soft <= hard => Ok(Ulimit { name, soft, hard }),
        (Some(_), Some(_)) => Err(format!("the soft limit is above the hard one {rule}")),
        _ => Err(format!("is not a limit {rule}")),
    }
}

/// Options of a `volumes` entry podman accepts (podman-run(1), `--volume`),
/// each group at most once (podman refuses `ro,rw`). `idmap` may carry
/// `=uids=…;gids=…`; `O` (overlay) may be given `upperdir=`/`workdir=`.
const VOLUME_OPTION_GROUPS: &[&[&str]] = &[
    &["rw", "ro"],
    &["z", "Z"],
    &["O"],
    &["U"],
    &["copy", "nocopy"],
    &["dev", "nodev"],
    &["exec", "noexec"],
    &["suid", "nosuid"],
    &["bind", "rbind"],
    &[
        "shared",
        "rshared",
        "slave",
        "rslave",
        "private",
        "rprivate",
        "unbindable",
        "runbindable",
    ],
    &["idmap"],
    &["upperdir"],
    &["workdir"],
];

/// Every option podman accepts, and no two of one group (`ro,rw`).
pub fn check_volume_options(options: &[String]) -> Result<(), String> {
    let group = |o: &str| {
        let key = match o.split_once('=') {
            Some((k @ ("idmap" | "upperdir" | "workdir"), v)) if !v.is_empty() => k,
            Some(_) => return None,
            None if o == "upperdir" || o == "workdir" => return None,
            None => o,
        };
        VOLUME_OPTION_GROUPS.iter().position(|g| g.contains(&key))
    };
    for (i, o) in options.iter().enumerate() {
        let Some(g) = group(o) else {
            return Err(format!("option {:?} is not one podman takes (allowed: ro or rw, z or Z, O, U, copy or nocopy, dev or nodev, exec or noexec, suid or nosuid, bind or rbind, a propagation such as rprivate or rshared, idmap[=…])", super::excerpt::excerpt(o, super::excerpt::EXCERPT_CHARS)));
        };
        if let Some(other) = options[..i].iter().find(|p| group(p) == Some(g)) {
            return Err(format!(
                "options {other:?} and {o:?} contradict or repeat each other (allowed: one of {})",
                VOLUME_OPTION_GROUPS[g].join(", ")
            ));
        }
    }
    Ok(())
}

/// Linux signal names by number (x86/arm generic numbering), as podman's
/// signal parser knows them; `IOT`/`POLL` are aliases of 6 and 29.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];
/// glibc's SIGRTMIN (the kernel's 32 and 33 are the thread library's);
/// podman names RTMIN..RTMIN+15 and RTMAX-14..RTMAX.
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// `SIGTERM`, `term`, `INT`, `15`, `RTMIN+3`, `SIGRTMAX-1` → its number (1..=64).
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let offset = |rest: &str, max: i32| rest.parse::<i32>().ok().filter(|n| (0..=max).contains(n));
    if name == "RTMIN" {
        return Some(RTMIN);
    }
    if name == "RTMAX" {
        return Some(RTMAX);
    }
    if let Some(n) = name.strip_prefix("RTMIN+") {
        return offset(n, 15).map(|n| RTMIN + n);
    }
    if let Some(n) = name.strip_prefix("RTMAX-") {
        return offset(n, 14).map(|n| RTMAX - n);
    }
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The Linux capabilities, without their `CAP_` prefix, by number: from
/// include/uapi/linux/capability.h, CAP_CHOWN = 0 to
/// CAP_CHECKPOINT_RESTORE = 40 (Linux 5.9; none added since, up to 6.x).
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `net_bind_service`, `CAP_NET_BIND_SERVICE` → `CAP_NET_BIND_SERVICE`; `all` → `ALL`.
pub fn parse_capability(s: &str) -> Option<String> {
    let up = s.to_ascii_uppercase();
    if up == "ALL" {
        return Some(up);
    }
    let name = up.strip_prefix("CAP_").unwrap_or(&up);
    CAPABILITIES.contains(&name).then(|| format!("CAP_{name}"))
}

/// A user or group as `/etc/passwd` and podman take it: a name or a
/// number, of letters, digits, `_`, `.`, `-` (a trailing `$` for Samba
/// machine accounts), not starting with `-`.
pub fn is_user_name(s: &str) -> bool {
    let body = s.strip_suffix('$').unwrap_or(s);
    !body.is_empty()
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `1000`, `1000:1000`, `postgres`, `postgres:postgres` → (user, group).
pub fn parse_user(s: &str) -> Option<(&str, Option<&str>)> {
    let (user, group) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    (is_user_name(user) && group.map_or(true, is_user_name)).then_some((user, group))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`
/// (not at either end of a label), each 1 to 63, in all at most `max`.
pub fn is_hostname(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `host:ip` (the first `:` splits, so IPv6 addresses need no brackets) or
/// `host:host-gateway` → (host, ip or `host-gateway`).
pub fn parse_extra_host(s: &str) -> Option<(&str, &str)> {
    let (host, ip) = s.split_once(':')?;
    (is_hostname(host, 253) && (ip == "host-gateway" || ip.parse::<IpAddr>().is_ok()))
        .then_some((host, ip))
}

/// `stop_timeout`: `0` (SIGKILL right after the signal, as podman allows),
/// or whole seconds up to [`MAX_STOP_TIMEOUT`] (`30s`, `2m`, `1h`): podman
/// counts seconds.
pub fn parse_stop_timeout(s: &str) -> Result<Duration, String> {
    let rule = format!(
        "allowed: 0, or whole seconds up to {}, e.g. 30s, 2m",
        crate::duration::secs(MAX_STOP_TIMEOUT)
    );
    if matches!(s.trim(), "0" | "0s" | "0m" | "0h" | "0ms") {
        return Ok(Duration::ZERO);
    }
    match crate::duration::parse_duration_within(s, Duration::from_secs(1), MAX_STOP_TIMEOUT) {
        Ok(d) if d.subsec_nanos() == 0 => Ok(d),
        Ok(_) => Err(format!("is not whole seconds ({rule})")),
        Err(e) if e.contains("too long") => Err(format!(
            "is over {} ({rule})",
            crate::duration::secs(MAX_STOP_TIMEOUT)
        )),
        Err(_) => Err(format!("is not a duration ({rule})")),
    }
}

/// `memory`: a size of at least [`MIN_MEMORY_BYTES`].
pub fn parse_memory(s: &str) -> Option<u64> {
    parse_size(s).filter(|b| *b >= MIN_MEMORY_BYTES)
}

/// `cpus`: `1.5` → 1_500_000_000 nano-CPUs (podman's `--cpus`; quota =
/// cpus × period). Bounds (0.01 to the host's CPUs) are validation's.
pub fn parse_cpus(s: &str) -> Option<u64> {
    let n: f64 = s.trim().parse().ok()?;
    (n.is_finite() && n > 0.0 && n <= 1e6).then(|| (n * 1e9).round() as u64)
}

/// Control characters (NUL, newline, …) make a path unusable and unsafe to print.
fn has_bad_char(s: &str) -> bool {
    s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests;
