#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every configuration key, command-line option and ksmctl verb appears in its man page,
and every member of the D-Bus interface in org.kata.KsmThrottler(5).

The lists come from the code's own tables, read from the source: config_keys[] (and the
LEVEL_KEYS macro it expands) in src/config.c, the getopt tables of src/main.c,
tools/ksmctl.c and tools/trigger/main.c, verbs[] in tools/ksmctl.c, trigger_keys[] in
tools/trigger/trigger-config.c, and dbus/org.kata.KsmThrottler.xml. A table that yields
nothing is a failure, so that a change of its shape cannot make this test pass vacuously.
Output: TAP. Usage: test-man-complete.py SOURCE_ROOT"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

root = Path(sys.argv[1])
results = []


def source(path):
    return (root / path).read_text()


def table(path, start, end="};"):
    """The text of the C initializer that starts at the first line matching start."""
    text = source(path)
    match = re.search(start, text)
    if not match:
        raise SystemExit(f"Bail out! {path}: no table matching {start!r}")
    body = text[match.end():]
    return body[: body.index(end)]


def check(page, items, pattern, what):
    text = source(f"man/{page}.scd")
    if not items:
        results.append((False, f"{what}: found none in the code (table changed shape?)"))
        return
    for item in sorted(set(items)):
        needle = pattern.format(item)
        results.append((needle in text, f"{page} documents {what} {item} (as {needle!r})"))


# ksm-throttler: configuration keys (KEY("Section", "Key", ...), also inside LEVEL_KEYS).
config_c = source("src/config.c")
levels = re.search(r"#define LEVEL_KEYS\(.*?\n(?:.*\\\n)*.*\n", config_c)
keys = re.findall(r'KEY\((?:"\w+"|name),\s*"(\w+)"', table("src/config.c", r"config_keys\[\] = \{"))
keys += re.findall(r'KEY\(name,\s*"(\w+)"', levels.group(0) if levels else "")
check("ksm-throttler.conf.5", keys, "*{}=*", "the key")

# Command-line options: the getopt tables.
OPTION = r'\{\s*"([a-z][a-z-]*)",\s*(no|required|optional)_argument'
for program, path, page in [("ksm-throttler", "src/main.c", "ksm-throttler.8"),
                            ("ksmctl", "tools/ksmctl.c", "ksmctl.1"),
                            ("ksm-throttler-trigger", "tools/trigger/main.c", "ksm-throttler-trigger.8")]:
    options = [name for name, _ in re.findall(OPTION, table(path, r"struct option options\[[A-Z_]*\] = \{"))]
    check(page, options, "*--{}", f"the {program} option")

# The trigger's options made from its keys, and the keys themselves.
trigger = table("tools/trigger/trigger-config.c", r"const struct trigger_key trigger_keys\[\] = \{")
pairs = re.findall(r'\{\s*"(\w+)",\s*"([a-z-]+)"', trigger)
check("ksm-throttler-trigger.8", [o for _, o in pairs], "*--{}=*", "the ksm-throttler-trigger option")
check("trigger.conf.5", [k for k, _ in pairs], "*{}=*", "the key")

# ksmctl verbs.
verbs = re.findall(r'\{\s*"(\w+)",\s*verb_\w+', table("tools/ksmctl.c", r"\} verbs\[\] = \{"))
check("ksmctl.1", verbs, "*{}*", "the verb")

# The D-Bus interface: every method, property and signal.
xml = ET.parse(root / "dbus/org.kata.KsmThrottler.xml")
members = [e.get("name") for i in xml.iter("interface") if i.get("name") == "org.kata.KsmThrottler"
           for e in i if e.tag in ("method", "property", "signal")]
check("org.kata.KsmThrottler.5", members, "*{}", "the D-Bus member")

print(f"1..{len(results)}")
for n, (ok, description) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {n} - {description}")
sys.exit(0 if all(ok for ok, _ in results) else 1)
