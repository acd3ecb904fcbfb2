//! Refused control-socket clients in the log: one line per client uid per minute, then a count of the rest, in a map of bounded size.
//!
//! A peer of another user is refused on every request; with the socket's
//! mode loosened by hand it can send thousands a second. The first refusal
//! of a uid is logged in full; the rest of that minute are only counted,
//! and the count is logged when the minute is over ("refused 4211 more
//! requests from uid 65534 in the last minute"), by the next refusal or by
//! [`Refusals::flush`] on a timer. A uid quiet for a whole minute is
//! forgotten. At most [`MAX_PEERS`] uids are told apart; any more share
//! one entry.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// One line per uid per this long.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Uids told apart; more share one entry ("other uids").
pub const MAX_PEERS: usize = 64;

/// Who was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Uid(u32),
    /// SO_PEERCRED failed.
    Unknown,
    /// Any uid past the first [`MAX_PEERS`].
    Others,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Uid(uid) => write!(f, "uid {uid}"),
            Peer::Unknown => f.write_str("clients of unknown uid"),
            Peer::Others => f.write_str("other uids"),
        }
    }
}

/// What to log for one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The first in its minute: log it in full.
    First,
    /// Counted, nothing to log.
    Counted,
    /// The minute before ended with this many counted: log the count (this
    /// refusal is counted in the new minute).
    Summary(u64),
}

#[derive(Debug)]
struct Window {
    since: Instant,
    counted: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Refusals {
    peers: HashMap<Peer, Window>,
}

impl Refusals {
    /// One refusal of `peer` at `now`.
    pub fn refused(&mut self, peer: Peer, now: Instant) -> Note {
        let peer = if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&peer) {
            Peer::Others
        } else {
            peer
        };
        let Some(w) = self.peers.get_mut(&peer) else {
            self.peers.insert(
                peer,
                Window {
                    since: now,
                    counted: 0,
                },
            );
            return Note::First;
        };
        if now.saturating_duration_since(w.since) < WINDOW {
            w.counted += 1;
            return Note::Counted;
        }
        w.since = now;
        match std::mem::replace(&mut w.counted, 1) {
            0 => {
                w.counted = 0;
                Note::First
            }
            n => Note::Summary(n),
        }
    }

    /// The counts of every minute over by `now` (to log), oldest state
    /// dropped: a uid with nothing counted is forgotten.
    pub fn flush(&mut self, now: Instant) -> Vec<(Peer, u64)> {
        let mut over = Vec::new();
        self.peers.retain(|peer, w| {
            if now.saturating_duration_since(w.since) < WINDOW {
                return true;
            }
            if w.counted == 0 {
                return false;
            }
            over.push((*peer, w.counted));
            w.since = now;
            w.counted = 0;
            true
        });
        over
    }

    /// How many peers are kept: never more than `MAX_PEERS + 1`.
    #[cfg(test)]
    pub fn peers(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_should_be_one_line_then_a_count_a_minute() {
        let mut r = Refusals::default();
        let nobody = Peer::Uid(65534);
        let mut notes = Vec::new();
        // 1000 refusals over 5 s.
        for _ in 0..1000 {
            notes.push(r.refused(nobody, Instant::now()));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(notes[0], Note::First);
        assert!(notes[1..].iter().all(|n| *n == Note::Counted));
        // Another uid has its own first line.
        assert_eq!(r.refused(Peer::Uid(1000), Instant::now()), Note::First);
        // Before the minute is over: nothing to say.
        assert_eq!(r.flush(Instant::now()), vec![]);
        tokio::time::sleep(WINDOW).await;
        assert_eq!(r.flush(Instant::now()), vec![(nobody, 999)]);
        // uid 1000 sent one: forgotten, as nobody will be after a quiet minute.
        assert_eq!(r.peers(), 1);
        tokio::time::sleep(WINDOW).await;
        assert_eq!(r.flush(Instant::now()), vec![]);
        assert_eq!(r.peers(), 0);
        assert_eq!(r.refused(nobody, Instant::now()), Note::First);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_past_the_minute_should_say_its_count_at_the_next_refusal() {
        let mut r = Refusals::default();
        let nobody = Peer::Uid(65534);
        assert_eq!(r.refused(nobody, Instant::now()), Note::First);
        for _ in 0..10 {
            assert_eq!(r.refused(nobody, Instant::now()), Note::Counted);
        }
        tokio::time::sleep(WINDOW).await;
        assert_eq!(r.refused(nobody, Instant::now()), Note::Summary(10));
        assert_eq!(r.refused(nobody, Instant::now()), Note::Counted);
        tokio::time::sleep(WINDOW).await;
        assert_eq!(r.flush(Instant::now()), vec![(nobody, 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn many_uids_should_share_one_entry_past_the_bound() {
        let mut r = Refusals::default();
        let mut firsts = 0;
        for uid in 0..100_000u32 {
            if r.refused(Peer::Uid(uid), Instant::now()) == Note::First {
                firsts += 1;
            }
        }
        assert_eq!(r.peers(), MAX_PEERS + 1);
        assert_eq!(firsts, MAX_PEERS + 1);
        tokio::time::sleep(WINDOW).await;
        let over = r.flush(Instant::now());
        assert_eq!(over, vec![(Peer::Others, 100_000 - MAX_PEERS as u64 - 1)]);
    }
}
