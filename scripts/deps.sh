#!/usr/bin/env bash
# Installs what KeyVault Proxy needs to build (and, with --test, to run every test), and only what is
# missing. The one place that lists the system packages: `make run` calls `scripts/deps.sh`,
# `make test` calls `scripts/deps.sh --test`, `make bench` calls `scripts/deps.sh --bench`, and the Windows
# targets (`make windows`, `make package-windows`, `make test-windows`) call `scripts/deps.sh --windows`.
#
# Debian/Ubuntu packages are checked with `dpkg -s` and installed with apt-get (through sudo when not
# root); `apt-get update` runs only when something must be installed. The Rust toolchain itself is
# expected (rustup); this script only checks its version and adds the rustfmt / clippy components.
set -euo pipefail

# The window (Tauri 2) on Linux: WebKitGTK 4.1, GTK 3, SVG icons; OpenSSL. The tray app needs no GUI library:
# its icon is spoken over D-Bus.
BUILD_PACKAGES=(
    build-essential
    pkg-config
    libwebkit2gtk-4.1-dev
    libgtk-3-dev
    librsvg2-dev
    libssl-dev
)
# Tests: a private D-Bus session with gnome-keyring (real Secret Service) and secret-tool to check it,
# Xvfb for the app's end-to-end tests, xclip to read its clipboard, gdbus (libglib2.0-bin) to talk to the
# bus from a shell, WebKitWebDriver for the window tests, ImageMagick for screenshots.
TEST_PACKAGES=(
    dbus
    dbus-x11
    gnome-keyring
    libsecret-tools
    xvfb
    xclip
    libglib2.0-bin
    webkit2gtk-driver
    imagemagick
    # schemathesis (scripts/schemathesis.sh) runs in a venv of its own under .tools/
    python3
    python3-venv
    # desktop-file-validate, for the launcher entry make install writes
    desktop-file-utils
)
# Benchmarks: wrk drives the API in the load bench, and `make bench` runs under scripts/with-keyring.sh (a
# private D-Bus session with gnome-keyring, checked with secret-tool) so the warm path reads a real keyring.
BENCH_PACKAGES=(
    wrk
    dbus
    gnome-keyring
    libsecret-tools
)
# Windows from Linux: the MinGW-w64 cross compilers (C for the crypto crates and OpenSSL, which is built from
# source into the programs; windres for the icon and manifest resources), Wine to run the Windows programs in
# tests (wine64: the programs are 64-bit), NSIS for the setup program, and perl for OpenSSL's build.
WINDOWS_PACKAGES=(
    gcc-mingw-w64-x86-64
    g++-mingw-w64-x86-64
    binutils-mingw-w64-x86-64
    wine
    wine64
    nsis
    perl
    make
)
WINDOWS_TARGET=x86_64-pc-windows-gnu
# tauri 2.12 / tauri-build 2.7.4 need this (see Cargo.toml).
MIN_RUST=1.90

say() { echo "deps: $*"; }
die() {
    echo "deps: error: $*" >&2
    exit 1
}

with_tests=0
with_bench=0
with_windows=0
case "${1:-}" in
"") ;;
--test) with_tests=1 ;;
--bench) with_bench=1 ;;
--windows) with_windows=1 ;;
*)
    echo "usage: $0 [--test | --bench | --windows]" >&2
    exit 2
    ;;
esac

# --- system packages -------------------------------------------------------------------------------------
packages=("${BUILD_PACKAGES[@]}")
((with_tests)) && packages+=("${TEST_PACKAGES[@]}")
((with_bench)) && packages+=("${BENCH_PACKAGES[@]}")
((with_windows)) && packages+=("${WINDOWS_PACKAGES[@]}")

is_installed() {
    local status
    status=$(dpkg -s "$1" 2>/dev/null) && [[ "$status" == *"Status: install ok installed"* ]]
}

if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
    say "not a Debian/Ubuntu system (no dpkg/apt-get): skipping system packages; make sure these are installed:"
    say "  ${packages[*]}"
else
    missing=()
    for p in "${packages[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        say "system packages: all ${#packages[@]} present"
    else
        sudo=()
        if ((EUID != 0)); then
            command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root, and no sudo to install them"
            sudo=(sudo)
        fi
        say "installing missing packages: ${missing[*]}"
        "${sudo[@]}" apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    fi
fi

# --- Rust toolchain ------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
    die "no Rust toolchain: install it with rustup (Rust >= $MIN_RUST), then run make again"
fi

rust_version=$(rustc --version | awk '{print $2}') # e.g. 1.95.0
if [[ "$(printf '%s\n' "$MIN_RUST" "$rust_version" | sort -V | head -n1)" != "$MIN_RUST" ]]; then
    die "Rust $rust_version is too old; Tauri needs >= $MIN_RUST (rustup update stable)"
fi
say "Rust $rust_version"

if ((with_tests)); then
    for component in rustfmt clippy; do
        subcommand=${component/rustfmt/fmt}
        cargo "$subcommand" --version >/dev/null 2>&1 && continue
        command -v rustup >/dev/null ||
            die "'cargo $subcommand' is missing and there is no rustup to add it: install the $component component"
        say "adding the rustup component $component"
        rustup component add "$component" ||
            die "could not add the $component component (rustup could not download it?); run 'rustup component add $component' where the Rust distribution server is reachable"
    done
    say "rustfmt and clippy present"
fi

if ((with_windows)); then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$WINDOWS_TARGET"; then
        command -v rustup >/dev/null || die "the Rust target $WINDOWS_TARGET is missing and there is no rustup to add it"
        say "adding the Rust target $WINDOWS_TARGET"
        rustup target add "$WINDOWS_TARGET" ||
            die "could not add the Rust target $WINDOWS_TARGET (rustup could not download it?)"
    fi
    say "Rust target $WINDOWS_TARGET present"
fi

# --- Node.js for newman (the Postman collection run) ---------------------------------------------------
# Checked by command, not by package: Node.js often comes from NodeSource, whose package bundles npm.
if ((with_tests)); then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        if command -v apt-get >/dev/null; then
            sudo=()
            ((EUID != 0)) && sudo=(sudo)
            say "installing Node.js and npm (for newman)"
            "${sudo[@]}" apt-get update
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
        else
            die "newman needs Node.js and npm: install them, then run make again"
        fi
    fi
    say "Node.js $(node --version) (newman itself is installed into .tools/ by scripts/newman.sh)"
fi

