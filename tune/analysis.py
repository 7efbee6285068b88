"""tune/analysis.py - from the sweep's rows to a recommendation.

Latency index: per round, the geometric mean over the latency measurements
of each one's median ns/op (the p50 of its ~2 us batch means) relative to
the default configuration in the same round; its median and interquartile
range over the rounds.  Tail index: the same from the per-operation p99
(single operations timed with the TSC: op_p99_ns), which sees the system
calls of rare page cycles that batch means average away.

Recommendation (recommend): see tune/tune.py.  Stability (stability): the
recommendation is made again on bootstrap resamples of the rounds (rounds
drawn with replacement); the share of resamples that agree with it says
how much it rests on the noise of a few rounds.  A change of an option is
recommended only when the share of resamples that make it reaches STABLE
(per option: the more options the sweep decides, the rarer a joint
agreement on all of them, which is reported too).
"""

import copy
import math
import random
import statistics
import subprocess

STABLE = 0.8           # share of resamples that must agree to change a default
RESAMPLES = 200

# The configurations the recommendation chooses among (groups of sweep.CONFIGS).
TUNING_GROUPS = ("default", "cache x classes", "spare")
LAT_METRIC = "batch_p50_ns"    # latency index: median of batch means
TAIL_METRIC = "op_p99_ns"      # tail index: per-operation p99
MEAN_METRIC = "ns_per_op"

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

    def __init__(self, rows, configs, rounds, large_jobs=()):
        self.configs = configs
        self.rounds = rounds
        self.v = {}      # (config, round, key, metric) -> value
        self.stats = {}  # (config, round, job) -> {stat: value}
        self.page = 4096
        self.large_jobs = set(large_jobs)
        large = set()   # keys measured by the large-block jobs
        for r in rows:
            if r["source"] == "compare":
                key = fmt_key(r["workload"], r["variant"], r["param_value"])
                self.v[(r["config"], r["round"], key, r["metric"])] = float(r["value"])
                if r["job"] in self.large_jobs:
                    large.add(key)
            elif r["source"] == "tars_stats":
                self.stats.setdefault((r["config"], r["round"], r["job"]), {})[
                    r["metric"][6:]] = float(r["value"])
        # The latency index of the chunk jobs, and its own of the
        # large-block jobs (the large-block options run only those).
        self.lat_keys = sorted({k for (_, _, k, m) in self.v
                                if m == LAT_METRIC and k not in large})
        self.large_keys = sorted({k for (_, _, k, m) in self.v
                                  if m == LAT_METRIC and k in large})

    def get(self, c, r, key, metric):
        return self.v.get((c, r, key, metric))

    def series(self, c, key, metric, scale=1.0):
        return [self.v[(c, r, key, metric)] * scale for r in self.rounds
                if (c, r, key, metric) in self.v]

    def index(self, c, metric=LAT_METRIC, keys=None):
        """Per round: geomean over latency keys (the chunk jobs', or keys)
        of value / default's."""
        out = []
        for r in self.rounds:
            ratios = []
            for k in (self.lat_keys if keys is None else keys):
                a, b = self.get(c, r, k, metric), self.get("default", r, k, metric)
                if a is not None and b:
                    ratios.append(a / b)
            if ratios:
                out.append(geomean(ratios))
        return out

    def key_ratio(self, c, key, metric=LAT_METRIC):
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
    page_jobs = [j for j, _ in jobs if j.startswith(("churn", "fill"))
                 and j not in sw.large_jobs]
    large_jobs = [j for j, _ in jobs if j in sw.large_jobs]
    large_mem = sorted({k for (_, _, k, m) in sw.v
                        if k.startswith("churn-large/") and m == "rss_delta_bytes"},
                       key=lambda k: float(k.split("/")[1]))
    large_mem = large_mem[-1] if large_mem else None
    out = {}
    for c in sw.configs:
        idx = quartiles(sw.index(c))
        p99 = quartiles(sw.index(c, TAIL_METRIC))
        mean = quartiles(sw.index(c, MEAN_METRIC))
        d = {"config": c, "lat_q25": idx[0], "lat_index": idx[1], "lat_q75": idx[2],
             "p99_index": p99[1], "p99_q25": p99[0], "p99_q75": p99[2],
             "mean_index": mean[1], "mean_q25": mean[0], "mean_q75": mean[2]}
        for k in sw.lat_keys:
            d["ns:" + k] = median(sw.series(c, k, LAT_METRIC))
            d["p99:" + k] = median(sw.series(c, k, TAIL_METRIC))
            d["mean:" + k] = median(sw.series(c, k, MEAN_METRIC))
            d["ratio:" + k] = median(sw.key_ratio(c, k))
            d["p99ratio:" + k] = median(sw.key_ratio(c, k, TAIL_METRIC))
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
        # Large blocks: their own index, memory of the large churn, and the
        # system calls of the large-block jobs.
        li = quartiles(sw.index(c, LAT_METRIC, sw.large_keys))
        lp = quartiles(sw.index(c, TAIL_METRIC, sw.large_keys))
        d.update(large_index=li[1], large_q25=li[0], large_q75=li[2], large_p99_index=lp[1],
                 large_p99_q25=lp[0], large_p99_q75=lp[2])
        for k in sw.large_keys:
            d["ns:" + k] = median(sw.series(c, k, LAT_METRIC))
            d["p99:" + k] = median(sw.series(c, k, TAIL_METRIC))
            d["ratio:" + k] = median(sw.key_ratio(c, k))
        if large_mem:
            slots = float(large_mem.split("/")[1])
            d["large_bytes_per_slot"] = median(sw.series(c, large_mem, "rss_delta_bytes",
                                                         1 / slots))
            d["large_vmas"] = median(sw.series(c, large_mem, "vma_delta"))
        if large_jobs and any(sw.stats.get((c, r, j)) for r in sw.rounds for j in large_jobs):
            d["large_syscalls_per_op"] = sw.ratio_stat(c, large_jobs, ["syscalls"], ["mallocs"])
            d["large_munmaps_per_op"] = sw.ratio_stat(c, large_jobs, ["munmaps"], ["mallocs"])
        out[c] = d
    meta = {"mem_key": mem_key, "fill_key": fill_key, "page_jobs": page_jobs,
            "large_jobs": large_jobs, "large_mem": large_mem}
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
    head = ["config", "median index [IQR]", "per-op p99 index", "B/buffer", "pages",
            "syscalls/op", "cache hit", "fill B/buf", "large index [IQR]", "large B/slot",
            "front"]
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
                "%s [%s-%s]" % (f(d.get("large_index")), f(d.get("large_q25")),
                                f(d.get("large_q75"))),
                f(d.get("large_bytes_per_slot"), "%.0f"),
                "all" if c in fronts["all"] else ("tuning" if c in fronts["tuning"] else "")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def adopt(rec, name):
    """Set the options of configuration `name` ("a=1,b=2") in rec."""
    for kv in name.split(","):
        k, v = kv.split("=")
        rec[k] = int(v)


