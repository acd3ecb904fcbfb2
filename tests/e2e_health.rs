//! End to end against the real podman: healthchecks set on containers, and apps declared `stopped`.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

fn with_health(id: &str, interval: &str) -> String {
    format!(
        "{}    healthcheck:\n      command: [\"/bin/sh\", \"-c\", \"test -e /tmp/ok || test ! -e /tmp/never\"]\n      interval: {interval}\n      timeout: 2s\n      retries: 2\n",
        manifest(id, TRAP_CMD)
    )
}

fn healthcheck_of(name: &str) -> serde_json::Value {
    let out = podman_ok(&["container", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
    v[0]["Config"]["Healthcheck"].clone()
}

#[test]
fn a_healthcheck_should_be_set_on_the_container_without_podmans_timer_and_an_edit_should_recreate()
{
    let _g = serial();
    let apps = Apps::new("i13-hc-");
    apps.write_raw("i13-hc-web.yaml", &with_health("i13-hc-web", "10s"));
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("i13-hc-web"));
    let hc = healthcheck_of("i13-hc-web");
    assert_eq!(
        hc["Test"],
        serde_json::json!([
            "CMD",
            "/bin/sh",
            "-c",
            "test -e /tmp/ok || test ! -e /tmp/never"
        ]),
        "{hc}"
    );
    assert_eq!(hc["Retries"], 2, "{hc}");
    assert_eq!(hc["Timeout"], 2_000_000_000i64, "{hc}");
    // podman's own timer disabled: podkeeper runs the checks.
    assert!(
        hc["Interval"].as_i64().unwrap_or(0) == 0,
        "podman's interval should be disabled: {hc}"
    );
    // `podman healthcheck run` works on it.
    let run = podman(&["healthcheck", "run", "i13-hc-web"]);
    assert!(
        run.status.success(),
        "podman healthcheck run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let before = inspect("i13-hc-web").unwrap();
    let mark = d.mark();
    apps.write_raw("i13-hc-web.yaml", &with_health("i13-hc-web", "11s"));
    d.wait_line(mark, &["react", "app/i13-hc-web", "recreate"], T);
    wait_until(T, "recreated and running", || {
        inspect("i13-hc-web").is_some_and(|c| c.status == "running" && c.id != before.id)
    });
    assert_eq!(d.stop(), Some(0));
}

/// podkeeper's own check call, on a container podkeeper created with
/// podman's timer disabled: passes, fails when the file it tests is gone,
/// passes again when it is back. (The reactor does not run these on timers
/// yet: this proves the call the timers will make.)
#[test]
fn podkeepers_healthcheck_call_should_follow_the_file_the_check_tests() {
    use podkeeper::runtime::podman::{PodmanRuntime, Timeouts};
    use podkeeper::runtime::{HealthCall, Podman};
    let _g = serial();
    let apps = Apps::new("i13-hr-");
    let text = manifest(
        "i13-hr-a",
        r#"["/bin/sh", "-c", "touch /tmp/ok; trap 'exit 0' TERM; sleep 100000 & wait"]"#,
    ) + "    healthcheck:\n      command: [\"/bin/test\", \"-e\", \"/tmp/ok\"]\n      timeout: 2s\n";
    apps.write_raw("i13-hr-a.yaml", &text);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("i13-hr-a"));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    wait_until(T, "/tmp/ok created", || {
        podman(&["exec", "i13-hr-a", "test", "-e", "/tmp/ok"])
            .status
            .success()
    });
    let rt = PodmanRuntime::new(&socket(), Timeouts::default());
    let check = || {
        tokio
            .block_on(rt.run_healthcheck(
                "i13-hr-a",
                HealthCall {
                    timeout: Duration::from_secs(5),
                    command: &[],
                    pid: None,
                },
            ))
            .expect("healthcheck call")
    };
    let t = std::time::Instant::now();
    let first = check();
    let took = t.elapsed();
    assert!(first.passed, "{first:?}");
    podman_ok(&["exec", "i13-hr-a", "rm", "/tmp/ok"]);
    let failed = check();
    assert!(!failed.passed, "{failed:?}");
    podman_ok(&["exec", "i13-hr-a", "touch", "/tmp/ok"]);
    assert!(check().passed);
    eprintln!("one healthcheck call took {took:?}");
    assert_eq!(d.stop(), Some(0));
}

/// An app whose check tests /tmp/ok, which its command creates at each start.
fn checked(id: &str, check: &str) -> String {
    manifest(
        id,
        r#"["/bin/sh", "-c", "touch /tmp/ok; trap 'exit 0' TERM; sleep 100000 & wait"]"#,
    ) + &format!(
        "    healthcheck:\n      command: {check}\n      interval: 1s\n      timeout: 2s\n      retries: 2\n"
    )
}

#[test]
fn an_app_failing_its_check_should_be_restarted_and_left_alone_once_healthy() {
    let _g = serial();
    let apps = Apps::new("i13-hx-");
    apps.write_raw(
        "i13-hx-a.yaml",
        &checked("i13-hx-a", r#"["/bin/test", "-e", "/tmp/ok"]"#),
    );
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("i13-hx-a"));
    d.wait_line(
        0,
        &["react", "health/i13-hx-a", "healthy", "check passed"],
        T,
    );
    let before = inspect("i13-hx-a").unwrap();
    let mark = d.mark();
    let t = std::time::Instant::now();
    podman_ok(&["exec", "i13-hx-a", "rm", "/tmp/ok"]);
    let line = d.wait_line(mark, &["react", "health/i13-hx-a", "restart"], T);
    assert!(
        line.contains("unhealthy: 2 consecutive failed checks"),
        "{line}"
    );
    wait_until(T, "restarted", || {
        inspect("i13-hx-a")
            .is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
    });
    let took = t.elapsed();
    eprintln!("file removed → running again: {took:?}");
    // interval × retries + interval, and the stop and start.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        inspect("i13-hx-a").unwrap().id,
        before.id,
        "restarted, not recreated"
    );
    // The restart created the file again: healthy, and no more restarts.
    let mark = d.mark();
    d.wait_line(mark, &["react", "health/i13-hx-a", "healthy"], T);
    let after = inspect("i13-hx-a").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        inspect("i13-hx-a").unwrap().started_at,
        after.started_at,
        "no more restarts"
    );
    assert!(
        !d.lines_since(mark)
            .iter()
            .any(|l| l.contains("health/i13-hx-a") && l.contains("restart")),
        "{}",
        d.output()
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_check_that_always_fails_should_restart_with_the_crash_loop_backoff() {
    let _g = serial();
    let apps = Apps::new("i13-hf-");
    apps.write_raw("i13-hf-a.yaml", &checked("i13-hf-a", r#"["/bin/false"]"#));
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("i13-hf-a"));
    let mut at = Vec::new();
    let mut mark = 0;
    for _ in 0..4 {
        let line = d.wait_line(mark, &["react", "health/i13-hf-a", "restart"], T);
        at.push(std::time::Instant::now());
        mark = d.lines().iter().position(|l| *l == line).unwrap() + 1;
    }
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("restart intervals: {gaps:?}");
    for (i, line) in d
        .lines()
        .iter()
        .filter(|l| l.contains("health/i13-hf-a") && l.contains("restart"))
        .enumerate()
    {
        assert!(line.contains(&format!("(restart #{}", i + 1)), "{line}");
    }
    // Each restart needs retries × interval of failures at least.
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(1500)),
        "{gaps:?}"
    );
    assert_eq!(d.stop(), Some(0));
}

