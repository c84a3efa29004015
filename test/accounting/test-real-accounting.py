#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""On the real kernel: two stand-in VMs with mergeable guest RAM and one whose
guest RAM is MAP_SHARED (marked MADV_MERGEABLE, which the kernel ignores).
`ksmctl top` must attribute the savings to the right processes, within 2 % of
what their /proc/<pid>/ksm_stat says, and `ksmctl doctor` must name the shared
one as unmergeable. KSM is global: run serially (suite real-ksm, under
flock /tmp/ksm-real.lock); every knob is saved first and restored after, also
on failure. Prints TAP; skips where KSM is not writable.

Usage: test-real-accounting.py KSMCTL VM_STANDIN
"""
import fcntl
import json
import os
import subprocess
import sys
import time

from tap import ok, print_results

KSM = "/sys/kernel/mm/ksm"
# The order knobs are restored in: advisor_mode first (changing it resets
# pages_to_scan), run last (so that ksmd starts with the host's values).
FIRST, LAST = ["advisor_mode"], ["run"]

ksmctl, standin = sys.argv[1], sys.argv[2]



def knob_path(name):
    return os.path.join(KSM, name)


def read_knob(name):
    with open(knob_path(name)) as f:
        value = f.read().strip()
    if "[" in value:  # "[none] scan-time"
        value = value[value.index("[") + 1:value.index("]")]
    return value


def write_knob(name, value):
    with open(knob_path(name), "w") as f:
        f.write(str(value))


def save_knobs():
    saved = {}
    for name in sorted(os.listdir(KSM)):
        if os.stat(knob_path(name)).st_mode & 0o200:
            saved[name] = read_knob(name)
    return saved


def restore_knobs(saved):
    order = [n for n in FIRST if n in saved] + \
            [n for n in saved if n not in FIRST + LAST] + [n for n in LAST if n in saved]
    for name in order:
        try:
            if read_knob(name) != saved[name]:
                write_knob(name, saved[name])
        except OSError as e:
            # merge_across_nodes and max_page_sharing refuse changes while pages are shared.
            print(f"# warning: cannot restore {name}={saved[name]}: {e}", file=sys.stderr)


def ksm_stat(pid):
    stat = {}
    with open(f"/proc/{pid}/ksm_stat") as f:
        for line in f:
            key, _, value = line.replace(":", " ").partition(" ")
            stat[key] = value.strip()
    return stat


def start_standin(*args):
    p = subprocess.Popen([standin, *args], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "ready":
        p.kill()
        p.wait()
        raise RuntimeError(f"vm-standin {args} did not start: {line!r}")
    return p


def skip(reason):
    print(f"1..0 # SKIP {reason}")
    sys.exit(0)


LOCK = os.environ.get("KSM_THROTTLER_KSM_LOCK", "/tmp/ksm-real.lock")
LOCK_TIMEOUT = 600


def lock_holders(path):
    """The PIDs holding a flock on path, from /proc/locks (waiters are marked "->")."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].split(":")[-1] == str(inode):
            holders.append(int(fields[4]))
    return holders


def lock_holder(path):
    for pid in lock_holders(path):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
        except OSError:
            cmd = "?"
        return f"PID {pid} ({cmd})"
    return "nobody any more"


def lock_held_by_parent(path):
    """True when one of our ancestors holds the lock, as in
    `flock /tmp/ksm-real.lock tools/dev test`: waiting for it would never end."""
    holders = set(lock_holders(path))
    pid = os.getppid()
    while pid > 1:
        if pid in holders:
            return True
        try:
            with open(f"/proc/{pid}/status") as f:
                pid = next(int(l.split()[1]) for l in f if l.startswith("PPid:"))
        except (OSError, StopIteration, ValueError):
            return False
    return False


