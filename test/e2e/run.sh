#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# End to end under a real systemd (docs/design.md: Authorization, Persistence and
# recovery): boots a minimal Debian 12 in systemd-nspawn with the real
# /sys/kernel/mm/ksm bound in, installs the project as a distribution package
# would (meson --prefix=/usr, DESTDIR install), and checks
# with the real system bus, systemd and polkitd:
#   bus activation through SystemdService=, the hardened unit writing the knobs,
#   StatusText, nobody refused by default and allowed by a rules file,
#   systemctl stop restoring the host's knobs, systemd-analyze verify, ksmctl failing at once
#   on a masked, failed or condition-skipped unit; then the trigger
#   with the real systemd-machined (machines registered → kicks, also after machined restarts
#   and through bus activation of a stopped throttler) and a real qemu-system-x86_64.
# Where it cannot run (not root, no systemd-nspawn or debootstrap, KSM not writable, no
# Debian 12 image to be had, a container that does not boot) it prints the TAP plan
# "1..0 # SKIP <reason>"; with KSM_THROTTLER_E2E_REQUIRED=1 (CI) each of these is a failure
# ("Bail out! <reason>") instead. The rootfs is cached in $KSM_THROTTLER_E2E_CACHE
# (default /var/cache/ksm-throttler-e2e); the first boot of the container may take up to
# $KSM_THROTTLER_E2E_BOOT_TIMEOUT seconds (default 300). It holds /tmp/ksm-real.lock while it
# runs, waiting for it up to $KSM_THROTTLER_KSM_LOCK_TIMEOUT seconds (default 600).
set -euo pipefail

SOURCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# A suite that cannot run says so as valid TAP: a plan of nothing, skipped, with the reason.
# Where it is required (CI) that is a failure with the same reason instead.
skip() {
    if [ "${KSM_THROTTLER_E2E_REQUIRED:-0}" = 1 ]; then
        echo "Bail out! cannot run the end-to-end tests here: $*"; exit 1
    fi
    echo "1..0 # SKIP cannot run the end-to-end tests here: $*"; exit 0
}
# A broken set-up (not the host's limits): the reason, as TAP, and the details on stderr.
bail() { echo "Bail out! $*"; exit 1; }

# shellcheck source=container.sh
. "$SOURCE_ROOT/test/e2e/container.sh"
container_preflight

