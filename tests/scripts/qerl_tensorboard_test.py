#!/usr/bin/env python3
"""TensorBoard read-back: TensorBoard's own reader (EventAccumulator) finds,
in the event files qerl-run wrote as it ran, every scalar of metrics.jsonl
under the same name, at every step, with the same value (float32: the event
format stores scalars as float32), and nothing else. Also: --tensorboard DIR
writes there, --no-tensorboard writes none, a resumed or overwritten run
hides the values it redoes, and a python that cannot be
started costs one warning line while the run still succeeds (toy stages).

Usage: qerl_tensorboard_test.py --runs DIR (qerl_short_runs.py's) --qerl-run EXE
                                --toy-plugin SO --source-dir DIR --scratch DIR"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import checks
from checks import check, summary


def read_events(logdir):
    """{tag: [(step, value)...]} as TensorBoard reads it (every event kept)."""
    ea = EventAccumulator(logdir, size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def read_back(logdir):
    """{tag: {step: value}}; a step read twice is a failure."""
    got = {}
    for tag, events in read_events(logdir).items():
        steps = [s for s, _ in events]
        check(len(steps) == len(set(steps)), f"{logdir}: '{tag}' has each step once, read steps {steps}")
        got[tag] = dict(events)
    return got


def expected_scalars(metrics_path):
    """{name: {step: value}} of metrics.jsonl: every finite number but "step"."""
    want = {}
    with open(metrics_path) as f:
        for line in f:
            row = json.loads(line)
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    want.setdefault(key, {})[row["step"]] = value
    return want


def check_run(run_dir):
    logdir = os.path.join(run_dir, "tensorboard")
    check(os.path.isdir(logdir) and any(n.startswith("events.out.tfevents") for n in os.listdir(logdir)),
          f"{logdir}: holds an event file")
    want = expected_scalars(os.path.join(run_dir, "metrics.jsonl"))
    got = read_back(logdir)
    check(len(want) > 20, f"{run_dir}: metrics.jsonl has many scalars ({len(want)})")
    check(set(got) == set(want), f"{run_dir}: TensorBoard's tags are metrics.jsonl's names "
          f"(missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]})")
    for name, steps in want.items():
        if name not in got:
            continue
        check(set(got[name]) == set(steps), f"{run_dir}: '{name}' at steps {sorted(steps)}, read {sorted(got[name])}")
        for step, value in steps.items():
            if step in got[name]:
                read = got[name][step]
                check(read == float(np.float32(value)) or math.isclose(read, value, rel_tol=1e-6, abs_tol=1e-30),
                      f"{run_dir}: '{name}' step {step}: wrote {value}, read {read}")


def qerl_run(args, extra, env=None, pipeline="toy_run.toml"):
    out_dir = os.path.join(args.scratch, extra[0])
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [args.qerl_run, os.path.join(args.source_dir, "tests/tools/data", pipeline), "--out", out_dir,
               "--set", f"plugins=[\"{args.toy_plugin}\"]"] + extra[1:]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return out_dir, done


def check_flags(args):
    os.makedirs(args.scratch, exist_ok=True)
    # --tensorboard DIR: the event files go there, with the toy run's metrics.
    chosen = os.path.join(args.scratch, "chosen_logdir")
    shutil.rmtree(chosen, ignore_errors=True)
    out_dir, done = qerl_run(args, ["toy_chosen", "--tensorboard", chosen])
    check(done.returncode == 0, f"toy run with --tensorboard: exit {done.returncode}: {done.stderr[-500:]}")
    check(not os.path.exists(os.path.join(out_dir, "tensorboard")), "--tensorboard DIR: nothing in <out>/tensorboard")
    got = read_back(chosen)
    want = expected_scalars(os.path.join(out_dir, "metrics.jsonl"))
    check(got.get("toy/square") is not None and {s: float(np.float32(v)) for s, v in want["toy/square"].items()} == got["toy/square"],
          f"--tensorboard DIR: toy/square read back {got.get('toy/square')}")
    # --no-tensorboard: no event files, no warning.
    out_dir, done = qerl_run(args, ["toy_none", "--no-tensorboard"])
    check(done.returncode == 0 and not os.path.exists(os.path.join(out_dir, "tensorboard")),
          f"--no-tensorboard: exit {done.returncode}, tensorboard/ absent")
    # Both flags: the command line is rejected (exit 2), nothing runs.
    out_dir, done = qerl_run(args, ["toy_both", "--no-tensorboard", "--tensorboard", chosen])
    check(done.returncode == 2 and "excludes" in done.stderr and not os.path.exists(os.path.join(out_dir, "metrics.jsonl")),
          f"--tensorboard with --no-tensorboard: exit {done.returncode}, {done.stderr.strip()[:200]!r}")
    # No python: one warning line, the run goes on and writes its metrics.
    out_dir, done = qerl_run(args, ["toy_nopython"], env={"QERL_PYTHON": "/nonexistent/python3"})
    warnings = [l for l in done.stderr.splitlines() if "TensorBoard" in l]
    check(done.returncode == 0, f"no python: the run still succeeds (exit {done.returncode})")
    check(len(warnings) == 1 and "warning: no TensorBoard logs" in warnings[0] and "/nonexistent/python3" in warnings[0],
          f"no python: one warning line naming the interpreter, got {warnings}")
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        check(len(f.readlines()) == 6, "no python: metrics.jsonl has the 6 steps")
    # A python without tensorboard: the sidecar's one warning line, the run goes on.
    out_dir, done = qerl_run(args, ["toy_notb"], env={"PYTHONPATH": os.path.join(args.source_dir, "tests/scripts/no_tensorboard")})
    warnings = [l for l in done.stderr.splitlines() if "TensorBoard" in l]
    check(done.returncode == 0, f"no tensorboard module: the run still succeeds (exit {done.returncode})")
    check(len(warnings) == 1 and "cannot import tensorboard" in warnings[0],
          f"no tensorboard module: one warning line, got {warnings}")


def check_resume(args):
    """A resumed run redoes the steps after its checkpoint: TensorBoard then
    reads each step once, with the resumed run's value; command.txt has both
    commands."""
    out_dir, done = qerl_run(args, ["toy_resume", "--set", "stages.total.fail_once_at_step=5"], pipeline="toy_resume.toml")
    check(done.returncode == 1, f"toy_resume fails once at step 5 (exit {done.returncode})")
    before = read_events(os.path.join(out_dir, "tensorboard")).get("toy/total", [])
    check(sorted(s for s, _ in before) == [0, 1, 2, 3, 4], f"before resuming: steps 0..4 in TensorBoard, read {before}")
    done = subprocess.run([args.qerl_run, "--resume", out_dir], capture_output=True, text=True)
    check(done.returncode == 0, f"--resume: exit {done.returncode}: {done.stderr[-500:]}")
    want = expected_scalars(os.path.join(out_dir, "metrics.jsonl"))
    got = read_back(os.path.join(out_dir, "tensorboard"))
    check(sorted(want["toy/total"]) == list(range(7)) and got.get("toy/total") == {s: float(np.float32(v)) for s, v in want["toy/total"].items()},
          f"after --resume: toy/total once per step 0..6 as in metrics.jsonl, read {got.get('toy/total')}")
    with open(os.path.join(out_dir, "command.txt")) as f:
        commands = f.read().splitlines()
    check(len(commands) == 2 and "fail_once_at_step=5" in commands[0] and commands[1].endswith("--resume " + out_dir),
          f"command.txt holds the run's and the resume's command lines: {commands}")


def check_overwrite(args):
    """A run --overwrite'n into a folder hides the earlier run's values."""
    out_dir, first = qerl_run(args, ["toy_overwrite"])
    again = subprocess.run(first.args + ["--overwrite", "--set", "run.seed=5"], capture_output=True, text=True)
    check(first.returncode == 0 and again.returncode == 0, f"toy run, then --overwrite: exits {first.returncode}, {again.returncode}")
    want = expected_scalars(os.path.join(out_dir, "metrics.jsonl"))
    got = read_back(os.path.join(out_dir, "tensorboard"))
    check(want["toy/sqrt"][0] == 5 and got.get("toy/sqrt") == {s: float(np.float32(v)) for s, v in want["toy/sqrt"].items()},
          f"after --overwrite: the new run's toy/sqrt only, read {got.get('toy/sqrt')}")


def main():
    parser = argparse.ArgumentParser()
    for a in ("--runs", "--qerl-run", "--toy-plugin", "--source-dir", "--scratch"):
        parser.add_argument(a, required=True)
    args = parser.parse_args()
    for name in sorted(os.listdir(args.runs)):
        if os.path.isfile(os.path.join(args.runs, name, "metrics.jsonl")):
            check_run(os.path.join(args.runs, name))
    check_flags(args)
    check_resume(args)
    check_overwrite(args)
    status = summary()
    return 1 if status or checks.count < 10 else 0


if __name__ == "__main__":
    sys.exit(main())
