#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Used by test/bench/trigger-latency-machined: on the system bus of the end-to-end container
(reached from the host through /proc/PID/root), registers a machine with the real
systemd-machined N times and prints, one line per sample, the milliseconds from just before
RegisterMachine to ksm-throttler's State becoming "aggressive" (its PropertiesChanged signal).
Between samples the daemon decays back to "initial" and the machine is unregistered.

  machined-latency.py BUS_ADDRESS LEADER_PID SAMPLES SPACING_SECONDS
"""
import os
import random
import sys
import time

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

THROTTLER, PATH, IFACE = "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler"
MACHINED, MACHINED_PATH, MANAGER = "org.freedesktop.machine1", "/org/freedesktop/machine1", \
    "org.freedesktop.machine1.Manager"


class Watch:
    """The daemon's State as its PropertiesChanged signals say; the first time each state was
    entered since reset() is taken when the signal arrives."""

    def __init__(self, bus):
        self.loop = GLib.MainLoop()
        self.seen = {}
        bus.add_signal_receiver(self.on_changed, "PropertiesChanged", "org.freedesktop.DBus.Properties",
                                THROTTLER, PATH)
        self.state = str(bus.get_object(THROTTLER, PATH).Get(IFACE, "State",
                                                             dbus_interface="org.freedesktop.DBus.Properties"))

    def on_changed(self, iface, changed, _invalidated):
        if iface == IFACE and "State" in changed:
            self.state = str(changed["State"])
            self.seen.setdefault(self.state, time.monotonic())
            self.loop.quit()

    def reset(self):
        self.seen = {}

    def run_for(self, seconds):
        timer = GLib.timeout_add(max(1, int(seconds * 1000)), self._timeout)
        self.timed_out = False
        self.loop.run()
        if not self.timed_out:
            GLib.source_remove(timer)

    def _timeout(self):
        self.timed_out = True
        self.loop.quit()
        return False

    def wait_for_state(self, state, timeout):
        """True once State is state, False after timeout."""
        end = time.monotonic() + timeout
        while self.state != state and time.monotonic() < end:
            self.run_for(end - time.monotonic())
        return self.state == state

    def wait_for_entered(self, state, timeout):
        """Monotonic time at which State became state since reset(), None after timeout."""
        end = time.monotonic() + timeout
        while state not in self.seen and time.monotonic() < end:
            self.run_for(end - time.monotonic())
        return self.seen.get(state)

    def idle(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.run_for(end - time.monotonic())


def main():
    address, leader, samples, spacing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    watch = Watch(bus)
    manager = dbus.Interface(bus.get_object(MACHINED, MACHINED_PATH), MANAGER)
    errors = []
    for i in range(samples):
        if not watch.wait_for_state("initial", 30):
            sys.exit("machined-latency: the daemon did not return to initial (State %s)" % watch.state)
        # More than the trigger's debounce interval since the last event: each one is a leading edge.
        watch.idle(spacing + random.uniform(0, 0.2))
        if watch.state != "initial":
            sys.exit("machined-latency: State became %s with no machine registered" % watch.state)
        name = "bench-%d-%d" % (os.getpid(), i)
        machine_id = dbus.Array([dbus.Byte(b) for b in os.urandom(16)], signature="y")
        watch.reset()
        t0 = time.monotonic()
        # Asynchronous, so that the signal is timestamped when it arrives, not after the reply.
        manager.RegisterMachine(name, machine_id, "ksm-throttler-bench", "vm", dbus.UInt32(leader), "/",
                                reply_handler=lambda *_: None, error_handler=errors.append)
        t1 = watch.wait_for_entered("aggressive", 15)
        if errors:
            sys.exit("machined-latency: RegisterMachine %s: %s" % (name, errors[0]))
        if t1 is None:
            sys.exit("machined-latency: no aggressive state within 15 s of registering %s" % name)
        print("%.3f" % ((t1 - t0) * 1000), flush=True)
        manager.UnregisterMachine(name)


if __name__ == "__main__":
    main()
