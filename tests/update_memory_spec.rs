//! What the reactor remembers of updates (issue 23): failed specs and adoptions taken in from app reactions, handed to reconciles, written to the state file and read back after a restart, forgotten on a manifest change or `retry`; status, metrics and dependents after update news. Against the simulated runtime under paused tokio time; the reactions' update news are made here.

mod sim;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podkeeper::ops::state::{Records, Shared};
use podkeeper::ops::status::table;
use podkeeper::reactor::Reactor;
use podkeeper::reconcile::updates::{Failure, UpdateNews};
use podkeeper::reconcile::{Adopted, Reaction};
use podkeeper::runtime::sim_podman::SimRuntime;
use podkeeper::trigger::{ChangeKind, FileChange, Key, PodmanEvent, StreamStatus, Trigger};
use serde_json::Value;
use sim::{podman_with_events, Setup};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn manifest(id: &str, image: &str, extra: &str) -> String {
    format!(
        "app:\n  id: {id}\n  container:\n    image: {image}\n    command: [\"/bin/sleep\", \"1000\"]\n    network: none\n{extra}"
    )
}

fn web() -> String {
    manifest("web", sim::IMAGE, "")
}

/// The reactor over the simulated podman and an apps directory holding
/// `files`, remembering in `state` (with `run --adopt` when `adopt_all`),
/// its records kept on a status board.
struct Rig {
    reactor: Reactor<SimRuntime>,
    sim: sim::Sim,
    events: mpsc::UnboundedReceiver<PodmanEvent>,
    shared: Arc<Shared>,
}

impl Rig {
    async fn start(files: &[(&str, String)], state: &Path, adopt_all: bool) -> Rig {
        let (podman, events) = podman_with_events();
        let shared = Shared::new();
        let (reactor, sim) = Setup::dir(podman, files.iter().cloned())
            .observer(Box::new(Records::new(shared.clone())))
            .build();
        let reactor = reactor.with_memory(Some(state.to_path_buf()), adopt_all);
        let mut rig = Rig {
            reactor,
            sim,
            events,
            shared,
        };
        rig.reactor
            .handle(Trigger::Stream(StreamStatus::Connected { resumed: false }));
        rig.run_for(Duration::from_secs(1)).await;
        rig
    }

    /// Run for `span` of virtual time, feeding the reactor what the
    /// simulated podman emits; a re-read of the apps directory (a blocking
    /// task) is given real time too.
    async fn run_for(&mut self, span: Duration) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
            self.reactor
                .step_until(Instant::now() + Duration::from_millis(10))
                .await;
            while let Ok(ev) = self.events.try_recv() {
                self.reactor.handle(Trigger::Podman(ev));
            }
        }
    }

    fn spec(&self, id: &str) -> String {
        let set = podkeeper::manifest::load_dir(self.sim.apps_dir()).unwrap();
        set.apps[id].spec_hash.clone()
    }

    fn news(&mut self, id: &str, news: UpdateNews) {
        // A gate's look (no action of its own): whatever wakes a dependent
        // is the news, not a start.
        let mut r = Reaction::new(Key::App(id.into()));
        r.update = Some(news);
        self.reactor.take_app_reaction(&r);
    }

    fn app(&self, id: &str) -> podkeeper::ops::state::AppStatus {
        let s = self.shared.status();
        s.apps.into_iter().find(|a| a.id == id).unwrap()
    }

    async fn edit(&mut self, file: &str, text: &str) {
        std::fs::write(self.sim.apps_path(file), text).unwrap();
        self.reactor.handle(Trigger::AppsDir(FileChange {
            dir: self.sim.apps_dir().to_path_buf(),
            path: file.into(),
            kind: ChangeKind::Modify,
        }));
        self.run_for(Duration::from_millis(500)).await;
    }
}

