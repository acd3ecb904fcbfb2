//! Issue 22's container options end to end, on every stack: what podman really gave the container (its inspect, and from inside: `id -u`, a write to a read-only root failing, PID 1 the init, /etc/hosts, capabilities, limits, …); named networks joined for real, a missing one a clear error that ends the moment the network appears; `app:<id>` sharing that app's network namespace, and rejoining when it is recreated.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const IMAGE: &str = "localhost/bb:1";

/// A command that ends on SIGINT or SIGTERM, under the init.
const WAITS: &str = "trap 'exit 0' INT TERM; sleep 100000 & wait";

/// `podman exec NAME sh -c SCRIPT`: its stdout, and whether it succeeded.
fn exec(name: &str, script: &str) -> (bool, String) {
    let out = podman(&["exec", name, "sh", "-c", script]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

fn inspect_json(name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&podman_ok(&["container", "inspect", name])).expect("inspect json");
    v[0].clone()
}

/// Whether this stack's podman drops cgroup limits (rootless on cgroup v1).
fn limits_ignored() -> bool {
    let v = podman_ok(&["info", "--format", "{{.Host.CgroupsVersion}}"]);
    stack().user.is_some() && v.trim() == "v1"
}

#[test]
fn every_option_should_reach_the_container_and_a_missing_device_be_a_clear_error() {
    let _g = serial();
    let apps = Apps::new("e2e-opt-");
    podman(&["volume", "rm", "-f", "e2e-opt-cache"]);
    let ro = apps.path().join("ro-src");
    user_dir(&ro);
    let full = format!(
        "app:\n  id: e2e-opt-full\n  container:\n    image: {IMAGE}\n    network: none\n    \
         entrypoint: [\"/bin/sh\", \"-c\"]\n    command: [\"{WAITS}\"]\n    workdir: /cache\n    \
         user: \"1000:1000\"\n    group_add: [\"1234\"]\n    hostname: optbox\n    \
         extra_hosts: [\"db.lan:10.1.2.3\"]\n    devices: [\"/dev/full:/dev/mydev\"]\n    \
         cap_drop: [ALL]\n    cap_add: [NET_BIND_SERVICE]\n    read_only: true\n    \
         tmpfs: [\"/scratch:size=8m\"]\n    no_new_privileges: true\n    \
         ulimits: {{nofile: \"1024:2048\", nproc: 1000}}\n    \
         volumes: [\"{}:/ro:ro\", \"e2e-opt-cache:/cache:U\"]\n    \
         stop_signal: SIGINT\n    stop_timeout: 20\n",
        ro.display()
    );
    apps.write_raw("e2e-opt-full.yaml", &full);
    let limits = format!(
        "app:\n  id: e2e-opt-limits\n  container:\n    image: {IMAGE}\n    network: none\n    \
         command: [\"/bin/sh\", \"-c\", \"{WAITS}\"]\n    \
         resources: {{memory: 64M, cpus: 0.5, pids: 64, shm_size: 1M}}\n"
    );
    apps.write_raw("e2e-opt-limits.yaml", &limits);
    let nodev = format!(
        "app:\n  id: e2e-opt-nodev\n  container:\n    image: {IMAGE}\n    network: none\n    \
         command: [\"/bin/sh\", \"-c\", \"{WAITS}\"]\n    devices: [\"/dev/e2e-opt-nope\"]\n"
    );
    apps.write_raw("e2e-opt-nodev.yaml", &nodev);
    // Its own app: rootless podman 4.3 cannot run its init as another
    // user than root ("stat /run/podman-init: permission denied").
    let init = format!(
        "app:\n  id: e2e-opt-init\n  container:\n    image: {IMAGE}\n    network: none\n    \
         command: [\"/bin/sh\", \"-c\", \"{WAITS}\"]\n    init: true\n"
    );
    apps.write_raw("e2e-opt-init.yaml", &init);
    let d = Daemon::start(apps.path(), &[]);
    wait_until(T, "e2e-opt-full running", || is_running("e2e-opt-full"));

    // From podman's inspect.
    let c = inspect_json("e2e-opt-full");
    let (cfg, host) = (&c["Config"], &c["HostConfig"]);
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["WorkingDir"], "/cache");
    assert_eq!(cfg["Hostname"], "optbox");
    assert_eq!(cfg["StopTimeout"], 20);
    // podman 4 writes the number, podman 5 the name.
    let sig = &cfg["StopSignal"];
    assert!(sig == 2 || sig == "SIGINT", "StopSignal {sig}");
    assert_eq!(host["ReadonlyRootfs"], true);
    assert!(
        host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"),
        "{}",
        host["SecurityOpt"]
    );
    assert_eq!(host["ExtraHosts"], serde_json::json!(["db.lan:10.1.2.3"]));
    assert_eq!(host["GroupAdd"], serde_json::json!(["1234"]));
    // Rootless podman bind-mounts a device (no cgroup rule to show): the
    // look from inside below holds on every stack.
    if stack().user.is_none() {
        assert_eq!(host["Devices"][0]["PathInContainer"], "/dev/mydev");
    }

    // From inside.
    let probe = exec(
        "e2e-opt-full",
        "id -u; id -G; pwd; hostname; tr '\\0' ' ' </proc/1/cmdline; echo; \
         grep db.lan /etc/hosts; grep CapEff /proc/1/status; grep NoNewPrivs /proc/1/status; \
         grep 'open files' /proc/1/limits; ls -ln /dev/mydev; stat -c 'cache %u' /cache; \
         grep ' /scratch ' /proc/mounts",
    );
    assert!(probe.0, "{}", probe.1);
    let out = probe.1;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "id -u:\n{out}");
    assert!(lines[1].split(' ').any(|g| g == "1234"), "id -G:\n{out}");
    assert_eq!(lines[2], "/cache", "pwd:\n{out}");
    assert_eq!(lines[3], "optbox", "hostname:\n{out}");
    assert!(
        lines[4].starts_with("/bin/sh -c trap"),
        "PID 1 the entrypoint with the command:\n{out}"
    );
    assert!(out.contains("10.1.2.3\tdb.lan"), "/etc/hosts:\n{out}");
    assert!(
        out.contains("CapEff:\t0000000000000400"),
        "NET_BIND_SERVICE only:\n{out}"
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('c') && l.ends_with("/dev/mydev")),
        "/dev/full as /dev/mydev, a char device:\n{out}"
    );
    let nofile: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(nofile.get(3..5), Some(&["1024", "2048"][..]), "{out}");
    assert!(
        out.contains("cache 1000"),
        "the U volume is the user's:\n{out}"
    );
    assert!(out.contains(" /scratch tmpfs "), "tmpfs:\n{out}");
    let (wrote, why) = exec("e2e-opt-full", "touch /x");
    assert!(!wrote && why.contains("Read-only file system"), "{why}");
    let (wrote, why) = exec("e2e-opt-full", "touch /ro/x");
    assert!(
        !wrote && why.contains("Read-only file system"),
        "ro volume: {why}"
    );
    let (wrote, why) = exec("e2e-opt-full", "touch /cache/x /scratch/x");
    assert!(wrote, "U volume and tmpfs are writable: {why}");

    // init: PID 1 is podman's init (catatonit), the command under it.
    wait_until(T, "e2e-opt-init running", || is_running("e2e-opt-init"));
    assert_eq!(inspect_json("e2e-opt-init")["HostConfig"]["Init"], true);
    let (_, pid1) = exec(
        "e2e-opt-init",
        "tr '\\0' ' ' </proc/1/cmdline; echo; /run/podman-init --version",
    );
    assert!(
        pid1.starts_with("/run/podman-init -- /bin/sh -c trap") && pid1.contains("catatonit"),
        "{pid1}"
    );

    // Limits: applied, or refused where podman would drop them.
    if limits_ignored() {
        d.wait_line(
            0,
            &[
                "app/e2e-opt-limits",
                "FAILED",
                "container.resources cannot be applied here",
                "remove container.resources or run podman as root",
            ],
            T,
        );
        assert!(
            inspect("e2e-opt-limits").is_none(),
            "never created without its limits"
        );
    } else {
        wait_until(T, "e2e-opt-limits running", || is_running("e2e-opt-limits"));
        let h = inspect_json("e2e-opt-limits")["HostConfig"].clone();
        assert_eq!(h["Memory"], 64 << 20);
        assert_eq!(h["PidsLimit"], 64);
        assert_eq!(h["CpuQuota"], 50_000);
        assert_eq!(h["ShmSize"], 1 << 20);
        let (_, cg) = exec(
            "e2e-opt-limits",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max \
             /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null",
        );
        assert!(
            cg.contains("67108864") && cg.contains("64"),
            "cgroup files: {cg}"
        );
    }

    // A device missing on the host: a clear error naming it, nothing created.
    d.wait_line(
        0,
        &[
            "e2e-opt-nodev",
            "/dev/e2e-opt-nope",
            "does not exist on this host",
        ],
        T,
    );
    assert!(inspect("e2e-opt-nodev").is_none());
    drop(d);
    podman(&["volume", "rm", "-f", "e2e-opt-cache"]);
}

