//! Golden spec hashes: every manifest valid before issue 22 (commit 8aea03f) keeps the hash it had, so upgrading podkeeper recreates no container.
//!
//! The hashes were computed by building 8aea03f and parsing the same texts;
//! they are literals on purpose. A failure here means a running container
//! would be recreated by the upgrade: change the code, never the literal.

use std::path::{Path, PathBuf};

use podkeeper::manifest::parse_manifest;

/// The repo's manifest files valid at 8aea03f, with their hash then.
/// (fuzz seeds that were refused then are not listed: they have no hash.)
const FILES: &[(&str, &str)] = &[
    ("fixtures/burst/apps/rec-burst-00.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-01.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-02.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-03.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-04.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-05.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-06.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-07.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-08.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-09.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-10.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-11.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-12.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-13.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-14.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-15.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-16.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-17.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-18.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-19.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-20.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-21.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-22.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-23.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-24.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-25.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-26.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-27.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-28.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-29.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-30.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-31.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-32.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-33.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-34.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-35.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-36.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-37.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-38.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-39.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-40.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-41.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-42.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-43.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-44.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-45.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-46.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-47.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-48.yaml", "c2257f9b327d68c0"),
    ("fixtures/burst/apps/rec-burst-49.yaml", "c2257f9b327d68c0"),
    (
        "fixtures/companion-restore/apps/rec-comp-app.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/crash-loop/apps/rec-crash-loop-a.yaml",
        "2583710756612043",
    ),
    (
        "fixtures/crash-repair/apps/rec-crash-repair-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/crash-repair/apps/rec-crash-repair-b.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/health-restart/apps/rec-health-restart-a.yaml",
        "7aa0fa76fb85c070",
    ),
    (
        "fixtures/manifest-edit/apps/rec-manifest-edit-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/manifest-edit/apps/rec-manifest-edit-b.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/overflow/apps/rec-overflow-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/podman5-crash-repair/apps/rec-podman5-crash-repair-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/podman5-crash-repair/apps/rec-podman5-crash-repair-b.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/podman5-health/apps/rec-podman5-health-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/podman5-stop-rm/apps/rec-podman5-stop-rm-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/stop-rm/apps/rec-stop-rm-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fixtures/stream-gap/apps/rec-stream-gap-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-burst-rec-burst-00.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-companion-restore-rec-comp-app.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-crash-loop-rec-crash-loop-a.yaml",
        "2583710756612043",
    ),
    (
        "fuzz/seeds/manifest/seed-crash-repair-rec-crash-repair-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-crash-repair-rec-crash-repair-b.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-every-field.yaml",
        "8f7afc79e110f028",
    ),
    (
        "fuzz/seeds/manifest/seed-manifest-edit-rec-manifest-edit-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-manifest-edit-rec-manifest-edit-b.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-overflow-rec-overflow-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-stop-rm-rec-stop-rm-a.yaml",
        "c2257f9b327d68c0",
    ),
    (
        "fuzz/seeds/manifest/seed-stream-gap-rec-stream-gap-a.yaml",
        "c2257f9b327d68c0",
    ),
    ("fuzz/seeds/manifest/seed-tags.yaml", "ae2690ffaf7c3254"),
    ("scripts/demo-apps/cache.yaml", "c2257f9b327d68c0"),
    ("scripts/demo-apps/web.yaml", "377f72768e0ea682"),
    ("scripts/demo-apps/worker.yaml", "c2257f9b327d68c0"),
];

