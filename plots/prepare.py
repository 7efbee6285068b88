#!/usr/bin/env python3
"""Turn a run's ratios.csv (medians over processes, ratios to tars with
their intervals) into the small data files the gnuplot scripts read.

    plots/prepare.py results/latest plots/out/data

Writes one whitespace-separated .dat per figure (quoted column headers, NaN
for a missing value), vars.gp (the run, column counts, and one line type
per backend with its colour: compare/suite.py assigns colours by name, so
a new backend needs no edit here) and figures.txt (the figures that have
data in this run; plots.mk draws only those).
"""

import json
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compare"))
import suite  # noqa: E402  (compare/suite.py)

num = suite.num
# A backend whose ratio to tars stays below this is drawn on the linear
# ratio axis of pair_ratio; the per-mapping designs (hundreds of times
# slower) are named in the title instead of flattening everyone else.
RATIO_AXIS_MAX = 8.0


class Table:
    def __init__(self, rat, backends):
        self.rows = {}
        for r in rat:
            self.rows[(r["backend"], r["workload"], r["variant"],
                       num(r["param_value"]), r["metric"])] = r
        present = {r["backend"] for r in rat}
        self.backends = [b for b in backends if b in present]
        self.backends += sorted(present - set(self.backends))
        self.lt = {b: i + 1 for i, b in enumerate(self.backends)}

    def row(self, backend, workload, variant, pv, metric):
        return self.rows.get((backend, workload, variant, pv, metric))

    def value(self, backend, workload, variant, pv, metric, field="median"):
        r = self.row(backend, workload, variant, pv, metric)
        return num(r[field]) if r else None

    def spread(self, backend, workload, variant, pv, metric):
        """(median, min, max) over the processes, or None."""
        v = [self.value(backend, workload, variant, pv, metric, k)
             for k in ("median", "min", "max")]
        return None if v[0] is None else v

    def params(self, workload, variant, metric):
        return sorted({k[3] for k in self.rows if k[1] == workload and k[2] == variant
                       and k[4] == metric and k[3] is not None})


def f(v):
    return "NaN" if v is None else repr(float(v))


def series(t, out, name, workload, variant, metric, scale=1.0, only=None):
    """x = parameter, one column per backend (of `only`, if given) that has
    at least one value."""
    xs = t.params(workload, variant, metric)
    cols = [b for b in t.backends if (only is None or b in only)
            and any(t.value(b, workload, variant, x, metric) is not None for x in xs)]
    if not xs or not cols:
        return None
    with open(os.path.join(out, name + ".dat"), "w") as fh:
        fh.write("x " + " ".join('"%s"' % b for b in cols) + "\n")
        for x in xs:
            vals = [t.value(b, workload, variant, x, metric) for b in cols]
            fh.write("%s %s\n" % (f(x), " ".join(
                f(None if v is None else v * scale) for v in vals)))
    return {"n": len(cols) + 1, "lt": " ".join(str(t.lt[b]) for b in cols)}


def pair_ratio(t, out):
    """Ratio to tars (and its interval) by size, backends near tars only."""
    xs = t.params("pair", "", "ns_per_op")
    near, far = [], []
    for b in t.backends:
        if b == "tars":
            continue
        rs = [t.value(b, "pair", "", x, "ns_per_op", "ratio") for x in xs]
        rs = [r for r in rs if r is not None]
        if not rs:
            continue
        (near if max(rs) <= RATIO_AXIS_MAX else far).append((b, suite.median(rs)))
    if not xs or not near:
        return None
    with open(os.path.join(out, "pair_ratio.dat"), "w") as fh:
        fh.write("x")
        for b, _ in near:
            fh.write(' "%s" "lo" "hi"' % b)
        fh.write("\n")
        for x in xs:
            fh.write(f(x))
            for b, _ in near:
                r, lo, hi = (t.value(b, "pair", "", x, "ns_per_op", k)
                             for k in ("ratio", "ci_lo", "ci_hi"))
                # One process: no interval, the bar collapses on the point.
                fh.write(" %s %s %s" % (f(r), f(lo if lo is not None else r),
                                        f(hi if hi is not None else r)))
            fh.write("\n")
    return {"n": len(near), "lt": " ".join(str(t.lt[b]) for b, _ in near),
            "far": ", ".join("%s ~%.0fx" % (b, m) for b, m in far) or "none"}


