#!/usr/bin/env python3
"""make tune: sweep tars options over the workloads where they matter.

    tune/tune.py --bin build/compare/compare-tars --slots build/tune/tars-slots
                 [--results results/tune] [--plots plots/out/tune]
                 [--rounds N] [--quick] [--configs "cache=0 junk=2 ..."]
                 [--no-plots] [--run ID]
    tune/tune.py --summarize results/tune/<run>     (analyse a sweep again)

One process of the comparison harness (compare-tars, compare/main.c) per
configuration and workload; the configuration goes in through TARS_OPTIONS,
and the options in force and tars's statistics come back as JSON fields of
the process's document (tune/sweep.py).  Option names, ranges and defaults
come from the library's table (compare-tars --list).  The
configurations vary one or two options at a time around the defaults, plus
the product cache x classes; the workloads are the ones where they matter:
pair (hot path), session (a bundle of mixed sizes), churn (steady state over
1000 and 10000 live slots, uniform 16..2048 and crypto sizes) and fill
(100000 live 64-byte buffers, then freed in random order); and for blocks
of several pages, pair 4096 and churn over 4, 16 and 64 KiB blocks (1000
slots).  The options of chunk pages (cache, classes, spare) skip the
large-block workloads, and those of large blocks (large_cache, quarantine,
freed_none) the others; every other configuration runs all of them.

The machine is shared and noisy, so a sweep is ROUNDS rounds; in each round
every workload runs under every configuration back to back (in a shuffled
order), and every latency is also taken as a ratio to the default
configuration measured in the same round.  A configuration's latency index
is the geometric mean of those ratios over the latency measurements (1.0 =
the default), from the median ns/op of each measurement (the p50 of its
~2 us batches; compare's mean-based ns_per_op picks up preemption on a
shared machine), and the summary gives its median and interquartile range
over the rounds; the p99 index is the same from the per-operation p99
(single operations timed with the timestamp counter).  "default#2" is
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

Large blocks have an index of their own (over the large-block workloads)
and their own memory (resident bytes per live slot of the large churn):
large_cache is chosen by the same score rule, quarantine and freed_none are
protections, strengthened only when free (tune/analysis.py large_blocks).

Writes results/tune/<run>/ (tune.csv tidy rows, configs.csv one row per
configuration, slots.csv, tune.json, summary.md), points results/tune/latest
at it, draws plots/out/tune/tune_{pareto,cache,waste}.{png,svg} with gnuplot
(tune/figures.py) and prints the summary and the recommended defaults.
Exit status 1 if a process failed or ran with other options than asked for.
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "compare"))
import analysis  # noqa: E402  (tune/analysis.py)
import figures  # noqa: E402  (tune/figures.py)
import suite  # noqa: E402  (compare/suite.py)
import sweep  # noqa: E402  (tune/sweep.py)
from analysis import f  # noqa: E402


def analyse(a, outdir, rows, configs, jobs, rounds, slots, info, errors):
    """Summary, configs.csv, summary.md, tune.json, figures; prints the
    table and the recommendation.  Returns the exit status."""
    cfgmap = {n: (o, g) for n, o, g in configs}
    names = [n for n in info["config_names"]]
    defaults = info["defaults"]
    tuning = [n for n, _, g in configs if g in analysis.TUNING_GROUPS]
    large = [n for n, _, g in configs if g == sweep.LARGE_GROUP and n in names]
    run_id = info["run"]
    sw = analysis.Sweep(rows, names, rounds, sweep.LARGE_JOBS)
    summary, meta, fronts, waste, rec_lines, verdict = analysis.analyse_rounds(
        sw, names, jobs, slots, defaults, tuning, a.quick, large)
    share, ranked, per_option = analysis.stability(sw, names, jobs, slots, defaults, tuning,
                                       a.quick, verdict["recommended"], large=large)
    st_lines, held = analysis.stability_lines(share, ranked, verdict["recommended"],
                                              defaults, per_option)
    rec_lines += st_lines
    verdict.update(stability=share, stability_per_option=per_option,
                   stability_resamples=analysis.RESAMPLES,
                   stability_outcomes=ranked, recommended_raw=verdict["recommended"],
                   recommended=held)

    cols = ["config", "options", "group", "lat_index", "lat_q25", "lat_q75",
            "p99_index", "p99_q25", "p99_q75", "mean_index", "mean_q25", "mean_q75",
            "bytes_per_buffer", "pages_mapped",
            "vmas", "fill_bytes_per_buffer", "fill_pages_mapped", "fill_vmas",
            "syscalls_per_op", "cache_hit_rate", "large_index", "large_q25", "large_q75",
            "large_p99_index", "large_bytes_per_slot", "large_vmas", "large_syscalls_per_op",
            "large_munmaps_per_op", "on_front"]
    extra_cols = sorted({k for d in summary.values() for k in d if ":" in k})
    crow = []
    for c in names:
        crow.append(dict(summary[c], options=cfgmap[c][0], group=cfgmap[c][1],
                         on_front=int(c in fronts["all"])))
    suite.write_csv(os.path.join(outdir, "configs.csv"), crow, cols + extra_cols)

    tab = analysis.table(summary, names, fronts, meta, sw)
    loads = info.get("loadavg_per_round", [])
    md = ["# tars tuning sweep %s" % run_id, "",
          "Command: `%s` (%d configurations x %d workloads x %d rounds, "
          "scale %s, %s). Machine: %s, %s CPUs, kernel %s; load average at the "
          "start of each round: %s." % (
              info.get("command", "make tune"), len(names), len(jobs), len(rounds),
              info.get("scale"), suite.fmt_secs(info.get("seconds", 0)),
              info["machine"]["cpu"], info["machine"]["cpus"],
              info["machine"]["kernel"],
              "; ".join(l.split()[0] for l in loads) or "-"),
          "Library: git %s (%s)%s; compare-tars sha256 %s." % (
              info.get("git", {}).get("commit", "?"), info.get("git", {}).get("subject", ""),
              ", tars sources modified: " + " ".join(info["git"]["tars_modified"])
              if info.get("git", {}).get("tars_modified") else "",
              info.get("binary_sha256", "?")[:16]), "",
          "Median index: geometric mean over the %d latency measurements (%s) of "
          "the median ns/op (p50 of the ~2 us batch means) relative to the default "
          "configuration in the same round; median [interquartile range] over "
          "rounds. Per-op p99 index: the same with the p99 of single operations "
          "timed with the timestamp counter. (The mean-based index, from "
          "compare's ns_per_op, is in configs.csv: preemption on the shared "
          "machine makes it noisier.) "
          "X median ns: the median of batch means, median over rounds. "
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
    if info.get("dropped"):
        md += ["Configurations left out (options the library does not have, or out "
               "of range): " + "; ".join(info["dropped"]), ""]
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
    suite.point_latest(os.path.dirname(os.path.normpath(outdir)), run_id)

    if not a.no_plots:
        ddir = os.path.join(a.plots, "data")
        figures.write_plot_data(ddir, summary, names, fronts, slots, meta, sw, run_id)
        for p in figures.draw(ddir, a.plots):
            if p.endswith(".png"):
                print("  PLOT    %s (+ .svg)" % p)

    print()
    print("\n".join(tab))
    print()
    print("\n".join(rec_lines))
    print()
    print("tune: %d rows, results %s (%s)" % (len(rows), os.path.abspath(outdir),
                                               suite.fmt_secs(info.get("seconds", 0))))
    return suite.exit_status("tune", errors)


def resummarize(a):
    """--summarize DIR: the analysis again from DIR/tune.csv (for instance
    of a sweep that was interrupted: only its complete rounds count)."""
    outdir = os.path.normpath(a.summarize)
    rows = suite.read_csv(os.path.join(outdir, "tune.csv"))
    for r in rows:
        r["round"] = int(r["round"])
    with open(os.path.join(outdir, "tune.json")) as fh:
        info = json.load(fh)
    info.setdefault("run", os.path.basename(outdir))
    configs = [(c["name"], c["options"], c["group"]) for c in info["configs"]]
    names = [n for n, _, _ in configs if any(r["config"] == n for r in rows)]
    info["config_names"] = names
    labels = []
    for r in rows:
        if r["job"] not in labels:
            labels.append(r["job"])
    jobs = [(j["label"], j["args"]) for j in info["jobs"] if j["label"] in labels]
    a.quick = info.get("scale") == "tiny"
    ran = {(r["round"], r["config"], r["job"]) for r in rows
           if r["metric"] == "process_seconds"}
    group = {c["name"]: c["group"] for c in info["configs"]}
    rounds = sorted(rnd for rnd in {r["round"] for r in rows}
                    if all((rnd, c, j) in ran for c in names for j in labels
                           if sweep.runs(group[c], j)))
    if not rounds:
        sys.exit("tune: no complete round in %s" % outdir)
    print("tune: summarizing %s: %d complete round(s) of %d" % (
        outdir, len(rounds), len({r["round"] for r in rows})))
    slots = []
    for r in suite.read_csv(os.path.join(outdir, "slots.csv")):
        slots.append((int(r["size"]), int(r["slot_classes0"]), int(r["slot_classes1"])))
    return analyse(a, outdir, rows, configs, jobs, rounds, slots, info,
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

    for p in (a.bin, a.slots):
        if not os.access(p, os.X_OK):
            sys.exit("tune: %s is not built (make tune builds it)" % p)
    table = sweep.option_table(a.bin)
    configs, dropped = sweep.usable_configs(table)
    for d in dropped:
        print("tune: left out %s: the library has no such option (or value)" % d)
    cfgmap = {n: (o, g) for n, o, g in configs}
    names = [n for n, _, _ in configs]
    if a.quick:
        names = [n for n in sweep.QUICK_CONFIGS if n in cfgmap]
    if a.configs:
        names = a.configs.split()
        for n in names:
            if n not in cfgmap:
                ap.error("unknown configuration %r (known: %s)" % (n, " ".join(cfgmap)))
        if "default" not in names:
            names.insert(0, "default")
    jobs = sweep.QUICK_JOBS if a.quick else sweep.JOBS
    scale = "tiny" if a.quick else "default"
    rounds = a.rounds or (2 if a.quick else 7)
    # Longer than `make report`'s processes (3 x 15 ms), which take their
    # spread from 5 processes: the sweep compares configurations 1-2%
    # apart.  The quick mode keeps the tiny scale's own.
    extra = []
    reps = a.reps or (None if a.quick else 5)
    rep_seconds = a.rep_seconds or (None if a.quick else 0.05)
    if reps:
        extra += ["--reps", str(reps)]
    if rep_seconds:
        extra += ["--rep-seconds", str(rep_seconds)]
    units = {}

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
    listing = suite.list_binary(binary)["backend_info"]
    units = {s["name"]: ("bytes" if s["unit"] == "bytes" else "count")
             for s in listing.get("stat_table", [])}
    machine = suite.machine_info()
    info = {"run": run_id, "started": datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "make tune" + (" TUNE_QUICK=1" if a.quick else "") +
        (" TUNE_ROUNDS=%d" % a.rounds if a.rounds else "") +
        (" TUNE_CONFIGS='%s'" % a.configs if a.configs else ""),
        "argv": sys.argv, "machine": machine, "scale": scale, "rounds": rounds,
        "extra_args": extra, "binary": os.path.abspath(a.bin),
        "binary_sha256": digest, "git": suite.git_state(),
        "option_table": list(table.values()),
        "defaults": sweep.tuned_defaults(table, configs),
        "dropped": dropped, "config_names": names,
        "configs": [{"name": n, "options": cfgmap[n][0], "group": cfgmap[n][1]}
                    for n in names],
        "jobs": [{"label": l, "args": args} for l, args in jobs]}
    with open(os.path.join(outdir, "tune.json"), "w") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")
    nproc = sum(sweep.runs(cfgmap[n][1], l) for n in names for l, _ in jobs) * rounds
    print("tune: %d configurations x %d workloads x %d rounds = %d processes "
          "(scale %s) -> %s" % (len(names), len(jobs), rounds, nproc, scale, outdir),
          flush=True)

    slots = analysis.slot_table(a.slots)
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
            info.setdefault("loadavg_per_round", []).append(suite.read("/proc/loadavg"))
            for label, args in jobs:
                order = names[:]
                rng.shuffle(order)
                el = time.monotonic() - t0
                eta = el / done * (nproc - done) if done else 0
                sys.stdout.write("[round %d/%d %s eta %s] %-18s " % (
                    rnd, rounds, suite.fmt_secs(el),
                    suite.fmt_secs(eta) if done else "?", label))
                sys.stdout.flush()
                bad = 0
                for c in order:
                    if not sweep.runs(cfgmap[c][1], label):
                        continue
                    opts = cfgmap[c][0]
                    res = sweep.run_process(binary, args, scale, opts, extra, table)
                    done += 1
                    rows.extend(sweep.rows_of(run_id, rnd, c, opts, label, res, units))
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
            suite.write_csv(os.path.join(outdir, "tune.csv"), rows, sweep.COLUMNS)
    finally:
        shutil.rmtree(snapdir, ignore_errors=True)
    info["seconds"] = round(time.monotonic() - t0, 1)
    info["loadavg_end"] = suite.read("/proc/loadavg")
    info["errors"] = errors
    info["processes"] = processes
    return analyse(a, outdir, rows, configs, jobs, list(range(1, rounds + 1)),
                   slots, info, errors)


if __name__ == "__main__":
    sys.exit(main())
