# shellcheck shell=bash
# Source this file (". scripts/env.sh") for the environment of podkeeper's
# end-to-end tests on a host prepared by scripts/setup-host.

# systemd user manager of root (started by setup-host; no systemd as PID 1):
# "systemctl --user" finds it through XDG_RUNTIME_DIR
# ($XDG_RUNTIME_DIR/systemd/private); the D-Bus session bus (socket-activated
# dbus.socket of that manager) is for tools that use the session bus.
export XDG_RUNTIME_DIR=/run/user/0
export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus

# Rootful podman API service (scripts/podman-service start|stop|restart).
# NOTE: with CONTAINER_HOST set, the podman CLI itself acts as a remote client
# of this socket: a "podman ..." run by a test then fails while the service is
# stopped. Use "env -u CONTAINER_HOST podman ..." for the local engine.
export CONTAINER_HOST=unix:///run/podman/podman.sock
export PODKEEPER_PODMAN_SOCKET=/run/podman/podman.sock

# Test image built by setup-host (busybox applets in /bin, CMD /bin/sh).
export PODKEEPER_TEST_IMAGE=localhost/bb:1

# Script the tests can run to stop/start the API service.
PODKEEPER_PODMAN_SERVICE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/podman-service
export PODKEEPER_PODMAN_SERVICE

# rustup's cargo, when the shell that runs us did not put it on PATH.
case ":$PATH:" in
*":$HOME/.cargo/bin:"*) ;;
*) [ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH" ;;
esac
