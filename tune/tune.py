#!/usr/bin/env python3
"""make tune: sweep tars options over the workloads where they matter.

    tune/tune.py --bin build/compare/compare-tars --slots build/tune/tars-slots
                 [--results results/tune] [--plots plots/out/tune]
                 [--rounds N] [--quick] [--configs "cache=0 junk=2 ..."]
                 [--no-plots] [--run ID]
    tune/tune.py --summarize results/tune/<run>     (analyse a sweep again)

One process of the comparison harness (compare-tars, compare/main.c) per
configuration and workload; the configuration goes in through TARS_OPTIONS
(with stats=1, so the process prints the tars statistics at exit).  The
configurations vary one or two options at a time around the defaults, plus
the product cache x classes; the workloads are the ones where they matter:
pair (hot path), session (a bundle of mixed sizes), churn (steady state over
1000 and 10000 live slots, uniform 16..2048 and crypto sizes) and fill
(100000 live 64-byte buffers, then freed in random order).

The machine is shared and noisy, so a sweep is ROUNDS rounds; in each round
every workload runs under every configuration back to back (in a shuffled
order), and every latency is also taken as a ratio to the default
configuration measured in the same round.  A configuration's latency index
is the geometric mean of those ratios over the latency measurements (1.0 =
the default), from the median ns/op of each measurement (the p50 of its
~2 us batches; compare's mean-based ns_per_op picks up preemption on a
shared machine), and the summary gives its median and interquartile range
over the rounds; the p99 index is the same from the p99.  "default#2" is
the default again, an A/A control: its spread is the noise floor.

Recommendation: among cache x classes and spare, the configuration with the
lowest ln(latency index) + ln(bytes per buffer / default's) replaces the
default if it wins by more than the noise (the larger of the typical
half-IQR, the A/A control's offset and the A/A control's half-IQR), without
a worse p99 and without doubling the VMAs; if it fails a check, the next
best that wins by more than the noise is weighed, and so on.  On a tie (every score within the noise), the
tied configuration with the shortest p99 (at most 2% more bytes) replaces
the default if its p99 index beats it by more than the noise: the p50s of
the latency index do not see the system calls of rare page cycles, the p99
does.  A protection is strengthened only if that is free.

Writes results/tune/<run>/ (tune.csv tidy rows, configs.csv one row per
configuration, slots.csv, tune.json, summary.md), points results/tune/latest
at it, draws plots/out/tune/tune_{pareto,cache,waste}.{png,svg} with gnuplot
and prints the summary and the recommended defaults.  Exit status 1 if a
process failed or ran with other options than asked for.
"""

import argparse
import csv
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "compare"))
import proc  # noqa: E402  (compare/proc.py)

HERE = os.path.dirname(os.path.abspath(__file__))

# The defaults the sweep varies around (tars.h); checked against what the
# process reports, so a changed default shows up instead of lying.
DEFAULTS = {"junk": 1, "canary": 1, "cache": 64, "classes": 1, "random": 1,
            "mlock": 1, "spare": 128}

# (name, TARS_OPTIONS, group).  Names are the options that differ from the
# defaults; the group says why the configuration is in the sweep.
CONFIGS = [
    ("default", "", "default"),
    ("default#2", "", "A/A control"),
    ("cache=0", "cache=0", "cache x classes"),
    ("cache=8", "cache=8", "cache x classes"),
    ("cache=512", "cache=512", "cache x classes"),
    ("classes=0", "classes=0", "cache x classes"),
    ("classes=0,cache=0", "classes=0,cache=0", "cache x classes"),
    ("classes=0,cache=8", "classes=0,cache=8", "cache x classes"),
    ("classes=0,cache=512", "classes=0,cache=512", "cache x classes"),
    ("spare=1", "spare=1", "spare"),
    ("spare=4", "spare=4", "spare"),
    ("spare=16", "spare=16", "spare"),
    ("spare=256", "spare=256", "spare"),
    ("junk=0", "junk=0", "one option"),
    ("junk=2", "junk=2", "one option"),
    ("canary=0", "canary=0", "one option"),
    ("random=0", "random=0", "one option"),
    ("mlock=0", "mlock=0", "one option"),
    ("junk=0,canary=0", "junk=0,canary=0", "two options"),
    ("random=0,cache=0", "random=0,cache=0", "two options"),
    ("bare", "junk=0,canary=0,random=0,mlock=0", "floor"),
]
QUICK_CONFIGS = ["default", "default#2", "cache=0", "classes=0"]
TUNING = [c for c, _, g in CONFIGS if g in ("default", "cache x classes", "spare")]

# (label, compare-tars arguments).
JOBS = [
    ("pair size=64", ["pair", "--param", "64"]),
    ("pair size=200", ["pair", "--param", "200"]),
    ("session", ["session"]),
    ("churn slots=1000", ["churn", "--param", "1000"]),
    ("churn slots=10000", ["churn", "--param", "10000"]),
    ("fill live=100000", ["fill", "--param", "100000"]),
]
QUICK_JOBS = [
    ("pair size=64", ["pair", "--param", "64"]),
    ("session", ["session"]),
    ("churn slots=64", ["churn", "--param", "64"]),
    ("fill live=1000", ["fill", "--param", "1000"]),
]
STAT_NAMES = ["syscalls", "mallocs", "frees", "cache_hits", "cache_misses",
              "mmaps", "munmaps", "protect_changes", "unlocked_bytes",
              "locked_bytes", "cached_pages", "meta_pages"]
COLUMNS = ["run", "round", "config", "options", "job", "workload", "variant",
           "param_value", "metric", "value", "unit", "source"]
TIMEOUT = 180


# ---------------------------------------------------------------------------
# running

def options_env(opts):
    return "stats=1" + ("," + opts if opts else "")


def check_options(library, opts):
    """None if the process ran with opts (and the defaults otherwise)."""
    m = re.search(r"\(([^)]*)\)", library or "")
    if not m:
        return "no options in library string %r" % library
    got = dict(kv.split("=", 1) for kv in m.group(1).split(",") if "=" in kv)
    want = {k: str(v) for k, v in DEFAULTS.items()}
    for kv in filter(None, opts.split(",")):
        k, v = kv.split("=", 1)
        want[k] = v
    bad = ["%s=%s (asked %s)" % (k, got.get(k), v) for k, v in want.items()
           if got.get(k) != v]
    return ", ".join(bad) if bad else None


