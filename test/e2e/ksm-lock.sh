# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts that write the real /sys/kernel/mm/ksm. KSM is global to the machine and
# several checkouts may test on it at once: each takes /tmp/ksm-real.lock (KSM_THROTTLER_KSM_LOCK)
# for as long as it touches the knobs. A parent that holds it already, as in
# `flock /tmp/ksm-real.lock tools/dev test`, counts as ours; waiting for it would never end.

# lock_real_ksm [TIMEOUT]: returns 0 with the lock held on fd KSM_LOCK_FD (closed at exit),
# or 1 after TIMEOUT seconds (default: no limit) with KSM_LOCK_HOLDER saying who has it.
lock_real_ksm() {
    local lock=${KSM_THROTTLER_KSM_LOCK:-/tmp/ksm-real.lock} timeout=${1:-}
    exec {KSM_LOCK_FD}>>"$lock"
    flock -n "$KSM_LOCK_FD" && return 0
    if real_ksm_lock_held_by_parent "$lock"; then
        exec {KSM_LOCK_FD}>&-
        return 0
    fi
    KSM_LOCK_HOLDER=$(real_ksm_lock_holder "$lock")
    echo "# waiting for $lock${timeout:+ (up to $timeout s)}: held by $KSM_LOCK_HOLDER" >&2
    flock ${timeout:+-w "$timeout"} "$KSM_LOCK_FD" && return 0
    KSM_LOCK_HOLDER=$(real_ksm_lock_holder "$lock")
    exec {KSM_LOCK_FD}>&-
    return 1
}

real_ksm_lock_holders() { # FILE → the PIDs holding a flock on it; /proc/locks marks waiters "->"
    local inode
    inode=$(stat -c %i "$1") || return 0
    awk -v inode="$inode" '$2 == "FLOCK" { n = split($6, id, ":"); if (id[n] == inode) print $5 }' /proc/locks
}

real_ksm_lock_holder() { # FILE → "PID (command line)" of a holder, for messages
    local pid
    pid=$(real_ksm_lock_holders "$1" | head -n 1)
    [ -n "$pid" ] || { echo "nobody any more"; return; }
    echo "PID $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120))"
}

# True when a process among our parents holds a flock on the file.
real_ksm_lock_held_by_parent() {
    local holders pid
    holders=$(real_ksm_lock_holders "$1")
    [ -n "$holders" ] || return 1
    pid=$PPID
    while [ "${pid:-0}" -gt 1 ]; do
        grep -qx "$pid" <<<"$holders" && return 0
        pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    done
    return 1
}
