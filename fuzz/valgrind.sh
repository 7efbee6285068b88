#!/usr/bin/env bash
# valgrind.sh TESTS FILTER LOGDIR: run the Criterion program TESTS under
# memcheck on the tests matching FILTER, one at a time, and fail on any
# memcheck error.
#
# Criterion runs every test in a worker process it execs, so valgrind must
# follow children (--trace-children=yes); each process logs to its own file.
# Death-test children fault or abort on purpose (that is what they test), and
# memcheck reports the invalid access that kills them: processes that end by
# a signal are not held against the run.  tars's memory comes from mmap, so
# memcheck sees it as one defined mapping: it checks the library's own code
# and the tests, not tars-level misuse (the death tests do that).
set -u
bin=$1
filter=$2
logdir=$3
rm -rf "$logdir"
mkdir -p "$logdir"
valgrind --tool=memcheck --trace-children=yes --track-origins=yes \
	--log-file="$logdir/vg.%p.log" "$bin" --jobs 1 --short-filename --filter "$filter"
rc=$?
bad=0
procs=0
for f in "$logdir"/vg.*.log; do
	procs=$((procs + 1))
	grep -q "Process terminating with default action of signal" "$f" && continue
	if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
		echo "valgrind: errors in $f:"
		sed -n '/Invalid\|uninitialised\|Mismatched\|overlap\|definitely lost/,/^==[0-9]*== $/p' "$f" | head -40
		bad=$((bad + 1))
	fi
done
echo "valgrind: $procs processes, $bad with errors (logs in $logdir)"
[ "$rc" = 0 ] && [ "$bad" = 0 ]
