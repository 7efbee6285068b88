# bench/: Google Benchmark micro-benchmarks of tars.  The bodies are C;
# bench/gbench.cc is the small C++ shim (C API in bench/gbench.h).
#
#   make bench                        build, run (~1.5 min), write
#                                     results/bench/bench.json, print the
#                                     tars/glibc table
#   make bench BENCH_FILTER=REGEX     only the benchmarks matching REGEX
#                                     (e.g. 'pair/64$', 'opt/', 'key')
#   make bench BENCH_ARGS='...'       other Google Benchmark flags (1.7.1
#                                     forms: --benchmark_min_time=0.5)
#   make bench-summary                the table again, from the last JSON
#   make bench-bin                    build the binaries only
#   make test-bench                   the harness tests of `make test`

BENCH_DIR := $(BUILD)/bench
BENCH_BIN := $(BENCH_DIR)/tars-bench
BENCH_SELFTEST := $(BENCH_DIR)/gbench-selftest
BENCH_JSON := results/bench/bench.json
BENCH_FILTER ?=
# Default: ~100 benchmarks x 5 repetitions of >= 0.05 s CPU time: about a
# minute on 2 idle cores, two when other jobs share them.
# The console shows the aggregates, the JSON every repetition.
# (--benchmark_enable_random_interleaving=true spreads the repetitions over
# the run, at the cost of an iteration estimate per repetition: slower.)
BENCH_ARGS ?= --benchmark_min_time=0.05 --benchmark_repetitions=5 \
	--benchmark_display_aggregates_only=true

BENCH_CXXFLAGS := -std=c++14 -MMD -MP -Wall -Wextra -Wshadow $(SAN_FLAGS)
BENCH_LIBS := -lbenchmark

BENCH_SHIM_OBJ := $(BENCH_DIR)/gbench.o
BENCH_UTIL_OBJ := $(BENCH_DIR)/util.o
BENCH_OBJ := $(addprefix $(BENCH_DIR)/,main.o bench_alloc.o bench_key.o bench_opts.o \
	bench_keyarena.o tarsutil.o)
BENCH_SELFTEST_OBJ := $(BENCH_DIR)/selftest.o
BENCH_ALL_OBJ := $(BENCH_SHIM_OBJ) $(BENCH_UTIL_OBJ) $(BENCH_OBJ) $(BENCH_SELFTEST_OBJ)

# The filter goes through $(value) so that a regex anchor `$` needs no
# doubling on the command line.
BENCH_FILTER_ARG = $(if $(BENCH_FILTER),'--benchmark_filter=$(value BENCH_FILTER)')

.PHONY: bench bench-bin bench-summary test-bench deps-benchmark

deps-benchmark:
	$(Q)$(NEED_DEB) libbenchmark-dev

bench-bin: $(BENCH_BIN) $(BENCH_SELFTEST)

$(BENCH_DIR)/%.o: bench/%.c
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) -Ibench $(CFLAGS) -c $< -o $@

$(BENCH_SHIM_OBJ): bench/gbench.cc | deps-benchmark
	@mkdir -p $(@D)
	$(E) "  CXX     $<"
	$(Q)$(CXX) $(BENCH_CXXFLAGS) $(CXXFLAGS) -c $< -o $@

$(BENCH_BIN): $(BENCH_OBJ) $(BENCH_UTIL_OBJ) $(BENCH_SHIM_OBJ) $(TARS_A) | deps-benchmark
	@mkdir -p $(@D)
	$(E) "  LD      $@"
	$(Q)$(CXX) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $(BENCH_OBJ) $(BENCH_UTIL_OBJ) \
	  $(BENCH_SHIM_OBJ) $(TARS_A) $(BENCH_LIBS)

# The shim's self-test needs glibc only, not libtars.
$(BENCH_SELFTEST): $(BENCH_SELFTEST_OBJ) $(BENCH_UTIL_OBJ) $(BENCH_SHIM_OBJ) | deps-benchmark
	@mkdir -p $(@D)
	$(E) "  LD      $@"
	$(Q)$(CXX) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $^ $(BENCH_LIBS)

# The JSON is written aside and moved into place once the run is over, so
# an interrupted run leaves no truncated file.  Exit status 2 means some
# runs were skipped with an error: they are listed by the table, the
# others are still good.
bench: $(BENCH_BIN)
	@mkdir -p $(dir $(BENCH_JSON))
	$(E) "  BENCH   $(BENCH_JSON)"
	$(Q)rc=0; $(BENCH_BIN) $(BENCH_FILTER_ARG) $(BENCH_ARGS) \
	  --benchmark_out=$(BENCH_JSON).tmp --benchmark_out_format=json || rc=$$?; \
	if [ $$rc = 2 ]; then \
	  echo "bench: some runs were skipped with an error (listed below)" >&2; \
	elif [ $$rc != 0 ]; then \
	  rm -f $(BENCH_JSON).tmp; exit $$rc; \
	fi; \
	mv -f $(BENCH_JSON).tmp $(BENCH_JSON)
	$(Q)python3 bench/summary.py $(BENCH_JSON)

bench-summary:
	$(Q)python3 bench/summary.py $(BENCH_JSON)

# Harness tests: the shim's self-test (every feature, checked in its
# JSON), then one tiny tars/glibc run checked for names and counters.
BENCH_TESTS := "python3 bench/check_json.py selftest $(BENCH_SELFTEST) $(BENCH_DIR)/selftest.json" \
	"python3 bench/check_json.py tiny $(BENCH_BIN) $(BENCH_DIR)/tiny.json"
TEST_BINS += $(BENCH_SELFTEST) $(BENCH_BIN)
TEST_PROGS += $(BENCH_TESTS)

test-bench: $(BENCH_SELFTEST) $(BENCH_BIN)
	$(Q)$(RUN_TESTS) $(BENCH_TESTS)

-include $(BENCH_ALL_OBJ:.o=.d)
