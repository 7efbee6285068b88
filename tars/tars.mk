# tars/: the library, its pkg-config file, and its Criterion test suite.

TARS_SRC := $(wildcard tars/src/*.c)
TARS_OBJ := $(TARS_SRC:%.c=$(BUILD)/%.o)
TARS_A := $(BUILD)/lib/libtars.a
TARS_SO := $(BUILD)/lib/libtars.so
TARS_PC := $(BUILD)/lib/tars.pc
TARS_LIB_CFLAGS := -fPIC -fvisibility=hidden -Itars/src

# One Criterion program from every tars/tests/test_*.c, linked statically so
# that tests can reach the internal test hooks.
TARS_TEST_SRC := $(wildcard tars/tests/test_*.c) tars/tests/util.c
TARS_TEST_OBJ := $(TARS_TEST_SRC:%.c=$(BUILD)/%.o)
TARS_TESTS := $(BUILD)/tests/tars-tests

.PHONY: lib install deps-criterion test-tars test-stress
lib: $(TARS_A) $(TARS_SO) $(TARS_PC)

$(BUILD)/tars/src/%.o: tars/src/%.c
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(TARS_LIB_CFLAGS) $(CFLAGS) -c $< -o $@

$(TARS_A): $(TARS_OBJ)
	@mkdir -p $(@D)
	$(E) "  AR      $@"
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(TARS_SO): $(TARS_OBJ)
	@mkdir -p $(@D)
	$(E) "  LD      $@"
	$(Q)$(CC) -shared -Wl,-soname,libtars.so.0 -Wl,-z,now -Wl,-z,relro $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $^

TARS_VERSION_STR := $(shell sed -n 's/^\#define TARS_VERSION "\(.*\)"/\1/p' tars/include/tars.h)
TARS_PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(TARS_VERSION_STR)|' tars/tars.pc.in

$(TARS_PC): tars/tars.pc.in tars/include/tars.h
	@mkdir -p $(@D)
	$(Q)$(TARS_PC_SED) > $@

deps-criterion:
	$(Q)$(NEED_DEB) libcriterion-dev

$(BUILD)/tars/tests/%.o: tars/tests/%.c | deps-criterion
	@mkdir -p $(@D)
	$(E) "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) -Itars/src -Itars/tests $(CFLAGS) -c $< -o $@

$(TARS_TESTS): $(TARS_TEST_OBJ) $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  LD      $@"
	$(Q)$(CC) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $(TARS_TEST_OBJ) $(TARS_A) -lcriterion

# Criterion runs each test in its own process; -j2 matches this machine.
TEST_BINS += $(TARS_TESTS)
TEST_PROGS += "$(TARS_TESTS) -j2 --short-filename"
SAN_TEST_BINS += $(TARS_TESTS)
SAN_TEST_PROGS += "$(TARS_TESTS) -j2 --short-filename"

test-tars: $(TARS_TESTS)
	$(Q)$(RUN_TESTS) "$(TARS_TESTS) -j2 --short-filename"

# The Criterion stress suite alone.
test-stress: $(TARS_TESTS)
	$(Q)$(RUN_TESTS) "$(TARS_TESTS) -j1 --short-filename --filter 'stress/*'"

include tars/tests/standalone/standalone.mk

install: lib
	$(E) "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	$(Q)install -m 644 tars/include/tars.h $(DESTDIR)$(PREFIX)/include/
	$(Q)install -m 644 $(TARS_A) $(DESTDIR)$(PREFIX)/lib/
	$(Q)install -m 755 $(TARS_SO) $(DESTDIR)$(PREFIX)/lib/libtars.so.0
	$(Q)ln -sf libtars.so.0 $(DESTDIR)$(PREFIX)/lib/libtars.so
	$(Q)$(TARS_PC_SED) > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tars.pc

-include $(TARS_OBJ:.o=.d) $(TARS_TEST_OBJ:.o=.d)

# pair64: the hot-path figure (64-byte pair, tars vs glibc, same run).
PAIR64 := $(BUILD)/tools/pair64
.PHONY: pair64
$(PAIR64): tars/tools/pair64.c $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $< $(TARS_A)
pair64: $(PAIR64)
	$(Q)$(PAIR64)

# keyprobe: the kernel facts behind the key arena (paper-notes.md, appendix B).
KEYPROBE := $(BUILD)/tools/keyprobe
.PHONY: keyprobe
$(KEYPROBE): tars/tools/keyprobe.c
	@mkdir -p $(@D)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $<
keyprobe: $(KEYPROBE)
	$(Q)$(KEYPROBE)

# keycount: live tars_keys against VMAs (paper-notes.md, section 6.6).
KEYCOUNT := $(BUILD)/tools/keycount
.PHONY: keycount
$(KEYCOUNT): tars/tools/keycount.c $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $< $(TARS_A)
keycount: $(KEYCOUNT)
	$(Q)$(KEYCOUNT)

# opcount: instructions per operation under callgrind, for every protection
# option (tars/tools/opcount.sh); OPCOUNT_BASE=<rev> adds that revision's
# library beside this one (paper-notes, "What each protection costs").
OPCOUNT := $(BUILD)/tools/opcount
OPCOUNT_BASE ?=
.PHONY: opcount
$(OPCOUNT): tars/tools/opcount.c $(TARS_A)
	@mkdir -p $(@D)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) $(BASE_LDFLAGS) $(LDFLAGS) -o $@ $< $(TARS_A)
opcount: $(OPCOUNT) | deps-valgrind
	$(Q)bash tars/tools/opcount.sh $(BUILD) $(RESULTS_ROOT)/$$(date +%Y%m%d-%H%M%S)-opcount $(OPCOUNT_BASE)
