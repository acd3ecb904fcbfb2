"""Draw scripts/bench's CSV: the latency distributions, and mass recovery against --max-concurrent.

usage: bench-plot.py CSV LATENCY.png [MASS.png]

Latencies: one row per (case, metric, subject) with many trials in
milliseconds: every trial a point, the median a bar. Log scale, because a
30 s poll and a 0.2 s restart must fit on one axis. Mass (case 6): time to the
last of the apps running, podkeeper at each --max-concurrent, podman and
Quadlet as horizontal lines.
"""
import csv
import os
import statistics
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401

src, dst = sys.argv[1], sys.argv[2]
mass_dst = sys.argv[3] if len(sys.argv) > 3 else None
rows = OrderedDict()
with open(src, newline="") as f:
    all_rows = list(csv.DictReader(f))
# Which podman: the first line of the bench's table.md beside the CSV.
measured_on = ""
try:
    with open(os.path.join(os.path.dirname(src), "table.md")) as f:
        first = f.readline().strip()
    if first.startswith("Measured on"):
        measured_on = "\n" + first
except OSError:
    pass


def plot_mass(path):
    series = {}
    peers = {}
    for r in all_rows:
        if not r["case"].startswith("6") or r["unit"] != "ms":
            continue
        if r["metric"] not in ("cold start → all running", "all killed at once → all running"):
            continue
        v = float(r["value"]) / 1000.0
        if "--max-concurrent" in r["subject"]:
            c = int(r["subject"].rsplit(" ", 1)[1])
            series.setdefault(r["metric"], {}).setdefault(c, []).append(v)
        else:
            peers.setdefault((r["metric"], r["subject"]), []).append(v)
    if not series:
        print("no mass samples to plot")
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = {"cold start → all running": "tab:blue", "all killed at once → all running": "tab:green"}
    for metric, by_c in series.items():
        cs = sorted(by_c)
        ax.plot(cs, [statistics.median(by_c[c]) for c in cs], "o-", color=styles.get(metric),
                label=f"podkeeper: {metric}")
    for (metric, subject), vals in peers.items():
        ax.axhline(statistics.median(vals), color=styles.get(metric), ls="--" if subject == "podman" else ":",
                   label=f"{subject}: {metric}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({c for by_c in series.values() for c in by_c}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("podkeeper --max-concurrent")
    ax.set_ylabel("seconds until the last app runs")
    ax.set_title("Mass: all apps at once (scripts/bench case 6)" + measured_on, fontsize=9 if measured_on else None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if mass_dst:
    plot_mass(mass_dst)

for r in all_rows:
    if r["unit"] != "ms" or not r["case"][:1] in "12":
        continue
    rows.setdefault((r["case"], r["metric"], r["subject"]), []).append(float(r["value"]))
rows = OrderedDict((k, v) for k, v in rows.items() if len(v) >= 3)
if not rows:
    sys.exit("no latency samples to plot")

colors = {"podkeeper": "tab:green"}
fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.6))
labels = []
for i, ((case, metric, subject), vals) in enumerate(reversed(list(rows.items()))):
    c = colors.get(subject, "tab:blue" if "poll" not in subject else "tab:gray")
    jitter = [(j % 7 - 3) * 0.05 for j in range(len(vals))]
    ax.scatter(vals, [i + d for d in jitter], s=14, alpha=0.7, color=c)
    med = statistics.median(vals)  # as the table computes it
    ax.plot([med, med], [i - 0.35, i + 0.35], color="black", lw=2)
    labels.append(f"{case}: {metric}\n{subject}  (median {med:.0f} ms, n={len(vals)})")
ax.set_yticks(range(len(labels)))
ax.set_yticklabels(labels, fontsize=8)
ax.set_xscale("log")
ax.set_xlabel("milliseconds (log scale); bar = median")
ax.set_title("podkeeper vs peers, same run (scripts/bench)" + measured_on, fontsize=9 if measured_on else None)
ax.grid(axis="x", which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(dst, dpi=110)
print(f"wrote {dst}")
