#!/usr/bin/env python3
"""Draws a window of a corun execution trace (Chrome trace-event JSON, as
written by CORUN_TRACE=path) as a timeline PNG: one row per thread, a bar
per coroutine run slice, grey bars for time blocked in the poller, ticks
for wake-ups. For documentation; open the JSON in ui.perfetto.dev to
explore it interactively.

usage: trace_png.py TRACE.json OUT.png [START_MS] [WIDTH_MS]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    trace, out = sys.argv[1], sys.argv[2]
    start_ms = float(sys.argv[3]) if len(sys.argv) > 3 else None
    width_ms = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    events = json.load(open(trace))["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    timed = [e for e in events if e["ph"] != "M"]
    if start_ms is None:
        # Skip start-up: begin at the middle of the trace.
        ts = sorted(e["ts"] for e in timed)
        start_ms = ts[len(ts) // 2] / 1000
    lo, hi = start_ms * 1000, (start_ms + width_ms) * 1000
    tids = sorted(names)
    row = {t: i for i, t in enumerate(tids)}
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.7 * len(tids)))
    open_slice = {}
    colors = plt.get_cmap("tab20")
    for e in sorted(timed, key=lambda e: e["ts"]):
        t, ph = e["tid"], e["ph"]
        if ph == "B":
            open_slice[t] = e
        elif ph == "E" and t in open_slice:
            b = open_slice.pop(t)
            s, f = max(b["ts"], lo), min(e["ts"], hi)
            if f <= s:
                continue
            if b["name"].startswith("coroutine"):
                c = colors(b["args"]["coroutine"] % 20)
                ax.broken_barh([(s / 1000, (f - s) / 1000)], (row[t] - 0.35, 0.7), color=c)
            else:
                ax.broken_barh([(s / 1000, (f - s) / 1000)], (row[t] - 0.15, 0.3), color="0.75")
        elif ph == "i" and e["name"] == "wake" and lo <= e["ts"] <= hi:
            ax.plot([e["ts"] / 1000] * 2, [row[t] + 0.38, row[t] + 0.48], color="k", lw=0.6)
    ax.set_yticks(range(len(tids)), [names[t] for t in tids])
    ax.set_xlim(lo / 1000, hi / 1000)
    ax.set_xlabel("ms since trace start")
    ax.set_title(
        "corun trace: coroutine run slices (coloured by coroutine), "
        "blocked in the poller (grey), wake-ups (ticks)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
