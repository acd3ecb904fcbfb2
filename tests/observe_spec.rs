//! The observer seam (`podkeeper::observe`): an observer reads every record the debug printer reads, and counting them allocates nothing.
//!
//! Metrics count every event by source and type; at hundreds of thousands of
//! podman events a second an allocation per event would be most of the
//! reactor's work. The cost test counts the allocations of the test's own
//! thread (a counting global allocator) while the reactor takes podman events.

mod sim;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podkeeper::observe::{EventSeen, Observer, Reacted, Source};
use podkeeper::trigger::{StreamStatus, Trigger};
use sim::{container_event, Setup};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Counts events by source and type as a metrics observer would: in fixed
/// slots, the type compared, never copied.
#[derive(Default)]
struct Count {
    by_source: [u64; Source::ALL.len()],
    died: u64,
}

struct Counter(Arc<Mutex<Count>>);

impl Observer for Counter {
    fn event(&mut self, e: &EventSeen<'_>) {
        let mut c = self.0.lock().unwrap();
        c.by_source[e.source as usize] += 1;
        if e.kind == "died" {
            c.died += 1;
        }
    }
}

fn event(action: &str, name: &str, labels: &[(&str, &str)]) -> Trigger {
    let mut attributes = labels.to_vec();
    attributes.push(("name", name));
    Trigger::Podman(container_event(action, &format!("{name}-id"), &attributes))
}

/// The allocations of handling `triggers`, after handling them once to warm
/// up (tracing's call sites register on first use, maps grow).
fn allocations_of(triggers: &[Trigger], observer: Option<Box<dyn Observer>>) -> u64 {
    let set = sim::manifests(&[(
        "web.yaml",
        "app:\n  id: web\n  container:\n    image: localhost/bb:1\n".into(),
    )]);
    // Not --debug, and no tracing subscriber: nobody prints.
    let mut setup = Setup::fixed(sim::podman(), set).quiet();
    if let Some(o) = observer {
        setup = setup.observer(o);
    }
    let (mut reactor, _sim) = setup.build();
    for t in triggers {
        reactor.handle(t.clone());
    }
    let copies: Vec<Trigger> = triggers.to_vec();
    let before = allocs();
    for t in copies {
        reactor.handle(t);
    }
    allocs() - before
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_observer_counting_events_should_cost_no_allocation() {
    let app = [("io.podkeeper.app", "web")];
    let ignored: Vec<Trigger> = (0..200)
        .flat_map(|i| {
            [
                // Unmanaged, an orphan, and an action that changes nothing.
                event("died", &format!("stranger{i}"), &[]),
                event("died", "lost", &[("io.podkeeper.app", "lost")]),
                event("exec_died", "web", &app),
            ]
        })
        .collect();
    // Each of these schedules app/web (a key, allocated, merged or marked dirty).
    let scheduled: Vec<Trigger> = (0..200).map(|_| event("died", "web", &app)).collect();

    let count = Arc::new(Mutex::new(Count::default()));
    let counted = allocations_of(&ignored, Some(Box::new(Counter(count.clone()))));
    assert_eq!(
        counted,
        0,
        "allocations for {} ignored events",
        ignored.len()
    );
    {
        let c = count.lock().unwrap();
        // Warm-up and measured pass, 600 events each.
        assert_eq!(c.by_source[Source::Podman as usize], 1200);
        assert_eq!(c.died, 800);
    }

    let bare = allocations_of(&scheduled, None);
    let with_counter = allocations_of(
        &scheduled,
        Some(Box::new(Counter(Arc::new(Mutex::default())))),
    );
    assert!(bare > 0, "scheduling allocates its key");
    assert_eq!(
        with_counter, bare,
        "the counting observer added allocations"
    );
}

/// One reaction as an observer kept it: key, action, call names, ok, retry.
type Kept = (String, String, Vec<String>, bool, Option<Duration>);

/// What an observer got: (source, kind, verdict) per event, and the reactions.
#[derive(Default)]
struct Seen {
    events: Vec<(String, String, String)>,
    reactions: Vec<Kept>,
}

struct Collect(Arc<Mutex<Seen>>);

impl Observer for Collect {
    fn event(&mut self, e: &EventSeen<'_>) {
        let mut seen = self.0.lock().unwrap();
        seen.events.push((
            e.source.as_str().into(),
            e.kind.into(),
            e.verdict.to_string(),
        ));
    }
    fn reaction(&mut self, r: &Reacted<'_>) {
        let calls = r
            .reaction
            .calls
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        let mut seen = self.0.lock().unwrap();
        seen.reactions.push((
            r.reaction.key.to_string(),
            r.reaction.action.as_str().to_string(),
            calls,
            r.reaction.result.is_ok(),
            r.retry_in,
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn an_observer_should_read_every_event_verdict_and_reaction_the_printer_reads() {
    let set = sim::manifests(&[(
        "web.yaml",
        "app:\n  id: web\n  container:\n    image: localhost/bb:1\n".into(),
    )]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    // The printer in --debug mode, to compare with.
    let (mut reactor, sim) = Setup::fixed(sim::podman(), set)
        .observer(Box::new(Collect(seen.clone())))
        .build();
    reactor.handle(Trigger::Stream(StreamStatus::Connected { resumed: false }));
    reactor.run_until_idle().await;

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.events,
        [
            ("podman".into(), "connected".into(), "queue sweep".into()),
            ("sweep".into(), "drift".into(), "queue app/web".into())
        ] as [(String, String, String); 2]
    );
    let web = seen
        .reactions
        .iter()
        .find(|r| r.0 == "app/web")
        .expect("a reaction for app/web");
    assert_eq!(web.1, "create");
    assert!(web.2.contains(&"create".to_string()), "{:?}", web.2);
    assert!(web.3 && web.4.is_none());
    // The printer printed one line per record the observer got.
    let out = sim.output();
    assert_eq!(out.matches("  event  ").count(), seen.events.len(), "{out}");
    assert_eq!(
        out.matches("  react  ").count(),
        seen.reactions.len(),
        "{out}"
    );
}