def take_real_ksm_lock():
    """Takes the lock every user of the real /sys/kernel/mm/ksm takes (see
    test/e2e/ksm-lock.sh); returns its file, kept open until exit, or None when
    a parent holds it already. Skips after LOCK_TIMEOUT seconds."""
    f = open(LOCK, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return f
    except BlockingIOError:
        pass
    if lock_held_by_parent(LOCK):
        f.close()
        return None
    print(f"# waiting for {LOCK} (up to {LOCK_TIMEOUT} s): held by {lock_holder(LOCK)}", file=sys.stderr)
    deadline = time.monotonic() + LOCK_TIMEOUT
    while time.monotonic() < deadline:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            time.sleep(0.5)
    holder = lock_holder(LOCK)
    f.close()
    skip(f"{LOCK} still held after {LOCK_TIMEOUT} s by {holder}")


def main():
    if os.geteuid() != 0 or not os.access(knob_path("run"), os.W_OK):
        skip("needs root and a writable /sys/kernel/mm/ksm")
    if not os.path.exists("/proc/self/ksm_stat"):
        skip("this kernel has no /proc/<pid>/ksm_stat")
    lock = take_real_ksm_lock()  # noqa: F841 -- held until the process exits

    saved = save_knobs()
    procs = []
    try:
        a = start_standin("--mib", "32", "--pattern", "0x11")
        b = start_standin("--mib", "48", "--pattern", "0x22")
        shared = start_standin("--mib", "128", "--shared", "--comm", "qemu-system-x86")
        procs = [a, b, shared]

        if "advisor_mode" in saved:
            write_knob("advisor_mode", "none")
        write_knob("pages_to_scan", 20000)
        write_knob("sleep_millisecs", 1)
        write_knob("run", 1)
        want = {a.pid: 32 * 256, b.pid: 48 * 256}  # 4 KiB pages
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(int(ksm_stat(pid)["ksm_merging_pages"]) >= 0.95 * n for pid, n in want.items()):
                break
            time.sleep(0.2)
        # Stop ksmd, keeping what it merged, so that the figures hold still while compared.
        write_knob("run", 0)
        merged = {pid: int(ksm_stat(pid)["ksm_merging_pages"]) for pid in want}
        ok(all(merged[pid] >= 0.95 * n for pid, n in want.items()),
           "ksmd merged the two stand-ins' guest RAM", f"merging pages {merged}, wanted ≥95 % of {want}")

        out = subprocess.run([ksmctl, "top", "--per-process", "--json"], capture_output=True, text=True)
        ok(out.returncode == 0, "ksmctl top --per-process --json exits 0", out.stderr)
        rows = {row["pid"]: row for row in json.loads(out.stdout or "{}").get("groups", [])}
        for pid in want:
            stat = ksm_stat(pid)
            row = rows.get(pid)
            ok(row is not None, f"ksmctl top has a row for stand-in {pid}", f"rows for pids {sorted(rows)}")
            if row is None:
                continue
            for field, key in (("profit_bytes", "ksm_process_profit"), ("merging_pages", "ksm_merging_pages")):
                truth = int(stat[key])
                ok(truth > 0 and abs(row[field] - truth) <= 0.02 * truth,
                   f"stand-in {pid}: top's {field} is within 2 % of ksm_stat's {key}",
                   f"top says {row[field]}, ksm_stat says {truth}")
            ok(row["mergeable_bytes"] is not None and row["merged_share"] is not None and row["merged_share"] > 0.9,
               f"stand-in {pid}: its mergeable memory is known and mostly merged",
               f"mergeable_bytes {row['mergeable_bytes']}, merged_share {row['merged_share']}")
        row = rows.get(shared.pid)
        ok(row is not None and row["profit_bytes"] == 0 and row["mergeable_bytes"] == 0,
           "the shared-RAM VM is listed and saves nothing", f"its row: {row}")
        order = [r["pid"] for r in json.loads(out.stdout)["groups"]]
        ok(order.index(b.pid) < order.index(a.pid) < order.index(shared.pid),
           "rows are sorted by profit: 48 MiB stand-in, 32 MiB stand-in, then the shared one", f"order {order}")

        out = subprocess.run([ksmctl, "doctor", "--json"], capture_output=True, text=True)
        ok(out.returncode == 1, "ksmctl doctor exits 1 when a VM can never merge", f"exit {out.returncode}: {out.stderr}")
        report = json.loads(out.stdout or "{}")
        bad = [f for f in report.get("findings", []) if f["check"] == "guest_ram" and f["verdict"] == "fail"]
        ok([f.get("pid") for f in bad] == [shared.pid],
           "doctor names exactly the shared-RAM VM as unmergeable", json.dumps(bad))
        ok(bad and "qemu-system-x86" in bad[0]["message"] and "MAP_SHARED" in bad[0]["message"],
           "the sentence names the VM and says why", bad[0]["message"] if bad else "")
        out = subprocess.run([ksmctl, "doctor"], capture_output=True, text=True)
        ok(f"(pid {shared.pid})" in out.stdout and "FAIL  guest_ram" in out.stdout,
           "the text form says it too", out.stdout)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        ok(False, "the test ran to its end", repr(e))
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        restore_knobs(saved)

    after = save_knobs()
    changed = {k: (saved[k], after.get(k)) for k in saved if after.get(k) != saved[k]}
    ok(not changed, "every KSM knob is back to its value before the test", str(changed))

    print_results()


if __name__ == "__main__":
    main()
