# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Sourced by the end-to-end suite (run.sh) and by benchmarks that need a real systemd host
# (test/bench/trigger-latency-machined): a minimal Debian 12 booted in systemd-nspawn with the
# real /sys/kernel/mm/ksm bound in and the project installed as a distribution package would
# (meson --prefix=/usr, DESTDIR install). The caller defines skip REASON (the host cannot do
# this) and bail REASON (a broken set-up); both must exit. Progress lines ("# ...") go to
# stdout. Use:
#   container_preflight            root, nspawn, debootstrap, /tmp/ksm-real.lock held, KSM writable
#   container_setup                WORK, the host's KSM knobs saved; trap container_cleanup EXIT
#   container_boot                 the rootfs (cached in $KSM_THROTTLER_E2E_CACHE), the project
#                                  installed, the container booted: in_container CMD... works
#   container_cleanup              poweroff, nspawn stopped by its PID, knobs restored, WORK gone

CONTAINER_SOURCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${KSM_THROTTLER_E2E_CACHE:-/var/cache/ksm-throttler-e2e}
# systemd-container brings systemd-machined, which the trigger listens to; qemu-system-x86 is
# the hypervisor whose start the trigger notices (it adds about 145 MB and 50 packages to the
# cached rootfs); libjansson4 is for ksmctl.
PACKAGES=systemd,systemd-sysv,libpam-systemd,dbus,polkitd,libsystemd0,libinih1,procps,libjansson4,systemd-container,qemu-system-x86
MIRROR=${KSM_THROTTLER_E2E_MIRROR:-http://deb.debian.org/debian}
KSM=/sys/kernel/mm/ksm
MACHINE=ksm-throttler-e2e-$$

container_preflight() {
    [ "$(id -u)" -eq 0 ] || skip "they need root"
    command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is missing (package systemd-container)"
    command -v debootstrap >/dev/null || skip "debootstrap is missing"
    [ -x /usr/bin/python3 ] || skip "/usr/bin/python3 is missing (it listens for the container's readiness)"
    [ -w $KSM/run ] || skip "$KSM is not writable"
    # shellcheck source=ksm-lock.sh
    . "$CONTAINER_SOURCE_ROOT/test/e2e/ksm-lock.sh"
    LOCK_TIMEOUT=${KSM_THROTTLER_KSM_LOCK_TIMEOUT:-600}
    lock_real_ksm "$LOCK_TIMEOUT" ||
        skip "the real KSM has been in use by another checkout for $LOCK_TIMEOUT s ($KSM_LOCK_HOLDER holds /tmp/ksm-real.lock)"
    # Writing the value back is the real test (access() does not know every refusal); only
    # under the lock, so that it cannot undo another checkout's write.
    ksm_writable || skip "$KSM is not writable"
    echo "# holding the KSM lock after $SECONDS s"
}
ksm_writable() { local run; run=$(cat $KSM/run 2>/dev/null) && (echo "$run" >$KSM/run) 2>/dev/null; }

# --- the machine's KSM knobs, saved and always put back -----------------------
declare -A SAVED_KNOBS
knob() { local v; v=$(cat $KSM/$1); v=${v#*[}; [[ $v == *]* ]] && v=${v%%]*}; echo "$v"; }
save_knobs() {
    local f
    # Knobs are the files with a write bit: root passes [ -w ] on the read-only counters too.
    for f in $(find $KSM -maxdepth 1 -type f -perm /222); do SAVED_KNOBS[${f##*/}]=$(knob "${f##*/}"); done
}
restore_knobs() {
    local name
    [ -n "${SAVED_KNOBS[advisor_mode]:-}" ] && [ "$(knob advisor_mode)" != "${SAVED_KNOBS[advisor_mode]}" ] &&
        echo "${SAVED_KNOBS[advisor_mode]}" >$KSM/advisor_mode
    for name in "${!SAVED_KNOBS[@]}"; do
        [ "$name" = advisor_mode ] || [ "$name" = run ] && continue
        [ "$(knob "$name")" = "${SAVED_KNOBS[$name]}" ] || echo "${SAVED_KNOBS[$name]}" >"$KSM/$name" 2>/dev/null ||
            echo "warning: cannot restore $KSM/$name" >&2
    done
    [ -z "${SAVED_KNOBS[run]:-}" ] || [ "$(knob run)" = "${SAVED_KNOBS[run]}" ] || echo "${SAVED_KNOBS[run]}" >$KSM/run
}

# --- the container ------------------------------------------------------------
WORK=""
NSPAWN_PID=""
LEADER=""
LISTENER_PID=""
container_setup() {
    WORK=$(mktemp -d /tmp/ksm-throttler-e2e.XXXXXX)
    save_knobs
}
container_cleanup() {
    set +e
    if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
        nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID"  # nspawn asks the container's systemd to shut down
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null
    fi
    [ -n "$NSPAWN_PID" ] && wait "$NSPAWN_PID" 2>/dev/null
    if [ -n "$LISTENER_PID" ]; then kill -TERM "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null; fi
    # nspawn leaves empty cgroups behind on hosts whose PID 1 is not systemd.
    for d in /sys/fs/cgroup/unified/payload /sys/fs/cgroup/unified/supervisor \
             /sys/fs/cgroup/systemd/payload /sys/fs/cgroup/systemd/supervisor; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    restore_knobs
    [ -n "$WORK" ] && rm -rf "$WORK"
}

ROOTFS_CACHED=""
rootfs_cache() { # builds the minimal Debian 12 once into ROOTFS_CACHED; the package list names the cache
    local key
    key=$(echo "$PACKAGES" | md5sum | cut -c1-12)
    ROOTFS_CACHED=$CACHE/rootfs-$key
    mkdir -p "$CACHE"
    exec {cache_lock}>"$CACHE/lock"
    flock "$cache_lock"
    if [ ! -f "$ROOTFS_CACHED/.complete" ]; then
        echo "# building the Debian 12 rootfs in $ROOTFS_CACHED (once)"
        rm -rf "$ROOTFS_CACHED.tmp"
        if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS_CACHED.tmp" "$MIRROR" \
                >"$CACHE/debootstrap.log" 2>&1; then
            tail -n 30 "$CACHE/debootstrap.log" >&2
            skip "debootstrap failed (see $CACHE/debootstrap.log)"
        fi
        rm -rf "$ROOTFS_CACHED" && mv "$ROOTFS_CACHED.tmp" "$ROOTFS_CACHED" && touch "$ROOTFS_CACHED/.complete"
    fi
    exec {cache_lock}>&-
}

install_project() {
    meson setup "$WORK/build" "$CONTAINER_SOURCE_ROOT" --prefix=/usr -Dtests=false &&
        ninja -C "$WORK/build" &&
        DESTDIR=$ROOTFS meson install -C "$WORK/build" --no-rebuild --quiet
}

notified() { sed -n "s/^$1=//p" "$WORK/notify.log" | tail -n 1; }
boot_failed() { # REASON: nspawn's output, the container's journal, then skip
    echo "# the container did not come up: $1" >&2
    echo "# ---- systemd-nspawn's output:" >&2
    cat "$WORK/console.log" >&2
    echo "# ---- nspawn's notifications:" >&2
    cat "$WORK/notify.log" >&2
    if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
        echo "# ---- the container's jobs and journal:" >&2
        nsenter -t "$LEADER" -a systemctl list-jobs --no-pager >&2 2>&1
        nsenter -t "$LEADER" -a journalctl -b --no-pager -n 200 >&2 2>&1
    elif [ -d "$ROOTFS/var/log/journal" ]; then
        echo "# ---- the container's journal:" >&2
        journalctl -D "$ROOTFS/var/log/journal" --no-pager -n 200 >&2 2>&1
    fi
    skip "the container's systemd did not come up: $1 (details on stderr)"
}
in_container() { nsenter -t "$LEADER" -a "$@"; }

container_boot() {
    rootfs_cache
    echo "# root file system ready after $SECONDS s ($(du -sh "$ROOTFS_CACHED" | cut -f1))"
    ROOTFS=$WORK/root
    cp -a --reflink=auto "$ROOTFS_CACHED" "$ROOTFS"

    echo "# installing the project into the container (meson --prefix=/usr, DESTDIR install)"
    install_project >"$WORK/meson.log" 2>&1 || { cat "$WORK/meson.log" >&2; bail "cannot build and install the project (log above)"; }

    # Readiness comes from the container itself: with --notify-ready=yes nspawn passes on its
    # init's READY=1 (sent once the boot has finished) to our NOTIFY_SOCKET, and names the
    # container's PID 1 there (X_NSPAWN_LEADER_PID). Guessing PID 1 among nspawn's children
    # is racy: nspawn first forks a short-lived helper that sets up the mounts and is gone a
    # moment later, and a first boot on a loaded machine stays inside that window longest.
    echo "# booting it"
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".bound", "w").close()
while True:
    print(s.recv(4096).decode(errors="replace"), flush=True)
' "$WORK/notify" >"$WORK/notify.log" 2>&1 {KSM_LOCK_FD}>&- &
    LISTENER_PID=$!
    for _ in $(seq 100); do [ -e "$WORK/notify.bound" ] && break; sleep 0.1; done
    [ -e "$WORK/notify.bound" ] || { cat "$WORK/notify.log" >&2; bail "cannot listen on $WORK/notify"; }

    # CAP_NET_ADMIN: nspawn keeps it only with --private-network, and the trigger's unit needs it
    # for the kernel's process events (sent in the host's network namespace, which nspawn shares).
    # With --console=pipe the container has no /dev/console and its systemd prints nothing
    # there: an empty console log is normal. The container's journal says what a boot did.
    NOTIFY_SOCKET=$WORK/notify SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 setsid systemd-nspawn -D "$ROOTFS" -M "$MACHINE" \
        --register=no --keep-unit --notify-ready=yes --console=pipe \
        --bind=$KSM --system-call-filter=bpf --capability=CAP_BPF --capability=CAP_NET_ADMIN \
        -b >"$WORK/console.log" 2>&1 </dev/null {KSM_LOCK_FD}>&- &
    NSPAWN_PID=$!

    local boot_timeout=${KSM_THROTTLER_E2E_BOOT_TIMEOUT:-300} started=$SECONDS status state
    until grep -qx 'READY=1' "$WORK/notify.log"; do
        LEADER=$(notified X_NSPAWN_LEADER_PID)
        if ! kill -0 "$NSPAWN_PID" 2>/dev/null; then
            status=0; wait "$NSPAWN_PID" || status=$?
            NSPAWN_PID=""
            boot_failed "systemd-nspawn exited with status $status"
        fi
        [ $((SECONDS - started)) -lt "$boot_timeout" ] || boot_failed "no READY=1 within $boot_timeout s"
        sleep 0.2
    done
    LEADER=$(notified X_NSPAWN_LEADER_PID)
    [ -n "$LEADER" ] || boot_failed "nspawn did not name the container's PID 1"
    state=$(in_container systemctl is-system-running 2>&1 || true)
    case $state in running|degraded) ;; *) boot_failed "READY=1 came, but the system is $state";; esac
    echo "# container systemd is $state after $((SECONDS - started)) s (PID 1 is $LEADER on the host)"
}
