//! The scheduler's semantics, spec-named, under paused time.

use super::*;
use tokio::time::advance;

const MS: Duration = Duration::from_millis(1);

fn sched() -> Scheduler<&'static str> {
    Scheduler::default()
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_dedup_triggers_for_a_queued_key() {
    let mut s = sched();
    let now = Instant::now();
    assert_eq!(s.schedule("web", now), Scheduled::Queued(now));
    for _ in 0..100 {
        assert_eq!(s.schedule("web", now), Scheduled::Merged(now));
    }
    assert_eq!(s.queued(), 1);
    assert_eq!(s.pop_ready(now), Some("web"));
    assert_eq!(s.pop_ready(now), None);
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_let_the_earliest_deadline_win() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now + 300 * MS);
    assert_eq!(
        s.schedule("web", now + 100 * MS),
        Scheduled::Merged(now + 100 * MS)
    );
    assert_eq!(
        s.schedule("web", now + 200 * MS),
        Scheduled::Merged(now + 100 * MS)
    );
    assert_eq!(s.next_deadline(), Some(now + 100 * MS));
    assert_eq!(s.pop_ready(now), None, "not before its deadline");
    advance(100 * MS).await;
    assert_eq!(s.pop_ready(Instant::now()), Some("web"));
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_hand_out_keys_in_deadline_order() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("b", now + 2 * MS);
    s.schedule("a", now + MS);
    s.schedule("c", now + 3 * MS);
    let later = now + 10 * MS;
    let order: Vec<_> = std::iter::from_fn(|| s.pop_ready(later)).collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_hold_a_running_key_and_run_it_once_more_when_dirty() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now);
    assert_eq!(s.pop_ready(now), Some("web"));
    for _ in 0..50 {
        assert_eq!(s.schedule("web", now), Scheduled::Dirty);
    }
    assert_eq!(s.pop_ready(now), None, "never twice at once");
    let ok = Finished::Ok {
        restarted_after: None,
    };
    assert_eq!(s.finish(&"web", ok, now), Some(now));
    assert_eq!(s.pop_ready(now), Some("web"), "exactly one follow-up");
    assert_eq!(s.finish(&"web", ok, now), None);
    assert_eq!(s.pop_ready(now), None);
    assert!(s.is_idle());
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_back_off_failures_exponentially_and_reset_on_success() {
    let mut s = sched();
    let mut delays = Vec::new();
    s.schedule("web", Instant::now());
    for _ in 0..5 {
        let now = Instant::now();
        assert_eq!(s.pop_ready(now), Some("web"));
        let next = s.finish(&"web", Finished::Failed, now).unwrap();
        delays.push((next - now).as_secs());
        advance(next - now).await;
    }
    assert_eq!(delays, [1, 2, 4, 8, 16]);
    let now = Instant::now();
    assert_eq!(s.pop_ready(now), Some("web"));
    assert_eq!(
        s.finish(
            &"web",
            Finished::Ok {
                restarted_after: None
            },
            now
        ),
        None
    );
    assert_eq!(s.failures(&"web"), 0);
    // After a success, a trigger runs at once again.
    assert_eq!(s.schedule("web", now), Scheduled::Queued(now));
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_not_shorten_backoff_when_triggers_arrive() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now);
    s.pop_ready(now);
    s.pop_ready(now);
    let retry = s.finish(&"web", Finished::Failed, now).unwrap();
    assert_eq!(retry, now + Duration::from_secs(1));
    advance(100 * MS).await;
    for _ in 0..10 {
        assert_eq!(s.schedule("web", Instant::now()), Scheduled::Merged(retry));
    }
    assert_eq!(s.pop_ready(Instant::now()), None);
    assert_eq!(s.next_deadline(), Some(retry));
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_not_inflate_backoff_when_triggers_arrive() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now);
    s.pop_ready(now);
    s.finish(&"web", Finished::Failed, now);
    // Triggers while waiting: the count must not move, only real attempts move it.
    for _ in 0..10 {
        s.schedule("web", Instant::now());
    }
    assert_eq!(s.failures(&"web"), 1);
    advance(Duration::from_secs(1)).await;
    let now = Instant::now();
    assert_eq!(s.pop_ready(now), Some("web"));
    let next = s.finish(&"web", Finished::Failed, now).unwrap();
    assert_eq!(next - now, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_fold_a_dirty_follow_up_into_the_failure_retry() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now);
    s.pop_ready(now);
    assert_eq!(s.schedule("web", now), Scheduled::Dirty);
    let next = s.finish(&"web", Finished::Failed, now).unwrap();
    assert_eq!(
        next,
        now + Duration::from_secs(1),
        "one run, after the backoff"
    );
    assert_eq!(s.queued(), 1);
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_delay_restarts_of_a_crash_loop_and_reset_after_a_long_run() {
    let mut s = sched();
    let quick = Finished::Ok {
        restarted_after: Some(Duration::from_secs(1)),
    };
    let mut waits = Vec::new();
    for _ in 0..4 {
        let now = Instant::now();
        let at = match s.schedule("web", now) {
            Scheduled::Queued(at) => at,
            other => panic!("{other:?}"),
        };
        waits.push((at - now).as_millis());
        advance(at - now).await;
        assert_eq!(s.pop_ready(Instant::now()), Some("web"));
        s.finish(&"web", quick, Instant::now());
    }
    assert_eq!(waits, [0, 100, 200, 400]);
    // The container then ran for a minute: no delay any more.
    advance(Duration::from_secs(60)).await;
    let now = Instant::now();
    s.schedule("web", now);
    s.pop_ready(now);
    s.finish(
        &"web",
        Finished::Ok {
            restarted_after: Some(Duration::from_secs(60)),
        },
        now,
    );
    assert_eq!(s.schedule("web", now), Scheduled::Queued(now));
}