fn chained(id: &str, dep: Option<&str>, healthcheck: bool) -> String {
    let mut m = manifest(id, TRAP_CMD);
    if healthcheck {
        m += "    healthcheck:\n      command: [\"/bin/true\"]\n      interval: 1s\n";
    }
    if let Some(dep) = dep {
        m += &format!("  depends_on:\n    - app: {dep}\n      condition: healthy\n");
    }
    m
}

fn started_at(name: &str) -> jiff::Timestamp {
    let s = inspect(name).unwrap().started_at;
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn a_chain_should_start_in_order_each_after_the_previous_is_healthy() {
    let _g = serial();
    let apps = Apps::new("i13-ch-");
    apps.write_raw("i13-ch-db.yaml", &chained("i13-ch-db", None, true));
    apps.write_raw(
        "i13-ch-api.yaml",
        &chained("i13-ch-api", Some("i13-ch-db"), true),
    );
    apps.write_raw(
        "i13-ch-web.yaml",
        &chained("i13-ch-web", Some("i13-ch-api"), false),
    );
    let d = Daemon::start(apps.path(), &[]);
    wait_until(Duration::from_secs(60), "web running", || {
        is_running("i13-ch-web")
    });
    let (db, api, web) = (
        started_at("i13-ch-db"),
        started_at("i13-ch-api"),
        started_at("i13-ch-web"),
    );
    eprintln!(
        "started: db {db}, api {api} (+{}ms), web {web} (+{}ms)",
        api.duration_since(db).as_millis(),
        web.duration_since(api).as_millis()
    );
    assert!(db < api && api < web, "{db} {api} {web}");
    // Each started only after its dependency's check had passed.
    let lines = d.lines();
    let at = |parts: &[&str]| {
        lines
            .iter()
            .position(|l| parts.iter().all(|p| l.contains(p)))
            .unwrap_or_else(|| panic!("no line with {parts:?}:\n{}", lines.join("\n")))
    };
    let waited = at(&["react", "app/i13-ch-web", "wait", "waiting for i13-ch-api"]);
    let db_healthy = at(&["react", "health/i13-ch-db", "healthy"]);
    let api_started = at(&["react", "app/i13-ch-api", "create", "ok"]);
    let api_healthy = at(&["react", "health/i13-ch-api", "healthy"]);
    let web_started = at(&["react", "app/i13-ch-web", "create", "ok"]);
    assert!(
        db_healthy < api_started && api_started < api_healthy && api_healthy < web_started,
        "{db_healthy} {api_started} {api_healthy} {web_started}"
    );
    assert!(waited < web_started);

    // web killed: restarted at once, its dependencies being healthy.
    let before = inspect("i13-ch-web").unwrap();
    let mark = d.mark();
    let t = std::time::Instant::now();
    kill9(before.pid);
    wait_until(T, "web restarted", || {
        inspect("i13-ch-web")
            .is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
    });
    eprintln!("web killed → running again: {:?}", t.elapsed());
    assert!(
        !d.lines_since(mark)
            .iter()
            .any(|l| l.contains("app/i13-ch-web") && l.contains("waiting for")),
        "{}",
        d.output()
    );
    assert_eq!(d.stop(), Some(0));
}

fn stopped(id: &str, state: &str) -> String {
    manifest(id, TRAP_CMD).replacen(
        "  container:\n",
        &format!("  state: {state}\n  container:\n"),
        1,
    )
}

#[test]
fn a_stopped_app_should_be_created_kept_stopped_and_started_when_switched_back() {
    let _g = serial();
    let apps = Apps::new("i13-st-");
    apps.write_raw("i13-st-a.yaml", &stopped("i13-st-a", "stopped"));
    let d = Daemon::start(apps.path(), &[]);
    d.wait_ready();
    wait_until(T, "created", || inspect("i13-st-a").is_some());
    std::thread::sleep(Duration::from_secs(1));
    let c = inspect("i13-st-a").unwrap();
    assert_eq!(c.status, "created", "created, never started");

    // Someone starts it: podkeeper stops it again, the same container.
    let mark = d.mark();
    podman_ok(&["start", "i13-st-a"]);
    let line = d.wait_line(mark, &["react", "app/i13-st-a", "stop"], T);
    assert!(line.contains("declared stopped"), "{line}");
    wait_until(T, "stopped again", || !is_running("i13-st-a"));
    assert_eq!(inspect("i13-st-a").unwrap().id, c.id, "not recreated");

    // Switched back: started, not recreated.
    apps.write_raw("i13-st-a.yaml", &stopped("i13-st-a", "running"));
    wait_until(T, "running", || is_running("i13-st-a"));
    assert_eq!(inspect("i13-st-a").unwrap().id, c.id, "not recreated");

    // And stopped again when switched to stopped, still the same container.
    apps.write_raw("i13-st-a.yaml", &stopped("i13-st-a", "stopped"));
    wait_until(T, "stopped", || !is_running("i13-st-a"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!is_running("i13-st-a"), "kept stopped");
    assert_eq!(inspect("i13-st-a").unwrap().id, c.id, "not recreated");
    assert_eq!(d.stop(), Some(0));
}

/// A user's `podman healthcheck run` is a trigger: its `health_status` event
/// makes podkeeper read podman's health log at once (its own timer is a
/// minute away), where each run counts once, whoever ran it and whatever
/// it overlapped: the second failed run of two retries restarts the app.
#[test]
fn a_users_failing_healthcheck_run_should_restart_without_waiting_for_the_timer() {
    let _g = serial();
    let apps = Apps::new("i13-hu-");
    let text = checked("i13-hu-a", r#"["/bin/test", "-e", "/tmp/ok"]"#)
        .replace("interval: 1s", "interval: 1m");
    apps.write_raw("i13-hu-a.yaml", &text);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "running", || is_running("i13-hu-a"));
    let before = inspect("i13-hu-a").unwrap();
    podman_ok(&["exec", "i13-hu-a", "rm", "/tmp/ok"]);
    let mark = d.mark();
    // retries 2: the first run leaves podman's status `starting`, the second makes it `unhealthy`.
    for _ in 0..2 {
        let _ = podman(&["healthcheck", "run", "i13-hu-a"]);
        eprintln!(
            "podman's status: {}",
            podman_ok(&[
                "inspect",
                "-f",
                "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
                "i13-hu-a"
            ])
        );
    }
    let t = std::time::Instant::now();
    let line = d.wait_line(mark, &["react", "health/i13-hu-a", "restart"], T);
    assert!(
        // 2, or 3 when podkeeper's own first check (due at the first run)
        // lands between the user's two: each run counted once.
        (line.contains("unhealthy: 2 consecutive failed checks")
            || line.contains("unhealthy: 3 consecutive failed checks"))
            && line.contains("(restart #1"),
        "{line}"
    );
    wait_until(T, "restarted", || {
        inspect("i13-hu-a")
            .is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
    });
    eprintln!(
        "second `podman healthcheck run` → running again: {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        d.lines_since(mark)
            .iter()
            .any(|l| l.contains("health_status (")
                && l.contains("i13-hu-a")
                && l.contains("health/i13-hu-a")),
        "{}",
        d.output()
    );
    assert_eq!(d.stop(), Some(0));
}
