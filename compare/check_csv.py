#!/usr/bin/env python3
"""Validate a run directory: compare.csv and ratios.csv against their
documented columns, compare.json and summary.md present, every backend
correctly linked and present in every workload, every value well-formed,
latency percentiles coherent, ratio intervals around their ratio.

    compare/check_csv.py RUN_DIR

Prints one line per check and "check_csv: N passed, N failed"; exits 1 on
any failure.
"""

import json
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402
from run import COLUMNS, RATIO_COLUMNS  # noqa: E402

STATUSES = {"ok", "failed", "unsupported"}
UNITS = {"ns", "ops/s", "bytes", "count", "faults/op", "s", "bool", "ratio", ""}

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + what)
    else:
        failed += 1
        print("FAIL " + what)


def number(s):
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def coherent(rows, prefix):
    """(keys checked, the incoherent ones): p50 <= p99 <= p99.9, all >= 0."""
    keys = {(r["round"], r["backend"], r["workload"], r["variant"], r["param_value"])
            for r in rows if r["metric"] == prefix + "p50_ns" and r["status"] == "ok"}
    bad = []
    by = {}
    for r in rows:
        k = (r["round"], r["backend"], r["workload"], r["variant"], r["param_value"])
        if k in keys:
            by.setdefault(k, {})[r["metric"]] = number(r["value"])
    for k in sorted(keys):
        m = by[k]
        p = [m.get(prefix + "p50_ns"), m.get(prefix + "p99_ns"), m.get(prefix + "p999_ns")]
        if None in p or not (0 <= p[0] <= p[1] <= p[2]):
            bad.append("%s: %s" % ("/".join(k), p))
    return keys, bad


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: compare/check_csv.py RUN_DIR")
    d = sys.argv[1]
    with open(os.path.join(d, "compare.csv"), newline="") as f:
        header = f.readline().strip().split(",")
    rows = suite.read_csv(os.path.join(d, "compare.csv"))
    check(header == COLUMNS, "compare.csv header is %s" % ",".join(COLUMNS))
    check(len(rows) > 0, "%d rows" % len(rows))

    with open(os.path.join(d, "compare.json")) as f:
        doc = json.load(f)
    check(doc.get("errors") == [], "no process failed: %s" % doc.get("errors"))
    check(bool(doc.get("machine", {}).get("kernel")), "machine and kernel recorded")
    check(os.path.getsize(os.path.join(d, "summary.md")) > 0, "summary.md written")
    backends = list(doc.get("backends", {}))
    workloads = [w["name"] for w in doc.get("workloads", [])]
    check(len(backends) > 0 and len(workloads) > 0,
          "%d backends, %d workloads" % (len(backends), len(workloads)))

    for b in backends:
        info = doc["backends"][b]
        check(info.get("malloc_owner_ok") is True and bool(info.get("library")),
              "%s: library %r, malloc from %s (expected %s)" % (
                  b, info.get("library"), info.get("malloc_owner"),
                  info.get("malloc_owner_expected")))
        for w in workloads:
            mine = [r for r in rows if r["backend"] == b and r["workload"] == w]
            owner = [r for r in mine if r["metric"] == "malloc_owner_ok"]
            measured = [r for r in mine if r["metric"] != "malloc_owner_ok"]
            check(measured and owner and all(o["value"] == "1" for o in owner),
                  "%s %s: %d rows, malloc owner checked in %d processes" % (
                      b, w, len(mine), len(owner)))

    bad = []
    for i, r in enumerate(rows, 2):
        if None in r.values() or None in r:
            bad.append("line %d: wrong number of fields" % i)
            continue
        if r["run"] != doc["run"] or r["backend"] not in backends:
            bad.append("line %d: run/backend %s/%s" % (i, r["run"], r["backend"]))
        if r["status"] not in STATUSES:
            bad.append("line %d: status %r" % (i, r["status"]))
        if r["unit"] not in UNITS:
            bad.append("line %d: unit %r" % (i, r["unit"]))
        if r["param_value"] and number(r["param_value"]) is None:
            bad.append("line %d: param_value %r" % (i, r["param_value"]))
        if r["status"] == "ok":
            v = number(r["value"])
            if v is None:
                bad.append("line %d: ok row without a finite value" % i)
            elif r["unit"] in ("ns", "ops/s", "count") and v < 0 \
                    and not r["metric"].endswith("_delta"):
                bad.append("line %d: negative %s %s" % (i, r["metric"], v))
        elif r["status"] == "failed" and not (r["errno"] or r["note"]):
            bad.append("line %d: failure without errno or note" % i)
    check(not bad, "every row well-formed" + ("" if not bad else ": " + "; ".join(bad[:5])))

    for prefix, what in (("batch_", "batch-mean"), ("op_", "per-operation")):
        keys, incoherent = coherent(rows, prefix)
        check(len(keys) > 0 and not incoherent,
              "%d %s percentile sets coherent%s" % (
                  len(keys), what, "" if not incoherent else ": " + "; ".join(incoherent[:4])))

    # tars counts its own system calls: the burst and tls rows have them.
    for w in ("burst", "tls"):
        if w in workloads and "tars" in backends:
            sc = [r for r in rows if r["backend"] == "tars" and r["workload"] == w
                  and r["metric"] == "syscalls_per_op" and r["status"] == "ok"]
            check(len(sc) > 0, "tars %s: syscalls_per_op from tars's stats (%d rows)"
                  % (w, len(sc)))

    with open(os.path.join(d, "ratios.csv"), newline="") as f:
        rheader = f.readline().strip().split(",")
    rat = suite.read_csv(os.path.join(d, "ratios.csv"))
    check(rheader == RATIO_COLUMNS, "ratios.csv header is %s" % ",".join(RATIO_COLUMNS))
    bad = []
    with_ci = 0
    for r in rat:
        med, lo_, hi_ = number(r["median"]), number(r["min"]), number(r["max"])
        if med is None or lo_ is None or not (lo_ <= med <= hi_):
            bad.append("%s %s %s: median %s outside [%s, %s]" % (
                r["backend"], r["workload"], r["metric"], r["median"], r["min"], r["max"]))
        if r["ci_lo"]:
            with_ci += 1
            lo, rt, hi = number(r["ci_lo"]), number(r["ratio"]), number(r["ci_hi"])
            if None in (lo, rt, hi) or not (lo <= rt * 1.000001 and rt <= hi * 1.000001):
                bad.append("%s %s %s: ratio %s outside [%s, %s]" % (
                    r["backend"], r["workload"], r["metric"], rt, lo, hi))
            if r["ci_includes_1"] != str(int(lo <= 1 <= hi)):
                bad.append("%s %s %s: ci_includes_1 wrong" % (
                    r["backend"], r["workload"], r["metric"]))
    check(len(rat) > 0 and not bad, "%d ratio rows well-formed%s" % (
        len(rat), "" if not bad else ": " + "; ".join(bad[:4])))
    if doc.get("rounds", 1) >= 2 and "tars" in backends and len(backends) > 1:
        check(with_ci > 0, "%d ratios with a bootstrap interval" % with_ci)

    if "capacity" in workloads:
        caps = {r["backend"]: r for r in rows
                if r["workload"] == "capacity" and r["metric"] == "capacity_count"}
        check(set(caps) == set(backends), "capacity measured for every backend")
        s = caps.get("sodium")
        if "sodium" in backends:
            check(s is not None and s["status"] == "ok" and number(s["value"]) and
                  (s["errno"] or "cap" in s["note"]),
                  "sodium capacity recorded with its end: %s"
                  % ((s and (s["value"], s["errno"], s["note"][:60])),))

    # Blocks of several pages: every backend ran the pair at 4 KiB and up and
    # the large churn.
    if "pair" in workloads:
        big = {(r["backend"], number(r["param_value"])) for r in rows
               if r["workload"] == "pair" and r["metric"] == "ns_per_op"
               and r["status"] == "ok" and (number(r["param_value"]) or 0) >= 4096}
        sizes = {s for _, s in big}
        check(sizes and all((b, s) in big for b in backends for s in sizes),
              "pair at %s bytes for every backend" % sorted(sizes))
    if "churn" in workloads:
        lg = {r["backend"] for r in rows if r["workload"] == "churn"
              and r["variant"] == "large" and r["metric"] == "ns_per_op"
              and r["status"] == "ok"}
        check(lg == set(backends), "churn large (4-64 KiB) for every backend: %s"
              % sorted(set(backends) - lg))

    # Keys: the key backends measured a key's life, the others said they
    # cannot; its ratios are to tars-key.
    keyb = {b for b in backends if doc["backends"][b].get("keys")}
    if "keylife" in workloads:
        st = {r["backend"]: r["status"] for r in rows if r["workload"] == "keylife"
              and r["metric"] == "ns_per_op"}
        check(all(st.get(b) == "ok" for b in keyb) and
              all(st.get(b) == "unsupported" for b in set(backends) - keyb),
              "keylife: ok for %s, unsupported for the others: %s" % (sorted(keyb), st))
        refs = {r["reference"] for r in rat if r["workload"] == "keylife" and r["ratio"]}
        if len(keyb) > 1 and "tars-key" in keyb:
            check(refs == {"tars-key"}, "keylife ratios are to tars-key: %s" % refs)
    if "capacity" in workloads:
        for b in backends:
            ends = [number(r["value"]) for r in rows if r["backend"] == b
                    and r["workload"] == "capacity" and r["metric"] in (
                        "capacity_reached_cap", "capacity_time_bound", "capacity_vma_limit")
                    and r["status"] == "ok"]
            check(len(ends) == 3 and sum(ends) <= 1,
                  "%s capacity: how it ended recorded (cap, time bound, VMA limit: %s)"
                  % (b, ends))
        for b in keyb:
            curve = [r for r in rows if r["backend"] == b and r["workload"] == "capacity"
                     and r["variant"] == "curve" and r["metric"] == "vma_count"]
            check(len(curve) >= 2, "%s: VMAs against live keys at %d points" % (b, len(curve)))
        if "tars-key" in backends:
            tb = [r for r in rows if r["backend"] == "tars-key" and r["workload"] == "capacity"
                  and r["metric"] == "capacity_time_bound"]
            check(tb and tb[0]["value"] == "0",
                  "tars-key capacity ended at the cap or a limit, not its time bound")

    print("check_csv: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
