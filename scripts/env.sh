# shellcheck shell=bash
# Source this file (". scripts/env.sh [STACK]") for the environment of
# podkeeper's end-to-end tests on a host prepared by scripts/setup-host, on
# one of the stacks of scripts/stacks.sh: root (the default), podman5 or
# rootless. tests/common reads these variables; the tests themselves always
# run as root, and on the rootless stack run podkeeper, podman and
# systemctl --user as that stack's user.

_pk_scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/stacks.sh
source "$_pk_scripts/stacks.sh"
stack_vars "${1:-root}" || return 1

export PODKEEPER_STACK=${1:-root}
# The stack's podman CLI (run as PODKEEPER_TEST_USER when set).
export PODKEEPER_PODMAN=$STACK_PODMAN
export PODKEEPER_PODMAN_SOCKET=$STACK_SOCKET
# The user podkeeper, podman and systemctl --user run as (empty: root).
export PODKEEPER_TEST_USER=$STACK_USER
# Whether companions (Quadlet units of a systemd user manager) are tested here.
export PODKEEPER_COMPANIONS=$STACK_COMPANIONS

# systemd user manager of root (started by setup-host; no systemd as PID 1):
# "systemctl --user" finds it through XDG_RUNTIME_DIR
# ($XDG_RUNTIME_DIR/systemd/private); the D-Bus session bus (socket-activated
# dbus.socket of that manager) is for tools that use the session bus. The
# rootless stack's user gets its own from tests/common.
export XDG_RUNTIME_DIR=/run/user/0
export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus

# The stack's podman API service (scripts/podman-service start|stop|restart).
# NOTE: with CONTAINER_HOST set, the podman CLI itself acts as a remote client
# of this socket: a "podman ..." run by a test then fails while the service is
# stopped. Use "env -u CONTAINER_HOST podman ..." for the local engine.
export CONTAINER_HOST=unix://$STACK_SOCKET

# Test image built by setup-host (busybox applets in /bin, CMD /bin/sh).
export PODKEEPER_TEST_IMAGE=localhost/bb:1

# Script the tests can run to stop/start the API service (of PODKEEPER_STACK).
export PODKEEPER_PODMAN_SERVICE=$_pk_scripts/podman-service
unset _pk_scripts

# rustup's cargo, when the shell that runs us did not put it on PATH.
case ":$PATH:" in
*":$HOME/.cargo/bin:"*) ;;
*) [ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH" ;;
esac
