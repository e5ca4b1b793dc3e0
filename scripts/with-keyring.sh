#!/usr/bin/env bash
# Runs CMD against a real, throwaway Secret Service, so the OS keyring tests hit what users have:
#
#   scripts/with-keyring.sh cargo test --workspace
#
# 1. creates a temp dir and starts a private D-Bus session bus (dbus-run-session);
# 2. starts gnome-keyring-daemon (secrets only) on that bus with XDG_DATA_HOME / XDG_RUNTIME_DIR / HOME
#    pointing into the temp dir, and unlocks it with a throwaway password on stdin; a first start with
#    --unlock creates the "login" keyring and makes it the default collection, so writes never prompt;
#    the user's real keyring and session bus are never touched;
# 3. waits for org.freedesktop.secrets to be on the bus and proves a store / lookup / clear round trip;
# 4. runs CMD with KVPROXY_REQUIRE_KEYRING=1 (tests that need the keyring then fail instead of skip),
#    stops the daemon, removes the temp dir and exits with CMD's exit code.
# Needs dbus (dbus-run-session, dbus-send), gnome-keyring and libsecret-tools (secret-tool); no X display.
set -euo pipefail

me=with-keyring
die() {
    echo "$me: $*" >&2
    exit 1
}

if (($# == 0)); then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

# ---------------------------------------------------------------------------------------------------------
# Outer half: make the temp dir and a private session bus, then run the inner half on that bus.
if [[ "${_KVPROXY_KEYRING_STAGE:-}" != inner ]]; then
    for tool in dbus-run-session dbus-send gnome-keyring-daemon secret-tool timeout; do
        command -v "$tool" >/dev/null || die "'$tool' not found; install the test packages with scripts/deps.sh --test"
    done
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvproxy-keyring.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -m 700 "$tmp/data" "$tmp/runtime" "$tmp/home"
    if ((EUID == 0)); then
        echo "$me: (as root, dbus-daemon may warn 'Failed to set fd limit'; that is harmless)" >&2
    fi
    rc=0
    _KVPROXY_KEYRING_STAGE=inner _KVPROXY_KEYRING_TMP="$tmp" \
        XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/runtime" \
        dbus-run-session -- bash "${BASH_SOURCE[0]}" "$@" || rc=$?
    exit "$rc"
fi

# ---------------------------------------------------------------------------------------------------------
# Inner half: on the private bus. Start and unlock the keyring, check it, run CMD.
unset _KVPROXY_KEYRING_STAGE GNOME_KEYRING_CONTROL
tmp=${_KVPROXY_KEYRING_TMP:?}
unset _KVPROXY_KEYRING_TMP
log="$tmp/gnome-keyring.log"

# --foreground, started in the background by us, so we can stop and reap it when CMD is done.
# The password only ever protects a keyring that is deleted afterwards.
printf '%s' "throwaway-test-keyring" |
    HOME="$tmp/home" gnome-keyring-daemon --foreground --unlock --components=secrets >"$log" 2>&1 &
daemon=$!
# shellcheck disable=SC2317 # called by the EXIT trap
stop_daemon() {
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
}
trap stop_daemon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log_and_die() {
    echo "$me: gnome-keyring-daemon log:" >&2
    sed 's/^/    /' "$log" >&2 || true
    die "$*"
}

# NameHasOwner does not D-Bus-activate anything (activation would start a second, locked daemon).
has_secrets_name() {
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'
}
ready=0
for _ in $(seq 1 100); do # 100 x 0.1 s = at most 10 s
    if has_secrets_name; then
        ready=1
        break
    fi
    kill -0 "$daemon" 2>/dev/null || show_log_and_die "gnome-keyring-daemon exited before it took org.freedesktop.secrets"
    sleep 0.1
done
((ready)) || show_log_and_die "org.freedesktop.secrets did not appear on the session bus within 10 s"

# A write goes to the "default" collection; if there were none, libsecret would ask a prompter to create one
# and hang without a display, hence the timeouts.
probe="probe-$$"
echo x | timeout 10 secret-tool store --label="kvproxy keyring probe" kvproxy "$probe" ||
    show_log_and_die "could not store a secret (no unlocked default 'login' collection?)"
[[ "$(timeout 10 secret-tool lookup kvproxy "$probe")" == x ]] ||
    show_log_and_die "stored a secret but could not read it back"
timeout 10 secret-tool clear kvproxy "$probe" || show_log_and_die "could not delete the probe secret"
echo "$me: gnome-keyring is running and unlocked on a private session bus (keyring in $tmp)" >&2

export KVPROXY_REQUIRE_KEYRING=1
rc=0
"$@" || rc=$?
exit "$rc"
