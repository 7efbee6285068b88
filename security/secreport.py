"""security.md and the printed summary, from security.py's document."""


def bits(e, key="shannon_bits"):
    # -0.00 from a plug-in estimate of a single value reads as 0.00
    return "-" if not e else "%.2f" % max(0.0, e[key])


def pct(x):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if x == 1:
        return "100%"
    return "%.1f%%" % (100 * x) if x >= 0.001 else "%.2g%%" % (100 * x)


def num(x, fmt="%d"):
    return "-" if x is None else fmt % x


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def chi_p(c):
    return "-" if not c else "%.3g" % c["p_value"]


def maxb(x):
    return "-" if x is None else "%.2f" % x


def placement_md(p):
    md = ["## 1. Entropy of placement\n"]
    md.append("### Fresh processes: the first 64-byte allocation\n")
    md.append("Each process allocates two blocks; the in-page offset of the first and "
              "the distance to the second are tallied over processes. *max* is log2 of "
              "the slots in a page (tars chunks only).\n\n")
    rows = []
    for f in p["fresh"]:
        o, d = f.get("offset"), f.get("delta")
        rows.append([f["label"], "%d/%d" % (f["processes"], f["wanted"]),
                     num(f.get("distinct_first_addresses")),
                     bits(o), bits(o, "miller_madow_bits"), bits(o, "min_entropy_bits"),
                     maxb(f.get("offset_max_bits")), chi_p(f.get("offset_chi_square")),
                     bits(d), bits(d, "min_entropy_bits")])
    md.append(table(["backend", "processes", "distinct addresses", "offset H (bits)",
                     "offset H Miller-Madow", "offset H_min", "max", "chi-square p",
                     "delta H", "delta H_min"], rows))
    md.append("\n### Consecutive allocations in one process\n")
    md.append("Distances from each allocation to the next. *adjacent*: |distance| <= size "
              "+ 16; *P(best guess)*: frequency of the most common distance (an attacker "
              "who knows block N guesses block N+1 right this often).\n\n")
    rows = []
    for s in p["seq"]:
        rows.append([s["label"], s["allocations"], pct(s["adjacent_fraction"]),
                     pct(s["forward_adjacent_fraction"]), pct(s["same_page_fraction"]),
                     bits(s["delta"]), bits(s["delta"], "min_entropy_bits"),
                     pct(s["delta"]["top_probability"]) if s["delta"] else "-",
                     num(s["most_common_delta"]), num(s["median_abs_delta"])])
    md.append(table(["backend", "allocations", "adjacent", "adjacent, forward", "same page",
                     "delta H (bits)", "delta H_min", "P(best guess)", "most common delta",
                     "median abs delta"], rows))
    md.append("\n### The next allocation in a prepared state (allocate, note, free; repeated)\n")
    md.append("*empty*: one empty page; *alternate*: pages filled, every other block freed; "
              "*halfrun*: pages filled, the first half of each page freed. Page entropy is over "
              "the pages holding freed blocks (max: log2 of their number); slot entropy over "
              "in-page offsets (max: log2 of the free slots per page). *same as previous*: "
              "the block just freed is handed back; *next-from-previous*: entropy of the distance "
              "between consecutive samples, and how often the most common distance occurs "
              "(a marginal histogram can look uniform while the sequence is predictable).\n\n")
    rows = []
    for r in p["reuse"]:
        rows.append([r["label"], r["size"], r["state"], r["samples"],
                     "%d of %d" % (r["pages_chosen"], r["candidate_pages"]),
                     bits(r["page"]) if r["candidate_pages"] > 1 else "-",
                     maxb(r.get("page_max_bits")), chi_p(r.get("page_chi_square")),
                     bits(r["offset"]), bits(r["offset"], "min_entropy_bits"),
                     maxb(r.get("offset_max_bits")), chi_p(r.get("offset_chi_square")),
                     bits(r["delta"]), pct(r["delta"]["top_probability"]) if r["delta"] else "-",
                     pct(r["same_as_previous_fraction"]), r["elsewhere"]])
    md.append(table(["backend", "size", "state", "samples", "pages used", "page H",
                     "page max", "page chi2 p", "slot H", "slot H_min", "slot max",
                     "slot chi2 p", "next-from-previous H", "P(best guess)",
                     "same as previous", "elsewhere"], rows))
    md.append("\n### Fork: do two children of one parent make the same choices?\n\n")
    rows = [[f["label"], f["n"], "%d" % f["same_in_both_children"],
             "%d" % f["same_in_child_and_parent"]] for f in p["forkdiv"]]
    md.append(table(["backend", "allocations each", "same address in both children",
                     "same in child and parent"], rows))
    return "".join(md)


