#!/usr/bin/env python3
"""Per-step table of a qerl run for the RL-step benchmark (issue 16): seconds
per stage, the share of the step outside stage compute (the runtime's
overhead: elapsed between step records minus the stages' seconds, stages
running one at a time), the weight sync's share, and the device memory:
each stage's peak (perf/max_memory_allocated_gib and _reserved_gib, which
count the whole device while that stage ran), nvidia-smi's peak, and the
plan's peak from `qerl-run --dry-run` output.
usage: step_table.py RUN_DIR [--plan DRY_RUN_OUTPUT] [--smi NVIDIA_SMI_CSV]
(the csv of `nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits`)"""
import argparse
import json
import re
import sys


def fail(message):
    print(f"step_table: {message}", file=sys.stderr)
    sys.exit(1)


def steps_of(run_dir):
    path = f"{run_dir}/metrics.jsonl"
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    steps = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                break  # the run died while writing its last line
            fail(f"{path}:{number}: not JSON ({e.msg})")
        if "step" in row:
            steps.append(row)
    if not steps:
        fail(f"{path}: no steps")
    return steps


def planned_peak_gib(plan_path):
    """The largest `planned peak N GiB|MiB` of a dry run's output (one per device)."""
    units = {"KiB": 2**-20, "MiB": 2**-10, "GiB": 1, "TiB": 1024}
    peaks = [float(v) * units[u] for v, u in
             re.findall(r"planned peak ([0-9.]+) (KiB|MiB|GiB|TiB)", open(plan_path).read())]
    if not peaks:
        fail(f"{plan_path}: no 'planned peak' line (is it qerl-run --dry-run output?)")
    return max(peaks)


def smi_peak_gib(smi_path):
    values = []
    for line in open(smi_path):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[-1].isdigit():
            values.append(int(parts[-1]))
    return max(values) / 1024 if values else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--plan")
    parser.add_argument("--smi")
    args = parser.parse_args()
    steps = steps_of(args.run_dir)
    stages = sorted({k[len("timing_s/"):] for s in steps for k in s if k.startswith("timing_s/")})
    print("| step | " + " | ".join(stages) + " | stages | step | outside stages | weight sync share |")
    print("|---" * (len(stages) + 5) + "|")
    previous = None
    for s in steps:
        seconds = [s.get("timing_s/" + name, 0.0) for name in stages]
        total = sum(seconds)
        # The first record's elapsed time includes setup: its step time is not known.
        wall = s["elapsed_s"] - previous if previous is not None else None
        previous = s["elapsed_s"]
        outside = f"{wall - total:.2f} s ({100 * (wall - total) / wall:.2f} %)" if wall else "(setup included)"
        sync = s.get("timing_s/weight_sync")
        share = f"{100 * sync / wall:.3f} %" if wall and sync is not None else "-"
        print(f"| {s['step'] + 1} | " + " | ".join(f"{v:.2f}" for v in seconds) +
              f" | {total:.2f} | {f'{wall:.2f}' if wall else '-'} | {outside} | {share} |")
    peak = {}
    for kind in ("allocated", "reserved"):
        for name in stages:
            key = f"perf/max_memory_{kind}_gib/{name}"
            values = [s[key] for s in steps if key in s]
            if values:
                peak.setdefault(name, {})[kind] = max(values)
    if peak:
        print("\n| stage | peak allocated GiB | peak reserved GiB |\n|---|---|---|")
        for name, p in peak.items():
            print(f"| {name} | {p.get('allocated', 0):.1f} | {p.get('reserved', 0):.1f} |")
    allocated = max((p.get("allocated", 0) for p in peak.values()), default=None)
    reserved = max((p.get("reserved", 0) for p in peak.values()), default=None)
    smi = smi_peak_gib(args.smi) if args.smi else None
    if args.plan:
        plan = planned_peak_gib(args.plan)
        line = f"\nplanned peak {plan:.1f} GiB"
        for label, value in (("allocated", allocated), ("reserved", reserved), ("nvidia-smi", smi)):
            if value:
                line += f"; measured {label} {value:.1f} GiB (plan {100 * (plan - value) / value:+.1f} %)"
        print(line)
    elif smi:
        print(f"\nnvidia-smi peak {smi:.1f} GiB")


if __name__ == "__main__":
    main()