def parse_stats(stderr):
    st, on = {}, False
    for line in stderr.splitlines():
        if line.strip() == "tars stats":
            on, st = True, {}
            continue
        m = re.match(r"^\s+([a-z_]+)\s+(\d+)$", line)
        if on and m:
            st[m.group(1)] = int(m.group(2))
    return st


def run_process(binary, args, scale, opts, extra):
    env = dict(os.environ)
    env["TARS_OPTIONS"] = options_env(opts)
    cmd = [binary] + args + ["--scale", scale] + extra
    rc, out, err, secs, doc = proc.run_json(cmd, TIMEOUT, env)
    why = None
    if rc == "timeout":
        why = "timed out after %d s" % TIMEOUT
    elif rc == "exec":
        why = "cannot run: " + err
    elif doc is None:
        why = "exit %s, no JSON document" % rc
    elif rc != 0:
        why = "exit %s" % rc
    else:
        why = check_options(doc.get("library"), opts)
        if why:
            why = "ran with other options: " + why
    return {"cmd": "TARS_OPTIONS=%s %s" % (env["TARS_OPTIONS"], " ".join(cmd)),
            "rc": rc, "seconds": round(secs, 3), "doc": doc,
            "stats": parse_stats(err), "why": why,
            "stderr_tail": [l for l in err.splitlines()
                            if not l.startswith("  ")][-6:]}


def rows_of(run_id, rnd, config, opts, job, res):
    base = {"run": run_id, "round": rnd, "config": config, "options": opts,
            "job": job}
    out = []
    doc = res["doc"] or {}
    for m in doc.get("measurements", []):
        if m.get("status") != "ok" or m.get("value") is None:
            continue
        out.append(dict(base, workload=m["workload"], variant=m["variant"],
                        param_value=m["param_value"], metric=m["metric"],
                        value=m["value"], unit=m["unit"], source="compare"))
    wl = job.split()[0]
    for k in STAT_NAMES:
        if k in res["stats"]:
            out.append(dict(base, workload=wl, variant="", param_value="",
                            metric="stats_" + k, value=res["stats"][k],
                            unit="count" if "bytes" not in k else "bytes",
                            source="tars_stats"))
    out.append(dict(base, workload=wl, variant="", param_value="",
                    metric="process_seconds", value=res["seconds"], unit="s",
                    source="driver"))
    return out


# ---------------------------------------------------------------------------
# statistics

def median(v):
    return statistics.median(v) if v else float("nan")


def quartiles(v):
    """(q25, median, q75); with fewer than 3 values, (min, median, max)."""
    if not v:
        return (float("nan"),) * 3
    s = sorted(v)
    if len(s) < 3:
        return s[0], median(s), s[-1]
    q = statistics.quantiles(s, n=4, method="inclusive")
    return q[0], q[1], q[2]


def geomean(v):
    v = [x for x in v if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


def fmt_key(wl, variant, pv):
    pv = "" if pv in ("", None) else "%g" % float(pv)
    name = wl + ("-" + variant if variant else "")
    return name + ("/" + pv if pv else "")


class Sweep:
    """Rows indexed for the summary."""

    def __init__(self, rows, configs, rounds):
        self.configs = configs
        self.rounds = rounds
        self.v = {}      # (config, round, key, metric) -> value
        self.stats = {}  # (config, round, job) -> {stat: value}
        self.page = 4096
        for r in rows:
            if r["source"] == "compare":
                key = fmt_key(r["workload"], r["variant"], r["param_value"])
                self.v[(r["config"], r["round"], key, r["metric"])] = float(r["value"])
            elif r["source"] == "tars_stats":
                self.stats.setdefault((r["config"], r["round"], r["job"]), {})[
                    r["metric"][6:]] = float(r["value"])
        self.lat_keys = sorted({k for (_, _, k, m) in self.v if m == "p50_ns"})

    def get(self, c, r, key, metric):
        return self.v.get((c, r, key, metric))

    def series(self, c, key, metric, scale=1.0):
        return [self.v[(c, r, key, metric)] * scale for r in self.rounds
                if (c, r, key, metric) in self.v]

    def index(self, c, metric="p50_ns"):
        """Per round: geomean over latency keys of value / default's."""
        out = []
        for r in self.rounds:
            ratios = []
            for k in self.lat_keys:
                a, b = self.get(c, r, k, metric), self.get("default", r, k, metric)
                if a is not None and b:
                    ratios.append(a / b)
            if ratios:
                out.append(geomean(ratios))
        return out

    def key_ratio(self, c, key, metric="p50_ns"):
        out = []
        for r in self.rounds:
            a, b = self.get(c, r, key, metric), self.get("default", r, key, metric)
            if a is not None and b:
                out.append(a / b)
        return out

    def stat_sum(self, c, jobs, name):
        per_round = []
        for r in self.rounds:
            s = sum(self.stats.get((c, r, j), {}).get(name, 0) for j in jobs)
            per_round.append(s)
        return per_round

    def ratio_stat(self, c, jobs, num, den):
        """Median over rounds of sum(num) / sum(den) over jobs."""
        vals = []
        for r in self.rounds:
            n = sum(self.stats.get((c, r, j), {}).get(x, 0) for j in jobs
                    for x in num)
            d = sum(self.stats.get((c, r, j), {}).get(x, 0) for j in jobs
                    for x in den)
            if d > 0:
                vals.append(n / d)
        return median(vals)


def pareto(points):
    """Names of the points no other point beats on both axes (lower is
    better; ties on both axes keep both)."""
    front = []
    for n, x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        dominated = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y)
                        for n2, x2, y2 in points
                        if n2 != n and math.isfinite(x2) and math.isfinite(y2))
        if not dominated:
            front.append(n)
    return front


# ---------------------------------------------------------------------------
# summary

