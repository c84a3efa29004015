# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts that write the real /sys/kernel/mm/ksm. KSM is global to the machine and
# several checkouts may test on it at once: each takes /tmp/ksm-real.lock (KSM_THROTTLER_KSM_LOCK)
# for as long as it touches the knobs. A parent that holds it already, as in
# `flock /tmp/ksm-real.lock tools/dev test`, counts as ours; waiting for it would never end.

# lock_real_ksm: returns with the lock held on fd KSM_LOCK_FD (closed at exit).
lock_real_ksm() {
    local lock=${KSM_THROTTLER_KSM_LOCK:-/tmp/ksm-real.lock}
    exec {KSM_LOCK_FD}>>"$lock"
    flock -n "$KSM_LOCK_FD" && return 0
    if real_ksm_lock_held_by_parent "$lock"; then
        exec {KSM_LOCK_FD}>&-
        return 0
    fi
    echo "# waiting for $lock: another checkout is using the real KSM" >&2
    flock "$KSM_LOCK_FD"
}

# True when a process among our parents holds a flock on the file: /proc/locks names each
# holder's PID beside the file's inode (waiters are marked "->" and do not match).
real_ksm_lock_held_by_parent() {
    local inode holders pid
    inode=$(stat -c %i "$1") || return 1
    holders=$(awk -v inode="$inode" '$2 == "FLOCK" { n = split($6, id, ":"); if (id[n] == inode) print $5 }' /proc/locks)
    [ -n "$holders" ] || return 1
    pid=$PPID
    while [ "${pid:-0}" -gt 1 ]; do
        grep -qx "$pid" <<<"$holders" && return 0
        pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    done
    return 1
}
