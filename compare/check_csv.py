#!/usr/bin/env python3
"""Validate a run directory: compare.csv against its documented columns,
compare.json and summary.md present, every backend present and correctly
linked, every value well-formed.

    compare/check_csv.py RUN_DIR [--workloads "session capacity"]

Prints one line per check and "check_csv: N passed, N failed"; exits 1 on
any failure.
"""

import argparse
import csv
import json
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BACKENDS, COLUMNS  # noqa: E402

STATUSES = {"ok", "failed", "unsupported"}
UNITS = {"ns", "ops/s", "bytes", "count", "faults/op", "s", "bool", ""}

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--workloads", default="session")
    a = ap.parse_args()
    workloads = a.workloads.split()

    path = os.path.join(a.run_dir, "compare.csv")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    check(header == COLUMNS, "header is %s" % ",".join(COLUMNS))
    check(len(rows) > 0, "%d rows" % len(rows))

    with open(os.path.join(a.run_dir, "compare.json")) as f:
        doc = json.load(f)
    check(doc.get("errors") == [], "no process failed: %s" % doc.get("errors"))
    check(bool(doc.get("machine", {}).get("kernel")), "machine and kernel recorded")
    check(os.path.getsize(os.path.join(a.run_dir, "summary.md")) > 0, "summary.md written")

    for b in BACKENDS:
        info = doc.get("backends", {}).get(b, {})
        check(info.get("malloc_owner_ok") is True and bool(info.get("library")),
              "%s: library %r, malloc from %s" % (b, info.get("library"),
                                                  info.get("malloc_owner")))
        for w in workloads:
            mine = [r for r in rows if r["backend"] == b and r["workload"] == w]
            owner = [r for r in mine if r["metric"] == "malloc_owner_ok"]
            check(len(mine) > 1 and owner and all(o["value"] == "1" for o in owner),
                  "%s %s: %d rows, malloc owner checked" % (b, w, len(mine)))

    bad = []
    for i, r in enumerate(rows, 2):
        if None in r.values() or None in r:
            bad.append("line %d: wrong number of fields" % i)
            continue
        if r["run"] != doc["run"] or r["backend"] not in BACKENDS:
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
            elif r["unit"] in ("ns", "ops/s", "count") and v < 0:
                bad.append("line %d: negative %s %s" % (i, r["metric"], v))
        elif r["status"] == "failed" and not (r["errno"] or r["note"]):
            bad.append("line %d: failure without errno or note" % i)
    check(not bad, "every row well-formed" + ("" if not bad else ": " + "; ".join(bad[:5])))

    # The latency rows must hang together: p50 <= p99 <= p99.9, all > 0.
    incoherent = []
    keys = {(r["backend"], r["workload"], r["variant"], r["param_value"])
            for r in rows if r["metric"] == "ns_per_op" and r["status"] == "ok"}
    for k in sorted(keys):
        m = {r["metric"]: number(r["value"]) for r in rows
             if (r["backend"], r["workload"], r["variant"], r["param_value"]) == k}
        p = [m.get("p50_ns"), m.get("p99_ns"), m.get("p999_ns")]
        if None in p or not (0 < p[0] <= p[1] <= p[2]) or not m["ns_per_op"] > 0:
            incoherent.append("%s: %s" % ("/".join(k), p))
    check(len(keys) > 0 and not incoherent,
          "%d latency sets coherent%s" % (len(keys), "" if not incoherent
                                           else ": " + "; ".join(incoherent[:4])))

    if "capacity" in workloads:
        caps = {r["backend"]: r for r in rows
                if r["workload"] == "capacity" and r["metric"] == "capacity_count"}
        check(set(caps) == set(BACKENDS), "capacity measured for every backend")
        s = caps.get("sodium")
        check(s is not None and s["status"] == "ok" and number(s["value"]) and
              (s["errno"] or "cap" in s["note"]),
              "sodium capacity recorded with its end: %s"
              % ((s and (s["value"], s["errno"], s["note"][:60])),))

    print("check_csv: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