def large_blocks(summary, meta, sw, rec, large):
    """Lines on the large-block options, adopting into rec what holds.

    Their own latency index (over the large-block jobs) and memory (resident
    bytes per live slot of the large churn) against the default, with the
    A/A control's spread on those jobs as the noise.  large_cache is a
    tuning knob: the same score rule as cache and classes.  quarantine and
    freed_none are protections: strengthened (quarantine=256, freed_none=1)
    only when free, never weakened for speed; quarantine=0 and 8 say what the
    window costs."""
    L = []
    dflt = summary["default"]
    b0 = dflt.get("large_bytes_per_slot", float("nan"))
    shown = [c for c in summary if math.isfinite(summary[c].get("large_index", float("nan")))]
    if not sw.large_keys or "default" not in shown:
        return L
    halfiqr = [0.5 * (math.log(summary[c]["large_q75"]) - math.log(summary[c]["large_q25"]))
               for c in shown if summary[c]["large_q25"] > 0]
    noise = median(halfiqr) if halfiqr else 0.0
    aa = summary.get("default#2")
    if aa and aa.get("large_index", 0) > 0 and math.isfinite(aa["large_index"]):
        noise = max(noise, abs(math.log(aa["large_index"])),
                    0.5 * (math.log(aa["large_q75"]) - math.log(aa["large_q25"])))

    def score(d):
        bb = d.get("large_bytes_per_slot", float("nan"))
        li = d.get("large_index", float("nan"))
        if not (math.isfinite(li) and li > 0 and math.isfinite(bb) and bb > 0 and b0 > 0):
            return float("inf")
        return math.log(li) + math.log(bb / b0)

    def p99_worse(d):
        p = d.get("large_p99_index", float("nan"))
        return math.isfinite(p) and p > 0 and math.log(p) > noise

    def vmas_doubled(d):
        v0, v = dflt.get("large_vmas", float("nan")), d.get("large_vmas", float("nan"))
        return math.isfinite(v0) and math.isfinite(v) and v0 > 0 and v > 2 * v0

    L.append("")
    L.append("Large blocks (%s: latency index over %s, vs the default in the same round; "
             "resident bytes per live slot and VMAs in %s; system calls per allocation "
             "of those jobs; noise margin %.3f):" % (
                 ", ".join(meta["large_jobs"]), ", ".join(sw.large_keys), meta["large_mem"],
                 noise))
    order = ["default", "default#2"] + [c for c in large if c in shown] + \
        [c for c in shown if c not in large and c not in ("default", "default#2")]
    for c in order:
        if c not in shown:
            continue
        d = summary[c]
        L.append("  %-18s score %+.3f  latency %s [%s..%s]  op-p99 %s  %s B/slot (%s)  "
                 "%s VMAs  %s syscalls/op" % (
                     c, score(d), pct(d["large_index"]), pct(d["large_q25"]),
                     pct(d["large_q75"]), pct(d["large_p99_index"]),
                     f(d.get("large_bytes_per_slot"), "%.0f"),
                     pct(d.get("large_bytes_per_slot", float("nan")) / b0),
                     f(d.get("large_vmas"), "%.0f"), f(d.get("large_syscalls_per_op"), "%.4f")))
    # large_cache: the best score, if it beats the default by more than
    # the noise and passes the checks.
    knob = sorted((c for c in large if c.startswith("large_cache=") and c in shown),
                  key=lambda c: score(summary[c]))
    sd = score(dflt)
    chosen = None
    for c in knob:
        d = summary[c]
        if score(d) >= sd - noise:
            break
        if vmas_doubled(d) or p99_worse(d):
            L.append("=> not %s: it beats the default by %.3f in score, but %s." % (
                c, sd - score(d), "it doubles the VMAs" if vmas_doubled(d)
                else "its per-operation p99 is worse"))
            continue
        chosen = c
        break
    if chosen:
        adopt(rec, chosen)
        L.append("=> change: %s beats the default by %.3f in score on large blocks "
                 "(latency %s, bytes per slot %s), more than the noise margin." % (
                     chosen, sd - score(summary[chosen]),
                     pct(summary[chosen]["large_index"]),
                     pct(summary[chosen].get("large_bytes_per_slot", float("nan")) / b0)))
    elif knob:
        L.append("=> keep large_cache: no value beats the default by more than the noise "
                 "(best %s, score %+.3f)." % (knob[0], score(summary[knob[0]])))
    # The protections: stronger only when free.
    for c in ("quarantine=256", "freed_none=1"):
        d = summary.get(c)
        if c not in large or d is None or c not in shown:
            continue
        bb = d.get("large_bytes_per_slot", float("nan"))
        if (abs(math.log(d["large_index"])) <= noise and not p99_worse(d)
                and math.isfinite(bb) and bb <= 1.02 * b0 and not vmas_doubled(d)):
            adopt(rec, c)
            L.append("=> %s costs no more than the noise on large blocks: strengthen%s." % (
                c, " (arena keys share the option: their memory is not measured here)"
                if c.startswith("quarantine") else ""))
        else:
            L.append("=> not %s: a stronger protection, but not free (latency %s, op-p99 %s, "
                     "bytes per slot %s)." % (c, pct(d["large_index"]), pct(d["large_p99_index"]),
                                              pct(bb / b0)))
    return L


