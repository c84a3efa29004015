# SPDX-License-Identifier: Apache-2.0
"""What the Python tests of this directory share: a private system-like bus
(dbus-daemon with an open policy, on a socket in a temporary directory), the
real daemon on it, and stopping each process by its own handle."""
import os
import subprocess
import time

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
"""


def stop(p):
    """Stops p (a Popen) by its PID: SIGTERM, then SIGKILL after 10 s."""
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_bus(directory):
    """A private bus listening in directory. Returns (process, address)."""
    conf = os.path.join(directory, "bus.conf")
    with open(conf, "w") as f:
        f.write(BUS_CONFIG.format(dir=directory))
    bus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
    address = bus.stdout.readline().strip()
    if not address:
        stop(bus)
        raise RuntimeError("the private bus did not start")
    return bus, address


def start_throttler(daemon, ksmctl, root, ksm_dir, env, stderr=subprocess.DEVNULL):
    """The real daemon on env's bus with root/ksm-throttler.conf, root/meminfo and
    root/run, waited for until `ksmctl status` answers. Returns its Popen."""
    throttler = subprocess.Popen([daemon, f"--config={root}/ksm-throttler.conf", f"--ksm-dir={ksm_dir}",
                                  f"--meminfo={root}/meminfo", f"--runtime-dir={root}/run"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    deadline = time.monotonic() + 20
    while subprocess.run([ksmctl, "status"], env=env, capture_output=True).returncode != 0:
        if throttler.poll() is not None or time.monotonic() > deadline:
            stop(throttler)
            raise RuntimeError("the daemon did not come up on the private bus")
        time.sleep(0.1)
    return throttler
