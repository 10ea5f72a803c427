#!/usr/bin/env python3
"""Test fixture: two short real runs of the shipped headline pipeline
(pipelines/r3_aqn_nvfp4.toml: NVFP4 + LoRA, router replay R3), one with AQN
and one without, made short by --set overrides (4 steps of 4 prompts x 4
samples, 32 new tokens, held-out accuracy on 16 prompts every 2 steps, 2 AQN stages). The
report and TensorBoard tests read what qerl-run wrote: metrics.jsonl,
command.txt, resolved.toml and tensorboard/ (written live, by default).

Usage: qerl_short_runs.py --qerl-run EXE --source-dir DIR --out DIR"""
import argparse
import os
import shutil
import subprocess
import sys
import time

SHORT = ["run.steps=4", "run.checkpoint_every=0", "data.prompts_per_step=4", "data.samples_per_prompt=4",
         "data.heldout_size=16", "stages.rollout.max_new_tokens=32", "stages.eval.every=2",
         "stages.eval.max_new_tokens=32", "aqn.num_stages=2"]
RUNS = {"aqn_on": [], "aqn_off": ["aqn.enabled=false"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qerl-run", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    pipeline = os.path.join(args.source_dir, "pipelines", "r3_aqn_nvfp4.toml")
    for name, extra in RUNS.items():
        command = [args.qerl_run, pipeline, "--out", os.path.join(args.out, name)]
        for s in SHORT + extra:
            command += ["--set", s]
        start = time.time()
        done = subprocess.run(command, capture_output=True, text=True)
        print(f"{name}: exit {done.returncode} in {time.time() - start:.0f} s")
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            return 1
        with open(os.path.join(args.out, name, "qerl-run.stderr"), "w") as f:
            f.write(done.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
