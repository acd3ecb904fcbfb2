//! The keyed scheduler: per key idle / queued / running(+dirty), earliest deadline wins, per-key backoff.
//!
//! It decides *when* a key runs and never *what* running it means; the reactor
//! owns one and asks it for ready keys. The rules (after kube-runtime's
//! scheduler and client-go's workqueue):
//!
//! * A key is **idle**, **queued** (with a deadline) or **running**.
//! * Scheduling a queued key keeps the earlier of the two deadlines, so any
//!   number of triggers collapse into one run.
//! * Scheduling a running key marks it **dirty**: it is never handed out twice at
//!   once, and runs exactly once more after it finishes, however many triggers
//!   arrived meanwhile.
//! * A failure holds the key back for an exponentially growing delay, reset by a
//!   success. Triggers that arrive meanwhile are folded into the retry: they can
//!   neither shorten the delay (no hot loop) nor lengthen it (the failure count
//!   only moves on real attempts).
//! * A debounced key ([`Scheduler::debounce`]) is the exception: its latest
//!   deadline wins, capped, so a file written twice within the settle time is
//!   read once, after it settles.
//! * A container that exited soon after being started counts as a crash loop:
//!   its next restart waits 100 ms doubling (Docker's restart manager), reset once
//!   a run lasts 10 s.
//! * A change of declaration is news ([`Scheduler::reset_backoff`]): it wipes
//!   the key's failure and crash-loop backoff and runs it at once (a running
//!   key runs again as soon as it finishes, whatever that run earned).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{Backoff, CRASH_LOOP_UPTIME};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Queued { at: Instant, seq: u64 },
    Running { follow_up: Option<Instant> },
}

#[derive(Debug, Clone)]
struct KeyState {
    phase: Phase,
    failures: u32,
    quick_exits: u32,
    failure_until: Option<Instant>,
    crash_until: Option<Instant>,
    /// When the first trigger a debounce is holding back came.
    debounce_since: Option<Instant>,
    /// Its declaration changed while it ran: the run's outcome (made from
    /// the old declaration) earns it no backoff.
    redeclared: bool,
}

impl KeyState {
    fn new() -> Self {
        KeyState {
            phase: Phase::Idle,
            failures: 0,
            quick_exits: 0,
            failure_until: None,
            crash_until: None,
            debounce_since: None,
            redeclared: false,
        }
    }

    /// The earliest moment the key may run again.
    fn not_before(&self) -> Option<Instant> {
        self.failure_until.max(self.crash_until)
    }

    fn is_forgettable(&self) -> bool {
        self.phase == Phase::Idle && self.failures == 0 && self.quick_exits == 0
    }
}

/// What scheduling a key did, for the debug output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// Newly queued to run at this instant.
    Queued(Instant),
    /// Already queued; it runs at this instant (the earlier deadline won).
    Merged(Instant),
    /// Running now: it runs once more when done.
    Dirty,
}

/// How a run of a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Done. `restarted_after` is the uptime of the container that had exited,
    /// when this run started it again (feeds the crash-loop delay).
    Ok { restarted_after: Option<Duration> },
    /// Could not be done; retry after the failure backoff.
    Failed,
}

/// Which deadline wins when a queued or running key is asked for again.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// `schedule`: a trigger never delays what is already due.
    Earliest,
    /// `debounce`: each trigger puts the run off until writes settle.
    Latest,
}

