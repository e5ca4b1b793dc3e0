#!/usr/bin/env bash
# KeyVault Proxy for Windows, from this Linux machine: cross-built with MinGW-w64, packaged with NSIS, and
# tested as Windows programs under Wine.
#
#   scripts/windows.sh build          kvproxy.exe, kvproxy-desktop.exe + kvproxy-window.exe, optimised (make windows)
#   scripts/windows.sh package        ... and the per-user setup program (make package-windows)
#   scripts/windows.sh test           every Windows test (make test-windows):
#                                     1. the engine's, the server's and the CLI's tests as Windows programs
#                                        under Wine, in a fresh Wine prefix (Credential Manager, named pipes,
#                                        %APPDATA%), against the emulator over real HTTPS;
#                                     2. the desktop app links (debug build);
#                                     3. a setup program made from those same builds is installed silently
#                                        into another fresh prefix, used, and uninstalled (see test_installer).
#   scripts/windows.sh test-installer SETUP.exe   step 3 alone, for any setup program
#
# Needs what `scripts/deps.sh --windows` installs (MinGW-w64, Wine, NSIS, the rustup target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET=x86_64-pc-windows-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-target}
# The Windows test builds carry no debug info: MinGW's linker spends minutes on DWARF for programs of several
# hundred megabytes, and a panic still names its file and line. (Linux builds keep theirs.)
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0}
CARGO=${CARGO:-cargo}
PUBLISHER="KeyVault Proxy developers"
# The programs the setup installs: the tray app, its window (started on demand) and the CLI.
PROGRAMS="kvproxy.exe kvproxy-desktop.exe kvproxy-window.exe"

say() { echo "windows: $*"; }
die() {
    echo "windows: error: $*" >&2
    exit 1
}

version() {
    # The workspace version ([workspace.package] is the first `version =` in the root manifest).
    sed -n 's/^version = "\([0-9][0-9.]*\)"$/\1/p' Cargo.toml | head -n1
}

# --- Wine ------------------------------------------------------------------------------------------------
# A throwaway prefix per use: nothing from an earlier run (profiles, credentials, PATH) can make a test pass.
# The caller removes $1 (the prefix's parent) when done; wineserver is stopped by stop_wine.
new_prefix() {
    local parent=$1
    export WINEPREFIX="$parent/prefix" WINEARCH=win64 WINEDEBUG=-all
    # No Mono or Gecko: nothing here is .NET or HTML, and their installers would ask to download.
    export WINEDLLOVERRIDES="mscoree,mshtml="
    # Wine must not open windows on a desktop it finds; these programs need none.
    unset DISPLAY WAYLAND_DISPLAY
    wineboot --init >"$parent/wineboot.log" 2>&1 || {
        cat "$parent/wineboot.log" >&2
        die "wineboot failed"
    }
    wineserver --wait
    # Wine 8 (Debian 12) lacks bcryptprimitives.dll, whose ProcessPrng every Rust program since 1.78 imports;
    # Windows 10 and 11 have it. The prefix gets a one-function stand-in (never the installer).
    x86_64-w64-mingw32-gcc -O2 -shared -s -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
        scripts/windows/bcryptprimitives.c -lbcrypt
}

stop_wine() {
    [[ -n "${WINEPREFIX:-}" && -d "$WINEPREFIX" ]] && wineserver --kill 2>/dev/null || true
}

# A Windows path as a Unix one.
unix_path() { winepath --unix "$1" 2>/dev/null; }
# A Windows environment variable as the prefix's programs see it.
win_env() { wine cmd /c "echo %$1%" 2>/dev/null | tr -d '\r'; }

