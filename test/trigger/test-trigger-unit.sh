#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The installed ksm-throttler-trigger.service: systemd-analyze verify reports nothing,
# and systemd-analyze security --offline scores its exposure at most 2.0 (each
# exception is explained in the unit and in ksm-throttler-trigger(8)).
# Usage: test-trigger-unit.sh BUILD_DIR
set -euo pipefail
build=$1
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }

dest=$(mktemp -d /tmp/ksm-trigger-unit.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
unit=$(find "$dest" -name ksm-throttler-trigger.service -path '*systemd/system*')
[ -n "$unit" ] || { echo "FAIL: meson install put no ksm-throttler-trigger.service in a systemd unit directory"; exit 1; }

score=$(systemd-analyze security --offline=yes "$unit" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || {
    systemd-analyze security --offline=yes "$unit" | grep -v '✓' || true
    echo "FAIL: exposure $score is above 2.0"; exit 1; }

# The netlink source needs CAP_NET_ADMIN and AF_NETLINK; nothing else may creep in.
grep -qx 'CapabilityBoundingSet=CAP_NET_ADMIN' "$unit" || { echo "FAIL: the capability set is not CAP_NET_ADMIN alone"; exit 1; }
grep -qx 'RestrictAddressFamilies=AF_UNIX AF_NETLINK' "$unit" || { echo "FAIL: address families other than AF_UNIX AF_NETLINK"; exit 1; }

# verify resolves Exec paths and Wants= on this host: point them at the installed copies.
libexecdir=$(sed -n 's|^ExecStart=\(.*\)/ksm-throttler-trigger$|\1|p' "$unit")
unitdir=$(dirname "$unit")
mkdir -p "$dest/units"
for u in "$unit" "$unitdir/ksm-throttler.service"; do
    sed "s|$libexecdir/|$dest$libexecdir/|" "$u" >"$dest/units/$(basename "$u")"
done
out=$(cd "$dest/units" && SYSTEMD_UNIT_PATH="$dest/units:" systemd-analyze verify --man=no ksm-throttler-trigger.service 2>&1) ||
    { echo "$out"; echo "FAIL: verify failed"; exit 1; }
[ -z "$out" ] || { echo "$out"; echo "FAIL: systemd-analyze verify reported something"; exit 1; }
echo "verify: clean"
