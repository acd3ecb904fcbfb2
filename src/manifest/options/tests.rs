//! Tests of `options`: each parser's accepted forms and its refusals.
use super::*;

#[test]
fn sizes_should_read_as_podman_reads_them() {
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("1g"), Some(1 << 30));
    assert_eq!(parse_size("64k"), Some(64 << 10));
    assert_eq!(parse_size("64KiB"), Some(64 << 10));
    assert_eq!(parse_size("1048576"), Some(1 << 20));
    assert_eq!(parse_size("1.5G"), Some(3 << 29));
    for bad in [
        "",
        "M",
        "12x",
        "1..2M",
        "-1M",
        ".5G",
        "99999999999999999999999T",
        "1 G",
    ] {
        assert_eq!(parse_size(bad), None, "{bad}");
    }
}

#[test]
fn devices_should_parse_podman_forms() {
    let d = parse_device("/dev/dri/renderD128:/dev/dri/renderD128:rw").unwrap();
    assert_eq!(d.permissions, "rw");
    let d = parse_device("/dev/fuse").unwrap();
    assert_eq!(
        (d.container.as_str(), d.permissions.as_str()),
        ("/dev/fuse", "rwm")
    );
    assert_eq!(parse_device("/dev/fuse:r").unwrap().container, "/dev/fuse");
    assert_eq!(parse_device("/dev/a:/dev/b").unwrap().container, "/dev/b");
    for bad in [
        "fuse",
        "/dev/",
        "/etc/passwd",
        "/dev/a:/dev/b:rx",
        "/dev/a:/dev/b:rr",
        "/dev/a:b:c:d",
        "/dev/a\n",
    ] {
        assert_eq!(parse_device(bad), None, "{bad}");
    }
    assert!(check_device_on_host("/dev/null").is_ok());
    assert!(check_device_on_host("/dev/nope-podkeeper")
        .unwrap_err()
        .contains("does not exist"));
    assert!(check_device_on_host("/etc/hostname")
        .unwrap_err()
        .contains("not a device"));
}

#[test]
fn tmpfs_should_take_mount_options() {
    let t = parse_tmpfs("/run:size=64m,mode=1777,noexec").unwrap();
    assert_eq!(t.options, ["size=64m", "mode=1777", "noexec"]);
    assert!(parse_tmpfs("/tmp").unwrap().options.is_empty());
    assert!(parse_tmpfs("/tmp:size=50%").is_ok());
    for bad in [
        "tmp",
        "/tmp:size=lots",
        "/tmp:mode=999",
        "/tmp:bogus",
        "/tmp:size=0%",
    ] {
        assert!(parse_tmpfs(bad).is_err(), "{bad}");
    }
}

#[test]
fn ulimits_should_be_known_and_ordered() {
    let u = parse_ulimit("nofile", "1024:4096").unwrap();
    assert_eq!(
        (u.soft, u.hard, u.rlimit_type().as_str()),
        (1024, 4096, "RLIMIT_NOFILE")
    );
    assert_eq!(parse_ulimit("core", "-1").unwrap().hard, u64::MAX);
    assert_eq!(parse_ulimit("nproc", "10:-1").unwrap().hard, u64::MAX);
    assert!(parse_ulimit("nofile", "4096:1024")
        .unwrap_err()
        .contains("soft limit is above"));
    assert!(parse_ulimit("nofile", "-2").is_err());
    assert!(parse_ulimit("nofile", "lots").is_err());
    assert!(parse_ulimit("as", "1").unwrap_err().contains("nofile"));
}

#[test]
fn volume_options_should_be_podmans() {
    let ok =
        |o: &[&str]| check_volume_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(ok(&["ro", "Z", "U", "rprivate", "nosuid", "idmap=uids=0-1-10"]).is_ok());
    assert!(ok(&["O", "upperdir=/a", "workdir=/b"]).is_ok());
    assert!(ok(&["ro", "rw"]).unwrap_err().contains("contradict"));
    assert!(ok(&["cached"])
        .unwrap_err()
        .contains("not one podman takes"));
    assert!(ok(&["delegated"]).is_err());
    assert!(ok(&[""]).is_err());
}

#[test]
fn signals_should_parse_with_or_without_sig() {
    assert_eq!(parse_signal("SIGINT"), Some(2));
    assert_eq!(parse_signal("term"), Some(15));
    assert_eq!(parse_signal("9"), Some(9));
    assert_eq!(parse_signal("RTMIN+3"), Some(37));
    assert_eq!(parse_signal("SIGRTMAX"), Some(64));
    for bad in ["0", "65", "SIGFOO", "RTMIN+16", "", "SIG"] {
        assert_eq!(parse_signal(bad), None, "{bad}");
    }
}

#[test]
fn capabilities_should_be_linuxs() {
    assert_eq!(CAPABILITIES.len(), 41);
    assert_eq!(
        parse_capability("net_bind_service").as_deref(),
        Some("CAP_NET_BIND_SERVICE")
    );
    assert_eq!(
        parse_capability("CAP_CHECKPOINT_RESTORE").as_deref(),
        Some("CAP_CHECKPOINT_RESTORE")
    );
    assert_eq!(parse_capability("all").as_deref(), Some("ALL"));
    assert_eq!(parse_capability("CAP_FLY"), None);
}

#[test]
fn networks_users_hosts_and_timeouts_should_parse() {
    assert_eq!(parse_network("host"), Ok(NetworkMode::Host));
    assert_eq!(
        parse_network("my_net.1"),
        Ok(NetworkMode::Named("my_net.1".into()))
    );
    assert_eq!(parse_network("app:db"), Ok(NetworkMode::App("db".into())));
    assert!(parse_network("container:x")
        .unwrap_err()
        .contains("app:<id>"));
    assert!(parse_network("-net").is_err());
    assert_eq!(parse_user("1000:1000"), Some(("1000", Some("1000"))));
    assert_eq!(parse_user("postgres"), Some(("postgres", None)));
    assert_eq!(parse_user("post\ngres"), None);
    assert_eq!(parse_user("a:"), None);
    assert_eq!(
        parse_extra_host("db.lan:10.1.2.3"),
        Some(("db.lan", "10.1.2.3"))
    );
    assert_eq!(parse_extra_host("v6:fd00::1"), Some(("v6", "fd00::1")));
    assert!(parse_extra_host("gw:host-gateway").is_some());
    assert!(parse_extra_host("db:10.1.2").is_none());
    assert_eq!(parse_stop_timeout("0"), Ok(Duration::ZERO));
    assert_eq!(parse_stop_timeout("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_stop_timeout("61m").unwrap_err().contains("over 1h"));
    assert!(parse_stop_timeout("1500ms")
        .unwrap_err()
        .contains("whole seconds"));
    assert_eq!(parse_cpus("1.5"), Some(1_500_000_000));
    assert_eq!(parse_cpus("0"), None);
    assert_eq!(parse_memory("5M"), None);
    assert_eq!(parse_memory("6M"), Some(6 << 20));
}
