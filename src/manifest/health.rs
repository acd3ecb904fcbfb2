//! `container.healthcheck`: the command that tells a running container is useful, its durations and their rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_COMMAND_ARGS, MAX_COMMAND_BYTES};

/// A check podkeeper runs in the container (podman's exec form, like `CMD`).
/// Durations stay as written (`10s`), so the spec hash follows the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;
/// The longest duration a healthcheck field takes: a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The most `retries`.
pub const MAX_RETRIES: u32 = 1000;

const DURATION_RULE: &str =
    "allowed: a number with a unit, ms, s, m or h, e.g. 500ms, 10s, 1m30s; not zero, at most 24h";

impl HealthCheck {
    /// How often the check runs (validated manifests only parse).
    pub fn interval(&self) -> Duration {
        field(&self.interval, DEFAULT_INTERVAL)
    }

    /// How long one check may take before it counts as failed.
    pub fn timeout(&self) -> Duration {
        field(&self.timeout, DEFAULT_TIMEOUT)
    }

    /// Consecutive failures that make the app unhealthy.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    /// After a start, failures during this time do not count.
    pub fn start_period(&self) -> Duration {
        field(&self.start_period, Duration::ZERO)
    }

    /// Every rule: `(field under app.container.healthcheck, what is wrong)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |f: &str, m: String| Err((format!("app.container.healthcheck.{f}"), m));
        if self.command.is_empty() || self.command[0].trim().is_empty() {
            return fail(
                "command",
                "must not be empty (allowed: the exec form, e.g. [\"/bin/sh\", \"-c\", \"test -e /ready\"])"
                    .into(),
            );
        }
        if self.command.len() > MAX_COMMAND_ARGS {
            return fail(
                "command",
                format!(
                    "{} entries (allowed: at most {MAX_COMMAND_ARGS})",
                    self.command.len()
                ),
            );
        }
        let bytes: usize = self.command.iter().map(String::len).sum();
        if bytes > MAX_COMMAND_BYTES {
            return fail(
                "command",
                format!("{bytes} bytes (allowed: at most {MAX_COMMAND_BYTES})"),
            );
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return fail("command", "contains a NUL byte (allowed: text)".into());
        }
        for (name, value) in [
            ("interval", &self.interval),
            ("timeout", &self.timeout),
            ("start_period", &self.start_period),
        ] {
            let Some(text) = value else { continue };
            match parse_duration(text) {
                // start_period 0s means none, as podman's default.
                Some(d) if d.is_zero() && name == "start_period" => {}
                Some(d) if !d.is_zero() && d <= MAX_DURATION => {}
                _ => {
                    return fail(
                        name,
                        format!(
                            "\"{}\" is not a valid duration ({DURATION_RULE})",
                            super::excerpt::excerpt(text, super::excerpt::EXCERPT_CHARS)
                        ),
                    )
                }
            }
        }
        match self.retries {
            Some(0) => fail("retries", format!("0 (allowed: 1 to {MAX_RETRIES})")),
            Some(n) if n > MAX_RETRIES => {
                fail("retries", format!("{n} (allowed: 1 to {MAX_RETRIES})"))
            }
            _ => Ok(()),
        }
    }
}

fn field(text: &Option<String>, default: Duration) -> Duration {
    text.as_deref().and_then(parse_duration).unwrap_or(default)
}

/// `500ms`, `10s`, `1m30s`, `2h`: one or more number-unit pairs, units in
/// decreasing order not required. `None` when it does not parse.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let s = text.trim();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_should_parse_as_people_write_them() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "1d",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_should_be_those_of_the_manifest_reference() {
        let h = HealthCheck {
            command: vec!["/bin/true".into()],
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
        };
        assert_eq!(h.interval(), Duration::from_secs(30));
        assert_eq!(h.timeout(), Duration::from_secs(5));
        assert_eq!(h.retries(), 3);
        assert_eq!(h.start_period(), Duration::ZERO);
        assert!(h.validate().is_ok());
    }
}
