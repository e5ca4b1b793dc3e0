#!/usr/bin/env bash
# `make package`: a .deb of KeyVault Proxy (the app, the `kvproxy` CLI, the launcher entry, the icons) in
# target/debian/, built with cargo-deb (installed into .tools/cargo-deb/ on first use) from the `desktop`
# profile, then checked: its control data names WebKitGTK 4.1 and GTK 3, it holds every file it should, and
# the `kvproxy` in it runs. Not part of `make test`: an optimised build takes minutes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
CARGO_DEB_VERSION=3.8.0
CARGO_DEB="$REPO/.tools/cargo-deb/bin/cargo-deb"
OUT="${CARGO_TARGET_DIR:-$REPO/target}/debian"

say() { echo "package.sh: $*"; }
die() {
    echo "package.sh: error: $*" >&2
    exit 1
}

command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (Debian/Ubuntu only): apt-get install dpkg"
if [[ ! -x "$CARGO_DEB" ]] || [[ "$("$CARGO_DEB" --version 2>/dev/null)" != *"$CARGO_DEB_VERSION"* ]]; then
    say "installing cargo-deb $CARGO_DEB_VERSION into .tools/cargo-deb/ (a few minutes, once)"
    cargo install --locked --root "$REPO/.tools/cargo-deb" --version "$CARGO_DEB_VERSION" cargo-deb
fi

say "building the app, its window and the CLI (cargo build --profile desktop)"
cargo build --locked --profile desktop -p kvproxy-desktop -p kvproxy-window -p kvproxy-cli
rm -rf "$OUT"
mkdir -p "$OUT"
"$CARGO_DEB" --locked --no-build --profile desktop -p kvproxy-desktop --output "$OUT/"
deb=$(find "$OUT" -maxdepth 1 -name 'kvproxy_*.deb' | head -n1)
[[ -n "$deb" ]] || die "cargo-deb wrote no kvproxy_*.deb into $OUT"

# --- the package checks itself ------------------------------------------------------------------------------
info=$(dpkg-deb -I "$deb")
depends=$(sed -n 's/^ Depends: //p' <<<"$info")
for lib in libwebkit2gtk-4.1-0 libgtk-3-0; do
    [[ "$depends" == *"$lib"* ]] || die "Depends does not name $lib: '$depends'"
done
files=$(dpkg-deb -c "$deb")
for path in ./usr/bin/kvproxy-desktop ./usr/bin/kvproxy-window ./usr/bin/kvproxy \
    ./usr/share/applications/dev.kvproxy.KeyVaultProxy.desktop \
    ./usr/share/icons/hicolor/32x32/apps/dev.kvproxy.KeyVaultProxy.png \
    ./usr/share/icons/hicolor/128x128/apps/dev.kvproxy.KeyVaultProxy.png \
    ./usr/share/icons/hicolor/256x256/apps/dev.kvproxy.KeyVaultProxy.png \
    ./usr/share/icons/hicolor/512x512/apps/dev.kvproxy.KeyVaultProxy.png; do
    grep -q " $path\$" <<<"$files" || die "the package lacks $path"
done
extracted=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-deb.XXXXXX")
trap 'rm -rf "$extracted"' EXIT
dpkg-deb -x "$deb" "$extracted"
version=$("$extracted/usr/bin/kvproxy" --version) || die "the packaged kvproxy does not run"
# The tray app runs all day: it links no web view and no GUI toolkit (the window program does).
needed=$(readelf -d "$extracted/usr/bin/kvproxy-desktop" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
[[ -n "$needed" ]] || die "could not read what kvproxy-desktop links"
[[ "$needed" != *webkit* && "$needed" != *javascriptcore* && "$needed" != *gtk* ]] ||
    die "the tray app links a GUI library: $needed"
readelf -d "$extracted/usr/bin/kvproxy-window" | grep -q 'libwebkit2gtk' ||
    die "kvproxy-window does not link WebKitGTK: the check above would prove nothing"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$extracted/usr/share/applications/dev.kvproxy.KeyVaultProxy.desktop" ||
        die "the launcher entry is not valid"
fi

say "built $deb ($(du -h "$deb" | cut -f1))"
sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Recommends\|Installed-Size\): /  \1: /p' <<<"$info"
say "the packaged CLI runs: $version; the tray app links only: $needed"
say "install it with: sudo apt install $deb"
