#!/usr/bin/env python3
"""Summarise `ncu --csv --metrics ...` (bench/gpu_bench.sh) as one markdown
row per kernel launch: duration, DRAM bytes and throughput, SM throughput,
occupancy, issue activity, launch shape."""
import csv
import re
import sys
from collections import OrderedDict


# LibTorch kernels that only make the profile's random inputs.
SETUP_KERNELS = ("distribution_", "FillFunctor", "MulFunctor")


def main(path):
    rows = OrderedDict()
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    for rec in csv.DictReader(lines):
        key = (rec["ID"], rec["Kernel Name"])
        rows.setdefault(key, {})[rec["Metric Name"]] = (rec["Metric Unit"], rec["Metric Value"].replace(",", ""))
    if not rows:
        print("ncu_table: no kernel rows in", path)
        return 1

    def num(m, name, scale=1.0):
        unit, value = m.get(name, ("", "nan"))
        v = float(value)
        factor = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "byte": 1e-6, "Kbyte": 1e-3, "Mbyte": 1.0,
                  "Gbyte": 1e3}.get(unit, 1.0)
        return v * factor * scale

    print("| id | kernel | grid x block | regs | time (us) | DRAM MB read+written | DRAM GB/s | DRAM % of peak | "
          "SM % of peak | warps active % | issue active % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (kid, name), m in rows.items():
        if any(setup in name for setup in SETUP_KERNELS):
            continue
        short = re.sub(r"\(.*", "", name)
        short = re.sub(r"^(void )?(qerl::kernels::cuda::)?(\(anonymous namespace\)::)?", "", short)
        template = re.search(r"<([^>]*)>", name)
        if template:
            short += "<" + template.group(1)[:40] + ">"
        t = num(m, "gpu__time_duration.sum")
        mb = num(m, "dram__bytes_read.sum") + num(m, "dram__bytes_write.sum")
        print(f"| {kid} | {short} | {m.get('launch__grid_size', ('', '?'))[1]} x "
              f"{m.get('launch__block_size', ('', '?'))[1]} | {m.get('launch__registers_per_thread', ('', '?'))[1]} | "
              f"{t:.1f} | {mb:.1f} | {mb / t * 1e3 if t > 0 else 0:.0f} | "
              f"{num(m, 'dram__throughput.avg.pct_of_peak_sustained_elapsed'):.0f} | "
              f"{num(m, 'sm__throughput.avg.pct_of_peak_sustained_elapsed'):.0f} | "
              f"{num(m, 'sm__warps_active.avg.pct_of_peak_sustained_active'):.0f} | "
              f"{num(m, 'smsp__issue_active.avg.pct_of_peak_sustained_active'):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
