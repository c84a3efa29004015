#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Compares the daemon's live introspection of org.kata.KsmThrottler (busctl, on the
bus in DBUS_SYSTEM_BUS_ADDRESS) with the interface XML shipped in dbus/."""
import subprocess
import sys
import xml.etree.ElementTree as ET

INTERFACE = "org.kata.KsmThrottler"
DEFAULT_EMITS = "true"


def describe(root):
    iface = next((i for i in root.iter("interface") if i.get("name") == INTERFACE), None)
    if iface is None:
        raise SystemExit(f"no interface {INTERFACE}")
    members = set()
    for element in iface:
        kind, name = element.tag, element.get("name")
        if kind == "property":
            emits = DEFAULT_EMITS
            for a in element.findall("annotation"):
                if a.get("name") == "org.freedesktop.DBus.Property.EmitsChangedSignal":
                    emits = a.get("value")
            members.add((kind, name, element.get("type"), element.get("access"), emits))
        elif kind in ("method", "signal"):
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "in" if kind == "method" else "out"))
                         for a in element.findall("arg"))
            members.add((kind, name, args))
    return members


def main():
    shipped = describe(ET.parse(sys.argv[1]).getroot())
    live_xml = subprocess.run(["busctl", "introspect", "--xml-interface", "org.kata.KsmThrottler",
                               "/org/kata/KsmThrottler"], check=True, capture_output=True, text=True).stdout
    live = describe(ET.fromstring(live_xml))
    if shipped != live:
        for m in sorted(shipped - live, key=str):
            print("only in the XML file:", m)
        for m in sorted(live - shipped, key=str):
            print("only in the live daemon:", m)
        return 1
    print(f"{len(live)} members match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
