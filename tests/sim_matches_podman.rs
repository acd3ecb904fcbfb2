//! The simulated podman emits what the real one does: one scripted scenario, run against both, same events.
//!
//! Needs the real podman (scripts/setup-host): a missing podman is a failure,
//! never a skip. It runs on the stack under test (tests/common), and the
//! simulation emits the event set of that podman's version (podman 4's or
//! 5's, `EventSet::for_version`). Compared per step: type, action, container
//! name, podkeeper's labels and `containerExitCode` (on every event: podman 4
//! puts one on each, podman 5 only on `died` and `remove`); not ids or times.
//! When a container is stopped (`podman stop`, `rm -f`, a forced REST
//! remove), podman's stop path races conmon's cleanup process: seen on 4.3
//! were `stop, died, cleanup, cleanup`, `died, cleanup, cleanup`,
//! `stop, died, remove` and `died, cleanup, remove`. For those steps, `stop`
//! and `cleanup` are left out of both sides before comparing; everything else
//! must match exactly. `podman rename` emits one `rename` event that names
//! the container by its new name only (recorded on podman 4.3.1). Each
//! healthcheck run emits `health_status` (compared with its `HealthStatus`:
//! podman 4.3's says the status from before the check, 5's the one after;
//! 4.3 keeps the failing streak across the crash and restart) and, on 4.3,
//! `exec_died` with the check's exit code.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use podkeeper::manifest::{assemble, parse_manifest};
use podkeeper::reconcile::app::labels_for;
use podkeeper::runtime::podman::{PodmanRuntime, Timeouts};
use podkeeper::runtime::sim_podman::{EventSet, SimRuntime};
use podkeeper::runtime::{CreateRequest, HealthCall, Podman, StopWith};
use podkeeper::trigger::{PodmanEvent, StreamStatus, Trigger};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One step of the scenario and the action of the event that ends it.
#[derive(Debug, Clone, Copy)]
enum Step {
    Create,
    Start,
    /// `kill -9` of the container's main process.
    Crash,
    /// `podman stop` (the container exits on SIGTERM).
    StopByHand,
    /// `podman rm -f` of the running container.
    RemoveByHand,
    /// podkeeper's own forced remove (REST), of the running container.
    Remove,
    /// `podman rename NAME NAME-old` of the running container.
    RenameByHand,
    /// `podman rm -f NAME-old` (the renamed container).
    RemoveRenamedByHand,
    /// podkeeper's healthcheck call (`GET …/healthcheck`); the check fails.
    Check,
}

const SCENARIO: &[Step] = &[
    Step::Create,
    Step::Start,
    Step::Check,
    Step::Check,
    Step::Crash,
    Step::Start,
    Step::Check,
    Step::StopByHand,
    Step::Start,
    Step::RemoveByHand,
    Step::Create,
    Step::Start,
    Step::RenameByHand,
    Step::RemoveRenamedByHand,
    Step::Create,
    Step::Start,
    Step::Remove,
];

/// The name a container gets by `Step::RenameByHand`.
fn renamed(name: &str) -> String {
    format!("{name}-old")
}

/// What is compared of an event.
type Seen = (
    String,
    String,
    String,
    Vec<(String, String)>,
    Option<String>,
    Option<String>,
);

