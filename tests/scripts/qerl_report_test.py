#!/usr/bin/env python3
"""qerl-report end to end: the report of two real short runs (AQN on / off,
qerl_short_runs.py) opened in headless Chromium draws every plot (each plot
div holds a rendered plotly SVG with its traces, or its "not recorded in
this run" note), with no script error and no network reference; a
screenshot is kept in the artefacts folder. The checker itself fails on a
sabotaged copy (plotly's script removed), so it can fail. Bad input (no
metrics.jsonl, a bad line) is one error line and exit status 2.

Usage: qerl_report_test.py --qerl-report EXE --runs DIR --artefacts DIR"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import checks
from checks import check, summary


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("qerl_report_test: no chromium: install it with QERL_TEST_DEPS=1 scripts/setup.sh")


def browser(args, html_path, *flags):
    """Chromium headless on the file; (stdout, stderr). --virtual-time-budget
    lets the page's scripts run to completion before the DOM is dumped."""
    command = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", *flags,
               "file://" + os.path.abspath(html_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return done.stdout, done.stderr


VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PlotDivs(HTMLParser):
    """Each plotly plot div (class plotly-graph-div): its id and what it holds."""

    def __init__(self):
        super().__init__()
        self.plots = {}  # id -> {"svg": n, "traces": n, "texts": [...]}
        self.stack = []  # open tags, with the plot id they belong to
        self.errors_box = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        owner = self.stack[-1][1] if self.stack else None
        classes = (a.get("class") or "").split()
        if tag == "div" and "plotly-graph-div" in classes:
            owner = a.get("id")
            self.plots[owner] = {"svg": 0, "traces": 0, "texts": []}
        if tag == "div" and a.get("id") == "script-errors":
            self.errors_box = ""
            owner = "#errors"
        if owner in self.plots:
            p = self.plots[owner]
            if tag == "svg" and "main-svg" in classes:
                p["svg"] += 1
            # plotly draws a trace as <g class="trace scatter|bars|heatmap..."> (heatmaps: an <image>)
            if tag == "g" and "trace" in classes:
                p["traces"] += 1
            if tag == "image" and owner in self.plots:
                p["traces"] += 1
        if tag not in VOID_ELEMENTS:
            self.stack.append((tag, owner))

    def handle_startendtag(self, tag, attrs):  # <x/>: opens nothing
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if any(t == tag for t, _ in self.stack):
            while self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        owner = self.stack[-1][1] if self.stack else None
        if owner in self.plots and data.strip():
            self.plots[owner]["texts"].append(data.strip())
        if owner == "#errors":
            self.errors_box += data


def inspect_report(args, html_path, label):
    """(plots, script errors) of the page as Chromium rendered it."""
    dom, log = browser(args, html_path, "--dump-dom")
    parser = PlotDivs()
    parser.feed(dom)
    errors = [l for l in log.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    if parser.errors_box:
        errors.append("page: " + parser.errors_box.strip())
    with open(os.path.join(args.artefacts, f"{label}.dom.html"), "w") as f:
        f.write(dom)
    return parser.plots, errors


def plot_problems(plots):
    """The plots that did not render: no SVG, or neither traces nor a note."""
    bad = []
    for pid, p in plots.items():
        note = any("not recorded" in t for t in p["texts"])
        if p["svg"] == 0 or (p["traces"] == 0 and not note):
            bad.append(f"{pid} (svg {p['svg']}, traces {p['traces']})")
    return bad


def report(args, *argv):
    done = subprocess.run([args.qerl_report, *argv], capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def check_two_runs(args, runs):
    out = os.path.join(args.artefacts, "report.html")
    status, stdout, stderr = report(args, *runs, "--out", out)
    check(status == 0 and stdout.strip() == out, f"report of two runs: exit {status}, stdout {stdout!r}, {stderr[-300:]}")
    with open(out, encoding="utf-8") as f:
        page = f.read()
    check(len(page) > 1_000_000 and "plotly.js" in page, "the report inlines plotly.js")
    check(not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:", page), "no script or style is fetched from elsewhere")
    for needle in ("aqn_on", "aqn_off", "r3_aqn_nvfp4.toml", "--set", "Resolved pipeline", "<details>",
                   "held-out acc. before", "[quantization]"):
        check(needle in page, f"the report shows {needle!r}")

    plots, errors = inspect_report(args, out, "report")
    check(not errors, f"no script errors in Chromium: {errors[:3]}")
    overlays = [p for p in plots if p.startswith("plot-overlay-")]
    per_run = [p for p in plots if p.startswith(("plot-router-", "plot-timing-"))]
    check(len(overlays) == 8, f"8 overlaid plots, found {len(overlays)}")
    check(len(per_run) == 4, f"a router heat map and a timing bar per run (4), found {len(per_run)}")
    check(not plot_problems(plots), f"every plot rendered: not {plot_problems(plots)}")
    # The shipped pipeline records these: they are drawn, for both runs.
    for pid in ("plot-overlay-0", "plot-overlay-1", "plot-overlay-2", "plot-overlay-4", "plot-overlay-6",
                "plot-router-0", "plot-router-1", "plot-timing-0", "plot-timing-1"):
        p = plots.get(pid, {"traces": 0, "texts": []})
        check(p["traces"] >= 1 and not any("not recorded" in t for t in p["texts"]),
              f"{pid} has traces ({p['traces']}) and no 'not recorded' note")
    # The AQN plot: drawn for aqn_on, and it says the other run lacks it.
    aqn = plots.get("plot-overlay-5", {"traces": 0, "texts": []})
    check(aqn["traces"] >= 1 and any("not recorded in: aqn_off" in t for t in aqn["texts"]),
          f"AQN plot: aqn_on's curves, a note for aqn_off ({aqn['texts'][:6]})")
    height = 300 + 420 * (len(plots) // 2 + 1) + 400
    browser(args, out, f"--screenshot={os.path.join(args.artefacts, 'report.png')}", f"--window-size=1400,{height}")
    png = os.path.join(args.artefacts, "report.png")
    check(os.path.isfile(png) and os.path.getsize(png) > 50_000 and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n",
          f"screenshot {png} kept")
    return out


def check_one_run_without(args, runs):
    """A run with no AQN: its AQN plot says so rather than failing; the rest draws."""
    out = os.path.join(args.artefacts, "report_aqn_off.html")
    status, _, stderr = report(args, runs[1], "--out", out)
    check(status == 0, f"report of one run: exit {status} {stderr[-300:]}")
    plots, errors = inspect_report(args, out, "report_aqn_off")
    check(not errors, f"one run: no script errors: {errors[:3]}")
    check(not plot_problems(plots), f"one run: every plot rendered: not {plot_problems(plots)}")
    aqn = plots.get("plot-overlay-5", {"texts": []})
    check(any("not recorded in this run" in t for t in aqn["texts"]), f"one run without AQN: the AQN plot says 'not recorded in this run' ({aqn['texts'][:4]})")
    # Default --out: RUN_DIR/report.html, its path printed.
    copy = os.path.join(args.artefacts, "copied_run")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(runs[0], copy, ignore=shutil.ignore_patterns("tensorboard"))
    status, stdout, _ = report(args, copy)
    check(status == 0 and stdout.strip() == os.path.join(copy, "report.html") and os.path.isfile(stdout.strip()),
          f"default --out is RUN_DIR/report.html (printed {stdout!r})")


def check_sabotage_fails(args, good):
    """The checker catches a report whose plots cannot draw."""
    with open(good, encoding="utf-8") as f:
        page = f.read()
    start = page.index('<script type="text/javascript">/* plotly.js')
    end = page.index("</script>", start) + len("</script>")
    broken = os.path.join(args.artefacts, "sabotaged.html")
    with open(broken, "w", encoding="utf-8") as f:
        f.write(page[:start] + page[end:])
    plots, errors = inspect_report(args, broken, "sabotaged")
    check(errors and any("Plotly" in e for e in errors), f"sabotaged report: the checker sees the script errors ({errors[:2]})")
    check(len(plot_problems(plots)) == len(plots) > 0, "sabotaged report: the checker sees no plot rendered")


def bad_input(args, runs):
    scratch = os.path.join(args.artefacts, "bad_input")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.join(scratch, "empty_dir"))
    with open(os.path.join(runs[0], "metrics.jsonl")) as f:
        lines = f.read().splitlines()

    def run_with(name, text):
        d = os.path.join(scratch, name)
        os.makedirs(d)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            f.write(text)
        return d

    cases = [
        ([os.path.join(scratch, "empty_dir")], "empty_dir: not a run folder (expected", "metrics.jsonl"),
        ([os.path.join(scratch, "no_such_dir")], "no_such_dir: no such run folder", ""),
        ([run_with("garbage", lines[0] + "\n{not json\n" + lines[1] + "\n")], "garbage/metrics.jsonl:2: expected one JSON object per line", "invalid JSON"),
        ([run_with("array", lines[0] + "\n[1, 2]\n")], "array/metrics.jsonl:2: expected a JSON object of metrics", "got a list"),
        ([run_with("no_step", lines[0] + "\n" + json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "step"}) + "\n")],
         "no_step/metrics.jsonl:2: expected an integer \"step\"", "got null"),
        ([run_with("string_value", lines[0] + "\n" + lines[1][:-1] + ', "actor/lr": "fast"}\n')],
         "string_value/metrics.jsonl:2: expected a number or null for \"actor/lr\"", ""),
        ([run_with("no_steps", "\n")], "no_steps/metrics.jsonl: expected one metrics object per step", ""),
        ([runs[0], os.path.join(scratch, "empty_dir")], "empty_dir: not a run folder", ""),
    ]
    for argv, want, also in cases:
        status, stdout, stderr = report(args, *argv, "--out", os.path.join(scratch, "never.html"))
        lines_out = stderr.strip().splitlines()
        check(status == 2 and len(lines_out) == 1 and lines_out[0].startswith("qerl-report: error: ")
              and want in lines_out[0] and also in lines_out[0],
              f"bad input {os.path.basename(argv[-1])}: exit {status}, want one line with {want!r}, got {stderr!r}")
    check(not os.path.exists(os.path.join(scratch, "never.html")), "bad input writes no report")
    # A last line cut short (the run died writing it) is left out with a warning, not an error.
    cut = run_with("cut_last_line", "\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    status, _, stderr = report(args, cut, "--out", os.path.join(scratch, "cut.html"))
    check(status == 0 and "cut_last_line/metrics.jsonl:3: the last line is cut short" in stderr,
          f"a cut last line: exit {status}, warning {stderr!r}")


def main():
    parser = argparse.ArgumentParser()
    for a in ("--qerl-report", "--runs", "--artefacts"):
        parser.add_argument(a, required=True)
    args = parser.parse_args()
    os.makedirs(args.artefacts, exist_ok=True)
    runs = [os.path.join(args.runs, "aqn_on"), os.path.join(args.runs, "aqn_off")]
    good = check_two_runs(args, runs)
    check_one_run_without(args, runs)
    check_sabotage_fails(args, good)
    bad_input(args, runs)
    return summary(f"; artefacts in {args.artefacts}")


if __name__ == "__main__":
    sys.exit(main())
