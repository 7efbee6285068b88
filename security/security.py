#!/usr/bin/env python3
"""The security evaluation: run the probe programs, compute the figures.

    security/security.py --bin build/security [--results results]
                         [--scale tiny|default|full] [--check]
                         [--only "placement overread uaf memlock window"]
                         [--run NAME] [--quiet]

Runs build/security/sec-<backend> processes (one per backend, experiment
and configuration; a backend that crashes, times out or prints no document
is a recorded failure, never the end of the run), then writes
results/<YYYYmmdd-HHMMSS>-security/ with
    security.json   machine, scale, every process's raw document or failure,
                    the derived figures, and the checks (with --check)
    security.md     the figures as tables, with the method in short
and prints a summary.  The experiments and every output field are described
in security/README.md.

Exit status: 1 if a process failed (after everything is written) or, with
--check, if a check failed; else 0.
"""

import argparse
import atexit
import datetime
import json
import math
import os
import pathlib
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "compare"))
import proc  # noqa: E402  (compare/proc.py: one process, its JSON document)
import secreport  # noqa: E402
import secstats  # noqa: E402

EXPERIMENTS = ["placement", "overread", "uaf", "memlock", "window"]

SCALES = {
    "tiny": {"fresh": 20, "seq": 512, "reuse": 2000, "pages": 4, "trials": 20,
             "uaf": 5, "window": [1000], "sweep_blocks": 1000,
             "churn_live": 1000, "churn_ops": 5000, "limits": [1 << 20],
             "chunk_cap": 40000, "key_cap": 512, "timeout": 60},
    "default": {"fresh": 300, "seq": 4096, "reuse": 50000, "pages": 16,
                "trials": 500, "uaf": 100, "window": [1000, 10000, 100000],
                "sweep_blocks": 10000, "churn_live": 1000, "churn_ops": 100000,
                "limits": [8 << 20, 1 << 20], "chunk_cap": 200000,
                "key_cap": 4096, "timeout": 120},
    "full": {"fresh": 1000, "seq": 16384, "reuse": 200000, "pages": 16,
             "trials": 1000, "uaf": 200, "window": [1000, 10000, 100000, 1000000],
             "sweep_blocks": 100000, "churn_live": 10000, "churn_ops": 1000000,
             "limits": [8 << 20, 1 << 20], "chunk_cap": 400000,
             "key_cap": 8192, "timeout": 600},
}

SIZE = 64                 # the request size of every experiment but one
OVER = [16, 64, 256, 4096]
OVER_BLOCKS = 48          # blocks per over-read trial
NOBODY = 65534
# Environment variables that would change what a backend does.
SCRUB_ENV = ["TARS_OPTIONS", "MALLOC_PERTURB_", "MALLOC_CHECK_", "MIMALLOC_OPTIONS",
             "MALLOC_CONF", "LD_PRELOAD"]


def now_stamp():
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def proc_text(path):
    """A small /proc file's text, or "" when it cannot be read."""
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return ""


def how(rc):
    """'exit 2', or 'killed by SIGSEGV' for a negative return code."""
    if isinstance(rc, int) and rc < 0:
        try:
            return "killed by " + signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %s" % rc


