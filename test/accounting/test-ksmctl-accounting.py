#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ksmctl top, doctor and metrics as a user runs them:
* on a bus without machined, a process with mergeable memory is grouped as a
  process or unit and top still works (a machine registered with the real
  systemd-machined is checked in the end-to-end suite, test/e2e/run.sh);
* doctor's verdicts and exit status, and the metrics, on fake /proc and /sys
  trees (--proc-dir, --sys-dir);
* top --watch refreshes until SIGINT and exits 0;
* with the real daemon on a private bus and a fake KSM directory, after a
  kick, metrics shows it up, in aggressive (one-hot), one kick and the knobs
  it applied, and doctor its state;
* a daemon older than KicksByOrigin and TimeInStateUSec (a stand-in that
  answers Get of them as sd-bus does, UnknownProperty) still gives every
  other throttler series, and status shows the two as null;
* usage errors exit 2, failures to read or write exit 1.
Never writes the real KSM. Prints TAP.

Usage: test-ksmctl-accounting.py KSMCTL VM_STANDIN KSM_THROTTLER
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from private_bus import start_bus, start_throttler, stop
from tap import ok, print_results

ksmctl, standin, daemon = sys.argv[1], sys.argv[2], sys.argv[3]



def run(*args, env=None):
    return subprocess.run([ksmctl, *args], capture_output=True, text=True, env=env, timeout=60)


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)


def fake_process(proc, pid, comm, stat, smaps="", cgroup="0::/\n"):
    write(proc, f"{pid}/comm", comm + "\n")
    write(proc, f"{pid}/ksm_stat", stat)
    write(proc, f"{pid}/cgroup", cgroup)
    write(proc, f"{pid}/cmdline", "")
    write(proc, f"{pid}/smaps", smaps)


def ksm_stat(merging, mergeable):
    return (f"ksm_rmap_items {merging}\nksm_zero_pages 0\nksm_merging_pages {merging}\n"
            f"ksm_process_profit {merging * 4096 - merging * 64}\nksm_merge_any: no\nksm_mergeable: {mergeable}\n")


def fake_sys(sysdir, run_value):
    knobs = {"run": run_value, "use_zero_pages": "1", "merge_across_nodes": "1", "advisor_mode": "[none] scan-time",
             "general_profit": "123456", "pages_sharing": "30", "pages_shared": "3", "full_scans": "7"}
    for name, value in knobs.items():
        write(sysdir, f"kernel/mm/ksm/{name}", value + "\n")
    write(sysdir, "kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n")
    write(sysdir, "devices/system/node/has_memory", "0\n")


def test_without_machined(tmp):
    bus = vm = None
    try:
        vm = subprocess.Popen([standin, "--mib", "8"], stdout=subprocess.PIPE, text=True)
        if vm.stdout.readline().strip() != "ready":
            raise RuntimeError("vm-standin did not start")
        bus, address = start_bus(tmp)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        out = run("top", "--json", env=env)
        groups = json.loads(out.stdout or "{}").get("groups", [])
        mine = [g for g in groups if g["pid"] == vm.pid]
        ok(out.returncode == 0 and mine and mine[0]["kind"] != "machine",
           "without machined a process with mergeable memory is not taken for a machine, and top still works",
           f"{out.stderr} {mine}")
    finally:
        stop(bus)
        if vm:
            vm.kill()
            vm.wait()


