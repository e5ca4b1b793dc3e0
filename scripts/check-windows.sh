#!/usr/bin/env bash
# `make check-windows`: type-checks and lints the Windows-only code (the agent's named pipe, the Credential
# Manager keyring store) from Linux: `cargo clippy --target x86_64-pc-windows-gnu` over the engine and the
# server. Nothing is linked or run. Needs the rustup target (added here) and the MinGW C compiler for the C
# parts of crypto crates (apt-get install gcc-mingw-w64-x86-64). The emulator's OpenSSL bindings only need
# headers to be checked: the host's libssl-dev headers are shown to the MinGW preprocessor in one directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    echo "check-windows.sh: error: $*" >&2
    exit 1
}

command -v x86_64-w64-mingw32-gcc >/dev/null || die "no MinGW compiler: apt-get install gcc-mingw-w64-x86-64"
[[ -f /usr/include/openssl/opensslv.h ]] || die "no OpenSSL headers: apt-get install libssl-dev"
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu

headers=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-openssl-headers.XXXXXX")
trap 'rm -rf "$headers"' EXIT
mkdir -p "$headers/openssl"
ln -s /usr/include/openssl/* "$headers/openssl/"
libdir=""
for arch_dir in /usr/include/*-linux-gnu; do
    [[ -d "$arch_dir/openssl" ]] && ln -sf "$arch_dir"/openssl/* "$headers/openssl/"
    libdir="/usr/lib/$(basename "$arch_dir")"
done
# The build script only looks for the library files (nothing is linked by a check).
OPENSSL_DIR=/usr OPENSSL_INCLUDE_DIR="$headers" OPENSSL_LIB_DIR="${libdir:-/usr/lib}" \
    cargo clippy --locked --target x86_64-pc-windows-gnu -p kvproxy-core -p kvproxy-server -- -D warnings
echo "check-windows.sh: the Windows code of kvproxy-core and kvproxy-server type-checks and is lint-clean"
