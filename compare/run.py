#!/usr/bin/env python3
"""Run the allocator comparison: one process per backend, workload and round.

    compare/run.py --bin build/compare --backends "tars glibc ..."
                   [--results results] [--scale default] [--rounds 5]
                   [--workloads "pair fill"] [--run ID] [--no-latest]

Every backend is a binary build/compare/compare-<backend>; each one is asked
`--list` what it is (backend_info: library, expected malloc owner, ...) and
which workloads it runs (parameters per scale, whether a parameter needs a
fresh process, headline measurements): nothing about backends or workloads
is written down here.

Rounds: every measurement runs in ROUNDS separate processes (5 by default),
interleaved: round after round, and within a round workload after
workload, parameter after parameter, with the backends in a new random
order each time, so that a slow period of the shared machine hits every
backend alike and the spread over processes is measured.  A workload that
says it is deterministic (`once`, e.g. capacity) runs in the first round
only.

Writes results/<YYYYmmdd-HHMMSS>/ with
    compare.json   everything: machine, backends, workloads, every process's
                   raw document (or its failure), in run order
    compare.csv    tidy: one row per measurement and process (columns in
                   COLUMNS, documented in compare/README.md)
    ratios.csv     per backend and measurement: the median over processes,
                   and the ratio to tars (to tars-key in the key workloads)
                   with a 95% bootstrap interval
    summary.md     backends ranked per headline, ratios with intervals,
                   per-operation tails
and points results/latest at it.  Exit status 1 when a process crashed,
timed out, printed no valid document, or was linked to the wrong malloc;
a backend that fails a workload is a result (status "failed"), not an error.
"""

import argparse
import datetime
import json
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402  (compare/suite.py)
import summary  # noqa: E402  (compare/summary.py)

# Per-process time bounds (seconds); capacity bounds itself (30 s, full
# 120 s; tars-key 120 s at every scale) and its parent kills it 30 s later.
TIMEOUT = {"default": 240, "tiny": 60, "full": 900}
ROUNDS = {"default": 5, "tiny": 1, "full": 5}
COLUMNS = ["run", "round", "backend", "library", "workload", "variant", "param",
           "param_value", "metric", "value", "unit", "status", "errno", "note"]
RATIO_COLUMNS = ["run", "backend", "workload", "variant", "param", "param_value",
                 "metric", "unit", "better", "processes", "median", "min", "max",
                 "reference", "ratio", "ci_lo", "ci_hi", "ci_includes_1", "headline"]
# Measurements that get a ratio with a bootstrap interval for every
# parameter; headline metrics get one too.
RATIO_METRICS = {"ns_per_op", "op_p50_ns", "op_p99_ns", "op_p999_ns",
                 "aggregate_ops_per_s", "ops_per_cpu_s", "handshakes_per_s", "syscalls_per_op",
                 "rss_per_buffer_bytes"}
HIGHER_IS_BETTER = {"aggregate_ops_per_s", "ops_per_cpu_s", "handshakes_per_s", "ops_per_s",
                    "capacity_count"}


def describe(bindir, backends):
    """{backend: --list document}; exits with a message when one is missing."""
    out = {}
    missing = [b for b in backends
               if not os.access(os.path.join(bindir, "compare-" + b), os.X_OK)]
    if missing:
        sys.exit("compare: not built: %s (run `make compare`)" % " ".join(
            os.path.join(bindir, "compare-" + b) for b in missing))
    for b in backends:
        out[b] = suite.list_binary(os.path.join(bindir, "compare-" + b))
    return out


def plan(workloads, backends, scale, rounds, rng):
    """[(round, workload, param or None, backend)] in run order."""
    jobs = []
    for rnd in range(1, rounds + 1):
        for w in workloads:
            if w["once"] and rnd > 1:
                continue
            params = w["params"][scale] if w["per_param"] else [None]
            for p in params:
                order = backends[:]
                rng.shuffle(order)
                for b in order:
                    jobs.append((rnd, w["name"], p, b))
    return jobs


def run_one(binary, workload, param, scale, timeout, verbose):
    args = [binary, workload, "--scale", scale]
    if param is not None:
        args += ["--param", str(param)]
    rc, _, err, secs, doc = suite.run_json(args, timeout)
    if verbose and err:
        sys.stderr.write(err)
    return {"args": args, "rc": rc, "seconds": round(secs, 3),
            "stderr_tail": err.splitlines()[-8:], "document": doc}


