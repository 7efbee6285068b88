#!/bin/bash
# opcount.sh BUILD OUT [BASE] - instructions per operation of tars (and of
# glibc, as the yardstick) under valgrind --tool=callgrind, for every
# protection option on and off; with BASE (a git revision) the same loop is
# built against that revision's library as well, side by side.
#
# Each figure is (I refs at 2N - I refs at N) / N, N = 100000: start-up,
# set-up and the exit cancel.  Exact and repeatable for one binary, so it
# complements the timed ratios of `make report` on a noisy shared machine.
# Writes OUT/opcount.md (a table) and prints it.
set -euo pipefail

build=$1
out=$2
base=${3:-}
n=100000
src=tars/tools/opcount.c

command -v valgrind >/dev/null || { echo "opcount: valgrind is missing" >&2; exit 1; }
mkdir -p "$out"

# name|TARS_OPTIONS|flags
configs=(
	"default||"
	"junk=0|junk=0|"
	"canary=0|canary=0|"
	"random=0|random=0|"
	"mlock=0|mlock=0|"
	"all four off|junk=0,canary=0,random=0,mlock=0|"
	"delay=1|delay=1|"
	"an idle second thread||i"
)

count() { # binary mode n flags options -> I refs
	local refs
	refs=$(TARS_OPTIONS=$5 valgrind --tool=callgrind \
		--callgrind-out-file=/dev/null "$1" "$2" "$3" "$4" 2>&1 |
		sed -n 's/.*I *refs: *//p' | tr -d ,)
	[ -n "$refs" ] || { echo "opcount: no count from $1 $2 $3 $4" >&2; exit 1; }
	echo "$refs"
}

per_op() { # binary mode flags options -> instructions per operation, or -
	local warn a b
	# An option the library does not know is refused with a warning, and
	# the loop would measure the defaults: report "-" instead.
	warn=$(TARS_OPTIONS=$4 "$1" "$2" 1 "$3" 2>&1 >/dev/null || true)
	if [ -n "$warn" ]; then
		echo "-"
		return
	fi
	a=$(count "$1" "$2" $n "$3" "$4")
	b=$(count "$1" "$2" $((2 * n)) "$3" "$4")
	echo $(((b - a) / n))
}

bins=("$build/tools/opcount")
heads=("tars $(git describe --always --dirty 2>/dev/null || echo '?')")
if [ -n "$base" ]; then
	dir=$build/opcount/base
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "opcount: building the library of $base in $dir" >&2
	git archive "$base" | tar -x -C "$dir"
	make -s -C "$dir" BUILD=build build/lib/libtars.a >&2
	gcc -O2 -g -I"$dir/tars/include" "$src" "$dir/build/lib/libtars.a" \
		-lpthread -o "$build/opcount/opcount-base"
	bins+=("$build/opcount/opcount-base")
	heads+=("tars $(git rev-parse --short "$base")")
fi

{
	echo "# Instructions per operation (callgrind), $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "\`make opcount${base:+ OPCOUNT_BASE=$base}\`: (I refs at $((2 * n)) operations - at $n) / $n."
	echo "pair: 64-byte malloc + free; churn: 1000 live blocks of 32-208 B, free one at random and allocate."
	echo
	line="| configuration | mode |"
	sep="|---|---|"
	for h in "${heads[@]}"; do line+=" $h |"; sep+="---|"; done
	echo "$line"
	echo "$sep"
	for c in "${configs[@]}"; do
		IFS='|' read -r name opts flags <<<"$c"
		for mode in pair churn; do
			line="| $name | $mode |"
			for b in "${bins[@]}"; do
				echo "opcount: $name, $mode, $(basename "$b")" >&2
				line+=" $(per_op "$b" $mode "$flags" "$opts") |"
			done
			echo "$line"
		done
	done
	for mode in pair churn; do
		echo "opcount: glibc, $mode" >&2
		g=$(per_op "${bins[0]}" $mode g "")
		line="| glibc $(ldd --version | sed -n '1s/.* //p') | $mode | $g |"
		for ((i = 1; i < ${#bins[@]}; i++)); do line+=" $g |"; done
		echo "$line"
	done
} | tee "$out/opcount.md"
