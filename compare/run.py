#!/usr/bin/env python3
"""Run the allocator comparison: one process per backend and workload.

    compare/run.py --bin build/compare [--results results] [--scale default]
                   [--backends "tars glibc"] [--workloads "pair fill"]

Writes results/<YYYYmmdd-HHMMSS>/ with
    compare.json   everything: machine, library versions, every process's
                   raw document (or its failure), in run order
    compare.csv    tidy: one row per measurement (columns in COLUMNS below,
                   documented in compare/README.md)
    summary.md     backends ranked per workload, ratios to tars
and points results/latest at it.  Exit status 1 when a process crashed,
timed out, printed no valid document, or was linked to the wrong malloc;
a backend that fails a workload is a result (status "failed"), not an error.

Workloads run backend after backend for each parameter, so that a noisy
period of the shared machine hits every backend alike.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proc  # noqa: E402  (compare/proc.py)
import summary  # noqa: E402  (compare/summary.py)

BACKENDS = ["tars", "tars-key", "glibc", "jemalloc", "mimalloc", "mmap",
            "sodium", "openssl"]
WORKLOADS = ["pair", "fill", "churn", "session", "threads", "protect",
             "capacity"]
# Workloads whose page usage must start from a fresh process run once per
# parameter; the others run all their parameters in one process.
PER_PARAM = {
    "fill": {"tiny": [1000], "default": [1000, 10000, 100000],
             "full": [1000, 10000, 100000, 1000000]},
    "churn": {"tiny": [64], "default": [64, 1000, 10000],
              "full": [64, 1000, 10000, 100000]},
}
# Per-process time bounds (seconds); capacity bounds itself (30 s, full
# 120 s) and its parent kills it 30 s later.
TIMEOUT = {"default": 240, "tiny": 60, "full": 900}
COLUMNS = ["run", "backend", "library", "workload", "variant", "param",
           "param_value", "metric", "value", "unit", "status", "errno", "note"]
DEB_PACKAGES = ["libc6", "libjemalloc2", "libmimalloc2.0", "libsodium23",
                "libssl3", "gcc", "gnuplot-nox", "linux-image-amd64"]


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def command(args):
    try:
        return subprocess.run(args, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    cpu = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = ""
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal"):
            mem = line.split(":", 1)[1].strip()
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    versions = {}
    for p in DEB_PACKAGES:
        v = command(["dpkg-query", "-W", "-f=${Version}", p])
        if v:
            versions[p] = v
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "arch": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "debian": read("/etc/debian_version"),
        "max_map_count": read("/proc/sys/vm/max_map_count"),
        "memlock_limit": "unlimited" if soft == resource.RLIM_INFINITY else soft,
        "euid": os.geteuid(),
        "compiler": (command(["cc", "--version"]).splitlines() or [""])[0],
        "packages": versions,
        "loadavg_start": read("/proc/loadavg"),
    }


def plan(backends, workloads, scale):
    """[(workload, param or None, backend)], backends inner-most."""
    jobs = []
    for w in workloads:
        params = PER_PARAM.get(w, {}).get(scale, [None])
        for p in params:
            for b in backends:
                jobs.append((w, p, b))
    return jobs


def fmt_secs(s):
    return "%dm%02ds" % (s // 60, s % 60)


def run_one(binary, workload, param, scale, timeout, verbose):
    args = [binary, workload, "--scale", scale]
    if param is not None:
        args += ["--param", str(param)]
    rc, _, err, secs, doc = proc.run_json(args, timeout)
    if verbose and err:
        sys.stderr.write(err)
    return {"args": args, "rc": rc, "seconds": round(secs, 3),
            "stderr_tail": err.splitlines()[-8:], "document": doc}


def rows_of(run_id, backend, job, doc):
    """Tidy rows of one process; a failed process becomes one failed row."""
    workload, param = job
    lib = doc.get("library", "") if doc else ""
    out = []
    if doc is not None:
        # Which object really defines malloc in this process: a mislinked
        # binary shows here (and fails the run).
        out.append({
            "run": run_id, "backend": backend, "library": lib,
            "workload": workload, "variant": "", "param": "", "param_value": None,
            "metric": "malloc_owner_ok", "value": 1 if doc.get("malloc_owner_ok") else 0,
            "unit": "bool", "status": "ok" if doc.get("malloc_owner_ok") else "failed",
            "errno": "", "note": "malloc from %s (expected %s)" % (
                doc.get("malloc_owner"), doc.get("malloc_owner_expected")),
        })
        for m in doc.get("measurements", []):
            out.append({
                "run": run_id, "backend": backend, "library": lib,
                "workload": m["workload"], "variant": m["variant"],
                "param": m["param"], "param_value": m["param_value"],
                "metric": m["metric"], "value": m["value"], "unit": m["unit"],
                "status": m["status"], "errno": m["errno"], "note": m["note"],
            })
    return out


def process_failure(run_id, backend, workload, param, res, why):
    return {"run": run_id, "backend": backend, "library": "",
            "workload": workload, "variant": "",
            "param": "param" if param is not None else "",
            "param_value": param, "metric": "process", "value": None,
            "unit": "", "status": "failed", "errno": "",
            "note": why + ("; " + " | ".join(res["stderr_tail"][-3:])
                           if res["stderr_tail"] else "")}


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            r = dict(r)
            for k in ("value", "param_value"):
                v = r[k]
                if v is None:
                    r[k] = ""
                elif isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
                    r[k] = str(int(v))
                else:
                    r[k] = repr(v) if isinstance(v, float) else str(v)
            w.writerow(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/compare")
    ap.add_argument("--results", default="results")
    ap.add_argument("--scale", choices=["tiny", "default", "full"],
                    default="default")
    ap.add_argument("--backends", default=" ".join(BACKENDS))
    ap.add_argument("--workloads", default=" ".join(WORKLOADS))
    ap.add_argument("--run", help="run directory name (default: timestamp)")
    ap.add_argument("--no-latest", action="store_true",
                    help="do not point <results>/latest at this run")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show each process's own progress lines")
    a = ap.parse_args()

    backends = a.backends.replace(",", " ").split()
    workloads = a.workloads.replace(",", " ").split()
    for b in backends:
        if b not in BACKENDS:
            ap.error("unknown backend %r (known: %s)" % (b, " ".join(BACKENDS)))
    for w in workloads:
        if w not in WORKLOADS:
            ap.error("unknown workload %r (known: %s)" % (w, " ".join(WORKLOADS)))
    missing = [b for b in backends
               if not os.access(os.path.join(a.bin, "compare-" + b), os.X_OK)]
    if missing:
        sys.exit("compare: not built: %s (run `make compare`)" % " ".join(
            os.path.join(a.bin, "compare-" + b) for b in missing))

    run_id = a.run or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(a.results, run_id)
    os.makedirs(outdir, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_info()
    jobs = plan(backends, workloads, a.scale)
    timeout = TIMEOUT[a.scale]
    print("compare: %d backends x %d workloads = %d processes, scale %s -> %s"
          % (len(backends), len(workloads), len(jobs), a.scale, outdir),
          flush=True)

    processes, rows, errors = [], [], []
    per_backend = {}
    t_start = time.monotonic()
    for i, (w, p, b) in enumerate(jobs, 1):
        label = "%-9s %-8s %s" % (b, w, "" if p is None else
                                  ("live=%d" % p if w == "fill" else "slots=%d" % p))
        sys.stdout.write("[%3d/%d %s] %-36s " % (
            i, len(jobs), fmt_secs(time.monotonic() - t_start), label))
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
        if doc is not None:
            rows.extend(rows_of(run_id, b, (w, p), doc))
            per_backend.setdefault(b, {
                k: doc.get(k) for k in ("library", "malloc_owner",
                                        "malloc_owner_expected",
                                        "malloc_owner_ok", "page_size",
                                        "memlock_limit", "euid",
                                        "timer_overhead_ns", "capacity_note")})
        failed_rows = sum(1 for r in rows_of(run_id, b, (w, p), doc)
                          if r["status"] == "failed") if doc else 0
        if why:
            rows.append(process_failure(run_id, b, w, p, res, why))
            errors.append("%s %s%s: %s" % (b, w, "" if p is None else " " + str(p), why))
            print("FAILED %.1fs: %s" % (res["seconds"], why), flush=True)
            for line in res["stderr_tail"]:
                print("    | " + line)
        else:
            print("ok %5.1fs%s" % (res["seconds"], "  (%d failed measurements, "
                                   "recorded)" % failed_rows if failed_rows else ""),
                  flush=True)
        processes.append({"backend": b, "workload": w, "param": p, **res})

    info["loadavg_end"] = read("/proc/loadavg")
    finished = datetime.datetime.now(datetime.timezone.utc)
    doc = {
        "run": run_id, "scale": a.scale,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - t_start, 1),
        "machine": info, "backends": per_backend,
        "columns": COLUMNS, "errors": errors, "processes": processes,
    }
    with open(os.path.join(outdir, "compare.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    write_csv(os.path.join(outdir, "compare.csv"), rows)
    md = summary.render(doc, rows)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(md)
    if not a.no_latest:
        link = os.path.join(a.results, "latest")
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(run_id, tmp)
        os.replace(tmp, link)
    print("compare: %d rows in %s (%s)" % (len(rows),
          os.path.join(outdir, "compare.csv"), fmt_secs(doc["seconds"])))
    return proc.exit_status("compare", errors)


if __name__ == "__main__":
    sys.exit(main())
