#!/usr/bin/env python3
"""Summarizes a qerl run folder from its metrics.jsonl: held-out accuracy
before and after, wall time, rollout tokens/s, and the share of wall time
spent writing checkpoints (checkpoint_s/*, the stages' saves), and the
share spent outside stage compute and checkpoint writes (runtime overhead:
scheduling, messaging, waiting), i.e. 1 - (sum(timing_s/*) +
sum(checkpoint_s/*)) / elapsed when stages run one at a time (colocated,
staleness 0). A resumed run's elapsed_s restarts at each resume;
the segments are added up. Usage: run_summary.py RUN_DIR [RUN_DIR...]"""
import json
import sys


def fail(message):
    print(f"run_summary: {message}", file=sys.stderr)
    sys.exit(1)


class BadLine(Exception):
    """A line of metrics.jsonl that is not JSON (and not a cut-short last line)."""

    def __init__(self, number, error):
        super().__init__(error.msg)
        self.number, self.error = number, error


def json_lines(text):
    """The JSON values of metrics.jsonl's text as (line number, value) pairs,
    blank lines skipped, and `cut`: (number, bytes, JSONDecodeError) of a last
    line without its newline that is not JSON (the run died, or the disk
    filled, while writing it), left out; else None. Any other line that is
    not JSON raises BadLine."""
    lines = text.split("\n")
    values = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            if number == len(lines):  # no newline after it: the last write was cut
                return values, (number, len(line), e)
            raise BadLine(number, e)
    return values, None


def read_rows(path):
    """The metrics lines of `path`. A last line without its newline that is
    not JSON was cut short: it is named on stderr and left out. Any other bad
    line is an error."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    try:
        values, cut = json_lines(text)
    except BadLine as bad:
        fail(f"{path}:{bad.number}: not a JSON object ({bad.error.msg})")
    rows = [value for _, value in values]
    if cut:
        number, size, error = cut
        print(f"run_summary: {path}:{number}: the last line is cut short "
              f"({size} bytes, {error.msg}); summarizing the {len(rows)} whole lines before it",
              file=sys.stderr)
    if not rows:
        fail(f"{path}: no steps")
    return rows


def wall_time(rows):
    """Seconds the run took: elapsed_s of its last row, with the segments of
    a resumed run (whose clock restarts) added up."""
    total, last = 0.0, 0.0
    for r in rows:
        now = r.get("elapsed_s") or 0.0
        total += now - last if now >= last else now  # a resume restarts the clock
        last = now
    return total


def summarize(run_dir):
    rows = read_rows(f"{run_dir}/metrics.jsonl")
    initial = next((r["val/initial_accuracy"] for r in rows if "val/initial_accuracy" in r), None)
    evals = [(r["step"] + 1, r["val/accuracy"]) for r in rows if "val/accuracy" in r]
    elapsed = wall_time(rows)
    if elapsed <= 0:
        fail(f"{run_dir}/metrics.jsonl: no elapsed_s")
    stage_s = sum(v for r in rows for k, v in r.items() if k.startswith("timing_s/"))
    checkpoint_s = sum(v for r in rows for k, v in r.items() if k.startswith("checkpoint_s/"))
    tps = [r["rollout/tokens_per_s"] for r in rows if "rollout/tokens_per_s" in r]
    rollout_s = sum(r.get("timing_s/rollout", 0) for r in rows)
    out = {
        "run": run_dir,
        "steps": len(rows),
        "wall_s": round(elapsed, 1),
        "initial_accuracy": initial,
        "final_accuracy": evals[-1][1] if evals else None,
        "gain_points": round(100 * (evals[-1][1] - initial), 1) if evals and initial is not None else None,
        "accuracy_curve": evals,
        "rollout_tokens_per_s_mean": round(sum(tps) / len(tps), 1) if tps else None,
        "rollout_share": round(rollout_s / elapsed, 3),
        "checkpoint_share": round(checkpoint_s / elapsed, 4),
        "overhead_share": round(1 - (stage_s + checkpoint_s) / elapsed, 4),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    for d in sys.argv[1:] or sys.exit(__doc__):
        summarize(d)
