#!/usr/bin/env bash
# Installs tauri-driver (the WebDriver bridge for Tauri apps) into .tools/tauri-driver/ unless it is there,
# then prints its path. The window's end-to-end tests drive the app through it and Debian's WebKitWebDriver
# (package webkit2gtk-driver, installed by scripts/deps.sh --test). Called by `make test-deps`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=2.1.0
ROOT="$REPO/.tools/tauri-driver"
BIN="$ROOT/bin/tauri-driver"

if [[ ! -x "$BIN" ]] || ! "$BIN" --help 2>&1 | grep -q -- "--native-port"; then
    echo "tauri-driver.sh: installing tauri-driver $VERSION into .tools/tauri-driver/" >&2
    cargo install --quiet --locked --version "$VERSION" --root "$ROOT" tauri-driver
fi
[[ -x "$BIN" ]] || { echo "tauri-driver.sh: error: cargo did not install $BIN" >&2; exit 1; }
echo "$BIN"