class Runner:
    """Runs sec-<backend> processes and keeps every record."""

    def __init__(self, bindir, timeout, verbose=True):
        self.bindir = bindir
        self.timeout = timeout
        self.records = []
        self.failures = []
        self.verbose = verbose
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUB_ENV}
        self.unpriv = []
        self.unpriv_note = ""
        self.tmp = None
        if os.geteuid() == 0:
            if shutil.which("setpriv"):
                self.unpriv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                               "--clear-groups", "--"]
                self.unpriv_note = "root drops to uid/gid %d with setpriv (no capabilities)" % NOBODY
            else:
                self.unpriv_note = "setpriv missing: unprivileged runs skipped"
        else:
            self.unpriv_note = "already unprivileged (uid %d)" % os.geteuid()

    def run(self, experiment, label, backend, args, unprivileged=False, quiet=False):
        """One process; its record (also kept).  record["doc"] is the
        parsed document or None; record["error"] says why not."""
        exe = os.path.join(self.bindir, "sec-" + backend)
        cmd = [exe, experiment] + [str(a) for a in args]
        rec = {"experiment": experiment, "label": label, "backend": backend,
               "args": [str(a) for a in args], "unprivileged": unprivileged}
        if not os.access(exe, os.X_OK):
            rec.update(error="missing executable %s" % exe, doc=None)
            return self._keep(rec, quiet)
        if unprivileged:
            if os.geteuid() == 0 and not self.unpriv:
                rec.update(error=self.unpriv_note, doc=None)
                return self._keep(rec, quiet)
            cmd = self.unpriv + [self._reachable(exe)] + cmd[1:]
        rc, out, err, secs, doc = proc.run_json(cmd, self.timeout, env=self.env)
        rec.update(rc=rc, seconds=round(secs, 3), stderr=err[-2000:], doc=doc)
        if rc == "timeout":
            rec["error"] = "timed out after %ds" % self.timeout
        elif rc == "exec":
            rec["error"] = "could not start: %s" % err.strip()
        elif doc is None:
            rec["error"] = "%s, no JSON document; stderr: %s" % (how(rc), err.strip()[-300:])
        elif doc.get("error"):
            rec["error"] = "%s: %s" % (how(rc), doc["error"])
        elif rc != 0:
            rec["error"] = how(rc)
        return self._keep(rec, quiet)

    def _reachable(self, exe):
        """A copy of exe that the unprivileged user can execute (the build
        tree may sit below a folder it cannot enter), in a private
        temporary folder removed at exit."""
        if os.geteuid() != 0:
            return exe
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="tars-security-")
            os.chmod(self.tmp, 0o755)
            atexit.register(shutil.rmtree, self.tmp, True)
        copy = os.path.join(self.tmp, os.path.basename(exe))
        if not os.path.exists(copy):
            shutil.copy(exe, copy)
            os.chmod(copy, 0o755)
        return copy

    def _keep(self, rec, quiet):
        if not quiet:
            self.records.append(rec)
        if rec.get("error"):
            self.failures.append("%s %s (%s): %s" % (rec["experiment"], rec["label"],
                                                     " ".join(rec["args"]), rec["error"]))
        return rec

    def progress(self, msg):
        if self.verbose:
            print("security: " + msg, file=sys.stderr, flush=True)


def opts(*pairs):
    """-o arguments for tars options."""
    out = []
    for p in pairs:
        out += ["-o", p]
    return out


# ---------------------------------------------------------------------------
# 1. Placement
# ---------------------------------------------------------------------------

# (label, backend, kind, extra args).  Chunks of SIZE bytes unless -s says.
PLACEMENT_KINDS = [
    ("tars", "tars", "tars", []),
    ("tars random=0", "tars", "tars", opts("random=0")),
    ("tars-key", "tars", "tars-key", []),
    ("tars large (8192 B)", "tars", "tars", ["-s", 8192]),
    ("glibc", "glibc", "glibc", []),
    ("jemalloc", "jemalloc", "jemalloc", []),
    ("mimalloc", "mimalloc", "mimalloc", []),
    ("sodium", "sodium", "sodium", []),
    ("openssl", "openssl", "openssl", []),
    ("mmap", "mmap", "mmap", []),
]
REUSE_STATES = ["empty", "alternate", "halfrun"]
REUSE_KINDS = ["tars", "tars random=0", "glibc", "jemalloc", "mimalloc"]
CLASS_SIZES = [16, 48, 256, 1024, 2048]   # besides SIZE, empty state, tars
FORKDIV_KINDS = ["tars", "glibc", "jemalloc", "mimalloc"]


def size_of(args):
    return int(args[args.index("-s") + 1]) if "-s" in args else SIZE


