#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The installed systemd unit: systemd-analyze verify reports nothing, and
# systemd-analyze security --offline scores it at most 1.5.
# Usage: test-unit-file.sh BUILD_DIR
set -euo pipefail
build=$1
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }

dest=$(mktemp -d /tmp/ksm-throttler-unit.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
unit=$(find "$dest" -name ksm-throttler.service -path '*systemd/system*')
[ -n "$unit" ] || { echo "FAIL: meson install put no ksm-throttler.service in a systemd unit directory"; exit 1; }

score=$(systemd-analyze security --offline=yes "$unit" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 1.5) }' || {
    systemd-analyze security --offline=yes "$unit" | grep -v '✓' || true
    echo "FAIL: exposure $score is above 1.5"; exit 1; }

# verify resolves Exec paths on this host: point them at the installed copies.
libexecdir=$(sed -n 's|^ExecStart=\(.*\)/ksm-throttler$|\1|p' "$unit")
sed "s|$libexecdir/|$dest$libexecdir/|" "$unit" >"$dest/ksm-throttler.service"
out=$(systemd-analyze verify --man=no "$dest/ksm-throttler.service" 2>&1) || { echo "$out"; echo "FAIL: verify failed"; exit 1; }
[ -z "$out" ] || { echo "$out"; echo "FAIL: systemd-analyze verify reported something"; exit 1; }
echo "verify: clean"

# A bad configuration exits 78 (EX_CONFIG): restarting cannot fix it.
grep -qx 'RestartPreventExitStatus=78' "$unit" || { echo "FAIL: no RestartPreventExitStatus=78"; exit 1; }
# systemctl reload must fail on a file the daemon would reject: check it before SIGHUP.
reloads=$(grep '^ExecReload=' "$unit")
check_line=$(grep -n '^ExecReload=.*/ksm-throttler --check-config$' "$unit" | cut -d: -f1)
hup_line=$(grep -n '^ExecReload=.*kill -HUP \$MAINPID$' "$unit" | cut -d: -f1)
[ -n "$check_line" ] && [ -n "$hup_line" ] && [ "$check_line" -lt "$hup_line" ] || {
    echo "$reloads"; echo "FAIL: ExecReload= does not run ksm-throttler --check-config before the SIGHUP"; exit 1; }
echo "reload: checks the configuration first"
