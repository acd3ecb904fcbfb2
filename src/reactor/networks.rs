//! The reactor's network side: an app whose named network was missing is looked at the moment the network appears (podman's network `create` event, or a `.network` companion started), not at its next retry or the sweep.

use tokio::time::Instant;

use super::Reactor;
use crate::manifest::options::NetworkMode;
use crate::manifest::CompanionKind;
use crate::observe::{Ignored, Verdict};
use crate::runtime::Podman;
use crate::trigger::{Key, PodmanEvent};

impl<R: Podman> Reactor<R> {
    /// A podman event of type `network`. podman 4.4 and later emit
    /// `create` (the network's name in the `network` attribute; 4.3 emits
    /// no network events at all: there a `.network` companion's start wakes
    /// the apps, see [`Reactor::after_network_companions`], and a network
    /// created by hand is found at the app's next retry).
    pub(super) fn on_network_event<'e>(
        &mut self,
        ev: &'e PodmanEvent,
        now: Instant,
    ) -> Verdict<'e> {
        let name = ev.label("network").filter(|n| !n.is_empty());
        match (ev.action.as_str(), name) {
            ("create", Some(name)) => {
                let woken = self.wake_network_apps(|n| n == name, now);
                if woken == 0 {
                    Verdict::Ignored(Ignored::NoApp("network"))
                } else {
                    Verdict::Apps(woken)
                }
            }
            _ => Verdict::Ignored(Ignored::NotAContainer(&ev.typ)),
        }
    }

    /// After a companion batch: when it wrote or started a `.network`
    /// companion, every app on a named network that is failing looks again
    /// now (Quadlet names the network `systemd-<name>` unless
    /// `NetworkName=` says otherwise, so they are not matched by name).
    pub(super) fn after_network_companions(&mut self, names: &[String], now: Instant) {
        let any_network = names.iter().any(|n| {
            self.apps
                .companion(n)
                .is_some_and(|(_, c)| c.kind == CompanionKind::Network)
        });
        if any_network {
            self.wake_network_apps(|_| true, now);
        }
    }

    /// Queue now, without their failure backoff (the network's appearance
    /// is news, not another try of the same), the apps declaring a named
    /// network that `matches` (one inspect each for those running). How many.
    fn wake_network_apps(&mut self, matches: impl Fn(&str) -> bool, now: Instant) -> usize {
        let ids: Vec<String> = self
            .apps
            .apps
            .iter()
            .filter(|(_, a)| {
                matches!(a.app.container.network_mode(), Some(NetworkMode::Named(n)) if matches(&n))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let key = Key::App(id.clone());
            self.sched.reset_backoff(&key, now);
            self.sched.schedule(key, now);
        }
        ids.len()
    }
}