def summarize(sw, jobs, quick):
    """One dict per configuration with the headline numbers."""
    churn_keys = sorted({k for (_, _, k, m) in sw.v
                         if k.startswith("churn-uniform/") and m == "rss_delta_bytes"},
                        key=lambda k: float(k.split("/")[1]))
    mem_key = churn_keys[-1] if churn_keys else None
    fill_keys = sorted({k for (_, _, k, m) in sw.v
                        if k.startswith("fill/") and m == "rss_per_buffer_bytes"},
                       key=lambda k: float(k.split("/")[1]))
    fill_key = fill_keys[-1] if fill_keys else None
    page_jobs = [j for j, _ in jobs if j.startswith(("churn", "fill"))]
    out = {}
    for c in sw.configs:
        idx = quartiles(sw.index(c))
        p99 = quartiles(sw.index(c, "p99_ns"))
        mean = quartiles(sw.index(c, "ns_per_op"))
        d = {"config": c, "lat_q25": idx[0], "lat_index": idx[1], "lat_q75": idx[2],
             "p99_index": p99[1], "p99_q25": p99[0], "p99_q75": p99[2],
             "mean_index": mean[1], "mean_q25": mean[0], "mean_q75": mean[2]}
        for k in sw.lat_keys:
            d["ns:" + k] = median(sw.series(c, k, "p50_ns"))
            d["p99:" + k] = median(sw.series(c, k, "p99_ns"))
            d["mean:" + k] = median(sw.series(c, k, "ns_per_op"))
            d["ratio:" + k] = median(sw.key_ratio(c, k))
            d["p99ratio:" + k] = median(sw.key_ratio(c, k, "p99_ns"))
        if mem_key:
            slots = float(mem_key.split("/")[1])
            d["bytes_per_buffer"] = median(sw.series(c, mem_key, "rss_delta_bytes", 1 / slots))
            d["pages_mapped"] = median(sw.series(c, mem_key, "vsize_delta_bytes", 1 / sw.page))
            d["vmas"] = median(sw.series(c, mem_key, "vma_delta"))
        if fill_key:
            live = float(fill_key.split("/")[1])
            d["fill_bytes_per_buffer"] = median(sw.series(c, fill_key, "rss_per_buffer_bytes"))
            d["fill_pages_mapped"] = median(sw.series(c, fill_key, "vsize_delta_bytes", 1 / sw.page))
            d["fill_vmas"] = median(sw.series(c, fill_key, "vma_delta"))
            d["fill_live"] = live
        d["syscalls_per_op"] = sw.ratio_stat(c, page_jobs, ["syscalls"], ["mallocs"])
        d["cache_hit_rate"] = sw.ratio_stat(c, page_jobs, ["cache_hits"],
                                            ["cache_hits", "cache_misses"])
        for j in page_jobs:
            d["syscalls_per_op:" + j] = sw.ratio_stat(c, [j], ["syscalls"], ["mallocs"])
            d["cache_hit_rate:" + j] = sw.ratio_stat(c, [j], ["cache_hits"],
                                                     ["cache_hits", "cache_misses"])
            d["munmaps_per_op:" + j] = sw.ratio_stat(c, [j], ["munmaps"], ["mallocs"])
            d["mprotects_per_op:" + j] = sw.ratio_stat(c, [j], ["protect_changes"], ["mallocs"])
        out[c] = d
    meta = {"mem_key": mem_key, "fill_key": fill_key, "page_jobs": page_jobs}
    return out, meta