#[test]
fn a_named_network_should_be_joined_when_it_appears_and_an_app_network_shared() {
    let _g = serial();
    let apps = Apps::new("e2e-optn-");
    let net = "e2e-optn-net";
    podman(&["network", "rm", "-f", net]);
    let owner = |env: &str| {
        format!(
            "app:\n  id: e2e-optn-web\n  container:\n    image: {IMAGE}\n    network: {net}\n    \
             command: [\"/bin/sh\", \"-c\", \"{WAITS}\"]\n    dns: [\"9.9.9.9\"]\n    \
             hostname: netbox\n    env: {{V: \"{env}\"}}\n"
        )
    };
    apps.write_raw("e2e-optn-web.yaml", &owner("1"));
    apps.write_raw(
        "e2e-optn-side.yaml",
        &format!(
            "app:\n  id: e2e-optn-side\n  container:\n    image: {IMAGE}\n    \
             network: \"app:e2e-optn-web\"\n    command: [\"/bin/sh\", \"-c\", \"{WAITS}\"]\n"
        ),
    );
    // No sweep to come to the rescue.
    let d = Daemon::start(apps.path(), &["--sweep-interval", "1h"]);
    let failed = d.wait_line(
        0,
        &[
            "app/e2e-optn-web",
            "FAILED",
            &format!("network \"{net}\" does not exist: create it (`podman network create {net}`"),
        ],
        T,
    );
    d.wait_line(0, &["app/e2e-optn-side", "waiting for e2e-optn-web"], T);
    assert!(
        inspect("e2e-optn-web").is_none(),
        "never on bridge instead: {failed}"
    );
    let mark = d.mark();
    let t0 = Instant::now();
    // Without DNS of its own, so the container's resolv.conf holds its `dns`.
    podman_ok(&["network", "create", "--disable-dns", net]);
    wait_until(T, "e2e-optn-web running", || is_running("e2e-optn-web"));
    let took = t0.elapsed();
    let events = d
        .lines_since(mark)
        .iter()
        .any(|l| l.contains("queue 1 app(s)"));
    println!("network created -> running in {took:?} (network event: {events})");
    // podman 4.4 and later emit a network `create` event: the app starts
    // at once. podman 4.3 emits none: the app's next retry (1 s after the
    // first failure, doubling) finds it; either is long before the sweep.
    if events {
        assert!(took < Duration::from_secs(3), "{took:?}");
    } else {
        assert!(took < Duration::from_secs(20), "{took:?}");
    }

    // Joined for real; dns and hostname on it.
    let c = inspect_json("e2e-optn-web");
    let nets = c["NetworkSettings"]["Networks"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nets.keys().collect::<Vec<_>>(), [net], "{nets:?}");
    assert_eq!(c["HostConfig"]["Dns"], serde_json::json!(["9.9.9.9"]));
    let (_, resolv) = exec("e2e-optn-web", "cat /etc/resolv.conf; hostname");
    assert!(resolv.contains("nameserver 9.9.9.9"), "{resolv}");
    assert!(resolv.ends_with("netbox"), "{resolv}");

    // app:<id>: it waited for the owner, and shares its network namespace.
    wait_until(T, "e2e-optn-side running", || is_running("e2e-optn-side"));
    let ns = |name: &str| exec(name, "readlink /proc/1/ns/net").1;
    assert_eq!(ns("e2e-optn-side"), ns("e2e-optn-web"));
    let side_before = inspect("e2e-optn-side").unwrap().id;

    // The owner recreated: the sharer is recreated in its new namespace.
    apps.write_raw("e2e-optn-web.yaml", &owner("2"));
    wait_until(T, "e2e-optn-side recreated and running", || {
        inspect("e2e-optn-side").is_some_and(|c| c.id != side_before && c.status == "running")
            && is_running("e2e-optn-web")
    });
    assert_eq!(ns("e2e-optn-side"), ns("e2e-optn-web"));
    assert!(
        !d.output().contains("dependent containers"),
        "{}",
        d.output()
    );
    drop(d);
    remove_containers("e2e-optn-");
    podman(&["network", "rm", "-f", net]);
}
