#!/usr/bin/env bash
# Runs the Postman collection in examples/postman/ with newman against a throwaway `kvproxy demo` (emulated
# Entra ID + Key Vault) and `kvproxy serve`, both on free ports, with a temporary config directory, no OS
# keyring and a random API key. Nothing of yours is read or written. Exits non-zero when a request or a test
# fails. Meant for `make test`; runs on its own too: `scripts/newman.sh`.
#
# Needs node and npm (newman 6 is installed into .tools/newman/ on first use).
# Environment: KVPROXY_BIN (a prebuilt kvproxy; default: cargo build, then target/debug/kvproxy),
#              READY_TIMEOUT (seconds to wait for each process to be ready; default 60).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

COLLECTION="$REPO/examples/postman/KeyVaultProxy.postman_collection.json"
ENVIRONMENT="$REPO/examples/postman/local.postman_environment.json"
NEWMAN="$REPO/.tools/newman/node_modules/.bin/newman"
READY_TIMEOUT=${READY_TIMEOUT:-60}

say() { echo "newman.sh: $*"; }
die() {
    echo "newman.sh: error: $*" >&2
    exit 1
}

# --- tools ------------------------------------------------------------------------------------------------
command -v node >/dev/null || die "node is not installed (newman needs Node.js >= 16): apt-get install nodejs npm"
if [[ ! -x "$NEWMAN" ]]; then
    command -v npm >/dev/null || die "npm is not installed (needed once, to install newman): apt-get install npm"
    say "installing newman 6 into .tools/newman/"
    npm install --no-audit --no-fund --prefix "$REPO/.tools/newman" newman@6
    [[ -x "$NEWMAN" ]] || die "npm did not install $NEWMAN"
fi

# --- a private world: config dir, no keyring, random API key, demo tenant, token API -----------------------
# shellcheck source=lib/world.sh
source "$REPO/scripts/lib/world.sh"
kvproxy_binary
world_start newman
start_demo

# newman (postman-runtime) resolves *.localhost itself, as RFC 6761 says, without the system resolver: it
# tries [::1]:PORT first and falls back to 127.0.0.1:PORT, where the emulator listens. So nothing may listen
# on [::1]:DEMO_PORT, or the demo API requests would go there.
if (exec 3<>"/dev/tcp/::1/$DEMO_PORT") 2>/dev/null; then
    die "something listens on [::1]:$DEMO_PORT, where newman would send https://api.localhost:$DEMO_PORT; run again"
fi

# --- the token API ----------------------------------------------------------------------------------------
start_serve

say "demo tenant on 127.0.0.1:$DEMO_PORT, token API on 127.0.0.1:$SERVE_PORT"

# --- the collection ---------------------------------------------------------------------------------------
# The cli reporter prints every request and test, then a summary table and each failure in detail.
# Timeouts bound the run: 30 s per request, 5 min in all.
# Colours only on a terminal, so CI logs stay plain text.
color=off
[[ -t 1 ]] && color=on
status=0
"$NEWMAN" run "$COLLECTION" \
    --environment "$ENVIRONMENT" \
    --env-var "baseUrl=http://127.0.0.1:$SERVE_PORT" \
    --env-var "apiKey=$KVPROXY_API_KEY" \
    --env-var "demoApi=https://api.localhost:$DEMO_PORT" \
    --ssl-extra-ca-certs "$DEMO_CA" \
    --reporters cli \
    --color "$color" \
    --timeout-request 30000 \
    --timeout 300000 || status=$?

finish newman "$status" "all requests and tests passed"
