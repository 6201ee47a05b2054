"""Renders docs/dashboard.png: the panels of trailwatch.json, drawn with data
from a real run, queried through a real Prometheus with the panels' own
PromQL.

    .tools/venv/bin/python deploy/grafana/render_preview.py BIN [OUT.png]

It starts `BIN run` (stdin file source, rules from k8s/base/rules), a
Prometheus (Debian package) scraping it every second, feeds about two
minutes of generated CloudTrail records at a varying rate (console sign-in
failures, root usage, a few malformed lines), then runs every panel's
queries over that range (`$__rate_interval` → 10s) and draws the grid in
Grafana's dark style with matplotlib. Loopback only; children are killed
at the end.
"""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FEED_SECONDS = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def wait(what, check, tries=120):
    for _ in range(tries):
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"render_preview: gave up waiting for {what}")


def record(now, account, i, kind):
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    base = {"eventVersion": "1.08", "eventTime": t, "recipientAccountId": account,
            "eventID": f"ev-{i}", "awsRegion": "us-east-1"}
    if kind == "fail":
        base.update(eventName="ConsoleLogin", errorMessage="Failed authentication",
                    eventType="AwsConsoleSignIn", userIdentity={"type": "IAMUser"})
    elif kind == "root":
        base.update(eventName="ListBuckets", eventType="AwsApiCall", userIdentity={"type": "Root"})
    else:
        base.update(eventName=random.choice(["DescribeInstances", "GetObject", "AssumeRole", "ListBuckets"]),
                    eventType="AwsApiCall", userIdentity={"type": "AssumedRole"})
    return json.dumps(base)


def main():
    binary = sys.argv[1]
    out_png = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "dashboard.png")
    dash = json.load(open(os.path.join(HERE, "trailwatch.json")))
    tmp = tempfile.mkdtemp(prefix="tw-preview-")
    tw_port, prom_port = free_port(), free_port()
    config = os.path.join(tmp, "config.yaml")
    with open(config, "w") as f:
        f.write(f"rules:\n  dirs: [{ROOT}/k8s/base/rules]\nsources:\n  - type: file\n    paths: ['-']\n"
                f"engine:\n  shards: 2\n  decoders: 2\nmetrics:\n  listen: 127.0.0.1:{tw_port}\n"
                f"sinks:\n  alerts: {{type: file, path: {tmp}/alerts.json}}\n"
                f"  dead_letter: {{type: file, path: {tmp}/dead.json}}\n")
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                f"  - job_name: trailwatch\n    static_configs:\n      - targets: ['127.0.0.1:{tw_port}']\n")
    children = []
    try:
        tw = subprocess.Popen([binary, "run", "--config", config], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "tw.log"), "w"))
        children.append(tw)
        prom = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml",
                                 f"--storage.tsdb.path={tmp}/tsdb",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(prom)
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait("prometheus to scrape trailwatch", lambda: any(
            r["value"][1] == "1" for r in get_json(api + "/query?query=up")["data"]["result"]))
        start = time.time()
        random.seed(7)
        accounts = [f"1111222233{i:02d}" for i in range(12)]
        i = 0
        while time.time() - start < FEED_SECONDS:
            second = time.time() - start
            # A daytime-like ramp with a burst in the middle.
            rate = 400 + int(300 * (second / FEED_SECONDS)) + (900 if 50 < second < 70 else 0)
            lines = []
            for _ in range(rate // 10):
                i += 1
                r = random.random()
                kind = "fail" if r < 0.03 else "root" if r < 0.035 else "other"
                lines.append(record(time.time() - random.uniform(1, 90), random.choice(accounts), i, kind))
                if random.random() < 0.004:
                    lines.append("{malformed")
            tw.stdin.write(("\n".join(lines) + "\n").encode())
            tw.stdin.flush()
            time.sleep(0.1)
        end = time.time()
        time.sleep(3)
        draw(dash, api, start + 15, end, out_png)
    finally:
        for c in children:
            c.kill()
            c.wait()


def query_range(api, expr, start, end):
    expr = expr.replace("$__rate_interval", "10s").replace('job=~"$job"', 'job="trailwatch"')
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 2})
    return get_json(f"{api}/query_range?{q}")["data"]["result"]