#[tokio::test(start_paused = true)]
async fn pop_ready_if_should_pass_over_keys_it_declines_and_keep_their_place() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("c1", now);
    s.schedule("app", now + MS);
    s.schedule("c2", now + 2 * MS);
    s.schedule("c3", now + 50 * MS);
    let later = now + 10 * MS;
    let is_c = |k: &&str| k.starts_with('c');
    assert_eq!(s.pop_ready_if(later, |k| !is_c(k)), Some("app"));
    assert_eq!(s.pop_ready_if(later, is_c), Some("c1"));
    assert_eq!(s.pop_ready_if(later, is_c), Some("c2"));
    assert_eq!(s.pop_ready_if(later, is_c), None, "c3 is not due yet");
    assert_eq!(s.queued(), 1);
}

#[tokio::test(start_paused = true)]
async fn debounce_should_let_the_latest_deadline_win() {
    let mut s = sched();
    let (settle, max) = (50 * MS, 1000 * MS);
    let t0 = Instant::now();
    assert_eq!(
        s.debounce("m", t0, settle, max),
        Scheduled::Queued(t0 + settle)
    );
    advance(30 * MS).await;
    let t1 = Instant::now();
    assert_eq!(
        s.debounce("m", t1, settle, max),
        Scheduled::Merged(t1 + settle)
    );
    assert_eq!(s.queued(), 1);
    advance(49 * MS).await;
    assert_eq!(s.pop_ready(Instant::now()), None, "still settling");
    advance(MS).await;
    assert_eq!(
        s.pop_ready(Instant::now()),
        Some("m"),
        "once, after it settled"
    );
}

#[tokio::test(start_paused = true)]
async fn debounce_should_not_hold_a_key_back_past_its_cap() {
    let mut s = sched();
    let (settle, max) = (50 * MS, 200 * MS);
    let t0 = Instant::now();
    for _ in 0..20 {
        s.debounce("m", Instant::now(), settle, max);
        advance(20 * MS).await;
    }
    assert_eq!(s.next_deadline(), Some(t0 + max));
    assert_eq!(s.pop_ready(Instant::now()), Some("m"));
    // The next window starts with the next trigger.
    let now = Instant::now();
    s.finish(
        &"m",
        Finished::Ok {
            restarted_after: None,
        },
        now,
    );
    assert_eq!(
        s.debounce("m", now, settle, max),
        Scheduled::Queued(now + settle)
    );
}

