//! The simulation's stops and removes: each call's stop timeout recorded, and a process that needs a while after its stop signal, exiting 0 within the timeout and 137 (SIGKILL) past it.

use super::*;
use crate::runtime::{declared_stop_timeout, StopWith};

/// The exit code of a process SIGKILLed at the end of its stop timeout.
pub const KILLED: i32 = 137;

impl SimRuntime {
    /// Make the container's process need `needs` after its stop signal
    /// before it exits 0 (a database flushing): a stop then takes that
    /// long, or the stop timeout and exits 137 if that is shorter.
    pub fn set_stop_needs(&self, name: &str, needs: Duration) {
        self.lock().stop_needs.insert(name.to_string(), needs);
    }

    /// A `podman stop` by hand has begun and waits out a long stop
    /// timeout: the container is `stopping` (no event yet) until
    /// [`SimRuntime::stop_by_hand`] ends it.
    pub fn stop_under_way(&self, name: &str) {
        if let Some(c) = self.lock().containers.get_mut(name) {
            c.state = ContainerState::Stopping;
        }
    }

    /// Every stop and remove made so far, with its stop timeout:
    /// `("stop web", 30s)`, `("remove web", 10s)`.
    pub fn stops(&self) -> Vec<(String, Duration)> {
        self.lock().stops.clone()
    }

    /// What podman keeps of a create's `stop_timeout` (its inspect's
    /// `Config.StopTimeout`; `None`: podman's default).
    pub(super) fn keep_stop_timeout(&self, id: &str, spec: &crate::manifest::ContainerSpec) {
        let mut st = self.lock();
        match declared_stop_timeout(spec) {
            Some(t) => st.own_stop.insert(id.to_string(), t),
            None => st.own_stop.remove(id),
        };
    }

    /// The container's own stop timeout, as its inspect says.
    pub(super) fn own_stop_timeout(st: &SimState, c: &SimContainer) -> Duration {
        st.own_stop
            .get(&c.id)
            .copied()
            .unwrap_or(crate::runtime::DEFAULT_STOP_TIMEOUT)
    }

    /// Record a stop or remove (`what`: `stop web`) and say how it goes if
    /// the container runs: how long it takes, and its exit code.
    pub(super) fn plan_stop(&self, what: &str, name: &str, with: StopWith) -> (Duration, i32) {
        let mut st = self.lock();
        st.stops.push((what.to_string(), with.timeout));
        let running = st
            .containers
            .get(name)
            .is_some_and(|c| c.state == ContainerState::Running);
        if !running {
            return (Duration::ZERO, 0);
        }
        if let Some(took) = st.slow_stops.get(name) {
            return (*took, 0);
        }
        match st.stop_needs.get(name) {
            Some(needs) if *needs > with.timeout => (with.timeout, KILLED),
            Some(needs) => (*needs, 0),
            None => (Duration::ZERO, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Podman;

    fn with(secs: u64) -> StopWith {
        StopWith {
            timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_stop_should_wait_the_longer_of_the_manifests_and_the_containers_own_timeout() {
        use crate::runtime::{ContainerInfo, MAX_STOP_TIMEOUT};
        let spec = |t: Option<&str>| {
            let mut s: crate::manifest::ContainerSpec =
                serde_json::from_value(serde_json::json!({"image": "x"})).unwrap();
            s.stop_timeout = t.map(String::from);
            s
        };
        let own = |secs: Option<u64>| ContainerInfo {
            id: "a".into(),
            name: "a".into(),
            state: ContainerState::Running,
            labels: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            health: None,
            stopped_by_user: None,
            pid: None,
            health_log: Vec::new(),
            stop_timeout: secs.map(Duration::from_secs),
            stop_signal: None,
        };
        let t = |s: Option<&str>, o: Option<u64>| {
            let spec = spec(s);
            let c = own(o);
            StopWith::for_app(s.map(|_| &spec), Some(&c)).timeout
        };
        assert_eq!(
            t(Some("2m"), Some(10)),
            Duration::from_secs(120),
            "an older container"
        );
        assert_eq!(
            t(Some("30s"), Some(120)),
            Duration::from_secs(120),
            "lowered: its own"
        );
        assert_eq!(t(None, Some(45)), Duration::from_secs(45), "manifest gone");
        assert_eq!(t(None, None), Duration::from_secs(10), "podman's default");
        assert_eq!(t(Some("3h"), None), MAX_STOP_TIMEOUT, "bounded");
        let none = StopWith::for_app(None, None).timeout;
        assert_eq!(none, crate::runtime::DEFAULT_STOP_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_within_the_timeout_should_exit_0_and_past_it_137() {
        let sim = SimRuntime::new(&[], None);
        sim.add_running("db", BTreeMap::new());
        sim.set_stop_needs("db", Duration::from_secs(13));
        let t0 = tokio::time::Instant::now();
        sim.stop_container("db", with(30)).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(13) + sim.latency);
        assert_eq!(sim.container("db").unwrap().exit_code, Some(0));

        sim.start_container("db").await.unwrap();
        let t0 = tokio::time::Instant::now();
        sim.stop_container("db", with(10)).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(10) + sim.latency);
        assert_eq!(sim.container("db").unwrap().exit_code, Some(KILLED));

        sim.start_container("db").await.unwrap();
        let t0 = tokio::time::Instant::now();
        sim.remove_container("db", with(30)).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(13) + sim.latency);
        assert!(sim.container("db").is_none());
        assert_eq!(
            sim.stops(),
            [
                ("stop db".to_string(), Duration::from_secs(30)),
                ("stop db".to_string(), Duration::from_secs(10)),
                ("remove db".to_string(), Duration::from_secs(30)),
            ]
        );
    }
}