def test_fake_trees(tmp):
    proc, sysdir = os.path.join(tmp, "proc"), os.path.join(tmp, "sys")
    shared = ("7f0000000000-7f0010000000 rw-s 00000000 00:01 9 /memfd:guest-ram (deleted)\n"
              "Size: 262144 kB\nRss: 262144 kB\nVmFlags: rd wr sh mr mw me ms \n")
    mergeable = "7f0000000000-7f0004000000 rw-p 00000000 00:00 0 \nRss: 65536 kB\nVmFlags: rd wr mg \n"
    fake_process(proc, 10, "qemu-system-x86", ksm_stat(1000, "yes"), mergeable,
                 "0::/machine.slice/machine-good.scope\n")
    write(proc, "33/stat", "33 (ksmd) S 2 0 0 0 -1 0 0 0 0 0 300 100 0 0 25 5 1 0\n")
    fake_sys(sysdir, "1")
    paths = [f"--proc-dir={proc}", f"--sys-dir={sysdir}"]
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/bus")

    out = run("doctor", "--json", *paths, env=env)
    report = json.loads(out.stdout or "{}")
    verdicts = {f["check"]: f["verdict"] for f in report.get("findings", [])}
    ok(out.returncode == 0 and report.get("verdict") == "warning",
       "doctor exits 0 when nothing fails (the unreachable throttler only warns)",
       f"exit {out.returncode}: {out.stdout} {out.stderr}")
    ok(verdicts.get("guest_ram") == "ok" and verdicts.get("mergeable") == "ok" and verdicts.get("run") == "ok",
       "doctor reads the fake trees: a mergeable VM, ksmd running", str(verdicts))

    fake_process(proc, 20, "qemu-system-x86", ksm_stat(0, "no"), shared, "0::/machine.slice/machine-vfs.scope\n")
    out = run("doctor", *paths, env=env)
    ok(out.returncode == 1, "doctor exits 1 once a VM's guest RAM is shared", f"exit {out.returncode}")
    ok("FAIL  guest_ram" in out.stdout and "machine vfs (pid 20)" in out.stdout and "good" not in
       [l for l in out.stdout.splitlines() if "guest_ram" in l][0],
       "the text names the shared VM, and only it", out.stdout)

    out = run("metrics", *paths, env=env)
    lines = out.stdout.splitlines()
    ok(out.returncode == 0 and "ksm_throttler_up 0" in lines and "ksm_general_profit_bytes 123456" in lines
       and "ksm_ksmd_cpu_seconds_total 4.00" in lines,
       "metrics reads the fake trees (ksmd's 400 ticks at 100 Hz)", out.stdout + out.stderr)
    ok('ksm_group_profit_bytes{kind="machine",name="good"} 4032000' in lines,
       "the machine's profit is a labelled series", "\n".join(l for l in lines if l.startswith("ksm_group")))

    out = run("top", *paths, env=env)
    table = out.stdout.splitlines()
    ok(out.returncode == 0 and table[0].split() == ["KIND", "NAME", "PROCS", "PROFIT/MiB", "SAVED/MiB", "MERGE/MiB", "MERGED"]
       and table[1].split()[:3] == ["machine", "good", "1"] and table[1].split()[-1] == "6.1%",
       "the table has a header and the machine's row, with its merged share (1000 of 16384 pages)", out.stdout)

    watch = subprocess.Popen([ksmctl, "top", "--json", "--watch=200ms", *paths], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    watch.send_signal(signal.SIGINT)
    stdout, stderr = watch.communicate(timeout=10)
    frames = [json.loads(l) for l in stdout.splitlines() if l.strip()]
    ok(watch.returncode == 0 and len(frames) >= 3 and all(f["groups"][0]["name"] == "good" for f in frames),
       "top --watch prints a fresh object every 200 ms and exits 0 on SIGINT",
       f"exit {watch.returncode}, {len(frames)} frames, {stderr}")


def test_with_daemon(tmp):
    root = os.path.join(tmp, "daemon")
    sysdir = os.path.join(root, "sys")
    fake_sys(sysdir, "0")
    # The host's use_zero_pages=0, which the cycle sets to 1 (UseZeroPages=yes in aggressive).
    for name, value in {"pages_to_scan": "100", "sleep_millisecs": "20", "use_zero_pages": "0", "ksm_zero_pages": "0"}.items():
        write(sysdir, f"kernel/mm/ksm/{name}", value + "\n")
    write(root, "meminfo", "MemTotal: 8388608 kB\nAnonPages: 1048576 kB\n")
    write(root, "ksm-throttler.conf", "")
    os.makedirs(os.path.join(root, "run"))
    bus = throttler = None
    try:
        bus, address = start_bus(root)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        throttler = start_throttler(daemon, ksmctl, root, f"{sysdir}/kernel/mm/ksm", env, stderr=subprocess.PIPE)
        out = run("kick", env=env)
        ok(out.returncode == 0, "root kicks the daemon", out.stderr)

        out = run("metrics", f"--sys-dir={sysdir}", env=env)
        lines = out.stdout.splitlines()
        want = ['ksm_throttler_up 1', 'ksm_throttler_state{state="initial"} 0', 'ksm_throttler_state{state="aggressive"} 1',
                'ksm_throttler_kicks_total 1', 'ksm_throttler_setting{knob="run"} 1',
                'ksm_throttler_setting{knob="sleep_millisecs"} 1']
        ok(out.returncode == 0 and all(w in lines for w in want),
           "metrics shows the daemon up, in aggressive, one kick and the knobs it applied",
           "missing: " + str([w for w in want if w not in lines]))
        ok('ksm_throttler_kicks_by_origin_total{origin="ksmctl"} 1' in lines
           and len([l for l in lines if l.startswith("ksm_throttler_state_seconds_total{")]) == 4,
           "metrics has the kick by ksmctl's default application ID and the time in each of the four states",
           "\n".join(l for l in lines if "kicks_by_origin" in l or "state_seconds" in l))
        out = run("status", env=env)
        ok(out.returncode == 0 and "Kicks by origin: ksmctl=1\n" in out.stdout, "status shows the kicks by origin",
           out.stdout + out.stderr)
        last = [float(l.split()[1]) for l in lines if l.startswith("ksm_throttler_last_kick_timestamp_seconds ")]
        ok(last and abs(last[0] - time.time()) < 120, "the last kick's time is now", str(last))

        out = run("doctor", "--json", f"--sys-dir={sysdir}", env=env)
        found = [f for f in json.loads(out.stdout or "{}").get("findings", []) if f["check"] == "throttler"]
        ok(found and found[0]["verdict"] == "ok" and found[0].get("state") == "aggressive",
           "doctor reports the daemon's state", str(found))
        found = [f for f in json.loads(out.stdout or "{}").get("findings", []) if f["check"] == "use_zero_pages"]
        ok(found and found[0]["verdict"] == "info" and found[0].get("use_zero_pages") == 0
           and found[0].get("throttler_use_zero_pages") == 1 and "the host's" in found[0]["message"],
           "doctor judges the host's use_zero_pages=0, not the 1 the throttler holds in aggressive", str(found))
    finally:
        stop(throttler)
        stop(bus)


# The interface as it was before KicksByOrigin and TimeInStateUSec, answering an unknown
# property the way sd-bus does.
OLDER_DAEMON = r"""
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
IFACE = "org.kata.KsmThrottler"
PROPS = {"State": dbus.String("standard"), "KickCount": dbus.UInt64(7),
         "LastKickUSec": dbus.UInt64(1700000000000000), "NextTransitionUSec": dbus.UInt64(0),
         "Settings": dbus.Dictionary({"run": dbus.UInt32(1), "pages_to_scan": dbus.UInt32(1000),
                                      "sleep_millisecs": dbus.UInt32(20)}, signature="sv"),
         "InitialSettings": dbus.Dictionary({"run": dbus.UInt32(0)}, signature="sv"),
         "Statistics": dbus.Dictionary({"general_profit": dbus.Int64(4096)}, signature="sx"),
         "LastKick": dbus.Struct((dbus.UInt64(1700000000000000), "", "ksmctl", "uid 0"), signature="tsss"),
         "Version": dbus.String("0.0.9")}

class Older(dbus.service.Object):
    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, name):
        if interface != IFACE or name not in PROPS:
            raise dbus.exceptions.DBusException(f"Unknown interface {interface} or property {name}.",
                                                name="org.freedesktop.DBus.Error.UnknownProperty")
        return PROPS[name]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return PROPS if interface == IFACE else {}

bus = dbus.SystemBus()
older = Older(bus, "/org/kata/KsmThrottler")
name = dbus.service.BusName("org.kata.KsmThrottler", bus)
print("ready", flush=True)
GLib.MainLoop().run()
"""


def test_with_older_daemon(tmp):
    root = os.path.join(tmp, "older")
    sysdir = os.path.join(root, "sys")
    fake_sys(sysdir, "1")
    bus = older = None
    try:
        bus, address = start_bus(root)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        older = subprocess.Popen(["/usr/bin/python3", "-c", OLDER_DAEMON], env=env, stdout=subprocess.PIPE, text=True)
        if older.stdout.readline().strip() != "ready":
            raise RuntimeError("the stand-in for an older daemon did not start")
        out = run("metrics", f"--sys-dir={sysdir}", env=env)
        lines = out.stdout.splitlines()
        want = ['ksm_throttler_up 1', 'ksm_throttler_state{state="standard"} 1', 'ksm_throttler_kicks_total 7',
                'ksm_throttler_setting{knob="pages_to_scan"} 1000', 'ksm_general_profit_bytes 123456']
        ok(out.returncode == 0 and all(w in lines for w in want),
           "metrics from an older daemon still has its state, kicks and knobs",
           f"exit {out.returncode}, missing: {[w for w in want if w not in lines]}\n{out.stderr}")
        ok(not any("kicks_by_origin" in l or "state_seconds" in l for l in lines),
           "and leaves out the kicks by origin and the time per state, which it does not publish",
           "\n".join(l for l in lines if "kicks_by_origin" in l or "state_seconds" in l))
        out = run("status", "--json", env=env)
        status = json.loads(out.stdout or "{}")
        ok(out.returncode == 0 and status.get("kick_count") == 7 and "kicks_by_origin" in status
           and status["kicks_by_origin"] is None and status.get("time_in_state_usec", 0) is None,
           "status --json of an older daemon shows kicks_by_origin and time_in_state_usec as null",
           f"exit {out.returncode}: {out.stdout} {out.stderr}")
    finally:
        stop(older)
        stop(bus)


def test_usage():
    for args in (["top", "--limit=0"], ["doctor", "--watch"], ["metrics", "--json"], ["kick", "--per-process"],
                 ["top", "--watch=1ms"], ["metrics", "--output="]):
        out = run(*args)
        ok(out.returncode == 2 and "Try 'ksmctl --help'" in out.stderr, f"ksmctl {' '.join(args)} is a usage error",
           f"exit {out.returncode}: {out.stderr}")


def test_errors():
    out = run("metrics", "--output=/nonexistent/dir/ksm.prom")
    ok(out.returncode == 1 and "cannot write /nonexistent/dir/ksm.prom" in out.stderr,
       "metrics says which file it cannot write and exits 1", f"exit {out.returncode}: {out.stderr}")
    out = run("top", "--proc-dir=/nonexistent/proc")
    ok(out.returncode == 1 and "cannot scan the processes in /nonexistent/proc" in out.stderr,
       "top says which /proc it cannot read and exits 1", f"exit {out.returncode}: {out.stderr}")


def main():
    tmp = tempfile.mkdtemp(prefix="ksmctl-accounting-test.")
    try:
        for test in (test_without_machined, test_fake_trees, test_with_daemon, test_with_older_daemon):
            try:
                test(tmp)
            except (OSError, RuntimeError, ValueError, KeyError, IndexError, subprocess.SubprocessError) as e:
                ok(False, f"{test.__name__} ran to its end", repr(e))
        test_usage()
        test_errors()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_results()


if __name__ == "__main__":
    main()
