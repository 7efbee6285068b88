# compare/: the same small-buffer workloads against every allocator a user
# could pick instead of tars, one process per backend (jemalloc and mimalloc
# replace malloc process-wide).  compare/run.py drives the binaries and
# writes results/<run>/{compare.json,compare.csv,summary.md}.
#
#   make compare             build build/compare/compare-<backend>
#   make report              install what is missing, build, run, plot, summarize
#   make report FULL=1       the bigger sizes (fill 1M, churn 100k slots, ...)
#   make test-compare        every backend on one tiny workload + CSV check
#
# BACKENDS="glibc sodium" or WORKLOADS="pair fill" restrict a report.

COMPARE_BACKENDS := tars tars-key glibc jemalloc mimalloc mmap sodium openssl
COMPARE_DIR := $(BUILD)/compare
COMPARE_COMMON_OBJ := $(addprefix $(COMPARE_DIR)/,main.o measure.o procmem.o workloads.o)
COMPARE_BINS := $(COMPARE_BACKENDS:%=$(COMPARE_DIR)/compare-%)
COMPARE_DEB := libjemalloc-dev libmimalloc-dev libsodium-dev libssl-dev python3

# Per backend: its objects and what it links with.  The malloc replacements
# are forced in even under --as-needed: the harness calls plain malloc.
COMPARE_OBJ_tars := backend_tars.o tars_common.o
COMPARE_OBJ_tars-key := backend_tars_key.o tars_common.o
COMPARE_OBJ_glibc := backend_glibc.o
COMPARE_OBJ_jemalloc := backend_jemalloc.o
COMPARE_OBJ_mimalloc := backend_mimalloc.o
COMPARE_OBJ_mmap := backend_mmap.o
COMPARE_OBJ_sodium := backend_sodium.o
COMPARE_OBJ_openssl := backend_openssl.o
COMPARE_DEP_tars := $(TARS_A)
COMPARE_DEP_tars-key := $(TARS_A)
COMPARE_LIB_tars := $(TARS_A)
COMPARE_LIB_tars-key := $(TARS_A)
COMPARE_LIB_jemalloc := -Wl,--no-as-needed -ljemalloc -Wl,--as-needed
COMPARE_LIB_mimalloc := -Wl,--no-as-needed -lmimalloc -Wl,--as-needed
COMPARE_LIB_sodium := -lsodium
COMPARE_LIB_openssl := -lcrypto

RESULTS_ROOT ?= results
COMPARE_RUN := python3 compare/run.py --bin $(COMPARE_DIR) --results $(RESULTS_ROOT) \
	$(if $(FULL),--scale full) $(if $(BACKENDS),--backends "$(BACKENDS)") \
	$(if $(WORKLOADS),--workloads "$(WORKLOADS)")

.PHONY: compare deps-compare report test-compare

compare: $(COMPARE_BINS)

deps-compare:
	$(Q)$(NEED_DEB) $(COMPARE_DEB)

$(COMPARE_DIR)/%.o: compare/%.c | deps-compare
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

define COMPARE_LINK
$(COMPARE_DIR)/compare-$(1): $(COMPARE_COMMON_OBJ) $(addprefix $(COMPARE_DIR)/,$(COMPARE_OBJ_$(1))) $(COMPARE_DEP_$(1))
	@mkdir -p $$(@D)
	$$(E) "  LD      $$@"
	$$(Q)$$(CC) $$(BASE_LDFLAGS) $$(LDFLAGS) -o $$@ $(COMPARE_COMMON_OBJ) \
	  $(addprefix $(COMPARE_DIR)/,$(COMPARE_OBJ_$(1))) $(COMPARE_LIB_$(1)) -lm
endef
$(foreach b,$(COMPARE_BACKENDS),$(eval $(call COMPARE_LINK,$(b))))

# The main job.  A process that crashed or was mislinked still leaves its
# failure in the CSV: figures and summary are made anyway, then the exit
# status says so.
report: deps-compare deps-plots
	$(Q)$(MAKE) --no-print-directory compare
	$(Q)rc=0; run=$$(date +%Y%m%d-%H%M%S); dir=$(RESULTS_ROOT)/$$run; \
	  $(COMPARE_RUN) --run $$run || rc=$$?; \
	  test -f $$dir/compare.csv || exit 1; \
	  $(MAKE) --no-print-directory plots RESULTS=$$dir || rc=1; \
	  echo; cat $$dir/summary.md; echo; \
	  echo "results: $$dir/  figures: plots/out/"; \
	  exit $$rc

# Every backend on one tiny workload, then the CSV is validated.
COMPARE_TEST := bash compare/test-compare.sh $(COMPARE_DIR)
# Not under SAN=...: a sanitizer owns malloc, which the harness rightly
# reports as a mislinked run.
ifeq ($(SAN),)
TEST_BINS += $(COMPARE_BINS)
TEST_PROGS += "$(COMPARE_TEST)"
endif

test-compare: $(COMPARE_BINS)
	$(Q)$(RUN_TESTS) "$(COMPARE_TEST)"

-include $(COMPARE_COMMON_OBJ:.o=.d) $(wildcard $(COMPARE_DIR)/backend_*.d $(COMPARE_DIR)/tars_common.d)
