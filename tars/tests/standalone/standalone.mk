# tars/tests/standalone/: test programs without Criterion.
#
# Criterion aborts under -fsanitize=thread ("Could not initialize
# inheritable arena", Criterion bug #274), so the multithreaded stress that
# ThreadSanitizer must see is a plain pthreads program: mt_stress.  It runs
# in `make test` and in test-asan/test-ubsan; `make test-mt-stress` runs it
# alone (test-tsan: that with SAN=thread).  MT_STRESS_ARGS passes options:
# -t SECONDS (default 5), -n OPS per alloc thread, -s SEED.

MT_STRESS := $(BUILD)/tests/mt_stress
MT_STRESS_ARGS ?=
MT_STRESS_CMD = $(strip $(MT_STRESS) $(MT_STRESS_ARGS))

$(MT_STRESS): tars/tests/standalone/mt_stress.c $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $< $(TARS_A)

TEST_BINS += $(MT_STRESS)
TEST_PROGS += "$(MT_STRESS_CMD)"
SAN_TEST_BINS += $(MT_STRESS)
SAN_TEST_PROGS += "$(MT_STRESS_CMD)"

.PHONY: test-mt-stress
test-mt-stress: $(MT_STRESS)
	$(Q)$(RUN_TESTS) "$(MT_STRESS_CMD)"

-include $(MT_STRESS).d
