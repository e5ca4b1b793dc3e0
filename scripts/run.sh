#!/usr/bin/env bash
# What `make run` starts. The tray app is not ready yet, so for now this runs `kvproxy demo`: a local
# emulated Entra ID + Key Vault and a `demo` profile pointing at it. Extra arguments go to `kvproxy demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "run: The tray app arrives in a later version; starting the demo tenant with \`kvproxy demo\` instead."

# Same place kvproxy-core looks (KVPROXY_CONFIG_DIR, else the XDG config dir).
profiles="${KVPROXY_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/kvproxy}/profiles.toml"
if [[ -f "$profiles" ]]; then
    # Profile tables are [profiles.NAME] (NAME possibly quoted); list every name but "demo".
    others=$(sed -nE 's/^[[:space:]]*\[profiles\."?([^]."]+)"?[].].*/\1/p' "$profiles" | grep -vx demo | sort -u | paste -sd, - | sed "s/,/, /g" || true)
    if [[ -n "$others" ]]; then
        echo "run: $profiles already has your profiles ($others); running the demo anyway:"
        echo "run: it only adds or refreshes the 'demo' profile and leaves the others alone."
    fi
fi

exec cargo run --locked -p kvproxy-cli --bin kvproxy -- demo "$@"
