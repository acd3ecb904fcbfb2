//! Exit files seen and looks taken: whether an exit file's deletion still tells an app anything.
//!
//! Where podman records stop intent, an exit is acted on when conmon
//! *writes* its file; the same file's deletion a moment later (podman's
//! cleanup, or the very start podkeeper issued) is then no news, as long as
//! a reconcile of the app began after the write: that reconcile's inspect saw
//! the exit. Without a write seen (an older podman, a missed event) the
//! deletion stays the trigger it always was.

use std::collections::HashMap;

use tokio::time::Instant;

/// See the module documentation. Bounded by the containers podkeeper knows:
/// one entry per container id (forgotten on its removal) and per app looked
/// at (forgotten with the app, `reactor/forget.rs`).
#[derive(Debug, Default)]
pub(super) struct Exits {
    /// Container id → when its exit file was seen written.
    written: HashMap<String, Instant>,
    /// App id → when its latest reconcile began.
    looked: HashMap<String, Instant>,
}

impl Exits {
    /// conmon wrote container `id`'s exit file at `at`.
    pub fn written(&mut self, id: &str, at: Instant) {
        self.written.insert(id.to_string(), at);
    }

    /// A reconcile of app `app` begins at `at` (it inspects first).
    pub fn looking(&mut self, app: &str, at: Instant) {
        match self.looked.get_mut(app) {
            Some(t) => *t = at,
            None => {
                self.looked.insert(app.to_string(), at);
            }
        }
    }

    /// Container `id`'s exit file (of app `app`) was deleted: whether a
    /// reconcile of the app began after the file was written, and so saw it.
    pub fn collected_seen(&mut self, id: &str, app: &str) -> bool {
        let Some(written) = self.written.remove(id) else {
            return false;
        };
        self.looked.get(app).is_some_and(|began| *began >= written)
    }

    /// Container `id` was removed.
    pub fn forget_container(&mut self, id: &str) {
        self.written.remove(id);
    }

    /// App `app` is gone, manifest and container: forget when it was looked at.
    pub fn forget_app(&mut self, app: &str) {
        self.looked.remove(app);
    }

    /// Entries held: (exit files seen written, apps looked at).
    pub fn sizes(&self) -> (usize, usize) {
        (self.written.len(), self.looked.len())
    }

    /// Keep only the exit files of containers that still exist (after a
    /// sweep): one whose deletion or removal was never heard (an inotify
    /// queue overflow, a stream gap) is not kept for the daemon's lifetime.
    pub fn keep_containers(&mut self, exists: impl Fn(&str) -> bool) {
        self.written.retain(|id, _| exists(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deletion_should_be_news_unless_a_look_followed_the_write() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut e = Exits::default();
        // Never seen written (podman 4.3, or a missed event): news.
        assert!(!e.collected_seen("c1", "web"));
        // Written, then looked at: the deletion is no news, once.
        e.written("c1", ms(10));
        e.looking("web", ms(12));
        assert!(e.collected_seen("c1", "web"));
        assert!(!e.collected_seen("c1", "web"));
        // Written after the last look: news.
        e.written("c1", ms(20));
        assert!(!e.collected_seen("c1", "web"));
        // Removed before it was collected: forgotten.
        e.written("c2", ms(30));
        e.forget_container("c2");
        e.looking("web", ms(31));
        assert!(!e.collected_seen("c2", "web"));
        // A sweep that no longer finds c3 forgets it.
        e.written("c3", ms(40));
        e.written("c4", ms(40));
        e.keep_containers(|id| id == "c4");
        e.looking("web", ms(41));
        assert!(!e.collected_seen("c3", "web"));
        assert!(e.collected_seen("c4", "web"));
    }
}
