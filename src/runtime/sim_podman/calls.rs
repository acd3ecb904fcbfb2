//! The simulation's calls: each recorded and taking its latency, calls on one container at once caught, and faults made to order (a call that panics, a stop that takes the whole timeout).

use super::*;

impl SimRuntime {
    /// Every call made so far.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Calls that overlapped another call on the same container.
    pub fn overlaps(&self) -> Vec<String> {
        self.lock().overlaps.clone()
    }

    /// Make the next `what` call (`start web`) panic, as a bug would.
    pub fn panic_once(&self, what: &str) {
        self.lock().panic_once = Some(what.to_string());
    }

    /// Make the container's process ignore SIGTERM: every stop of it takes
    /// `took` (podman's stop timeout, then SIGKILL).
    pub fn set_stop_takes(&self, name: &str, took: Duration) {
        self.lock().slow_stops.insert(name.to_string(), took);
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Start a call: record it, take the latency, fail if unreachable.
    pub(super) async fn call(&self, what: String) -> RuntimeResult<()> {
        self.call_taking(what, Duration::ZERO).await
    }

    /// [`SimRuntime::call`] that takes `extra` beyond the latency.
    pub(super) async fn call_taking(&self, what: String, extra: Duration) -> RuntimeResult<()> {
        let name = what.split_whitespace().nth(1).map(String::from);
        {
            let mut st = self.lock();
            if st.panic_once.as_deref() == Some(what.as_str()) {
                st.panic_once = None;
                drop(st);
                panic!("simulated: {what} panicked");
            }
            if let Some(name) = &name {
                let n = st.busy.entry(name.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    st.overlaps.push(what.clone());
                }
            }
            st.calls.push(what);
        }
        tokio::time::sleep(self.latency + extra).await;
        if let Some(name) = &name {
            let mut st = self.lock();
            if let Some(n) = st.busy.get_mut(name) {
                *n = n.saturating_sub(1);
            }
        }
        if self.lock().unreachable {
            return Err(RuntimeError::Unreachable(
                "simulated: service stopped".into(),
            ));
        }
        Ok(())
    }
}
