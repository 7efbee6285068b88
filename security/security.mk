# security/: the security evaluation - placement entropy, over-reads into a
# neighbour's secret, reads after free, behaviour at RLIMIT_MEMLOCK as an
# unprivileged user, and the freed memory that stays writable.  One
# executable per backend (jemalloc and mimalloc replace malloc
# process-wide); security/security.py runs them and writes
# results/<timestamp>-security/{security.json,security.md}.
#
#   make security               the evaluation (under a minute on 2 cores)
#   make security SECURITY_FULL=1   more trials, samples and processes
#   make test-security          a tiny run whose figures are checked (part
#                               of make test)

SEC_BACKENDS := tars glibc jemalloc mimalloc sodium openssl mmap
SEC_DIR := $(BUILD)/security
SEC_COMMON_OBJ := $(addprefix $(SEC_DIR)/,main.o json.o util.o probe.o \
	exp_place.o exp_overread.o exp_memlock.o exp_window.o)
SEC_BINS := $(SEC_BACKENDS:%=$(SEC_DIR)/sec-%)
# util-linux gives setpriv (unprivileged runs); it is essential on Debian.
SEC_DEB := libjemalloc-dev libmimalloc-dev libsodium-dev libssl-dev python3 util-linux

SEC_OBJ_tars := backend_tars.o
SEC_OBJ_glibc := backend_glibc.o
SEC_OBJ_jemalloc := backend_jemalloc.o
SEC_OBJ_mimalloc := backend_mimalloc.o
SEC_OBJ_sodium := backend_sodium.o
SEC_OBJ_openssl := backend_openssl.o
SEC_OBJ_mmap := backend_mmap.o
SEC_DEP_tars := $(TARS_A)
SEC_LIB_tars := $(TARS_A)
SEC_LIB_jemalloc := -Wl,--no-as-needed -ljemalloc -Wl,--as-needed
SEC_LIB_mimalloc := -Wl,--no-as-needed -lmimalloc -Wl,--as-needed
SEC_LIB_sodium := -lsodium
SEC_LIB_openssl := -lcrypto

SEC_RESULTS ?= results
SEC_RUN := python3 security/security.py --bin $(SEC_DIR) --results $(SEC_RESULTS) \
	$(if $(filter 1,$(SECURITY_FULL)),--scale full)

.PHONY: security security-build deps-security test-security

security-build: $(SEC_BINS)

deps-security:
	$(Q)$(NEED_DEB) $(SEC_DEB)

$(SEC_DIR)/%.o: security/%.c | deps-security
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

# One source for the three plain-malloc backends.
SEC_MALLOC_OBJ := $(addprefix $(SEC_DIR)/,backend_glibc.o backend_jemalloc.o backend_mimalloc.o)
SEC_DEF_glibc := SEC_GLIBC
SEC_DEF_jemalloc := SEC_JEMALLOC
SEC_DEF_mimalloc := SEC_MIMALLOC
$(SEC_MALLOC_OBJ): $(SEC_DIR)/backend_%.o: security/backend_malloc.c | deps-security
	@mkdir -p $(@D)
	$(E) "  CC      $< ($*)"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -D$(SEC_DEF_$*) -c $< -o $@

define SEC_LINK
$(SEC_DIR)/sec-$(1): $(SEC_COMMON_OBJ) $(SEC_DIR)/$(SEC_OBJ_$(1)) $(SEC_DEP_$(1))
	@mkdir -p $$(@D)
	$$(E) "  LD      $$@"
	$$(Q)$$(CC) $$(BASE_LDFLAGS) $$(LDFLAGS) -o $$@ $(SEC_COMMON_OBJ) \
	  $(SEC_DIR)/$(SEC_OBJ_$(1)) $(SEC_LIB_$(1))
endef
$(foreach b,$(SEC_BACKENDS),$(eval $(call SEC_LINK,$(b))))

# A backend that fails is recorded in the report; the exit status then says
# so, after security.json and security.md are written.
security: deps-security
	$(Q)$(MAKE) --no-print-directory security-build
	$(Q)$(SEC_RUN)

# The tiny scale, into a scratch directory, with its checks (exit 1 if one
# fails).  Not under SAN=...: a sanitizer owns malloc.
SEC_TEST := python3 security/security.py --bin $(SEC_DIR) --scale tiny --check --quiet \
	--results $(BUILD)/security/test-results
ifeq ($(SAN),)
TEST_BINS += $(SEC_BINS)
TEST_PROGS += "$(SEC_TEST)"
endif

test-security: $(SEC_BINS)
	$(Q)$(RUN_TESTS) "$(SEC_TEST)"

-include $(SEC_COMMON_OBJ:.o=.d) $(wildcard $(SEC_DIR)/backend_*.d)
