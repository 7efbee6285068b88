#!/usr/bin/env python3
"""check_json.py MODE BINARY OUT.json - run a benchmark binary, check its JSON.

The harness tests of `make test`:

  selftest  BINARY is gbench-selftest (glibc only): every feature of the
            shim shows up in the JSON as it should (names, arguments,
            counters and their flags, manual time, repetitions, errors).
  tiny      BINARY is tars-bench: one tiny tars/glibc pair run emits valid
            JSON with the latency and tars stats counters.

Exit status 0 when every check passes, 1 otherwise (each failed check is
printed).  Python 3 standard library only.
"""

import json
import math
import subprocess
import sys

FAILS = []
# Percentiles of batch means (stretches of up to 64 operations).
LAT = ("batch_p50_ns", "batch_p99_ns", "batch_p99.9_ns")


def check(cond, what):
    if not cond:
        FAILS.append(what)
    return cond


def run(cmd, want_rc):
    print("+ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    check(rc == want_rc, "%s exited %d, expected %d" % (cmd[0], rc, want_rc))


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "%s: not valid JSON: %s" % (path, e))
        return None
    check(isinstance(doc.get("context"), dict), "no context object")
    check(isinstance(doc.get("benchmarks"), list), "no benchmarks list")
    return doc


def runs(doc, name, run_type="iteration", aggregate=None):
    """Rows named `name` (run_name for aggregates) of one run type."""
    out = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type") != run_type:
            continue
        if run_type == "aggregate":
            if b.get("run_name") != name or b.get("aggregate_name") != aggregate:
                continue
        elif b.get("name") != name:
            continue
        out.append(b)
    return out


def one(doc, name, **kw):
    rows = runs(doc, name, **kw)
    check(len(rows) == 1, "%s: %d rows, expected 1" % (name, len(rows)))
    return rows[0] if rows else {}


def near(a, b, rel):
    return isinstance(a, (int, float)) and abs(a - b) <= rel * abs(b)


def finite_positive(row, key):
    v = row.get(key)
    return check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0,
                 "%s: counter %s missing or not > 0 (%r)" % (row.get("name"), key, v))


REPS = "selftest/reps/min_time:0.010/repeats:3"


def selftest(binary, out):
    # gbench-selftest exits 0 when gb_main reported the two skipped runs.
    run([binary, "--benchmark_out=" + out, "--benchmark_out_format=json",
         "--benchmark_min_time=0.01"], 0)
    doc = load(out)
    if doc is None:
        return
    check(doc["context"].get("selftest") == "1", "custom context missing")

    r = one(doc, "selftest/args/8/n:3/iterations:1000")
    check(r.get("iterations") == 1000, "args: iterations %r, expected 1000" % r.get("iterations"))
    check(r.get("ctx_ok") == 1, "args: context pointer not passed")
    check(r.get("arg0") == 8 and r.get("arg1") == 3, "args: arguments %r %r" % (r.get("arg0"), r.get("arg1")))
    check(r.get("iters") == 1000, "args: gb_state_iterations %r" % r.get("iters"))
    check(near(r.get("per_iter"), 1.0, 1e-9), "args: AVG_ITERATIONS flag: %r" % r.get("per_iter"))
    check(near(r.get("invariant"), 2000.0, 1e-9), "args: ITER_INVARIANT flag: %r" % r.get("invariant"))
    check(near(r.get("inverse"), 0.25, 1e-9), "args: INVERT flag: %r" % r.get("inverse"))
    finite_positive(r, "rate")
    finite_positive(r, "items_per_second")
    check(r.get("label") == "selftest-label", "args: label %r" % r.get("label"))

    r = one(doc, "selftest/manual/manual_time")
    # 1 us of manual time per iteration, whatever the wall clock says.
    check(near(r.get("real_time"), 1000.0, 1e-6) and r.get("time_unit") == "ns",
          "manual: real_time %r %r, expected 1000 ns" % (r.get("real_time"), r.get("time_unit")))

    check(len(runs(doc, REPS)) == 3, "reps: expected 3 repetitions")
    for agg in ("mean", "median", "stddev"):
        one(doc, REPS, run_type="aggregate", aggregate=agg)
    for row in runs(doc, REPS):
        for key in LAT:
            finite_positive(row, key)
        check(row.get(LAT[0], 0) <= row.get(LAT[1], 0) <= row.get(LAT[2], 0),
              "reps: percentiles out of order")

    for n in (8, 16, 32):
        r = one(doc, "selftest/range/%d/iterations:100" % n)
        check(r.get("time_unit") == "us", "range: time unit %r, expected us" % r.get("time_unit"))
    for n in (1, 2, 3):
        r = one(doc, "selftest/dense/%d/iterations:100/real_time" % n)
        finite_positive(r, "bytes_per_second")

    r = one(doc, "selftest/skip")
    check(r.get("error_occurred") is True and r.get("error_message") == "selftest: skipped on purpose",
          "skip: error not reported: %r" % r.get("error_message"))
    r = one(doc, "selftest/early")
    check(r.get("error_occurred") is True and "returned before" in r.get("error_message", ""),
          "early: guard did not report: %r" % r.get("error_message"))


TARS_COUNTERS = LAT + ("syscalls_per_op",)


def tiny(binary, out):
    run([binary, "--benchmark_filter=^(tars|glibc)/pair/64$", "--benchmark_min_time=0.01",
         "--benchmark_out=" + out, "--benchmark_out_format=json"], 0)
    doc = load(out)
    if doc is None:
        return
    names = sorted(b.get("name") for b in doc["benchmarks"])
    check(names == ["glibc/pair/64", "tars/pair/64"], "tiny: benchmarks %r" % names)
    for b in doc["benchmarks"]:
        check(not b.get("error_occurred"), "%s: error %r" % (b.get("name"), b.get("error_message")))
        finite_positive(b, "real_time")
        check(b.get("iterations", 0) > 0, "%s: no iterations" % b.get("name"))
    t = one(doc, "tars/pair/64")
    for key in TARS_COUNTERS:
        check(key in t, "tars/pair/64: counter %s missing" % key)
    for key in LAT:
        finite_positive(t, key)
    check(t.get("syscalls_per_op", -1) >= 0, "tars/pair/64: syscalls_per_op %r" % t.get("syscalls_per_op"))
    # Every statistic tars counts in pages, under the library's own names.
    pages = [k for k in t if k.endswith("_pages")]
    check(len(pages) > 0 and all(t[k] >= 0 for k in pages),
          "tars/pair/64: page counters from tars's stats table: %r" % pages)
    g = one(doc, "glibc/pair/64")
    for key in LAT:
        finite_positive(g, key)
    check("tars_version" in doc["context"] and "tars_options" in doc["context"],
          "tiny: tars context missing")


def main(argv):
    if len(argv) != 4 or argv[1] not in ("selftest", "tiny"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    {"selftest": selftest, "tiny": tiny}[argv[1]](argv[2], argv[3])
    for f in FAILS:
        print("check_json: FAIL: " + f, file=sys.stderr)
    if FAILS:
        return 1
    print("check_json: %s: all checks passed (%s)" % (argv[1], argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
