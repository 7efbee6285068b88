/*
 * main.c - the tars micro-benchmark suite (build/bench/tars-bench).
 *
 * Google Benchmark flags apply (1.7.1 forms): --benchmark_filter=REGEX,
 * --benchmark_min_time=SECONDS (a plain number), --benchmark_repetitions=N,
 * --benchmark_out=FILE --benchmark_out_format=json.  `make bench` passes
 * them; bench/summary.py turns the JSON into the tars/glibc table.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	char opts[256];

	bench_register_alloc();
	bench_register_key();
	bench_register_opts();
	bench_register_keyarena();

	/* Recorded in the JSON "context" so that runs can be compared. */
	bench_options_string(opts, sizeof(opts));
	gb_context("tars_version", TARS_VERSION);
	gb_context("tars_options", opts);
	gb_context("latency_counters", "batch_p50_ns/batch_p99_ns/batch_p99.9_ns: per-operation "
	    "averages of stretches of up to 64 operations");
	return gb_main(argc, argv);
}
