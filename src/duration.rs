//! Durations as people write them on the command line (`300ms`, `30s`, `5m`, `1h`, bounded) and as podkeeper writes them back.
//!
//! Not jiff's duration parser, though jiff (the time library here) reads
//! `1m30s`: its grammar is wider than what podkeeper documents and its tests
//! refuse. It takes `1.5s`, `-1s` and `2h ago`, `10 s`, `1 hour` and ISO
//! 8601's `PT1M30S`, so a manifest's healthcheck that is invalid today
//! (`manifest::health::parse_duration`: integers and ms/s/m/h only) would
//! become valid, and it has no bare number (`--sweep-interval 30`, seconds
//! here). Narrowing its input to today's grammar first would be this parser
//! again, so both stay hand-written, bounded (32 bytes in a manifest, 1 ms
//! to 365 days on the command line) and never panicking.

use std::time::Duration;

/// The longest duration any flag takes: beyond it, deadlines computed from
/// now would overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

/// `300ms`, `30s`, `5m`, `1h` (a bare number is seconds), from 1ms to 365 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_within(s, Duration::from_millis(1), MAX_DURATION)
}

/// The bounds of `--sweep-interval`: a sweep lists every container, so more
/// often than every second is a poll, and less often than weekly no safety net.
pub const SWEEP_INTERVAL_MIN: Duration = Duration::from_secs(1);
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(7 * 86400);

/// `--sweep-interval`: a duration from 1s to 7 days.
pub fn parse_sweep_interval(s: &str) -> Result<Duration, String> {
    parse_duration_within(s, SWEEP_INTERVAL_MIN, SWEEP_INTERVAL_MAX)
}

/// A duration between `min` and `max` (inclusive); never panics.
pub fn parse_duration_within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a duration (allowed: a number with ms, s, m or h, e.g. 30s, 5m)")
    })?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (allowed: ms, s, m, h)"
            ))
        }
    };
    let allowed = || format!("allowed: {} to {}", self::secs(min), self::secs(max));
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("{s:?} must be more than zero ({})", allowed()));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d < min => Err(format!("{s:?} is too short ({})", allowed())),
        Ok(d) if d > max => Err(format!("{s:?} is too long ({})", allowed())),
        Ok(d) => Ok(d),
        Err(_) => Err(format!("{s:?} is too long ({})", allowed())),
    }
}

/// A call's duration for people: `0.4ms`, `12ms`.
pub fn ms(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A delay for people: `250ms`, `8.0s`, `5m`, `1h`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if s >= 3600 && s % 3600 == 0 && d.subsec_nanos() == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 && d.subsec_nanos() == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_should_parse_with_units() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn no_duration_should_panic_and_the_sweep_interval_should_be_bounded() {
        for bad in [
            "99999999999999999999h",
            "1e308",
            "0.0000000001s",
            "0.5s",
            "8d",
            "169h",
        ] {
            let e = parse_sweep_interval(bad).unwrap_err();
            assert!(
                e.contains("allowed: 1.0s to 168h") || e.contains("unknown unit"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse_sweep_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(
            parse_sweep_interval("168h"),
            Ok(Duration::from_secs(7 * 86400))
        );
        assert!(parse_duration("99999999999999999999h")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("0.0000000001s")
            .unwrap_err()
            .contains("too short"));
    }
}
