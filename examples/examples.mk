# examples/: programs that use tars the way a client would, each with an
# end-to-end test run by `make test`.
#
#   tars-aead   XChaCha20-Poly1305 (libsodium) with the key in a tars_key
#               and the plaintext in tars_bufs

EXAMPLES := $(BUILD)/examples/tars-aead

.PHONY: examples deps-sodium test-examples
examples: $(EXAMPLES)

deps-sodium:
	$(Q)$(NEED_DEB) libsodium-dev

$(BUILD)/examples/%.o: examples/%.c | deps-sodium
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/examples/tars-aead: $(BUILD)/examples/tars-aead.o $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  LD      $@"
	$(Q)$(CC) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $< $(TARS_A) -lsodium

EXAMPLES_TEST := "bash examples/test-aead.sh $(BUILD)/examples/tars-aead"
TEST_BINS += $(EXAMPLES)
TEST_PROGS += $(EXAMPLES_TEST)
SAN_TEST_BINS += $(EXAMPLES)
SAN_TEST_PROGS += $(EXAMPLES_TEST)

test-examples: $(EXAMPLES)
	$(Q)$(RUN_TESTS) $(EXAMPLES_TEST)

-include $(BUILD)/examples/tars-aead.d
