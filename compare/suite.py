"""Helpers shared by the Python side of the research suite: compare/run.py,
compare/summary.py, compare/check_csv.py, compare/syscalls.py, plots/prepare.py
and tune/ (sweep, analysis, figures).

    machine_info()          what the run ran on (CPU, kernel, limits, packages)
    run_json(cmd, timeout)  one harness process and its JSON document
    list_binary(path)       a compare binary's --list (backend, workloads)
    write_csv(path, rows, columns), read_csv(path)
    point_latest(root, run) results/latest -> results/<run>
    num(v), median(v), fmt_secs(s)
    bootstrap_ratio(a, b)   ratio of medians b/a with a percentile bootstrap CI
    colours(names)          a colour per backend name, assigned by name

Python 3 standard library only.
"""

import csv
import hashlib
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

DEB_PACKAGES = ["libc6", "libjemalloc2", "libmimalloc2.0", "libsodium23",
                "libssl3", "libgoogle-perftools4", "libtcmalloc-minimal4",
                "libclang-rt-14-dev", "gcc", "gnuplot-nox", "linux-image-amd64"]


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def command(args, timeout=30):
    try:
        return subprocess.run(args, capture_output=True, text=True,
                              timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(packages=DEB_PACKAGES):
    """The machine, its limits and the Debian versions of the libraries."""
    cpu = next((l.split(":", 1)[1].strip() for l in read("/proc/cpuinfo").splitlines()
                if l.startswith("model name")), "")
    mem = next((l.split(":", 1)[1].strip() for l in read("/proc/meminfo").splitlines()
                if l.startswith("MemTotal")), "")
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    versions = {}
    for p in packages:
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
        "loadavg": read("/proc/loadavg"),
    }


def git_state(paths=("tars/src", "tars/include")):
    """The commit the library was built from, and whether tars/ differs."""
    def run(*args):
        return command(["git"] + list(args))
    return {"commit": run("rev-parse", "--short", "HEAD"),
            "subject": run("log", "-1", "--format=%s"),
            "tars_modified": [l[3:] for l in run("status", "--porcelain",
                                                 *paths).splitlines()]}


def run_json(cmd, timeout, env=None):
    """Run cmd with a timeout; return (rc, stdout, stderr, seconds, doc).

    rc is the exit status, "timeout" when the process ran over, or "exec"
    when it could not be started (stderr then holds the reason).  doc is the
    parsed JSON document on stdout, or None when there is none."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = "timeout"
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    except OSError as e:
        rc, out, err = "exec", "", str(e)
    secs = time.monotonic() - t0
    doc = None
    try:
        doc = json.loads(out)
    except ValueError:
        pass
    return rc, out, err, secs, doc


def list_binary(path, env=None):
    """The --list document of a compare binary: {"backend_info", "workloads"}."""
    rc, _, err, _, doc = run_json([path, "--list"], 30, env)
    if rc != 0 or doc is None:
        raise RuntimeError("%s --list failed (exit %s): %s" % (path, rc, err.strip()))
    return doc


def exit_status(prog, errors):
    """Lists the failed processes on stderr; the driver's exit status."""
    if not errors:
        return 0
    print("%s: %d process(es) failed:" % (prog, len(errors)), file=sys.stderr)
    for e in errors:
        print("  " + e, file=sys.stderr)
    return 1


def cell(v):
    """A CSV cell: integers without '.0', floats exact, None empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    return str(v)


def write_csv(path, rows, columns):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n",
                           extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: cell(r.get(k)) for k in columns})


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def point_latest(root, run_id):
    """root/latest -> run_id, replaced atomically."""
    link = os.path.join(root, "latest")
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(run_id, tmp)
    os.replace(tmp, link)


def num(v):
    """A float from a CSV cell or JSON value, None when empty or NaN."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def median(v):
    return statistics.median(v) if v else float("nan")


def fmt_secs(s):
    return "%dm%02ds" % (s // 60, s % 60)


def bootstrap_medians(values, n=1000, seed=1):
    """Medians of n resamples (with replacement) of values, or None with
    fewer than 2 values."""
    v = [x for x in values if x is not None]
    if len(v) < 2:
        return None
    rng = random.Random(seed)
    k = len(v)
    out = []
    for _ in range(n):
        s = sorted(rng.choices(v, k=k))
        out.append(s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) / 2)
    return out


def bootstrap_ratio(base, other, n=1000, seed=1, level=0.95, base_medians=None):
    """Ratio median(other) / median(base), with a percentile bootstrap
    confidence interval: both samples resampled with replacement, each
    independently (they are separate processes), n times.  Returns
    (ratio, lo, hi); lo and hi are None with fewer than 2 values a side.
    base_medians: bootstrap_medians(base) computed once for several others."""
    base = [x for x in base if x is not None]
    other = [x for x in other if x is not None]
    if not base or not other:
        return None, None, None
    mb, mo = statistics.median(base), statistics.median(other)
    if mb == 0:
        return None, None, None
    ratio = mo / mb
    bm = base_medians if base_medians is not None else bootstrap_medians(base, n, seed)
    om = bootstrap_medians(other, n, seed + 1)
    if bm is None or om is None:
        return ratio, None, None
    out = sorted(o / b for o, b in zip(om, bm) if b != 0)
    if not out:
        return ratio, None, None
    a = (1 - level) / 2
    lo = out[int(math.floor(a * (len(out) - 1)))]
    hi = out[int(math.ceil((1 - a) * (len(out) - 1)))]
    return ratio, lo, hi


# Distinct colours (Tableau 10 without its red, black, navy, plum), keyed by
# name: a backend keeps its colour from run to run, and a new backend
# needs no edit anywhere.  tars is always red.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#222222", "#393b79", "#a05195"]
PINNED = {"tars": "#d62728"}


def colours(names):
    """{name: "#rrggbb"}: a fixed palette slot chosen by a hash of the name;
    two names of the same run that hash to the same slot take the next free
    one, in sorted order, so the assignment is deterministic."""
    out, used = {}, set()
    for n in sorted(set(names)):
        if n in PINNED:
            out[n] = PINNED[n]
    for n in sorted(set(names) - set(out)):
        h = int(hashlib.sha256(n.encode()).hexdigest(), 16) % len(PALETTE)
        for k in range(len(PALETTE)):
            c = PALETTE[(h + k) % len(PALETTE)]
            if c not in used:
                break
        used.add(c)
        out[n] = c
    return out