n_passed=0 n_failed=0
pass() { echo "ok $((n_passed + n_failed + 1)) - $*"; n_passed=$((n_passed + 1)); }
# A check that cannot be made here, with the reason: valid TAP, counted as passed by harnesses.
skip_check() { echo "ok $((n_passed + n_failed + 1)) - $1 # SKIP $2"; n_passed=$((n_passed + 1)); }
fail() { echo "not ok $((n_passed + n_failed + 1)) - $*"; n_failed=$((n_failed + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
# A check of documented behaviour that the code does not have yet: TAP's TODO ("not ok ... # TODO",
# an expected failure). Once it passes, harnesses report an unexpected pass: drop the TODO then.
check_todo() { # check_todo DESCRIPTION WHY COMMAND...
    local what=$1 why=$2; shift 2
    if "$@"; then echo "ok $((n_passed + n_failed + 1)) - $what # TODO $why"
    else echo "not ok $((n_passed + n_failed + 1)) - $what # TODO $why"; fi
    n_passed=$((n_passed + 1))
}

container_setup
trap container_cleanup EXIT
container_boot


as_nobody() { in_container setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
kick() { "$@" busctl call org.kata.KsmThrottler /org/kata/KsmThrottler org.kata.KsmThrottler Kick >"$WORK/kick.out" 2>&1; }
kick_ok() { kick "$@" || { sed 's/^/# Kick: /' "$WORK/kick.out"; return 1; }; }
journal() { in_container journalctl --no-pager -u ksm-throttler -u ksm-throttler-trigger -u systemd-machined -u polkit; }

# Host values that aggressive surely changes, so that writes and restores are visible.
[ -f $KSM/advisor_mode ] && echo none >$KSM/advisor_mode
echo 0 >$KSM/run; echo 20 >$KSM/sleep_millisecs; echo 100 >$KSM/pages_to_scan

# --- the checks ---------------------------------------------------------------
verify_clean() { local out; out=$(in_container systemd-analyze verify --man=no "$1" 2>&1); echo "$out"; [ -z "$out" ]; }
check "the unit passes systemd-analyze verify inside the container" verify_clean ksm-throttler.service
not_running() { ! in_container systemctl is-active --quiet ksm-throttler; }
check "the service is not running before the first call" not_running
check "the first Kick bus-activates ksm-throttler.service through SystemdService=" kick_ok in_container
check "the service is active after the first Kick" in_container systemctl is-active --quiet ksm-throttler
check "the hardened unit wrote run=1 to the real $KSM" test "$(knob run)" = 1
check "the hardened unit wrote sleep_millisecs=1 to the real $KSM" test "$(knob sleep_millisecs)" = 1
daemon_nice() { in_container sh -c 'cut -d" " -f19 /proc/$(systemctl show -p MainPID --value ksm-throttler)/stat'; }
check "the daemon runs at the unit's Nice=-5 (nice $(daemon_nice))" test "$(daemon_nice)" = -5
status=$(in_container systemctl show -p StatusText --value ksm-throttler)
check "systemctl show -p StatusText shows the state ($status)" grep -q '^State: aggressive' <<<"$status"
refused() { ! kick as_nobody && grep -q -e 'Authentication is required' -e 'Access denied' "$WORK/kick.out"; }
check "nobody is refused under the default policy" refused
echo "# nobody was told: $(cat "$WORK/kick.out")"
check "nobody's refused kick changed nothing" test "$(knob sleep_millisecs)" = 1
cat >"$ROOTFS/etc/polkit-1/rules.d/50-ksm-throttler-e2e.rules" <<'RULES'
polkit.addRule(function(action, subject) {
        if (action.id == "org.kata.ksmthrottler.kick" && subject.user == "nobody")
                return polkit.Result.YES;
});
RULES
allowed=no
for _ in $(seq 50); do  # polkitd picks up new rules files by itself
    if kick as_nobody; then allowed=yes; break; fi
    sleep 0.2
done
check "nobody is allowed by a rules file" test $allowed = yes
# A crash in aggressive: ExecStopPost=ksm-throttler --restore gives the knobs back.
kick in_container
killed_in_aggressive=$(knob sleep_millisecs)
in_container systemctl kill -s KILL ksm-throttler
restored() { for _ in $(seq 100); do [ "$(knob run)" = 0 ] && [ "$(knob sleep_millisecs)" = 20 ] && return 0; sleep 0.1; done; return 1; }
check "systemctl kill -s KILL in aggressive (sleep_millisecs=$killed_in_aggressive): the host's knobs are back within 10 s" restored
check "systemd restarted the killed service (Restart=on-failure)" bash -c "for _ in \$(seq 100); do nsenter -t $LEADER -a systemctl is-active --quiet ksm-throttler && exit 0; sleep 0.1; done; exit 1"

# The watchdog: with WatchdogSec=1s the daemon must ping and stay up across several periods.
mkdir -p "$ROOTFS/etc/systemd/system/ksm-throttler.service.d"
printf '[Service]\nWatchdogSec=1s\n' >"$ROOTFS/etc/systemd/system/ksm-throttler.service.d/50-e2e-watchdog.conf"
in_container systemctl daemon-reload
in_container systemctl restart ksm-throttler
kick in_container
restarts_before=$(in_container systemctl show -p NRestarts --value ksm-throttler)
sleep 4
watchdog_ok() {
    in_container systemctl is-active --quiet ksm-throttler &&
    [ "$(in_container systemctl show -p NRestarts --value ksm-throttler)" = "$restarts_before" ] &&
    [ "$(in_container systemctl show -p WatchdogUSec --value ksm-throttler)" = 1s ] &&
    ! journal | grep -q 'Watchdog timeout'
}
check "the service stays active across 4 watchdog periods of 1s (no restart, no timeout)" watchdog_ok

in_container systemctl stop ksm-throttler
check "systemctl stop restores the host's run" test "$(knob run)" = 0
check "systemctl stop restores the host's sleep_millisecs" test "$(knob sleep_millisecs)" = 20
check "systemctl stop restores the host's pages_to_scan" test "$(knob pages_to_scan)" = 100

# --- ksmctl and a unit that cannot start, as the real systemd reports it -------
# With the service stopped and its unit masked, failed or skipped by a start condition, ksmctl
# says so at once (exit status 3, ksmctl(1)) instead of waiting for the bus to give up on the
# activation (25 s). "timeout 15" only bounds a broken build: the check is that it returned.
UNIT_DROPIN=$ROOTFS/etc/systemd/system/ksm-throttler.service.d/50-e2e-cannot-start.conf
ksmctl_refuses() { # VERB VERDICT: exit status 3, a message naming the unit and VERDICT, no time-out
    local verb=$1 verdict=$2 rc=0
    ksmctl_returns "$verb" || rc=$?
    [ $rc = 124 ] && return 1
    [ $rc = 3 ] && grep -qF "ksm-throttler.service cannot start it: $verdict" "$WORK/ksmctl.out"
}
KSMCTL_STATUS=""
ksmctl_returns() { # VERB: ksmctl VERB, its exit status in KSMCTL_STATUS and its output in $WORK/ksmctl.out
    local verb=$1 rc=0
    in_container timeout 15 ksmctl "$verb" >"$WORK/ksmctl.out" 2>&1 || rc=$?
    KSMCTL_STATUS=$rc
    sed "s/^/# ksmctl $verb (exit status $rc): /" "$WORK/ksmctl.out"
    if [ $rc = 124 ]; then
        echo "# ksmctl $verb was still waiting after 15 s; what systemd says of the unit meanwhile:"
        in_container systemctl show -p LoadState,ActiveState,SubState,Job,ConditionResult,ConditionTimestamp ksm-throttler |
            sed 's/^/#   /'
        in_container systemctl list-jobs --no-pager | sed 's/^/#   /'
        return 124
    fi
    return $rc
}
names_masked_unit() { # VERB: ksmctl VERB returns and its message names the unit and says it is masked
    ksmctl_returns "$1" || [ "$KSMCTL_STATUS" != 124 ]
    [ "$KSMCTL_STATUS" != 124 ] && [ "$KSMCTL_STATUS" != 0 ] &&
        grep -q 'ksm-throttler.service.*masked' "$WORK/ksmctl.out"
}
unit_is() { # PROPERTY VALUE
    local v; v=$(in_container systemctl show -p "$1" --value ksm-throttler)
    [ "$v" = "$2" ] || { echo "# ksm-throttler.service has $1=$v, not $2"; return 1; }
}

in_container systemctl mask --runtime --quiet ksm-throttler
check "systemctl mask --runtime: the stopped unit is masked" unit_is LoadState masked
for verb in kick status; do
    check "ksmctl $verb with the unit masked fails at once, naming the masked unit" names_masked_unit $verb
    check "ksmctl $verb with the unit masked exits with status 3 (ksmctl(1)) (got $KSMCTL_STATUS)" \
        test "$KSMCTL_STATUS" = 3
done
check "the refused kicks left the host's run alone" test "$(knob run)" = 0
in_container systemctl unmask --runtime --quiet ksm-throttler

printf '[Service]\nExecStart=\nExecStart=/bin/false\nRestart=no\n' >"$UNIT_DROPIN"
in_container systemctl daemon-reload
check "with ExecStart=/bin/false, systemctl start ksm-throttler fails" bash -c "! nsenter -t $LEADER -a systemctl start ksm-throttler 2>/dev/null"
check "the unit is then failed" unit_is ActiveState failed
check "ksmctl kick with the unit failed returns at once: exit status 3 naming the failed unit" ksmctl_refuses kick failed
check "ksmctl status with the unit failed returns at once: exit status 3 naming the failed unit" ksmctl_refuses status failed

printf '[Unit]\nConditionPathExists=/nonexistent\n' >"$UNIT_DROPIN"
in_container systemctl daemon-reload
in_container systemctl reset-failed ksm-throttler
in_container systemctl start ksm-throttler  # succeeds: a condition not met skips the start
skipped_logged() { journal | grep -q 'ksm-throttler.service.*unmet condition check (ConditionPathExists=/nonexistent)'; }
check "with ConditionPathExists=/nonexistent, systemd skipped the start (journal: unmet condition check)" skipped_logged
check "the skipped unit is inactive" unit_is ActiveState inactive
echo "# the skipped unit: $(in_container systemctl show -p ConditionResult,ConditionTimestamp ksm-throttler | tr '\n' ' ')"
# systemd 252 unloads the skipped unit (no ConditionResult left) while the bus keeps waiting for
# the name: ksmctl finds the unit inactive with no start job for a few seconds and names its conditions.
skipped_activation_at=$SECONDS
for verb in kick status; do
    check "ksmctl $verb with the start skipped returns within 15 s: exit status 3 saying a condition was not met" \
        ksmctl_refuses $verb "skipped: a start condition was not met"
    check "ksmctl $verb with the start skipped names the unit's conditions (ConditionPathExists=/nonexistent)" \
        grep -qF "ConditionPathExists=/nonexistent" "$WORK/ksmctl.out"
done

rm -f "$UNIT_DROPIN"
in_container systemctl daemon-reload
# The bus waits for the skipped activation until its service_start_timeout (25 s) and a kick meanwhile
# joins it, even with the condition met again: no start job comes, and ksmctl says so at once.
check "with the condition met again while the bus still waits for the skipped activation, ksmctl kick returns within 15 s: exit status 3" \
    ksmctl_refuses kick "skipped: a start condition was not met"
wait_s=$((skipped_activation_at + 27 - SECONDS))
if [ $wait_s -gt 0 ]; then
    echo "# waiting $wait_s s for the bus to give up the skipped activation (service_start_timeout, 25 s)"
    sleep $wait_s
fi
ksmctl_kicks() { in_container timeout 15 ksmctl kick >"$WORK/ksmctl.out" 2>&1 || { sed 's/^/# ksmctl kick: /' "$WORK/ksmctl.out"; return 1; }; }
check "unmasked and the drop-ins gone, ksmctl kick bus-activates the service again" ksmctl_kicks
check "that kick reached the real $KSM (run=1)" test "$(knob run)" = 1
in_container systemctl stop ksm-throttler
check "systemctl stop after it restores the host's run" test "$(knob run)" = 0

# --- on-demand start under systemd -------------------------------------------
# IdleExitSec=200ms and a cycle of a few ms: each instance exits about 200 ms after a kick,
# and systemd starts the next one only once it is gone. Kicks swept across that moment
# (a kick that reaches an exiting instance is handed over through the runtime directory)
# must all succeed, and the host's values must be back after the last exit. The sweep
# starts the unit about once a second, past systemd's start rate limit (5 in 10 s), which
# real cycles of minutes never approach: lifted here for the unit.
mkdir -p "$ROOTFS/etc/ksm-throttler/ksm-throttler.conf.d"
IDLE_DROPIN=$ROOTFS/etc/ksm-throttler/ksm-throttler.conf.d/50-e2e-idle-exit.conf
IDLE_UNIT_DROPIN=$ROOTFS/etc/systemd/system/ksm-throttler.service.d/50-e2e-start-limit.conf
printf '[Throttler]\nIdleExitSec=200ms\nAdaptive=no\n[Aggressive]\nDurationSec=1ms\n[Standard]\nDurationSec=1ms\n[Slow]\nDurationSec=1ms\n' >"$IDLE_DROPIN"
printf '[Unit]\nStartLimitIntervalSec=0\n' >"$IDLE_UNIT_DROPIN"
in_container systemctl daemon-reload
in_container systemctl reset-failed ksm-throttler 2>/dev/null || true
idle_sweep() { # a kick, a second one 170-240 ms later (around the exit), then a pause for the exit
    local failed=0 i
    for i in $(seq 0 23); do
        in_container timeout 15 ksmctl kick >"$WORK/ksmctl.out" 2>&1 ||
            { failed=$((failed + 1)); sed 's/^/# ksmctl kick: /' "$WORK/ksmctl.out"; }
        sleep "0.$((170 + i * 3))"
        in_container timeout 15 ksmctl kick >"$WORK/ksmctl.out" 2>&1 ||
            { failed=$((failed + 1)); sed 's/^/# ksmctl kick: /' "$WORK/ksmctl.out"; }
        sleep 0.4
    done
    [ "$failed" = 0 ] || { echo "# $failed of 48 kicks failed"; return 1; }
}
throttler_log_count() { in_container journalctl --no-pager -o cat -u ksm-throttler | grep -c -- "$1" || true; }
exits_before=$(throttler_log_count 'Idle in initial for 200ms')
check "48 kicks swept across idle exits under systemd all succeed (ksmctl kick)" idle_sweep
idle_exited() {
    for _ in $(seq 100); do in_container systemctl is-active --quiet ksm-throttler || return 0; sleep 0.1; done; return 1
}
check "the throttler exits when idle under systemd" idle_exited
idle_exits=$(( $(throttler_log_count 'Idle in initial for 200ms') - exits_before ))
echo "# $idle_exits idle exits; $(throttler_log_count 'handed to the next instance through') raced kick(s) handed over, $(throttler_log_count 'handed over by the previous instance') applied"
check "the throttler exited when idle at least 20 times during the sweep ($idle_exits)" test "$idle_exits" -ge 20
check "no kick was relayed under systemd (that would wait for an instance systemd cannot start yet)" \
    test "$(throttler_log_count 'handed to the next instance;')" = 0
check "after the last idle exit the host's run is back" test "$(knob run)" = 0
check "after the last idle exit the host's sleep_millisecs is back" test "$(knob sleep_millisecs)" = 20
rm -f "$IDLE_DROPIN" "$IDLE_UNIT_DROPIN"
in_container systemctl daemon-reload


# --- the trigger, with the real systemd-machined and a real qemu ---------------
# Processes started in the container for these checks, stopped by their PID (container PIDs).
CONTAINER_PIDS=()
stop_container_pids() {
    local pid
    for pid in "${CONTAINER_PIDS[@]}"; do in_container kill -TERM "$pid" 2>/dev/null; done
    CONTAINER_PIDS=()
}
kick_count() {
    in_container busctl get-property org.kata.KsmThrottler /org/kata/KsmThrottler org.kata.KsmThrottler KickCount |
        sed -n 's/^t //p'
}
trigger_journal() { in_container journalctl --no-pager -o cat -u ksm-throttler-trigger; }
# wait_until SECONDS COMMAND...: true as soon as COMMAND is, false once SECONDS have passed.
wait_until() {
    local limit=$(($1 * 10)); shift
    for _ in $(seq "$limit"); do "$@" && return 0; sleep 0.1; done
    "$@"
}
kicks_above() { local n; n=$(kick_count) && [ -n "$n" ] && [ "$n" -gt "$1" ]; }
trigger_logged() { trigger_journal | grep -qF -- "$1"; }
# start_in_container UNIT COMMAND...: a transient service; its main PID in CONTAINER_PID.
start_in_container() {
    local unit=$1; shift
    CONTAINER_PID=""
    in_container systemd-run --quiet --unit="$unit" "$@" || return 1
    CONTAINER_PID=$(in_container systemctl show -p MainPID --value "$unit")
    [ -n "$CONTAINER_PID" ] && [ "$CONTAINER_PID" != 0 ] || return 1
    CONTAINER_PIDS+=("$CONTAINER_PID")
}
# register_machine NAME CLASS LEADER: RegisterMachine on the real machined, as libvirt does.
register_machine() {
    # shellcheck disable=SC2046 # 16 separate bytes of the machine's id
    in_container busctl call org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager \
        RegisterMachine sayssus "$1" 16 $(od -An -tu1 -N16 /dev/urandom) ksm-throttler-e2e "$2" "$3" / >"$WORK/register.out" 2>&1 ||
        { sed 's/^/# /' "$WORK/register.out"; return 1; }
}
test_knob() { [ "$(knob "$1")" = "$2" ]; }
has_cap() { # has_cap HEXMASK BIT
    (( (16#$1 >> $2) & 1 ))
}
cap_of() { in_container awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
CAP_NET_ADMIN=12

check "the container's bounding set has CAP_NET_ADMIN (nspawn --capability=CAP_NET_ADMIN)" \
    has_cap "$(cap_of 1 CapBnd)" $CAP_NET_ADMIN
check "ksm-throttler-trigger.service passes systemd-analyze verify inside the container" verify_clean ksm-throttler-trigger.service
exposure=$(in_container systemd-analyze security --no-pager ksm-throttler-trigger.service 2>&1 |
    sed -n 's/.*Overall exposure level for ksm-throttler-trigger.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security rates the trigger's unit at most 2.0 (${exposure:-no figure})" \
    awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'

check "the throttler is stopped before the trigger is enabled" not_running
check "systemctl enable --now ksm-throttler-trigger succeeds" in_container systemctl enable --quiet --now ksm-throttler-trigger
check "the trigger is active" in_container systemctl is-active --quiet ksm-throttler-trigger
check "the trigger's Wants= started the throttler" wait_until 10 in_container systemctl is-active --quiet ksm-throttler
trigger_pid=$(in_container systemctl show -p MainPID --value ksm-throttler-trigger)
trigger_caps=$(cap_of "${trigger_pid:-0}" CapEff)
check "the trigger runs with CAP_NET_ADMIN and nothing else (CapEff ${trigger_caps:-unknown})" \
    test "$(printf '%x' $((16#${trigger_caps:-0})))" = "$(printf '%x' $((1 << CAP_NET_ADMIN)))"
# Let the start-up settle: the trigger is ready once its sources are set up.
kicks=$(kick_count)

# Machines registered with the real systemd-machined, as libvirt and nspawn do.
machine_kicks() { # NAME KICKS_BEFORE: a kick, and the trigger's journal names the machine and its class
    local name=$1 before=$2
    check "registering $name with systemd-machined kicks the throttler (KickCount above $before)" wait_until 10 kicks_above "$before"
    check "the trigger's journal says \"machine $name (vm) registered\"" \
        wait_until 5 trigger_logged "machined: machine $name (vm) registered"
}
vm1=e2e-vm-$$-1 vm2=e2e-vm-$$-2
if start_in_container fake-vm-1 sleep 300 && register_machine "$vm1" vm "$CONTAINER_PID"; then
    machine_kicks "$vm1" "$kicks"
else
    fail "RegisterMachine $vm1 with the real systemd-machined"
fi
# A restarted machined (new unique name on the bus) is still heard.
in_container systemctl restart systemd-machined
kicks=$(kick_count)
if start_in_container fake-vm-2 sleep 300 && register_machine "$vm2" vm "$CONTAINER_PID"; then
    machine_kicks "$vm2" "$kicks"
else
    fail "RegisterMachine $vm2 with systemd-machined after its restart"
fi

# The throttler gone (stopped, or exited idle): the trigger's next kick bus-activates it, and
# the kick is not lost on the way (a retry if the new instance is not serving yet).
in_container systemctl stop ksm-throttler
vm3=e2e-vm-$$-3
if start_in_container fake-vm-3 sleep 300 && register_machine "$vm3" vm "$CONTAINER_PID"; then
    check "with the throttler stopped, the trigger's kick for $vm3 bus-activates it" \
        wait_until 15 in_container systemctl is-active --quiet ksm-throttler
    check "the restarted throttler counts the trigger's kick (KickCount above 0)" wait_until 15 kicks_above 0
    check "the kick reached the real $KSM (run=1)" wait_until 5 test_knob run 1
else
    fail "RegisterMachine $vm3 with systemd-machined"
fi

# ksmctl top groups the savings by machine: a machine registered with machined shows up under
# its name. The place for that check, run as soon as ksmctl knows "top". It is given the qemu
# below, registered as a machine: its guest RAM is mergeable (qemu's mem-merge is on by default).
check_top_shows_machine() { # NAME
    if ! in_container ksmctl --help 2>&1 | grep -qw top; then
        skip_check "a machine registered with machined shows up under its name in ksmctl top" "ksmctl has no top yet"
        return
    fi
    check "a machine registered with machined ($1) shows up under its name in ksmctl top" \
        bash -c "nsenter -t $LEADER -a ksmctl top | grep -qw -- '$1'"
}

# A real hypervisor starting: the trigger hears of its exec from the kernel's process events.
qemu=/usr/bin/qemu-system-x86_64
kicks=$(kick_count)
if start_in_container e2e-qemu $qemu -machine none -m 64 -display none -nodefaults -S; then
    qemu_pid=$CONTAINER_PID
    # The kernel answers a process-events subscription only from the initial PID and user
    # namespaces; nspawn always gives the container its own PID namespace.
    if [ "$(readlink /proc/self/ns/pid)" != "$(in_container readlink /proc/self/ns/pid)" ] &&
       ! wait_until 5 trigger_logged "exec of $qemu pid $qemu_pid"; then
        skip_check "the exec of $qemu kicks the throttler" \
            "the kernel sends process events only to listeners in the initial PID namespace, and the container has its own"
    else
        check "the trigger's journal says \"exec of $qemu pid $qemu_pid\"" wait_until 10 trigger_logged "exec of $qemu pid $qemu_pid"
        check "the exec of $qemu kicks the throttler (KickCount above $kicks)" wait_until 10 kicks_above "$kicks"
    fi
    check "qemu-system-x86_64 is still running in the container (PID $qemu_pid)" in_container systemctl is-active --quiet e2e-qemu
    # Registered as libvirt would: a machine whose leader is a real hypervisor.
    vmq=e2e-qemu-$$
    kicks=$(kick_count)
    if register_machine "$vmq" vm "$qemu_pid"; then
        machine_kicks "$vmq" "$kicks"
        check_top_shows_machine "$vmq"
    else
        fail "RegisterMachine $vmq (qemu, PID $qemu_pid) with systemd-machined"
    fi
    # Events that do reach the container carry host PIDs: none may be taken for a process here.
    only_qemu_exec() {
        local other
        other=$(trigger_journal | grep -o 'exec of .* pid [0-9]*' | grep -vx -- "exec of $qemu pid $qemu_pid")
        [ -z "$other" ] || { sed 's/^/# reported: /' <<<"$other"; return 1; }
    }
    check "the trigger reports no exec but qemu's (no host PID taken for a container's process)" only_qemu_exec
else
    fail "qemu-system-x86_64 starts in the container"
fi
stop_container_pids

in_container systemctl stop ksm-throttler-trigger ksm-throttler
check "stopping the trigger and the throttler restores the host's run" test "$(knob run)" = 0
check "stopping the trigger and the throttler restores the host's sleep_millisecs" test "$(knob sleep_millisecs)" = 20

echo "# checks done after $SECONDS s"
echo "1..$((n_passed + n_failed))"
if [ $n_failed -gt 0 ]; then
    echo "# journal of the container:"; journal | sed 's/^/#   /'
    exit 1
fi
