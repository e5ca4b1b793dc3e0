# shellcheck shell=bash
# A private world for the scripts that test the API from outside (newman.sh, schemathesis.sh): a temporary
# config directory, no OS keyring, a random API key, an agent socket of its own, a throwaway `kvproxy demo`
# and `kvproxy serve`, all on free ports and all gone when the script exits. Nothing of the user's is read or
# written. Sourced, not run: the caller defines say() and die() and sets REPO and READY_TIMEOUT first.

# kvproxy_binary: KVPROXY_BIN when given (make test passes the build it just made), else a fresh debug build.
kvproxy_binary() {
    if [[ -n "${KVPROXY_BIN:-}" ]]; then
        KVPROXY=$KVPROXY_BIN
    else
        say "building kvproxy (cargo build -p kvproxy-cli)"
        cargo build --locked -p kvproxy-cli --bin kvproxy
        KVPROXY="${CARGO_TARGET_DIR:-$REPO/target}/debug/kvproxy"
    fi
    [[ -x "$KVPROXY" ]] || die "no kvproxy binary at $KVPROXY"
}

# world_start NAME: the temporary directory and environment; every process started later lives in it.
world_start() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-$1.XXXXXX")
    export KVPROXY_CONFIG_DIR="$WORK/config"
    export KVPROXY_KEYRING=off
    # The server's agent listens here, not in the user's runtime directory, where their own app's is.
    export KVPROXY_AGENT_SOCKET="$WORK/run/agent.sock"
    KVPROXY_API_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    export KVPROXY_API_KEY
    # Everything here is on this machine: keep any configured HTTP(S) proxy out of it (kvproxy, newman and
    # python-requests all honour NO_PROXY).
    export NO_PROXY="localhost,127.0.0.1,::1,.localhost${NO_PROXY:+,$NO_PROXY}"
    export no_proxy="$NO_PROXY"
    mkdir -p "$KVPROXY_CONFIG_DIR"
    PIDS=()
    trap world_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

world_stop() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

# wait_ready NAME PID STDOUT STDERR: until STDOUT has a line starting with "ready.", the process exits, or
# READY_TIMEOUT seconds pass (polled every 0.1 s; the deadline is what bounds the wait).
wait_ready() {
    local name=$1 pid=$2 out=$3 err=$4 why=""
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q '^ready\.' "$out" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            why="exited before it was ready"
        elif ((SECONDS >= deadline)); then
            why="was not ready after ${READY_TIMEOUT}s"
        fi
        if [[ -n "$why" ]]; then
            echo "--- $name stdout:" >&2
            cat "$out" >&2
            echo "--- $name stderr:" >&2
            cat "$err" >&2
            die "$name $why"
        fi
        sleep 0.1
    done
}

# start_demo: `kvproxy demo` on a free port; it saves the `demo` profile (the default one). Sets DEMO_PORT
# and DEMO_CA.
start_demo() {
    "$KVPROXY" demo --port 0 >"$WORK/demo.out" 2>"$WORK/demo.err" &
    PIDS+=($!)
    wait_ready "kvproxy demo" "${PIDS[-1]}" "$WORK/demo.out" "$WORK/demo.err"
    # First line: "KeyVault Proxy DEMO tenant is running (emulated Entra ID + Key Vault on 127.0.0.1:PORT)."
    DEMO_PORT=$(sed -n '1s/.*127\.0\.0\.1:\([0-9][0-9]*\)).*/\1/p' "$WORK/demo.out")
    [[ -n "$DEMO_PORT" ]] || die "could not read the demo port from: $(head -n1 "$WORK/demo.out")"
    DEMO_CA="$KVPROXY_CONFIG_DIR/demo-ca.pem"
    [[ -s "$DEMO_CA" ]] || die "kvproxy demo wrote no CA certificate at $DEMO_CA"
}

# start_serve [VAR=VALUE...]: `kvproxy serve` on a free port (the OS picks it at bind time: no race), with
# the given variables in its environment only. Sets SERVE_PORT.
start_serve() {
    env "$@" "$KVPROXY" serve --port 0 --bind 127.0.0.1 >"$WORK/serve.out" 2>"$WORK/serve.err" &
    PIDS+=($!)
    wait_ready "kvproxy serve" "${PIDS[-1]}" "$WORK/serve.out" "$WORK/serve.err"
    SERVE_PORT=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$WORK/serve.out" | head -n1)
    [[ -n "$SERVE_PORT" ]] || die "could not read the API port from: $(cat "$WORK/serve.out")"
}

# finish TOOL STATUS SUCCESS: on failure, say so with the server's stderr (what it logged about the failing
# requests) and exit with the tool's code; else print SUCCESS.
finish() {
    local tool=$1 status=$2 success=$3
    if ((status != 0)); then
        say "FAILED ($tool exit code $status)"
        if [[ -s "$WORK/serve.err" ]]; then
            echo "--- kvproxy serve stderr:" >&2
            cat "$WORK/serve.err" >&2
        fi
        exit "$status"
    fi
    say "$success"
}
