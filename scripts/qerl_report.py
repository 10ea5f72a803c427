#!/usr/bin/env python3
"""qerl-report: one self-contained HTML report of one or more qerl runs.

    qerl-report RUN_DIR [RUN_DIR...] [--out report.html]

Reads each run folder's metrics.jsonl (and its command.txt and resolved.toml
when present) and writes a single HTML file that needs no network to open:
plotly's JavaScript is inlined once, each plot is a plotly figure. It holds a
summary table per run; plots with the runs overlaid (held-out accuracy,
reward, rollout_corr/kl and actor/ppo_kl, entropy, response length, AQN sigma
and applied RMS, quant/sqnr_db, rollout tokens/s); per run, router mismatch
per layer as a heat map (steps x layers) and where each step's time went
(a stacked bar of timing_s/<stage>); then each run's command and its
resolved pipeline (collapsed). A metric a run did not record is said so in
its plot rather than failing. The x axis is steps done (step + 1; the
initial held-out accuracy is at 0).

--out defaults to RUN_DIR/report.html for one run, ./report.html for several.
A folder without metrics.jsonl, or a line of it that is not a metrics object,
is one error line (file:line: what was expected) and exit status 2."""
import argparse
import html
import json
import math
import os
import re
import sys

from run_summary import BadLine, json_lines, wall_time  # scripts/, beside this file

EXIT_BAD_INPUT = 2
PLOT_HEIGHT = 360
# One colour per run (plotly's default qualitative sequence), one dash per metric.
COLORS = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880"]
DASHES = ["solid", "dash", "dot", "dashdot"]


class ReportError(Exception):
    """One line for the user: where, and what was expected."""


# ---------------------------------------------------------------- reading runs

def read_metrics(path):
    """The rows of metrics.jsonl, each a dict with an integer "step". A last
    line cut short (no newline: the run died while writing it) is left out
    with a warning; any other bad line is a ReportError naming file:line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ReportError(f"{path}: cannot read it ({e.strerror})")
    def invalid(number, e):
        return ReportError(f"{path}:{number}: expected one JSON object per line, got invalid JSON ({e.msg} at column {e.colno})")

    try:
        values, cut = json_lines(text)
    except BadLine as bad:
        raise invalid(bad.number, bad.error)
    if cut and not values:  # a cut last line is only forgiven after whole ones
        raise invalid(cut[0], cut[2])
    rows = []
    for number, row in values:
        if not isinstance(row, dict):
            raise ReportError(f"{path}:{number}: expected a JSON object of metrics, got a {type(row).__name__}")
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ReportError(f"{path}:{number}: expected an integer \"step\" >= 0 in each metrics object, got {json.dumps(step)}")
        for key, value in row.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ReportError(f"{path}:{number}: expected a number or null for \"{key}\", got {json.dumps(value)[:40]}")
        rows.append(row)
    if cut:
        warn(f"{path}:{cut[0]}: the last line is cut short ({cut[2].msg}); reporting the {len(rows)} steps before it")
    if not rows:
        raise ReportError(f"{path}: expected one metrics object per step, the file holds none")
    return rows


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


class Run:
    def __init__(self, folder, label):
        self.folder = folder
        self.label = label
        metrics = os.path.join(folder, "metrics.jsonl")
        if not os.path.isdir(folder):
            raise ReportError(f"{folder}: no such run folder")
        if not os.path.isfile(metrics):
            raise ReportError(f"{folder}: not a run folder (expected {metrics}, written by qerl-run)")
        self.rows = read_metrics(metrics)
        self.command = read_text(os.path.join(folder, "command.txt"))
        self.resolved = read_text(os.path.join(folder, "resolved.toml"))

    def series(self, key):
        """(steps done, values) of the rows that hold a finite `key`."""
        xs, ys = [], []
        for r in self.rows:
            v = r.get(key)
            if v is not None and math.isfinite(v):
                xs.append(r["step"] + 1)
                ys.append(v)
        return xs, ys

    def has(self, key):
        return any(r.get(key) is not None for r in self.rows)

    def keys(self, pattern):
        found = set()
        for r in self.rows:
            found.update(k for k in r if re.fullmatch(pattern, k))
        return found

    def wall_s(self):
        return wall_time(self.rows)


def run_labels(folders):
    """The folders' base names, or their paths where two names collide."""
    names = [os.path.basename(os.path.normpath(f)) or f for f in folders]
    return [n if names.count(n) == 1 else os.path.normpath(f) for n, f in zip(names, folders)]


