#!/usr/bin/env python3
"""summary.md: backends ranked per workload, with ratios to tars.

    compare/summary.py results/latest      (re)write and print summary.md

compare/run.py calls render() at the end of a run; running this file alone
redoes the summary from an existing compare.json + compare.csv.
"""

import csv
import json
import math
import os
import sys

# (label, workload, variant, param_value, metric, better)
HEADLINES = [
    ("pair 16 B", "pair", "", 16, "ns_per_op", "low"),
    ("pair 64 B", "pair", "", 64, "ns_per_op", "low"),
    ("pair 64 B, p99.9", "pair", "", 64, "p999_ns", "low"),
    ("pair 1024 B", "pair", "", 1024, "ns_per_op", "low"),
    ("fill 10k: alloc", "fill", "alloc", 10000, "ns_per_op", "low"),
    ("fill 10k: free", "fill", "free", 10000, "ns_per_op", "low"),
    ("fill 10k: RSS/buffer", "fill", "", 10000, "rss_per_buffer_bytes", "low"),
    ("fill 100k: RSS/buffer", "fill", "", 100000, "rss_per_buffer_bytes", "low"),
    ("fill 100k: VMAs", "fill", "", 100000, "vma_count", "low"),
    ("churn 1k crypto", "churn", "crypto", 1000, "ns_per_op", "low"),
    ("churn 1k crypto, p99", "churn", "crypto", 1000, "p99_ns", "low"),
    ("churn 10k uniform", "churn", "uniform", 10000, "ns_per_op", "low"),
    ("churn 10k uniform: overhead/buffer", "churn", "uniform", 10000,
     "overhead_per_buffer_bytes", "low"),
    ("session bundle", "session", "", 5, "ns_per_op", "low"),
    ("threads 1: throughput", "threads", "local", 1, "aggregate_ops_per_s", "high"),
    ("threads 2: throughput", "threads", "local", 2, "aggregate_ops_per_s", "high"),
    ("threads 2, remote free", "threads", "remote", 2, "aggregate_ops_per_s", "high"),
    ("protect toggle", "protect", "toggle", 32, "ns_per_op", "low"),
    ("capacity (64 B)", "capacity", "", 64, "capacity_count", "high"),
]
METRIC_LABEL = {
    "ns_per_op": "ns/op (median of the repetition means)", "p999_ns": "p99.9 ns/op", "p99_ns": "p99 ns/op",
    "rss_per_buffer_bytes": "resident bytes per live buffer",
    "vma_count": "VMAs at peak",
    "overhead_per_buffer_bytes": "bytes of overhead per live buffer",
    "aggregate_ops_per_s": "ops/s, all threads",
    "capacity_count": "live buffers before failure (cap 2M)",
}


def num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def fmt(v, unit):
    if v is None:
        return "-"
    a = abs(v)
    if unit == "ns":
        if a >= 1e6:
            return "%.2f ms" % (v / 1e6)
        if a >= 1e3:
            return "%.2f us" % (v / 1e3)
        return "%.1f ns" % v if a < 100 else "%.0f ns" % v
    if unit == "bytes":
        if a >= 1 << 20:
            return "%.1f MiB" % (v / (1 << 20))
        if a >= 1 << 10:
            return "%.1f KiB" % (v / 1024)
        return "%.0f B" % v
    if unit == "ops/s":
        if a >= 1e6:
            return "%.1f M/s" % (v / 1e6)
        return "%.0f k/s" % (v / 1e3)
    if unit == "count":
        return "{:,.0f}".format(v)
    return "%.3g" % v


def ratio(v, base):
    if v is None or base is None or base == 0:
        return ""
    r = v / base
    return " (%.2gx)" % r if r < 10 else " (%.0fx)" % r


def cell_failed(rows, backend, workload, pv):
    """Why a backend has no value for a headline, from its status rows."""
    for r in rows:
        if (r["backend"] == backend and r["workload"] == workload
                and r["status"] != "ok"
                and (num(r["param_value"]) in (None, pv) or r["metric"] == "process")):
            if r["status"] == "unsupported":
                return "n/a"
            reached = [num(x["value"]) for x in rows
                       if x["backend"] == backend and x["workload"] == workload
                       and num(x["param_value"]) == pv and x["metric"] == "live_reached"]
            if reached and reached[0] is not None:
                return "failed%s at %s" % (" " + r["errno"] if r["errno"] else "",
                                           "{:,.0f}".format(reached[0]))
            return "failed" + (" " + r["errno"] if r["errno"] else "")
    return None


