#!/usr/bin/env python3
"""Checks of compare/suite.py's statistics and colours (run by
test-compare.sh): the bootstrap interval brackets its ratio, collapses on
constant samples, widens with noisy ones and includes 1 for identical
distributions; colours are distinct, deterministic and keyed by name."""

import os
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402

fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


r, lo, hi = suite.bootstrap_ratio([10.0] * 5, [20.0] * 5)
check((r, lo, hi) == (2.0, 2.0, 2.0), "constant samples: ratio 2 [2, 2]: %s" % ((r, lo, hi),))
r, lo, hi = suite.bootstrap_ratio([9, 10, 11, 10, 12], [18, 20, 22, 21, 19])
check(lo < r < hi and lo < 2 < hi and lo > 1, "ratio ~2 with noise: %.2f [%.2f, %.2f]" % (r, lo, hi))
rng = random.Random(3)
a = [100 + rng.gauss(0, 10) for _ in range(5)]
b = [100 + rng.gauss(0, 10) for _ in range(5)]
r, lo, hi = suite.bootstrap_ratio(a, b)
check(lo <= 1 <= hi, "same distribution: interval %.2f..%.2f includes 1" % (lo, hi))
r, lo, hi = suite.bootstrap_ratio([10.0], [20.0, 21.0])
check(r == 2.05 and lo is None and hi is None, "one base process: a ratio, no interval")
check(suite.bootstrap_ratio([], [1.0]) == (None, None, None), "no base: nothing")
names = ["tars", "tars-key", "tars-bare", "glibc", "jemalloc", "mimalloc", "tcmalloc",
         "scudo", "mmap", "sodium", "openssl", "newcomer"]
c = suite.colours(names)
check(len(set(c.values())) == len(names), "%d names, %d distinct colours" % (
    len(names), len(set(c.values()))))
check(c == suite.colours(list(reversed(names))), "colours do not depend on the order")
check(c["tars"] == suite.PINNED["tars"], "tars keeps its colour")
print("test_suite: %d failed" % len(fails))
sys.exit(1 if fails else 0)