def warn(message):
    print(f"qerl-report: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- figures

def go():
    import plotly.graph_objects as graph_objects
    return graph_objects


def base_layout(fig, title, y_title, log_y=False):
    fig.update_layout(title=dict(text=title, x=0.01), height=PLOT_HEIGHT, margin=dict(l=60, r=20, t=50, b=45),
                      template="plotly_white", legend=dict(orientation="h", y=-0.2, font=dict(size=11)))
    fig.update_xaxes(title_text="steps done")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else None)
    return fig


def not_recorded(fig, text):
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=15, color="#888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def overlay(runs, title, metrics, y_title, log_y=False, initial=None):
    """Each run a colour, each metric a dash. `initial`: a metric drawn at x = 0
    (val/initial_accuracy) joined to the first metric's curve."""
    fig = go().Figure()
    missing = []
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        drew = False
        for j, key in enumerate(metrics):
            xs, ys = run.series(key)
            if j == 0 and initial:
                x0, y0 = run.series(initial)
                if y0:
                    xs, ys = [0] + xs, [y0[0]] + ys
            if log_y:
                xs, ys = zip(*[(x, y) for x, y in zip(xs, ys) if y > 0]) if any(y > 0 for y in ys) else ([], [])
            if not ys:
                continue
            drew = True
            name = run.label if len(metrics) == 1 else f"{run.label}: {key}"
            fig.add_trace(go().Scatter(x=list(xs), y=list(ys), name=name, mode="lines+markers" if len(ys) < 30 else "lines",
                                       line=dict(color=color, dash=DASHES[j % len(DASHES)]), marker=dict(size=5)))
        if not drew:
            missing.append(run.label)
    base_layout(fig, title, y_title, log_y)
    if len(missing) == len(runs):
        return not_recorded(fig, f"{' / '.join(metrics)}: not recorded in this run" +
                            ("" if len(runs) == 1 else "s"))
    if missing:
        fig.add_annotation(text="not recorded in: " + ", ".join(missing), showarrow=False, xref="paper",
                           yref="paper", x=1, y=1.08, xanchor="right", font=dict(size=11, color="#888"))
    return fig


def layer_number(key):
    return int(key.rsplit("_", 1)[1])


def router_heatmap(run):
    """Router mismatch rate per layer: z[layer][step]."""
    keys = sorted(run.keys(r"router/mismatch_rate/layer_\d+"), key=layer_number)
    fig = go().Figure()
    base_layout(fig, f"{run.label}: router mismatch rate per layer (rollout vs learner routes)", "layer")
    if not keys:
        return not_recorded(fig, "router/mismatch_rate/layer_*: not recorded in this run")
    steps = [r["step"] + 1 for r in run.rows]
    z = [[r.get(k) for r in run.rows] for k in keys]
    fig.add_trace(go().Heatmap(x=steps, y=[layer_number(k) for k in keys], z=z, colorscale="Viridis",
                               colorbar=dict(title="mismatch"), hovertemplate="step %{x}<br>layer %{y}<br>%{z:.4f}<extra></extra>"))
    fig.update_yaxes(dtick=1)
    return fig