def rows_of(run_id, rnd, backend, workload, doc):
    """Tidy rows of one process, led by its malloc-owner check."""
    lib = doc.get("library", "")
    base = {"run": run_id, "round": rnd, "backend": backend, "library": lib}
    out = [dict(base, workload=workload, variant="", param="", param_value=None,
                metric="malloc_owner_ok", value=1 if doc.get("malloc_owner_ok") else 0,
                unit="bool", status="ok" if doc.get("malloc_owner_ok") else "failed",
                errno="", note="malloc from %s (expected %s)" % (
                    doc.get("malloc_owner"), doc.get("malloc_owner_expected")))]
    for m in doc.get("measurements", []):
        out.append(dict(base, **{k: m[k] for k in (
            "workload", "variant", "param", "param_value", "metric", "value",
            "unit", "status", "errno", "note")}))
    return out


def process_failure(run_id, rnd, backend, workload, param, res, why):
    return {"run": run_id, "round": rnd, "backend": backend, "library": "",
            "workload": workload, "variant": "",
            "param": "param" if param is not None else "",
            "param_value": param, "metric": "process", "value": None,
            "unit": "", "status": "failed", "errno": "",
            "note": why + ("; " + " | ".join(res["stderr_tail"][-3:])
                           if res["stderr_tail"] else "")}


