"""tune/sweep.py - the configurations, the workloads and running them.

One process of the comparison harness (compare-tars) per configuration,
workload and round; the configuration goes in through TARS_OPTIONS.  What
the process ran with and what tars counted come back as structured fields
of its JSON document: backend_info.options (every option in force) and
stats_at_exit (tars_stats_print_json), never scraped from text.  The
option names, ranges and defaults come from the library's own table
(compare-tars --list: backend_info.option_table).
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compare"))
import suite  # noqa: E402  (compare/suite.py)

# (name, TARS_OPTIONS, group).  Names are the options that differ from the
# defaults; the group says why the configuration is in the sweep.  A
# configuration naming an option the library does not have (any more) is
# left out, with a line saying so.
CONFIGS = [
    ("default", "", "default"),
    ("default#2", "", "A/A control"),
    ("cache=0", "cache=0", "cache x classes"),
    ("cache=8", "cache=8", "cache x classes"),
    ("cache=512", "cache=512", "cache x classes"),
    ("classes=0", "classes=0", "cache x classes"),
    ("classes=0,cache=0", "classes=0,cache=0", "cache x classes"),
    ("classes=0,cache=8", "classes=0,cache=8", "cache x classes"),
    ("classes=0,cache=512", "classes=0,cache=512", "cache x classes"),
    ("spare=1", "spare=1", "spare"),
    ("spare=4", "spare=4", "spare"),
    ("spare=16", "spare=16", "spare"),
    ("spare=256", "spare=256", "spare"),
    ("junk=0", "junk=0", "one option"),
    ("junk=2", "junk=2", "one option"),
    ("canary=0", "canary=0", "one option"),
    ("random=0", "random=0", "one option"),
    ("mlock=0", "mlock=0", "one option"),
    ("delay=1", "delay=1", "one option"),
    ("junk=0,canary=0", "junk=0,canary=0", "two options"),
    ("random=0,cache=0", "random=0,cache=0", "two options"),
    ("bare", "junk=0,canary=0,random=0,mlock=0", "floor"),
    # Blocks of several pages (multi-page slots and cached mappings): the
    # pages kept for reuse, the quarantine window, freed blocks PROT_NONE.
    ("large_cache=0", "large_cache=0", "large blocks"),
    ("large_cache=64", "large_cache=64", "large blocks"),
    ("large_cache=1024", "large_cache=1024", "large blocks"),
    ("quarantine=0", "quarantine=0", "large blocks"),
    ("quarantine=8", "quarantine=8", "large blocks"),
    ("quarantine=256", "quarantine=256", "large blocks"),
    ("freed_none=1", "freed_none=1", "large blocks"),
]
QUICK_CONFIGS = ["default", "default#2", "cache=0", "classes=0", "large_cache=0"]
TUNING = [c for c, _, g in CONFIGS if g in ("default", "cache x classes", "spare")]
LARGE_GROUP = "large blocks"
# Groups whose options act on chunk pages only (blocks of up to 2048
# bytes): they skip the large-block jobs, as the large-block options skip
# the chunk jobs; every other group runs both.
CHUNK_GROUPS = ("cache x classes", "spare")

# (label, compare-tars arguments).
JOBS = [
    ("pair size=64", ["pair", "--param", "64"]),
    ("pair size=200", ["pair", "--param", "200"]),
    ("session", ["session"]),
    ("churn slots=1000", ["churn", "--param", "1000", "--variant", "uniform,crypto"]),
    ("churn slots=10000", ["churn", "--param", "10000"]),
    ("fill live=100000", ["fill", "--param", "100000"]),
    # Large blocks: a one-page block (a multi-page slot) and churn over 4,
    # 16 and 64 KiB blocks.
    ("pair size=4096", ["pair", "--param", "4096"]),
    ("churn large slots=1000", ["churn", "--param", "1000", "--variant", "large"]),
]
QUICK_JOBS = [
    ("pair size=64", ["pair", "--param", "64"]),
    ("session", ["session"]),
    ("churn slots=64", ["churn", "--param", "64", "--variant", "uniform,crypto"]),
    ("fill live=1000", ["fill", "--param", "1000"]),
    ("pair size=4096", ["pair", "--param", "4096"]),
    ("churn large slots=64", ["churn", "--param", "64", "--variant", "large"]),
]
LARGE_JOBS = {"pair size=4096", "churn large slots=1000", "churn large slots=64"}
COLUMNS = ["run", "round", "config", "options", "job", "workload", "variant",
           "param_value", "metric", "value", "unit", "source"]
TIMEOUT = 180


def runs(group, job):
    """Whether a configuration of this group runs this job."""
    if job in LARGE_JOBS:
        return group not in CHUNK_GROUPS
    return group != LARGE_GROUP


def option_table(binary):
    """The library's option table, from the binary: {name: desc}."""
    info = suite.list_binary(binary)["backend_info"]
    return {d["name"]: d for d in info.get("option_table", [])}


