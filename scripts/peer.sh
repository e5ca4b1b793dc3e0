#!/usr/bin/env bash
# The peer: what a developer writes without KeyVault Proxy. scripts/peer/mint_token.py mints an app-only
# token with MSAL and the Azure SDK (Key Vault signs the client assertion); this script keeps its Python
# packages in a venv of its own (.tools/peer/) and runs it. The `peer` bench compares kvproxy against it.
#
#   scripts/peer.sh --install            create or update the venv only
#   scripts/peer.sh demo [--count N]     against a throwaway `kvproxy demo` (private config dir, no keyring)
#   scripts/peer.sh ARGS...              mint_token.py ARGS... (see `scripts/peer.sh --help`)
#
# Needs python3 with venv; the packages come from PyPI on first use.
# Environment: KVPROXY_BIN (for `demo`: a prebuilt kvproxy; default: cargo build, then target/debug/kvproxy),
#              READY_TIMEOUT (for `demo`: seconds to wait for the demo tenant; default 60).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Pinned, so the bench compares against the same code from one run to the next. Bump on purpose.
PACKAGES=(
    msal==1.39.0
    azure-identity==1.27.0
    azure-keyvault-certificates==4.12.0
    azure-keyvault-keys==4.11.3
)
VENV="$REPO/.tools/peer"
PYTHON="$VENV/bin/python"
MINT="$REPO/scripts/peer/mint_token.py"
READY_TIMEOUT=${READY_TIMEOUT:-60}

say() { echo "peer.sh: $*" >&2; }
die() {
    echo "peer.sh: error: $*" >&2
    exit 1
}

# --- tools ------------------------------------------------------------------------------------------------
# True when every pinned package is installed at its pinned version.
venv_current() {
    [[ -x "$PYTHON" ]] || return 1
    "$PYTHON" - "${PACKAGES[@]}" <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(any(m.version(name) != version for name, version in (p.split("==") for p in sys.argv[1:])))
EOF
}

if ! venv_current; then
    command -v python3 >/dev/null || die "python3 is not installed: apt-get install python3 python3-venv"
    say "installing ${PACKAGES[*]} into .tools/peer/"
    python3 -m venv "$VENV" || die "python3 could not make a venv in $VENV: apt-get install python3-venv"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" ||
        die "pip could not install ${PACKAGES[*]} (no network to PyPI?)"
    venv_current || die "the venv in $VENV does not have ${PACKAGES[*]} after installing"
fi

case "${1:-}" in
--install)
    exit 0
    ;;
demo)
    shift
    ;;
*)
    exec "$PYTHON" "$MINT" "$@"
    ;;
esac

# --- demo: a private world with a throwaway demo tenant ----------------------------------------------------
# shellcheck source=lib/world.sh
source "$REPO/scripts/lib/world.sh"
kvproxy_binary
world_start peer
start_demo
say "demo tenant on 127.0.0.1:$DEMO_PORT"
# The emulator's TLS certificate is signed by its own CA, which requests (under MSAL and the Azure SDK) must
# trust; the demo's developer sign-in (a client secret, the emulator's stand-in for `az login`) opens the
# vault. These are the emulator's published test values, not secrets.
status=0
REQUESTS_CA_BUNDLE="$DEMO_CA" "$PYTHON" "$MINT" \
    --authority-host "https://login.localhost:$DEMO_PORT" \
    --tenant dec0de00-0000-4000-8000-00000000de70 \
    --client-id 11111111-2222-3333-4444-555555555555 \
    --vault-url "https://demo.vault.localhost:$DEMO_PORT/" \
    --certificate kvproxy-demo \
    --scope api://kvproxy-demo/.default \
    --kv-client-id de7e1000-0000-4000-8000-00000000de70 \
    --kv-client-secret kvproxy-emulator-developer-secret-not-a-real-secret \
    "$@" || status=$?
exit "$status"