def ratios(run_id, rows, workloads, backends):
    """Per backend and measurement: median, min, max over processes, and
    the ratio to the workload's reference backend (tars; tars-key for the
    workloads only key backends run) with its 95% percentile-bootstrap
    interval."""
    heads = {}
    ref_of = {w["name"]: w.get("reference", "tars") for w in workloads}
    for w in workloads:
        for h in w["headlines"]:
            heads[(w["name"], h["variant"], suite.num(h["param_value"]),
                   h["metric"])] = h
    vals, units, params = {}, {}, {}
    for r in rows:
        if r["status"] != "ok" or r["metric"] in ("malloc_owner_ok", "process"):
            continue
        v = suite.num(r["value"])
        if v is None:
            continue
        key = (r["workload"], r["variant"], suite.num(r["param_value"]), r["metric"])
        vals.setdefault(key, {}).setdefault(r["backend"], []).append(v)
        units[key] = r["unit"]
        params[key] = r["param"]
    out = []
    for key in sorted(vals, key=lambda k: (k[0], k[1], k[2] or 0, k[3])):
        per = vals[key]
        want_ratio = key[3] in RATIO_METRICS or key in heads
        h = heads.get(key)
        better = (h["better"] if h else
                  "high" if key[3] in HIGHER_IS_BETTER else "low")
        ref = ref_of.get(key[0], "tars")
        base_meds = (suite.bootstrap_medians(per[ref]) if want_ratio and ref in per
                     else None)
        for b in backends:
            if b not in per:
                continue
            v = per[b]
            row = {"run": run_id, "backend": b, "workload": key[0], "variant": key[1],
                   "param": params[key], "param_value": key[2], "metric": key[3],
                   "unit": units[key], "better": better, "processes": len(v),
                   "median": suite.median(v), "min": min(v), "max": max(v),
                   "reference": ref if want_ratio and ref in per else "",
                   "headline": h["label"] if h else ""}
            if want_ratio and ref in per and b != ref:
                rt, lo, hi = suite.bootstrap_ratio(per[ref], v, base_medians=base_meds)
                row.update(ratio=rt, ci_lo=lo, ci_hi=hi,
                           ci_includes_1=None if lo is None else int(lo <= 1 <= hi))
            out.append(row)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/compare")
    ap.add_argument("--results", default="results")
    ap.add_argument("--scale", choices=["tiny", "default", "full"],
                    default="default")
    ap.add_argument("--backends", required=True,
                    help="backend names (compare/compare.mk lists them)")
    ap.add_argument("--workloads", help="default: every workload the binaries list")
    ap.add_argument("--rounds", type=int, help="processes per measurement "
                    "(default: 5; tiny scale 1)")
    ap.add_argument("--run", help="run directory name (default: timestamp)")
    ap.add_argument("--seed", type=int, default=7, help="backend order shuffle")
    ap.add_argument("--no-latest", action="store_true",
                    help="do not point <results>/latest at this run")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show each process's own progress lines")
    a = ap.parse_args()

    backends = a.backends.replace(",", " ").split()
    if "tars" in backends:  # the reference first in every table
        backends.remove("tars")
        backends.insert(0, "tars")
    lists = describe(a.bin, backends)
    known = lists[backends[0]]["workloads"]
    for b in backends[1:]:
        if [w["name"] for w in lists[b]["workloads"]] != [w["name"] for w in known]:
            sys.exit("compare: compare-%s lists other workloads than compare-%s: "
                     "rebuild (make compare)" % (b, backends[0]))
    names = [w["name"] for w in known]
    wanted = a.workloads.replace(",", " ").split() if a.workloads else names
    for w in wanted:
        if w not in names:
            ap.error("unknown workload %r (known: %s)" % (w, " ".join(names)))
    workloads = [w for w in known if w["name"] in wanted]
    rounds = a.rounds or ROUNDS[a.scale]

    run_id = a.run or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(a.results, run_id)
    os.makedirs(outdir, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    info = suite.machine_info()
    info["loadavg_start"] = info.pop("loadavg")
    jobs = plan(workloads, backends, a.scale, rounds, random.Random(a.seed))
    timeout = TIMEOUT[a.scale]
    print("compare: %d backends x %d workloads, %d rounds = %d processes, scale %s -> %s"
          % (len(backends), len(workloads), rounds, len(jobs), a.scale, outdir),
          flush=True)

    processes, rows, errors = [], [], []
    per_backend = {b: lists[b]["backend_info"] for b in backends}
    t_start = time.monotonic()
    for i, (rnd, w, p, b) in enumerate(jobs, 1):
        label = "%-9s %-8s %s" % (b, w, "" if p is None else "%s=%d" % (
            next(x["param"] for x in workloads if x["name"] == w), p))
        sys.stdout.write("[%4d/%d r%d %s] %-36s " % (
            i, len(jobs), rnd, suite.fmt_secs(time.monotonic() - t_start), label))
        sys.stdout.flush()
        res = run_one(os.path.join(a.bin, "compare-" + b), w, p, a.scale,
                      timeout, a.verbose)
        doc = res["document"]
        why = None
        if res["rc"] == "timeout":
            why = "timed out after %d s" % timeout
        elif doc is None:
            why = "exit %s, no valid JSON document" % res["rc"]
        elif not doc.get("malloc_owner_ok", False):
            why = "mislinked: malloc owned by %s, expected %s" % (
                doc.get("malloc_owner"), doc.get("malloc_owner_expected"))
        elif res["rc"] != 0:
            why = "exit %s" % res["rc"]
        mine = rows_of(run_id, rnd, b, w, doc) if doc is not None else []
        rows.extend(mine)
        if doc is not None and rnd == 1:
            # What the process really ran with (tars: its options in force).
            per_backend[b] = dict(per_backend[b], **doc.get("backend_info", {}),
                                  malloc_owner=doc.get("malloc_owner"),
                                  malloc_owner_ok=doc.get("malloc_owner_ok"))
        failed_rows = sum(1 for r in mine if r["status"] == "failed")
        if why:
            rows.append(process_failure(run_id, rnd, b, w, p, res, why))
            errors.append("%s %s%s round %d: %s" % (b, w, "" if p is None else
                                                     " " + str(p), rnd, why))
            print("FAILED %.1fs: %s" % (res["seconds"], why), flush=True)
            for line in res["stderr_tail"]:
                print("    | " + line)
        else:
            print("ok %5.1fs%s" % (res["seconds"], "  (%d failed measurements, "
                                   "recorded)" % failed_rows if failed_rows else ""),
                  flush=True)
        processes.append({"round": rnd, "backend": b, "workload": w, "param": p, **res})

    info["loadavg_end"] = suite.read("/proc/loadavg")
    finished = datetime.datetime.now(datetime.timezone.utc)
    rat = ratios(run_id, rows, workloads, backends)
    doc = {
        "run": run_id, "scale": a.scale, "rounds": rounds,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - t_start, 1),
        "machine": info, "git": suite.git_state(), "backends": per_backend,
        "workloads": workloads, "columns": COLUMNS, "ratio_columns": RATIO_COLUMNS,
        "errors": errors, "processes": processes,
    }
    with open(os.path.join(outdir, "compare.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))  # ~10 MB: compact
        f.write("\n")
    suite.write_csv(os.path.join(outdir, "compare.csv"), rows, COLUMNS)
    suite.write_csv(os.path.join(outdir, "ratios.csv"), rat, RATIO_COLUMNS)
    md = summary.render(doc, rows, rat)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(md)
    if not a.no_latest:
        suite.point_latest(a.results, run_id)
    print("compare: %d rows in %s (%s)" % (len(rows), os.path.join(outdir, "compare.csv"),
                                           suite.fmt_secs(doc["seconds"])))
    return suite.exit_status("compare", errors)


if __name__ == "__main__":
    sys.exit(main())