def timing_bars(run):
    """Where each step's time went: timing_s/<stage> stacked, one bar per step."""
    stages = sorted(k[len("timing_s/"):] for k in run.keys(r"timing_s/.+"))
    fig = go().Figure()
    base_layout(fig, f"{run.label}: where each step's time went (timing_s/<stage>)", "seconds")
    if not stages:
        return not_recorded(fig, "timing_s/*: not recorded in this run")
    totals = {s: sum(run.series("timing_s/" + s)[1]) for s in stages}
    for s in sorted(stages, key=lambda s: -totals[s]):  # the largest at the bottom
        xs, ys = run.series("timing_s/" + s)
        fig.add_trace(go().Bar(x=xs, y=ys, name=f"{s} ({totals[s]:.0f} s)"))
    fig.update_layout(barmode="stack", bargap=0.1)
    return fig


# ---------------------------------------------------------------- page

def fmt(value):
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return html.escape(str(value))


def pipeline_keys(run):
    """A few keys of resolved.toml for the table (tomllib, Python 3.11+)."""
    if not run.resolved:
        return {}
    try:
        import tomllib
        spec = tomllib.loads(run.resolved)
    except Exception:
        return {}
    q, a = spec.get("quantization", {}), spec.get("aqn", {})
    return {
        "pipeline": spec.get("run", {}).get("name"),
        "algorithm": spec.get("algorithm", {}).get("name"),
        "quantization": "/".join(str(q[k]) for k in ("scheme", "mode", "train") if q.get(k)) or None,
        "aqn": ("on" if a.get("enabled") else "off") if a else None,
        "router replay": spec.get("router_replay", {}).get("mode"),
        "seed": spec.get("run", {}).get("seed"),
    }


def summary_rows(run):
    initial = next((r["val/initial_accuracy"] for r in run.rows if r.get("val/initial_accuracy") is not None), None)
    evals = run.series("val/accuracy")[1]
    final = evals[-1] if evals else None
    rewards = run.series("critic/rewards/mean")[1]
    tps = run.series("rollout/tokens_per_s")[1]
    stage_s = {}
    for k in run.keys(r"timing_s/.+"):
        stage_s[k[len("timing_s/"):]] = sum(run.series(k)[1])
    wall = run.wall_s()
    slowest = max(stage_s, key=stage_s.get) if stage_s else None
    row = {"run": run.label}
    row.update(pipeline_keys(run))
    row.update({
        "steps": len(run.rows),
        "wall time (s)": round(wall, 1),
        "held-out acc. before": initial,
        "held-out acc. after": final,
        "gain (points)": round(100 * (final - initial), 1) if final is not None and initial is not None else None,
        "reward (first → last step)": f"{rewards[0]:.3f} → {rewards[-1]:.3f}" if rewards else None,
        "rollout tokens/s (mean)": round(sum(tps) / len(tps), 1) if tps else None,
        "slowest stage (share of stage time)":
            f"{slowest} ({100 * stage_s[slowest] / sum(stage_s.values()):.0f}%)" if slowest and sum(stage_s.values()) > 0 else None,
    })
    return row


def summary_table(runs):
    rows = [summary_rows(r) for r in runs]
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table class='summary'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_div(fig, div_id):
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