def overread_md(rows, over):
    md = ["\n## 2. Over-read into a neighbour (Heartbleed-style)\n\n",
          "48 blocks of 64 bytes per trial, one of them (random position) holding a 32-byte "
          "secret; every other block is read with memcpy from its start for 64 + N bytes. "
          "*prev*: the block allocated just before the secret; *any block*: over all 47; "
          "*trial*: at least one block exposes. Exposed = at least 8 consecutive secret "
          "bytes in the copy; *full* = all 32. A fault ends the read (nothing leaks).\n\n"]
    head = ["case", "trials"]
    for n in over:
        head += ["N=%d prev exposed / full / fault" % n, "N=%d any block exposed / fault" % n,
                 "N=%d trial" % n]
    trs = []
    for r in rows:
        if "error" in r:
            trs.append([r["label"], "failed: %s" % r["error"]] + [""] * (len(head) - 2))
            continue
        line = [r["label"], "%d/%d" % (r["trials_ok"], r["trials"])]
        for b in r["by_n"]:
            line += ["%s / %s / %s" % (pct(b["prev_exposed"]), pct(b["prev_full"]),
                                       pct(b["prev_fault"])),
                     "%s / %s" % (pct(b["block_exposed"]), pct(b["block_fault"])),
                     pct(b["trial_exposed"])]
        trs.append(line)
    md.append(table(head, trs))
    return "".join(md)


def uaf_md(rows):
    md = ["\n## 2b. Reading a freed secret\n\n",
          "A 64-byte secret block is freed. *dangling*: its pointer read at once (exposed: "
          ">= 8 consecutive secret bytes still in place); *same address*: the next block of "
          "that size is the freed one; *new block*: that block's initial bytes hold the "
          "secret; *stale readable*: the dangling pointer, read after that allocation, does "
          "not fault (when the address was reused, it reads the new block); *64 more*: one of 64 further blocks holds it; *scan*: the secret (8-byte "
          "window / all 32 bytes) anywhere in the process's resident memory.\n\n"]
    trs = []
    for r in rows:
        if "error" in r:
            trs.append([r["label"], "failed: %s" % r["error"]] + [""] * 9)
            continue
        trs.append([r["label"], "%d/%d" % (r["trials_ok"], r["trials"]),
                    pct(r["dangling_fault"]), pct(r["dangling_exposed"]),
                    pct(r["reused_same_address"]), pct(r["new_block_exposed"]),
                    pct(r["stale_readable_after_realloc"]), pct(r["churn_exposed"]),
                    "%s / %s" % (pct(r["scan_found_window"]), pct(r["scan_found_full"])),
                    num(r["scan_mib_per_trial"], "%.0f")])
    md.append(table(["case", "trials", "dangling faults", "dangling exposed", "same address",
                     "new block exposed", "stale readable", "64 more exposed",
                     "scan window / full", "MiB scanned"], trs))
    return "".join(md)


def memlock_md(rows, note):
    md = ["\n## 3. Unprivileged, at RLIMIT_MEMLOCK\n\n",
          "%s. 64-byte blocks allocated and written until an allocation fails or the cap. "
          "*locked until*: the last live count at which VmLck still grew (checkpoint "
          "resolution).\n\n" % note]
    trs = []
    for r in rows:
        if "error" in r:
            trs.append(["%d KiB" % (r["limit"] >> 10), r["label"], "failed: %s" % r["error"]]
                       + [""] * 7)
            continue
        extra = []
        if r.get("tars_unlocked_bytes") is not None:
            extra.append("tars unlocked %d KiB, first at %s" % (
                r["tars_unlocked_bytes"] >> 10, num(r.get("first_unlocked_at"))))
        bc = r.get("backend_counters") or {}
        if "mlock_failures" in bc:
            extra.append("mlock failures %d" % bc["mlock_failures"])
        if "arena_locked" in bc:
            extra.append("arena %d KiB %s" % (bc["arena_bytes"] >> 10,
                                              "locked" if bc["arena_locked"] else "NOT locked"))
        trs.append(["%d KiB" % (r["rlimit_memlock"] >> 10) if r.get("rlimit_memlock") else "-",
                    r["label"], "%s (uid %s, CapEff %s)" % (r["user"], r["euid"], r["cap_eff"]),
                    "%d / %d" % (r["live"], r["cap"]),
                    r["errno"] if r["failed"] else "no", num(r["vmlck_max_kb"]),
                    num(r["vmlck_last_growth_at"]), "; ".join(extra) or "-",
                    (r.get("stderr_first") or "-")[:90] +
                    (" (%d lines)" % r["stderr_lines"] if r.get("stderr_lines", 0) > 1 else "")])
    md.append(table(["limit", "case", "user", "live / cap", "failed", "VmLck max kB",
                     "locked until", "counters", "stderr"], trs))
    return "".join(md)


