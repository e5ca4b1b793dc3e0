#!/usr/bin/env bash
# What `make run` starts: the KeyVault Proxy desktop app (tray icon, loopback API; the window program beside
# it on demand), built in debug mode into target/ (the same build `make test` uses). Also builds the
# `kvproxy` CLI next to it.
# With no profile saved, the window opens and offers the demo tenant. Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
    echo "run: no display (DISPLAY / WAYLAND_DISPLAY unset): start it from a desktop session, or under xvfb-run" >&2
    exit 1
fi

cargo build --locked -p kvproxy-desktop -p kvproxy-window -p kvproxy-cli
bin="${CARGO_TARGET_DIR:-target}/debug"
echo "run: starting KeyVault Proxy (the CLI is $bin/kvproxy). Quit it from its tray menu."
exec "$bin/kvproxy-desktop" "$@"
