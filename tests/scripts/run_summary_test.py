#!/usr/bin/env python3
"""scripts/run_summary.py on made-up run folders: a metrics.jsonl whose last
line was cut short (a full disk, a killed run) is summarized from its whole
lines, naming the cut line on stderr; a bad line elsewhere is an error naming
file and line (exit 1). The rows are seeded random, so the summary is checked
against sums computed here."""
import json
import os
import random
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "run_summary.py")


def run(run_dir):
    p = subprocess.run([sys.executable, SCRIPT, run_dir], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    rng = random.Random(7)
    rows = []
    for step in range(9):
        rows.append({"step": step, "elapsed_s": 2.0 * (step + 1), "timing_s/rollout": rng.uniform(0.2, 1.0),
                     "timing_s/learner": rng.uniform(0.2, 0.8), "rollout/tokens_per_s": rng.uniform(100, 200)})
    for step in (4, 8):  # checkpoints after steps 5 and 9, by both stages
        rows[step]["checkpoint_s/learner"] = rng.uniform(0.1, 0.3)
        rows[step]["checkpoint_s/rollout"] = rng.uniform(0.05, 0.1)
    failures, checks = 0, 0

    def check(cond, what):
        nonlocal failures, checks
        checks += 1
        if not cond:
            failures += 1
            print(f"FAILED: {what}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as d:
        body = "".join(json.dumps(r) + "\n" for r in rows)
        cut = json.dumps(rows[0])[:23]  # a torn tenth line
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            f.write(body + cut)
        rc, out, err = run(d)
        check(rc == 0, f"torn last line: exit {rc} ({err.strip()})")
        if rc == 0:
            summary = json.loads(out)
            check(summary["steps"] == 9, f"steps {summary['steps']} != 9")
            share = sum(r["timing_s/rollout"] for r in rows) / 18.0
            check(abs(summary["rollout_share"] - round(share, 3)) < 1e-9, "rollout share")
            saved = sum(v for r in rows for k, v in r.items() if k.startswith("checkpoint_s/"))
            stages = sum(v for r in rows for k, v in r.items() if k.startswith("timing_s/"))
            check(abs(summary["checkpoint_share"] - round(saved / 18.0, 4)) < 1e-9, "checkpoint share")
            check(abs(summary["overhead_share"] - round(1 - (stages + saved) / 18.0, 4)) < 1e-9,
                  "overhead share without the checkpoint writes")
            mean_tps = sum(r["rollout/tokens_per_s"] for r in rows) / 9
            check(abs(summary["rollout_tokens_per_s_mean"] - round(mean_tps, 1)) < 1e-9, "tokens/s")
        check(f"metrics.jsonl:10: the last line is cut short (23 bytes" in err, f"stderr names line 10: {err!r}")

        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            f.write(body[: body.index("\n") + 1] + "{not json\n" + body[body.index("\n") + 1:])
        rc, out, err = run(d)
        check(rc == 1, f"bad middle line: exit {rc}")
        check("metrics.jsonl:2: not a JSON object" in err, f"bad middle line named: {err!r}")
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
