#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A hostile local client of org.kata.KsmThrottler, for test-hostile.c.

Written with GDBus because sd-bus cannot build these messages: a Kick() whose
header carries unix fds while its body (no arguments) names none, and a
method_return nobody asked for.

  hostile-client.py fds COUNT NFDS
      sends COUNT Kick() calls, each carrying NFDS fds and flagged
      NO_REPLY_EXPECTED, then a Ping to the daemon (answered once it has read them all);
      prints "sent COUNT", then "ping ok" or "ping failed: ERROR".
  hostile-client.py forge UNIQUE-NAME FIRST LAST
      sends the daemon (UNIQUE-NAME) an unrequested method_return carrying an
      "authorized" polkit verdict (true, false, {}) for every reply serial
      FIRST..LAST, then a Ping; prints "forged N".
"""
import os
import resource
import sys

from gi.repository import Gio, GLib

NAME = "org.kata.KsmThrottler"
PATH = "/org/kata/KsmThrottler"


def connect():
    return Gio.bus_get_sync(Gio.BusType.SYSTEM, None)


def ping(bus, destination):
    try:
        bus.call_sync(destination, PATH, "org.freedesktop.DBus.Peer", "Ping", None, None,
                      Gio.DBusCallFlags.NONE, 60000, None)
        print("ping ok", flush=True)
    except GLib.Error as e:
        print("ping failed: %s" % e.message, flush=True)


def send_fds(count, nfds):
    # As many fds in flight as this user may have, to fill the daemon's table quickly.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bus = connect()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    sent = 0
    for _ in range(count):
        fds = Gio.UnixFDList.new()
        for _ in range(nfds):
            fds.append(null)
        m = Gio.DBusMessage.new_method_call(NAME, PATH, NAME, "Kick")
        m.set_unix_fd_list(fds)
        # No reply expected: the bus does not count these against its pending-reply limit.
        m.set_flags(Gio.DBusMessageFlags.NO_REPLY_EXPECTED)
        try:
            bus.send_message(m, Gio.DBusSendMessageFlags.NONE)
            sent += 1
        except GLib.Error as e:
            print("send failed: %s" % e.message, flush=True)
            break
    bus.flush_sync(None)
    print("sent %d" % sent, flush=True)
    ping(bus, NAME)


def forge(destination, first, last):
    bus = connect()
    n = 0
    for serial in range(first, last + 1):
        m = Gio.DBusMessage.new()
        m.set_message_type(Gio.DBusMessageType.METHOD_RETURN)
        m.set_flags(Gio.DBusMessageFlags.NO_REPLY_EXPECTED)
        m.set_destination(destination)
        m.set_reply_serial(serial)
        m.set_body(GLib.Variant("((bba{ss}))", ((True, False, {}),)))
        try:
            bus.send_message(m, Gio.DBusSendMessageFlags.NONE)
            n += 1
        except GLib.Error as e:
            print("send failed: %s" % e.message, flush=True)
            break
    bus.flush_sync(None)
    print("forged %d" % n, flush=True)
    ping(bus, destination)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "fds":
        send_fds(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "forge":
        forge(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
