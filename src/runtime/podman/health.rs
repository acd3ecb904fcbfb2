//! Healthchecks on the real podman: the check podman stores, one run of it with its timeout enforced, and its output capped.

use std::time::Duration;

use podman_api::models::Schema2HealthConfig;
use tokio::time::{timeout, Instant};

use super::{classify, RuntimeError, RuntimeResult};
use crate::runtime::{check_procs, HealthCall, HealthResult, MAX_CHECK_OUTPUT};

/// How long podman may take to answer once a check's processes are killed
/// (it then collects the exec session): past that, podman itself is not
/// answering, which is a failed call, not a failed check.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// How often the check's processes are looked for again while podman has
/// not answered (an exec that started late, after the first look).
const REAP_EVERY: Duration = Duration::from_millis(500);

/// `text` cut to at most [`MAX_CHECK_OUTPUT`] bytes, at a character boundary.
pub fn capped(mut text: String) -> String {
    if text.len() > MAX_CHECK_OUTPUT {
        let mut end = MAX_CHECK_OUTPUT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Run the healthcheck of `name` once; see [`crate::runtime::Podman::run_healthcheck`].
pub async fn run(
    api: &podman_api::Podman,
    name: &str,
    call: HealthCall<'_>,
) -> RuntimeResult<HealthResult> {
    let c = api.containers().get(name);
    let check = c.healthcheck();
    tokio::pin!(check);
    if let Ok(answer) = timeout(call.timeout, &mut check).await {
        return verdict(answer.map_err(classify));
    }
    // Up: kill what runs of it (podman 4.3 never does), then podman answers.
    let up = format!(
        "no result within its timeout of {}",
        crate::duration::secs(call.timeout)
    );
    let deadline = Instant::now() + ANSWER_MARGIN;
    let mut killed = 0;
    loop {
        if let Some(pid) = call.pid {
            let command = call.command.to_vec();
            killed += tokio::task::spawn_blocking(move || {
                check_procs::kill_check_processes(pid, &command)
            })
            .await
            .unwrap_or(0);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(REAP_EVERY.min(left), &mut check).await {
            Ok(answer) => {
                // Whatever podman says of a run cut short, it failed.
                let mut failed = verdict(answer.map_err(classify))?;
                failed.passed = false;
                failed.output = match killed {
                    0 => up,
                    n => format!("{up}: killed ({n} process(es))"),
                };
                return Ok(failed);
            }
            Err(_) if left <= REAP_EVERY => {
                return Err(RuntimeError::Timeout {
                    call: "healthcheck",
                    after: call.timeout + ANSWER_MARGIN,
                })
            }
            Err(_) => {}
        }
    }
}

/// podman's answer as a check's verdict: an error of the check itself (an
/// exec that could not run, podman's "exceeded timeout") is a failed check;
/// only a missing container or an unreachable podman is an error.
fn verdict(
    answer: RuntimeResult<podman_api::models::HealthCheckResults>,
) -> RuntimeResult<HealthResult> {
    match answer {
        // podman 4.3 answers `{"Status":"healthy"|"unhealthy","FailingStreak":0,"Log":null}`:
        // Status is the verdict of the check just run (not podman's streak
        // against its own retries, which podkeeper does not use); the log,
        // when a podman fills it, ends with this check's output.
        Ok(results) => Ok(HealthResult {
            passed: results.status.as_deref() == Some("healthy"),
            output: capped(
                results
                    .log
                    .as_ref()
                    .and_then(|l| l.last())
                    .and_then(|l| l.output.clone())
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
        }),
        Err(RuntimeError::Failed(why)) => Ok(HealthResult {
            passed: false,
            output: capped(why),
        }),
        Err(e) => Err(e),
    }
}

/// The healthcheck as podman stores it, so `podman inspect` shows it and
/// `podman healthcheck run` runs it. Interval 0 is podman's "disable": no
/// systemd timer of podman's runs the check; podkeeper's own timers do.
pub fn config(h: &crate::manifest::HealthCheck) -> Schema2HealthConfig {
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let mut test = vec!["CMD".to_string()];
    test.extend(h.command.iter().cloned());
    Schema2HealthConfig {
        interval: Some(0),
        retries: Some(i64::from(h.retries())),
        start_period: Some(ns(h.start_period())),
        test: Some(test),
        timeout: Some(ns(h.timeout())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_should_be_capped_at_a_character_boundary() {
        let long = "é".repeat(MAX_CHECK_OUTPUT);
        let cut = capped(long);
        assert!(cut.len() <= MAX_CHECK_OUTPUT && cut.len() >= MAX_CHECK_OUTPUT - 1);
        assert_eq!(capped("ok".into()), "ok");
    }

    #[test]
    fn podmans_error_of_the_check_should_be_a_failed_check_and_a_missing_container_an_error() {
        let timed_out = verdict(Err(RuntimeError::Failed(
            "healthcheck command exceeded timeout of 1s".into(),
        )))
        .unwrap();
        assert!(!timed_out.passed);
        assert_eq!(
            timed_out.output,
            "healthcheck command exceeded timeout of 1s"
        );
        assert!(verdict(Err(RuntimeError::NotFound("x".into()))).is_err());
        assert!(verdict(Err(RuntimeError::Unreachable("x".into()))).is_err());
    }
}
