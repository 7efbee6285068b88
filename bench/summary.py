#!/usr/bin/env python3
"""summary.py BENCH.json - the tars/glibc table of a `make bench` run.

Medians over the repetitions (the run itself when there was only one) of
Google Benchmark's time per iteration, for every size run under both
tars/pair/SIZE and glibc/pair/SIZE, with the ratio; then the batches,
the latency percentiles of the 64-byte pair, and any run that was skipped
with an error.  The project's target: tars/pair/64 <= 2.0x glibc/pair/64.

The time is the CPU time per iteration, not the wall time: on a shared
2-core machine a run is often preempted, and the wall time then counts
the time other processes ran (wall 23.9 ns against CPU 12.0 ns for one
tars/pair/64 run under load).  Manual-time benchmarks (tars/key/new, whose
CPU time includes untimed setup) use their manual time.

Python 3 standard library only.  Exit status 0 unless the file is unreadable.
"""

import json
import re
import statistics
import sys

TARGET_SIZE = 64
TARGET_RATIO = 2.0
NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def base_name(b):
    """The instance name, without the /manual_time or /real_time suffix."""
    name = b.get("run_name") or b.get("name", "")
    return re.sub(r"/(manual|real)_time$", "", name)


def collect(doc):
    """name -> {"time": median ns, "counters": medians, "error": msg}."""
    reps, med = {}, {}
    for b in doc.get("benchmarks", []):
        name = base_name(b)
        if b.get("error_occurred"):
            med.setdefault(name, {})["error"] = b.get("error_message", "?")
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                med.setdefault(name, {})["agg"] = b
            continue
        reps.setdefault(name, []).append(b)
    out = {}
    for name in set(reps) | set(med):
        m = med.get(name, {})
        if "error" in m:
            out[name] = {"error": m["error"]}
            continue
        rows = [m["agg"]] if "agg" in m else reps.get(name, [])
        if not rows:
            continue
        unit = NS.get(rows[0].get("time_unit", "ns"), 1.0)
        manual = "/manual_time" in (rows[0].get("run_name") or rows[0].get("name", ""))
        key = "real_time" if manual else "cpu_time"
        t = statistics.median(r[key] for r in rows) * unit
        counters = {}
        for key in ("batch_p50_ns", "batch_p99_ns", "batch_p99.9_ns", "syscalls_per_op"):
            vals = [r[key] for r in rows if key in r]
            if vals:
                counters[key] = statistics.median(vals)
        out[name] = {"time": t, "counters": counters}
    return out


def fmt_ns(v):
    if v is None:
        return "-"
    if v >= 10000:
        return "%.1f us" % (v / 1000)
    return "%.1f ns" % v


def ratio_table(res, title, tars_re, glibc_fmt, key_fmt):
    rows = []
    for name in res:
        m = re.fullmatch(tars_re, name)
        if not m:
            continue
        g = res.get(glibc_fmt % m.group(1))
        rows.append((int(m.group(1)), res[name], g))
    if not rows:
        return
    rows.sort(key=lambda r: r[0])
    print(title)
    print("  %-10s %11s %11s %11s %14s" % (key_fmt, "tars", "glibc", "tars/glibc",
                                           "tars sys/op"))
    for key, t, g in rows:
        tt = t.get("time")
        gt = g.get("time") if g else None
        ratio = "%.2fx" % (tt / gt) if tt and gt else "-"
        sc = t.get("counters", {}).get("syscalls_per_op")
        print("  %-10s %11s %11s %11s %14s" % (key, fmt_ns(tt), fmt_ns(gt), ratio,
                                               "-" if sc is None else "%.4f" % sc))
    print()


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("summary: %s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    res = collect(doc)
    ctx = doc.get("context", {})
    print()
    print("tars %s, options %s; %s x %s MHz\n"
          "medians over repetitions of the CPU time per iteration"
          % (ctx.get("tars_version", "?"), ctx.get("tars_options", "?"),
             ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?")))
    print()
    ratio_table(res, "malloc + free pair (per pair)", r"tars/pair/(\d+)", "glibc/pair/%s", "size")
    ratio_table(res, "batch of N 64-byte mallocs, then frees in random order (per operation)",
                r"tars/batch/64/n:(\d+)", "glibc/batch/64/n:%s", "N")
    ratio_table(res, "burst: K 64-byte mallocs, then K frees, steady state (per operation)",
                r"tars/burst/64/k:(\d+)", "glibc/burst/64/k:%s", "K")
    ratio_table(res, "large allocation + free", r"tars/large/pages:(\d+)",
                "glibc/large/pages:%s", "pages")

    name = "tars/pair/%d" % TARGET_SIZE
    t, g = res.get(name), res.get("glibc/pair/%d" % TARGET_SIZE)
    if t and g and t.get("time") and g.get("time"):
        for who, r in (("tars", t), ("glibc", g)):
            c = r["counters"]
            print("  %-5s pair/%d: median %s  batch-mean p50 %s  p99 %s  p99.9 %s%s"
                  % (who, TARGET_SIZE, fmt_ns(r["time"]), fmt_ns(c.get("batch_p50_ns")),
                     fmt_ns(c.get("batch_p99_ns")), fmt_ns(c.get("batch_p99.9_ns")),
                     "  syscalls/op %.4f" % c["syscalls_per_op"] if "syscalls_per_op" in c else ""))
        ratio = t["time"] / g["time"]
        print("target: tars/pair/%d <= %.1fx glibc: %.2fx (%s)"
              % (TARGET_SIZE, TARGET_RATIO, ratio, "met" if ratio <= TARGET_RATIO else "MISSED"))
    errors = sorted((n, r["error"]) for n, r in res.items() if "error" in r)
    if errors:
        print()
        print("skipped with an error:")
        for n, e in errors:
            print("  %s: %s" % (n, e))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