fn failure(spec: &str) -> Failure {
    Failure {
        spec_hash: spec.to_string(),
        why: "exited (code 3) after 0.4s".into(),
        exit_code: Some(3),
        log_tail: "starting\npanic: no config\n".into(),
    }
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn state_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("podkeeper/state.json")
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_spec_should_be_remembered_and_written_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    assert!(!path.exists(), "nothing to remember yet: nothing written");
    let spec = rig.spec("web");
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    );
    assert_eq!(
        rig.reactor.remembered("web").failed_spec.as_deref(),
        Some(spec.as_str())
    );
    rig.reactor.state_written().await;
    let file = read(&path);
    assert_eq!(file["version"], 1);
    let failed = &file["failed"]["web"];
    assert_eq!(failed["spec_hash"], spec.as_str());
    assert_eq!(failed["why"], "exited (code 3) after 0.4s");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["log_tail"], "starting\npanic: no config\n");
    assert!(failed["at"].as_str().unwrap().ends_with('Z'), "{failed}");
    // Gating and failed news remember nothing, and write nothing.
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    rig.news(
        "web",
        UpdateNews::Failed {
            failed: failure("other"),
        },
    );
    rig.news(
        "web",
        UpdateNews::Gating {
            spec_hash: spec.clone(),
            left: Duration::from_secs(10),
        },
    );
    rig.reactor.state_written().await;
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(
        rig.reactor.remembered("web").failed_spec.as_deref(),
        Some(spec.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn a_log_tail_longer_than_2_kib_should_be_kept_to_its_last_2_kib() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    let spec = rig.spec("web");
    let mut f = failure(&spec);
    f.log_tail = format!("{}é{}", "x".repeat(5000), "y".repeat(2046));
    rig.news("web", UpdateNews::RolledBack { failed: f });
    rig.reactor.state_written().await;
    let tail = read(&path)["failed"]["web"]["log_tail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tail.len() <= 2048, "{}", tail.len());
    assert!(tail.ends_with(&"y".repeat(2046)));
}

#[tokio::test(start_paused = true)]
async fn a_remembered_failure_should_survive_a_restart_and_show_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let spec = {
        let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
        let spec = rig.spec("web");
        rig.news(
            "web",
            UpdateNews::RolledBack {
                failed: failure(&spec),
            },
        );
        rig.reactor.state_written().await;
        spec
    };
    // The next podkeeper, on the same manifest.
    let rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    assert_eq!(
        rig.reactor.remembered("web").failed_spec.as_deref(),
        Some(spec.as_str())
    );
    let web = rig.app("web");
    let update = web.update.clone().expect("an update row");
    assert_eq!(update.state, "rolled back");
    assert_eq!(update.spec_hash, spec);
    assert_eq!(update.why.as_deref(), Some("exited (code 3) after 0.4s"));
    assert_eq!(update.exit_code, Some(3));
    assert_eq!(
        update.log_tail.as_deref(),
        Some("starting\npanic: no config\n")
    );
    assert!(update.at.is_some());
    let why = web.why.unwrap_or_default();
    assert!(
        why.starts_with(&format!(
            "rolled back: spec {} exited (code 3)",
            &spec[..12]
        )),
        "{why}"
    );
    // status --json carries it as it is.
    let json = serde_json::to_value(rig.shared.status()).unwrap();
    assert_eq!(json["apps"][0]["update"]["state"], "rolled back");
    let t = table(&rig.shared.status());
    assert!(t.contains("0/1 apps as declared"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("web ") && l.contains(" rolled back ")),
        "{t}"
    );
    assert!(
        t.contains("\nweb rolled back at ")
            && t.contains(&format!(
                ": spec {} exited (code 3) after 0.4s\n",
                &spec[..12]
            )),
        "{t}"
    );
    assert!(t.contains("\n    starting\n    panic: no config\n"), "{t}");
    assert!(t.contains("`podkeeper retry web`"), "{t}");
}

#[tokio::test(start_paused = true)]
async fn an_applied_spec_should_forget_the_failure_and_the_adoption() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    let spec = rig.spec("web");
    let mut r = Reaction::new(Key::App("web".into()));
    r.adopted = Some(Adopted {
        container: "c0ffee".into(),
        spec_hash: spec.clone(),
    });
    rig.reactor.take_app_reaction(&r);
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    );
    rig.reactor.state_written().await;
    assert_eq!(read(&path)["adopted"]["c0ffee"]["app"], "web");
    rig.news("web", UpdateNews::Applied { spec_hash: spec });
    assert_eq!(rig.reactor.remembered("web"), Default::default());
    assert_eq!(rig.app("web").update, None);
    rig.reactor.state_written().await;
    let file = read(&path);
    assert_eq!(file["failed"], serde_json::json!({}));
    assert_eq!(file["adopted"], serde_json::json!({}));
}

#[tokio::test(start_paused = true)]
async fn an_adoption_should_be_recorded_by_container_id_one_per_app() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    for container in ["c1", "c2"] {
        let mut r = Reaction::new(Key::App("web".into()));
        r.adopted = Some(Adopted {
            container: container.into(),
            spec_hash: "a".repeat(16),
        });
        rig.reactor.take_app_reaction(&r);
    }
    let adopted = rig.reactor.remembered("web").adopted.unwrap();
    assert_eq!(adopted.container, "c2");
    rig.reactor.state_written().await;
    let file = read(&path);
    assert_eq!(file["adopted"].as_object().unwrap().len(), 1, "{file}");
    assert_eq!(file["adopted"]["c2"]["spec_hash"], "a".repeat(16));
    // The next podkeeper knows it.
    drop(rig);
    let rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    assert_eq!(
        rig.reactor.remembered("web").adopted.unwrap().container,
        "c2"
    );
}