#[tokio::test(start_paused = true)]
async fn debounce_of_a_running_key_should_run_it_once_more_after_the_last_trigger() {
    let mut s = sched();
    let (settle, max) = (50 * MS, 1000 * MS);
    let now = Instant::now();
    s.debounce("m", now, settle, max);
    advance(settle).await;
    assert_eq!(s.pop_ready(Instant::now()), Some("m"));
    let t1 = Instant::now();
    assert_eq!(s.debounce("m", t1, settle, max), Scheduled::Dirty);
    advance(10 * MS).await;
    let t2 = Instant::now();
    assert_eq!(s.debounce("m", t2, settle, max), Scheduled::Dirty);
    let ok = Finished::Ok {
        restarted_after: None,
    };
    assert_eq!(s.finish(&"m", ok, t2), Some(t2 + settle));
}

#[tokio::test(start_paused = true)]
async fn a_fix_should_not_wait_out_the_backoff() {
    let mut s = sched();
    // Failing for a while: the next retry is minutes away.
    s.schedule("web", Instant::now());
    for _ in 0..8 {
        let now = Instant::now();
        s.pop_ready(now);
        let next = s.finish(&"web", Finished::Failed, now).unwrap();
        advance(next - now).await;
    }
    let now = Instant::now();
    s.pop_ready(now);
    s.finish(&"web", Finished::Failed, now);
    assert!(s.next_deadline().unwrap() - now >= Duration::from_secs(256));
    // The manifest is fixed (or deleted): at once.
    advance(Duration::from_secs(3)).await;
    let now = Instant::now();
    s.reset_backoff(&"web", now);
    assert_eq!(s.schedule("web", now), Scheduled::Merged(now));
    assert_eq!(s.pop_ready(now), Some("web"));
    // And should the new declaration fail too, it starts over at 1 s.
    let next = s.finish(&"web", Finished::Failed, now).unwrap();
    assert_eq!(next - now, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_fix_should_not_wait_out_a_crash_loop_delay() {
    let mut s = sched();
    let quick = Finished::Ok {
        restarted_after: Some(Duration::ZERO),
    };
    for _ in 0..12 {
        let now = Instant::now();
        let at = match s.schedule("web", now) {
            Scheduled::Queued(at) | Scheduled::Merged(at) => at,
            Scheduled::Dirty => unreachable!(),
        };
        advance(at - now).await;
        s.pop_ready(Instant::now());
        s.finish(&"web", quick, Instant::now());
    }
    let now = Instant::now();
    assert!(
        matches!(s.schedule("web", now), Scheduled::Queued(at) if at - now >= Duration::from_secs(60))
    );
    s.reset_backoff(&"web", now);
    assert_eq!(s.pop_ready(now), Some("web"), "runs at once");
}

#[tokio::test(start_paused = true)]
async fn a_fix_arriving_while_the_key_runs_should_follow_at_once() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now);
    s.pop_ready(now);
    // Fixed while the old declaration's run is in flight, which then fails.
    s.reset_backoff(&"web", now);
    assert_eq!(s.schedule("web", now), Scheduled::Dirty);
    assert_eq!(s.finish(&"web", Finished::Failed, now), Some(now));
    assert_eq!(s.failures(&"web"), 0);
    assert_eq!(s.pop_ready(now), Some("web"));
}

#[tokio::test(start_paused = true)]
async fn scheduler_should_retry_promptly_after_reset_failures() {
    let mut s = sched();
    let now = Instant::now();
    s.schedule("web", now);
    for _ in 0..6 {
        let now = Instant::now();
        s.pop_ready(now);
        let next = s.finish(&"web", Finished::Failed, now).unwrap();
        advance(next - now).await;
    }
    let now = Instant::now();
    s.pop_ready(now);
    s.finish(&"web", Finished::Failed, now);
    assert!(s.next_deadline().unwrap() > now + Duration::from_secs(60));
    s.reset_failures(now);
    assert_eq!(s.next_deadline(), Some(now));
    assert_eq!(s.failures(&"web"), 0);
}
