//! Status and metrics of a real `podkeeper run` against the real podman: exact counts after two kill -9, the control socket's mode and peer check, bad clients.
//!
//! Every test holds `common::serial()`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// A control socket path in a directory podkeeper creates (0700) and the
/// test removes.
struct Ctl(PathBuf);

impl Ctl {
    fn new(tag: &str) -> Ctl {
        let dir = PathBuf::from(format!("/tmp/i12-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Ctl(dir.join("control.sock"))
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// `podkeeper ARGS --control-socket PATH`, as the stack's user.
    fn client(&self, args: &[&str]) -> Output {
        user_command("timeout")
            .arg("30")
            .arg(podkeeper_bin())
            .args(args)
            .args(["--control-socket", self.arg()])
            .output()
            .expect("run podkeeper")
    }

    fn status(&self) -> serde_json::Value {
        let out = self.client(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    fn app(&self, id: &str) -> serde_json::Value {
        let s = self.status();
        s["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {s}"))
            .clone()
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One HTTP/1.0 request: (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
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

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn two_kills_should_show_as_two_restarts_in_status_and_metrics() {
    let _s = serial();
    let apps = Apps::new("i12-ops-");
    apps.write("i12-ops-web", TRAP_CMD);
    apps.write("i12-ops-db", TRAP_CMD);
    let ctl = Ctl::new("ops");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        apps.path(),
        &["--control-socket", ctl.arg(), "--metrics-listen", &listen],
    );
    d.wait_ready();
    wait_until(T, "both running", || {
        is_running("i12-ops-web") && is_running("i12-ops-db")
    });
    assert_eq!(mode(&ctl.0), 0o600, "the control socket's mode");
    assert_eq!(mode(ctl.0.parent().unwrap()), 0o700, "its directory's");
    kill_and_wait("i12-ops-web");
    kill_and_wait("i12-ops-web");
    // The reaction is recorded right after the start returns.
    wait_until(Duration::from_secs(5), "restarts 2 in status", || {
        ctl.app("i12-ops-web")["restarts"] == 2
    });
    // A second exit within 10 s of a start is a crash loop: its 100 ms
    // delay holds a next restart back; running, the app is as declared.
    std::thread::sleep(Duration::from_secs(1));
    let web = ctl.app("i12-ops-web");
    assert_eq!(web["restarts"], 2, "{web}");
    assert_eq!(web["state"], "running", "{web}");
    assert_eq!(web["why"], serde_json::Value::Null, "{web}");
    assert_eq!(
        web["container"],
        inspect("i12-ops-web").unwrap().id.as_str()
    );
    assert_eq!(web["last_reaction"]["action"], "start", "{web}");
    let reason = web["last_reaction"]["reason"].as_str().unwrap();
    // `stopped` where podkeeper starts a crash before podman's own cleanup
    // (podman 4.7+, see README's exit-file accelerator), `exited` after it.
    assert!(
        reason.starts_with("exited (code 137)") || reason.starts_with("stopped (code 137)"),
        "{web}"
    );
    assert_eq!(web["last_reaction"]["result"], "ok", "{web}");
    assert_eq!(ctl.app("i12-ops-db")["restarts"], 0);

    let (status, body) = http_get(port, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let restarts = |text: &str, app: &str| {
        sample(text, "podkeeper_restarts_total", &[("app", app)]).unwrap_or(0.0)
    };
    assert_eq!(restarts(&body, "i12-ops-web"), 2.0, "{body}");
    assert_eq!(restarts(&body, "i12-ops-db"), 0.0, "{body}");
    assert_eq!(
        sample(&body, "podkeeper_apps", &[("state", "running")]),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "podkeeper_reconciles_total",
            &[("kind", "app"), ("action", "start"), ("result", "ok")]
        ),
        Some(2.0),
        "{body}"
    );
    // The same text through the control socket.
    let out = ctl.client(&["metrics"]);
    assert!(out.status.success());
    assert_eq!(
        restarts(&String::from_utf8_lossy(&out.stdout), "i12-ops-web"),
        2.0
    );
    let (status, _) = http_get(port, "/other");
    assert!(status.contains(" 404 "), "{status}");
    // Clients that are no HTTP client: a silent one held open, garbage,
    // a megabyte of header. None of them keeps /metrics from answering.
    let silent = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = garbage.write_all(b"\x00\xff not http at all\r\n\r\n");
    let mut huge = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = write!(huge, "GET /metrics HTTP/1.1\r\nX-Big: ");
    let _ = huge.write_all(&vec![b'a'; 1 << 20]);
    let (status, body) = http_get(port, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(restarts(&body, "i12-ops-web"), 2.0, "{body}");
    drop((silent, garbage, huge));
    // The people's table.
    let out = ctl.client(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    println!("{table}");
    assert!(table.contains("2/2 apps as declared"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("i12-ops-web ") && l.contains(" running ") && l.contains(" 2 ")),
        "{table}"
    );
    d.stop();
    assert!(!ctl.0.exists(), "the socket file is removed at exit");
    let out = ctl.client(&["status"]);
    assert_eq!(out.status.code(), Some(3), "not running: exit 3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("podkeeper is not running"), "{err}");
}

/// The binary where user `nobody` can run it.
fn nobody_bin() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = PathBuf::from(format!("/tmp/i12-nobody-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let to = dir.join("podkeeper");
    std::fs::copy(podkeeper_bin(), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

fn as_nobody(bin: &Path, ctl: &Ctl) -> Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .args(["status", "--control-socket", ctl.arg()])
        .output()
        .expect("run setpriv")
}

#[test]
fn the_control_socket_should_refuse_other_users_and_outlive_bad_clients() {
    use std::os::unix::fs::PermissionsExt;
    let _s = serial();
    let apps = Apps::new("i12-ctl-");
    apps.write("i12-ctl-web", TRAP_CMD);
    let ctl = Ctl::new("ctl");
    let d = Daemon::start(apps.path(), &["--control-socket", ctl.arg()]);
    d.wait_ready();
    wait_until(T, "running", || is_running("i12-ctl-web"));
    let bin = nobody_bin();
    // Another user: the mode stops it.
    let out = as_nobody(&bin, &ctl);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    // Even with the mode loosened by hand, SO_PEERCRED refuses it.
    std::fs::set_permissions(
        ctl.0.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&ctl.0, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&bin, &ctl);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused: uid 65534 may not ask"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("i12-ctl-web"));
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());

    // Bad clients: silent (kept open), garbage, a megabyte, gone at once.
    use std::os::unix::net::UnixStream;
    let silent: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&ctl.0).unwrap())
        .collect();
    let mut garbage = UnixStream::connect(&ctl.0).unwrap();
    garbage.write_all(b"\x00\xff{\"status\"\n").unwrap();
    let mut flood = UnixStream::connect(&ctl.0).unwrap();
    let _ = flood.write_all(&vec![b's'; 1 << 20]);
    drop(UnixStream::connect(&ctl.0).unwrap());
    let mut reply = String::new();
    garbage.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("error: "), "{reply}");
    // The reactor is undisturbed: a kill is repaired, status answers at once.
    kill_and_wait("i12-ctl-web");
    let asked = Instant::now();
    wait_until(Duration::from_secs(5), "restarts 1", || {
        ctl.app("i12-ctl-web")["restarts"] == 1
    });
    assert!(asked.elapsed() < Duration::from_secs(5));
    drop(silent);
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_second_daemon_on_the_same_control_socket_should_be_refused_with_a_clear_error() {
    let _s = serial();
    let apps = Apps::new("i12-two-");
    let ctl = Ctl::new("two");
    let d = Daemon::start(apps.path(), &["--control-socket", ctl.arg()]);
    d.wait_ready();
    let out = user_command("timeout")
        .arg("30")
        .arg(podkeeper_bin())
        .args(["run", "--apps"])
        .arg(apps.path())
        .args(["--socket"])
        .arg(socket())
        .args(["--control-socket", ctl.arg()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("control socket: another podkeeper is listening on"),
        "{err}"
    );
    // The first still answers.
    assert!(ctl.status()["apps"].is_array());
    assert_eq!(d.stop(), Some(0));
}

/// `podkeeper run` (no --debug) with its log (stderr) going to `log`.
fn start_logged(apps: &Path, ctl: &Ctl, log: &Path) -> std::process::Child {
    let child = user_command(podkeeper_bin())
        .arg("run")
        .arg("--apps")
        .arg(apps)
        .arg("--socket")
        .arg(socket())
        .args(["--control-socket", ctl.arg()])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start podkeeper");
    wait_until(T, "the control socket answers", || {
        ctl.client(&["status"]).status.success()
    });
    child
}

fn stop_logged(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn status_should_answer_while_sixteen_silent_clients_hold_the_control_socket() {
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let _s = serial();
    let apps = Apps::new("i20-busy-");
    let ctl = Ctl::new("busy");
    let log = std::env::temp_dir().join(format!("i20-busy-{}.log", std::process::id()));
    let d = start_logged(apps.path(), &ctl, &log);
    // Sixteen clients that connect and say nothing, each connecting again
    // as soon as the daemon closes it: every slot stays taken.
    let stop = Arc::new(AtomicBool::new(false));
    let holders: Vec<_> = (0..16)
        .map(|_| {
            let (path, stop) = (ctl.0.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&path) else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut buf = [0u8; 64];
                    // Until the daemon closes it (0, or a reset) or the test ends.
                    while !stop.load(Ordering::Relaxed) {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut answered = 0;
    let mut failures = Vec::new();
    for _ in 0..5 {
        let out = ctl.client(&["status"]);
        if out.status.success() {
            answered += 1;
        } else {
            failures.push(format!(
                "exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for h in holders {
        let _ = h.join();
    }
    stop_logged(d);
    let _ = std::fs::remove_file(&log);
    println!("status under 16 held connections: {answered}/5 answered; {failures:?}");
    assert_eq!(answered, 5, "{failures:?}");
}

#[test]
fn a_thousand_refused_requests_should_log_a_line_or_two() {
    use std::os::unix::fs::PermissionsExt;
    let _s = serial();
    let apps = Apps::new("i20-refused-");
    let ctl = Ctl::new("refused");
    let log = std::env::temp_dir().join(format!("i20-refused-{}.log", std::process::id()));
    let d = start_logged(apps.path(), &ctl, &log);
    // The mode loosened by hand: another user reaches the socket.
    std::fs::set_permissions(
        ctl.0.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&ctl.0, std::fs::Permissions::from_mode(0o666)).unwrap();
    let flood = r#"
        use IO::Socket::UNIX;
        my $n = 0;
        for (1..1000) {
            my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or next;
            print $s "status\n";
            local $/;
            my $r = <$s>;
            $n++ if defined $r && $r =~ /^error: refused/;
        }
        print "$n\n";
    "#;
    let out = std::process::Command::new("timeout")
        .arg("60")
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .args(["--", "perl", "-e", flood])
        .arg(&ctl.0)
        .output()
        .expect("run perl as nobody");
    let refused: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    // The owner is still answered.
    assert!(ctl.client(&["status"]).status.success());
    stop_logged(d);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let lines = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused"))
        .count();
    println!("{refused} requests refused; {lines} WARN lines about them");
    assert!(refused >= 990, "{refused} refused: {out:?}");
    assert!((1..=2).contains(&lines), "{lines} lines:\n{text}");
}

/// A state file in a fresh directory the stack's user owns.
fn state_file(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join(format!("{tag}/state.json"));
    user_dir(state.parent().unwrap());
    (dir, state)
}

/// Write `text` as the state file, owned by the stack's user (as podkeeper leaves it).
fn write_state(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the state file");
    if let Some(u) = &stack().user {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).expect("chown");
    }
}

#[test]
fn a_rollback_in_the_state_file_should_show_after_a_restart_until_retry_forgets_it() {
    let _s = serial();
    let apps = Apps::new("i23-mem-");
    apps.write("i23-mem-web", TRAP_CMD);
    let ctl = Ctl::new("mem");
    let (_dir, state) = state_file("mem");
    let args = [
        "--control-socket",
        ctl.arg(),
        "--state-file",
        state.to_str().unwrap(),
    ];
    // A file a crash cut short: set aside with one warning, a fresh start.
    write_state(&state, r#"{"version":1,"failed":{"i23-mem-web":{"spec"#);
    let d = Daemon::start(apps.path(), &args);
    d.wait_ready();
    wait_until(T, "web running", || is_running("i23-mem-web"));
    let out = d.output();
    assert!(
        out.contains(&format!("state file {} is truncated", state.display())),
        "{out}"
    );
    let bad = state.with_file_name("state.json.bad");
    assert!(bad.exists(), "kept aside as {}", bad.display());
    let web = inspect("i23-mem-web").unwrap();
    let spec = web.labels["io.podkeeper.spec-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.stop(), Some(0));

    // What a rollback of this very spec leaves in the file.
    write_state(
        &state,
        &serde_json::json!({"version": 1, "failed": {"i23-mem-web": {
            "spec_hash": spec, "why": "exited (code 3) after 0.4s", "exit_code": 3,
            "log_tail": "starting\npanic: no config\n", "at": "2026-12-08T03:00:00.000Z"}},
            "adopted": {}})
        .to_string(),
    );
    let d = Daemon::start(apps.path(), &args);
    d.wait_ready();
    wait_until(T, "a sweep", || ctl.status()["last_sweep"].is_string());
    let app = ctl.app("i23-mem-web");
    assert_eq!(app["update"]["state"], "rolled back", "{app}");
    assert_eq!(app["update"]["spec_hash"], spec.as_str(), "{app}");
    assert_eq!(app["update"]["exit_code"], 3, "{app}");
    let out = ctl.client(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    println!("{table}");
    assert!(table.contains("\ni23-mem-web rolled back at "), "{table}");
    assert!(
        table.contains(&format!(
            ": spec {} exited (code 3) after 0.4s\n",
            &spec[..12]
        )),
        "{table}"
    );
    assert!(
        table.contains("\n    starting\n    panic: no config\n"),
        "{table}"
    );

    // retry forgets it, writes the file, and looks at the app: the
    // container, as declared, is left as it is.
    let out = ctl.client(&["retry", "i23-mem-web"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "i23-mem-web: failed spec {} forgotten; trying the declared spec again now\n",
            &spec[..12]
        )
    );
    wait_until(T, "the state file rewritten", || {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["failed"] == serde_json::json!({}))
    });
    assert_eq!(ctl.app("i23-mem-web")["update"], serde_json::Value::Null);
    let after = inspect("i23-mem-web").unwrap();
    assert_eq!(
        (after.id.as_str(), after.status.as_str()),
        (web.id.as_str(), "running")
    );
    let out = ctl.client(&["retry", "i23-mem-nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"retry: no app "i23-mem-nope" is declared"#),
        "{err}"
    );
    assert_eq!(d.stop(), Some(0));
    assert_eq!(inspect("i23-mem-web").unwrap().id, web.id);
}
