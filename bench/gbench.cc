// gbench.cc - the C interface of gbench.h over Google Benchmark 1.7.1.
//
// A gb_bench is a benchmark::internal::Benchmark and a gb_state is a
// benchmark::State, both only cast: the shim adds no state of its own
// beyond the count of runs skipped with an error.

#include "gbench.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Bench = benchmark::internal::Benchmark;

std::atomic<unsigned> skipped_runs{0};

Bench *B(gb_bench *b, const char *fn)
{
	if (b == nullptr) {
		std::fprintf(stderr, "gbench: %s(): NULL benchmark\n", fn);
		std::abort();
	}
	return reinterpret_cast<Bench *>(b);
}

gb_bench *G(Bench *b)
{
	return reinterpret_cast<gb_bench *>(b);
}

benchmark::State &S(gb_state *st)
{
	return *reinterpret_cast<benchmark::State *>(st);
}

const benchmark::State &S(const gb_state *st)
{
	return *reinterpret_cast<const benchmark::State *>(st);
}

// Explicit, so that the C values do not depend on the enum's layout.
benchmark::Counter::Flags counter_flags(unsigned f)
{
	unsigned r = 0;
	if (f & GB_COUNTER_RATE)
		r |= benchmark::Counter::kIsRate;
	if (f & GB_COUNTER_AVG_THREADS)
		r |= benchmark::Counter::kAvgThreads;
	if (f & GB_COUNTER_ITER_INVARIANT)
		r |= benchmark::Counter::kIsIterationInvariant;
	if (f & GB_COUNTER_AVG_ITERATIONS)
		r |= benchmark::Counter::kAvgIterations;
	if (f & GB_COUNTER_INVERT)
		r |= benchmark::Counter::kInvert;
	return static_cast<benchmark::Counter::Flags>(r);
}

} // namespace

extern "C" {

gb_bench *gb_register(const char *name, gb_fn *fn, void *ctx)
{
	if (name == nullptr || fn == nullptr) {
		std::fprintf(stderr, "gbench: gb_register(): NULL name or function\n");
		std::abort();
	}
	// RegisterBenchmark copies the name.
	Bench *b = benchmark::RegisterBenchmark(name, [fn, ctx](benchmark::State &st) {
		fn(reinterpret_cast<gb_state *>(&st), ctx);
		// Returning before the loop finished makes the library abort
		// ("Benchmark returned before State::KeepRunning() returned
		// false!"); turn it into a reported error instead.
		if (!st.error_occurred() && st.iterations() < st.max_iterations)
			gb_skip(reinterpret_cast<gb_state *>(&st),
			    "benchmark body returned before gb_batch() returned 0");
	});
	return G(b);
}

gb_bench *gb_bench_arg(gb_bench *b, int64_t x)
{
	return G(B(b, __func__)->Arg(x));
}

gb_bench *gb_bench_args(gb_bench *b, const int64_t *xs, size_t n)
{
	return G(B(b, __func__)->Args(std::vector<int64_t>(xs, xs + n)));
}

gb_bench *gb_bench_range(gb_bench *b, int64_t lo, int64_t hi)
{
	return G(B(b, __func__)->Range(lo, hi));
}

gb_bench *gb_bench_range_multiplier(gb_bench *b, int mult)
{
	return G(B(b, __func__)->RangeMultiplier(mult));
}

gb_bench *gb_bench_dense_range(gb_bench *b, int64_t lo, int64_t hi, int step)
{
	return G(B(b, __func__)->DenseRange(lo, hi, step));
}

gb_bench *gb_bench_arg_names(gb_bench *b, const char *const *names, size_t n)
{
	return G(B(b, __func__)->ArgNames(std::vector<std::string>(names, names + n)));
}

gb_bench *gb_bench_repetitions(gb_bench *b, int n)
{
	return G(B(b, __func__)->Repetitions(n));
}

gb_bench *gb_bench_min_time(gb_bench *b, double seconds)
{
	return G(B(b, __func__)->MinTime(seconds));
}

gb_bench *gb_bench_iterations(gb_bench *b, uint64_t n)
{
	return G(B(b, __func__)->Iterations(static_cast<benchmark::IterationCount>(n)));
}

gb_bench *gb_bench_manual_time(gb_bench *b)
{
	return G(B(b, __func__)->UseManualTime());
}

gb_bench *gb_bench_real_time(gb_bench *b)
{
	return G(B(b, __func__)->UseRealTime());
}

gb_bench *gb_bench_unit(gb_bench *b, enum gb_unit unit)
{
	benchmark::TimeUnit u = benchmark::kNanosecond;
	switch (unit) {
	case GB_NS: u = benchmark::kNanosecond; break;
	case GB_US: u = benchmark::kMicrosecond; break;
	case GB_MS: u = benchmark::kMillisecond; break;
	case GB_S: u = benchmark::kSecond; break;
	}
	return G(B(b, __func__)->Unit(u));
}

int gb_batch(gb_state *st, uint64_t n)
{
	return S(st).KeepRunningBatch(n ? static_cast<benchmark::IterationCount>(n) : 1);
}

int gb_batch_manual(gb_state *st, uint64_t n, double seconds)
{
	benchmark::State &s = S(st);
	if (seconds > 0)
		s.SetIterationTime(seconds);
	return s.KeepRunningBatch(n ? static_cast<benchmark::IterationCount>(n) : 1);
}

int64_t gb_state_arg(const gb_state *st, size_t i)
{
	return S(st).range(i);
}

uint64_t gb_state_iterations(const gb_state *st)
{
	return static_cast<uint64_t>(S(st).iterations());
}

void gb_counter(gb_state *st, const char *name, double value, unsigned flags)
{
	S(st).counters[name] = benchmark::Counter(value, counter_flags(flags));
}

void gb_skip(gb_state *st, const char *msg)
{
	benchmark::State &s = S(st);
	if (s.error_occurred())
		return;
	skipped_runs.fetch_add(1, std::memory_order_relaxed);
	s.SkipWithError(msg);
}

int gb_skipped(const gb_state *st)
{
	return S(st).error_occurred();
}

void gb_label(gb_state *st, const char *label)
{
	S(st).SetLabel(label);
}

void gb_items_processed(gb_state *st, uint64_t items)
{
	S(st).SetItemsProcessed(static_cast<int64_t>(items));
}

void gb_bytes_processed(gb_state *st, uint64_t bytes)
{
	S(st).SetBytesProcessed(static_cast<int64_t>(bytes));
}

void gb_pause(gb_state *st)
{
	S(st).PauseTiming();
}

void gb_resume(gb_state *st)
{
	S(st).ResumeTiming();
}

void gb_context(const char *key, const char *value)
{
	benchmark::AddCustomContext(key, value);
}

int gb_main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	size_t ran = benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	if (ran == 0) {
		std::fprintf(stderr, "gbench: no benchmark matched the filter\n");
		return 1;
	}
	unsigned skipped = skipped_runs.load();
	if (skipped != 0) {
		std::fprintf(stderr, "gbench: %u run(s) skipped with an error\n", skipped);
		return 2;
	}
	return 0;
}

} // extern "C"
