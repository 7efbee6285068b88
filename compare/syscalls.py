#!/usr/bin/env python3
"""System calls per operation of the burst workload, for every backend,
counted by strace (`make syscalls`; not part of `make report`: strace
stops the process at every system call, so its times mean nothing).

    compare/syscalls.py --bin build/compare --backends "tars glibc ..."
                        [--results results/syscalls] [--k "64 1024 4096"]

Method: each backend runs the burst workload twice under `strace -f -c`,
with one and with four timed repetitions (each of whole bursts, at least
one, so the longer run always does more operations, however slow strace
makes the backend).
Start-up, warm-up, calibration and exit are the same in both runs, so the
difference in system calls over the difference in operations (the `ops`
row of each document, plus the frees of the last unfinished burst,
`cleanup_frees`) is the steady-state number per operation.  For
tars, the library's own count (syscalls_per_op, from its stats) is shown
beside it as a cross-check.

Writes results/syscalls/<run>/syscalls.csv and prints a table.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402

COLUMNS = ["run", "backend", "k", "syscalls_per_op", "by_call", "own_count_per_op",
           "ops_short", "ops_long", "calls_short", "calls_long"]
REPS = (1, 4)


def strace_counts(path):
    """{syscall: calls} from an strace -c summary (the total under "total")."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m:
                out[m.group(2)] = int(m.group(1))
    return out


def one(binary, k, reps):
    """(calls by name, ops, tars's own syscalls_per_op or None)."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as tmp:
        cmd = ["strace", "-f", "-c", "-o", tmp.name, binary, "burst", "--param", str(k),
               "--reps", str(reps), "--rep-seconds", "0.03"]
        rc, _, err, _, doc = suite.run_json(cmd, 300)
        if rc != 0 or doc is None:
            raise RuntimeError("%s: exit %s: %s" % (" ".join(cmd), rc, err[-300:]))
        calls = strace_counts(tmp.name)
    ops = own = None
    cleanup = 0
    for m in doc["measurements"]:
        if m["metric"] == "ops" and m["status"] == "ok":
            ops = m["value"]
        if m["metric"] == "cleanup_frees" and m["status"] == "ok":
            cleanup = m["value"]
        if m["metric"] == "syscalls_per_op" and m["status"] == "ok":
            own = m["value"]
    if ops is None:
        raise RuntimeError("%s: no ops row (failed measurement?)" % " ".join(cmd))
    return calls, ops + cleanup, own


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/compare")
    ap.add_argument("--backends", required=True)
    ap.add_argument("--results", default="results/syscalls")
    ap.add_argument("--k", default="64 1024 4096")
    a = ap.parse_args()
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(a.results, run_id)
    os.makedirs(outdir, exist_ok=True)
    rows, errors = [], []
    for b in a.backends.split():
        binary = os.path.join(a.bin, "compare-" + b)
        for k in [int(x) for x in a.k.split()]:
            try:
                (c1, o1, _), (c2, o2, own) = (one(binary, k, n) for n in REPS)
            except RuntimeError as e:
                errors.append(str(e))
                print("%-10s K=%-5d FAILED: %s" % (b, k, e), flush=True)
                continue
            d_ops = o2 - o1
            t1, t2 = c1.get("total", sum(c1.values())), c2.get("total", sum(c2.values()))
            per = (t2 - t1) / d_ops if d_ops > 0 else None
            by = {n: (c2.get(n, 0) - c1.get(n, 0)) / d_ops for n in set(c1) | set(c2)
                  if n != "total" and d_ops > 0 and c2.get(n, 0) != c1.get(n, 0)}
            by_s = " ".join("%s=%.4f" % kv for kv in sorted(by.items(), key=lambda kv: -kv[1])
                            if abs(kv[1]) >= 1e-5)
            rows.append({"run": run_id, "backend": b, "k": k, "syscalls_per_op": per,
                         "by_call": by_s, "own_count_per_op": own, "ops_short": o1,
                         "ops_long": o2, "calls_short": t1, "calls_long": t2})
            print("%-10s K=%-5d %10s syscalls/op  %s%s" % (
                b, k, "-" if per is None else "%.5f" % per, by_s,
                "" if own is None else "  (tars's own count: %.5f)" % own), flush=True)
    suite.write_csv(os.path.join(outdir, "syscalls.csv"), rows, COLUMNS)
    suite.point_latest(a.results, run_id)
    print("syscalls: %s" % os.path.join(outdir, "syscalls.csv"))
    return suite.exit_status("syscalls", errors)


if __name__ == "__main__":
    sys.exit(main())