def recommend(summary, sw, fronts, meta, waste, defaults, tuning, large=()):
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

    tuning = [c for c in tuning if c in summary]
    cands = [c for c in tuning if c in fronts["tuning"]] or tuning
    best = min(cands, key=lambda c: score(summary[c]))
    sd = score(dflt)
    L.append("")
    L.append("cache x classes, spare (score = ln(median latency index) + ln(bytes per buffer / "
             "default's); lower is better; noise margin %.3f):" % noise)
    for c in sorted(tuning, key=lambda c: score(summary[c])):
        d = summary[c]
        L.append("  %-22s score %+.3f  latency %s [%s-%s]  op-p99 %s  %s B/buffer  "
                 "%s VMAs  %s syscalls/op  cache hits %s%s" % (
                     c, score(d), f(d["lat_index"]), f(d["lat_q25"]), f(d["lat_q75"]),
                     f(d["p99_index"]),
                     f(d.get("bytes_per_buffer"), "%.0f"), f(d.get("vmas"), "%.0f"),
                     f(d.get("syscalls_per_op"), "%.5f"),
                     f(d.get("cache_hit_rate"), "%.2f"),
                     "  (front)" if c in fronts["tuning"] else ""))
    rec = dict(defaults)
    v0 = dflt.get("vmas", float("nan"))

    def vmas_doubled(d):
        """VMAs are a hard budget (vm.max_map_count) that keys and large
        blocks share: a configuration that doubles them is no default."""
        vv = d.get("vmas", float("nan"))
        return math.isfinite(v0) and math.isfinite(vv) and v0 > 0 and vv > 2 * v0

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
            L.append("=> not %s: it beats the default by %.3f in score, but its per-operation p99 "
                     "index is %s (%s): the tail pays for it." % (
                         c, sd - score(d), f(d["p99_index"]), pct(d["p99_index"])))
        else:
            chosen = c
            break
    tail = None if beaters else tail_pick()
    if chosen is not None:
        adopt(rec, chosen)
        L.append("=> change: %s beats the default by %.3f in score (latency %s, "
                 "bytes per buffer %s), more than the noise margin." % (
                     chosen, sd - score(summary[chosen]),
                     pct(summary[chosen]["lat_index"]),
                     pct(summary[chosen].get("bytes_per_buffer", float("nan")) / b0)))
    elif beaters:
        L.append("=> keep: every configuration that beats the default fails a check.")
    elif tail not in (None, "default"):
        # A tie on the median: the tail decides (see tail_pick).
        adopt(rec, tail)
        L.append("=> change: %s ties the default within the noise (score %+.3f vs "
                 "%+.3f) and has the shorter tail: per-op p99 index %s, bytes per buffer %s." % (
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
             "as median latency index [IQR] and bytes per buffer vs the default; per-operation p99 index):")
    prot = [("junk=0", "junk", 1, "alloc junk off (free still zeroes)"),
            ("junk=2", "junk", 1, "write-after-free check on reuse"),
            ("canary=0", "canary", 1, "slack canaries off"),
            ("random=0", "random", 1, "first-fit placement"),
            ("mlock=0", "mlock", 1, "no mlock"),
            ("delay=1", "delay", 0, "freed slots wait in a queue (delayed reuse)")]
    for c, opt, _, what in prot:
        if c not in summary:
            continue
        d = summary[c]
        lo, hi = d["lat_q25"], d["lat_q75"]
        L.append("  %-10s %-36s latency %s [%s..%s]  op-p99 %s  bytes %s  syscalls/op %s"
                 "  (largest: %s)" % (
                     c, what, pct(d["lat_index"]), pct(lo), pct(hi), pct(d["p99_index"]),
                     pct(d.get("bytes_per_buffer", float("nan")) / b0),
                     f(d.get("syscalls_per_op"), "%.5f"), largest(d)))
        if c not in ("junk=2", "delay=1") and math.isfinite(lo) and lo > 0 \
                and math.log(lo) > noise:
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
            L.append("  %-22s latency %s [%s..%s]  op-p99 %s  bytes %s  syscalls/op %s" % (
                c, pct(d["lat_index"]), pct(d["lat_q25"]), pct(d["lat_q75"]),
                pct(d["p99_index"]), pct(d.get("bytes_per_buffer", float("nan")) / b0),
                f(d.get("syscalls_per_op"), "%.5f")))
    L += large_blocks(summary, meta, sw, rec, large)
    L.append("")
    L.append("Current defaults on the Pareto front (latency index vs bytes per "
             "buffer): all configurations: %s; cache x classes and spare only: %s." % (
                 "yes" if "default" in fronts["all"] else "no",
                 "yes" if "default" in fronts["tuning"] else "no"))
    L.append("Front, all configurations: " + ", ".join(fronts["all"]))
    L.append("The rule's choice: " + ",".join("%s=%d" % kv for kv in rec.items())
             + ("  (= the current defaults)" if rec == defaults else
                "  (current: " + ",".join("%s=%d" % kv for kv in defaults.items()) + ")"))
    return L, {"recommended": rec, "best_tuning": best, "noise": noise,
               "default_on_front_all": "default" in fronts["all"],
               "default_on_front_tuning": "default" in fronts["tuning"]}



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
# the whole analysis, and its stability

def fronts_of(summary, names, tuning):
    # The A/A control is the default again: not a candidate of its own.
    pts = [(c, summary[c].get("bytes_per_buffer", float("nan")), summary[c]["lat_index"])
           for c in names if c != "default#2"]
    return {"all": pareto(pts), "tuning": pareto([p for p in pts if p[0] in tuning])}


def analyse_rounds(sw, names, jobs, slots, defaults, tuning, quick, large=()):
    """(summary, meta, fronts, waste, lines, verdict) over sw's rounds."""
    summary, meta = summarize(sw, jobs, quick)
    fronts = fronts_of(summary, names, tuning)
    waste = waste_summary(slots)
    lines, verdict = recommend(summary, sw, fronts, meta, waste, defaults, tuning, large)
    return summary, meta, fronts, waste, lines, verdict


def stability(sw, names, jobs, slots, defaults, tuning, quick, recommended,
              n=RESAMPLES, seed=1, large=()):
    """The recommendation made again on n bootstrap resamples of the rounds.
    Returns (share agreeing with `recommended` on every option,
    [(recommendation, share)] most frequent first, {option: share of the
    resamples that recommend the value `recommended` has})."""
    rng = random.Random(seed)
    counts, agree = {}, {k: 0 for k in recommended}
    for _ in range(n):
        view = copy.copy(sw)
        view.rounds = [rng.choice(sw.rounds) for _ in sw.rounds]
        v = analyse_rounds(view, names, jobs, slots, defaults, tuning, quick, large)[5]
        key = ",".join("%s=%d" % kv for kv in sorted(v["recommended"].items()))
        counts[key] = counts.get(key, 0) + 1
        for k in agree:
            agree[k] += v["recommended"].get(k) == recommended[k]
    want = ",".join("%s=%d" % kv for kv in sorted(recommended.items()))
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return (counts.get(want, 0) / n, [(k, c / n) for k, c in ranked],
            {k: c / n for k, c in agree.items()})


def stability_lines(share, ranked, recommended, defaults, per_option=None, n=RESAMPLES):
    """(lines, the recommendation that holds): a change of an option stands
    only when at least STABLE of the resamples make it too (per option:
    the chunk options and the large-block options are decided on different
    workloads, and a joint agreement over all of them falls with their
    number; without per_option, the joint share decides)."""
    def name(rec):
        diff = ["%s=%d" % (k, v) for k, v in sorted(rec.items()) if defaults.get(k) != v]
        return ",".join(diff) or "the current defaults"
    L = ["", "Stability: the same rule on %d bootstrap resamples of the rounds "
         "(rounds drawn with replacement) recommends %s in %.0f%% of them%s." % (
             n, name(recommended), share * 100,
             "" if not ranked else "; most frequent: " + "; ".join(
                 "%s %.0f%%" % (name(dict((kv.split("=")[0], int(kv.split("=")[1]))
                                          for kv in k.split(",") if kv)), s * 100)
                 for k, s in ranked[:3]))]
    held = dict(defaults)
    changed = [k for k in recommended if defaults.get(k) != recommended[k]]
    if per_option is None:
        per_option = {k: share for k in changed}
    for k in changed:
        ok = per_option.get(k, 0) >= STABLE
        if ok:
            held[k] = recommended[k]
        # One decimal: 200 resamples give shares in steps of 0.5%, and a
        # share of 79.5% printed as "80%" read as a contradiction of the
        # 80% threshold.
        L.append("=> %s=%d: %s in %.1f%% of the resamples: %s." % (
            k, recommended[k], "made" if ok else "made only", per_option.get(k, 0) * 100,
            "stable (at least %.0f%%), the change holds" % (STABLE * 100) if ok else
            "unstable (below %.0f%%), keep %s=%d; more rounds (TUNE_ROUNDS) may settle it"
            % (STABLE * 100, k, defaults.get(k))))
    if not changed:
        L.append("=> keeping the defaults is what %.0f%% of the resamples say." % (share * 100))
    L.append("Recommended defaults (stable): " + ",".join(
        "%s=%d" % kv for kv in held.items()))
    return L, held
