#!/usr/bin/env bash
# test-compare.sh BINDIR: every backend runs one tiny workload (session, in
# its own process), then the merged CSV is validated by check_csv.py.
# Exits non-zero on any failure.  Takes a few seconds.
set -eu
bindir=${1:?usage: test-compare.sh BINDIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 compare/run.py --bin "$bindir" --results "$tmp" --scale tiny \
	--workloads "session capacity" --run test --no-latest
python3 compare/check_csv.py "$tmp/test" --workloads "session capacity"

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
