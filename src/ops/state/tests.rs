//! The board and the metrics against the real reactor on the simulated podman, in virtual time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::manifest::{assemble, parse_manifest};
use crate::reactor::{Reactor, ReactorConfig};
use crate::report::{Clock, Reporter, SharedBuf};
use crate::runtime::sim_podman::SimRuntime;
use crate::trigger::{PodmanEvent, StreamStatus, Trigger};

fn set(manifests: &[(&str, &str)]) -> ManifestSet {
    let parsed = manifests
        .iter()
        .map(|(id, extra)| {
            let text =
                format!("app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n{extra}");
            let file = format!("{id}.yaml");
            let app = parse_manifest(Path::new(&file), &text).unwrap();
            (file.into(), app)
        })
        .collect();
    assemble(parsed, vec![])
}

struct Rig {
    sim: SimRuntime,
    events: mpsc::UnboundedReceiver<PodmanEvent>,
    reactor: Reactor<SimRuntime>,
    shared: Arc<Shared>,
    _tx: mpsc::Sender<Trigger>,
}

impl Rig {
    async fn start(apps: ManifestSet, images: &[&str]) -> Rig {
        let (etx, events) = mpsc::unbounded_channel();
        let sim = SimRuntime::new(images, Some(etx));
        let (tx, rx) = mpsc::channel(1);
        let report = Reporter::new(
            false,
            Clock::SinceStart(tokio::time::Instant::now()),
            Box::new(SharedBuf::default()),
        );
        let shared = Shared::new();
        let reactor = Reactor::new(
            Arc::new(sim.clone()),
            rx,
            apps,
            ReactorConfig::default(),
            report,
        )
        .with_observer(Box::new(Records::new(shared.clone())));
        let mut rig = Rig {
            sim,
            events,
            reactor,
            shared,
            _tx: tx,
        };
        rig.reactor
            .handle(Trigger::Stream(StreamStatus::Connected { resumed: false }));
        rig.settle().await;
        rig
    }

    /// Hand the simulated podman's events to the reactor until all is done.
    async fn settle(&mut self) {
        loop {
            // Not run_until_idle: a failing or waiting key is retried for ever.
            let until = tokio::time::Instant::now() + Duration::from_secs(3);
            self.reactor.step_until(until).await;
            let mut any = false;
            while let Ok(ev) = self.events.try_recv() {
                self.reactor.handle(Trigger::Podman(ev));
                any = true;
            }
            if !any {
                return;
            }
        }
    }

    fn app(&self, id: &str) -> AppStatus {
        self.shared
            .status()
            .apps
            .into_iter()
            .find(|a| a.id == id)
            .unwrap()
    }

