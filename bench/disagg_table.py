#!/usr/bin/env python3
"""Compares qerl runs of one job placed differently (bench/gpu_disagg.sh,
issue 18). For each RUN_DIR:LOG (the run folder and the qerl-run output at
--log-level debug): steps, wall seconds, median step seconds (elapsed_s
between steps, from the second on), median weight-sync transfer seconds
(weight_sync/transfer_s, reported by rollout when weights arrive over
NCCL), the median gap between weight_sync of step t ending and rollout of
step t+1 starting (at staleness 0 the whole sync, plus any eval that
takes the rollout's device first: read the median over many steps),
final held-out accuracy, the largest per-step difference of
critic/rewards/mean from the first run, and the share of rollout time
that ran while the learner ran (from the driver's "ran step" lines:
rollout of step t+1 against learner of step t).
Usage: disagg_table.py RUN_DIR:LOG [RUN_DIR:LOG ...]"""
import json
import re
import statistics
import sys

RAN = re.compile(r"(\w+)\[0\] ran step (\d+) from ([0-9.]+) to ([0-9.]+) \(unix s\)")


def rows_of(run_dir):
    rows = []
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return [r for r in rows if "step" in r]


def spans_of(log):
    spans = {}
    with open(log, errors="replace") as f:
        for m in RAN.finditer(f.read()):
            spans.setdefault(m.group(1), {})[int(m.group(2))] = (float(m.group(3)), float(m.group(4)))
    return spans


def hidden_share(spans):
    """Seconds of rollout step t+1 inside learner step t, over all rollout seconds after step 0."""
    rollout, learner = spans.get("rollout", {}), spans.get("learner", {})
    inside = total = 0.0
    for t, (ls, le) in learner.items():
        if t + 1 not in rollout:
            continue
        rs, re_ = rollout[t + 1]
        total += re_ - rs
        inside += max(0.0, min(re_, le) - max(rs, ls))
    return inside / total if total > 0 else None


def sync_gaps(spans):
    """Seconds from weight_sync of step t ending to rollout of step t+1 starting
    (at staleness 0 the rollout waits only for those weights: the sync's
    transfer, decode and dispatch)."""
    rollout, sync = spans.get("rollout", {}), spans.get("weight_sync", {})
    return [rollout[t + 1][0] - end for t, (_, end) in sync.items() if t + 1 in rollout]


def main(args):
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    base = None
    print("| run | steps | wall s | median step s | median transfer s | median sync gap s | val/accuracy |"
          " max reward diff vs first | rollout hidden |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in args:
        run_dir, _, log = arg.partition(":")
        try:
            rows = rows_of(run_dir)
        except OSError as e:
            print(f"| {run_dir} | no metrics ({e.strerror}) |")
            continue
        rewards = {r["step"]: r.get("critic/rewards/mean") for r in rows}
        if base is None:
            base = rewards
        diffs = [abs(rewards[s] - base[s]) for s in rewards if s in base and rewards[s] is not None and base[s] is not None]
        elapsed = [r.get("elapsed_s", 0.0) for r in rows]
        steps = [b - a for a, b in zip(elapsed, elapsed[1:])]
        transfers = [r["weight_sync/transfer_s"] for r in rows if "weight_sync/transfer_s" in r]
        accuracy = next((r["val/accuracy"] for r in reversed(rows) if "val/accuracy" in r), None)
        spans = spans_of(log) if log else {}
        hidden = hidden_share(spans) if spans else None
        gaps = sync_gaps(spans)
        cells = [
            run_dir, str(len(rows)), f"{elapsed[-1]:.1f}" if elapsed else "-",
            f"{statistics.median(steps[1:] or steps):.3f}" if steps else "-",
            f"{statistics.median(transfers):.4f}" if transfers else "-",
            f"{statistics.median(gaps):.4f}" if gaps else "-",
            f"{accuracy:.3f}" if accuracy is not None else "-",
            f"{max(diffs):.4f}" if diffs else "-",
            f"{hidden:.0%}" if hidden is not None else "-",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