def run_placement(r, sc):
    fig = {"fresh": [], "seq": [], "reuse": [], "forkdiv": []}
    kinds = {k[0]: k for k in PLACEMENT_KINDS}
    for label, backend, kind, extra in PLACEMENT_KINDS:
        r.progress("placement: %d fresh processes of %s" % (sc["fresh"], label))
        docs = []
        for i in range(sc["fresh"]):
            rec = r.run("first", label, backend, ["-k", kind, "-n", 2] + extra,
                        quiet=i > 0)
            if rec.get("error"):
                break
            docs.append(rec["doc"])
        fig["fresh"].append(fresh_figures(label, kind, size_of(extra), docs, sc["fresh"]))
        rec = r.run("seq", label, backend, ["-k", kind, "-n", sc["seq"]] + extra)
        if rec["doc"] is not None and not rec.get("error"):
            fig["seq"].append(seq_figures(label, kind, size_of(extra), rec["doc"]))
    jobs = [(lbl, st, []) for st in REUSE_STATES for lbl in REUSE_KINDS]
    jobs += [("tars", "empty", ["-s", s]) for s in CLASS_SIZES]
    jobs += [("tars-key", "empty", []), ("tars large (8192 B)", "empty", [])]
    for label, state, extra in jobs:
        _, backend, kind, kextra = kinds[label]
        r.progress("placement: reuse, %s, state %s %s" % (label, state, " ".join(map(str, extra))))
        args = ["-k", kind, "-S", state, "-n", sc["reuse"], "-p", sc["pages"]] + kextra + extra
        rec = r.run("reuse", label, backend, args)
        if rec["doc"] is not None and not rec.get("error"):
            fig["reuse"].append(reuse_figures(label, state, kind, size_of(args), rec["doc"]))
    for label in FORKDIV_KINDS:
        _, backend, kind, extra = kinds[label]
        rec = r.run("forkdiv", label, backend, ["-k", kind, "-n", 64] + extra)
        if rec["doc"] is not None and not rec.get("error"):
            res = rec["doc"]["result"]
            fig["forkdiv"].append({"label": label, "n": res["n"],
                                   "same_in_both_children": res["same_in_both_children"],
                                   "same_in_child_and_parent": res["same_in_child_and_parent"]})
    return fig


def chunk_stride(kind, size, doc):
    """Slot stride when the backend knows it (tars chunk kinds), else None."""
    if kind in ("tars", "tars-buf") and size <= doc.get("page_size", 4096) // 2:
        return doc.get("slot_size")
    return None


def fresh_figures(label, kind, size, docs, wanted):
    out = {"label": label, "processes": len(docs), "wanted": wanted}
    if not docs:
        return out
    page = docs[0]["page_size"]
    first = [d["result"]["addrs"][0] for d in docs]
    offsets = {}
    deltas = {}
    for d in docs:
        a = d["result"]["addrs"]
        offsets[a[0] % page] = offsets.get(a[0] % page, 0) + 1
        deltas[a[1] - a[0]] = deltas.get(a[1] - a[0], 0) + 1
    stride = chunk_stride(kind, size, docs[0])
    out["distinct_first_addresses"] = len(set(first))
    out["offset"] = secstats.entropy(offsets.values())
    out["delta"] = secstats.entropy(deltas.values())
    if stride:
        support = page // stride
        out["offset_max_bits"] = math.log2(support)
        obs = [offsets.get(i * stride, 0) for i in range(support)]
        out["offset_chi_square"] = secstats.chi_square(obs)
    return out