def f(v, spec="%.3g"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return spec % v


def pct(ratio):
    if ratio is None or not math.isfinite(ratio):
        return "-"
    return "%+.1f%%" % ((ratio - 1) * 100)


def table(summary, configs, fronts, meta, sw):
    lat = [k for k in sw.lat_keys]
    head = ["config", "median index [IQR]", "p99 index", "B/buffer", "pages",
            "syscalls/op", "cache hit", "fill B/buf", "front"]
    pick = [k for k in lat if k in ("pair/64", "churn-uniform/10000",
                                    "fill-alloc/100000", "fill-free/100000")]
    head[3:3] = ["%s median ns" % k for k in pick]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in configs:
        d = summary[c]
        row = [c, "%s [%s-%s]" % (f(d["lat_index"]), f(d["lat_q25"]), f(d["lat_q75"])),
               f(d["p99_index"])]
        row += [f(d.get("ns:" + k), "%.0f") for k in pick]
        row += [f(d.get("bytes_per_buffer"), "%.0f"), f(d.get("pages_mapped"), "%.0f"),
                f(d.get("syscalls_per_op"), "%.5f"), f(d.get("cache_hit_rate"), "%.2f"),
                f(d.get("fill_bytes_per_buffer"), "%.1f"),
                "all" if c in fronts["all"] else ("tuning" if c in fronts["tuning"] else "")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def recommend(summary, sw, fronts, meta, waste):
    """(lines, verdict dict): recommended defaults with their evidence."""
    L = []
    dflt = summary["default"]
    b0 = dflt.get("bytes_per_buffer", float("nan"))
    # Noise: the A/A control's spread, and the typical half-IQR (log space).
    halfiqr = [0.5 * (math.log(d["lat_q75"]) - math.log(d["lat_q25"]))
               for d in summary.values()
               if d["lat_q25"] > 0 and math.isfinite(d["lat_q25"])]
    noise = median(halfiqr) if halfiqr else 0.0
    aa = summary.get("default#2")
    L.append("Noise: the A/A control (default run twice per round) has latency "
             "index %s [IQR %s-%s]; the median half-IQR over all configurations "
             "is %.1f%%." % (f(aa["lat_index"]) if aa else "-",
                             f(aa["lat_q25"]) if aa else "-",
                             f(aa["lat_q75"]) if aa else "-", noise * 100))
    if aa and math.isfinite(aa["lat_index"]):
        noise = max(noise, abs(math.log(aa["lat_index"])))
    # The A/A control's own spread over the rounds is the noise floor too.
    if aa and all(math.isfinite(aa[k]) and aa[k] > 0 for k in ("lat_q25", "lat_q75")):
        noise = max(noise, 0.5 * (math.log(aa["lat_q75"]) - math.log(aa["lat_q25"])))

    def largest(d):
        """The measurement this configuration moves most, as key ratio."""
        ks = [(k[6:], v) for k, v in d.items() if k.startswith("ratio:")
              and v is not None and math.isfinite(v) and v > 0]
        if not ks:
            return "-"
        k, v = max(ks, key=lambda kv: abs(math.log(kv[1])))
        return "%s x%.2f" % (k, v)

    def score(d):
        bb = d.get("bytes_per_buffer", float("nan"))
        if not (math.isfinite(d["lat_index"]) and d["lat_index"] > 0 and
                math.isfinite(bb) and bb > 0 and b0 > 0):
            return float("inf")
        return math.log(d["lat_index"]) + math.log(bb / b0)

    tuning = [c for c in TUNING if c in summary]
    cands = [c for c in tuning if c in fronts["tuning"]] or tuning
    best = min(cands, key=lambda c: score(summary[c]))
    sd = score(dflt)
    L.append("")
    L.append("cache x classes, spare (score = ln(median latency index) + ln(bytes per buffer / "
             "default's); lower is better; noise margin %.3f):" % noise)
    for c in sorted(tuning, key=lambda c: score(summary[c])):
        d = summary[c]
        L.append("  %-22s score %+.3f  latency %s [%s-%s]  p99 %s  %s B/buffer  "
                 "%s VMAs  %s syscalls/op  cache hits %s%s" % (
                     c, score(d), f(d["lat_index"]), f(d["lat_q25"]), f(d["lat_q75"]),
                     f(d["p99_index"]),
                     f(d.get("bytes_per_buffer"), "%.0f"), f(d.get("vmas"), "%.0f"),
                     f(d.get("syscalls_per_op"), "%.5f"),
                     f(d.get("cache_hit_rate"), "%.2f"),
                     "  (front)" if c in fronts["tuning"] else ""))
    rec = dict(DEFAULTS)
    v0 = dflt.get("vmas", float("nan"))

    def vmas_doubled(d):
        """VMAs are a hard budget (vm.max_map_count) that keys and large
        blocks share: a configuration that doubles them is no default."""
        vv = d.get("vmas", float("nan"))
        return math.isfinite(v0) and math.isfinite(vv) and v0 > 0 and vv > 2 * v0

    def adopt(name):
        for kv in name.split(","):
            k, v = kv.split("=")
            rec[k] = int(v)

    def tail_pick():
        """Among the configurations that tie the default (score within the
        noise, at most 2% more bytes per buffer, VMAs not doubled), the one
        whose p99 index is lowest, if it beats the default's tail by more
        than the noise (that of the p99 in the A/A control, if larger);
        "default" otherwise, None if nothing ties.  The latency index is
        built from p50s, which do not see the system calls of the rare
        page cycles; a shorter tail is what such a configuration buys."""
        ties = []
        for c in tuning:
            d = summary[c]
            bb = d.get("bytes_per_buffer", float("nan"))
            if (abs(score(d) - sd) <= noise and math.isfinite(bb) and b0 > 0
                    and bb <= 1.02 * b0 and math.isfinite(d["p99_index"])
                    and d["p99_index"] > 0 and not vmas_doubled(d)):
                ties.append(c)
        if not ties:
            return None
        c = min(ties, key=lambda c: summary[c]["p99_index"])
        # The p99 is noisier than the median: its margin is the A/A
        # control's p99 spread when that is larger.
        margin = noise
        if aa and math.isfinite(aa["p99_index"]) and aa["p99_index"] > 0:
            margin = max(margin, abs(math.log(aa["p99_index"])))
        return c if math.log(summary[c]["p99_index"]) < -margin else "default"

    # Candidates that beat the default by more than the noise, best first;
    # one rejected for its VMAs or its tail leaves the next one a chance.
    beaters = sorted((c for c in cands if c != "default" and score(summary[c]) < sd - noise),
                     key=lambda c: score(summary[c]))
    chosen = None
    for c in beaters:
        d = summary[c]
        if vmas_doubled(d):
            L.append("=> not %s: it beats the default by %.3f in score, but it maps %.0f "
                     "VMAs against the default's %.0f (%.1fx) in %s: it spends the "
                     "vm.max_map_count budget that keys and large blocks need." % (
                         c, sd - score(d), d["vmas"], v0, d["vmas"] / v0, meta["mem_key"]))
        elif math.isfinite(d["p99_index"]) and math.log(d["p99_index"]) > noise:
            L.append("=> not %s: it beats the default by %.3f in score, but its p99 "
                     "index is %s (%s): the tail pays for it." % (
                         c, sd - score(d), f(d["p99_index"]), pct(d["p99_index"])))
        else:
            chosen = c
            break
    tail = None if beaters else tail_pick()
    if chosen is not None:
        adopt(chosen)
        L.append("=> change: %s beats the default by %.3f in score (latency %s, "
                 "bytes per buffer %s), more than the noise margin." % (
                     chosen, sd - score(summary[chosen]),
                     pct(summary[chosen]["lat_index"]),
                     pct(summary[chosen].get("bytes_per_buffer", float("nan")) / b0)))
    elif beaters:
        L.append("=> keep: every configuration that beats the default fails a check.")
    elif tail not in (None, "default"):
        # A tie on the median: the tail decides (see tail_pick).
        adopt(tail)
        L.append("=> change: %s ties the default within the noise (score %+.3f vs "
                 "%+.3f) and has the shorter tail: p99 index %s, bytes per buffer %s." % (
                     tail, score(summary[tail]), sd, f(summary[tail]["p99_index"]),
                     pct(summary[tail].get("bytes_per_buffer", float("nan")) / b0)))
    elif best != "default":
        L.append("=> keep: the best scoring configuration (%s, score %+.3f) is within "
                 "the noise margin of the default (%+.3f)%s." % (
                     best, score(summary[best]), sd,
                     "; no tie has a shorter tail" if tail else ""))
    else:
        L.append("=> keep: the default scores best.")
    if waste:
        L.append("   size-class waste over uniform sizes 16..2048: classes=0 %.1f%%, "
                 "classes=1 %.1f%% of the slot bytes; over the crypto sizes: "
                 "%.1f%% vs %.1f%%." % (waste["uniform0"] * 100, waste["uniform1"] * 100,
                                       waste["crypto0"] * 100, waste["crypto1"] * 100))
    # Protections: their price, and whether a stronger setting is free.
    L.append("")
    L.append("Protections (kept on unless free to strengthen; the price of each, "
             "as median latency index [IQR] and bytes per buffer vs the default; p99 index):")
    prot = [("junk=0", "junk", 1, "alloc junk off (free still zeroes)"),
            ("junk=2", "junk", 1, "write-after-free check on reuse"),
            ("canary=0", "canary", 1, "slack canaries off"),
            ("random=0", "random", 1, "first-fit placement"),
            ("mlock=0", "mlock", 1, "no mlock")]
    for c, opt, _, what in prot:
        if c not in summary:
            continue
        d = summary[c]
        lo, hi = d["lat_q25"], d["lat_q75"]
        L.append("  %-10s %-36s latency %s [%s..%s]  p99 %s  bytes %s  syscalls/op %s"
                 "  (largest: %s)" % (
                     c, what, pct(d["lat_index"]), pct(lo), pct(hi), pct(d["p99_index"]),
                     pct(d.get("bytes_per_buffer", float("nan")) / b0),
                     f(d.get("syscalls_per_op"), "%.5f"), largest(d)))
        if c != "junk=2" and math.isfinite(lo) and lo > 0 and math.log(lo) > noise:
            L.append("  => %s turns a protection off yet is slower than the default "
                     "(its whole IQR above the noise): a library matter, not a "
                     "tuning choice." % c)
        if c == "junk=2" and math.isfinite(d["lat_index"]) and \
                abs(math.log(d["lat_index"])) <= noise:
            rec["junk"] = 2
            L.append("  => junk=2 costs no more than the noise: consider it as the "
                     "default (more protection for free).")
    for c in ("junk=0,canary=0", "random=0,cache=0", "bare"):
        if c in summary:
            d = summary[c]
            L.append("  %-22s latency %s [%s..%s]  p99 %s  bytes %s  syscalls/op %s" % (
                c, pct(d["lat_index"]), pct(d["lat_q25"]), pct(d["lat_q75"]),
                pct(d["p99_index"]), pct(d.get("bytes_per_buffer", float("nan")) / b0),
                f(d.get("syscalls_per_op"), "%.5f")))
    L.append("")
    L.append("Current defaults on the Pareto front (latency index vs bytes per "
             "buffer): all configurations: %s; cache x classes and spare only: %s." % (
                 "yes" if "default" in fronts["all"] else "no",
                 "yes" if "default" in fronts["tuning"] else "no"))
    L.append("Front, all configurations: " + ", ".join(fronts["all"]))
    L.append("Recommended defaults: " + ",".join("%s=%d" % kv for kv in rec.items())
             + ("  (= the current defaults)" if rec == DEFAULTS else
                "  (current: " + ",".join("%s=%d" % kv for kv in DEFAULTS.items()) + ")"))
    return L, {"recommended": rec, "best_tuning": best, "noise": noise,
               "default_on_front_all": "default" in fronts["all"],
               "default_on_front_tuning": "default" in fronts["tuning"]}


# ---------------------------------------------------------------------------
# size-class waste

CRYPTO = [16, 32, 64, 68, 128, 200, 208, 256, 512, 1024, 2048]


def slot_table(slots_bin):
    p = subprocess.run([slots_bin, "16", "2048"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (slots_bin, p.stderr.strip()))
    rows = []
    for line in p.stdout.splitlines()[1:]:
        s, a, b = (int(x) for x in line.split())
        rows.append((s, a, b))
    return rows


def waste_summary(rows):
    def frac(sel, i):
        req = sum(r[0] for r in sel)
        slot = sum(r[i] for r in sel)
        return (slot - req) / slot
    crypto = [r for r in rows if r[0] in CRYPTO]
    return {"uniform0": frac(rows, 1), "uniform1": frac(rows, 2),
            "crypto0": frac(crypto, 1), "crypto1": frac(crypto, 2),
            "max0": max((r[1] - r[0]) / r[1] for r in rows),
            "max1": max((r[2] - r[0]) / r[2] for r in rows),
            "classes0": sorted({r[1] for r in rows}),
            "classes1": sorted({r[2] for r in rows})}


# ---------------------------------------------------------------------------
# figures

def write_plot_data(ddir, summary, configs, fronts, slots, meta, sw, run_id):
    os.makedirs(ddir, exist_ok=True)
    with open(os.path.join(ddir, "pareto.dat"), "w") as fh:
        fh.write('"config" "bytes" "lat" "lat_q25" "lat_q75" "front" "kind"\n')
        for c in configs:
            d = summary[c]
            fh.write('"%s" %s %s %s %s %d %d\n' % (
                c, f(d.get("bytes_per_buffer"), "%.2f").replace("-", "NaN"),
                f(d["lat_index"], "%.4f").replace("-", "NaN"),
                f(d["lat_q25"], "%.4f").replace("-", "NaN"),
                f(d["lat_q75"], "%.4f").replace("-", "NaN"),
                c in fronts["all"], 1 if c == "default" else 2 if c == "default#2" else 0))
    # Two panels: every configuration, and a zoom on the crowd around the
    # default.  Ranges come from the data (log scale for latency); labels go
    # to the right of their point, moved up or down until they overlap no
    # other label of the panel.
    gpvars = {}
    pts = [(c, summary[c].get("bytes_per_buffer"), summary[c]["lat_index"])
           for c in configs]
    pts = [(c, x, y) for c, x, y in pts
           if x is not None and math.isfinite(x) and math.isfinite(y) and y > 0]
    x0 = summary["default"].get("bytes_per_buffer")
    crowd = [p for p in pts if x0 and abs(math.log(p[1] / x0)) < 0.03
             and abs(math.log(p[2])) < 0.3]

    def ranges(sel, right):
        xs = [x for _, x, _ in sel]
        ys = [math.log(y) for _, _, y in sel] + [
            math.log(v) for c, _, _ in sel
            for v in (summary[c]["lat_q25"], summary[c]["lat_q75"])
            if math.isfinite(v) and v > 0]
        xspan = max(max(xs) - min(xs), 1.0)
        yspan = max(max(ys) - min(ys), 0.05)
        return (min(xs) - 0.06 * xspan, max(xs) + right * xspan,
                min(ys) - 0.08 * yspan, max(ys) + 0.08 * yspan)

    def place(sel, box, fname, char):
        xlo, xhi, ylo, yhi = box
        h, placed = (yhi - ylo) * 0.045, []
        with open(os.path.join(ddir, fname), "w") as fh:
            fh.write('"config" "x" "y" "lx" "ly"\n')
            for c, x, y in sorted(sel, key=lambda p: (p[2], p[1])):
                if c == "default#2":
                    continue
                w = (xhi - xlo) * char * (len(c) + 1)
                lx, ly0 = x + (xhi - xlo) * 0.015, math.log(y)
                for k in range(0, 41):
                    ly = ly0 + (k + 1) // 2 * h * (1 if k % 2 else -1)
                    if not any(abs(ly - py) < h and lx < px + pw and px < lx + w
                               for px, py, pw in placed):
                        break
                placed.append((lx, ly, w))
                fh.write('"%s" %.3f %.5f %.3f %.5f\n' % (c, x, y, lx, math.exp(ly)))

    if pts:
        full = ranges(pts, 0.45)
        zoom = ranges(crowd or pts, 0.5)
        names = {c for c, _, _ in crowd}
        place([p for p in pts if p[0] not in names], full, "labels.dat", 0.022)
        place(crowd, zoom, "labels_zoom.dat", 0.017)
        for k, v in zip(("xlo", "xhi", "ylo", "yhi"), full):
            gpvars[k] = v if k[0] == "x" else math.exp(v)
        for k, v in zip(("zxlo", "zxhi", "zylo", "zyhi"), zoom):
            gpvars[k] = v if k[0:2] == "zx" else math.exp(v)
        bx = [x for _, x, _ in crowd] or [0]
        by = [y for _, _, y in crowd] or [1]
        gpvars.update(bxlo=min(bx) - 2, bxhi=max(bx) + 2, bylo=min(by) * 0.97,
                      byhi=max(by) * 1.03)
    with open(os.path.join(ddir, "front.dat"), "w") as fh:
        fh.write('"config" "bytes" "lat"\n')
        for c in sorted(fronts["all"], key=lambda c: summary[c]["bytes_per_buffer"]):
            fh.write('"%s" %.2f %.4f\n' % (c, summary[c]["bytes_per_buffer"],
                                            summary[c]["lat_index"]))
    # cache figure: x position, cache, then per class scheme the numbers.
    jobs = meta["page_jobs"]
    with open(os.path.join(ddir, "cache.dat"), "w") as fh:
        cols = ["x", "cache"]
        for cl in (1, 0):
            cols += ["sys_%s_c%d" % (j.split()[0] + j.split("=")[-1], cl) for j in jobs]
            cols += ["lat_c%d" % cl, "latq25_c%d" % cl, "latq75_c%d" % cl,
                     "hit_c%d" % cl, "bytes_c%d" % cl, "p99_c%d" % cl,
                     "p99q25_c%d" % cl, "p99q75_c%d" % cl]
        fh.write(" ".join('"%s"' % c for c in cols) + "\n")
        for x, cache in enumerate((0, 8, 64, 512)):
            vals = [str(x), str(cache)]
            for cl in (1, 0):
                name = ",".join(p for p in (("classes=0" if cl == 0 else ""),
                                            ("cache=%d" % cache if cache != 64 else ""))
                                if p) or "default"
                d = summary.get(name)
                for j in jobs:
                    vals.append(f(d.get("syscalls_per_op:" + j) if d else None, "%.6f"))
                for k in ("lat_index", "lat_q25", "lat_q75", "cache_hit_rate",
                          "bytes_per_buffer", "p99_index", "p99_q25", "p99_q75"):
                    vals.append(f(d.get(k) if d else None, "%.5f"))
            fh.write(" ".join(v if v != "-" else "NaN" for v in vals) + "\n")
    with open(os.path.join(ddir, "waste.dat"), "w") as fh:
        fh.write('"size" "slot0" "slot1" "waste0" "waste1"\n')
        for s, a, b in slots:
            fh.write("%d %d %d %.3f %.3f\n" % (s, a, b, 100.0 * (a - s) / a,
                                              100.0 * (b - s) / b))
    w = waste_summary(slots)
    with open(os.path.join(ddir, "vars.gp"), "w") as fh:
        fh.write("run = '%s'\n" % run_id)
        fh.write("njobs = %d\n" % len(jobs))
        fh.write("jobnames = '%s'\n" % " ".join(j.replace(" ", "_") for j in jobs))
        fh.write("memkey = '%s'\n" % (meta["mem_key"] or ""))
        fh.write("wu0 = %.1f; wu1 = %.1f; wc0 = %.1f; wc1 = %.1f\n" % (
            w["uniform0"] * 100, w["uniform1"] * 100, w["crypto0"] * 100,
            w["crypto1"] * 100))
        fh.write("nrounds = %d\n" % len(sw.rounds))
        fh.write("nkeys = %d\n" % len(sw.lat_keys))
        for k, v in sorted(gpvars.items()):
            fh.write("%s = %.6g\n" % (k, v))


def draw(ddir, outdir):
    figs = ["tune_pareto", "tune_cache", "tune_waste"]
    made = []
    for name in figs:
        for fmt in ("png", "svg"):
            out = os.path.join(outdir, "%s.%s" % (name, fmt))
            p = subprocess.run(
                ["gnuplot", "-e", "fmt='%s'; out='%s'; data='%s'" % (fmt, out, ddir),
                 os.path.join(HERE, "common.gp"), os.path.join(HERE, name + ".gp")],
                capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("gnuplot %s: %s" % (name, p.stderr.strip()))
            made.append(out)
    return made


# ---------------------------------------------------------------------------

def git_state():
    """The commit the library was built from, and whether tars/ differs."""
    def run(*args):
        try:
            return subprocess.run(["git"] + list(args), capture_output=True,
                                  text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": run("rev-parse", "--short", "HEAD"),
            "subject": run("log", "-1", "--format=%s"),
            "tars_modified": [l[3:] for l in run("status", "--porcelain", "tars/src",
                                                 "tars/include").splitlines()]}


def machine():
    def read(p):
        try:
            with open(p) as fh:
                return fh.read().strip()
        except OSError:
            return ""
    cpu = next((l.split(":", 1)[1].strip() for l in read("/proc/cpuinfo").splitlines()
                if l.startswith("model name")), "")
    mem = next((l.split(":", 1)[1].strip() for l in read("/proc/meminfo").splitlines()
                if l.startswith("MemTotal")), "")
    return {"hostname": platform.node(), "kernel": platform.release(), "cpu": cpu,
            "cpus": os.cpu_count(), "memory": mem,
            "debian": read("/etc/debian_version"),
            "loadavg": read("/proc/loadavg")}


def write_csv(path, rows, cols):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n",
                           extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("%.6g" % v if isinstance(v, float) else v)
                        for k, v in r.items()})


def fmt_secs(s):
    return "%dm%02ds" % (s // 60, s % 60)


def analyse(a, outdir, rows, names, jobs, rounds, slots, info, errors):
    """Summary, configs.csv, summary.md, tune.json, figures; prints the
    table and the recommendation.  Returns the exit status."""
    cfgmap = {n: (o, g) for n, o, g in CONFIGS}
    run_id = info["run"]
    sw = Sweep(rows, names, rounds)
    summary, meta = summarize(sw, jobs, a.quick)
    # The A/A control is the default again: not a candidate of its own.
    pts = [(c, summary[c].get("bytes_per_buffer", float("nan")), summary[c]["lat_index"])
           for c in names if c != "default#2"]
    fronts = {"all": pareto(pts),
              "tuning": pareto([p for p in pts if p[0] in TUNING])}
    waste = waste_summary(slots)
    rec_lines, verdict = recommend(summary, sw, fronts, meta, waste)

    cols = ["config", "options", "group", "lat_index", "lat_q25", "lat_q75",
            "p99_index", "p99_q25", "p99_q75", "mean_index", "mean_q25", "mean_q75",
            "bytes_per_buffer", "pages_mapped",
            "vmas", "fill_bytes_per_buffer", "fill_pages_mapped", "fill_vmas",
            "syscalls_per_op", "cache_hit_rate", "on_front"]
    extra_cols = sorted({k for d in summary.values() for k in d if ":" in k})
    crow = []
    for c in names:
        d = dict(summary[c], options=cfgmap[c][0], group=cfgmap[c][1],
                 on_front=int(c in fronts["all"]))
        crow.append(d)
    write_csv(os.path.join(outdir, "configs.csv"), crow, cols + extra_cols)

    tab = table(summary, names, fronts, meta, sw)
    loads = info.get("loadavg_per_round", [])
    md = ["# tars tuning sweep %s" % run_id, "",
          "Command: `%s` (%d configurations x %d workloads x %d rounds, "
          "scale %s, %s). Machine: %s, %s CPUs, kernel %s; load average at the "
          "start of each round: %s." % (
              info.get("command", "make tune"), len(names), len(jobs), len(rounds),
              info.get("scale"), fmt_secs(info.get("seconds", 0)),
              info["machine"]["cpu"], info["machine"]["cpus"],
              info["machine"]["kernel"],
              "; ".join(l.split()[0] for l in loads) or "-"),
          "Library: git %s (%s)%s; compare-tars sha256 %s." % (
              info.get("git", {}).get("commit", "?"), info.get("git", {}).get("subject", ""),
              ", tars sources modified: " + " ".join(info["git"]["tars_modified"])
              if info.get("git", {}).get("tars_modified") else "",
              info.get("binary_sha256", "?")[:16]), "",
          "Median index: geometric mean over the %d latency measurements (%s) of "
          "the median ns/op (p50 of the ~2 us batches) relative to the default "
          "configuration in the same round; median [interquartile range] over "
          "rounds. p99 index: the same with the p99 of the batches. (The mean-"
          "based index, from compare's ns_per_op, is in configs.csv: preemption "
          "on the shared machine makes it noisier.) "
          "X median ns: the median ns/op, median over rounds. "
          "B/buffer: resident bytes per live buffer (VmRSS growth / live slots, "
          "%s, sizes uniform 16..2048, steady state); pages: VmSize growth "
          "in pages there. syscalls/op: system calls tars made per allocation "
          "(tars stats, whole processes of the churn and fill workloads); cache "
          "hit: new chunk pages taken from the empty-page cache / all new chunk "
          "pages. fill B/buf: VmRSS growth per live 64-byte buffer (%s)." % (
              len(sw.lat_keys), ", ".join(sw.lat_keys), meta["mem_key"],
              meta["fill_key"]), ""] + tab + ["", "```"] + rec_lines + ["```", ""]
    md += ["Size classes (tars_slot_size, sizes 16..2048): classes=0 has %d classes "
           "(%s), classes=1 has %d (%s)." % (
               len(waste["classes0"]), " ".join(map(str, waste["classes0"])),
               len(waste["classes1"]), " ".join(map(str, waste["classes1"]))), ""]
    if errors:
        md += ["## Failures", ""] + ["- " + e for e in errors] + [""]
    with open(os.path.join(outdir, "summary.md"), "w") as fh:
        fh.write("\n".join(md))
    info["verdict"] = verdict
    info["summary"] = summary
    info["rounds_analysed"] = rounds
    with open(os.path.join(outdir, "tune.json"), "w") as fh:
        json.dump(info, fh, indent=1, default=str)
        fh.write("\n")
    link = os.path.join(os.path.dirname(os.path.normpath(outdir)), "latest")
    if os.path.lexists(link + ".tmp"):
        os.remove(link + ".tmp")
    os.symlink(run_id, link + ".tmp")
    os.replace(link + ".tmp", link)

    if not a.no_plots:
        ddir = os.path.join(a.plots, "data")
        write_plot_data(ddir, summary, names, fronts, slots, meta, sw, run_id)
        for p in draw(ddir, a.plots):
            if p.endswith(".png"):
                print("  PLOT    %s (+ .svg)" % p)

    print()
    print("\n".join(tab))
    print()
    print("\n".join(rec_lines))
    print()
    print("tune: %d rows, results %s (%s)" % (len(rows), os.path.abspath(outdir),
                                               fmt_secs(info.get("seconds", 0))))
    return proc.exit_status("tune", errors)


def resummarize(a):
    """--summarize DIR: the analysis again from DIR/tune.csv (for instance
    of a sweep that was interrupted: only its complete rounds count)."""
    outdir = os.path.normpath(a.summarize)
    with open(os.path.join(outdir, "tune.csv")) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["round"] = int(r["round"])
    try:
        with open(os.path.join(outdir, "tune.json")) as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        info = {"run": os.path.basename(outdir), "machine": machine()}
    info.setdefault("run", os.path.basename(outdir))
    order = [n for n, _, _ in CONFIGS]
    unknown = sorted({r["config"] for r in rows} - set(order))
    if unknown:
        sys.exit("tune: %s was swept with configurations this tune.py does not know "
                 "(%s): summarize it with the tune/tune.py of the commit that ran it "
                 "(tune.json names it)" % (outdir, ", ".join(unknown)))
    names = sorted({r["config"] for r in rows}, key=order.index)
    labels = []
    for r in rows:
        if r["job"] not in labels:
            labels.append(r["job"])
    alljobs = dict(JOBS + QUICK_JOBS)
    jobs = [(l, alljobs.get(l, [])) for l in labels]
    a.quick = any(l in dict(QUICK_JOBS) and l not in dict(JOBS) for l in labels)
    ran = {(r["round"], r["config"], r["job"]) for r in rows
           if r["metric"] == "process_seconds"}
    rounds = sorted(rnd for rnd in {r["round"] for r in rows}
                    if all((rnd, c, j) in ran for c in names for j in labels))
    if not rounds:
        sys.exit("tune: no complete round in %s" % outdir)
    print("tune: summarizing %s: %d complete round(s) of %d" % (
        outdir, len(rounds), len({r["round"] for r in rows})))
    slots = []
    with open(os.path.join(outdir, "slots.csv")) as fh:
        for r in csv.DictReader(fh):
            slots.append((int(r["size"]), int(r["slot_classes0"]), int(r["slot_classes1"])))
    return analyse(a, outdir, rows, names, jobs, rounds, slots, info,
                   info.get("errors", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/compare/compare-tars")
    ap.add_argument("--slots", default="build/tune/tars-slots")
    ap.add_argument("--results", default="results/tune")
    ap.add_argument("--plots", default="plots/out/tune")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--quick", action="store_true",
                    help="4 configurations, tiny workloads, 2 rounds (for tests)")
    ap.add_argument("--configs", help="only these configurations (names, "
                    "space-separated, e.g. 'cache=0 junk=2')")
    ap.add_argument("--reps", type=int, help="repetitions inside each process")
    ap.add_argument("--rep-seconds", type=float)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--run", help="run directory name (default: timestamp)")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--summarize", metavar="DIR",
                    help="no sweep: analyse DIR/tune.csv again")
    a = ap.parse_args()
    if a.summarize:
        return resummarize(a)

    cfgmap = {n: (o, g) for n, o, g in CONFIGS}
    names = [n for n, _, _ in CONFIGS]
    if a.quick:
        names = QUICK_CONFIGS
    if a.configs:
        names = a.configs.split()
        for n in names:
            if n not in cfgmap:
                ap.error("unknown configuration %r (known: %s)" % (n, " ".join(cfgmap)))
        if "default" not in names:
            names.insert(0, "default")
    jobs = QUICK_JOBS if a.quick else JOBS
    scale = "tiny" if a.quick else "default"
    rounds = a.rounds or (2 if a.quick else 7)
    extra = []
    if a.reps:
        extra += ["--reps", str(a.reps)]
    if a.rep_seconds:
        extra += ["--rep-seconds", str(a.rep_seconds)]
    for p in (a.bin, a.slots):
        if not os.access(p, os.X_OK):
            sys.exit("tune: %s is not built (make tune builds it)" % p)

    run_id = a.run or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(a.results, run_id)
    os.makedirs(outdir, exist_ok=True)
    # Every process of the sweep runs the same binary: a private copy, so a
    # rebuild of build/compare meanwhile neither breaks nor mixes the sweep.
    snapdir = tempfile.mkdtemp(prefix="tars-tune-")
    binary = os.path.join(snapdir, os.path.basename(a.bin))
    shutil.copy2(a.bin, binary)
    with open(binary, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    info = {"run": run_id, "started": datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "make tune" + (" TUNE_QUICK=1" if a.quick else "") +
        (" TUNE_ROUNDS=%d" % a.rounds if a.rounds else "") +
        (" TUNE_CONFIGS='%s'" % a.configs if a.configs else ""),
        "argv": sys.argv, "machine": machine(), "scale": scale, "rounds": rounds,
        "extra_args": extra, "binary": os.path.abspath(a.bin),
        "binary_sha256": digest, "git": git_state(),
        "configs": [{"name": n, "options": cfgmap[n][0], "group": cfgmap[n][1]}
                    for n in names],
        "jobs": [{"label": l, "args": args} for l, args in jobs]}
    with open(os.path.join(outdir, "tune.json"), "w") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")
    nproc = len(names) * len(jobs) * rounds
    print("tune: %d configurations x %d workloads x %d rounds = %d processes "
          "(scale %s) -> %s" % (len(names), len(jobs), rounds, nproc, scale, outdir),
          flush=True)

    slots = slot_table(a.slots)
    with open(os.path.join(outdir, "slots.csv"), "w") as fh:
        fh.write("size,slot_classes0,slot_classes1\n")
        for s, x, y in slots:
            fh.write("%d,%d,%d\n" % (s, x, y))

    rng = random.Random(a.seed)
    rows, processes, errors = [], [], []
    t0 = time.monotonic()
    done = 0
    try:
        for rnd in range(1, rounds + 1):
            info.setdefault("loadavg_per_round", []).append(machine()["loadavg"])
            for label, args in jobs:
                order = names[:]
                rng.shuffle(order)
                el = time.monotonic() - t0
                eta = el / done * (nproc - done) if done else 0
                sys.stdout.write("[round %d/%d %s eta %s] %-18s " % (
                    rnd, rounds, fmt_secs(el), fmt_secs(eta) if done else "?", label))
                sys.stdout.flush()
                bad = 0
                for c in order:
                    opts = cfgmap[c][0]
                    res = run_process(binary, args, scale, opts, extra)
                    done += 1
                    rows.extend(rows_of(run_id, rnd, c, opts, label, res))
                    processes.append({"round": rnd, "config": c, "job": label,
                                      "cmd": res["cmd"], "rc": res["rc"],
                                      "seconds": res["seconds"], "why": res["why"],
                                      "stats": res["stats"],
                                      "stderr_tail": res["stderr_tail"]})
                    if res["why"]:
                        bad += 1
                        errors.append("round %d %s %s: %s" % (rnd, c, label, res["why"]))
                    sys.stdout.write("F" if res["why"] else ".")
                    sys.stdout.flush()
                print(" FAILED (%d)" % bad if bad else " ok", flush=True)
            write_csv(os.path.join(outdir, "tune.csv"), rows, COLUMNS)
    finally:
        shutil.rmtree(snapdir, ignore_errors=True)
    info["seconds"] = round(time.monotonic() - t0, 1)
    info["loadavg_end"] = machine()["loadavg"]
    info["errors"] = errors
    info["processes"] = processes
    return analyse(a, outdir, rows, names, jobs, list(range(1, rounds + 1)),
                   slots, info, errors)


if __name__ == "__main__":
    sys.exit(main())