#[tokio::test(start_paused = true)]
async fn may_adopt_should_be_the_run_flag_or_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("web.yaml", web()),
        ("db.yaml", manifest("db", sim::IMAGE, "  adopt: true\n")),
    ];
    let rig = Rig::start(&files, &state_path(&dir), false).await;
    assert!(!rig.reactor.remembered("web").may_adopt);
    assert!(rig.reactor.remembered("db").may_adopt);
    let rig = Rig::start(&files, &dir.path().join("other.json"), true).await;
    assert!(rig.reactor.remembered("web").may_adopt);
    assert!(rig.reactor.remembered("db").may_adopt);
}

#[tokio::test(start_paused = true)]
async fn a_manifest_changed_to_another_spec_should_forget_its_failed_spec() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    let spec = rig.spec("web");
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    );
    // Re-read, the same spec (a change outside it: the gate): remembered.
    rig.edit(
        "web.yaml",
        &manifest("web", sim::IMAGE, "  update:\n    stable_for: 20s\n"),
    )
    .await;
    assert_eq!(
        rig.reactor.remembered("web").failed_spec.as_deref(),
        Some(spec.as_str())
    );
    // Another spec: forgotten, written down, gone from status.
    rig.edit("web.yaml", &manifest("web", "localhost/bb:2", ""))
        .await;
    assert_eq!(rig.reactor.remembered("web").failed_spec, None);
    assert_eq!(rig.app("web").update, None);
    rig.reactor.state_written().await;
    assert_eq!(read(&path)["failed"], serde_json::json!({}));
}

#[tokio::test(start_paused = true)]
async fn a_spec_edited_away_while_podkeeper_was_down_should_be_forgotten_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    {
        let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
        let spec = rig.spec("web");
        rig.news(
            "web",
            UpdateNews::RolledBack {
                failed: failure(&spec),
            },
        );
        rig.reactor.state_written().await;
    }
    let mut rig = Rig::start(
        &[("web.yaml", manifest("web", "localhost/bb:2", ""))],
        &path,
        false,
    )
    .await;
    assert_eq!(rig.reactor.remembered("web").failed_spec, None);
    assert_eq!(rig.app("web").update, None);
    rig.reactor.state_written().await;
    assert_eq!(read(&path)["failed"], serde_json::json!({}));
}

#[tokio::test(start_paused = true)]
async fn a_rollback_of_a_spec_the_manifest_moved_on_from_should_not_be_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure("0123456789abcdef"),
        },
    );
    assert_eq!(rig.reactor.remembered("web").failed_spec, None);
    assert_eq!(rig.app("web").update, None);
    rig.reactor.state_written().await;
    assert!(!path.exists());
}

#[tokio::test(start_paused = true)]
async fn retry_should_forget_the_failed_spec_write_the_file_and_reconcile_the_app_now() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    let spec = rig.spec("web");
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    );
    rig.run_for(Duration::from_secs(1)).await;
    rig.sim.podman.clear_calls();
    rig.reactor.handle(Trigger::Retry("web".into()));
    assert_eq!(rig.reactor.remembered("web").failed_spec, None);
    assert_eq!(rig.app("web").update, None);
    rig.run_for(Duration::from_millis(20)).await;
    assert_eq!(
        rig.sim.calls_for("web").first().map(String::as_str),
        Some("inspect web")
    );
    rig.reactor.state_written().await;
    assert_eq!(read(&path)["failed"], serde_json::json!({}));
    assert!(
        rig.sim.output().contains("failed spec ")
            && rig.sim.output().contains(" forgotten; looking at it now"),
        "{}",
        rig.sim.output()
    );
    // An app no manifest declares (any more): said, nothing else.
    rig.sim.podman.clear_calls();
    rig.reactor.handle(Trigger::Retry("nope".into()));
    rig.run_for(Duration::from_millis(20)).await;
    assert!(
        rig.sim.podman.calls().is_empty(),
        "{:?}",
        rig.sim.podman.calls()
    );
    assert!(
        rig.sim.output().contains("app/nope: no such app"),
        "{}",
        rig.sim.output()
    );
}

