#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`ksmctl metrics` read by its real consumer: Debian's prometheus-node-exporter
with only its textfile collector, on a loopback port, scraped over HTTP. Every
sample the file holds must come back with its value, and
node_textfile_scrape_error must be 0. The text also passes
`promtool check metrics` (Debian's prometheus package). Reads KSM, writes
nothing to it. Prints TAP; skips where node_exporter is not installed.

Usage: test-node-exporter.py KSMCTL VM_STANDIN
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

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMTOOL = "/usr/bin/promtool"

ksmctl, standin = sys.argv[1], sys.argv[2]
results = []


def ok(cond, what, detail="", skip=None):
    results.append((bool(cond), what, detail, skip))


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


def main():
    if not os.access(NODE_EXPORTER, os.X_OK):
        print("1..0 # SKIP prometheus-node-exporter is not installed")
        return

    textdir = tempfile.mkdtemp(prefix="ksm-metrics-test.")
    exporter = None
    # A process with 16 MiB of mergeable memory, so that a per-VM series exists.
    vm = subprocess.Popen([standin, "--mib", "16"], stdout=subprocess.PIPE, text=True)
    try:
        if vm.stdout.readline().strip() != "ready":
            raise RuntimeError("vm-standin did not start")
        prom = os.path.join(textdir, "ksm-throttler.prom")
        out = subprocess.run([ksmctl, "metrics", f"--output={prom}"], capture_output=True, text=True)
        ok(out.returncode == 0, "ksmctl metrics --output exits 0", out.stderr)
        ok(os.listdir(textdir) == ["ksm-throttler.prom"], "only the finished file is left in the directory",
           str(os.listdir(textdir)))
        ok(os.stat(prom).st_mode & 0o777 == 0o644, "the file is readable by node_exporter's user",
           oct(os.stat(prom).st_mode))
        with open(prom) as f:
            written = samples(f.read())
        ok("ksm_general_profit_bytes" in written and "ksm_throttler_up" in written and "ksm_accounting_groups" in written,
           "the file has the KSM, throttler and accounting metrics", str(sorted(written)[:20]))

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
        groups = {k: v for k, v in scraped.items() if k.startswith("ksm_group_mergeable_bytes{")}
        ok(any(v >= 16 << 20 for v in groups.values()), "the per-VM series carry the stand-in's 16 MiB", str(groups))
        wrong = {k: (v, scraped[k]) for k, v in written.items()
                 if k in scraped and not math.isclose(v, scraped[k], rel_tol=1e-9, abs_tol=1e-6)}
        ok(not wrong, "every served value is the one written", str(wrong))
    except (OSError, RuntimeError, ValueError) as e:
        ok(False, "the test ran to its end", repr(e))
    finally:
        if exporter:
            exporter.terminate()
            try:
                exporter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                exporter.kill()
                exporter.wait()
        vm.kill()
        vm.wait()
        shutil.rmtree(textdir, ignore_errors=True)

    print(f"1..{len(results)}")
    for i, (good, what, detail, skip) in enumerate(results, 1):
        print(f"{'ok' if good else 'not ok'} {i} - {what}" + (f" # SKIP {skip}" if skip else ""))
        if not good and detail:
            for line in str(detail).splitlines():
                print(f"#   {line}")


if __name__ == "__main__":
    main()
