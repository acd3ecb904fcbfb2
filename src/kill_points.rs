//! Test hooks that kill podkeeper (SIGKILL) at a named step, so tests can prove that the next start finishes or undoes what was under way; compiled in only with the `test-hooks` feature.

/// Kill this process with SIGKILL when `PODKEEPER_TEST_KILL_AT` names
/// `point` (e.g. `update:created`). Without the `test-hooks` feature this
/// does nothing, and no environment can make a release build kill itself.
#[cfg(feature = "test-hooks")]
pub fn kill_point(point: &str) {
    if std::env::var("PODKEEPER_TEST_KILL_AT").is_ok_and(|p| p == point) {
        tracing::warn!(point, "test hook: killing podkeeper (SIGKILL)");
        // SAFETY: getpid and kill have no preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// See the `test-hooks` version.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn kill_point(_point: &str) {}
