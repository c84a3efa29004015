# SPDX-License-Identifier: Apache-2.0
# Shared by the benchmark scripts: a private system-like bus, a polkit mock, the daemon
# on a temporary KSM directory. Every process is stopped by its PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[ "$(id -u)" -eq 0 ] || { echo "$(basename "$0"): run as root" >&2; exit 1; }
[ -x "$BUILD/src/ksm-throttler" ] || { echo "$(basename "$0"): build first (tools/dev test, or meson compile -C $BUILD)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ksm-throttler-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
bench_cleanup() {
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap bench_cleanup EXIT

wait_for_name() { # NAME
    for _ in $(seq 100); do busctl --system status "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "$1 did not appear on the bus" >&2; return 1
}

start_bus() { # the polkit policy is included so that a mock can own its name
    local polkit='<policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy><policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>'
    sed -e "s|@DIR@|$WORK|" -e "s|@POLICY@|$ROOT/dbus/org.kata.KsmThrottler.conf|" -e "s|@EXTRA@|$polkit|" \
        "$ROOT/test/data/system-bus.conf.in" >"$WORK/bus.conf"
    dbus-daemon --config-file="$WORK/bus.conf" --nofork --print-address=3 3>"$WORK/address" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 50); do [ -s "$WORK/address" ] && break; sleep 0.1; done
    export DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$WORK/address")
}

start_polkit_allowing_kick() {
    /usr/bin/python3 -m dbusmock --system --template polkitd >"$WORK/polkit.log" 2>&1 &
    PIDS+=($!)
    wait_for_name org.freedesktop.PolicyKit1
    busctl --system call org.freedesktop.PolicyKit1 /org/freedesktop/PolicyKit1/Authority org.freedesktop.DBus.Mock \
        SetAllowed as 1 org.kata.ksmthrottler.kick
}

DAEMON_PID=""
# The daemon runs at its unit's Nice=, as systemd starts it (DAEMON_NICE overrides).
UNIT_NICE=$(sed -n 's/^Nice=//p' "$ROOT/systemd/ksm-throttler.service.in")
DAEMON_NICE=${DAEMON_NICE:-${UNIT_NICE:-0}}
start_daemon() { # CONFIG_TEXT: on a temporary KSM directory ($WORK/ksm), at DAEMON_NICE
    mkdir -p "$WORK/ksm"
    echo 0 >"$WORK/ksm/run"; echo 100 >"$WORK/ksm/pages_to_scan"; echo 20 >"$WORK/ksm/sleep_millisecs"
    for c in pages_shared pages_sharing pages_unshared pages_volatile full_scans general_profit; do echo 0 >"$WORK/ksm/$c"; done
    printf '%b' "$1" >"$WORK/ksm-throttler.conf"
    # A fixed AnonPages, so that kicks in aggressive compute the same pages_to_scan.
    printf 'MemTotal: 24000000 kB\nAnonPages: 400000 kB\n' >"$WORK/meminfo"
    nice -n "$DAEMON_NICE" "$BUILD/src/ksm-throttler" --ksm-dir "$WORK/ksm" --config "$WORK/ksm-throttler.conf" --runtime-dir "$WORK/run" \
        --meminfo "$WORK/meminfo" \
        --log-level "${DAEMON_LOG_LEVEL:-warning}" 2>"$WORK/daemon.log" &
    DAEMON_PID=$!
    PIDS+=($DAEMON_PID)
    wait_for_name org.kata.KsmThrottler
}

status_field() { # PID FIELD → value from /proc/PID/status
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
