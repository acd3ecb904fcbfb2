# shellcheck shell=bash
# The podman stacks podkeeper is tested on, described in one place. Sourced by
# scripts/setup-host (which builds them), scripts/env.sh (the test
# environment of one stack), scripts/podman-service (its API service) and
# scripts/test (which runs the end-to-end tests on each); scripts/registry-service
# uses its detach().
#
#   root      Debian 12's podman 4.3.1 as root: /run/podman/podman.sock
#   podman5   Debian 13's podman 5.4.2 as root, in its own root filesystem and
#             private mount namespace beside the host's podman 4.3.1; its API
#             socket and its exit directory are on the host (/run/podkeeper/podman5)
#   rootless  Debian 12's podman 4.3.1 as the unprivileged user pk-rootless,
#             its API socket activated by that user's systemd user manager

# Every stack, in the order scripts/test runs them.
PODKEEPER_STACKS=(root podman5 rootless)

# podman 5: the Debian release it comes from, its root filesystem, the host
# directory shared with it at the same path (API socket, engine tmp_dir with
# conmon's exit files, service pid and log), and the file that pins its mount
# namespace (outside the shared directory: a namespace cannot hold its own pin).
P5_SUITE=trixie
P5_ROOT=/var/lib/podkeeper/podman5-root
P5_RUN=/run/podkeeper/podman5
P5_TMP=$P5_RUN/tmp
P5_NS=/run/podkeeper/podman5-ns/mnt
# Its CLI: runs the podman in that root, in that namespace.
P5_CLI=/usr/local/bin/podman5

# The rootless stack's user.
RL_USER=pk-rootless

# stack_vars STACK: set STACK_SOCKET (the API socket), STACK_PODMAN (the
# podman CLI for that stack, run as STACK_USER), STACK_USER (empty for root),
# STACK_UID, STACK_HOME, STACK_RUNTIME_DIR (that user's XDG_RUNTIME_DIR) and
# STACK_COMPANIONS (1 when companions are tested on it: a systemd user manager
# with Quadlet runs that stack's podman).
stack_vars() {
    case $1 in
    root)
        STACK_SOCKET=/run/podman/podman.sock STACK_PODMAN=podman STACK_USER=
        STACK_UID=0 STACK_HOME=/root STACK_RUNTIME_DIR=/run/user/0 STACK_COMPANIONS=1
        ;;
    podman5)
        # Quadlet's units on this host run the host's podman, so companions
        # are not tested on podman 5.
        STACK_SOCKET=$P5_RUN/podman.sock STACK_PODMAN=$P5_CLI STACK_USER=
        STACK_UID=0 STACK_HOME=/root STACK_RUNTIME_DIR=/run/user/0 STACK_COMPANIONS=0
        ;;
    rootless)
        STACK_USER=$RL_USER STACK_PODMAN=podman STACK_COMPANIONS=1
        STACK_UID=$(id -u "$RL_USER" 2>/dev/null || echo missing)
        STACK_HOME=/home/$RL_USER
        STACK_RUNTIME_DIR=/run/user/$STACK_UID
        STACK_SOCKET=$STACK_RUNTIME_DIR/podman/podman.sock
        ;;
    *)
        echo "unknown stack '$1' (known: ${PODKEEPER_STACKS[*]})" >&2
        return 1
        ;;
    esac
}

# as_stack_user CMD...: run CMD as the stack's user (see stack_vars) with that
# user's environment, from /; as is for root.
as_stack_user() {
    if [[ -z ${STACK_USER:-} ]]; then
        "$@"
        return
    fi
    (cd / && exec setpriv --reuid="$STACK_USER" --regid="$STACK_USER" --init-groups --reset-env \
        env XDG_RUNTIME_DIR="$STACK_RUNTIME_DIR" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=$STACK_RUNTIME_DIR/bus" LANG=C.UTF-8 "$@")
}

# detach LOG CMD...: run CMD in the background as a service: its own session,
# from / (so it keeps no caller's directory busy), stdin from /dev/null,
# output appended to LOG, and without the caller's other open files (a
# service started under "flock /tmp/podkeeper-e2e.lock" would otherwise hold
# that lock for as long as it runs). Sets DETACHED_PID.
detach() {
    local log=$1
    shift
    (
        cd /
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            ((fd > 2)) && eval "exec $fd>&-"
        done
        exec setsid nohup "$@" </dev/null >>"$log" 2>&1
    ) &
    DETACHED_PID=$!
}
