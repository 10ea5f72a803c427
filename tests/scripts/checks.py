"""Counted checks for the script tests: check() records a failure (and
prints it) without stopping, summary() prints the count and gives the exit
status."""
import sys

failures = []
count = 0


def check(ok, what):
    global count
    count += 1
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)
    return ok


def summary(extra=""):
    """Prints 'P of N checks passed' (+ extra); 1 if any failed, else 0."""
    print(f"{count - len(failures)} of {count} checks passed{extra}")
    return 1 if failures else 0
