#!/usr/bin/env bash
# test-tune.sh COMPARE_TARS TARS_SLOTS: the tuning sweep in quick mode (5
# configurations, tiny workloads, 2 rounds) into a scratch directory, then
# checks of what it wrote: latency, per-operation tails, memory and tars's
# statistics (from the documents' JSON) in every round, the recommendation
# with its stability.  The figures are drawn only if gnuplot is here.
set -euo pipefail
bin=${1:?compare-tars}
slots=${2:?tars-slots}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plots=--no-plots
command -v gnuplot >/dev/null 2>&1 && plots=
python3 tune/tune.py --quick --bin "$bin" --slots "$slots" --results "$tmp/results" \
	--plots "$tmp/plots" --run quick $plots >"$tmp/out.txt" 2>&1 || {
	cat "$tmp/out.txt"; echo "test-tune: tune.py failed" >&2; exit 1; }
cat "$tmp/out.txt"
python3 - "$tmp/results/quick" <<'PY'
import csv, json, os, sys
d = sys.argv[1]
fail = []
def check(ok, what):
    if not ok:
        fail.append(what)
rows = list(csv.DictReader(open(os.path.join(d, "tune.csv"))))
cfgs = {r["config"] for r in rows}
check(cfgs == {"default", "default#2", "cache=0", "classes=0", "large_cache=0"},
      "configs %s" % cfgs)
# Chunk-only options skip the large-block jobs, large-block options the others.
jobs = {(r["config"], r["job"]) for r in rows}
check(("cache=0", "pair size=4096") not in jobs and ("large_cache=0", "pair size=64") not in jobs
      and ("large_cache=0", "churn large slots=64") in jobs and ("default", "pair size=4096") in jobs,
      "jobs per configuration group: %s" % sorted(jobs))
# Every configuration has latency, memory and tars stats in every round.
for c in cfgs:
    for rnd in ("1", "2"):
        mine = [r for r in rows if r["config"] == c and r["round"] == rnd]
        metrics = {r["metric"] for r in mine}
        for m in ("ns_per_op", "batch_p50_ns", "op_p99_ns", "rss_delta_bytes",
                  "stats_syscalls", "stats_mallocs", "stats_cache_hits"):
            check(m in metrics, "%s round %s: no %s" % (c, rnd, m))
        for r in mine:
            if r["metric"] in ("ns_per_op", "op_p99_ns") or r["source"] == "tars_stats":
                check(float(r["value"]) >= 0, "%s: negative %s" % (c, r["metric"]))
# The options really reached the processes (their documents say so).
info = json.load(open(os.path.join(d, "tune.json")))
check(not info["errors"], "errors: %s" % info["errors"])
c0 = [p for p in info["processes"] if p["config"] == "cache=0"]
check(c0 and all(p["stats"].get("cache_hits", 1) == 0 for p in c0),
      "cache=0 processes report cache hits")
conf = {r["config"]: r for r in csv.DictReader(open(os.path.join(d, "configs.csv")))}
check(abs(float(conf["default"]["lat_index"]) - 1) < 1e-9, "default index != 1")
check(abs(float(conf["default"]["large_index"]) - 1) < 1e-9, "default large index != 1")
for c, r in conf.items():
    small = ("lat_index", "bytes_per_buffer", "syscalls_per_op", "cache_hit_rate")
    large = ("large_index", "large_p99_index", "large_bytes_per_slot", "large_vmas",
             "large_syscalls_per_op")
    for k in (large if c == "large_cache=0" else small + large if c.startswith("default")
              else small):
        check(r[k] not in ("", "nan"), "%s: no %s" % (c, k))
check(float(conf["cache=0"]["cache_hit_rate"]) == 0, "cache=0 hit rate")
# Slots: every slot holds its request, quarter steps never waste more.
for r in csv.DictReader(open(os.path.join(d, "slots.csv"))):
    s, a, b = int(r["size"]), int(r["slot_classes0"]), int(r["slot_classes1"])
    check(a >= s and b >= s and b <= a, "slot sizes for %d: %d %d" % (s, a, b))
md = open(os.path.join(d, "summary.md")).read()
check("Recommended defaults (stable):" in md, "summary.md has no recommendation")
check("Stability:" in md and "bootstrap resamples" in md, "summary.md says nothing of stability")
v = info["verdict"]
check(0 <= v["stability"] <= 1 and v["stability_resamples"] > 0, "stability %s" % v.get("stability"))
# A change of an option is recommended only when stable for that option.
for k, val in v["recommended"].items():
    check(val == info["defaults"][k] or v["stability_per_option"][k] >= 0.8,
          "unstable change recommended: %s=%s at %s" % (k, val, v["stability_per_option"]))
# The options came from the library's table, the stats from its JSON.
check(any(o["name"] == "cache" for o in info["option_table"]), "no option table")
check("Pareto front" in md, "summary.md says nothing about the front")
check("Large blocks (" in md and "large_cache=0" in md.split("Large blocks (")[1],
      "summary.md has no large-block section")
for f in fail:
    print("test-tune: FAIL " + f)
sys.exit(1 if fail else 0)
PY
if [ -z "$plots" ]; then
	for f in tune_pareto tune_cache tune_waste; do
		for t in png svg; do
			test -s "$tmp/plots/$f.$t" || { echo "test-tune: no $f.$t" >&2; exit 1; }
		done
	done
fi
echo "test-tune: ok"
