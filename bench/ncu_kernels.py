#!/usr/bin/env python3
"""Summarise `ncu --csv --metrics gpu__time_duration.sum` by kernel name: one
markdown row per kernel function (template arguments dropped) with its
launch count, total time and share, largest first. An optional second
argument N divides counts and times by N (N profiled decode steps).
usage: ncu_kernels.py NCU.csv [N]"""
import csv
import re
import sys
from collections import defaultdict


def short(name):
    name = re.sub(r"\(.*", "", name)           # arguments
    depth, out = 0, []
    for ch in name:                            # template arguments
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    name = "".join(out).strip()
    return name.split(" ")[-1][:90]


def main(path, per=1.0):
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    total = defaultdict(float)
    count = defaultdict(int)
    for rec in csv.DictReader(lines):
        if rec["Metric Name"] != "gpu__time_duration.sum":
            continue
        value = float(rec["Metric Value"].replace(",", ""))
        unit = rec["Metric Unit"]
        us = value * {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}.get(unit, 1.0)
        key = short(rec["Kernel Name"])
        total[key] += us
        count[key] += 1
    if not total:
        print("ncu_kernels: no kernel rows in", path)
        return 1
    grand = sum(total.values())
    print(f"{sum(count.values()) / per:.0f} kernels, {grand / per:.0f} us of kernel time per profiled unit")
    print("| kernel | launches | us | share |")
    print("|---|---|---|---|")
    for key in sorted(total, key=total.get, reverse=True)[:25]:
        print(f"| {key} | {count[key] / per:.0f} | {total[key] / per:.1f} | {100 * total[key] / grand:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0))
