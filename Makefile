# tars - protected memory for secrets, and the suite that measures it.
#
#   make report     the main job: build, compare every allocator, plot
#                   (FULL=1 bigger sizes; ROUNDS=N processes per
#                   measurement; BACKENDS=, WORKLOADS= subsets)
#   make test       build and run the whole test suite
#   make            build libtars.a, libtars.so, tars.pc
#   make bench      micro-benchmarks (BENCH_FILTER=regex)
#   make tune       option sweep: cache, classes, spare, junk, canary, random,
#                   mlock, delay, large_cache, quarantine, freed_none
#   make syscalls   system calls per operation of every backend (strace)
#   make fuzz       libFuzzer run (FUZZ_SECONDS=N)
#   make plots      figures from results/latest (RESULTS=results/X)
#   make pair64     the 64-byte malloc+free figure against glibc
#   make install    PREFIX=/usr/local (header, libraries, tars.pc)
#   test-asan, test-ubsan, test-tsan, test-valgrind, test-compare, ...
#
# Quiet by default; V=1 shows the commands.  CC, CXX, CFLAGS, CXXFLAGS,
# LDFLAGS from the environment are respected.  SAN=address|undefined|thread
# builds everything sanitized under build/<san>/ (test-asan, test-ubsan,
# test-tsan do that and run the tests).

.DEFAULT_GOAL := all
SHELL := /bin/bash

V ?= 0
Q := $(if $(filter 1,$(V)),,@)
E := $(if $(filter 1,$(V)),@:,@echo)

CXX ?= g++
CFLAGS ?= -O2 -g
CXXFLAGS ?= -O2 -g
LDFLAGS ?=
PREFIX ?= /usr/local
SAN ?=
BUILD ?= $(if $(SAN),build/$(SAN),build)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
SAN_FLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all)
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Itars/include -MMD -MP $(WARN) $(SAN_FLAGS)
BASE_LDFLAGS := -pthread $(SAN_FLAGS)

NEED_DEB := mk/need-deb
RUN_TESTS := mk/run-tests

# Fragments append to these.
TEST_PROGS :=    # commands run by `make test`, in order
TEST_BINS :=     # what those commands need built
SAN_TEST_PROGS := # the library's own tests, re-run by test-asan/test-ubsan
SAN_TEST_BINS :=  # (benchmarks and the comparison, whose backends replace
                  # malloc, are not meaningful under a sanitizer)
CLEAN_DIRS := build results plots/out

include tars/tars.mk
-include examples/examples.mk
-include bench/bench.mk
-include compare/compare.mk
-include plots/plots.mk
-include tune/tune.mk
-include fuzz/fuzz.mk
-include security/security.mk

.PHONY: all test test-san test-asan test-ubsan test-tsan clean help
all: lib

test: $(TEST_BINS)
	$(Q)$(RUN_TESTS) $(TEST_PROGS)

# Sanitized variants: the library's suites in a separate build tree
# (build/<sanitizer>/).  Guard-page death tests need a real SIGSEGV, so
# ASan must not handle it.
test-san: $(SAN_TEST_BINS)
	$(Q)$(RUN_TESTS) $(SAN_TEST_PROGS)
test-asan:
	$(Q)ASAN_OPTIONS=handle_segv=0:detect_leaks=0:allow_user_segv_handler=1 \
	  $(MAKE) --no-print-directory test-san SAN=address
test-ubsan:
	$(Q)UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(MAKE) --no-print-directory test-san SAN=undefined
# Criterion cannot run under TSan (its arena allocator aborts), so the
# thread sanitizer runs the standalone multithreaded stress program.
test-tsan:
	$(Q)TSAN_OPTIONS=halt_on_error=1 \
	  $(MAKE) --no-print-directory test-mt-stress SAN=thread

clean:
	$(E) "  CLEAN"
	$(Q)rm -rf $(CLEAN_DIRS)

help:
	@sed -n '2,20p' Makefile | sed 's/^# \{0,1\}//'
