# compare/: the same small-buffer workloads against every allocator a user
# could pick instead of tars, one process per backend (the malloc
# replacements replace malloc process-wide).  compare/run.py drives the
# binaries (it asks each one `--list` what it is and what it runs) and
# writes results/<run>/{compare.json,compare.csv,ratios.csv,summary.md}.
#
#   make compare             build build/compare/compare-<backend>
#   make report              install what is missing, build, run, plot, summarize
#   make report FULL=1       the bigger sizes (fill 1M, churn 100k slots, ...)
#   make report ROUNDS=N     processes per measurement (default 5)
#   make test-compare        every backend and workload at the tiny scale
#   make syscalls            system calls per operation of the burst workload
#                            for every backend, counted by strace (not timed)
#
# BACKENDS="glibc sodium" or WORKLOADS="pair fill" restrict a report.

COMPARE_DIR := $(BUILD)/compare
LINK_FORCE := -Wl,--no-as-needed
LINK_AS_NEEDED := -Wl,--as-needed

# ---------------------------------------------------------------------------
# Workloads, in the order they run: compare/wl_<name>.c, one line each.
COMPARE_WORKLOADS :=
COMPARE_WORKLOADS += pair
COMPARE_WORKLOADS += fill
COMPARE_WORKLOADS += churn
COMPARE_WORKLOADS += session
COMPARE_WORKLOADS += burst
COMPARE_WORKLOADS += threads
COMPARE_WORKLOADS += protect
COMPARE_WORKLOADS += keylife
COMPARE_WORKLOADS += tls
COMPARE_WORKLOADS += capacity

# ---------------------------------------------------------------------------
# Backends: compare/backend_<name>.c (a `-` in the name is `_` in the file
# name), one line each:
#   $(eval $(call compare_backend,NAME,EXTRA OBJECTS,LINK ARGUMENTS,DEBIAN PACKAGES))
# A malloc replacement is forced in with $(LINK_FORCE) even under
# --as-needed: the harness itself never calls it.
COMPARE_BACKENDS :=
COMPARE_DEB := libssl-dev python3
define compare_backend
COMPARE_BACKENDS += $(1)
COMPARE_DEB += $(4)
$(COMPARE_DIR)/compare-$(1): $(COMPARE_COMMON_OBJ) $(COMPARE_DIR)/backend_$(subst -,_,$(1)).o \
    $(addprefix $(COMPARE_DIR)/,$(2)) $(filter %.a,$(3))
	@mkdir -p $$(@D)
	$$(E) "  LD      $$@"
	$$(Q)$$(CC) $$(BASE_LDFLAGS) $$(LDFLAGS) -o $$@ $(COMPARE_COMMON_OBJ) \
	  $(COMPARE_DIR)/backend_$(subst -,_,$(1)).o $(addprefix $(COMPARE_DIR)/,$(2)) \
	  $(3) $(COMPARE_LIBS)
endef

COMPARE_COMMON_OBJ = $(addprefix $(COMPARE_DIR)/,main.o json.o measure.o procmem.o runner.o \
	$(COMPARE_WORKLOADS:%=wl_%.o))
COMPARE_LIBS := -lssl -lcrypto -lm

# scudo is a library of the clang runtime, not on the linker's path: linked
# by its file name, with an rpath (looked up when the link runs, after
# deps-compare installed the package).
SCUDO_SO = $(firstword $(shell dpkg -L libclang-rt-14-dev 2>/dev/null | \
	grep '/libclang_rt.scudo_standalone-$(shell uname -m).so$$'))
SCUDO_LINK = $(LINK_FORCE) $(SCUDO_SO) -Wl,-rpath,$(dir $(SCUDO_SO)) $(LINK_AS_NEEDED)

$(eval $(call compare_backend,tars,tars_common.o,$(TARS_A),))
$(eval $(call compare_backend,tars-key,tars_common.o,$(TARS_A),))
$(eval $(call compare_backend,tars-bare,tars_common.o,$(TARS_A),))
$(eval $(call compare_backend,glibc,,,))
$(eval $(call compare_backend,jemalloc,,$(LINK_FORCE) -ljemalloc $(LINK_AS_NEEDED),libjemalloc-dev))
$(eval $(call compare_backend,mimalloc,,$(LINK_FORCE) -lmimalloc $(LINK_AS_NEEDED),libmimalloc-dev))
$(eval $(call compare_backend,tcmalloc,,$(LINK_FORCE) -ltcmalloc_minimal $(LINK_AS_NEEDED),libgoogle-perftools-dev))
$(eval $(call compare_backend,scudo,,$$(SCUDO_LINK),libclang-rt-14-dev))
$(eval $(call compare_backend,mmap,,,))
$(eval $(call compare_backend,sodium,,-lsodium,libsodium-dev))
$(eval $(call compare_backend,openssl,,,))

# ---------------------------------------------------------------------------

COMPARE_BINS := $(COMPARE_BACKENDS:%=$(COMPARE_DIR)/compare-%)

RESULTS_ROOT ?= results
ROUNDS ?=
COMPARE_RUN := python3 compare/run.py --bin $(COMPARE_DIR) --results $(RESULTS_ROOT) \
	--backends "$(or $(BACKENDS),$(COMPARE_BACKENDS))" \
	$(if $(FULL),--scale full) $(if $(ROUNDS),--rounds $(ROUNDS)) \
	$(if $(WORKLOADS),--workloads "$(WORKLOADS)")

.PHONY: compare deps-compare report test-compare syscalls

compare: $(COMPARE_BINS)

deps-compare:
	$(Q)$(NEED_DEB) $(sort $(COMPARE_DEB))

$(COMPARE_DIR)/%.o: compare/%.c | deps-compare
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

# The main job.  A process that crashed or was mislinked still leaves its
# failure in the CSV: figures and summary are made anyway, then the exit
# status says so.
report: deps-compare deps-plots
	$(Q)$(MAKE) --no-print-directory compare
	$(Q)rc=0; start=$$(date +%s); run=$$(date +%Y%m%d-%H%M%S); dir=$(RESULTS_ROOT)/$$run; \
	  $(COMPARE_RUN) --run $$run || rc=$$?; \
	  test -f $$dir/compare.csv || exit 1; \
	  $(MAKE) --no-print-directory plots RESULTS=$$dir || rc=1; \
	  echo; cat $$dir/summary.md; echo; \
	  echo "results: $$dir/  figures: plots/out/  ($$(( $$(date +%s) - start )) s)"; \
	  exit $$rc

# System calls per operation of the burst workload for every backend,
# counted by strace -f -c (its overhead makes the times meaningless; the
# counts are exact).  Writes results/syscalls/<backend>.txt and a table.
syscalls: $(COMPARE_BINS)
	$(Q)$(NEED_DEB) strace
	$(Q)python3 compare/syscalls.py --bin $(COMPARE_DIR) --results $(RESULTS_ROOT)/syscalls \
	  --backends "$(or $(BACKENDS),$(COMPARE_BACKENDS))"

# Every backend and every workload at the tiny scale, then the CSV is
# validated.
COMPARE_TEST = bash compare/test-compare.sh $(COMPARE_DIR) '$(strip $(COMPARE_BACKENDS))'
# Not under SAN=...: a sanitizer owns malloc, which the harness rightly
# reports as a mislinked run.
ifeq ($(SAN),)
TEST_BINS += $(COMPARE_BINS)
TEST_PROGS += "$(COMPARE_TEST)"
endif

test-compare: $(COMPARE_BINS)
	$(Q)$(RUN_TESTS) "$(COMPARE_TEST)"

-include $(wildcard $(COMPARE_DIR)/*.d)
