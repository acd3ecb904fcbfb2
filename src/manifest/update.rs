//! `app.update`: how a spec change is applied (the gate a new container must pass, and whether a failed one is rolled back); not in the spec hash.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a new container must run, without exiting, before the update
/// counts as applied, unless the manifest says otherwise.
pub const DEFAULT_STABLE_FOR: Duration = Duration::from_secs(10);
/// How soon a new container with a healthcheck must be healthy.
pub const DEFAULT_HEALTHY_WITHIN: Duration = Duration::from_secs(5 * 60);
/// The longest `stable_for`: an hour (the previous container is kept that long).
pub const MAX_STABLE_FOR: Duration = Duration::from_secs(3600);
/// The longest `healthy_within`: a day, as a healthcheck's own durations.
pub const MAX_HEALTHY_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// `app.update`. Every field optional; none of it is in the spec hash, so
/// changing the gate never recreates a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicy {
    /// How long the new container must run with no exit (`10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_for: Option<String>,
    /// With a healthcheck: how soon it must be healthy (`5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_within: Option<String>,
    /// Start the previous container again when the new one fails its gate
    /// (`true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<bool>,
}

impl UpdatePolicy {
    /// `stable_for`, or its default (validation has checked it).
    pub fn stable_for(&self) -> Duration {
        self.stable_for
            .as_deref()
            .and_then(|s| parse_stable_for(s).ok())
            .unwrap_or(DEFAULT_STABLE_FOR)
    }

    /// `healthy_within`, or its default.
    pub fn healthy_within(&self) -> Duration {
        self.healthy_within
            .as_deref()
            .and_then(|s| parse_healthy_within(s).ok())
            .unwrap_or(DEFAULT_HEALTHY_WITHIN)
    }

    /// Whether a failed gate rolls back (default: yes).
    pub fn rollback(&self) -> bool {
        self.rollback.unwrap_or(true)
    }

    /// Every rule: `(field, what is wrong)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(s) = &self.stable_for {
            parse_stable_for(s).map_err(|m| ("app.update.stable_for".to_string(), m))?;
        }
        if let Some(s) = &self.healthy_within {
            parse_healthy_within(s).map_err(|m| ("app.update.healthy_within".to_string(), m))?;
        }
        Ok(())
    }
}

/// `stable_for`: `0` (the gate is only "started"), or up to an hour.
pub fn parse_stable_for(s: &str) -> Result<Duration, String> {
    if matches!(s.trim(), "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    within(s, Duration::from_millis(1), MAX_STABLE_FOR, "0, or up to")
}

/// `healthy_within`: at least a second, at most a day.
pub fn parse_healthy_within(s: &str) -> Result<Duration, String> {
    within(s, Duration::from_secs(1), MAX_HEALTHY_WITHIN, "1s up to")
}

fn within(s: &str, min: Duration, max: Duration, range: &str) -> Result<Duration, String> {
    crate::duration::parse_duration_within(s, min, max).map_err(|_| {
        format!(
            "{:?} is not allowed (allowed: a duration, {range} {}, e.g. 30s, 2m)",
            crate::manifest::excerpt::excerpt(s, 40),
            crate::duration::secs(max)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_should_be_ten_seconds_five_minutes_and_rollback() {
        let p = UpdatePolicy::default();
        assert_eq!(p.stable_for(), Duration::from_secs(10));
        assert_eq!(p.healthy_within(), Duration::from_secs(300));
        assert!(p.rollback());
    }

    #[test]
    fn bad_durations_should_name_the_field_and_the_range() {
        for (field, p) in [
            (
                "app.update.stable_for",
                UpdatePolicy {
                    stable_for: Some("2h".into()),
                    ..Default::default()
                },
            ),
            (
                "app.update.healthy_within",
                UpdatePolicy {
                    healthy_within: Some("soon".into()),
                    ..Default::default()
                },
            ),
        ] {
            let (f, m) = p.validate().unwrap_err();
            assert_eq!(f, field);
            assert!(m.contains("allowed: a duration"), "{m}");
        }
        let ok = UpdatePolicy {
            stable_for: Some("0".into()),
            healthy_within: Some("90s".into()),
            rollback: Some(false),
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.stable_for(), Duration::ZERO);
    }
}
