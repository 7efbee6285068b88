#!/usr/bin/env bash
# test-compare.sh BINDIR "BACKENDS": every backend runs every workload at the
# tiny scale, in two rounds (so that the ratios get bootstrap intervals),
# then the run directory is validated by check_csv.py.  A binary linked to
# the wrong malloc must be caught, and every binary must list the same
# workloads.  Exits non-zero on any failure.
set -eu
bindir=${1:?usage: test-compare.sh BINDIR BACKENDS}
backends=${2:?usage: test-compare.sh BINDIR BACKENDS}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 compare/run.py --bin "$bindir" --backends "$backends" --results "$tmp" \
	--scale tiny --rounds 2 --run test --no-latest
python3 compare/test_suite.py
python3 compare/check_csv.py "$tmp/test"

# A mislinked binary must be caught: glibc's binary with jemalloc preloaded.
je=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -n 1)
if [ -n "$je" ]; then
	if LD_PRELOAD=$je "$bindir/compare-glibc" --info >"$tmp/mislinked.json" 2>/dev/null; then
		echo "FAIL compare-glibc with jemalloc preloaded was not caught"
		exit 1
	fi
	grep -q '"malloc_owner_ok": false' "$tmp/mislinked.json"
	echo "ok   mislinked run caught (malloc owned by $(basename "$je"))"
fi
echo "test-compare: passed"
