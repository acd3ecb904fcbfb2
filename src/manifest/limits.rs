//! Every bound on a manifest, in one place: how much one file may cost to read and what may reach podman.
//!
//! A real manifest is a few kilobytes; these bounds are far above that and
//! far below what would hurt: the worst file within them costs well under
//! 50 MB and 100 ms to refuse or accept (README, "Security"), and no field
//! can bloat podman's own database (a 400 MB command once grew it to 1.7 GB
//! and slowed every podman call on the host).

/// The largest manifest file read; bigger ones are refused unread.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// YAML nesting depth (flow or block, aliases included). A manifest needs 5.
/// libyaml's scanner does work proportional to the flow depth on every token,
/// so this also bounds its time per byte.
pub const MAX_DEPTH: usize = 32;
/// YAML nodes (scalars, sequences, mappings), every use of an alias counted
/// again. A manifest with every list at its bound has about 4,000.
pub const MAX_NODES: u64 = 20_000;
/// Bytes of scalars, every use of an alias counted again: a small file can
/// no longer expand into a large value.
pub const MAX_EXPANDED_BYTES: u64 = 2 << 20;

/// `app.name`
pub const MAX_NAME_BYTES: usize = 256;
/// `app.version`
pub const MAX_VERSION_BYTES: usize = 64;
/// `app.container.image`
pub const MAX_IMAGE_BYTES: usize = 512;
/// `app.container.network`
pub const MAX_NETWORK_BYTES: usize = 255;
/// `app.container.command`: entries, and bytes of all entries.
pub const MAX_COMMAND_ARGS: usize = 1024;
pub const MAX_COMMAND_BYTES: usize = 128 << 10;
/// `app.container.env`: entries, and bytes of all names and values.
pub const MAX_ENV: usize = 512;
pub const MAX_ENV_BYTES: usize = 128 << 10;
/// `app.container.labels`: entries, and bytes of all keys and values.
pub const MAX_LABELS: usize = 128;
pub const MAX_LABEL_BYTES: usize = 64 << 10;
/// `app.container.ports`
pub const MAX_PORTS: usize = 256;
/// `app.container.volumes`: entries, and bytes of one entry (PATH_MAX).
pub const MAX_VOLUMES: usize = 128;
pub const MAX_VOLUME_BYTES: usize = 4096;
/// `app.companions`, and bytes of one companion's unit file.
pub const MAX_COMPANIONS: usize = 256;
pub const MAX_UNIT_BYTES: usize = 64 << 10;

/// `app.depends_on`
pub const MAX_DEPENDS_ON: usize = 64;

// Issue 22's container options. Real manifests use a handful of each; the
// bounds keep podman's database and the create call small whatever is written.
/// `app.container.entrypoint`: as `command` (entries, bytes of all entries).
pub const MAX_ENTRYPOINT_ARGS: usize = MAX_COMMAND_ARGS;
pub const MAX_ENTRYPOINT_BYTES: usize = MAX_COMMAND_BYTES;
/// A path in the container or on the host (`workdir`, `tmpfs`, secrets'
/// `file` and `target`): PATH_MAX.
pub const MAX_PATH_BYTES: usize = 4096;
/// `app.container.user` and one `group_add` entry: `name:group`, with room
/// for long LDAP names (useradd's own limit is 32 per name).
pub const MAX_USER_BYTES: usize = 256;
/// `app.container.group_add`: entries (NGROUPS_MAX is 65536, real use is 1 to 3).
pub const MAX_GROUP_ADD: usize = 64;
/// `app.container.hostname`: the kernel's HOST_NAME_MAX. sethostname(2)
/// refuses more, so a longer name would fail at every start, not here.
pub const MAX_HOSTNAME_BYTES: usize = 64;
/// `app.container.dns`: servers (glibc reads 3; podman writes all).
pub const MAX_DNS: usize = 16;
/// `app.container.extra_hosts`: entries, each `host:ip` (the host at most
/// 253 bytes, as DNS allows).
pub const MAX_EXTRA_HOSTS: usize = 256;
/// `app.container.devices`: entries.
pub const MAX_DEVICES: usize = 128;
/// `app.container.cap_add`, `cap_drop`: entries (41 capabilities exist).
pub const MAX_CAPS: usize = 64;
/// `app.container.tmpfs`: entries.
pub const MAX_TMPFS: usize = 64;
/// `app.container.ulimits`: entries (15 names exist).
pub const MAX_ULIMITS: usize = 16;
/// `app.container.resources.memory`: crun and podman refuse a memory limit
/// below 6 MiB ("minimum memory limit allowed is 6MB").
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
/// `app.container.resources.cpus`: the smallest quota the kernel takes is
/// 1 ms per 100 ms period.
pub const MIN_CPUS: f64 = 0.01;
/// `app.container.resources.pids`: the kernel's PID_MAX_LIMIT on 64 bits.
pub const MAX_PIDS: u64 = 4_194_304;
/// `app.container.stop_timeout`: an hour. A stop blocks every other
/// operation on the app while it waits; an app that needs longer to flush
/// should stop itself.
pub const MAX_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);
/// `app.container.secrets`: entries.
pub const MAX_SECRETS: usize = 64;

/// `1048576` → `1 MiB`, `131072` → `128 KiB`, `64` → `64 bytes`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_should_read_as_people_write_them() {
        assert_eq!(human(MAX_FILE_BYTES), "1 MiB");
        assert_eq!(human(MAX_COMMAND_BYTES as u64), "128 KiB");
        assert_eq!(human(255), "255 bytes");
    }
}