def config_options(opts):
    """"cache=0,classes=0" -> {"cache": 0, "classes": 0}."""
    out = {}
    for kv in filter(None, opts.split(",")):
        k, v = kv.split("=", 1)
        out[k] = int(v)
    return out


def usable_configs(table):
    """(configs whose options all exist and are in range, the others with
    why).  The defaults are the table's."""
    ok, dropped = [], []
    for name, opts, group in CONFIGS:
        bad = [k for k, v in config_options(opts).items()
               if k not in table or not table[k]["min"] <= v <= table[k]["max"]]
        if bad:
            dropped.append("%s (%s)" % (name, ", ".join(bad)))
        else:
            ok.append((name, opts, group))
    return ok, dropped


def tuned_defaults(table, configs):
    """{option: default} for the options the sweep varies."""
    names = []
    for _, opts, _ in configs:
        for k in config_options(opts):
            if k not in names:
                names.append(k)
    return {k: table[k]["default"] for k in names}


def check_options(got, table, opts):
    """None if the process ran with opts (and the defaults otherwise)."""
    if not isinstance(got, dict):
        return "no options in the document"
    want = {k: d["default"] for k, d in table.items()}
    want.update(config_options(opts))
    bad = ["%s=%s (asked %s)" % (k, got.get(k), v) for k, v in want.items()
           if got.get(k) != v]
    return ", ".join(bad) if bad else None


def run_process(binary, args, scale, opts, extra, table):
    env = dict(os.environ)
    env["TARS_OPTIONS"] = opts
    cmd = [binary] + args + ["--scale", scale] + extra
    rc, out, err, secs, doc = suite.run_json(cmd, TIMEOUT, env)
    why = None
    if rc == "timeout":
        why = "timed out after %d s" % TIMEOUT
    elif rc == "exec":
        why = "cannot run: " + err
    elif doc is None:
        why = "exit %s, no JSON document" % rc
    elif rc != 0:
        why = "exit %s" % rc
    else:
        why = check_options(doc.get("backend_info", {}).get("options"), table, opts)
        if why:
            why = "ran with other options: " + why
    stats = (doc or {}).get("stats_at_exit") or {}
    return {"cmd": "TARS_OPTIONS=%s %s" % (opts, " ".join(cmd)),
            "rc": rc, "seconds": round(secs, 3), "doc": doc,
            "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float))},
            "why": why,
            "stderr_tail": [l for l in err.splitlines()
                            if not l.startswith("  ")][-6:]}


def rows_of(run_id, rnd, config, opts, job, res, units):
    """Tidy rows: the process's measurements, every tars statistic at exit
    (stats_<name>, unit from the library's table), and its duration."""
    base = {"run": run_id, "round": rnd, "config": config, "options": opts,
            "job": job}
    out = []
    doc = res["doc"] or {}
    for m in doc.get("measurements", []):
        if m.get("status") != "ok" or m.get("value") is None:
            continue
        out.append(dict(base, workload=m["workload"], variant=m["variant"],
                        param_value=m["param_value"], metric=m["metric"],
                        value=m["value"], unit=m["unit"], source="compare"))
    wl = job.split()[0]
    for k, v in sorted(res["stats"].items()):
        out.append(dict(base, workload=wl, variant="", param_value="",
                        metric="stats_" + k, value=v, unit=units.get(k, "count"),
                        source="tars_stats"))
    out.append(dict(base, workload=wl, variant="", param_value="",
                    metric="process_seconds", value=res["seconds"], unit="s",
                    source="driver"))
    return out
