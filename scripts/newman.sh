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

if [[ -n "${KVPROXY_BIN:-}" ]]; then
    KVPROXY=$KVPROXY_BIN
else
    say "building kvproxy (cargo build -p kvproxy-cli)"
    cargo build --locked -p kvproxy-cli --bin kvproxy
    KVPROXY="${CARGO_TARGET_DIR:-$REPO/target}/debug/kvproxy"
fi
[[ -x "$KVPROXY" ]] || die "no kvproxy binary at $KVPROXY"

# --- a private world: config dir, no keyring, random API key ----------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-newman.XXXXXX")
export KVPROXY_CONFIG_DIR="$WORK/config"
export KVPROXY_KEYRING=off
KVPROXY_API_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
export KVPROXY_API_KEY
# Everything here is on this machine: keep any configured HTTP(S) proxy out of it (kvproxy and newman both
# honour NO_PROXY).
export NO_PROXY="localhost,127.0.0.1,::1,.localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
mkdir -p "$KVPROXY_CONFIG_DIR"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_ready NAME PID STDOUT STDERR: until STDOUT has a line starting with "ready.", the process exits, or
# READY_TIMEOUT seconds pass (polled every 0.1 s; the deadline is what bounds the wait).
wait_ready() {
    local name=$1 pid=$2 out=$3 err=$4
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q '^ready\.' "$out" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $name stdout:" >&2
            cat "$out" >&2
            echo "--- $name stderr:" >&2
            cat "$err" >&2
            die "$name exited before it was ready"
        fi
        if ((SECONDS >= deadline)); then
            echo "--- $name stdout:" >&2
            cat "$out" >&2
            echo "--- $name stderr:" >&2
            cat "$err" >&2
            die "$name was not ready after ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

# --- the demo tenant --------------------------------------------------------------------------------------
"$KVPROXY" demo --port 0 >"$WORK/demo.out" 2>"$WORK/demo.err" &
PIDS+=($!)
wait_ready "kvproxy demo" "${PIDS[-1]}" "$WORK/demo.out" "$WORK/demo.err"
# First line: "KeyVault Proxy DEMO tenant is running (emulated Entra ID + Key Vault on 127.0.0.1:PORT)."
DEMO_PORT=$(sed -n '1s/.*127\.0\.0\.1:\([0-9][0-9]*\)).*/\1/p' "$WORK/demo.out")
[[ -n "$DEMO_PORT" ]] || die "could not read the demo port from: $(head -n1 "$WORK/demo.out")"
DEMO_CA="$KVPROXY_CONFIG_DIR/demo-ca.pem"
[[ -s "$DEMO_CA" ]] || die "kvproxy demo wrote no CA certificate at $DEMO_CA"

# newman (postman-runtime) resolves *.localhost itself, as RFC 6761 says, without the system resolver: it
# tries [::1]:PORT first and falls back to 127.0.0.1:PORT, where the emulator listens. So nothing may listen
# on [::1]:DEMO_PORT, or the demo API requests would go there.
if (exec 3<>"/dev/tcp/::1/$DEMO_PORT") 2>/dev/null; then
    die "something listens on [::1]:$DEMO_PORT, where newman would send https://api.localhost:$DEMO_PORT; run again"
fi

# --- the token API ----------------------------------------------------------------------------------------
# --port 0: the OS picks a free port at bind time (no race between choosing a port and binding it).
"$KVPROXY" serve --port 0 --bind 127.0.0.1 >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
wait_ready "kvproxy serve" "${PIDS[-1]}" "$WORK/serve.out" "$WORK/serve.err"
SERVE_PORT=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$WORK/serve.out" | head -n1)
[[ -n "$SERVE_PORT" ]] || die "could not read the API port from: $(cat "$WORK/serve.out")"

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

if ((status != 0)); then
    say "FAILED (newman exit code $status)"
    if [[ -s "$WORK/serve.err" ]]; then
        echo "--- kvproxy serve stderr:" >&2
        cat "$WORK/serve.err" >&2
    fi
    exit "$status"
fi
say "all requests and tests passed"
