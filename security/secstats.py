"""Entropy and uniformity estimates for security.py (stdlib only).

Every estimate comes with what it can and cannot say:

- shannon_bits: the plug-in estimate, -sum p log2 p over the observed
  frequencies.  It is biased low by about (K-1) / (2 n ln 2) bits for K
  observed values and n samples; miller_madow_bits adds that back.
- min_entropy_bits: -log2 of the largest observed frequency, i.e. how hard
  the single best guess is.  With few samples per value the largest
  frequency is inflated by chance, so this too is biased low.
- chi_square: Pearson's statistic against the uniform distribution over a
  known support, and its p-value from the regularized upper incomplete gamma
  function (written here from its series and continued fraction).  A small
  p-value (< 0.001) says "not uniform"; a large one says only that the
  samples cannot tell.
"""

import math


def entropy(counts):
    """Shannon (plug-in and Miller-Madow) and min-entropy of a histogram
    (an iterable of counts); None when there are no samples."""
    counts = [c for c in counts if c > 0]
    n = sum(counts)
    if n == 0:
        return None
    h = -sum(c / n * math.log2(c / n) for c in counts)
    mm = h + (len(counts) - 1) / (2 * n * math.log(2))
    return {
        "samples": n,
        "distinct": len(counts),
        "shannon_bits": h,
        "miller_madow_bits": mm,
        "min_entropy_bits": -math.log2(max(counts) / n),
        "top_probability": max(counts) / n,
    }


def _gamma_q(a, x):
    """Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a)."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        # P(a, x) by its power series: sum x^k / (a (a+1) ... (a+k)).
        term = 1.0 / a
        total = term
        k = 1
        while abs(term) > abs(total) * 1e-15 and k < 100000:
            term *= x / (a + k)
            total += term
            k += 1
        return max(0.0, 1.0 - math.exp(log_front) * total)
    # Q(a, x) by its continued fraction, evaluated with the modified
    # Lentz method.
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    f = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        f *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * f)


def chi_square(observed):
    """Pearson's chi-square of `observed` (counts over the whole support,
    zeros included) against uniform; statistic, degrees of freedom, p."""
    k = len(observed)
    n = sum(observed)
    if k < 2 or n == 0:
        return None
    e = n / k
    stat = sum((o - e) ** 2 / e for o in observed)
    dof = k - 1
    return {"statistic": stat, "dof": dof, "p_value": _gamma_q(dof / 2, stat / 2),
            "expected_per_value": e}


def quantile(sorted_values, q):
    """Nearest-rank quantile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]
