"""tune/figures.py - the data files and gnuplot runs of the tuning figures
(tune/tune_{pareto,cache,waste}.gp after tune/common.gp)."""

import math
import os
import subprocess

from analysis import f, waste_summary

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_SIZES = (0, 8, 64, 512)

def write_plot_data(ddir, summary, configs, fronts, slots, meta, sw, run_id):
    os.makedirs(ddir, exist_ok=True)
    with open(os.path.join(ddir, "pareto.dat"), "w") as fh:
        fh.write('"config" "bytes" "lat" "lat_q25" "lat_q75" "front" "kind"\n')
        for c in configs:
            d = summary[c]
            fh.write('"%s" %s %s %s %s %d %d\n' % (
                c, f(d.get("bytes_per_buffer"), "%.2f").replace("-", "NaN"),
                f(d["lat_index"], "%.4f").replace("-", "NaN"),
                f(d["lat_q25"], "%.4f").replace("-", "NaN"),
                f(d["lat_q75"], "%.4f").replace("-", "NaN"),
                c in fronts["all"], 1 if c == "default" else 2 if c == "default#2" else 0))
    # Two panels: every configuration, and a zoom on the crowd around the
    # default.  Ranges come from the data (log scale for latency); labels go
    # to the right of their point, moved up or down until they overlap no
    # other label of the panel.
    gpvars = {}
    pts = [(c, summary[c].get("bytes_per_buffer"), summary[c]["lat_index"])
           for c in configs]
    pts = [(c, x, y) for c, x, y in pts
           if x is not None and math.isfinite(x) and math.isfinite(y) and y > 0]
    x0 = summary["default"].get("bytes_per_buffer")
    crowd = [p for p in pts if x0 and abs(math.log(p[1] / x0)) < 0.03
             and abs(math.log(p[2])) < 0.3]

    def ranges(sel, right, min_xspan=1.0, min_yspan=0.05):
        """Panel ranges around sel; the zoom keeps a span of at least
        min_xspan bytes and min_yspan in log latency, so that it never
        magnifies a 2% difference into half the panel."""
        xs = [x for _, x, _ in sel]
        ys = [math.log(y) for _, _, y in sel] + [
            math.log(v) for c, _, _ in sel
            for v in (summary[c]["lat_q25"], summary[c]["lat_q75"])
            if math.isfinite(v) and v > 0]
        xmid, ymid = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        xspan = max(max(xs) - min(xs), min_xspan)
        yspan = max(max(ys) - min(ys), min_yspan)
        return (xmid - (0.5 + 0.06) * xspan, xmid + (0.5 + right) * xspan,
                ymid - (0.5 + 0.08) * yspan, ymid + (0.5 + 0.08) * yspan)

    def place(sel, box, fname, char):
        xlo, xhi, ylo, yhi = box
        h, placed = (yhi - ylo) * 0.045, []
        with open(os.path.join(ddir, fname), "w") as fh:
            fh.write('"config" "x" "y" "lx" "ly"\n')
            for c, x, y in sorted(sel, key=lambda p: (p[2], p[1])):
                if c == "default#2":
                    continue
                w = (xhi - xlo) * char * (len(c) + 1)
                lx, ly0 = x + (xhi - xlo) * 0.015, math.log(y)
                for k in range(0, 41):
                    ly = ly0 + (k + 1) // 2 * h * (1 if k % 2 else -1)
                    if not any(abs(ly - py) < h and lx < px + pw and px < lx + w
                               for px, py, pw in placed):
                        break
                placed.append((lx, ly, w))
                fh.write('"%s" %.3f %.5f %.3f %.5f\n' % (c, x, y, lx, math.exp(ly)))

    if pts:
        full = ranges(pts, 0.45)
        # The zoom spans at least +-10% in latency and +-5% in bytes.
        zoom = ranges(crowd or pts, 0.5, min_xspan=0.1 * (x0 or 100),
                      min_yspan=2 * math.log(1.1))
        names = {c for c, _, _ in crowd}
        place([p for p in pts if p[0] not in names], full, "labels.dat", 0.022)
        place(crowd, zoom, "labels_zoom.dat", 0.017)
        for k, v in zip(("xlo", "xhi", "ylo", "yhi"), full):
            gpvars[k] = v if k[0] == "x" else math.exp(v)
        for k, v in zip(("zxlo", "zxhi", "zylo", "zyhi"), zoom):
            gpvars[k] = v if k[0:2] == "zx" else math.exp(v)
        bx = [x for _, x, _ in crowd] or [0]
        by = [y for _, _, y in crowd] or [1]
        gpvars.update(bxlo=min(bx) - 2, bxhi=max(bx) + 2, bylo=min(by) * 0.97,
                      byhi=max(by) * 1.03)
    with open(os.path.join(ddir, "front.dat"), "w") as fh:
        fh.write('"config" "bytes" "lat"\n')
        for c in sorted(fronts["all"], key=lambda c: summary[c]["bytes_per_buffer"]):
            fh.write('"%s" %.2f %.4f\n' % (c, summary[c]["bytes_per_buffer"],
                                            summary[c]["lat_index"]))
    # cache figure: x position, cache, then per class scheme the numbers.
    jobs = meta["page_jobs"]
    with open(os.path.join(ddir, "cache.dat"), "w") as fh:
        cols = ["x", "cache"]
        for cl in (1, 0):
            cols += ["sys_%s_c%d" % (j.split()[0] + j.split("=")[-1], cl) for j in jobs]
            cols += ["lat_c%d" % cl, "latq25_c%d" % cl, "latq75_c%d" % cl,
                     "hit_c%d" % cl, "bytes_c%d" % cl, "p99_c%d" % cl,
                     "p99q25_c%d" % cl, "p99q75_c%d" % cl]
        fh.write(" ".join('"%s"' % c for c in cols) + "\n")
        for cache in CACHE_SIZES:
            # x: log2(cache + 1), so that 0, 8, 64 and 512 sit where a
            # logarithmic axis puts them (0 included), not evenly spaced.
            vals = ["%.4f" % math.log2(cache + 1), str(cache)]
            for cl in (1, 0):
                name = ",".join(p for p in (("classes=0" if cl == 0 else ""),
                                            ("cache=%d" % cache if cache != 64 else ""))
                                if p) or "default"
                d = summary.get(name)
                for j in jobs:
                    vals.append(f(d.get("syscalls_per_op:" + j) if d else None, "%.6f"))
                for k in ("lat_index", "lat_q25", "lat_q75", "cache_hit_rate",
                          "bytes_per_buffer", "p99_index", "p99_q25", "p99_q75"):
                    vals.append(f(d.get(k) if d else None, "%.5f"))
            fh.write(" ".join(v if v != "-" else "NaN" for v in vals) + "\n")
    with open(os.path.join(ddir, "waste.dat"), "w") as fh:
        fh.write('"size" "slot0" "slot1" "waste0" "waste1"\n')
        for s, a, b in slots:
            fh.write("%d %d %d %.3f %.3f\n" % (s, a, b, 100.0 * (a - s) / a,
                                              100.0 * (b - s) / b))
    w = waste_summary(slots)
    with open(os.path.join(ddir, "vars.gp"), "w") as fh:
        fh.write("run = '%s'\n" % run_id)
        fh.write("njobs = %d\n" % len(jobs))
        fh.write("jobnames = '%s'\n" % " ".join(j.replace(" ", "_") for j in jobs))
        fh.write("memkey = '%s'\n" % (meta["mem_key"] or ""))
        fh.write("wu0 = %.1f; wu1 = %.1f; wc0 = %.1f; wc1 = %.1f\n" % (
            w["uniform0"] * 100, w["uniform1"] * 100, w["crypto0"] * 100,
            w["crypto1"] * 100))
        fh.write("nrounds = %d\n" % len(sw.rounds))
        fh.write("nkeys = %d\n" % len(sw.lat_keys))
        for k, v in sorted(gpvars.items()):
            fh.write("%s = %.6g\n" % (k, v))


def draw(ddir, outdir):
    figs = ["tune_pareto", "tune_cache", "tune_waste"]
    made = []
    for name in figs:
        for fmt in ("png", "svg"):
            out = os.path.join(outdir, "%s.%s" % (name, fmt))
            p = subprocess.run(
                ["gnuplot", "-e", "fmt='%s'; out='%s'; data='%s'" % (fmt, out, ddir),
                 os.path.join(HERE, "common.gp"), os.path.join(HERE, name + ".gp")],
                capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("gnuplot %s: %s" % (name, p.stderr.strip()))
            made.append(out)
    return made

