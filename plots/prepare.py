#!/usr/bin/env python3
"""Turn a tidy compare.csv into the small data files the gnuplot scripts read.

    plots/prepare.py results/latest/compare.csv plots/out/data

Writes one whitespace-separated .dat per figure (quoted column headers, NaN
for a missing value), vars.gp (column counts and line types, so a backend
keeps its colour in every figure) and figures.txt (the figures that have
data in this run; plots.mk draws only those).
"""

import csv
import math
import os
import sys

# Fixed order and colour (gnuplot line type) of every backend.
BACKENDS = ["tars", "tars-key", "glibc", "jemalloc", "mimalloc", "mmap",
            "sodium", "openssl"]


def num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


class Table:
    def __init__(self, rows):
        self.rows = rows
        self.backends = [b for b in BACKENDS if any(r["backend"] == b for r in rows)]
        self.backends += sorted({r["backend"] for r in rows} - set(self.backends))

    def value(self, backend, workload, variant, pv, metric):
        for r in self.rows:
            if (r["backend"] == backend and r["workload"] == workload
                    and r["variant"] == variant and num(r["param_value"]) == pv
                    and r["metric"] == metric and r["status"] == "ok"):
                return num(r["value"])
        return None

    def params(self, workload, variant, metric):
        return sorted({num(r["param_value"]) for r in self.rows
                       if r["workload"] == workload and r["variant"] == variant
                       and r["metric"] == metric and r["status"] == "ok"
                       and num(r["param_value"]) is not None})

    def status(self, backend, workload, pv):
        for r in self.rows:
            if (r["backend"] == backend and r["workload"] == workload
                    and r["status"] != "ok"
                    and num(r["param_value"]) in (None, pv)):
                return r["status"], r["errno"]
        return None, None


def lt(backend):
    return BACKENDS.index(backend) + 1 if backend in BACKENDS else len(BACKENDS) + 1


def f(v):
    return "NaN" if v is None else repr(float(v))


def series(t, out, name, workload, variant, metric, scale=1.0):
    """x = parameter, one column per backend that has at least one value."""
    xs = t.params(workload, variant, metric)
    cols = [b for b in t.backends
            if any(t.value(b, workload, variant, x, metric) is not None for x in xs)]
    if not xs or not cols:
        return None
    with open(os.path.join(out, name + ".dat"), "w") as fh:
        fh.write("x " + " ".join('"%s"' % b for b in cols) + "\n")
        for x in xs:
            vals = [t.value(b, workload, variant, x, metric) for b in cols]
            fh.write("%s %s\n" % (f(x), " ".join(
                f(None if v is None else v * scale) for v in vals)))
    return {"n": len(cols) + 1, "lt": " ".join(str(lt(b)) for b in cols)}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plots/prepare.py COMPARE_CSV OUTDIR")
    with open(sys.argv[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    t = Table(rows)
    run = rows[0]["run"] if rows else "?"
    figs, gvars = [], {}

    for name, args in [
            ("latency_size", ("pair", "", "ns_per_op")),
            ("tail_size", ("pair", "", "p999_ns")),
            ("rss_live", ("fill", "", "rss_per_buffer_bytes")),
            ("vma_live", ("fill", "", "vma_count")),
            ("churn_slots", ("churn", "crypto", "ns_per_op"))]:
        s = series(t, out, name, *args)
        if s:
            figs.append(name)
            gvars[name] = s

    # Tail latency at one steady-state point: p50 / p99 / p99.9 per backend.
    with open(os.path.join(out, "tail.dat"), "w") as fh:
        fh.write('backend "p50" "p99" "p99.9"\n')
        n = 0
        for b in t.backends:
            v = [t.value(b, "churn", "crypto", 1000, m) for m in ("p50_ns", "p99_ns", "p999_ns")]
            if any(x is not None for x in v):
                fh.write('"%s" %s\n' % (b, " ".join(f(x) for x in v)))
                n += 1
    if n:
        figs.append("tail")

    # Capacity: one bar per backend, labelled with how it ended.
    with open(os.path.join(out, "capacity.dat"), "w") as fh:
        fh.write('backend count lt label\n')
        n = 0
        for b in t.backends:
            v = t.value(b, "capacity", "", 64, "capacity_count")
            if v is None:
                continue
            err = ""
            for r in rows:
                if r["backend"] == b and r["workload"] == "capacity" \
                        and r["metric"] == "capacity_count":
                    err = r["errno"]
            reached = t.value(b, "capacity", "", 64, "capacity_reached_cap")
            label = "{:,.0f}".format(v) + (" (cap)" if reached else
                                           (" " + err if err else ""))
            fh.write('"%s" %s %d "%s"\n' % (b, f(v), lt(b), label))
            n += 1
    if n:
        figs.append("capacity")

    # Thread scaling: aggregate throughput, 1 and 2 threads, remote frees.
    with open(os.path.join(out, "threads.dat"), "w") as fh:
        fh.write('backend "1 thread" "2 threads" "2 threads, freed by the other"\n')
        n = 0
        for b in t.backends:
            v = [t.value(b, "threads", "local", 1, "aggregate_ops_per_s"),
                 t.value(b, "threads", "local", 2, "aggregate_ops_per_s"),
                 t.value(b, "threads", "remote", 2, "aggregate_ops_per_s")]
            if any(x is not None for x in v):
                fh.write('"%s" %s\n' % (b, " ".join(
                    f(None if x is None else x / 1e6) for x in v)))
                n += 1
    if n:
        figs.append("threads")

    # Protection toggle cost, backends that can.
    with open(os.path.join(out, "protect.dat"), "w") as fh:
        fh.write('backend ns lt\n')
        n = 0
        for b in t.backends:
            v = t.value(b, "protect", "toggle", 32, "ns_per_op")
            if v is not None:
                fh.write('"%s" %s %d\n' % (b, f(v), lt(b)))
                n += 1
    if n:
        figs.append("protect")

    with open(os.path.join(out, "vars.gp"), "w") as fh:
        fh.write('run = "%s"\n' % run)
        for name, s in gvars.items():
            fh.write('%s_n = %d\n%s_lt = "%s"\n' % (name, s["n"], name, s["lt"]))
    with open(os.path.join(out, "figures.txt"), "w") as fh:
        fh.write("\n".join(figs) + "\n")


if __name__ == "__main__":
    main()