def legend(fmt, metric):
    for k, v in metric.items():
        fmt = fmt.replace("{{" + k + "}}", v)
    return fmt


BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#b877d9", "#37872d", "#e02f44", "#8ab8ff"]


def draw(dash, api, start, end, out_png):
    cols, row_h = 24, 0.62
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    fig = plt.figure(figsize=(16, rows * row_h * 16 / cols * 1.25), facecolor=BG)
    fig.suptitle("trailwatch  ·  Grafana dashboard preview (real run, 2 min, Prometheus 1s scrape)",
                 color=TEXT, fontsize=12, x=0.01, ha="left", y=0.995)
    pad = 0.004
    for p in dash["panels"]:
        g = p["gridPos"]
        left, width = g["x"] / cols + pad, g["w"] / cols - 2 * pad
        top = 1 - (g["y"] / rows) * 0.95 - 0.035
        height = g["h"] / rows * 0.95 - 2 * pad
        box = fig.add_axes([left, top - height, width, height])
        box.set_facecolor(PANEL)
        for s in box.spines.values():
            s.set_color(GRID)
        box.set_xticks([])
        box.set_yticks([])
        box.set_title(p["title"], color=TEXT, fontsize=9, loc="left", pad=3)
        series = []
        for t in p["targets"]:
            for r in query_range(api, t["expr"], start, end):
                xs = [float(v[0]) - start for v in r["values"]]
                ys = [float(v[1]) for v in r["values"]]
                series.append((legend(t["legendFormat"], r["metric"]), xs, ys))
        unit = p["fieldConfig"]["defaults"].get("unit", "short")
        if p["type"] == "stat":
            value = series[0][2][-1] if series else float("nan")
            label = series[0][0] if series else ""
            text = (f"{value * 100:.2f}%" if unit == "percentunit" else
                    label if p["title"] == "Version" else
                    ("UP" if value == 1 else "DOWN") if p["title"] == "Ready" else f"{value:,.0f}")
            color = "#37872d" if p["title"] != "Decode failure ratio" else "#c4162a" if value > 0.01 else "#37872d"
            box.add_patch(FancyBboxPatch((0.05, 0.1), 0.9, 0.6, boxstyle="round,pad=0.01",
                                         transform=box.transAxes, color=color))
            box.text(0.5, 0.4, text, color="white", fontsize=16, ha="center", va="center",
                     transform=box.transAxes, weight="bold")
            continue
        inner = fig.add_axes([left + 0.03, top - height + 0.045, width - 0.04, height - 0.075])
        inner.set_facecolor(PANEL)
        inner.tick_params(colors=TEXT, labelsize=7)
        for s in inner.spines.values():
            s.set_visible(False)
        inner.grid(color=GRID, linewidth=0.5)
        stacked = p["fieldConfig"]["defaults"].get("custom", {}).get("stacking", {}).get("mode") == "normal"
        if stacked and series:
            xs = series[0][1]
            ys = [[dict(zip(s[1], s[2])).get(x, 0.0) for x in xs] for s in series]
            inner.stackplot(xs, ys, labels=[s[0] for s in series], colors=COLORS, alpha=0.7)
        else:
            for n, (name, xs, ys) in enumerate(series[:8]):
                inner.plot(xs, ys, color=COLORS[n % len(COLORS)], linewidth=1.2, label=name)
                inner.fill_between(xs, ys, color=COLORS[n % len(COLORS)], alpha=0.1)
        if not series:
            inner.text(0.5, 0.5, "no data (source not in this run)", color="#8e8e8e",
                       ha="center", va="center", transform=inner.transAxes, fontsize=8)
        inner.set_xlabel("seconds", color="#8e8e8e", fontsize=6, labelpad=1)
        if series:
            inner.legend(loc="upper left", fontsize=6, facecolor=PANEL, edgecolor=GRID,
                         labelcolor=TEXT, ncol=2, framealpha=0.8)
    os.makedirs(os.path.dirname(out_png), exist_ok=True)
    fig.savefig(out_png, dpi=100, facecolor=BG)
    print(f"render_preview: wrote {out_png}")


if __name__ == "__main__":
    main()
