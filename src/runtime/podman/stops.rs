//! Graceful stops (issue 22) on the real podman: a stop or remove names its stop timeout in the one query parameter libpod reads, and the call's own timeout leaves it room; an inspect's stop signal read in either podman's shape.

use std::time::Duration;

use podman_api::opts::ContainerDeleteOpts;

use super::{from_call, libpod, with_timeout, CallError, PodmanRuntime};
use crate::runtime::{RuntimeError, RuntimeResult, StopWith, MAX_STOP_TIMEOUT};

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum StopSignal {
    Number(i64),
    Name(String),
}

impl StopSignal {
    /// The signal by name (`SIGTERM`), whichever shape podman gave.
    pub(super) fn name(self) -> String {
        match self {
            StopSignal::Name(name) => name,
            StopSignal::Number(n) => usize::try_from(n)
                .ok()
                .and_then(|n| SIGNAL_NAMES.get(n.wrapping_sub(1)))
                .map_or_else(|| n.to_string(), |s| (*s).to_string()),
        }
    }
}

/// Linux's signals 1 to 31, by number.
const SIGNAL_NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A stop timeout as podman takes it: whole seconds, rounded up (a
/// `1500ms` never becomes a quicker SIGKILL).
fn whole_secs(d: Duration) -> usize {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    usize::try_from(secs).unwrap_or(usize::MAX)
}

/// A container's own `Config.StopTimeout` (seconds), bounded.
pub(super) fn own_timeout(secs: u64) -> Duration {
    Duration::from_secs(secs).min(MAX_STOP_TIMEOUT)
}

impl PodmanRuntime {
    /// How long a stop or remove that waits out `with` may take: podman
    /// waits that out, then SIGKILLs and cleans up. A 2 m `stop_timeout`
    /// is never cut by podkeeper's own timeout, and the call still has one.
    fn stop_call_limit(&self, with: StopWith) -> Duration {
        with.timeout + self.timeouts.stop_margin
    }

    pub(super) async fn stop(&self, name: &str, with: StopWith) -> RuntimeResult<()> {
        // A raw call: `podman-api` sends the timeout as `Timeout`, which
        // libpod's stop does not read (podman 4.3 then waits its 10 s).
        let path = libpod::path(&format!(
            "/containers/{}/stop?timeout={}",
            libpod::urlencode(name),
            whole_secs(with.timeout)
        ));
        let after = self.stop_call_limit(with);
        match libpod::post(&self.socket, &path, after).await {
            // Already stopped (someone else stopped it): what was wanted.
            Ok(()) | Err(CallError::Status(304, _)) => Ok(()),
            Err(e) => Err(from_call("stop", after, e)),
        }
    }

    pub(super) async fn remove(&self, name: &str, with: StopWith) -> RuntimeResult<()> {
        let c = self.api.containers().get(name);
        let opts = ContainerDeleteOpts::builder()
            .force(true)
            .timeout(whole_secs(with.timeout))
            .build();
        let after = self.stop_call_limit(with);
        match with_timeout("remove", after, c.delete(&opts)).await {
            Err(RuntimeError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Inspect;
    use super::*;

    #[test]
    fn stop_timeout_and_signal_should_read_from_podman_4s_and_5s_inspect() {
        let info = |config: serde_json::Value| {
            let v =
                serde_json::json!({"Id": "a", "State": {"Status": "running"}, "Config": config});
            let info = serde_json::from_value::<Inspect>(v)
                .unwrap()
                .into_info(false);
            (info.stop_timeout, info.stop_signal)
        };
        let want = (Some(Duration::from_secs(30)), Some("SIGINT".to_string()));
        assert_eq!(
            info(serde_json::json!({"StopTimeout": 30, "StopSignal": 2})),
            want
        );
        let v5 = serde_json::json!({"StopTimeout": 30, "StopSignal": "SIGINT"});
        assert_eq!(info(v5), want);
        assert_eq!(
            info(serde_json::json!({"StopSignal": 64})).1.as_deref(),
            Some("64")
        );
        assert_eq!(info(serde_json::json!({})), (None, None));
        let huge = info(serde_json::json!({"StopTimeout": 86400})).0;
        assert_eq!(huge, Some(MAX_STOP_TIMEOUT), "bounded");
    }

    #[test]
    fn a_stop_timeout_should_go_to_podman_in_whole_seconds_rounded_up() {
        assert_eq!(whole_secs(Duration::from_secs(30)), 30);
        assert_eq!(whole_secs(Duration::from_millis(1500)), 2);
        assert_eq!(whole_secs(Duration::ZERO), 0);
    }
}
