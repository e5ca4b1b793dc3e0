#!/usr/bin/env bash
# Fuzzes the token API with schemathesis against a throwaway `kvproxy demo` (emulated Entra ID + Key Vault)
# and `kvproxy serve`, both on free ports, with a temporary config directory, no OS keyring and a random API
# key. schemathesis reads /openapi.json and sends every operation generated requests, valid and invalid,
# then checks each answer against the schema (status codes, content types, bodies, headers) and for server
# errors, ignored authentication and the like. Nothing of yours is read or written. Exits non-zero when a
# check fails. Meant for `make test`; runs on its own too: `scripts/schemathesis.sh`.
#
# Needs python3 with venv (schemathesis is installed into .tools/schemathesis/ on first use).
# Configuration beyond the command line: schemathesis.toml at the repository root.
# Environment: KVPROXY_BIN (a prebuilt kvproxy; default: cargo build, then target/debug/kvproxy),
#              READY_TIMEOUT (seconds to wait for each process to be ready; default 60),
#              ST_MAX_EXAMPLES (generated test cases per operation and phase; default 200),
#              ST_SEED (the random seed; default 1: the same requests on every run).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

# Pinned: checks and generation change between releases, and a new one must not turn `make test` red on
# its own. Bump on purpose and look at what the new version finds.
ST_VERSION=4.32.5
VENV="$REPO/.tools/schemathesis"
ST="$VENV/bin/st"
READY_TIMEOUT=${READY_TIMEOUT:-60}
ST_MAX_EXAMPLES=${ST_MAX_EXAMPLES:-200}
ST_SEED=${ST_SEED:-1}

say() { echo "schemathesis.sh: $*"; }
die() {
    echo "schemathesis.sh: error: $*" >&2
    exit 1
}

# --- tools ------------------------------------------------------------------------------------------------
# A venv of its own, so nothing is installed into the system's or the user's Python. Reinstalled when the
# pinned version is not the one there (e.g. after a bump).
installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [[ ! -x "$ST" || "$installed" != "$ST_VERSION" ]]; then
    command -v python3 >/dev/null || die "python3 is not installed (needed for schemathesis): apt-get install python3 python3-venv"
    say "installing schemathesis $ST_VERSION into .tools/schemathesis/"
    python3 -m venv "$VENV" || die "python3 could not make a venv in $VENV: apt-get install python3-venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
    [[ -x "$ST" ]] || die "pip did not install $ST"
fi

# --- a private world: config dir, no keyring, random API key, demo tenant, token API -----------------------
# shellcheck source=lib/world.sh
source "$REPO/scripts/lib/world.sh"
kvproxy_binary
world_start schemathesis
# Generated requests name vaults and tenants of their own (the .NET-compatible routes take any
# https://NAME.vault.azure.net/). None may leave this machine: for the server alone every HTTP(S) proxy is a
# closed port on the loopback (9, discard), so such a call fails here at once (504; KVPROXY_RETRIES=0: no
# retries with backoff, which would cost 12 s a request), without even a DNS look-up (the proxy would resolve
# the name). The demo tenant's client never uses a proxy, and NO_PROXY names *.localhost anyway.
start_serve HTTPS_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
    HTTP_PROXY=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 \
    ALL_PROXY=http://127.0.0.1:9 all_proxy=http://127.0.0.1:9 \
    KVPROXY_RETRIES=0

# --- the run ----------------------------------------------------------------------------------------------
# Authentication: schemathesis.toml gives the API key (KVPROXY_API_KEY) to every security scheme the
#   document declares, so each request carries it the way its operation says.
# --checks all: every check schemathesis has; none is switched off.
# --max-examples, --seed, --generation-database none: a bounded and repeatable run. The same seed makes the
#   same requests every time, and no example database (.hypothesis/examples) replays earlier failures.
#   200 examples take about 80 s on 2 cores (with --continue-on-failure, so as long as a passing run).
# --continue-on-failure: keep testing an operation after its first failure, so one run lists every kind of
#   failure of every operation instead of one at a time.
# --workers 1: one request at a time, in a fixed order, so the run is the same every time (the server
#   keeps a token cache and an activity log that earlier requests change).
# --request-timeout: one hung request fails the run instead of stalling it. `timeout` bounds the whole run at
#   10 minutes (exit code 124). Not --max-time: in schemathesis 4 that is a budget to spend, fuzzing again
#   and again until it is used up, not a limit.
# --url: where the requests go (the schema names no server).
# It runs in the temporary directory, with the repository's schemathesis.toml named explicitly: hypothesis
# (under schemathesis) keeps caches in ./.hypothesis/ whatever the options, and they must not land in the
# work tree.
# Colours only on a terminal, so CI logs stay plain text.
color=(--no-color)
[[ -t 1 ]] && color=(--force-color)
# run_schemathesis LABEL: one run against the server as it is configured now.
run_schemathesis() {
    say "run: $1"
    (cd "$WORK" && exec timeout 600 "$ST" --config-file "$REPO/schemathesis.toml" run "http://127.0.0.1:$SERVE_PORT/openapi.json" \
        --url "http://127.0.0.1:$SERVE_PORT" \
        --checks all \
        --max-examples "$ST_MAX_EXAMPLES" \
        --seed "$ST_SEED" \
        --generation-database none \
        --workers 1 \
        --continue-on-failure \
        --request-timeout 30 \
        "${color[@]}")
}
# Twice: the document says what this server accepts as it is configured, and that changes with the saved
# profiles. First with no profile at all (only Azure's vaults are valid on the .NET routes); then with the
# demo tenant's `demo` profile saved (the default one), so the profile and managed-identity routes have a
# profile whose tokens come from this machine and the demo cloud's vaults are valid too. The server sees the
# new profile without a restart.
status=0
say "token API on 127.0.0.1:$SERVE_PORT"
run_schemathesis "no profile saved" || status=$?
if ((status == 0)); then
    start_demo
    say "demo tenant on 127.0.0.1:$DEMO_PORT"
    run_schemathesis "the demo profile saved" || status=$?
fi

finish schemathesis "$status" "all checks passed, without and with a saved profile"