# --- build -----------------------------------------------------------------------------------------------
build() {
    local profile=$1
    say "building kvproxy.exe, kvproxy-desktop.exe and kvproxy-window.exe ($profile) for $TARGET"
    "$CARGO" build --locked --target "$TARGET" --profile "$profile" -p kvproxy-cli -p kvproxy-desktop -p kvproxy-window
    local dir
    dir=$(profile_dir "$profile")
    for exe in $PROGRAMS; do
        [[ -f "$dir/$exe" ]] || die "$dir/$exe was not built"
    done
    # The tray app carries no web view: WebView2's code (and so its name) is only in the window program.
    ! grep -qa 'WebView2' "$dir/kvproxy-desktop.exe" || die "kvproxy-desktop.exe contains WebView2 code"
    grep -qa 'WebView2' "$dir/kvproxy-window.exe" ||
        die "kvproxy-window.exe has no WebView2 code: the check above would prove nothing"
    say "built: $PROGRAMS in $dir; only the window program has WebView2 in it"
}

profile_dir() {
    case $1 in
    dev) echo "$TARGET_DIR/$TARGET/debug" ;;
    *) echo "$TARGET_DIR/$TARGET/$1" ;;
    esac
}

# --- package ---------------------------------------------------------------------------------------------
# Writes the setup program for the binaries of PROFILE to OUT (stripped copies; the build keeps its symbols).
package() {
    local profile=$1 compressor=$2
    local dir version out stage
    dir=$(profile_dir "$profile")
    version=$(version)
    [[ -n "$version" ]] || die "no version in Cargo.toml"
    out="$dir/bundle/nsis/KeyVault-Proxy_${version}_x64-setup.exe"
    stage=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-nsis.XXXXXX")
    for exe in $PROGRAMS; do
        x86_64-w64-mingw32-strip -o "$stage/$exe" "$dir/$exe"
    done
    mkdir -p "$(dirname "$out")"
    say "making the setup program ($compressor): $out"
    makensis -V2 -INPUTCHARSET UTF8 \
        "-DVERSION=$version" "-DSRCDIR=$stage" "-DOUTFILE=$(realpath -m "$out")" \
        "-DICON=$PWD/icons/icon.ico" "-DLICENSE=$PWD/LICENSE" "-DPUBLISHER=$PUBLISHER" \
        "-DCOMPRESSOR=$compressor" \
        packaging/windows/installer.nsi
    rm -rf "$stage"
    [[ -f "$out" ]] || die "makensis wrote no $out"
    say "setup program: $out ($(du -h "$out" | cut -f1))"
    PACKAGED="$out"
}

# --- test: the installer ---------------------------------------------------------------------------------
fail() {
    echo "windows: test FAILED: $*" >&2
    exit 1
}

