# SPDX-License-Identifier: Apache-2.0
"""TAP for the Python tests of this directory: record each check with ok(), then
print_results() prints the plan and one line per check, with the details of a
failed one as comments, so that a failure says why on the console."""

results = []


def ok(cond, what, detail="", skip=None):
    """One check: cond true passes; skip (a reason) marks it skipped."""
    results.append((bool(cond), what, detail, skip))


def print_results():
    print(f"1..{len(results)}")
    for i, (good, what, detail, skip) in enumerate(results, 1):
        print(f"{'ok' if good else 'not ok'} {i} - {what}" + (f" # SKIP {skip}" if skip else ""))
        if not good and detail:
            for line in str(detail).splitlines():
                print(f"#   {line}")
