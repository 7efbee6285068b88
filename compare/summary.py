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
    "op_p50_ns": "per-op p50",
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
                    if v_true(rows, b, "capacity_time_bound"):
                        extra += " (time bound)"
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


def approx(n):
    """5.9M, 32.8k, 512."""
    return ("%.1fM" % (n / 1e6) if n >= 1e6 else "%.1fk" % (n / 1e3) if n >= 1e4
            else "%.0f" % n)


def value_of(rows, backend, workload, variant, pv, metric):
    """The value of an ok row (the first process's), or None."""
    for r in rows:
        if (r["backend"] == backend and r["workload"] == workload and r["metric"] == metric
                and r["variant"] == variant and num(r["param_value"]) == pv
                and r["status"] == "ok"):
            return num(r["value"])
    return None


def capacity_end(rows, backend):
    """(short, sentence) saying how a backend's capacity run ended."""
    row = next((r for r in rows if r["backend"] == backend and r["workload"] == "capacity"
                and r["metric"] == "capacity_count"), None)
    if row is None:
        return "-", None
    count = num(row["value"]) or 0
    v = lambda m: value_of(rows, backend, "capacity", "", 64, m)  # noqa: E731
    secs, bound = v("capacity_seconds"), v("capacity_bound_seconds")
    if row["status"] != "ok":
        return "failed", "%s: the capacity child failed (%s)." % (backend, row["note"])
    call = row["note"].split(" failed in ", 1)[-1].split("(", 1)[0] if row["errno"] else ""
    if v("capacity_reached_cap"):
        short = "the cap"
        how = "reached the cap of %s live keys" % "{:,.0f}".format(count)
    elif v("capacity_vma_limit"):
        short = "VMA limit (%s in %s())" % (row["errno"], call)
        how = ("failed at %s live keys with %s in %s(), its VMAs at vm.max_map_count: "
               "the VMA bound" % ("{:,.0f}".format(count), row["errno"], call))
    elif v("capacity_time_bound"):
        short = "time bound (%.0f s)" % (bound or 0)
        how = ("stopped at its time bound of %.0f s with %s live keys, neither at the cap "
               "nor at a limit (raise it: --capacity-seconds)" % (bound or 0,
                                                                  "{:,.0f}".format(count)))
    else:
        short = "memory (%s in %s())" % (row["errno"], call)
        how = ("failed at %s live keys with %s in %s() below the VMA limit: the memory "
               "(RAM, address space or RLIMIT_MEMLOCK) bound" % (
                   "{:,.0f}".format(count), row["errno"], call))
    return short, how + (" (%.1f s of filling; time bound %.0f s)" % (secs, bound or 0)
                         if secs is not None else "")


