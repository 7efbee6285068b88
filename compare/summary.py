#!/usr/bin/env python3
"""summary.md: backends ranked per headline measurement, ratios to tars
with their 95% bootstrap intervals, and per-operation tails.

    compare/summary.py results/latest      (re)write and print summary.md

compare/run.py calls render() at the end of a run; running this file alone
redoes the summary from an existing compare.json, compare.csv and
ratios.csv.  The headlines are the workloads' own (compare-<backend>
--list, kept in compare.json): a new workload brings its rows with it.
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402

num = suite.num

METRIC_LABEL = {
    "ns_per_op": "ns/op (median over processes)",
    "op_p99_ns": "per-op p99", "op_p999_ns": "per-op p99.9",
    "rss_per_buffer_bytes": "resident bytes per live buffer",
    "vma_count": "VMAs at peak",
    "overhead_per_buffer_bytes": "bytes of overhead per live buffer",
    "aggregate_ops_per_s": "ops/s, all threads",
    "ops_per_cpu_s": "ops per CPU-second, all threads",
    "capacity_count": "live buffers before failure (cap 2M)",
    "handshakes_per_s": "handshakes/s",
    "peak_rss_bytes": "peak RSS",
    "syscalls_per_op": "system calls per op (backends that count them)",
}


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
        if a >= 1e4:
            return "%.0f k/s" % (v / 1e3)
        return "%.0f /s" % v
    if unit == "count":
        return "{:,.0f}".format(v) if a >= 100 or v == int(v) else "%.3g" % v
    return "%.3g" % v


def fmt_ratio(r):
    if r is None:
        return "-"
    return "%.2fx" % r if r < 10 else "%.0fx" % r


def ratio_text(row):
    """" 0.61x [0.55-0.70]", with "~" when the interval includes 1."""
    r = num(row.get("ratio"))
    if r is None:
        return ""
    lo, hi = num(row.get("ci_lo")), num(row.get("ci_hi"))
    if lo is None:
        return " (%s)" % fmt_ratio(r)
    mark = " ~" if str(row.get("ci_includes_1")) == "1" else ""
    return " (%s [%s-%s]%s)" % (fmt_ratio(r), fmt_ratio(lo), fmt_ratio(hi), mark)


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


def index(ratios):
    return {(r["backend"], r["workload"], r["variant"], num(r["param_value"]),
             r["metric"]): r for r in ratios}


def headline_table(doc, rows, rat, backends):
    out = []
    n = len(backends)
    out.append("| workload | metric | " + " | ".join(str(i + 1) for i in range(n)) + " |")
    out.append("|---|---|" + "---|" * n)
    for w in doc.get("workloads", []):
        for h in w["headlines"]:
            pv = num(h["param_value"])
            if not any(r["workload"] == w["name"] and num(r["param_value"]) in (pv, None)
                       for r in rows):
                continue
            got = {b: rat.get((b, w["name"], h["variant"], pv, h["metric"]))
                   for b in backends}
            got = {b: r for b, r in got.items() if r is not None}
            if not got:
                continue
            unit = next(iter(got.values()))["unit"]
            ranked = sorted(got, key=lambda b: num(got[b]["median"]),
                            reverse=(h["better"] == "high"))
            cells = []
            for b in ranked:
                extra = ""
                if h["metric"] == "capacity_count":
                    errs = {r["errno"] for r in rows if r["backend"] == b and
                            r["workload"] == w["name"] and r["metric"] == h["metric"]
                            and r["errno"]}
                    extra = " " + " ".join(sorted(errs)) if errs else ""
                cells.append("%s %s%s%s" % (b, fmt(num(got[b]["median"]), unit), extra,
                                            ratio_text(got[b])))
            present = [b for b in backends if any(
                r["backend"] == b and r["workload"] == w["name"] for r in rows)]
            for b in present:
                if b not in got:
                    why = cell_failed(rows, b, w["name"], pv)
                    cells.append("%s %s" % (b, why or "-"))
            cells += [""] * (n - len(cells))
            out.append("| %s | %s | %s |" % (h["label"], METRIC_LABEL.get(
                h["metric"], h["metric"]), " | ".join(cells[:n])))
    return out


def tails_table(doc, rat, backends):
    """Per-operation p50 / p99 / p99.9 for every headline latency."""
    keys = []
    for w in doc.get("workloads", []):
        for h in w["headlines"]:
            if h["metric"] == "ns_per_op":
                keys.append((h["label"], w["name"], h["variant"], num(h["param_value"])))
    present = [b for b in backends if any(
        (b, wl, v, pv, "op_p99_ns") in rat for _, wl, v, pv in keys)]
    if not present:
        return []
    out = ["| measurement | " + " | ".join(present) + " |",
           "|---|" + "---|" * len(present)]
    for label, wl, v, pv in keys:
        cells = []
        for b in present:
            q = [rat.get((b, wl, v, pv, m)) for m in ("op_p50_ns", "op_p99_ns", "op_p999_ns")]
            cells.append(" / ".join(fmt(num(r["median"]), "ns") if r else "-" for r in q))
        if any(c != "- / - / -" for c in cells):
            out.append("| %s | %s |" % (label, " | ".join(cells)))
    return out


def render(doc, rows, ratios):
    backends = list(doc.get("backends", {})) or sorted({r["backend"] for r in rows})
    rat = index(ratios)
    m = doc.get("machine", {})
    out = []
    out.append("# Allocator comparison, run %s (scale %s, %s processes per measurement)\n"
               % (doc.get("run"), doc.get("scale"), doc.get("rounds", 1)))
    out.append("Machine: %s, %s CPUs, %s; Linux %s; Debian %s; vm.max_map_count %s; "
               "RLIMIT_MEMLOCK %s; euid %s; load %s -> %s; git %s.\n" % (
                   m.get("cpu", "?"), m.get("cpus", "?"), m.get("memory", "?"),
                   m.get("kernel", "?"), m.get("debian", "?"), m.get("max_map_count", "?"),
                   m.get("memlock_limit", "?"), m.get("euid", "?"),
                   " ".join(str(m.get("loadavg_start", "?")).split()[:3]),
                   " ".join(str(m.get("loadavg_end", "?")).split()[:3]),
                   doc.get("git", {}).get("commit", "?")))
    libs = ["%s: %s" % (b, i.get("library", "?")) for b, i in doc.get("backends", {}).items()]
    if libs:
        out.append("Backends: " + "; ".join(libs) + ".\n")
    out.append("Ranked best first; the value is the median over the processes of the "
               "run (each process's own value is a median over its repetitions). In "
               "brackets: value / tars's value, and its 95% interval (percentile "
               "bootstrap over the process medians of both backends); `~` marks an "
               "interval that includes 1.0, a difference this run cannot tell from "
               "noise. Latency, bytes and system calls: lower is better; throughput and "
               "capacity: higher is better. The machine is shared and noisy: read the "
               "ratios and their intervals, not the absolute numbers.\n")
    if "tars" not in backends:
        out.append("(tars is not part of this run: no ratios.)\n")
    out += headline_table(doc, rows, rat, backends)
    out.append("")
    tails = tails_table(doc, rat, backends)
    if tails:
        out.append("Per-operation latency, p50 / p99 / p99.9: single operations timed "
                   "with the timestamp counter (the timer's own cost subtracted), a "
                   "sample after every batch; medians over processes. (The batch "
                   "percentiles in compare.csv, batch_p*_ns, are percentiles of ~2 us "
                   "batch means, not of single operations.)\n")
        out += tails
        out.append("")
    notes = []
    for b, i in doc.get("backends", {}).items():
        if i.get("capacity_note"):
            notes.append("- %s: capacity %s." % (b, i["capacity_note"]))
        if i.get("tls_note"):
            notes.append("- %s: tls: %s." % (b, i["tls_note"]))
    seen = set()
    for r in rows:
        if r["metric"] == "arena_bytes" and r["workload"] == "capacity":
            notes.append("- %s: %s." % (r["backend"], r["note"]))
        if r["metric"] in ("mlock_failures", "tars_unlocked_bytes") and num(r["value"]):
            k = (r["backend"], r["workload"], r["param_value"], r["metric"])
            if k not in seen:
                seen.add(k)
                notes.append("- %s %s %s: %s = %s (%s)." % (
                    r["backend"], r["workload"], r["param_value"], r["metric"],
                    r["value"], r["note"]))
    if doc.get("errors"):
        notes.append("- PROCESS FAILURES: " + "; ".join(doc["errors"]))
    if notes:
        out.append("Notes:\n")
        out.extend(notes)
        out.append("")
    out.append("Raw: compare.json; tidy: compare.csv; medians and ratios: ratios.csv "
               "(columns in compare/README.md); figures: plots/out/.\n")
    return "\n".join(out)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: compare/summary.py RESULTS_DIR")
    import json
    d = sys.argv[1]
    with open(os.path.join(d, "compare.json")) as f:
        doc = json.load(f)
    rows = suite.read_csv(os.path.join(d, "compare.csv"))
    rat = suite.read_csv(os.path.join(d, "ratios.csv"))
    md = render(doc, rows, rat)
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
