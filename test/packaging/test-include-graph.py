#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The include graph stays as docs/design.md (Module graph) states it: the modules of
src/, lib/ and tools/ include each other without a cycle, the daemon's core includes
neither sd-bus.h nor the bus names, and the design document's table of what each module
includes is what the code includes, with a row for every module of src/ and lib/.

A module is a .c file and its .h, named without the extension. Output: TAP.
Usage: test-include-graph.py SOURCE_ROOT"""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1])
DIRS = ["src", "lib", "tools", "tools/trigger"]
# docs/design.md: "no module of the core, daemon down to fileio and the three helpers at
# the bottom, includes sd-bus.h or knows a bus name".
CORE = ["daemon", "config", "ini-file", "saved-state", "handover", "runtime-dir", "daemon-stats", "adaptive",
        "state-machine", "ksm", "proc", "fileio", "parse-util", "log", "fd-util"]
results = []


def check(description, ok, detail=""):
    results.append((ok, description, detail))


def includes(path):
    return re.findall(r'^#include\s+"([^"]+)"', path.read_text(), re.M)


# (directory, module) -> {"h": set of modules, "c": set of modules}, project includes only.
files = {}
for d in DIRS:
    for path in sorted((root / d).glob("*.[ch]")):
        if path.stem.startswith("test-"):
            continue
        files.setdefault((d, path.stem), {"h": set(), "c": set()})
names = {}
for d, m in files:
    names.setdefault(m, []).append(d)


def resolve(d, include):
    """The module an include names: the including file's own directory first, as the compiler does."""
    m = Path(include).stem
    dirs = names.get(m, [])
    if not dirs:
        return None
    return (d, m) if d in dirs else (dirs[0], m)


for d, m in files:
    for kind in ("h", "c"):
        path = root / d / f"{m}.{kind}"
        if not path.exists():
            continue
        for include in includes(path):
            target = resolve(d, include)
            if target and target != (d, m):
                files[(d, m)][kind].add(target)

check("modules were found in src/, lib/ and tools/", len(files) > 20, f"{len(files)} modules")

# No cycle: a depth-first search that meets a module still on its path has found one.
graph = {node: v["h"] | v["c"] for node, v in files.items()}
cycles = []
state = {}


def visit(node, path):
    state[node] = "open"
    for target in sorted(graph.get(node, ())):
        if state.get(target) == "open":
            cycles.append(path[path.index(target):] + [target])
        elif target not in state:
            visit(target, path + [target])
    state[node] = "done"


for node in sorted(graph):
    if node not in state:
        visit(node, [node])
check("the include graph of src/, lib/ and tools/ has no cycle", not cycles,
      "; ".join(" -> ".join(f"{d}/{m}" for d, m in c) for c in cycles))

for m in CORE:
    text = "".join((root / "src" / f"{m}.{kind}").read_text()
                   for kind in ("h", "c") if (root / "src" / f"{m}.{kind}").exists())
    check(f"src/{m} is found", bool(text))
    bad = re.findall(r'^#include\s+[<"](systemd/sd-bus\.h|bus-names\.h|ksmt-client\.h)[>"]', text, re.M)
    check(f"src/{m}, in the daemon's core, includes no bus header", not bad, ", ".join(bad))

# The design document's table: | `module` | header includes | .c also includes |
design = (root / "docs/design.md").read_text()
section = design[design.index("### Module graph"):]
section = section[:section.index("```")]
rows = {}
for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 3 or not cells[0].startswith("`"):
        continue
    for module in re.findall(r"`([^`]+)`", cells[0]):
        rows[module] = [set(Path(n).stem for n in re.findall(r"`([^`]+)`", cell)) for cell in cells[1:]]
check("the design document has a module table", len(rows) > 10, f"{len(rows)} rows")

for d in ("src", "lib"):
    for (fd, m), inc in sorted(files.items()):
        if fd != d:
            continue
        key = m if d == "src" else f"lib/{m}"
        if key not in rows and f"lib/{m}.h" in rows:
            key = f"lib/{m}.h"
        check(f"docs/design.md has a row for {d}/{m}", key in rows)
        if key not in rows or not (rows[key][0] or rows[key][1]) and not (inc["h"] or inc["c"]):
            continue
        if key == "lib/bus-names.h":
            continue
        header = {t for _, t in inc["h"]}
        source = {t for _, t in inc["c"]} - header
        check(f"docs/design.md: {d}/{m}.h includes what its row says", header == rows[key][0],
              f"code {sorted(header)}, document {sorted(rows[key][0])}")
        check(f"docs/design.md: {d}/{m}.c includes what its row says", source == rows[key][1],
              f"code {sorted(source)}, document {sorted(rows[key][1])}")

for i, (ok, description, detail) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {description}")
    if not ok and detail:
        print(f"# {detail}")
print(f"1..{len(results)}")
sys.exit(0 if all(ok for ok, _, _ in results) else 1)