fn seen(ev: &PodmanEvent) -> Seen {
    let labels = ev
        .actor
        .attributes
        .iter()
        .filter(|(k, _)| k.starts_with("io.podkeeper."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let code = ev.label("containerExitCode").map(String::from);
    let health = ev
        .rest
        .get("HealthStatus")
        .and_then(|h| h.as_str())
        .map(String::from);
    (
        ev.typ.clone(),
        ev.action.clone(),
        ev.name().to_string(),
        labels,
        code,
        health,
    )
}

fn request(name: &str) -> CreateRequest {
    let text = format!(
        "app:\n  id: {name}\n  container:\n    image: localhost/bb:1\n    command: [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; sleep 100000 & wait\"]\n    network: none\n    healthcheck:\n      command: [\"/bin/test\", \"-e\", \"/tmp/ok\"]\n      retries: 2\n"
    );
    let file = Path::new("t.yaml");
    let app = parse_manifest(file, &text).expect("manifest");
    let set = assemble(vec![(file.into(), app)], vec![]);
    let loaded = &set.apps[name];
    CreateRequest {
        name: name.to_string(),
        spec: loaded.app.container.clone(),
        labels: labels_for(loaded),
        secrets: vec![],
    }
}

async fn act<R: Podman>(rt: &R, step: Step, req: &CreateRequest, by_hand: &dyn Fn(Step)) {
    let name = req.name.as_str();
    let r = match step {
        Step::Create => rt.create_container(req).await.map(|_| ()),
        Step::Start => rt.start_container(name).await,
        Step::Remove => {
            let with = StopWith {
                timeout: Duration::from_secs(10),
            };
            rt.remove_container(name, with).await
        }
        Step::Check => match rt
            .run_healthcheck(
                name,
                HealthCall {
                    timeout: Duration::from_secs(10),
                    command: &[],
                    pid: None,
                },
            )
            .await
        {
            Ok(r) => {
                assert!(!r.passed, "the check tests a file that is not there");
                Ok(())
            }
            Err(e) => Err(e),
        },
        other => {
            by_hand(other);
            Ok(())
        }
    };
    r.unwrap_or_else(|e| panic!("{step:?}: {e}"));
}

/// Collect the events of `name` (and of its renamed self) until none came
/// for `quiet` (podman's file logger delivers up to 250 ms late).
async fn collect(
    rx: &mut mpsc::Receiver<Trigger>,
    name: &str,
    quiet: Duration,
    first_within: Duration,
) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut wait = first_within;
    while let Ok(Some(t)) = tokio::time::timeout(wait, rx.recv()).await {
        if let Trigger::Podman(ev) = t {
            if ev.typ == "container" && (ev.name() == name || ev.name() == renamed(name)) {
                out.push(seen(&ev));
                wait = quiet;
            }
        }
    }
    out
}

/// The events of a stop without the two whose presence is a race in podman.
fn without_racy(seq: &[Seen]) -> Vec<Seen> {
    seq.iter()
        .filter(|s| s.1 != "stop" && s.1 != "cleanup")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_should_emit_the_events_real_podman_emits() {
    let _g = common::serial();
    let name = format!("rec-simcheck-{}", std::process::id());
    let req = request(&name);
    let _ = common::podman(&["rm", "-f", "-t", "0", &name, &renamed(&name)]);

    // The real podman, through podkeeper's own events source and REST runtime.
    let socket = common::socket();
    let (tx, mut rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    tokio::spawn(podkeeper::sources::podman_events::run(
        socket.clone(),
        tx,
        cancel.clone(),
    ));
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(Trigger::Stream(StreamStatus::Connected { .. }))) => {}
        other => panic!("the events stream did not connect: {other:?}"),
    }
    let real = PodmanRuntime::new(&socket, Timeouts::default());
    let version = real.engine().await.expect("podman's version").version;
    let set = EventSet::for_version(&version);
    let hand = |step: Step| {
        let name = name.as_str();
        match step {
            Step::Crash => {
                let pid = common::podman_ok(&["inspect", "-f", "{{.State.Pid}}", name]);
                common::kill9(pid.parse().expect("pid"));
            }
            Step::StopByHand => {
                common::podman_ok(&["stop", name]);
            }
            Step::RemoveByHand => {
                common::podman_ok(&["rm", "-f", name]);
            }
            Step::RenameByHand => {
                common::podman_ok(&["rename", name, &renamed(name)]);
            }
            Step::RemoveRenamedByHand => {
                common::podman_ok(&["rm", "-f", &renamed(name)]);
            }
            _ => {}
        }
    };
    let mut real_steps = Vec::new();
    for &step in SCENARIO {
        act(&real, step, &req, &hand).await;
        let events = collect(
            &mut rx,
            &name,
            Duration::from_millis(700),
            Duration::from_secs(5),
        )
        .await;
        real_steps.push(events);
    }
    cancel.cancel();
    let _ = common::podman(&["rm", "-f", "-t", "0", &name, &renamed(&name)]);

    // The simulation, through the same calls.
    let (etx, mut erx) = mpsc::unbounded_channel();
    let sim = Arc::new(SimRuntime::new(&["localhost/bb:1"], Some(etx)).with_event_set(set));
    sim.set_healthy(&name, false);
    let sim_hand = |step: Step| match step {
        Step::Crash => sim.crash(&name, 137),
        Step::StopByHand => sim.stop_by_hand(&name),
        Step::RemoveByHand => sim.remove_by_hand(&name),
        Step::RenameByHand => sim.rename_by_hand(&name, &renamed(&name)),
        Step::RemoveRenamedByHand => sim.remove_by_hand(&renamed(&name)),
        _ => {}
    };
    let mut sim_steps = Vec::new();
    for &step in SCENARIO {
        act(&*sim, step, &req, &sim_hand).await;
        let mut events = Vec::new();
        while let Ok(ev) = erx.try_recv() {
            events.push(seen(&ev));
        }
        sim_steps.push(events);
    }

    for ((step, real), sim) in SCENARIO.iter().zip(&real_steps).zip(&sim_steps) {
        let racy_stop = matches!(
            step,
            Step::StopByHand | Step::RemoveByHand | Step::Remove | Step::RemoveRenamedByHand
        );
        let same = real == sim || (racy_stop && without_racy(real) == without_racy(sim));
        assert!(
            same,
            "{step:?}: podman {version} emitted\n  {:?}\nthe simulation ({set:?})\n  {:?}",
            real.iter().map(|s| (&s.1, &s.4, &s.5)).collect::<Vec<_>>(),
            sim.iter().map(|s| (&s.1, &s.4, &s.5)).collect::<Vec<_>>(),
        );
    }
}
