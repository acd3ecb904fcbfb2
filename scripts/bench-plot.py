"""Draw the latency distributions of scripts/bench's CSV as one PNG.

One row per (case, metric, subject) with many trials in milliseconds: every
trial a point, the median a bar. Log scale, because a 30 s poll and a 0.2 s
restart must fit on one axis.
"""
import csv
import statistics
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
rows = OrderedDict()
with open(src, newline="") as f:
    for r in csv.DictReader(f):
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
ax.set_title("podkeeper vs peers, same run (scripts/bench)")
ax.grid(axis="x", which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(dst, dpi=110)
print(f"wrote {dst}")
