# fuzz/: the libFuzzer target and the valgrind run.
#
#   make fuzz [FUZZ_SECONDS=N]   fuzz for N seconds (default 300); new inputs
#                                go to $(BUILD)/fuzz/corpus, crashes to
#                                $(BUILD)/fuzz/artifacts
#   make fuzz-replay             run the committed seed corpus once
#   make test-valgrind           the API tests under memcheck
#                                (VALGRIND_FILTER='api/*' by default)
#
# fuzz_tars.c reads its input as a program of allocator and container
# operations and checks every result against a model.  The library sources
# are compiled into the fuzzer with clang (coverage, ASan, UBSan).  `make
# test` runs it for FUZZ_CI_SECONDS from the seed corpus in fuzz/corpus/
# (small hand-made programs: chunks and large blocks, a realloc chain,
# calloc and aligned_alloc, keys and protection, option changes, buffers
# and keys from the containers, junk=1 malloc/free churn on the
# single-threaded fast paths).

FUZZ_CC := clang-14
FUZZ_BIN := $(BUILD)/fuzz/fuzz-tars
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 25
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Itars/include -Itars/src -pthread
# Guard-page faults are not expected from the fuzzer (it never misuses the
# API); if one happens, ASan's handler reports it with a stack and libFuzzer
# saves the input.  Leak checking stays on: the harness frees its model.
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# -rss_limit_mb=0: libFuzzer's RSS watchdog is a thread, and while a second
# thread exists tars never takes its single-threaded fast paths of
# tars_malloc/tars_free (chunk.h), so they would go unfuzzed.
# -malloc_limit_mb still bounds each allocation (a hook, not a thread).
FUZZ_ARGS := -max_len=4096 -timeout=20 -rss_limit_mb=0 -malloc_limit_mb=4096 \
	-print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/artifacts/
FUZZ_RUN = mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/artifacts && \
	$(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_ARGS) -max_total_time=$(1) \
	$(BUILD)/fuzz/corpus fuzz/corpus

VALGRIND_FILTER ?= api/*

.PHONY: fuzz fuzz-build fuzz-replay deps-fuzz test-fuzz test-valgrind deps-valgrind deps-gdb

deps-fuzz:
	$(Q)$(NEED_DEB) clang-14 libclang-rt-14-dev

$(FUZZ_BIN): fuzz/fuzz_tars.c $(TARS_SRC) $(wildcard tars/src/*.h) tars/include/tars.h | deps-fuzz
	@mkdir -p $(@D)
	$(E) "  CLANG   $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(TARS_SRC) fuzz/fuzz_tars.c

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	$(Q)$(call FUZZ_RUN,$(FUZZ_SECONDS))

fuzz-replay: $(FUZZ_BIN)
	$(Q)mkdir -p $(BUILD)/fuzz/artifacts && \
	  $(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_ARGS) -runs=0 fuzz/corpus

# The short run that `make test` includes (its exit status is the verdict).
TEST_BINS += $(FUZZ_BIN)
TEST_PROGS += "$(call FUZZ_RUN,$(FUZZ_CI_SECONDS))"

test-fuzz: $(FUZZ_BIN)
	$(Q)$(RUN_TESTS) "$(call FUZZ_RUN,$(FUZZ_CI_SECONDS))"

# The core-dump tests in tars/tests/test_secrets.c dump a process with gdb's
# gcore (they skip without it).
deps-gdb:
	$(Q)$(NEED_DEB) gdb
TEST_BINS += deps-gdb
SAN_TEST_BINS += deps-gdb

deps-valgrind:
	$(Q)$(NEED_DEB) valgrind

test-valgrind: $(TARS_TESTS) | deps-valgrind
	$(Q)$(RUN_TESTS) "bash fuzz/valgrind.sh $(TARS_TESTS) '$(VALGRIND_FILTER)' $(BUILD)/valgrind"

CLEAN_DIRS += $(BUILD)/fuzz $(BUILD)/valgrind