def render(doc, rows):
    backends = [b for b in doc.get("backends", {})] or sorted({r["backend"] for r in rows})
    m = doc.get("machine", {})
    out = []
    out.append("# Allocator comparison, run %s (scale %s)\n" % (doc.get("run"), doc.get("scale")))
    out.append("Machine: %s, %s CPUs, %s; Linux %s; Debian %s; vm.max_map_count %s; "
               "RLIMIT_MEMLOCK %s; euid %s; load %s -> %s.\n" % (
                   m.get("cpu", "?"), m.get("cpus", "?"), m.get("memory", "?"),
                   m.get("kernel", "?"), m.get("debian", "?"), m.get("max_map_count", "?"),
                   m.get("memlock_limit", "?"), m.get("euid", "?"),
                   " ".join(str(m.get("loadavg_start", "?")).split()[:3]),
                   " ".join(str(m.get("loadavg_end", "?")).split()[:3])))
    libs = ["%s: %s" % (b, i.get("library", "?")) for b, i in doc.get("backends", {}).items()]
    if libs:
        out.append("Backends: " + "; ".join(libs) + ".\n")
    out.append("Ranked best first. In brackets: value / tars's value in this same run "
               "(latency and bytes: lower is better; throughput and capacity: higher is "
               "better). Medians over repetitions; the machine is shared and noisy, so "
               "read ratios, not absolute numbers.\n")
    if "tars" not in backends:
        out.append("(tars is not part of this run: no ratios.)\n")
    n = len(backends)
    out.append("| workload | metric | " + " | ".join(str(i + 1) for i in range(n)) + " |")
    out.append("|---|---|" + "---|" * n)
    for label, w, var, pv, metric, better in HEADLINES:
        vals = {}
        unit = ""
        for r in rows:
            if (r["workload"] == w and r["variant"] == var and num(r["param_value"]) == pv
                    and r["metric"] == metric and r["status"] == "ok"):
                v = num(r["value"])
                if v is not None:
                    vals[r["backend"]] = v
                    unit = r["unit"]
        if not any(r["workload"] == w and num(r["param_value"]) == pv for r in rows):
            continue  # not part of this run (scale, or --workloads)
        present = [b for b in backends if any(
            r["backend"] == b and r["workload"] == w for r in rows)]
        ranked = sorted(vals, key=lambda b: vals[b], reverse=(better == "high"))
        base = vals.get("tars")
        cells = []
        for b in ranked:
            extra = ""
            if w == "capacity":
                for r in rows:
                    if (r["backend"] == b and r["workload"] == w
                            and r["metric"] == metric and r["errno"]):
                        extra = " " + r["errno"]
            cells.append("%s %s%s%s" % (b, fmt(vals[b], unit), extra,
                                        "" if b == "tars" else ratio(vals[b], base)))
        for b in present:
            if b not in vals:
                why = cell_failed(rows, b, w, pv)
                cells.append("%s %s" % (b, why or "-"))
        cells += [""] * (n - len(cells))
        out.append("| %s | %s | %s |" % (label, METRIC_LABEL.get(metric, metric),
                                         " | ".join(cells[:n])))
    out.append("")
    notes = []
    for b, i in doc.get("backends", {}).items():
        if i.get("capacity_note"):
            notes.append("- %s: capacity %s." % (b, i["capacity_note"]))
    for r in rows:
        if r["metric"] == "arena_bytes" and r["workload"] == "capacity":
            notes.append("- %s: %s." % (r["backend"], r["note"]))
        if r["metric"] in ("mlock_failures", "tars_unlocked_bytes") and num(r["value"]):
            notes.append("- %s %s %s: %s = %s (%s)." % (
                r["backend"], r["workload"], r["param_value"], r["metric"], r["value"], r["note"]))
    if doc.get("errors"):
        notes.append("- PROCESS FAILURES: " + "; ".join(doc["errors"]))
    if notes:
        out.append("Notes:\n")
        out.extend(notes)
        out.append("")
    out.append("Raw: compare.json; tidy: compare.csv (columns in compare/README.md); "
               "figures: plots/out/.\n")
    return "\n".join(out)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: compare/summary.py RESULTS_DIR")
    d = sys.argv[1]
    with open(os.path.join(d, "compare.json")) as f:
        doc = json.load(f)
    with open(os.path.join(d, "compare.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    md = render(doc, rows)
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