    fn metrics(&self) -> prometheus_parse::Scrape {
        let text = self.shared.metrics_text();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).unwrap()
    }
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test(start_paused = true)]
async fn two_kills_should_count_two_restarts_and_a_quick_third_hold_the_next_restart() {
    let mut rig = Rig::start(set(&[("web", ""), ("db", "")]), &["localhost/bb:1"]).await;
    let web = rig.app("web");
    assert_eq!((web.state.as_str(), web.restarts), ("running", 0));
    assert_eq!(web.why, None);
    let id = rig.sim.container("web").unwrap().id;
    assert_eq!(web.container.as_deref(), Some(id.as_str()));
    assert_eq!(web.last_reaction.as_ref().unwrap().action, "create");
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        rig.sim.crash("web", 137);
        rig.settle().await;
    }
    let web = rig.app("web");
    assert_eq!((web.state.as_str(), web.restarts), ("running", 2));
    let last = web.last_reaction.unwrap();
    assert_eq!(
        (
            last.action.as_str(),
            last.reason.as_str(),
            last.result.as_str()
        ),
        ("start", "exited (code 137)", "ok")
    );
    assert_eq!((web.why, web.backoff_until), (None, None));
    assert_eq!(rig.app("db").restarts, 0);
    let m = rig.metrics();
    assert_eq!(
        value(&m, "podkeeper_restarts_total", &[("app", "web")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &m,
            "podkeeper_reconciles_total",
            &[("kind", "app"), ("action", "start"), ("result", "ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "podkeeper_apps", &[("state", "running")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &m,
            "podkeeper_events_total",
            &[("source", "podman"), ("type", "died")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "podkeeper_sweep_duration_seconds_count", &[]),
        Some(1.0)
    );

    // At once again: restarted, and the crash-loop delay holds the next
    // restart back; running meanwhile, it is as declared.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.sim.crash("web", 1);
    rig.settle().await;
    let web = rig.app("web");
    assert_eq!((web.state.as_str(), web.restarts), ("running", 3));
    assert_eq!(web.why, None);
    assert!(web.backoff_until.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_missing_image_should_say_why_and_until_when_it_is_held() {
    let rig = Rig::start(set(&[("web", "")]), &[]).await;
    let web = rig.app("web");
    assert_eq!(web.state, "missing");
    let why = web.why.unwrap();
    assert!(
        why.starts_with("image missing: pull localhost/bb:1"),
        "{why}"
    );
    assert!(web.backoff_until.is_some(), "the failure backoff in force");
    assert!(web.last_reaction.unwrap().result.starts_with("failed: "));
    let m = rig.metrics();
    let failed = value(
        &m,
        "podkeeper_reconciles_total",
        &[("kind", "app"), ("action", "create"), ("result", "failed")],
    );
    assert!(failed.is_some_and(|n| n >= 1.0), "{failed:?}");
    // Its retry waits in the queue.
    assert_eq!(value(&m, "podkeeper_queue_depth", &[]), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_dependent_should_say_what_it_waits_for() {
    let apps = set(&[
        ("api", "  state: stopped\n"),
        ("web", "  depends_on:\n    - app: api\n"),
    ]);
    let rig = Rig::start(apps, &["localhost/bb:1"]).await;
    let web = rig.app("web");
    assert_eq!(web.state, "missing");
    assert_eq!(web.waiting_for.as_deref(), Some("api (created)"));
    assert_eq!(web.why.as_deref(), Some("waiting for api (created)"));
    let api = rig.app("api");
    assert_eq!(
        (api.declared.as_str(), api.state.as_str()),
        ("stopped", "created")
    );
    assert_eq!(api.why, None, "stopped as declared");
}

#[test]
fn causes_should_be_named_from_the_failures_category_never_its_words() {
    use crate::reconcile::Failure;
    use crate::runtime::systemd::SystemdError;
    use crate::runtime::RuntimeError;
    let name_held = Failure::NameHeld {
        name: "web".into(),
        after: Duration::from_secs(5),
        error: RuntimeError::NameInUse("name in use".into()),
    };
    let timeout = RuntimeError::Timeout {
        call: "inspect",
        after: Duration::from_secs(15),
    };
    let cases = [
        (Failure::NotOurs, "name conflict: "),
        (name_held, "name conflict: "),
        (
            Failure::Podman(RuntimeError::Unreachable("connection refused".into())),
            "podman unreachable: ",
        ),
        (Failure::Podman(timeout), "podman unreachable: "),
        (
            Failure::Pull {
                image: "localhost/x:1".into(),
                error: RuntimeError::NotFound("manifest unknown".into()),
            },
            "image missing: ",
        ),
        (
            Failure::Image(RuntimeError::NotFound("image not known".into())),
            "image missing: ",
        ),
        // A pull podman could not be asked for: podman is away, whatever
        // the text begins with.
        (
            Failure::Pull {
                image: "localhost/x:1".into(),
                error: RuntimeError::Unreachable("connection refused".into()),
            },
            "podman unreachable: pull localhost/x:1: ",
        ),
        // A systemctl that does not answer is not podman's outage.
        (
            Failure::Systemd(SystemdError::Timeout {
                call: "show",
                after: Duration::from_secs(10),
            }),
            "failed: systemctl show did not answer",
        ),
        (
            Failure::Podman(RuntimeError::Failed("oci runtime error".into())),
            "failed: oci runtime error",
        ),
    ];
    for (failure, words) in cases {
        assert!(
            cause(&failure).starts_with(words),
            "{failure:?}: {}",
            cause(&failure)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_sweep_podman_does_not_answer_should_be_shown_for_apps_not_as_declared() {
    let mut rig = Rig::start(set(&[("web", "")]), &["localhost/bb:1"]).await;
    rig.sim.set_unreachable(true);
    rig.reactor.handle(Trigger::SweepTick);
    rig.settle().await;
    let s = rig.shared.status();
    assert!(s.podman_error.is_some());
    // Still running as last seen: no why.
    assert_eq!(s.apps[0].why, None);
    let table = crate::ops::status::table(&s);
    assert!(table.contains("podman: "), "{table}");
    assert!(table.contains("1/1 apps as declared"), "{table}");
}

impl Rig {
    /// Hand over the events podman has sent so far and run only what is
    /// due in the next 10 ms (a held restart stays held).
    async fn deliver(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.reactor.handle(Trigger::Podman(ev));
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(10);
        self.reactor.step_until(until).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_container_running_again_after_a_flap_should_not_show_as_crash_looping() {
    let mut rig = Rig::start(set(&[("db", "")]), &["localhost/bb:1"]).await;
    // Six exits, each a few seconds after its start: the crash-loop delay
    // doubles to 3.2 s, held against the next restart.
    for _ in 0..6 {
        rig.sim.crash("db", 1);
        rig.settle().await;
    }
    assert_eq!(
        rig.sim.container("db").unwrap().state,
        crate::runtime::ContainerState::Running
    );
    let db = rig.app("db");
    assert_eq!((db.state.as_str(), db.restarts), ("running", 6), "{db:?}");
    assert_eq!(
        db.why, None,
        "running as declared, whatever the hold: {db:?}"
    );
    let table = crate::ops::status::table(&rig.shared.status());
    assert!(table.contains("1/1 apps as declared"), "{table}");

    // Down again within that hold: crash-looping while it is held down.
    rig.sim.crash("db", 1);
    rig.deliver().await;
    let db = rig.app("db");
    assert_eq!(db.state, "exited", "the died event seen: {db:?}");
    let why = db.why.unwrap_or_default();
    assert!(why.starts_with("crash-looping: exited after "), "{why}");
    assert!(why.contains("next restart not before"), "{why}");

    // Its held restart runs and the container stays up: as declared.
    rig.settle().await;
    let db = rig.app("db");
    assert_eq!((db.state.as_str(), db.restarts), ("running", 7), "{db:?}");
    assert_eq!(db.why, None, "{db:?}");
}

fn podman_event(action: &str, app: &str) -> PodmanEvent {
    serde_json::from_value(serde_json::json!({
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "c1", "Attributes": {"name": app, "io.podkeeper.app": app}},
        "timeNano": 1,
    }))
    .unwrap()
}

/// Hand `records` podman's `action` of app `db`'s container, decided `verdict`.
fn hear(records: &mut Records, action: &str, verdict: Verdict<'_>) {
    let ev = podman_event(action, "db");
    records.event(&EventSeen {
        at: tokio::time::Instant::now(),
        source: crate::observe::Source::Podman,
        kind: &ev.action,
        what: What::Podman(&ev),
        subject: crate::observe::Subject::Name("db"),
        verdict,
    });
}

/// The records of an instant crash loop, in the order the reactor hands
/// them over: the restart's start event, its died event while that
/// reconcile still runs, then the reaction (which found it running).
#[test]
fn an_exit_during_the_restart_that_started_it_should_show_as_crash_looping() {
    use crate::observe::Ignored;
    use crate::trigger::KeyRef;
    let shared = Shared::new();
    let mut records = Records::new(shared.clone());
    records.declared(&set(&[("db", "")]));
    hear(
        &mut records,
        "start",
        Verdict::Ignored(Ignored::NoChange("start")),
    );
    hear(&mut records, "died", Verdict::Dirty(KeyRef::App("db")));
    let mut r = Reaction::new(Key::App("db".into()));
    r.action = crate::reconcile::Action::Start;
    r.why = "exited (code 1)".into();
    r.restarted_after = Some(Duration::from_millis(40));
    r.found = vec![crate::reconcile::Found {
        app: "db".into(),
        container: Some("c1".into()),
        state: "running".into(),
        exit_code: None,
    }];
    records.reaction(&Reacted {
        at: tokio::time::Instant::now(),
        reaction: &r,
        retry_in: None,
        quiet: false,
        held_for: Some(Duration::from_secs(30)),
        queued: 1,
    });
    let db = shared.status().apps.remove(0);
    assert_eq!(db.state, "exited", "{db:?}");
    let why = db.why.unwrap_or_default();
    assert!(why.starts_with("crash-looping: exited after "), "{why}");
    // podman says it started again (the held restart): as declared.
    hear(
        &mut records,
        "start",
        Verdict::Ignored(Ignored::NoChange("start")),
    );
    let db = shared.status().apps.remove(0);
    assert_eq!((db.state.as_str(), db.why), ("running", None));
    // A died event a reconcile already saw changes nothing.
    hear(
        &mut records,
        "died",
        Verdict::Ignored(Ignored::SeenByCheck("db")),
    );
    assert_eq!(shared.status().apps[0].state, "running");
}

#[test]
fn a_deleted_apps_row_and_restart_series_should_be_forgotten() {
    let shared = Shared::new();
    let mut records = Records::new(shared.clone());
    records.declared(&set(&[("web", ""), ("db", "")]));
    shared.metrics.count_restart("web");
    shared.metrics.count_restart("db");
    records.declared(&set(&[("db", "")]));
    let scrape = |shared: &Shared| {
        let text = shared.metrics_text();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    };
    let m = scrape(&shared);
    assert_eq!(
        value(&m, "podkeeper_restarts_total", &[("app", "web")]),
        None
    );
    assert_eq!(
        value(&m, "podkeeper_restarts_total", &[("app", "db")]),
        Some(1.0)
    );
    let ids: Vec<String> = shared.status().apps.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["db"]);
}