#[tokio::test(start_paused = true)]
async fn dependents_should_be_woken_after_applied_and_after_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    // api waits for web running; web is declared stopped, so api waits on.
    let files = [
        (
            "web.yaml",
            manifest("web", sim::IMAGE, "  state: stopped\n"),
        ),
        (
            "api.yaml",
            manifest("api", sim::IMAGE, "  depends_on:\n    - app: web\n"),
        ),
    ];
    let mut rig = Rig::start(&files, &state_path(&dir), false).await;
    assert!(rig.app("api").waiting_for.is_some(), "{:?}", rig.app("api"));
    let spec = rig.spec("web");
    let looks = |rig: &Rig| rig.sim.calls_for("api").len();
    for news in [
        UpdateNews::Applied {
            spec_hash: spec.clone(),
        },
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    ] {
        rig.run_for(Duration::from_millis(100)).await;
        rig.sim.podman.clear_calls();
        rig.run_for(Duration::from_millis(100)).await;
        assert_eq!(looks(&rig), 0, "api waits quietly");
        // A gate going on wakes nobody.
        rig.news(
            "web",
            UpdateNews::Gating {
                spec_hash: spec.clone(),
                left: Duration::from_secs(5),
            },
        );
        rig.run_for(Duration::from_millis(20)).await;
        assert_eq!(looks(&rig), 0, "a gate wakes nobody");
        rig.news("web", news.clone());
        rig.run_for(Duration::from_millis(20)).await;
        assert_eq!(
            rig.sim.calls_for("api").first().map(String::as_str),
            Some("inspect api"),
            "{news:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_gate_should_show_as_updating_with_its_time_left_and_updates_be_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(&[("web.yaml", web())], &state_path(&dir), false).await;
    let spec = rig.spec("web");
    rig.news(
        "web",
        UpdateNews::Gating {
            spec_hash: spec.clone(),
            left: Duration::from_secs(30),
        },
    );
    let web = rig.app("web");
    let update = web.update.clone().unwrap();
    assert_eq!(
        (update.state.as_str(), update.spec_hash.as_str()),
        ("updating", spec.as_str())
    );
    assert!(update.gate_ends.is_some());
    assert!(
        web.why
            .as_deref()
            .unwrap_or("")
            .starts_with("updating: gate ends in "),
        "{web:?}"
    );
    let t = table(&rig.shared.status());
    let row = t.lines().find(|l| l.starts_with("web ")).unwrap();
    // The time left is on the wall clock (status is read by people): up
    // to 30s, whatever this machine's pace.
    let left: u64 = row
        .split_once(" updating (")
        .and_then(|(_, rest)| rest.split_once("s left) "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!((1..=30).contains(&left), "{t}");
    rig.news(
        "web",
        UpdateNews::Applied {
            spec_hash: spec.clone(),
        },
    );
    assert_eq!(rig.app("web").update, None);
    rig.news(
        "web",
        UpdateNews::Failed {
            failed: failure(&spec),
        },
    );
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    );
    let metrics = rig.shared.metrics_text();
    for result in ["applied", "failed", "rolled_back"] {
        let line = format!("podkeeper_updates_total{{app=\"web\",result=\"{result}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_state_file_that_cannot_be_written_should_be_logged_and_the_memory_stand() {
    // procfs: no new file there, for root too.
    let path = PathBuf::from("/proc/self/podkeeper/state.json");
    let mut rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    let spec = rig.spec("web");
    rig.news(
        "web",
        UpdateNews::RolledBack {
            failed: failure(&spec),
        },
    );
    rig.reactor.state_written().await;
    assert_eq!(
        rig.reactor.remembered("web").failed_spec.as_deref(),
        Some(spec.as_str())
    );
    rig.reactor.handle(Trigger::Retry("web".into()));
    rig.reactor.state_written().await;
    assert_eq!(rig.reactor.remembered("web").failed_spec, None);
    let out = rig.sim.output();
    let said = "cannot write state file /proc/self/podkeeper/state.json: cannot create /proc/self/podkeeper: ";
    assert_eq!(sim::count(&out, said), 2, "{out}");
    assert!(
        out.contains("; kept in memory, written again at the next change"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_state_file_should_be_said_and_podkeeper_start_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"version\":1,\"failed\":{\"web\":").unwrap();
    let rig = Rig::start(&[("web.yaml", web())], &path, false).await;
    assert_eq!(rig.reactor.remembered("web").failed_spec, None);
    let out = rig.sim.output();
    assert!(
        out.contains(&format!("state file {} is truncated", path.display()))
            && out.contains("state.json.bad"),
        "{out}"
    );
    assert!(path.with_file_name("state.json.bad").exists());
}