def window_md(w):
    md = ["\n## 4. Freed memory that stays writable\n\n"]
    for name, t in w["option_doc"].items():
        md.append("- option `%s` (%d..%d, default %d): %s\n" % (name, t["min"], t["max"],
                                                                 t["default"], t["help"]))
    md.append("\nN blocks of 64 bytes, each holding the secret, freed in random order; the "
              "pages that held them, read from /proc/self/maps; their readable bytes; and a "
              "scan of the whole process for the secret.\n\n")
    trs = []
    for r in w["window"]:
        if "error" in r:
            trs.append([r["label"], "failed: %s" % r["error"]] + [""] * 7)
            continue
        pf, rc = r["pages_freed"], r["readable_content"]
        content = ", ".join("%s %d%%" % (k, round(100 * rc[k] / rc["bytes"]))
                            for k in ("free_junk", "zero", "fill", "other")
                            if rc["bytes"] and rc[k])
        stats = r.get("page_stats_after_free")
        trs.append([r["label"], r["blocks"], r["pages"],
                    "%d / %d (%d resident) / %d / %d" % (pf["rw"], pf["none"], pf["none_resident"],
                                                         pf["other"], pf["unmapped"]),
                    "%d KiB" % (r["freed_rw_bytes"] >> 10), content or "-",
                    "%d / %d" % (r["scan_windows"], r["scan_full"]),
                    ", ".join("%s %d" % kv for kv in stats.items()) if stats else "-",
                    "-" if r.get("locked_bytes_after_free") is None
                    else "%d KiB" % (r["locked_bytes_after_free"] >> 10)])
    md.append(table(["case", "blocks", "pages",
                     "after free: rw / PROT_NONE (resident) / other / unmapped",
                     "writable freed bytes", "readable freed bytes hold", "secret found "
                     "(windows / full)", "tars page statistics after free",
                     "tars locked bytes after free"], trs))
    md.append("\n### How long a freed slot waits before it is handed out again\n\n"
              "A steady churn: free a random live block, allocate a new one. *distance*: "
              "allocations from a block's free to the allocation that returns the same address "
              "(1 = the very next).\n\n")
    trs = []
    for r in w["churn"]:
        if "error" in r:
            trs.append([r["label"], "failed: %s" % r["error"]] + [""] * 7)
            continue
        nr = r["never_reused_pages"]
        trs.append([r["label"], "%d / %d" % (r["live"], r["ops"]),
                    pct(r["reused_immediately_fraction"]), num(r["distance_p50"]),
                    num(r["distance_p90"]), num(r["distance_p99"]), num(r["distance_max"]),
                    "%d (rw %d, PROT_NONE %d, unmapped %d)" % (r["never_reused"], nr["rw"],
                                                               nr["none"], nr["unmapped"])])
    md.append(table(["case", "live / operations", "reused at once", "distance p50", "p90",
                     "p99", "max", "never reused (their pages at the end)"], trs))
    return "".join(md)


def markdown(doc):
    fig = doc["figures"]
    m = doc["machine"]
    md = ["# Security evaluation %s\n\n" % doc["run"],
          "Scale `%s`, %s s, revision `%s`; %s; %s CPUs; RLIMIT_MEMLOCK of the driver %s; "
          "vm.max_map_count %s; swap devices %d. Method and fields: `security/README.md`.\n\n"
          % (doc["scale"], doc["seconds"], doc["revision"], m["uname"], m["cpus"],
             m["rlimit_memlock"], m["max_map_count"], m["swap"])]
    if "placement" in fig:
        md.append(placement_md(fig["placement"]))
    if "overread" in fig:
        ok = [r for r in fig["overread"] if "by_n" in r]
        md.append(overread_md(fig["overread"], [b["n"] for b in ok[0]["by_n"]] if ok else []))
    if "uaf" in fig:
        md.append(uaf_md(fig["uaf"]))
    if "memlock" in fig:
        md.append(memlock_md(fig["memlock"], doc["unprivileged"]))
    if "window" in fig:
        md.append(window_md(fig["window"]))
    if doc.get("checks"):
        md.append("\n## Checks\n\n")
        for c in doc["checks"]:
            md.append("- %s %s\n" % ("ok" if c["ok"] else "**FAILED**", c["check"]))
    md.append("\n## Failed processes\n\n")
    md.append("".join("- %s\n" % f for f in doc["failures"]) or "none\n")
    return "".join(md)