/// Manifests by text: the docs' examples as they were at 8aea03f, and more
/// written here to cover every field combination valid then (command, env,
/// network modes and names, ports, volumes with options, labels,
/// healthcheck), as (where, hash at 8aea03f, text).
const TEXTS: &[(&str, &str, &str)] = &[
    (
        "README.md at 8aea03f",
        "5b6fe0554991c2ce",
        r##"app:
  id: web
  container:
    image: docker.io/library/busybox:1.36
    command: ["httpd", "-f", "-p", "8080"]
    ports: ["8080:8080"]
"##,
    ),
    (
        "README.md at 8aea03f",
        "4336130964cbe7be",
        r##"app:
  id: web                      # [a-z0-9][a-z0-9-]{0,62}; also the container's name
  name: Web                    # free text on one line
  version: 1.0.0               # the same, at most 64 bytes
  container:
    image: localhost/bb:1      # pulled when missing
    command: ["/bin/sleep", "100000"]   # replaces the image's CMD
    env: {KEY: value}
    network: none              # podman network mode
    ports: ["8080:80"]         # HOST:CONTAINER or IP:HOST:CONTAINER, /udp allowed
    volumes: ["/srv/web:/data"]  # absolute source = bind mount, else a named volume
    labels: {k: v}
    healthcheck:               # podkeeper runs it and restarts the app when it fails
      command: ["/bin/sh", "-c", "wget -qO- localhost:8080/health"]
      interval: 10s            # default 30s
      timeout: 2s              # default 5s
      retries: 3               # consecutive failures that make it unhealthy; default 3
      start_period: 0s         # failures during it do not count; default 0s
  state: running               # running (default) | stopped: created, kept stopped
  depends_on:                  # started only once these run (or are healthy)
    - app: db
      condition: running       # running (default) | healthy (db needs a healthcheck)
  companions:                  # Quadlet units this app owns
    - name: web-tunnel         # same rule as ids; the file is <name>.<kind>
      kind: container          # container (default) | volume | network | pod | kube | image | build
      unit: |                  # the Quadlet file's exact contents
        [Container]
        Image=localhost/bb:1
        Exec=/bin/sh -c 'trap "exit 0" TERM; sleep 100000 & wait'
        Network=none
"##,
    ),
    (
        "README.md at 8aea03f",
        "ed54256876544db9",
        r##"app:
  id: db
  container:
    image: localhost/bb:1
"##,
    ),
    (
        "companions.md at 8aea03f",
        "fe01f0bda191f2ea",
        r##"app:
  id: web
  container:
    image: localhost/bb:1
    network: none
  companions:
    - name: web-tunnel        # same rule as app ids; the file is <name>.<kind>
      kind: container         # container (default) | volume | network | pod | kube | image | build
      unit: |                 # the Quadlet file's exact contents
        [Container]
        Image=localhost/bb:1
        Exec=/bin/sh -c 'trap "exit 0" TERM; sleep 100000 & wait'
        Network=none
"##,
    ),
    (
        "manifests.md at 8aea03f",
        "4336130964cbe7be",
        r##"app:
  id: web                      # [a-z0-9][a-z0-9-]{0,62}; also the container's name
  name: Web                    # free text on one line: no control characters, U+2028 or U+2029
  version: 1.0.0               # the same, at most 64 bytes
  container:
    image: localhost/bb:1      # required
    command: ["/bin/sleep", "100000"]   # optional
    env: {KEY: value}          # optional
    network: none              # optional podman network mode
    ports: ["8080:80"]         # optional, HOST:CONTAINER or IP:HOST:CONTAINER, /udp allowed
    volumes: ["/srv/web:/data"]  # optional, absolute source = bind mount, else a named volume
    labels: {k: v}             # optional
    healthcheck:               # optional: podkeeper runs it and restarts the app when it fails
      command: ["/bin/sh", "-c", "wget -qO- localhost:8080/health"]   # exec form, as podman's CMD
      interval: 10s            # default 30s
      timeout: 2s              # default 5s
      retries: 3               # consecutive failures that make it unhealthy; default 3
      start_period: 0s         # failures during it do not count; default 0s
  state: running               # running (default) | stopped: the container exists and is kept stopped
  depends_on:                  # optional: checked by `check`; see below for what run does with it
    - app: db
      condition: healthy       # running (default) | healthy (db needs a healthcheck)
  companions:                  # optional: Quadlet units this app owns
    - name: web-tunnel         # same rule as ids, unique across apps; the file is <name>.<kind>
      kind: container          # container (default) | volume | network | pod | kube | image | build
      unit: |                  # the Quadlet file's exact contents
        [Container]
        Image=localhost/bb:1
        Exec=/bin/sh -c 'trap "exit 0" TERM; sleep 100000 & wait'
        Network=none
"##,
    ),
    (
        "manifests.md at 8aea03f",
        "69232e1ed9ec117f",
        r##"app:
  id: db
  container:
    image: localhost/bb:1
    healthcheck:
      command: ["/bin/true"]
"##,
    ),
    (
        "written here",
        "ed54256876544db9",
        r##"app:
  id: minimal
  container:
    image: localhost/bb:1
"##,
    ),
    (
        "written here",
        "5dd7b5e6cd13ffdb",
        r##"app:
  id: cmd-env
  name: Command and env
  version: 1.0
  container:
    image: docker.io/library/busybox:1.36
    command: ["/bin/sh", "-c", "echo $GREETING; sleep 3600"]
    env:
      GREETING: hello world
      EMPTY: ""
      NUMBER: "42"
"##,
    ),
    (
        "written here",
        "4881afd52f2d81ee",
        r##"app:
  id: named-net
  container:
    image: localhost/bb:1
    network: mynet
    ports: ["8080:80", "127.0.0.1:8443:443/tcp", "5353:53/udp"]
"##,
    ),
    (
        "written here",
        "2f7af0c942f73ee8",
        r##"app:
  id: net-modes
  container:
    image: localhost/bb:1
    network: slirp4netns
    ports: ["9000:9000"]
    labels:
      com.example.team: infra
      tier: "1"
"##,
    ),
    (
        "written here",
        "b5013390861a10ed",
        r##"app:
  id: host-net
  container:
    image: localhost/bb:1
    network: host
    command: [/bin/httpd, -f, -p, "8081"]
"##,
    ),
    (
        "written here",
        "4bdbdd2182f08d2b",
        r##"app:
  id: vols
  container:
    image: localhost/bb:1
    network: none
    volumes:
      - /srv/data:/data:ro,Z
      - cache:/cache:U
      - /srv/logs:/logs:rw,z
      - named.vol-1:/v
      - /srv/x:/x:rbind,rprivate,nosuid,nodev,noexec
      - /srv/o:/o:O
      - vol2:/v2:nocopy
"##,
    ),
    (
        "written here",
        "44a1a8d54b101356",
        r##"app:
  id: health
  container:
    image: localhost/bb:1
    command: [sleep, "3600"]
    healthcheck:
      command: ["/bin/sh", "-c", "test -e /tmp"]
      interval: 10s
      timeout: 2s
      retries: 5
      start_period: 1m
"##,
    ),
    (
        "written here",
        "69232e1ed9ec117f",
        r##"app:
  id: health-min
  container:
    image: localhost/bb:1
    healthcheck:
      command: [/bin/true]
"##,
    ),
    (
        "written here",
        "af0c16b793fef835",
        r##"app:
  id: everything
  name: Everything valid before issue 22
  version: "2.3.4"
  state: stopped
  depends_on:
    - app: db
      condition: healthy
    - app: cache
  container:
    image: registry.example.com:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    command: [/app/server, --port, "8080", --flag=with=equals]
    env: {A: "1", B: "two words", Z_LAST: "ü"}
    network: bridge
    ports: ["8080:8080"]
    volumes: ["/srv/app:/app:ro", "appdata:/var/lib/app"]
    labels: {a: b, "x.y/z": "w"}
    healthcheck:
      command: [curl, -fsS, http://localhost:8080/health]
      interval: 30s
  companions:
    - name: everything-tunnel
      unit: |
        [Container]
        Image=localhost/bb:1
"##,
    ),
    (
        "written here",
        "e7d6934be27e942c",
        r##"app:
  id: pasta-net
  container:
    image: localhost/bb:1
    network: pasta
    env: {}
    labels: {}
    ports: []
    volumes: []
"##,
    ),
    (
        "written here",
        "4580e6b99a18ebb8",
        r##"app:
  id: private-net
  container:
    image: localhost/bb:1
    network: private
    command: [sleep, infinity]
"##,
    ),
];

fn hash(place: &str, text: &str) -> String {
    match parse_manifest(Path::new(place), text) {
        Ok(app) => app.container.hash(),
        Err(e) => panic!("valid at 8aea03f, refused now: {e}"),
    }
}

#[test]
fn every_manifest_file_valid_before_should_keep_its_hash() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (file, golden) in FILES {
        let text = std::fs::read_to_string(repo.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e} (a pinned fixture is gone)"));
        assert_eq!(hash(file, &text), *golden, "{file}");
    }
}