test_installer() {
    local setup work version
    setup=$(realpath "$1")
    version=$(version)
    work=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-wine-setup.XXXXXX")
    # shellcheck disable=SC2064 # the paths are fixed now
    trap "stop_wine; rm -rf '$work'" EXIT
    say "installer test: fresh Wine prefix in $work"
    new_prefix "$work"

    local path_before
    path_before=$(wine reg query 'HKCU\Environment' /v Path 2>/dev/null | tr -d '\r' | grep -i ' Path ' || true)

    say "installing silently: $(basename "$setup") /S"
    wine "$setup" /S
    wineserver --wait

    local localappdata appdata install_dir start_menu
    localappdata=$(unix_path "$(win_env LOCALAPPDATA)")
    appdata=$(unix_path "$(win_env APPDATA)")
    install_dir="$localappdata/Programs/KeyVault Proxy"
    start_menu="$appdata/Microsoft/Windows/Start Menu/Programs/KeyVault Proxy.lnk"

    local files
    files=$(cd "$install_dir" 2>/dev/null && LC_ALL=C ls | LC_ALL=C sort | tr '\n' ' ') ||
        fail "nothing installed in $install_dir"
    [[ "$files" == "LICENSE.txt kvproxy-desktop.exe kvproxy-window.exe kvproxy.exe uninstall.exe " ]] ||
        fail "installed files are [$files]"
    [[ -f "$start_menu" ]] || fail "no Start-menu entry at $start_menu"
    local key='HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\KeyVaultProxy' entry
    entry=$(wine reg query "$key" 2>/dev/null | tr -d '\r') || fail "no uninstall entry $key"
    grep -q "DisplayVersion.*$version" <<<"$entry" || fail "uninstall entry without version $version: $entry"
    grep -q "Publisher.*$PUBLISHER" <<<"$entry" || fail "uninstall entry without publisher: $entry"
    grep -q 'QuietUninstallString.*uninstall.exe" /S' <<<"$entry" || fail "no quiet uninstall: $entry"
    wine reg query 'HKCU\Environment' /v Path 2>/dev/null | tr -d '\r' | grep -qi 'Programs\\KeyVault Proxy' ||
        fail "the install folder is not on the user's PATH"
    say "installed: 5 files, Start-menu entry, uninstall entry (version $version), user PATH"

    # A new Wine session reads the user's environment from the registry, as a new Windows login does.
    wineserver --kill
    local got
    got=$(wine cmd /c "kvproxy --version" 2>&1 | tr -d '\r')
    [[ "$got" == "kvproxy $version" ]] || fail "kvproxy --version from the PATH said: $got"
    say "kvproxy --version, found on the PATH: $got"

    # The demo tenant and a token, as a Windows user would try them first.
    wine cmd /c "kvproxy demo --port 0" >"$work/demo.out" 2>&1 &
    local waited=0
    until grep -q '^ready\.' "$work/demo.out"; do
        ((waited++ < 120)) || fail "kvproxy demo did not get ready: $(cat "$work/demo.out")"
        sleep 0.5
    done
    grep -q 'AppData\\Roaming\\kvproxy\\config\\profiles.toml' "$work/demo.out" ||
        fail "the demo profile is not under %APPDATA%: $(cat "$work/demo.out")"
    local token claims
    token=$(wine cmd /c "kvproxy token demo" 2>"$work/token.err" | tr -d '\r')
    [[ $(tr -cd '.' <<<"$token" | wc -c) -eq 2 ]] || fail "kvproxy token demo printed no JWT: $token $(cat "$work/token.err")"
    claims=$(cut -d. -f2 <<<"$token" | tr '_-' '/+')
    while ((${#claims} % 4)); do claims+="="; done
    claims=$(base64 -d <<<"$claims" 2>/dev/null) || fail "the token's claims are not base64url"
    grep -q '"aud":"api://kvproxy-demo"' <<<"$claims" || fail "unexpected claims: $claims"
    say "kvproxy demo + kvproxy token demo: a token for api://kvproxy-demo; profile in %APPDATA%\\kvproxy"
    wineserver --kill
    wait || true

    say "uninstalling silently"
    wine "$install_dir/uninstall.exe" /S
    # The uninstaller copies itself to %TEMP% and runs from there: wait for every process of the prefix.
    wineserver --wait
    [[ ! -e "$install_dir" ]] || fail "left behind: $(find "$install_dir")"
    [[ ! -e "$start_menu" ]] || fail "the Start-menu entry is still there"
    ! wine reg query "$key" >/dev/null 2>&1 || fail "the uninstall entry is still there"
    local path_after
    path_after=$(wine reg query 'HKCU\Environment' /v Path 2>/dev/null | tr -d '\r' | grep -i ' Path ' || true)
    [[ "$path_after" == "$path_before" ]] || fail "the user PATH was [$path_before], is now [$path_after]"
    local leftovers
    leftovers=$(find "$WINEPREFIX/drive_c" -iname 'kvproxy*.exe' -o -iname 'KeyVault Proxy*.lnk' | head)
    [[ -z "$leftovers" ]] || fail "program files left in the prefix: $leftovers"
    wineserver --wait
    ! grep -qi 'Programs\\\\KeyVault Proxy' "$WINEPREFIX/user.reg" || fail "the registry still names the install folder"
    [[ -f "$appdata/kvproxy/config/profiles.toml" ]] || fail "the user's profiles were removed"
    say "uninstalled: no program file, shortcut, uninstall entry or PATH entry left; profiles kept"
    say "installer test passed"
}

# --- test: the tray app ----------------------------------------------------------------------------------
# The tray process as a Windows program, in an Xvfb display: its message loop and icon come up, the API
# listens, and a second start hands over to it through the desktop pipe (which then starts the window
# program; Wine has no WebView2, so the window itself is not tested here).
test_tray() {
    local dir=$1 work waited=0
    command -v Xvfb >/dev/null || die "no Xvfb: run scripts/deps.sh --test"
    work=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-wine-tray.XXXXXX")
    new_prefix "$work"
    Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.err" &
    local xvfb=$!
    # shellcheck disable=SC2064
    trap "stop_wine; kill $xvfb 2>/dev/null; rm -rf '$work'" EXIT
    until [[ -s "$work/display" ]]; do
        ((waited++ < 100)) || fail "Xvfb did not start: $(cat "$work/xvfb.err")"
        sleep 0.1
    done
    export DISPLAY=":$(head -n1 "$work/display")"
    KVPROXY_PORT=0 KVPROXY_CONFIG_DIR="$work/config" \
        wine "$dir/kvproxy-desktop.exe" --no-window >"$work/tray.out" 2>"$work/tray.err" &
    waited=0
    until grep -q '^ready' "$work/tray.out"; do
        ((waited++ < 120)) || fail "the tray app did not get ready: $(cat "$work/tray.out" "$work/tray.err")"
        sleep 0.5
    done
    # The icon is made once the message loop runs, which may come after the API is up.
    waited=0
    until grep -q '^tray: icon shown' "$work/tray.out"; do
        ((waited++ < 40)) || fail "no tray icon: $(cat "$work/tray.out" "$work/tray.err")"
        sleep 0.5
    done
    grep -q '^api: listening on http://127.0.0.1:' "$work/tray.out" || fail "no API: $(cat "$work/tray.out")"
    wine "$dir/kvproxy-desktop.exe" >"$work/second.out" 2>&1 || fail "a second start failed: $(cat "$work/second.out")"
    grep -q 'the running app shows its window' "$work/second.out" ||
        fail "the second start did not hand over: $(cat "$work/second.out")"
    waited=0
    until grep -q '^window: starting' "$work/tray.out"; do
        ((waited++ < 40)) || fail "the running app did not start its window: $(cat "$work/tray.out" "$work/tray.err")"
        sleep 0.5
    done
    say "tray app under Wine: icon shown, API listening, a second start handed over and the window program started"
    stop_wine
    kill "$xvfb" 2>/dev/null || true
    rm -rf "$work"
    trap - EXIT
    unset DISPLAY
}

# --- test ------------------------------------------------------------------------------------------------
run_tests() {
    local started work
    started=$SECONDS
    work=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-wine-tests.XXXXXX")
    # shellcheck disable=SC2064
    trap "stop_wine; rm -rf '$work'" EXIT
    say "[1/4] engine, server and CLI tests as Windows programs under Wine (fresh prefix in $work)"
    new_prefix "$work"
    # Wine always has a Credential Manager: a keyring test that cannot use it must fail, not skip.
    KVPROXY_REQUIRE_KEYRING=1 "$CARGO" test --locked --target "$TARGET" \
        -p kvproxy-core -p kvproxy-server -p kvproxy-cli --tests --no-fail-fast
    stop_wine
    rm -rf "$work"
    trap - EXIT

    say "[2/4] the tray app and the window program build for Windows"
    build dev

    say "[3/4] the tray app runs under Wine and answers a second start"
    test_tray "$(profile_dir dev)"

    say "[4/4] the setup program, made from the same builds, installed and removed under Wine"
    package dev zlib
    test_installer "$PACKAGED"
    say "make test-windows: all steps passed in $((SECONDS - started)) s"
}

command -v x86_64-w64-mingw32-gcc >/dev/null || die "no MinGW-w64: run scripts/deps.sh --windows"
case "${1:-}" in
build) build desktop ;;
package)
    build desktop
    package desktop lzma
    ;;
test)
    command -v wine >/dev/null || die "no Wine: run scripts/deps.sh --windows"
    run_tests
    ;;
test-installer)
    [[ -f "${2:-}" ]] || die "usage: $0 test-installer SETUP.exe"
    test_installer "$2"
    ;;
*)
    echo "usage: $0 build | package | test | test-installer SETUP.exe" >&2
    exit 2
    ;;
esac
