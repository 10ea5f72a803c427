#!/usr/bin/env python3
"""qerl-run's TensorBoard sidecar: reads metrics.jsonl lines on stdin (one
JSON object per step, as qerl-run writes them) and writes every numeric
value as a TensorBoard scalar under its metrics.jsonl name, at the line's
"step", flushing after each line so `tensorboard --logdir` shows the curves
live. The writer is TensorBoard's own EventFileWriter (the one under
torch.utils.tensorboard's SummaryWriter), fed the same events SummaryWriter's
add_scalar and purge_step write (a simple_value scalar per tag; a
SessionLog.START at the first step); it is used directly because importing
torch would cost each run about 2 s of CPU.

Usage: qerl_tensorboard.py LOGDIR [--purge-step N]
  --purge-step N: the run's first step (0, or where a resume continues);
  TensorBoard drops earlier event files' values of steps >= N (an
  --overwrite run or a resume redoes them).

When tensorboard cannot be imported it prints one warning line and exits 3
(qerl-run goes on without TensorBoard logs)."""
import argparse
import json
import math
import signal
import sys
import time

EXIT_NO_WRITER = 3


def warn(message):
    print(f"qerl-run: warning: {message}", file=sys.stderr, flush=True)


def scalars(row):
    """(name, value) for each finite number of a metrics line but "step"."""
    for key, value in row.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            yield key, float(value)


def main():
    # Ctrl-C reaches the whole process group: qerl-run stops the run and then
    # closes our stdin, so the steps it finished are still written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir")
    parser.add_argument("--purge-step", type=int, default=None)
    args = parser.parse_args()
    try:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except Exception as e:  # ImportError, or tensorboard's own import failing
        warn(f"no TensorBoard logs: {sys.executable} cannot import tensorboard ({type(e).__name__}: {e}); "
             "install it with scripts/setup.sh or pass --no-tensorboard")
        return EXIT_NO_WRITER
    try:
        writer = EventFileWriter(args.logdir, max_queue_size=1000, flush_secs=3600)
    except Exception as e:
        warn(f"no TensorBoard logs: cannot write to '{args.logdir}' ({type(e).__name__}: {e})")
        return EXIT_NO_WRITER
    if args.purge_step is not None:  # TensorBoard hides earlier files' events from this step on
        writer.add_event(Event(step=args.purge_step, wall_time=time.time(),
                               session_log=SessionLog(status=SessionLog.START)))
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError) as e:
            warn(f"TensorBoard writer: stdin:{number}: expected a metrics object with a \"step\" ({e}); line skipped")
            continue
        values = [Summary.Value(tag=name, simple_value=value) for name, value in scalars(row)]
        writer.add_event(Event(step=step, wall_time=time.time(), summary=Summary(value=values)))
        writer.flush()
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
