#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`ksmctl metrics` read by its real consumer: Debian's prometheus-node-exporter
with only its textfile collector, on a loopback port, scraped over HTTP. The
real daemon runs on a private bus with a fake KSM directory and is kicked on
behalf of two applications, so that the throttler's families are all there.
Every sample the file holds must come back with its value (the kicks by
origin and the time per state checked by name), and
node_textfile_scrape_error must be 0. The text also passes
`promtool check metrics` (Debian's prometheus package). Reads the real KSM's
counters, writes nothing to it. Prints TAP; skips where node_exporter is not
installed.

Usage: test-node-exporter.py KSMCTL VM_STANDIN KSM_THROTTLER
"""
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from private_bus import start_bus, start_throttler, stop
from tap import ok, print_results

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMTOOL = "/usr/bin/promtool"

ksmctl, standin, daemon = sys.argv[1], sys.argv[2], sys.argv[3]



def samples(text):
    """{(name, labels): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        out[series] = float(value)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url, exporter, deadline):
    while True:
        if exporter.poll() is not None:
            raise RuntimeError(f"node_exporter exited with {exporter.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_daemon(root):
    """A private bus and the real daemon on it, with a fake KSM directory.
    Returns (bus, daemon, environment for clients)."""
    ksm = os.path.join(root, "ksm")
    os.makedirs(ksm)
    os.makedirs(os.path.join(root, "run"))
    for name, value in {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20", "pages_sharing": "30",
                        "pages_shared": "3", "general_profit": "123456", "full_scans": "7"}.items():
        with open(os.path.join(ksm, name), "w") as f:
            f.write(value + "\n")
    with open(os.path.join(root, "meminfo"), "w") as f:
        f.write("MemTotal: 8388608 kB\nAnonPages: 1048576 kB\n")
    with open(os.path.join(root, "ksm-throttler.conf"), "w") as f:
        f.write("[Aggressive]\nDurationSec=1h\n")
    bus, address = start_bus(root)
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
    try:
        throttler = start_throttler(daemon, ksmctl, root, ksm, env)
    except RuntimeError:
        stop(bus)
        raise
    return bus, throttler, env


def main():
    if not os.access(NODE_EXPORTER, os.X_OK):
        print("1..0 # SKIP prometheus-node-exporter is not installed")
        return

    textdir = tempfile.mkdtemp(prefix="ksm-metrics-test.")
    daemondir = tempfile.mkdtemp(prefix="ksm-metrics-daemon.")
    exporter = bus = throttler = None
    # A process with 16 MiB of mergeable memory, so that a per-VM series exists.
    vm = subprocess.Popen([standin, "--mib", "16"], stdout=subprocess.PIPE, text=True)
    try:
        if vm.stdout.readline().strip() != "ready":
            raise RuntimeError("vm-standin did not start")
        bus, throttler, env = start_daemon(daemondir)
        for app in ("org.libvirt.hook", "kata-runtime", "org.libvirt.hook"):
            out = subprocess.run([ksmctl, "kick", f"--app-id={app}"], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"ksmctl kick --app-id={app} failed: {out.stderr}")
        prom = os.path.join(textdir, "ksm-throttler.prom")
        out = subprocess.run([ksmctl, "metrics", f"--output={prom}"], env=env, capture_output=True, text=True)
        ok(out.returncode == 0, "ksmctl metrics --output exits 0", out.stderr)
        ok(os.listdir(textdir) == ["ksm-throttler.prom"], "only the finished file is left in the directory",
           str(os.listdir(textdir)))
        ok(os.stat(prom).st_mode & 0o777 == 0o644, "the file is readable by node_exporter's user",
           oct(os.stat(prom).st_mode))
        with open(prom) as f:
            written = samples(f.read())
        ok("ksm_general_profit_bytes" in written and written.get("ksm_throttler_up") == 1.0
           and "ksm_accounting_groups" in written,
           "the file has the KSM, throttler (up) and accounting metrics", str(sorted(written)[:20]))
        origins = {k: v for k, v in written.items() if k.startswith("ksm_throttler_kicks_by_origin_total{")}
        ok(origins == {'ksm_throttler_kicks_by_origin_total{origin="org.libvirt.hook"}': 2.0,
                       'ksm_throttler_kicks_by_origin_total{origin="kata-runtime"}': 1.0},
           "the file counts the kicks by application ID", str(origins))
        states = {k: v for k, v in written.items() if k.startswith("ksm_throttler_state_seconds_total{")}
        ok(sorted(states) == sorted(f'ksm_throttler_state_seconds_total{{state="{s}"}}'
                                    for s in ("initial", "aggressive", "standard", "slow"))
           and states['ksm_throttler_state_seconds_total{state="initial"}'] > 0
           and states['ksm_throttler_state_seconds_total{state="standard"}'] == 0,
           "the file has the time in each of the four states (initial before the kicks, never standard)", str(states))

        if os.access(PROMTOOL, os.X_OK):
            check = subprocess.run([PROMTOOL, "check", "metrics"], input=open(prom).read(), capture_output=True, text=True)
            ok(check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(),
               "promtool check metrics finds nothing to complain about", check.stdout + check.stderr)
        else:
            ok(True, "promtool check metrics", skip="promtool (Debian's prometheus) is not installed")

        port = free_port()
        exporter = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                                     "--collector.disable-defaults", "--collector.textfile",
                                     f"--collector.textfile.directory={textdir}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        scraped = samples(scrape(f"http://127.0.0.1:{port}/metrics", exporter, time.monotonic() + 20))
        ok(scraped.get("node_textfile_scrape_error") == 0.0, "node_textfile_scrape_error is 0",
           f"node_textfile_scrape_error = {scraped.get('node_textfile_scrape_error')}")
        ok(any(k.startswith("node_textfile_mtime_seconds{") and "ksm-throttler.prom" in k for k in scraped),
           "node_exporter read ksm-throttler.prom", str([k for k in scraped if k.startswith("node_textfile")]))
        missing = [k for k in written if k not in scraped]
        ok(not missing, "every series in the file is served", str(missing))
        served = {k: scraped.get(k) for k in list(origins) + list(states)}
        ok(origins and states and all(scraped.get(k) == v for k, v in {**origins, **states}.items()),
           "node_exporter serves the kicks by origin and the time per state with their values", str(served))
        groups = {k: v for k, v in scraped.items() if k.startswith("ksm_group_mergeable_bytes{")}
        ok(any(v >= 16 << 20 for v in groups.values()), "the per-VM series carry the stand-in's 16 MiB", str(groups))
        wrong = {k: (v, scraped[k]) for k, v in written.items()
                 if k in scraped and not math.isclose(v, scraped[k], rel_tol=1e-9, abs_tol=1e-6)}
        ok(not wrong, "every served value is the one written", str(wrong))
    except (OSError, RuntimeError, ValueError) as e:
        ok(False, "the test ran to its end", repr(e))
    finally:
        stop(exporter)
        stop(throttler)
        stop(bus)
        vm.kill()
        vm.wait()
        shutil.rmtree(textdir, ignore_errors=True)
        shutil.rmtree(daemondir, ignore_errors=True)

    print_results()


if __name__ == "__main__":
    main()