def size_label(n):
    return "%d KiB" % (n // 1024) if n >= 1024 and n % 1024 == 0 else "%d B" % n


def large(t, out):
    """Blocks of several pages: the pair at 4 KiB and up, and the large
    churn, each backend's ratio to tars with its interval (log axis: the
    per-mapping designs are tens of times slower)."""
    cats = [("pair", "", x, "pair %s" % size_label(int(x)))
            for x in t.params("pair", "", "ns_per_op") if x >= 4096]
    cats += [("churn", "large", x, "churn %d slots, 4-64 KiB" % x)
             for x in t.params("churn", "large", "ns_per_op")]
    others = [b for b in t.backends if b != "tars" and any(
        t.value(b, w, v, x, "ns_per_op", "ratio") is not None for w, v, x, _ in cats)]
    if not cats or not others:
        return None
    with open(os.path.join(out, "large.dat"), "w") as fh:
        fh.write('"backend" "x" "ratio" "lo" "hi" "lt"\n')
        for i, (w, v, x, _) in enumerate(cats, 1):
            for j, b in enumerate(others):
                r = t.value(b, w, v, x, "ns_per_op", "ratio")
                if r is None:
                    continue
                lo = t.value(b, w, v, x, "ns_per_op", "ci_lo")
                hi = t.value(b, w, v, x, "ns_per_op", "ci_hi")
                off = (j - (len(others) - 1) / 2) * 0.7 / max(len(others), 1)
                fh.write('"%s" %.3f %s %s %s %d\n' % (b, i + off, f(r), f(lo or r),
                                                     f(hi or r), t.lt[b]))
    return {"n": len(cats), "xtics": "set xtics (%s)" % ", ".join(
        "'%s' %d" % (label, i) for i, (_, _, _, label) in enumerate(cats, 1)),
        "names": " ".join(others), "lts": " ".join(str(t.lt[b]) for b in others)}


def forest(t, out, doc):
    """Every headline: each backend's ratio to tars with its interval."""
    lines = []
    # A workload whose ratios are to another backend says so in its label.
    heads = [(h["label"] + ("" if w.get("reference", "tars") == "tars" else
                            " (1 = %s)" % w["reference"]),
              w["name"], h["variant"], num(h["param_value"]), h["metric"])
             for w in doc.get("workloads", []) for h in w["headlines"]]
    heads = [h for h in heads if any(t.value(b, *h[1:], "ratio") is not None
                                     for b in t.backends)]
    if not heads:
        return None
    others = [b for b in t.backends if b != "tars"]
    with open(os.path.join(out, "forest.dat"), "w") as fh:
        fh.write('"label" "y" "ratio" "lo" "hi" "lt"\n')
        for i, (label, *key) in enumerate(heads):
            y = len(heads) - i
            lines.append("'%s' %d" % (label.replace("'", ""), y))
            for j, b in enumerate(others):
                r = t.value(b, *key, "ratio")
                if r is None:
                    continue
                lo = t.value(b, *key, "ci_lo")
                hi = t.value(b, *key, "ci_hi")
                off = (j - (len(others) - 1) / 2) * 0.6 / max(len(others), 1)
                fh.write('"%s" %.3f %s %s %s %d\n' % (b, y + off, f(r), f(lo if lo else r),
                                                      f(hi if hi else r), t.lt[b]))
    return {"ytics": ", ".join(lines), "n": len(heads),
            "names": " ".join(others), "lts": " ".join(str(t.lt[b]) for b in others)}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plots/prepare.py RESULTS_DIR OUTDIR")
    d, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(d, "compare.json")) as fh:
        doc = json.load(fh)
    rat = suite.read_csv(os.path.join(d, "ratios.csv"))
    os.makedirs(out, exist_ok=True)
    t = Table(rat, list(doc.get("backends", {})))
    run = doc.get("run", "?")
    figs, gvars = [], {}

    for name, args in [
            ("latency_size", ("pair", "", "ns_per_op")),
            ("tail_size", ("pair", "", "op_p999_ns")),
            ("rss_live", ("fill", "", "rss_per_buffer_bytes")),
            ("vma_live", ("fill", "", "vma_count")),
            ("churn_slots", ("churn", "crypto", "ns_per_op")),
            ("burst", ("burst", "", "ns_per_op"))]:
        s = series(t, out, name, *args)
        if s:
            figs.append(name)
            gvars[name] = s

    s = pair_ratio(t, out)
    if s:
        figs.append("pair_ratio")
        gvars["pair_ratio"] = s
    lg = large(t, out)
    if lg:
        figs.append("large")
    # Keys: VMAs against live keys from the capacity run's curve, for the
    # backends that keep keys closed at rest.
    keyb = {b for b, i in doc.get("backends", {}).items()
            if i.get("keys", i.get("protect"))}
    s = series(t, out, "key_vmas", "capacity", "curve", "vma_count", only=keyb)
    if s:
        figs.append("key_vmas")
        gvars["key_vmas"] = s
    fr = forest(t, out, doc)
    if fr:
        figs.append("forest")

    def bars(name, header, rows_of, figure=True):
        n = 0
        with open(os.path.join(out, name + ".dat"), "w") as fh:
            fh.write(header + "\n")
            for b in t.backends:
                line = rows_of(b)
                if line is not None:
                    fh.write(line + "\n")
                    n += 1
        if n and figure:
            figs.append(name)

    # Per-operation tails at one steady-state point.
    def tail_row(b):
        v = [t.value(b, "churn", "crypto", 1000, m) for m in ("op_p50_ns", "op_p99_ns",
                                                               "op_p999_ns")]
        return None if all(x is None for x in v) else '"%s" %s' % (
            b, " ".join(f(x) for x in v))
    bars("tail", '"backend" "p50" "p99" "p99.9"', tail_row)

    # Capacity: one bar per backend, labelled with how it ended (the errno
    # of the failing call is in compare.csv).
    ends = {}
    for r in suite.read_csv(os.path.join(d, "compare.csv")):
        if r["workload"] == "capacity" and r["metric"] == "capacity_count" and r["errno"]:
            ends[r["backend"]] = r["errno"]
        if (r["workload"] == "capacity" and r["metric"] == "capacity_time_bound"
                and num(r["value"])):
            ends[r["backend"]] = "time bound"

    def cap_row(b):
        v = t.value(b, "capacity", "", 64, "capacity_count")
        if v is None:
            return None
        return '"%s" %s %d "%s%s"' % (b, f(v / 1e6), t.lt[b], "{:,.0f}".format(v),
                                       "\\n" + ends[b] if b in ends else "")

    # Key life: ns per key (min-max over processes), labelled with the
    # ratio to tars-key and its interval.
    def keylife_row(b):
        sp = t.spread(b, "keylife", "life", 32, "ns_per_op")
        if sp is None:
            return None
        v, lo, hi = sp
        r = t.row(b, "keylife", "life", 32, "ns_per_op")
        rt, rlo, rhi = (num(r[k]) for k in ("ratio", "ci_lo", "ci_hi"))
        label = ("%.2fx [%.2f-%.2f]" % (rt, rlo, rhi) if rt and rlo is not None
                 else "%.2fx" % rt if rt else "reference")
        return '"%s" %s %s %s %d "%.1f us\\n%s"' % (b, f(v / 1e3), f(lo / 1e3),
                                                     f(hi / 1e3), t.lt[b], v / 1e3, label)
    bars("keylife", "backend us lo hi lt label", keylife_row)
    bars("capacity", "backend millions lt label", cap_row)

    def threads_row(b):
        v = [t.value(b, "threads", "local", 1, "aggregate_ops_per_s"),
             t.value(b, "threads", "local", 2, "aggregate_ops_per_s"),
             t.value(b, "threads", "remote", 2, "aggregate_ops_per_s"),
             t.value(b, "threads", "local", 8, "aggregate_ops_per_s")]
        return None if all(x is None for x in v) else '"%s" %s' % (
            b, " ".join(f(None if x is None else x / 1e6) for x in v))
    bars("threads", 'backend "1 thread" "2 threads" "2 threads, freed by the other" '
         '"8 threads on 2 cores"', threads_row)

    def protect_row(b):
        v = t.value(b, "protect", "toggle", 32, "ns_per_op")
        return None if v is None else '"%s" %s %d' % (b, f(v), t.lt[b])
    bars("protect", "backend ns lt", protect_row)

    # tls: handshakes per second (min-max over processes), and where the
    # time of a handshake goes for the backends near glibc's speed.
    def tls_row(b):
        sp = t.spread(b, "tls", "", 16384, "handshakes_per_s")
        if sp is None:
            return None
        v, lo, hi = sp
        return '"%s" %s %s %s %d' % (b, f(v), f(lo), f(hi), t.lt[b])
    bars("tls", "backend hs lo hi lt", tls_row)

    def tls_time_row(b):
        total = t.value(b, "tls", "", 16384, "ns_per_op")
        small = t.value(b, "tls", "", 16384, "alloc_ns_per_op_small")
        large = t.value(b, "tls", "", 16384, "alloc_ns_per_op_large")
        if None in (total, small, large) or total > 1e7:
            return None
        rest = max(total - small - large, 0)
        return '"%s" %s %s %s' % (b, f(small / 1e6), f(large / 1e6), f(rest / 1e6))
    bars("tls_time", 'backend "allocator, blocks <= 2 KiB" "allocator, blocks > 2 KiB '
         '(records)" "the rest of the handshake"', tls_time_row, figure=False)

    cols = suite.colours(t.backends)
    with open(os.path.join(out, "vars.gp"), "w") as fh:
        fh.write('run = "%s"\nrounds = %d\n' % (run, doc.get("rounds", 1)))
        for b in t.backends:
            fh.write("set linetype %d lc rgb '%s' lw %s pt %d ps 1.0  # %s\n" % (
                t.lt[b], cols[b], "2.5" if b.startswith("tars") else "2",
                [7, 5, 9, 11, 13, 4, 6, 8, 10, 12, 14, 1, 2, 3][(t.lt[b] - 1) % 14], b))
        for name, s in gvars.items():
            fh.write('%s_n = %d\n%s_lt = "%s"\n' % (name, s["n"], name, s["lt"]))
            if "far" in s:
                fh.write('%s_far = "%s"\n' % (name, s["far"]))
        if fr:
            fh.write("forest_n = %d\nforest_ytics = \"set ytics (%s)\"\n" % (
                fr["n"], fr["ytics"]))
            fh.write('forest_names = "%s"\nforest_lts = "%s"\n' % (fr["names"], fr["lts"]))
        if lg:
            fh.write('large_n = %d\nlarge_xtics = "%s"\nlarge_names = "%s"\n'
                     'large_lts = "%s"\n' % (lg["n"], lg["xtics"], lg["names"], lg["lts"]))
    with open(os.path.join(out, "figures.txt"), "w") as fh:
        fh.write("\n".join(figs) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
