#!/usr/bin/env bash
# `make check-windows`: lints the Windows build of the whole workspace (the agent's named pipe, the
# Credential Manager store, `kvproxy user-path`, the desktop app, the Windows tests) from Linux with
# `cargo clippy --target x86_64-pc-windows-gnu`. `make test-windows` builds and runs it; this checks its code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v x86_64-w64-mingw32-gcc >/dev/null || {
    echo "check-windows.sh: error: no MinGW-w64: run scripts/deps.sh --windows" >&2
    exit 1
}
cargo clippy --locked --target x86_64-pc-windows-gnu --workspace --all-targets -- -D warnings
echo "check-windows.sh: the Windows build of the workspace is lint-clean"
