# tune/: the option sweep that guides cache and size-class tuning.
#
#   make tune                     sweep tars options (one process of
#                                 compare-tars per configuration, workload
#                                 and round; large-block options on the
#                                 large-block workloads, chunk-page options
#                                 on the others; ~9-10 min on 2 cores), write
#                                 results/tune/<run>/, draw plots/out/tune/,
#                                 print the recommended defaults and how
#                                 stable the recommendation is (bootstrap
#                                 over the rounds: a change only at >= 80%)
#   make tune TUNE_ROUNDS=N       more or fewer rounds (default 7)
#   make tune TUNE_QUICK=1        5 configurations, tiny workloads (seconds;
#                                 results/tune/quick/, plots/out/tune/quick/)
#   make tune TUNE_CONFIGS='cache=0 cache=512'   only these (and the default)
#   make test-tune                the quick mode, checked (part of make test)
#
# The driver is tune/tune.py (the sweep in tune/sweep.py, the statistics
# and the recommendation in tune/analysis.py, the figures in
# tune/figures.py, drawn by tune/tune_*.gp after tune/common.gp);
# tune/slots.c prints tars_slot_size() under each class scheme for the
# size-class waste figure.  Option names, ranges and defaults come from
# the library's table (compare-tars --list).

TUNE_DIR := $(BUILD)/tune
TUNE_SLOTS := $(TUNE_DIR)/tars-slots
TUNE_COMPARE := $(BUILD)/compare/compare-tars
TUNE_RESULTS ?= results/tune
TUNE_PLOTS := plots/out/tune
TUNE_ROUNDS ?=
TUNE_QUICK ?=
TUNE_CONFIGS ?=
TUNE_RUN := python3 tune/tune.py --bin $(TUNE_COMPARE) --slots $(TUNE_SLOTS) \
	--results $(TUNE_RESULTS)$(if $(filter 1,$(TUNE_QUICK)),/quick) \
	--plots $(TUNE_PLOTS)$(if $(filter 1,$(TUNE_QUICK)),/quick) \
	$(if $(TUNE_ROUNDS),--rounds $(TUNE_ROUNDS)) $(if $(filter 1,$(TUNE_QUICK)),--quick) \
	$(if $(TUNE_CONFIGS),--configs '$(TUNE_CONFIGS)')

.PHONY: tune deps-tune test-tune

deps-tune:
	$(Q)$(NEED_DEB) gnuplot-nox python3

$(TUNE_SLOTS): tune/slots.c $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $< $(TARS_A)

tune: deps-tune
	$(Q)$(MAKE) --no-print-directory $(TUNE_COMPARE) $(TUNE_SLOTS)
	$(Q)$(TUNE_RUN)

# The quick mode into a scratch directory, then its output is checked.
TUNE_TEST := bash tune/test-tune.sh $(TUNE_COMPARE) $(TUNE_SLOTS)
TEST_BINS += $(TUNE_COMPARE) $(TUNE_SLOTS)
TEST_PROGS += "$(TUNE_TEST)"

test-tune: $(TUNE_COMPARE) $(TUNE_SLOTS)
	$(Q)$(RUN_TESTS) "$(TUNE_TEST)"

-include $(TUNE_SLOTS:=.d)
