#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The deployment examples parse and ask for no more than they need: the
Kubernetes manifest with python3-yaml, the systemd units with
`systemd-analyze verify` (ExecStart= pointed at the built ksmctl), the
MemoryKSM= drop-in as an INI file. Prints TAP.

Usage: test-examples.py SOURCE_ROOT KSMCTL
"""
import configparser
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

from tap import ok, print_results

root, ksmctl = sys.argv[1], sys.argv[2]
examples = os.path.join(root, "examples")



def unit_file(path):
    # systemd allows repeated keys (Condition*=): the last one read stands for them here.
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(path)
    return p


def check_manifests():
    files = sorted(glob.glob(os.path.join(examples, "**", "*.yaml"), recursive=True))
    ok(files, "there are Kubernetes manifests under examples/", examples)
    daemonsets = {}
    for path in files:
        try:
            with open(path) as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            ok(False, f"{os.path.relpath(path, root)} parses", str(e))
            continue
        ok(docs and all({"apiVersion", "kind", "metadata"} <= d.keys() for d in docs),
           f"{os.path.relpath(path, root)} parses into objects with apiVersion, kind and metadata")
        for d in docs:
            if d["kind"] == "DaemonSet":
                daemonsets[d["metadata"]["name"]] = d

    ok(set(daemonsets) == {"ksm-throttler", "ksm-throttler-trigger"},
       "the throttler and its trigger each run as a DaemonSet", str(sorted(daemonsets)))
    for name, ds in daemonsets.items():
        spec = ds["spec"]["template"]["spec"]
        ok(ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items(),
           f"{name}: the selector matches the pod template's labels")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            caps = sc.get("capabilities", {})
            ok(caps.get("drop") == ["ALL"] and not sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False,
               f"{name}: drops every capability, is not privileged, cannot escalate", str(sc))
            want = ["NET_ADMIN"] if name == "ksm-throttler-trigger" else []
            ok(caps.get("add", []) == want, f"{name}: adds exactly {want or 'no capability'}", str(caps))
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            ok("/run/dbus/system_bus_socket" in mounts, f"{name}: reaches the host's system bus", str(sorted(mounts)))
            volumes = {v["name"] for v in spec.get("volumes", [])}
            ok({m["name"] for m in mounts.values()} <= volumes, f"{name}: every mount has its volume")
            if name == "ksm-throttler":
                ok("/sys/kernel/mm/ksm" in mounts and not mounts["/sys/kernel/mm/ksm"].get("readOnly"),
                   f"{name}: can write /sys/kernel/mm/ksm")
        host_ns = (spec.get("hostPID", False), spec.get("hostNetwork", False))
        want_ns = (True, True) if name == "ksm-throttler-trigger" else (False, False)
        ok(host_ns == want_ns, f"{name}: host PID and network namespaces only where process events need them",
           f"hostPID, hostNetwork = {host_ns}")


def check_units():
    service = os.path.join(examples, "systemd", "ksm-throttler-metrics.service")
    timer = os.path.join(examples, "systemd", "ksm-throttler-metrics.timer")
    svc = unit_file(service)
    exec_start = svc["Service"]["ExecStart"]
    ok(" metrics --output=" in exec_start, "the service writes the metrics file atomically with --output", exec_start)
    ok(svc["Service"].get("ProtectProc", "default") == "default",
       "the service keeps /proc visible (ProtectProc=invisible would hide the VMs)")
    ok(set(svc["Service"]["CapabilityBoundingSet"].split()) <= {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"},
       "the service keeps only the capabilities that read other processes' KSM figures")
    tmr = unit_file(timer)
    ok("OnUnitActiveSec" in tmr["Timer"] and tmr["Install"]["WantedBy"] == "timers.target",
       "the timer repeats and can be enabled")

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        ok(True, "systemd-analyze verify", skip="systemd-analyze is not installed")
        return
    with tempfile.TemporaryDirectory(prefix="ksm-examples.") as tmp:
        for path in (service, timer):
            with open(path) as f:
                text = f.read().replace("/usr/bin/ksmctl", os.path.abspath(ksmctl))
            with open(os.path.join(tmp, os.path.basename(path)), "w") as f:
                f.write(text)
        out = subprocess.run([analyze, "verify", "--man=no", "ksm-throttler-metrics.service", "ksm-throttler-metrics.timer"],
                             cwd=tmp, capture_output=True, text=True)
        ok(out.returncode == 0 and not out.stderr.strip(), "systemd-analyze verify accepts the service and the timer",
           out.stdout + out.stderr)


def check_dropin():
    dropin = unit_file(os.path.join(examples, "systemd", "memory-ksm.conf"))
    ok(dropin.sections() == ["Service"] and dict(dropin["Service"]) == {"MemoryKSM": "yes"},
       "the drop-in sets MemoryKSM=yes and nothing else", str({s: dict(dropin[s]) for s in dropin.sections()}))


def main():
    for check in (check_manifests, check_units, check_dropin):
        try:
            check()
        except (OSError, KeyError, configparser.Error) as e:
            ok(False, f"{check.__name__} ran to its end", repr(e))
    print_results()


if __name__ == "__main__":
    main()