def summary(doc):
    fig = doc["figures"]
    out = ["Security evaluation, scale %s, %s s" % (doc["scale"], doc["seconds"])]
    p = fig.get("placement")
    if p:
        out.append("Placement (Shannon bits / max; 64-byte blocks):")
        for r in p["reuse"]:
            if r["size"] != 64:
                continue
            if r["state"] == "empty":
                out.append("  slot on an empty page   %-16s %s / %s (next from previous: %s bits)" % (
                    r["label"], bits(r["offset"]), maxb(r.get("offset_max_bits")),
                    bits(r["delta"])))
        for r in p["reuse"]:
            if r["state"] == "alternate" and r["size"] == 64:
                out.append("  page among %2d with room  %-16s %s / %s (%d pages used)" % (
                    r["candidate_pages"], r["label"], bits(r["page"]),
                    maxb(r.get("page_max_bits")), r["pages_chosen"]))
        for r in p["reuse"]:
            if r["state"] == "halfrun" and r["size"] == 64:
                out.append("  slot, half-page run     %-16s %s / %s (min-entropy %s)" % (
                    r["label"], bits(r["offset"]), maxb(r.get("offset_max_bits")),
                    bits(r["offset"], "min_entropy_bits")))
        for s in p["seq"]:
            out.append("  next block guessed from the previous  %-20s %s (adjacent %s)" % (
                s["label"], pct(s["delta"]["top_probability"]) if s["delta"] else "-",
                pct(s["adjacent_fraction"])))
    o = fig.get("overread")
    if o:
        out.append("Over-read by N: trials where some block exposes the secret (N=16/64/256/4096),"
                   " block fault rate at N=16:")
        for r in o:
            if "by_n" not in r:
                out.append("  %-40s failed: %s" % (r["label"], r["error"]))
                continue
            out.append("  %-40s %s   faults %s" % (
                r["label"], " ".join("%6s" % pct(b["trial_exposed"]) for b in r["by_n"]),
                pct(r["by_n"][0]["block_fault"])))
    u = fig.get("uaf")
    if u:
        out.append("Freed secret: dangling read exposes / same address reused / found by scan:")
        for r in u:
            if "error" in r:
                out.append("  %-24s failed: %s" % (r["label"], r["error"]))
                continue
            out.append("  %-24s %6s %6s %6s" % (r["label"], pct(r["dangling_exposed"]),
                                                pct(r["reused_same_address"]),
                                                pct(r["scan_found_window"])))
    m = fig.get("memlock")
    if m:
        out.append("RLIMIT_MEMLOCK (%s): live 64-byte blocks, failure, VmLck max:" % doc["unprivileged"])
        for r in m:
            if "error" in r:
                out.append("  %5d KiB %-34s failed: %s" % (r["limit"] >> 10, r["label"], r["error"]))
                continue
            out.append("  %5d KiB %-34s %7d %-7s %6s kB%s" % (
                r["limit"] >> 10, r["label"], r["live"], r["errno"] or "-",
                num(r["vmlck_max_kb"]),
                ", unlocked %d KiB" % (r["tars_unlocked_bytes"] >> 10)
                if r.get("tars_unlocked_bytes") else ""))
    w = fig.get("window")
    if w:
        out.append("Freed but writable (KiB) and secret copies found after free:")
        for r in w["window"]:
            if "error" in r:
                out.append("  %-22s failed: %s" % (r["label"], r["error"]))
                continue
            out.append("  %-22s %7d blocks %5d KiB rw, %6d KiB PROT_NONE (%d KiB resident), copies %d" % (
                r["label"], r["blocks"], r["freed_rw_bytes"] >> 10, r["freed_none_bytes"] >> 10,
                r["freed_none_resident_bytes"] >> 10, r["scan_windows"]))
        for r in w["churn"]:
            if "error" in r:
                continue
            out.append("  reuse distance %-16s p50 %s p90 %s max %s, at once %s" % (
                r["label"], num(r["distance_p50"]), num(r["distance_p90"]),
                num(r["distance_max"]), pct(r["reused_immediately_fraction"])))
    if doc["failures"]:
        out.append("%d process(es) failed (see security.md)" % len(doc["failures"]))
    return "\n".join(out)