def seq_figures(label, kind, size, doc):
    a = doc["result"]["addrs"]
    page = doc["page_size"]
    d = [a[i + 1] - a[i] for i in range(len(a) - 1)]
    hist = {}
    for x in d:
        hist[x] = hist.get(x, 0) + 1
    top = max(hist.items(), key=lambda kv: kv[1]) if hist else (None, 0)
    adj = sum(1 for x in d if 0 < abs(x) <= size + 16)
    same_page = sum(1 for i in range(len(a) - 1) if a[i] // page == a[i + 1] // page)
    absd = sorted(abs(x) for x in d)
    return {"label": label, "allocations": len(a),
            "adjacent_fraction": adj / len(d) if d else None,
            "forward_adjacent_fraction": sum(1 for x in d if 0 < x <= size + 16) / len(d) if d else None,
            "same_page_fraction": same_page / len(d) if d else None,
            "delta": secstats.entropy(hist.values()),
            "most_common_delta": top[0],
            "median_abs_delta": secstats.quantile(absd, 0.5)}


def reuse_figures(label, state, kind, size, doc):
    res = doc["result"]
    page = doc["page_size"]
    ph = res["page_hist"]
    cand = ph[:-1]
    out = {"label": label, "state": state, "size": size, "samples": res["samples"],
           "candidate_pages": len(cand), "elsewhere": ph[-1],
           "same_as_previous_fraction": res["same_as_previous"] / res["samples"],
           "in_freed_fraction": res["in_freed"] / res["samples"],
           "free_per_candidate_page": res["free_per_candidate_page"]}
    out["offset"] = secstats.entropy(c for _, c in res["offset_hist"])
    # The marginal histogram can look uniform while the sequence is fully
    # predictable (an allocator cycling through a page): the distance from
    # one sample to the next says how well the previous predicts the next.
    out["delta"] = secstats.entropy(c for _, c in res["delta_hist"])
    out["page"] = secstats.entropy(ph)
    out["pages_chosen"] = sum(1 for c in cand if c > 0)
    if len(cand) > 1:
        out["page_max_bits"] = math.log2(len(cand))
        out["page_chi_square"] = secstats.chi_square(cand)
    stride = chunk_stride(kind, size, doc)
    if stride:
        if state == "empty":
            support = [i * stride for i in range(page // stride)]
        else:
            support = [o for o, _ in res["freed_offsets"]]
        obs = dict((o, c) for o, c in res["offset_hist"])
        out["offset_support"] = len(support)
        out["offset_max_bits"] = math.log2(len(support)) if support else None
        out["offset_chi_square"] = secstats.chi_square([obs.get(o, 0) for o in support])
        out["offset_outside_support"] = sum(c for o, c in obs.items() if o not in set(support))
    return out


# ---------------------------------------------------------------------------
# 2. Over-read and use after free
# ---------------------------------------------------------------------------

# (label, backend, secret kind, buffer kind, extra)
OVERREAD_CASES = [
    ("tars (chunks)", "tars", "tars", "tars", []),
    ("tars random=0 (chunks)", "tars", "tars", "tars", opts("random=0")),
    ("tars_buf containers", "tars", "tars-buf", "tars-buf", []),
    ("tars chunks, secret in a tars_key", "tars", "tars-keyobj", "tars", []),
    ("tars chunks, secret in tars_malloc_key", "tars", "tars-key", "tars", []),
    ("tars_malloc_key (all keys)", "tars", "tars-key", "tars-key", []),
    ("glibc", "glibc", "glibc", "glibc", []),
    ("jemalloc", "jemalloc", "jemalloc", "jemalloc", []),
    ("mimalloc", "mimalloc", "mimalloc", "mimalloc", []),
    ("openssl secure heap", "openssl", "openssl", "openssl", []),
    ("sodium_malloc", "sodium", "sodium", "sodium", []),
    ("naive guarded mmap", "mmap", "mmap", "mmap", []),
    # The secret in a 32-byte block among 64-byte ones: another size class.
    ("tars, secret in a 32-byte block", "tars", "tars", "tars", ["-z", 32]),
    ("glibc, secret in a 32-byte block", "glibc", "glibc", "glibc", ["-z", 32]),
    ("jemalloc, secret in a 32-byte block", "jemalloc", "jemalloc", "jemalloc", ["-z", 32]),
    ("mimalloc, secret in a 32-byte block", "mimalloc", "mimalloc", "mimalloc", ["-z", 32]),
]

UAF_CASES = [
    ("tars (chunk)", "tars", "tars", []),
    ("tars junk=0", "tars", "tars", opts("junk=0")),
    ("tars_buf", "tars", "tars-buf", []),
    ("tars_malloc_key", "tars", "tars-key", []),
    ("tars_key", "tars", "tars-keyobj", []),
    ("glibc", "glibc", "glibc", []),
    ("jemalloc", "jemalloc", "jemalloc", []),
    ("mimalloc", "mimalloc", "mimalloc", []),
    ("openssl secure heap", "openssl", "openssl", []),
    ("sodium_malloc", "sodium", "sodium", []),
    ("naive guarded mmap", "mmap", "mmap", []),
]


def frac(a, b):
    return a / b if b else None


def run_overread(r, sc):
    rows = []
    for label, backend, skind, bkind, extra in OVERREAD_CASES:
        r.progress("over-read: %s, %d trials" % (label, sc["trials"]))
        rec = r.run("overread", label, backend,
                    ["-k", skind, "-b", bkind, "-n", OVER_BLOCKS, "-t", sc["trials"],
                     "-N", ",".join(map(str, OVER))] + extra)
        if rec["doc"] is None or rec.get("error"):
            rows.append({"label": label, "error": rec.get("error")})
            continue
        res = rec["doc"]["result"]
        ok = res["trials_ok"]
        row = {"label": label, "secret_kind": skind, "buffer_kind": bkind,
               "secret_block_size": res["secret_block_size"],
               "trials": res["trials"], "trials_ok": ok,
               "trials_failed": res["trials_failed"],
               "first_failure": res["first_failure"], "by_n": []}
        for o in res["over"]:
            row["by_n"].append({
                "n": o["n"],
                "prev_exposed": frac(o["prev_exposed"], ok),
                "prev_full": frac(o["prev_full"], ok),
                "prev_fault": frac(o["prev_fault"], ok),
                "next_exposed": frac(o["next_exposed"], ok),
                "block_exposed": frac(o["blocks_exposing"], o["blocks_read"]),
                "block_fault": frac(o["blocks_faulting"], o["blocks_read"]),
                "trial_exposed": frac(o["trials_exposed"], ok),
            })
        rows.append(row)
    return rows


def run_uaf(r, sc):
    rows = []
    for label, backend, kind, extra in UAF_CASES:
        r.progress("use after free: %s, %d trials" % (label, sc["uaf"]))
        rec = r.run("uaf", label, backend, ["-k", kind, "-t", sc["uaf"]] + extra)
        if rec["doc"] is None or rec.get("error"):
            rows.append({"label": label, "error": rec.get("error")})
            continue
        res = rec["doc"]["result"]
        ok = res["trials_ok"]
        rows.append({
            "label": label, "kind": kind, "trials": res["trials"], "trials_ok": ok,
            "trials_failed": res["trials_failed"], "first_failure": res["first_failure"],
            "dangling_fault": frac(res["dangling_fault"], ok),
            "dangling_exposed": frac(res["dangling_exposed"], ok),
            "dangling_same_bytes_mean": frac(res["dangling_same_bytes"], ok),
            "reused_same_address": frac(res["reused_same_address"], ok),
            "new_block_exposed": frac(res["new_block_exposed"], res["new_block_checked"]),
            "stale_readable_after_realloc": frac(ok - res["dangling_after_realloc_fault"], ok),
            "dangling_after_realloc_exposed": frac(res["dangling_after_realloc_exposed"], ok),
            "churn_exposed": frac(res["churn_trials_exposed"], ok) if res["churn_blocks_checked"] else None,
            "scan_found_full": frac(res["scan_found_full"], ok - res["scan_failed"]),
            "scan_found_window": frac(res["scan_found_window"], ok - res["scan_failed"]),
            "scan_mib_per_trial": frac(res["scan_bytes"] / 2**20, ok),
        })
    return rows


# ---------------------------------------------------------------------------
# 3. RLIMIT_MEMLOCK, unprivileged
# ---------------------------------------------------------------------------

def memlock_cases(sc, limit):
    chunk, key = sc["chunk_cap"], max(16, min(sc["key_cap"], 2 * limit // 4096))
    return [
        ("tars mlock=1 (default)", "tars", ["-k", "tars", "-c", chunk] + opts("mlock=1")),
        ("tars mlock=2", "tars", ["-k", "tars", "-c", chunk] + opts("mlock=2")),
        ("tars mlock=0", "tars", ["-k", "tars", "-c", chunk] + opts("mlock=0")),
        ("tars_buf mlock=2", "tars", ["-k", "tars-buf", "-c", chunk] + opts("mlock=2")),
        ("tars_malloc_key mlock=1", "tars", ["-k", "tars-key", "-c", key] + opts("mlock=1")),
        ("tars_malloc_key mlock=2", "tars", ["-k", "tars-key", "-c", key] + opts("mlock=2")),
        ("tars_key mlock=2", "tars", ["-k", "tars-keyobj", "-c", key] + opts("mlock=2")),
        ("sodium_malloc", "sodium", ["-c", key]),
        ("naive guarded mmap", "mmap", ["-c", key]),
        ("openssl, arena limit/2", "openssl", ["-c", chunk * 2, "-a", limit // 2]),
        ("openssl, arena 2 x limit", "openssl", ["-c", chunk * 2, "-a", limit * 2]),
    ]


def run_memlock(r, sc):
    rows = []
    for limit in sc["limits"]:
        for label, backend, args in memlock_cases(sc, limit):
            r.progress("RLIMIT_MEMLOCK %d KiB: %s" % (limit >> 10, label))
            rec = r.run("memlock", label, backend, ["-s", SIZE, "-l", limit] + args,
                        unprivileged=True)
            rows.append(memlock_row(label, limit, "nobody", rec))
    if len(sc["limits"]) > 1 and os.geteuid() == 0:
        limit = sc["limits"][0]
        label = "tars mlock=2, as root (control)"
        r.progress("RLIMIT_MEMLOCK %d KiB: %s" % (limit >> 10, label))
        rec = r.run("memlock", label, "tars", ["-s", SIZE, "-l", limit, "-k", "tars",
                                                "-c", sc["chunk_cap"]] + opts("mlock=2"))
        rows.append(memlock_row(label, limit, "root", rec))
    return rows


def memlock_row(label, limit, user, rec):
    row = {"label": label, "limit": limit, "user": user}
    if rec["doc"] is None or rec.get("error"):
        row["error"] = rec.get("error")
        return row
    res = rec["doc"]["result"]
    row.update({k: res.get(k) for k in ("euid", "cap_eff", "rlimit_memlock", "cap", "live",
                                        "failed", "errno", "vmlck_kb", "vmlck_max_kb",
                                        "tars_locked_bytes", "tars_unlocked_bytes",
                                        "first_unlocked_at")})
    row["backend_note"] = rec["doc"].get("backend_note")
    row["backend_counters"] = rec["doc"].get("backend_counters")
    err = rec.get("stderr", "")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    row["stderr_lines"] = len(lines)
    row["stderr_first"] = lines[0] if lines else None
    # The last live count at which VmLck still grew: how many blocks the
    # limit let the backend lock (to the checkpoint resolution).
    # The first point is before any allocation (the OpenSSL arena is
    # locked by then); None: nothing the blocks needed was ever locked.
    last_growth = None
    prev = res["points"][0][1]
    for live, vmlck, _, _ in res["points"][1:]:
        if vmlck > prev:
            last_growth = live
        prev = vmlck
    row["vmlck_last_growth_at"] = last_growth
    return row


# ---------------------------------------------------------------------------
# 4. The writable window of kept empty pages
# ---------------------------------------------------------------------------

def option_table(r):
    """tars's option table as the library reports it now."""
    rec = r.run("first", "tars options", "tars", ["-n", 1], quiet=True)
    if rec["doc"] is None:
        return {}
    return rec["doc"].get("option_table", {})


def sweep_values(table, name, extra=()):
    """Values of an option to sweep: min, extras, default, max (in range)."""
    t = table.get(name)
    if t is None:
        return []
    vals = {t["min"], t["default"], t["max"]} | {v for v in extra if t["min"] <= v <= t["max"]}
    return sorted(vals)


def run_window(r, sc):
    table = option_table(r)
    # (label, backend, arguments); -s SIZE unless the arguments say
    cases = [("tars", "tars", ["-n", n]) for n in sc["window"]]
    for v in sweep_values(table, "spare", (16,)):
        cases.append(("tars spare=%d" % v, "tars", ["-n", sc["sweep_blocks"]] + opts("spare=%d" % v)))
    if "cache" in table:
        cases.append(("tars cache=0", "tars", ["-n", sc["sweep_blocks"]] + opts("cache=0")))
    cases.append(("tars junk=0", "tars", ["-n", sc["sweep_blocks"]] + opts("junk=0")))
    # Every chunk class at once (-s 0: sizes 32 .. 2048): the window is per class.
    cases.append(("tars, sizes 32..2048", "tars", ["-n", sc["window"][-1], "-s", 0]))
    for b in ("glibc", "jemalloc", "mimalloc", "openssl"):
        cases.append((b, b, ["-n", sc["sweep_blocks"]]))
    window = []
    for label, backend, args in cases:
        r.progress("writable window: %s %s" % (label, " ".join(map(str, args[:2]))))
        rec = r.run("window", label, backend, (["-s", SIZE] if "-s" not in args else []) + args)
        window.append(window_row(label, rec))
    churn = []
    ccases = [("tars", "tars", []), ("tars spare=1", "tars", opts("spare=1")) if "spare" in table else None,
              ("tars random=0", "tars", opts("random=0")), ("glibc", "glibc", []),
              ("jemalloc", "jemalloc", []), ("mimalloc", "mimalloc", []),
              ("openssl", "openssl", [])]
    for case in ccases:
        if case is None:
            continue
        label, backend, extra = case
        r.progress("reuse distance: %s, %d operations" % (label, sc["churn_ops"]))
        rec = r.run("churn", label, backend, ["-s", SIZE, "-L", sc["churn_live"],
                                             "-M", sc["churn_ops"]] + extra)
        churn.append(churn_row(label, rec))
    return {"option_doc": {k: table[k] for k in ("spare", "cache") if k in table},
            "window": window, "churn": churn}


def stat_changes(res):
    """tars statistics that differ between the live and freed snapshots."""
    a, b = res.get("stats_live"), res.get("stats_freed")
    if not a or not b:
        return None
    return {k: [a[k], b[k]] for k in b if k in a and a[k] != b[k]}


def window_row(label, rec):
    row = {"label": label}
    if rec["doc"] is None or rec.get("error"):
        row["error"] = rec.get("error")
        return row
    doc = rec["doc"]
    res = doc["result"]
    row.update({k: res[k] for k in ("blocks", "pages", "pages_live", "pages_freed",
                                    "freed_rw_bytes", "freed_none_bytes", "readable_content",
                                    "scan_live_full", "scan_full", "scan_windows",
                                    "scan_bytes")})
    row["freed_none_resident_bytes"] = res["pages_freed"]["none_resident"] * doc["page_size"]
    row["options"] = {k: doc["options"][k] for k in ("spare", "cache", "junk")
                      if k in doc.get("options", {})}
    row["stat_changes"] = stat_changes(res)
    # Statistics that name kept or cached pages, whatever they are called.
    # Kept pages stay mlock'ed: what the freed memory still holds of the
    # RLIMIT_MEMLOCK budget (by this name when the statistics have it).
    row["locked_bytes_after_free"] = (res.get("stats_freed") or {}).get("locked_bytes")
    if row["stat_changes"] is not None:
        row["page_stats_after_free"] = {
            k: res["stats_freed"][k] for k in res["stats_freed"]
            if k.endswith("_pages") and any(w in k for w in ("empty", "spare", "cache", "kept"))}
    return row


def churn_row(label, rec):
    row = {"label": label}
    if rec["doc"] is None or rec.get("error"):
        row["error"] = rec.get("error")
        return row
    res = rec["doc"]["result"]
    q = dict((float(a), b) for a, b in res["distance_quantiles"])
    row.update({"live": res["live"], "ops": res["ops"], "reused": res["reused"],
                "reused_immediately_fraction": frac(res["reused_immediately"], res["reused"]),
                "distance_p50": q.get(0.5), "distance_p90": q.get(0.9),
                "distance_p99": q.get(0.99), "distance_max": q.get(1.0),
                "never_reused": res["never_reused"],
                "never_reused_pages": res["never_reused_pages"]})
    return row


# ---------------------------------------------------------------------------
# Checks (--check): the evaluation must be able to fail
# ---------------------------------------------------------------------------

def find(rows, label, **kw):
    for row in rows:
        if row.get("label") == label and all(row.get(k) == v for k, v in kw.items()):
            return row
    return None


def checks(fig):
    out = []

    def check(name, ok, detail):
        out.append({"check": name, "ok": bool(ok), "detail": detail})

    if "placement" in fig:
        p = fig["placement"]
        r1 = find(p["reuse"], "tars", state="empty", size=SIZE)
        r0 = find(p["reuse"], "tars random=0", state="empty", size=SIZE)
        h1 = r1 and r1["offset"]["shannon_bits"]
        h0 = r0 and r0["offset"]["shannon_bits"]
        check("tars random=1 places slots with more entropy than random=0 (+3 bits)",
              h1 is not None and h0 is not None and h1 >= h0 + 3,
              "slot offset on an empty page: %s vs %s bits" % (h1, h0))
        f1 = find(p["fresh"], "tars")
        f0 = find(p["fresh"], "tars random=0")
        g1 = f1 and f1.get("offset") and f1["offset"]["shannon_bits"]
        g0 = f0 and f0.get("offset") and f0["offset"]["shannon_bits"]
        check("first allocation of a fresh process: tars random=1 varies, random=0 does not",
              g1 is not None and g0 is not None and g1 > 2 and g0 == 0,
              "in-page offset: %s vs %s bits" % (g1, g0))
    if "overread" in fig:
        o = fig["overread"]
        k = find(o, "tars_malloc_key (all keys)")
        n16 = k and k.get("by_n") and k["by_n"][0]
        check("an over-read of a tars_malloc_key block faults (N=16, every trial)",
              n16 and n16["n"] == 16 and n16["prev_fault"] == 1 and n16["block_fault"] == 1
              and n16["trial_exposed"] == 0, "N=16: %s" % n16)
        g = find(o, "glibc")
        g64 = g and g.get("by_n") and [x for x in g["by_n"] if x["n"] == 64]
        check("positive control: the over-read probe sees glibc's neighbour (N=64)",
              g64 and g64[0]["prev_full"] == 1, "glibc N=64: %s" % (g64 and g64[0]))
    if "uaf" in fig:
        u = fig["uaf"]
        for label in ("tars (chunk)", "tars_buf", "tars_key"):
            t = find(u, label)
            check("no copy of a freed %s secret anywhere in the process" % label,
                  t and "error" not in t and t["scan_found_window"] == 0
                  and t["dangling_exposed"] == 0 and t["new_block_exposed"] in (0, None),
                  "%s" % t)
        g = find(u, "glibc")
        check("positive control: the scan finds glibc's freed secret",
              g and g.get("dangling_exposed", 0) > 0 and g.get("scan_found_window", 0) > 0,
              "%s" % g)
    if "window" in fig:
        w = fig["window"]["window"]
        bad = [x["label"] for x in w if x["label"].startswith("tars") and
               ("error" in x or x["scan_full"] != 0 or x["scan_windows"] != 0)]
        check("no secret byte survives in tars's freed pages (every window run)",
              not bad, "runs with a copy or an error: %s" % bad)
    if "memlock" in fig:
        m = fig["memlock"]
        if any(x.get("error") and "setpriv missing" in x["error"] for x in m):
            check("RLIMIT_MEMLOCK checks", True, "skipped: no setpriv")
        else:
            limit = min(x["limit"] for x in m)
            s = find(m, "tars mlock=2", limit=limit)
            b = find(m, "tars mlock=1 (default)", limit=limit)
            check("unprivileged, tars mlock=2 fails with ENOMEM at the limit",
                  s and s.get("failed") and s.get("errno") == "ENOMEM"
                  and s.get("cap_eff") == "0000000000000000", "%s" % s)
            check("unprivileged, tars mlock=1 goes on, counts unlocked bytes, warns once",
                  b and not b.get("failed") and (b.get("tars_unlocked_bytes") or 0) > 0
                  and b.get("stderr_lines") == 1, "%s" % b)
    return out


# ---------------------------------------------------------------------------

def machine():
    return {
        "uname": " ".join(platform.uname()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "euid": os.geteuid(),
        "rlimit_memlock": list(resource.getrlimit(resource.RLIMIT_MEMLOCK)),
        "max_map_count": proc_text("/proc/sys/vm/max_map_count"),
        "loadavg": proc_text("/proc/loadavg"),
        "swap": proc_text("/proc/swaps").count("\n"),
    }


def git_rev():
    head = os.path.join(HERE, "..")
    try:
        import subprocess
        return subprocess.run(["git", "-C", head, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, ValueError):
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--results", default="results")
    ap.add_argument("--scale", choices=sorted(SCALES), default="default")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", default=" ".join(EXPERIMENTS))
    ap.add_argument("--run", default=None, help="results folder name")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args()
    only = args.only.split()
    for e in only:
        if e not in EXPERIMENTS:
            ap.error("unknown experiment %s (%s)" % (e, ", ".join(EXPERIMENTS)))
    sc = SCALES[args.scale]
    r = Runner(args.bin, sc["timeout"], verbose=not args.quiet)
    run = args.run or now_stamp() + "-security"
    out_dir = os.path.join(args.results, run)
    t0 = time.monotonic()
    fig = {}
    steps = {"placement": run_placement, "overread": run_overread, "uaf": run_uaf,
             "memlock": run_memlock, "window": run_window}
    for name in EXPERIMENTS:
        if name in only:
            fig[name] = steps[name](r, sc)
    doc = {"run": run, "scale": args.scale, "revision": git_rev(), "machine": machine(),
           "unprivileged": r.unpriv_note, "seconds": round(time.monotonic() - t0, 1),
           "figures": fig, "failures": r.failures, "records": r.records}
    if args.check:
        doc["checks"] = checks(fig)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "security.json"), "w") as f:
        json.dump(doc, f, indent=1)
    md = secreport.markdown(doc)
    with open(os.path.join(out_dir, "security.md"), "w") as f:
        f.write(md)
    print(secreport.summary(doc))
    print("results: %s/" % out_dir)
    rc = proc.exit_status("security", r.failures)
    if args.check:
        bad = [c for c in doc["checks"] if not c["ok"]]
        for c in doc["checks"]:
            print("%s %s" % ("ok  " if c["ok"] else "FAIL", c["check"]))
            if not c["ok"]:
                print("     " + c["detail"][:600])
        print("security: %d of %d checks passed" % (len(doc["checks"]) - len(bad),
                                                    len(doc["checks"])))
        if bad:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
