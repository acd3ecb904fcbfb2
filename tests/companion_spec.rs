//! The reactor's companion semantics, against the simulated systemd (and podman) under paused tokio time.

mod common;
mod sim;

use std::time::Duration;

use podkeeper::runtime::sim_systemd::SimSystemd;
use podkeeper::trigger::{ChangeKind, Trigger};
use sim::{Setup, Sim};
use tokio::time::sleep;

const UNIT: &str = "[Container]\nImage=localhost/bb:1\nExec=/bin/sh -c 'trap \"exit 0\" TERM; sleep 100000 & wait'\nNetwork=none\n";

/// An app manifest with companions `(name, kind, unit)`.
fn manifest(id: &str, companions: &[(&str, &str, &str)]) -> String {
    format!("app:\n  id: {id}\n  container:\n    image: localhost/bb:1\n    network: none\n")
        + &common::companions_yaml(companions)
}

/// A reactor with companions on, its apps (`(id, manifest)`) in a real directory.
fn start(apps: &[(&str, String)]) -> Sim {
    start_with(apps, |_| {})
}

/// As [`start`], `prepare` setting the simulated systemd up first.
fn start_with(apps: &[(&str, String)], prepare: impl FnOnce(&SimSystemd) + 'static) -> Sim {
    let files = apps
        .iter()
        .map(|(id, text)| (format!("{id}.yaml"), text.clone()));
    Setup::dir(sim::podman(), files).companions(prepare).start()
}