STYLE = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 13px; }
table.summary { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
table.summary th { background: #f3f3f3; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.plot { border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; }
pre.command { white-space: pre-wrap; word-break: break-all; }
#script-errors { display: none; background: #fdd; color: #900; padding: 8px; white-space: pre-wrap; }
"""

# Shows any script error on the page (a plot that failed to draw says why).
ERROR_HOOK = """<script>
window.addEventListener('error', function (e) {
  var box = document.getElementById('script-errors');
  box.style.display = 'block';
  box.textContent += 'script error: ' + e.message + ' (' + (e.filename || 'inline') + ':' + e.lineno + ')\\n';
});
</script>"""


def build_page(runs, plotly_js, plotly_version):
    sections = []
    overlays = [
        ("Held-out accuracy (val/accuracy; val/initial_accuracy at 0)", ["val/accuracy"], "accuracy", False, "val/initial_accuracy"),
        ("Reward (critic/rewards/mean)", ["critic/rewards/mean"], "mean reward", False, None),
        ("Rollout vs learner policy: rollout_corr/kl, actor/ppo_kl", ["rollout_corr/kl", "actor/ppo_kl"], "KL", False, None),
        ("Entropy (actor/entropy)", ["actor/entropy"], "nats / token", False, None),
        ("Response length (response_length/mean, max)", ["response_length/mean", "response_length/max"], "tokens", False, None),
        ("AQN noise: aqn/sigma, aqn/applied_rms", ["aqn/sigma", "aqn/applied_rms"], "log scale", True, None),
        ("Quantization error (quant/sqnr_db)", ["quant/sqnr_db"], "SQNR (dB)", False, None),
        ("Rollout throughput (rollout/tokens_per_s)", ["rollout/tokens_per_s"], "tokens / s", False, None),
    ]
    plots = []
    for n, (title, metrics, y_title, log_y, initial) in enumerate(overlays):
        plots.append(figure_div(overlay(runs, title, metrics, y_title, log_y, initial), f"plot-overlay-{n}"))
    sections.append("<h2>Curves (runs overlaid)</h2><div class='grid'>" +
                    "".join(f"<div class='plot'>{p}</div>" for p in plots) + "</div>")
    per_run = []
    for i, run in enumerate(runs):
        per_run.append(f"<div class='plot'>{figure_div(router_heatmap(run), f'plot-router-{i}')}</div>")
        per_run.append(f"<div class='plot'>{figure_div(timing_bars(run), f'plot-timing-{i}')}</div>")
    sections.append("<h2>Per run: router mismatch per layer, where the time goes</h2><div class='grid'>" +
                    "".join(per_run) + "</div>")
    details = []
    for run in runs:
        command = html.escape(run.command.strip()) if run.command else "not recorded in this run (no command.txt)"
        resolved = html.escape(run.resolved) if run.resolved else "not recorded in this run (no resolved.toml)"
        details.append(f"<h3>{html.escape(run.label)} <span class='meta'>({html.escape(run.folder)})</span></h3>"
                       f"<p>Command:</p><pre class='command'>{command}</pre>"
                       f"<details><summary>Resolved pipeline (resolved.toml)</summary><pre>{resolved}</pre></details>")
    sections.append("<h2>Commands and resolved pipelines</h2>" + "".join(details))
    title = "qerl report: " + ", ".join(r.label for r in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>
{ERROR_HOOK}
<script type="text/javascript">/* plotly.js {plotly_version}, inlined: the report needs no network */
{plotly_js}</script>
</head><body>
<div id="script-errors"></div>
<h1>{html.escape(title)}</h1>
<p class="meta">{len(runs)} run(s); x axis: steps done. Written by qerl-report with plotly {plotly_version}.</p>
<h2>Summary</h2>
{summary_table(runs)}
{''.join(sections)}
</body></html>
"""


def main(argv):
    parser = argparse.ArgumentParser(prog="qerl-report", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", help="the HTML file (default: RUN_DIR/report.html for one run, ./report.html for several)")
    args = parser.parse_args(argv)
    out = args.out or (os.path.join(args.run_dirs[0], "report.html") if len(args.run_dirs) == 1 else "report.html")
    try:
        runs = [Run(f, label) for f, label in zip(args.run_dirs, run_labels(args.run_dirs))]
        try:
            import plotly
            from plotly.offline import get_plotlyjs
        except ImportError as e:
            raise ReportError(f"{sys.executable} cannot import plotly ({e}): run scripts/setup.sh (plotly==6.9.0)")
        page = build_page(runs, get_plotlyjs(), plotly.__version__)
        try:
            with open(out, "w", encoding="utf-8") as f:
                f.write(page)
        except OSError as e:
            raise ReportError(f"{out}: cannot write the report ({e.strerror})")
    except ReportError as e:
        print(f"qerl-report: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
