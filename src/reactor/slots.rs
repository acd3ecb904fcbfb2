//! Which ready key may start now: the concurrency bound, slots kept for crash repairs, one run per app at a time, and the keys of every task in flight.
//!
//! * **One run per app.** An app's keys (`app/<id>`, `health/<id>`) act on
//!   the same container: a health restart's start racing the removal of a
//!   deleted manifest leaves a container podman no longer lists, its
//!   process still running. While one of an app's keys runs, the others
//!   wait queued (the scheduler keeps their deadlines) and start when it ends.
//! * **Repairs have slots of their own.** A run that waits out a stop
//!   timeout (a health restart of an app that ignores SIGTERM, a removal)
//!   holds its slot for up to that timeout. An app whose container was seen
//!   exiting (a `died` event, an exit file) is repaired from a pool of its
//!   own, as large as the general one, so a `kill -9` is never queued behind
//!   slow stops of other apps.
//! * **Every task's keys are known by its task id**, so a task that panics
//!   is settled like a failure (backoff, retry) and never leaves its keys
//!   running for good.

use std::collections::{HashMap, HashSet};

use tokio::task::Id;

use crate::trigger::Key;

/// Which pool a run's slot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    General,
    Repair,
}

#[derive(Debug)]
struct Task {
    keys: Vec<Key>,
    pool: Pool,
}

#[derive(Debug, Default)]
pub(super) struct Slots {
    /// The size of each pool.
    max: usize,
    tasks: HashMap<Id, Task>,
    /// Apps one of whose keys runs.
    busy: HashSet<String>,
    general: usize,
    repair: usize,
    /// Apps whose container was seen exiting since their last run started.
    repairs_due: HashSet<String>,
}

impl Slots {
    pub fn new(max: usize) -> Self {
        Slots {
            max: max.max(1),
            ..Slots::default()
        }
    }

    /// The container of app `id` exited: its next run is a repair.
    pub fn repair_due(&mut self, id: &str) {
        if !self.repairs_due.contains(id) {
            self.repairs_due.insert(id.to_string());
        }
    }

    fn pool_for(&self, key: &Key) -> Option<Pool> {
        let repair = matches!(key, Key::App(id) if self.repairs_due.contains(id));
        if repair && self.repair < self.max {
            Some(Pool::Repair)
        } else if self.general < self.max {
            Some(Pool::General)
        } else {
            None
        }
    }

    /// Whether `key` may start now.
    pub fn accepts(&self, key: &Key) -> bool {
        key.app().is_none_or(|id| !self.busy.contains(id)) && self.pool_for(key).is_some()
    }

    /// App `id` is gone: no repair is due for it.
    pub fn forget(&mut self, id: &str) {
        self.repairs_due.remove(id);
    }

    /// Entries held: (tasks in flight, busy apps, repairs due).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.tasks.len(), self.busy.len(), self.repairs_due.len())
    }

    /// No slot is free for any key (the loop need not wake for deadlines).
    pub fn is_full(&self) -> bool {
        self.general >= self.max && self.repair >= self.max
    }

    /// A task for `keys` (accepted by [`Slots::accepts`]) was spawned as `id`.
    pub fn started(&mut self, id: Id, keys: Vec<Key>) {
        let pool = keys
            .first()
            .and_then(|k| self.pool_for(k))
            .unwrap_or(Pool::General);
        match pool {
            Pool::General => self.general += 1,
            Pool::Repair => self.repair += 1,
        }
        for key in &keys {
            if let Some(app) = key.app() {
                self.repairs_due.remove(app);
                self.busy.insert(app.to_string());
            }
        }
        self.tasks.insert(id, Task { keys, pool });
    }

    /// Task `id` ended (done, panicked or aborted): its slot is free and
    /// its apps may run again. Returns its keys.
    pub fn finished(&mut self, id: Id) -> Vec<Key> {
        let Some(task) = self.tasks.remove(&id) else {
            return Vec::new();
        };
        match task.pool {
            Pool::General => self.general -= 1,
            Pool::Repair => self.repair -= 1,
        }
        for key in &task.keys {
            if let Some(app) = key.app() {
                self.busy.remove(app);
            }
        }
        task.keys
    }

    /// Tasks in flight.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Apps whose next run is a repair (status and tests).
    #[cfg(test)]
    pub fn repairs_due(&self) -> usize {
        self.repairs_due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<Id> {
        // Real task ids: a runtime hands them out.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            (0..4).map(|_| set.spawn(async {}).id()).collect()
        })
    }

    #[test]
    fn an_apps_second_key_should_wait_while_its_first_runs() {
        let id = ids();
        let mut s = Slots::new(4);
        let app = Key::App("a".into());
        let health = Key::Health("a".into());
        assert!(s.accepts(&health));
        s.started(id[0], vec![health.clone()]);
        assert!(!s.accepts(&app), "one run per app");
        assert!(s.accepts(&Key::App("b".into())));
        assert!(s.accepts(&Key::Sweep));
        assert_eq!(s.finished(id[0]), [health]);
        assert!(s.accepts(&app));
    }

    #[test]
    fn a_repair_should_find_a_slot_while_slow_runs_hold_every_general_one() {
        let id = ids();
        let mut s = Slots::new(2);
        s.started(id[0], vec![Key::Health("a".into())]);
        s.started(id[1], vec![Key::Health("b".into())]);
        assert!(!s.accepts(&Key::App("c".into())), "general slots full");
        s.repair_due("c");
        assert!(s.accepts(&Key::App("c".into())));
        s.started(id[2], vec![Key::App("c".into())]);
        assert_eq!(s.repairs_due(), 0, "the run took the repair");
        s.repair_due("d");
        s.started(id[3], vec![Key::App("d".into())]);
        assert!(s.is_full());
        s.repair_due("e");
        assert!(!s.accepts(&Key::App("e".into())));
        s.finished(id[2]);
        assert!(s.accepts(&Key::App("e".into())));
        assert_eq!(s.len(), 3);
    }
}
