#!/usr/bin/env bash
# `make install` / `make uninstall`: the KeyVault Proxy app and the `kvproxy` CLI for the current user, no
# root needed. Installs
#   PREFIX/bin/kvproxy-desktop, PREFIX/bin/kvproxy
#   PREFIX/share/applications/dev.kvproxy.KeyVaultProxy.desktop   (the app in the desktop's launcher)
#   PREFIX/share/icons/hicolor/{32x32,128x128,256x256,512x512}/apps/dev.kvproxy.KeyVaultProxy.png
# and lists every file it wrote in PREFIX/share/kvproxy/installed-files, which `uninstall` removes, exactly
# those and nothing else (your profiles, settings and keyring entries stay).
#
# Usage: scripts/install.sh install [--from DIR]    (DIR: prebuilt binaries; default: build the `desktop` profile)
#        scripts/install.sh uninstall
# Environment: PREFIX (default ~/.local).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-$HOME/.local}
APP_ID=dev.kvproxy.KeyVaultProxy
MANIFEST="$PREFIX/share/kvproxy/installed-files"

say() { echo "install.sh: $*"; }
die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

# put SOURCE DEST MODE: copies and records DEST in the manifest.
put() {
    install -D -m "$3" "$1" "$2"
    echo "$2" >>"$MANIFEST.new"
}

do_uninstall() {
    if [[ ! -f "$MANIFEST" ]]; then
        say "nothing to remove: no $MANIFEST (KeyVault Proxy was not installed into $PREFIX by make install)"
        return 0
    fi
    local file removed=0
    while IFS= read -r file; do
        # Only what the manifest names, and only inside PREFIX: a tampered list cannot reach elsewhere.
        [[ -n "$file" && "$file" == "$PREFIX"/* ]] || continue
        if [[ -e "$file" || -L "$file" ]]; then
            rm -f -- "$file"
            removed=$((removed + 1))
        fi
    done <"$MANIFEST"
    rm -f -- "$MANIFEST"
    rmdir --ignore-fail-on-non-empty "$PREFIX/share/kvproxy" 2>/dev/null || true
    refresh_desktop_caches
    say "removed $removed files from $PREFIX (profiles, settings and keyring entries are kept)"
}

# Launchers and icon themes pick new entries up faster with their caches refreshed; both tools are optional.
refresh_desktop_caches() {
    if command -v update-desktop-database >/dev/null; then
        update-desktop-database -q "$PREFIX/share/applications" 2>/dev/null || true
    fi
    if command -v gtk-update-icon-cache >/dev/null && [[ -f "$PREFIX/share/icons/hicolor/index.theme" ]]; then
        gtk-update-icon-cache -q -t "$PREFIX/share/icons/hicolor" 2>/dev/null || true
    fi
}

do_install() {
    local from=""
    if [[ "${1:-}" == "--from" ]]; then
        from=${2:?--from needs a directory}
    fi
    if [[ -z "$from" ]]; then
        say "building the app, its window and the CLI (cargo build --profile desktop: optimised for size, a few minutes)"
        cargo build --locked --profile desktop -p kvproxy-desktop -p kvproxy-window -p kvproxy-cli
        from="${CARGO_TARGET_DIR:-$REPO/target}/desktop"
    fi
    for program in kvproxy-desktop kvproxy-window kvproxy; do
        [[ -x "$from/$program" ]] || die "no $program in $from"
    done

    # A previous install's files go first, so a file that is no longer shipped does not linger.
    [[ -f "$MANIFEST" ]] && do_uninstall >/dev/null
    mkdir -p "$(dirname "$MANIFEST")"
    : >"$MANIFEST.new"
    local bin="$PREFIX/bin" share="$PREFIX/share"
    put "$from/kvproxy-desktop" "$bin/kvproxy-desktop" 755
    put "$from/kvproxy-window" "$bin/kvproxy-window" 755
    put "$from/kvproxy" "$bin/kvproxy" 755
    # The launcher starts the binary by its full path: a desktop session's PATH may not have PREFIX/bin yet.
    sed "s|^Exec=/usr/bin/|Exec=$bin/|" "$REPO/packaging/$APP_ID.desktop" >"$MANIFEST.desktop"
    put "$MANIFEST.desktop" "$share/applications/$APP_ID.desktop" 644
    rm -f "$MANIFEST.desktop"
    put "$REPO/icons/32x32.png" "$share/icons/hicolor/32x32/apps/$APP_ID.png" 644
    put "$REPO/icons/128x128.png" "$share/icons/hicolor/128x128/apps/$APP_ID.png" 644
    put "$REPO/icons/128x128@2x.png" "$share/icons/hicolor/256x256/apps/$APP_ID.png" 644
    put "$REPO/icons/icon.png" "$share/icons/hicolor/512x512/apps/$APP_ID.png" 644
    mv "$MANIFEST.new" "$MANIFEST"
    refresh_desktop_caches

    say "installed into $PREFIX ($(wc -l <"$MANIFEST") files, listed in $MANIFEST)"
    say "start it from your desktop's launcher (KeyVault Proxy), or: $bin/kvproxy-desktop"
    case ":$PATH:" in
    *":$bin:"*) say "the CLI: kvproxy --help" ;;
    *)
        say "$bin is not on your PATH, so type the CLI as $bin/kvproxy, or add it (bash):"
        say "  echo 'export PATH=\"$bin:\$PATH\"' >> ~/.bashrc && . ~/.bashrc"
        ;;
    esac
    say "remove it again with: make uninstall"
}

case "${1:-}" in
install)
    shift
    do_install "$@"
    ;;
uninstall) do_uninstall ;;
*) die "usage: scripts/install.sh install [--from DIR] | uninstall   (PREFIX=$PREFIX)" ;;
esac
