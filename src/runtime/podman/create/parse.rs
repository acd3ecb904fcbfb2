//! The values of issue 22's container fields as podman's create takes them: sizes in bytes, CPUs as a CFS quota, ulimits, signals as numbers, stop timeouts in seconds.
//!
//! PRIVATE until the `spec` helper's parse functions (manifest validation)
//! land: then these call them, so a value is read one way only.

use std::time::Duration;

/// The CFS period podman uses for `--cpus` (100 ms, in µs).
pub const CPU_PERIOD: u64 = 100_000;

/// `512M`, `1g`, `64MiB`, `1048576`: bytes (binary units, as podman reads them).
pub fn size(s: &str) -> Option<u64> {
    let t = s.trim();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let num: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `1.5` CPUs: the CFS quota for [`CPU_PERIOD`].
pub fn cpu_quota(s: &str) -> Option<u64> {
    let cpus: f64 = s.trim().parse().ok()?;
    (cpus.is_finite() && cpus > 0.0 && cpus <= 4096.0)
        .then(|| (cpus * CPU_PERIOD as f64).round() as u64)
        .filter(|q| *q >= 1000)
}

/// A pids limit: a positive count.
pub fn pids(s: &str) -> Option<i64> {
    s.trim().parse().ok().filter(|n| *n > 0)
}

/// `nofile: "1024:4096"` (soft:hard) or `1024` (both): podman's rlimit
/// type (`nofile`: podman prefixes `RLIMIT_` itself) and the two limits.
pub fn ulimit(name: &str, value: &str) -> Option<(String, u64, u64)> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("rlimit_").unwrap_or(&name).to_string();
    let one = |v: &str| -> Option<u64> {
        match v.trim() {
            "-1" | "unlimited" => Some(u64::MAX),
            v => v.parse().ok(),
        }
    };
    let (soft, hard) = match value.split_once(':') {
        Some((s, h)) => (one(s)?, one(h)?),
        None => (one(value)?, one(value)?),
    };
    (soft <= hard && !name.is_empty()).then_some((name, soft, hard))
}

/// Linux's signal names and numbers (x86-64 / arm64).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
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
    ("PWR", 30),
    ("SYS", 31),
];

/// `SIGINT`, `INT`, `int`, `2`, `SIGRTMIN+3`: the signal's number.
pub fn signal(s: &str) -> Option<i32> {
    let t = s.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = t.strip_prefix("SIG").unwrap_or(&t);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')?.parse().ok()?
        };
        return (0..=30).contains(&off).then_some(34 + off);
    }
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, n)| *n)
}

/// `2m`, `90s`, `30`: whole seconds, rounded up (podman takes seconds).
pub fn stop_timeout(s: &str) -> Option<u64> {
    let t = s.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => crate::duration::parse_duration(t).ok()?,
    };
    Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_should_read_in_binary_units() {
        assert_eq!(size("512M"), Some(512 << 20));
        assert_eq!(size("1g"), Some(1 << 30));
        assert_eq!(size("64MiB"), Some(64 << 20));
        assert_eq!(size("1.5k"), Some(1536));
        assert_eq!(size("1048576"), Some(1 << 20));
        assert_eq!(size("12Q"), None);
        assert_eq!(size("M"), None);
        assert_eq!(size("0"), None);
    }

    #[test]
    fn cpus_ulimits_signals_and_timeouts_should_read_as_podman_takes_them() {
        assert_eq!(cpu_quota("1.5"), Some(150_000));
        assert_eq!(cpu_quota("0"), None);
        assert_eq!(cpu_quota("nan"), None);
        assert_eq!(pids("256"), Some(256));
        assert_eq!(pids("0"), None);
        assert_eq!(
            ulimit("nofile", "1024:4096"),
            Some(("nofile".into(), 1024, 4096))
        );
        assert_eq!(ulimit("RLIMIT_NPROC", "64"), Some(("nproc".into(), 64, 64)));
        assert_eq!(ulimit("nofile", "9:1"), None);
        assert_eq!(signal("SIGINT"), Some(2));
        assert_eq!(signal("term"), Some(15));
        assert_eq!(signal("9"), Some(9));
        assert_eq!(signal("SIGRTMIN+3"), Some(37));
        assert_eq!(signal("SIGNOPE"), None);
        assert_eq!(stop_timeout("2m"), Some(120));
        assert_eq!(stop_timeout("30"), Some(30));
        assert_eq!(stop_timeout("1500ms"), Some(2));
        assert_eq!(stop_timeout("soon"), None);
    }
}