def keys_section(doc, rows, rat, backends):
    """Keys at scale: capacity and how it ended, VMAs against live keys,
    the life of a key and the protection toggle, for the backends that
    keep keys closed at rest."""
    info = doc.get("backends", {})
    keyb = [b for b in backends if info.get(b, {}).get("keys",
                                                      info.get(b, {}).get("protect"))]
    keyb = [b for b in keyb if any(r["backend"] == b and r["workload"] in
                                   ("capacity", "keylife") for r in rows)]
    if not keyb:
        return []
    mem = num(str(doc.get("machine", {}).get("memory", "")).split()[0]
              if doc.get("machine", {}).get("memory") else None)
    out = ["Keys at scale (the backends that keep a key closed at rest; tars-key's "
           "capacity is tars_key containers, the others' their buffers). Capacity: live "
           "64-byte keys until the first failure, the cap or the time bound, in one "
           "process; VMAs: lines of /proc/self/maps at the end; key life: a random "
           "32-byte key made, closed and freed (tars-key: tars_key_new_random + "
           "tars_key_free; the others: alloc + getrandom + protect none + free), "
           "median over processes, in brackets the ratio to tars-key with its 95% "
           "interval.\n",
           "| backend | live keys | ended by | VMAs at the end | VMAs per 1,000 live keys "
           "| resident bytes per key | key life | key life, per-op p99 | protect toggle |",
           "|---|---|---|---|---|---|---|---|---|"]
    lines = []
    for b in keyb:
        cap = value_of(rows, b, "capacity", "", 64, "capacity_count")
        vmas = value_of(rows, b, "capacity", "", 64, "vma_count")
        vpb = value_of(rows, b, "capacity", "", 64, "vma_per_buffer")
        rpb = value_of(rows, b, "capacity", "", 64, "rss_per_buffer_bytes")
        short, how = capacity_end(rows, b)

        def lat(wl, variant, pv, metric):
            r = rat.get((b, wl, variant, pv, metric))
            if r is None:
                return "-"
            return fmt(num(r["median"]), "ns") + ratio_text(r)
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            b, fmt(cap, "count"), short, fmt(vmas, "count"),
            "-" if vpb is None else "%.2f" % (vpb * 1000) if vpb < 0.1 else
            "{:,.0f}".format(vpb * 1000), fmt(rpb, "bytes"),
            lat("keylife", "life", 32, "ns_per_op"), lat("keylife", "life", 32, "op_p99_ns"),
            lat("protect", "toggle", 32, "ns_per_op")))
        if how:
            extra = ""
            maxmaps = num(doc.get("machine", {}).get("max_map_count"))
            if rpb and mem and not v_true(rows, b, "capacity_vma_limit"):
                # The next limit at this rate: RAM, or the VMA count.
                ram = mem * 1024 / rpb
                vma = maxmaps / vpb if maxmaps and vpb and vpb > 0 else float("inf")
                extra = ("; at %s resident per key and %s VMAs per 1,000 keys the next "
                         "limit is %s at about %s keys" % (
                             fmt(rpb, "bytes"), "%.2g" % (vpb * 1000) if vpb else "0",
                             "the machine's RAM (%.1f GiB)" % (mem / (1 << 20)) if ram <= vma
                             else "vm.max_map_count (%s)" % fmt(maxmaps, "count"),
                             approx(min(ram, vma))))
            lines.append("- %s: %s%s." % (b, how, extra))
    out.append("")
    out += lines
    # The yardstick: a key's life against a naive guarded mapping.
    for b in keyb:
        r = rat.get((b, "keylife", "life", 32, "ns_per_op"))
        rt, lo, hi = (num(r.get(k)) if r else None for k in ("ratio", "ci_lo", "ci_hi"))
        if b != "tars-key" and rt:
            out.append("- key life: tars-key takes %.2fx %s's time%s." % (
                1 / rt, b, " [%.2fx-%.2fx]" % (1 / hi, 1 / lo) if lo and hi else ""))
    # VMAs against live keys, from the capacity run's curve.
    pts = sorted({num(r["param_value"]) for r in rows if r["workload"] == "capacity"
                  and r["variant"] == "curve" and r["metric"] == "vma_count"
                  and r["backend"] in keyb})
    if pts:
        out.append("")
        out.append("VMAs against live keys (capacity run; the last point of each is "
                   "where it ended):\n")
        out.append("| live keys | " + " | ".join(keyb) + " |")
        out.append("|---|" + "---|" * len(keyb))
        for p in pts:
            cells = [fmt(value_of(rows, b, "capacity", "curve", p, "vma_count"), "count")
                     for b in keyb]
            out.append("| %s | %s |" % (fmt(p, "count"), " | ".join(cells)))
    out.append("")
    return out


def v_true(rows, backend, metric):
    return bool(value_of(rows, backend, "capacity", "", 64, metric))


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
               "brackets: value / tars's value (the key workloads, protect and "
               "keylife, which tars's chunk path does not run: value / tars-key's "
               "value), and its 95% interval (percentile "
               "bootstrap over the process medians of both backends); `~` marks an "
               "interval that includes 1.0, a difference this run cannot tell from "
               "noise. Latency, bytes and system calls: lower is better; throughput and "
               "capacity: higher is better. The machine is shared and noisy: read the "
               "ratios and their intervals, not the absolute numbers.\n")
    if "tars" not in backends:
        out.append("(tars is not part of this run: no ratios.)\n")
    out += headline_table(doc, rows, rat, backends)
    out.append("")
    out += keys_section(doc, rows, rat, backends)
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