#[test]
fn docs_examples_and_more_valid_before_should_keep_their_hashes() {
    for (i, (place, golden, text)) in TEXTS.iter().enumerate() {
        assert_eq!(hash(place, text), *golden, "TEXTS[{i}] ({place}):\n{text}");
    }
}

#[test]
fn a_new_field_should_enter_the_hash_only_when_set() {
    let (_, golden, text) = TEXTS
        .iter()
        .find(|(_, _, t)| t.contains("id: minimal"))
        .expect("the minimal manifest");
    // Written at its default, each new field is still "unset".
    let defaults = "    init: false\n    read_only: false\n    no_new_privileges: false\n    cap_add: []\n    devices: []\n    tmpfs: []\n    dns: []\n    secrets: []\n    ulimits: {}\n";
    let app_defaults = text.replace("  container:\n", "  restart: always\n  container:\n");
    assert_eq!(hash("a.yaml", &format!("{text}{defaults}")), *golden);
    assert_eq!(hash("a.yaml", &app_defaults), *golden);
    let restart = text.replace("  container:\n", "  restart: never\n  container:\n");
    assert_eq!(
        hash("a.yaml", &restart),
        *golden,
        "restart is not in the hash"
    );
    for set in [
        "    init: true\n",
        "    user: \"1000\"\n",
        "    stop_timeout: 30s\n",
        "    cap_drop: [ALL]\n",
        "    resources: {memory: 64M}\n",
    ] {
        assert_ne!(hash("a.yaml", &format!("{text}{set}")), *golden, "{set}");
    }
}

#[test]
fn update_and_adopt_should_never_enter_the_hash() {
    let (_, golden, text) = TEXTS
        .iter()
        .find(|(_, _, t)| t.contains("id: minimal"))
        .expect("the minimal manifest");
    // issue 23: the gate, rollback and adoption change how a spec is
    // applied, never which container it is.
    for app_level in [
        "  adopt: true\n",
        "  adopt: false\n",
        "  update:\n    stable_for: 30s\n    healthy_within: 2m\n    rollback: false\n",
        "  update: {}\n",
    ] {
        let t = text.replace("  container:\n", &format!("{app_level}  container:\n"));
        assert_eq!(hash("a.yaml", &t), *golden, "{app_level}");
    }
}