impl Keep {
    fn pick(self, a: Instant, b: Instant) -> Instant {
        match self {
            Keep::Earliest => a.min(b),
            Keep::Latest => a.max(b),
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Scheduler<K> {
    keys: HashMap<K, KeyState>,
    queue: BTreeMap<(Instant, u64), K>,
    seq: u64,
    running: usize,
    failure: Backoff,
    crash: Backoff,
}

impl<K: Clone + Eq + Hash> Default for Scheduler<K> {
    fn default() -> Self {
        Self::new(Backoff::FAILURE, Backoff::CRASH_LOOP)
    }
}

impl<K: Clone + Eq + Hash> Scheduler<K> {
    pub fn new(failure: Backoff, crash: Backoff) -> Self {
        Scheduler {
            keys: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            running: 0,
            failure,
            crash,
        }
    }

    /// Ask for `key` to run no earlier than `at` (and no earlier than its backoff allows).
    pub fn schedule(&mut self, key: K, at: Instant) -> Scheduled {
        self.place(key, at, Keep::Earliest)
    }

    /// Ask for `key` to run once triggers have stopped coming for `settle`:
    /// each trigger moves a queued key's deadline to `now + settle` (the
    /// latest deadline wins), but never past `max` after the first trigger
    /// it holds back, so a steady trickle cannot put it off for ever. A
    /// running key runs once more, `settle` after the last trigger. Backoff
    /// holds as for [`Scheduler::schedule`].
    pub fn debounce(&mut self, key: K, now: Instant, settle: Duration, max: Duration) -> Scheduled {
        let state = Self::state_of(&mut self.keys, &key);
        let since = *state.debounce_since.get_or_insert(now);
        // Past the cap, a queued key stays ready where it is.
        let at = (now + settle).min(since + max);
        self.place(key, at, Keep::Latest)
    }

    /// Queue `key` for `at` (no earlier than its backoff), or fold `at` into
    /// the deadline it already has, keeping the earliest or the latest.
    fn place(&mut self, key: K, at: Instant, keep: Keep) -> Scheduled {
        let state = Self::state_of(&mut self.keys, &key);
        let at = at.max(state.not_before().unwrap_or(at));
        match state.phase {
            Phase::Running { follow_up } => {
                state.phase = Phase::Running {
                    follow_up: Some(follow_up.map_or(at, |f| keep.pick(f, at))),
                };
                Scheduled::Dirty
            }
            Phase::Queued { at: queued, .. } if keep.pick(queued, at) == queued => {
                Scheduled::Merged(queued)
            }
            Phase::Queued { at: queued, seq } => {
                self.queue.remove(&(queued, seq));
                Self::enqueue(&mut self.queue, &mut self.seq, state, key, at);
                Scheduled::Merged(at)
            }
            Phase::Idle => {
                Self::enqueue(&mut self.queue, &mut self.seq, state, key, at);
                Scheduled::Queued(at)
            }
        }
    }

    /// The state of `key`, made idle if it had none.
    fn state_of<'a>(keys: &'a mut HashMap<K, KeyState>, key: &K) -> &'a mut KeyState {
        // Look up before inserting: most triggers find their key known, and
        // cloning it for `entry` would cost an allocation per trigger.
        if !keys.contains_key(key) {
            keys.insert(key.clone(), KeyState::new());
        }
        match keys.get_mut(key) {
            Some(state) => state,
            None => unreachable!("inserted above"),
        }
    }

    fn enqueue(
        queue: &mut BTreeMap<(Instant, u64), K>,
        seq: &mut u64,
        state: &mut KeyState,
        key: K,
        at: Instant,
    ) {
        *seq += 1;
        state.phase = Phase::Queued { at, seq: *seq };
        queue.insert((at, *seq), key);
    }

    /// The next key whose deadline has come, now marked running.
    #[cfg(test)] // the reactor asks with a filter (`…_if`)
    pub fn pop_ready(&mut self, now: Instant) -> Option<K> {
        self.pop_ready_if(now, |_| true)
    }

    /// The earliest ready key that `accept`s, now marked running. Ready keys it
    /// passes over keep their place (the reactor holds companion keys back while
    /// a companion batch runs, and collects every ready one into the next).
    pub fn pop_ready_if(&mut self, now: Instant, accept: impl Fn(&K) -> bool) -> Option<K> {
        let (at, seq) = self
            .queue
            .range(..)
            .take_while(|((at, _), _)| *at <= now)
            .find(|(_, k)| accept(k))
            .map(|(&pos, _)| pos)?;
        let key = self.queue.remove(&(at, seq))?;
        let state = self.keys.get_mut(&key)?;
        state.phase = Phase::Running { follow_up: None };
        // This run sees every trigger held back so far.
        state.debounce_since = None;
        self.running += 1;
        Some(key)
    }

    /// When the earliest queued key becomes ready.
    #[cfg(test)] // the reactor asks with a filter (`…_if`)
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|(&(at, _), _)| at)
    }

    /// When the earliest queued key that `accept`s becomes ready (the reactor
    /// must not wake up for keys it holds back).
    pub fn next_deadline_if(&self, accept: impl Fn(&K) -> bool) -> Option<Instant> {
        self.queue
            .iter()
            .find(|(_, k)| accept(k))
            .map(|(&(at, _), _)| at)
    }

    /// Record how a run ended. Returns when the key runs next, if it does
    /// (a retry after failure, or the follow-up of a dirty key).
    pub fn finish(&mut self, key: &K, finished: Finished, now: Instant) -> Option<Instant> {
        let state = self.keys.get_mut(key)?;
        let Phase::Running { follow_up } = state.phase else {
            return None;
        };
        self.running -= 1;
        state.phase = Phase::Idle;
        let mut next = follow_up;
        let finished = if std::mem::take(&mut state.redeclared) {
            // That run worked from the old declaration; the new one starts clean.
            Finished::Ok {
                restarted_after: None,
            }
        } else {
            finished
        };
        match finished {
            Finished::Ok { restarted_after } => {
                state.failures = 0;
                state.failure_until = None;
                match restarted_after {
                    Some(uptime) if uptime < CRASH_LOOP_UPTIME => {
                        state.quick_exits += 1;
                        state.crash_until = Some(now + self.crash.delay(state.quick_exits));
                    }
                    Some(_) => {
                        state.quick_exits = 0;
                        state.crash_until = None;
                    }
                    None => {}
                }
            }
            Finished::Failed => {
                state.failures += 1;
                let until = now + self.failure.delay(state.failures);
                state.failure_until = Some(until);
                next = Some(next.map_or(until, |f| f.max(until)));
            }
        }
        match next {
            Some(at) => match self.schedule(key.clone(), at) {
                Scheduled::Queued(at) | Scheduled::Merged(at) => Some(at),
                Scheduled::Dirty => None,
            },
            None => {
                if self.keys.get(key).is_some_and(KeyState::is_forgettable) {
                    self.keys.remove(key);
                }
                None
            }
        }
    }

    /// Forget failure backoff on every key (the runtime came back: what failed
    /// because it was away deserves a prompt retry). Crash-loop delays stay.
    pub fn reset_failures(&mut self, now: Instant) {
        let mut moved = Vec::new();
        for (key, state) in self.keys.iter_mut() {
            state.failures = 0;
            if state.failure_until.take().is_some() {
                if let Phase::Queued { at, seq } = state.phase {
                    let earliest = state.crash_until.unwrap_or(now).max(now);
                    if at > earliest {
                        moved.push((key.clone(), at, seq, earliest));
                    }
                }
            }
        }
        for (key, at, seq, earliest) in moved {
            self.queue.remove(&(at, seq));
            if let Some(state) = self.keys.get_mut(&key) {
                Self::enqueue(&mut self.queue, &mut self.seq, state, key, earliest);
            }
        }
    }

    /// The key's declaration changed (a manifest edited, added or deleted; a
    /// companion's definition changed): that is news, not another attempt at
    /// what failed. Forget its failure and crash-loop backoff and let it run
    /// now: a queued key moves to `now`; a running key's next run (if it is
    /// scheduled) follows it at once.
    pub fn reset_backoff(&mut self, key: &K, now: Instant) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        state.failures = 0;
        state.quick_exits = 0;
        state.failure_until = None;
        state.crash_until = None;
        match state.phase {
            Phase::Queued { at, seq } if at > now => {
                self.queue.remove(&(at, seq));
                Self::enqueue(&mut self.queue, &mut self.seq, state, key.clone(), now);
            }
            Phase::Running { .. } => state.redeclared = true,
            _ => {}
        }
    }

    /// client-go's `Forget`: drop all that is known of `key` (its backoff
    /// too), unless it is queued or running. True when nothing is kept of it.
    pub fn forget(&mut self, key: &K) -> bool {
        match self.keys.get(key).map(|s| s.phase) {
            None => true,
            Some(Phase::Idle) => {
                self.keys.remove(key);
                true
            }
            Some(Phase::Queued { .. } | Phase::Running { .. }) => false,
        }
    }

    /// How many keys it holds any state for (queued, running, or backing off).
    pub fn known(&self) -> usize {
        self.keys.len()
    }

    /// Until when the key's failure backoff or crash-loop delay holds it
    /// back, if either does (status shows it).
    pub fn held_until(&self, key: &K) -> Option<Instant> {
        self.keys.get(key).and_then(KeyState::not_before)
    }

    /// Consecutive failures of the key so far.
    #[cfg(test)] // the reactor asks with a filter (`…_if`)
    pub fn failures(&self, key: &K) -> u32 {
        self.keys.get(key).map_or(0, |s| s.failures)
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued, nothing running.
    #[cfg(test)] // the reactor asks `is_idle_but`
    pub fn is_idle(&self) -> bool {
        self.running == 0 && self.queue.is_empty()
    }

    /// Nothing running, and every queued key (there may be none) passes
    /// `f(key, deadline)`.
    pub fn is_idle_but(&self, f: impl Fn(&K, Instant) -> bool) -> bool {
        self.running == 0 && self.queue.iter().all(|(&(at, _), k)| f(k, at))
    }
}

#[cfg(test)]
mod tests;