/// Both companions' files are as declared, written with one daemon-reload.
fn assert_both_written_with_one_reload(h: &Sim) {
    assert_eq!(h.read_unit("web-tunnel.container").as_deref(), Some(UNIT));
    assert_eq!(h.read_unit("db-backup.container").as_deref(), Some(UNIT));
    assert_eq!(
        h.systemd.count("daemon-reload"),
        1,
        "{:?}",
        h.systemd.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn startup_should_write_every_companion_reload_once_and_start_each() {
    let h = start(&[
        ("web", manifest("web", &[("web-tunnel", "container", UNIT)])),
        ("db", manifest("db", &[("db-backup", "container", UNIT)])),
    ]);
    sleep(Duration::from_secs(1)).await;
    assert_both_written_with_one_reload(&h);
    for svc in ["web-tunnel.service", "db-backup.service"] {
        assert_eq!(h.systemd.unit(svc).active_state, "active", "{svc}");
    }
    let (_, out) = h.stop().await;
    assert!(out.contains("companion/web-tunnel"), "{out}");
    assert!(out.contains("write+start"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn n_companions_changed_at_once_should_cost_one_daemon_reload() {
    let names: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let comps: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "container", UNIT))
        .collect();
    let h = start(&[("web", manifest("web", &comps))]);
    sleep(Duration::from_secs(1)).await;
    h.systemd.clear_calls();
    // A script rewrites every file, one inotify event each.
    for n in &names {
        let file = format!("{n}.container");
        std::fs::write(h.unit_path(&file), "[Container]\nImage=wrong\n").unwrap();
        h.unit_changed(&file, ChangeKind::Modify).await;
    }
    sleep(Duration::from_secs(1)).await;
    for n in &names {
        assert_eq!(
            h.read_unit(&format!("{n}.container")).as_deref(),
            Some(UNIT),
            "{n}"
        );
    }
    assert_eq!(
        h.systemd.count("daemon-reload"),
        1,
        "{:?}",
        h.systemd.calls()
    );
    assert_eq!(
        h.systemd.count("restart"),
        0,
        "restored definitions need no restart"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restored_file_should_not_restart_the_service_it_was_started_from() {
    let h = start(&[("web", manifest("web", &[("web-tunnel", "container", UNIT)]))]);
    sleep(Duration::from_secs(1)).await;
    let before = h.systemd.unit("web-tunnel.service");
    assert_eq!(before.active_state, "active");
    // Deleted, then edited by hand: restored each time, never restarted.
    std::fs::remove_file(h.unit_path("web-tunnel.container")).unwrap();
    h.unit_changed("web-tunnel.container", ChangeKind::Remove)
        .await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.read_unit("web-tunnel.container").as_deref(), Some(UNIT));
    std::fs::write(
        h.unit_path("web-tunnel.container"),
        "[Container]\nImage=x\n",
    )
    .unwrap();
    h.unit_changed("web-tunnel.container", ChangeKind::Modify)
        .await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.read_unit("web-tunnel.container").as_deref(), Some(UNIT));
    let after = h.systemd.unit("web-tunnel.service");
    assert_eq!(after.invocation_id, before.invocation_id, "same run");
    assert_eq!(h.systemd.count("restart"), 0, "{:?}", h.systemd.calls());
    let (_, out) = h.stop().await;
    assert!(out.contains("file missing: written"), "{out}");
    assert!(out.contains("not restarted"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_manifest_typo_or_a_unit_that_cannot_work_should_leave_the_companion_as_it_was() {
    let h = start(&[("web", manifest("web", &[("web-tunnel", "container", UNIT)]))]);
    sleep(Duration::from_secs(1)).await;
    let before = h.systemd.unit("web-tunnel.service");
    h.systemd.clear_calls();
    let good = manifest("web", &[("web-tunnel", "container", UNIT)]);
    for bad in [
        good.replace("image:", "imagee:"),
        // A unit Quadlet would generate nothing from: refused, never written.
        manifest(
            "web",
            &[(
                "web-tunnel",
                "container",
                "[Service]\nExecStart=/bin/true\n",
            )],
        ),
        String::new(),
    ] {
        std::fs::write(h.apps_path("web.yaml"), bad).unwrap();
        h.apps_changed("web.yaml", ChangeKind::Modify).await;
        sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(h.read_unit("web-tunnel.container").as_deref(), Some(UNIT));
    assert_eq!(h.systemd.calls(), [] as [String; 0], "not one systemd call");
    assert_eq!(
        h.systemd.unit("web-tunnel.service").invocation_id,
        before.invocation_id
    );
    let (_, out) = h.stop().await;
    assert!(
        out.contains("app.companions[0].unit: has no [Container] section"),
        "{out}"
    );
    assert!(!out.contains("companion gone"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_changed_definition_should_restart_the_service_once() {
    let h = start(&[("web", manifest("web", &[("web-tunnel", "container", UNIT)]))]);
    sleep(Duration::from_secs(1)).await;
    let new_unit = UNIT.replace("100000", "200000");
    std::fs::write(
        h.apps_path("web.yaml"),
        manifest("web", &[("web-tunnel", "container", &new_unit)]),
    )
    .unwrap();
    h.apps_changed("web.yaml", ChangeKind::Modify).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.read_unit("web-tunnel.container").as_deref(),
        Some(new_unit.as_str())
    );
    assert_eq!(
        h.systemd.count("restart web-tunnel.service"),
        1,
        "{:?}",
        h.systemd.calls()
    );
    assert!(h
        .systemd
        .running_definition("web-tunnel.service")
        .unwrap()
        .contains("200000"));
    let (_, out) = h.stop().await;
    assert!(out.contains("definition changed since it started"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_crashed_companion_should_be_started_again_on_its_containers_event() {
    let h = start(&[("web", manifest("web", &[("web-tunnel", "container", UNIT)]))]);
    sleep(Duration::from_secs(1)).await;
    h.systemd.clear_calls();
    h.systemd.crash("web-tunnel.service");
    h.unit_container_event("web-tunnel.service", "died").await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.systemd.unit("web-tunnel.service").active_state, "active");
    assert_eq!(
        h.systemd.calls(),
        [
            "show web-tunnel.service",
            "reset-failed web-tunnel.service",
            "start web-tunnel.service",
            "show web-tunnel.service"
        ]
    );
    let (_, out) = h.stop().await;
    assert!(out.contains("container died"), "{out}");
    assert!(
        out.contains("failed (signal): reset-failed + start"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_unit_systemd_is_auto_restarting_should_be_left_alone_until_it_gives_up() {
    let unit = format!("{UNIT}\n[Service]\nRestart=always\n");
    let h = start(&[(
        "web",
        manifest("web", &[("web-tunnel", "container", &unit)]),
    )]);
    sleep(Duration::from_secs(1)).await;
    h.systemd.clear_calls();
    h.systemd.begin_auto_restart("web-tunnel.service");
    h.unit_container_event("web-tunnel.service", "died").await;
    sleep(Duration::from_secs(3)).await;
    assert_eq!(h.systemd.count("start"), 0, "{:?}", h.systemd.calls());
    assert_eq!(
        h.systemd.count("reset-failed"),
        0,
        "{:?}",
        h.systemd.calls()
    );
    assert!(
        h.systemd.count("show") <= 5,
        "looked again about once a second: {:?}",
        h.systemd.calls()
    );
    h.systemd.give_up("web-tunnel.service");
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.systemd.count("start web-tunnel.service"),
        1,
        "{:?}",
        h.systemd.calls()
    );
    assert_eq!(h.systemd.unit("web-tunnel.service").active_state, "active");
    let (_, out) = h.stop().await;
    assert!(out.contains("left to systemd until it gives up"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn a_companion_that_fails_to_start_should_back_off_not_hot_loop() {
    let h = start_with(
        &[(
            "web",
            manifest(
                "web",
                &[
                    ("web-data", "volume", "[Volume]\n"),
                    ("web-tunnel", "container", UNIT),
                ],
            ),
        )],
        |sd| sd.fail_starts_of("web-data-volume.service"),
    );
    // Sweep ticks every 300 ms try to hurry the retries; they must not.
    for _ in 0..60 {
        sleep(Duration::from_millis(300)).await;
        h.send(Trigger::SweepTick).await;
    }
    // 18 s: attempts at ~0, 1, 3, 7, 15 s.
    assert_eq!(
        h.systemd.count("start web-data-volume.service"),
        5,
        "{:?}",
        h.systemd.calls()
    );
    assert_eq!(
        h.read_unit("web-data.volume").as_deref(),
        Some("[Volume]\n")
    );
    assert_eq!(
        h.systemd.unit("web-data-volume.service").load_state,
        "loaded"
    );
    assert_eq!(
        h.systemd.unit("web-tunnel.service").active_state,
        "active",
        "the other is fine"
    );
    assert_eq!(h.systemd.count("start web-tunnel.service"), 1);
    let (stats, out) = h.stop().await;
    assert_eq!(stats.failures, 5);
    assert!(out.contains("companion/web-data"), "{out}");
    assert!(out.contains("(retry in 8.0s)"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn an_app_deleted_should_take_its_companions_with_one_reload_and_leave_others() {
    let h = start(&[
        (
            "web",
            manifest(
                "web",
                &[
                    ("web-tunnel", "container", UNIT),
                    ("web-backup", "container", UNIT),
                ],
            ),
        ),
        ("db", manifest("db", &[("db-backup", "container", UNIT)])),
    ]);
    sleep(Duration::from_secs(1)).await;
    let db_before = h.systemd.unit("db-backup.service");
    h.systemd.clear_calls();
    std::fs::remove_file(h.apps_path("web.yaml")).unwrap();
    h.apps_changed("web.yaml", ChangeKind::Remove).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.read_unit("web-tunnel.container"), None);
    assert_eq!(h.read_unit("web-backup.container"), None);
    assert_eq!(h.systemd.unit("web-tunnel.service").load_state, "not-found");
    assert_eq!(h.systemd.count("stop web-tunnel.service"), 1);
    assert_eq!(h.systemd.count("stop web-backup.service"), 1);
    assert_eq!(
        h.systemd.count("daemon-reload"),
        1,
        "{:?}",
        h.systemd.calls()
    );
    assert_eq!(h.read_unit("db-backup.container").as_deref(), Some(UNIT));
    assert_eq!(
        h.systemd.unit("db-backup.service").invocation_id,
        db_before.invocation_id
    );
    assert_eq!(h.systemd.count("stop db-backup"), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unmanaged_unit_files_should_cause_no_systemd_call() {
    let h = start(&[("web", manifest("web", &[("web-tunnel", "container", UNIT)]))]);
    sleep(Duration::from_secs(1)).await;
    h.systemd.clear_calls();
    std::fs::write(h.unit_path("stranger.container"), "[Container]\n").unwrap();
    for kind in [ChangeKind::Create, ChangeKind::Modify, ChangeKind::Remove] {
        h.unit_changed("stranger.container", kind).await;
    }
    h.unit_changed(".web-tunnel.container.podkeeper-tmp", ChangeKind::Create)
        .await;
    sleep(Duration::from_secs(1)).await;
    assert!(h.systemd.calls().is_empty(), "{:?}", h.systemd.calls());
    assert_eq!(
        h.read_unit("stranger.container").as_deref(),
        Some("[Container]\n"),
        "untouched"
    );
    let (_, out) = h.stop().await;
    assert!(out.contains("stranger.container"), "{out}");
    assert!(out.contains("ignored: no companion owns it"), "{out}");
    assert!(
        out.contains("ignored: podkeeper's own temporary file"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rescan_should_queue_every_companion_into_one_batch() {
    let h = start(&[
        ("web", manifest("web", &[("web-tunnel", "container", UNIT)])),
        ("db", manifest("db", &[("db-backup", "container", UNIT)])),
    ]);
    sleep(Duration::from_secs(1)).await;
    h.systemd.clear_calls();
    // The whole directory went away and came back (empty).
    std::fs::remove_file(h.unit_path("web-tunnel.container")).unwrap();
    std::fs::remove_file(h.unit_path("db-backup.container")).unwrap();
    h.unit_changed("", ChangeKind::Rescan).await;
    sleep(Duration::from_secs(1)).await;
    assert_both_written_with_one_reload(&h);
    assert_eq!(h.systemd.count("restart"), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_companion_due_while_a_batch_runs_should_go_into_the_next_batch() {
    let h = start(&[(
        "web",
        manifest(
            "web",
            &[("web-a", "container", UNIT), ("web-b", "container", UNIT)],
        ),
    )]);
    sleep(Duration::from_secs(1)).await;
    h.systemd.clear_calls();
    std::fs::remove_file(h.unit_path("web-a.container")).unwrap();
    h.unit_changed("web-a.container", ChangeKind::Remove).await;
    // web-a's batch is reloading (50 ms) when web-b's file goes.
    sleep(Duration::from_millis(60)).await;
    std::fs::remove_file(h.unit_path("web-b.container")).unwrap();
    h.unit_changed("web-b.container", ChangeKind::Remove).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.read_unit("web-a.container").as_deref(), Some(UNIT));
    assert_eq!(h.read_unit("web-b.container").as_deref(), Some(UNIT));
    assert_eq!(
        h.systemd.count("daemon-reload"),
        2,
        "{:?}",
        h.systemd.calls()
    );
    h.stop().await;
}
